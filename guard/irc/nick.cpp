#include "guard/irc/nick.h"

#include <array>
#include <cstdint>

#include "guard/irc/text.h"

namespace portcullis::irc {
namespace {

bool is_letter(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_special(char c) {
  switch (c) {
    case '[': case ']': case '\\': case '`': case '_': case '^': case '{': case '|': case '}':
      return true;
    default:
      return false;
  }
}
bool is_nick_char(char c) { return is_letter(c) || is_digit(c) || is_special(c) || c == '-'; }

// U+00C0..U+017F: the letter without its diacritic, ligatures spelled out;
// "" for the two signs (U+00D7, U+00F7). Generated from Unicode NFKD.
constexpr std::array<std::string_view, 0x180 - 0xC0> kLatin = {
    "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I", "I", "D", "N", "O", "O", "O", "O",
    "O", "", "O", "U", "U", "U", "U", "Y", "Th", "ss", "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e",
    "i", "i", "i", "i", "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y", "A", "a",
    "A", "a", "A", "a", "C", "c", "C", "c", "C", "c", "C", "c", "D", "d", "D", "d", "E", "e", "E", "e", "E", "e",
    "E", "e", "E", "e", "G", "g", "G", "g", "G", "g", "G", "g", "H", "h", "H", "h", "I", "i", "I", "i", "I", "i",
    "I", "i", "I", "i", "IJ", "ij", "J", "j", "K", "k", "k", "L", "l", "L", "l", "L", "l", "L", "l", "L", "l", "N",
    "n", "N", "n", "N", "n", "n", "N", "n", "O", "o", "O", "o", "O", "o", "OE", "oe", "R", "r", "R", "r", "R", "r",
    "S", "s", "S", "s", "S", "s", "S", "s", "T", "t", "T", "t", "T", "t", "U", "u", "U", "u", "U", "u", "U", "u",
    "U", "u", "U", "u", "W", "w", "Y", "y", "Y", "Z", "z", "Z", "z", "Z", "z", "s"};

// U+0410..U+042F (the lower case U+0430..U+044F maps to the same, lowered);
// the hard and soft signs are dropped.
constexpr std::array<std::string_view, 32> kCyrillic = {
    "A", "B", "V", "G", "D", "E", "Zh", "Z", "I", "J", "K", "L", "M", "N", "O", "P",
    "R", "S", "T", "U", "F", "Kh", "Ts", "Ch", "Sh", "Shch", "", "Y", "", "E", "Yu", "Ya"};

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The ASCII spelling of code point CP, or "" to drop it.
std::string transliterate(std::uint32_t cp) {
  if (cp >= 0xC0 && cp < 0x180) return std::string(kLatin[cp - 0xC0]);
  if (cp >= 0x410 && cp < 0x430) return std::string(kCyrillic[cp - 0x410]);
  if (cp >= 0x430 && cp < 0x450) return lowered(kCyrillic[cp - 0x430]);
  switch (cp) {
    case 0x401: return "Yo";
    case 0x451: return "yo";
    case 0x404: return "Ye";
    case 0x454: return "ye";
    case 0x406: return "I";
    case 0x456: return "i";
    case 0x407: return "Yi";
    case 0x457: return "yi";
    case 0x490: return "G";
    case 0x491: return "g";
    default: return "";
  }
}

// Decodes the (valid) UTF-8 sequence at S[I]; advances I.
std::uint32_t decode(std::string_view s, std::size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  std::size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  std::uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (std::size_t k = 1; k < len && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  i += len;
  return cp;
}

std::uint32_t fnv1a(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

char fold(char c, CaseMapping m) {
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  if (m == CaseMapping::Ascii) return c;
  switch (c) {
    case '[': return '{';
    case ']': return '}';
    case '\\': return '|';
    case '~': return m == CaseMapping::Rfc1459 ? '^' : c;
    default: return c;
  }
}

std::size_t effective_max(const NickRules& rules) { return rules.max_len == 0 ? 1 : rules.max_len; }

}  // namespace

bool is_valid_nick(std::string_view nick, const NickRules& rules) {
  if (nick.empty() || nick.size() > effective_max(rules)) return false;
  if (is_digit(nick.front()) || nick.front() == '-') return false;
  for (char c : nick) {
    if (!is_nick_char(c)) return false;
  }
  return true;
}

std::string irc_nick_for(std::string_view xmpp_nick, const NickRules& rules) {
  const std::string valid = to_valid_utf8(xmpp_nick);
  std::string out;
  bool last_mapped_underscore = false;
  bool has_alnum = false;
  for (std::size_t i = 0; i < valid.size();) {
    const std::uint32_t cp = decode(valid, i);
    if (cp < 0x80) {
      const char c = static_cast<char>(cp);
      if (is_nick_char(c)) {
        out += c;
        last_mapped_underscore = false;
        has_alnum = has_alnum || is_letter(c) || is_digit(c);
      } else if (cp >= 0x20 && cp < 0x7F) {
        if (!last_mapped_underscore) out += '_';
        last_mapped_underscore = true;
      }
      continue;  // other controls: dropped
    }
    const std::string t = transliterate(cp);
    if (!t.empty()) {
      out += t;
      last_mapped_underscore = false;
      has_alnum = true;
    }
  }
  const std::size_t max = effective_max(rules);
  if (!has_alnum) {
    static constexpr char kHex[] = "0123456789abcdef";
    const std::uint32_t h = fnv1a(xmpp_nick);
    std::string hashed(1, 'x');
    for (int shift = 28; shift >= 0; shift -= 4) hashed += kHex[(h >> shift) & 0xF];
    out = std::move(hashed);
  } else if (is_digit(out.front()) || out.front() == '-') {
    out.insert(out.begin(), '_');
  }
  if (out.size() > max) out.resize(max);
  return out;
}

std::string with_suffix(std::string_view nick, unsigned n, const NickRules& rules) {
  const std::size_t max = effective_max(rules);
  if (n == 0) return std::string(nick.substr(0, max));
  std::string digits = std::to_string(n);
  if (digits.size() > max - 1) digits.erase(0, digits.size() - (max - 1));
  std::string out(nick.substr(0, max - digits.size()));  // at least one character
  out += digits;
  return out;
}

std::string nick_fold(std::string_view nick, CaseMapping mapping) {
  std::string out(nick);
  for (char& c : out) c = fold(c, mapping);
  return out;
}

bool nick_equal(std::string_view a, std::string_view b, CaseMapping mapping) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (fold(a[i], mapping) != fold(b[i], mapping)) return false;
  }
  return true;
}

}  // namespace portcullis::irc
