#include "guard/irc/text.h"

namespace portcullis::irc {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool hex6_at(std::string_view s, std::size_t i) {
  if (i + 6 > s.size()) return false;
  for (std::size_t k = 0; k < 6; ++k) {
    if (!is_hex(s[i + k])) return false;
  }
  return true;
}

// Length of the well-formed UTF-8 sequence at S[I], or 0 when the bytes there
// are ill-formed; *bad gets the length of the maximal ill-formed subpart.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t* bad) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
  } else if (b == 0xE0) {
    len = 3, lo = 0xA0;
  } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
    len = 3;
  } else if (b == 0xED) {
    len = 3, hi = 0x9F;  // no surrogates
  } else if (b == 0xF0) {
    len = 4, lo = 0x90;
  } else if (b >= 0xF1 && b <= 0xF3) {
    len = 4;
  } else if (b == 0xF4) {
    len = 4, hi = 0x8F;  // nothing over U+10FFFF
  } else {
    *bad = 1;  // a continuation byte, C0/C1 (overlong) or F5..FF
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) {
      *bad = k;
      return 0;
    }
    const auto c = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) {
      *bad = k;
      return 0;
    }
  }
  return len;
}

}  // namespace

std::string strip_formatting(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    switch (c) {
      case '\x02': case '\x1D': case '\x1F': case '\x1E': case '\x11': case '\x16': case '\x0F':
        ++i;
        break;
      case '\x03': {
        ++i;
        std::size_t d = 0;
        while (d < 2 && i < s.size() && is_digit(s[i])) ++i, ++d;
        if (d > 0 && i + 1 < s.size() && s[i] == ',' && is_digit(s[i + 1])) {
          i += 2;
          if (i < s.size() && is_digit(s[i])) ++i;
        }
        break;
      }
      case '\x04':
        ++i;
        if (hex6_at(s, i)) {
          i += 6;
          if (i < s.size() && s[i] == ',' && hex6_at(s, i + 1)) i += 7;
        }
        break;
      default:
        out += c;
        ++i;
        break;
    }
  }
  return out;
}

bool parse_ctcp(std::string_view text, std::string* command, std::string* args) {
  if (text.size() < 2 || text.front() != '\x01') return false;
  std::string_view body = text.substr(1);
  if (!body.empty() && body.back() == '\x01') body.remove_suffix(1);
  const std::size_t sp = body.find(' ');
  const std::string_view cmd = body.substr(0, sp);
  if (cmd.empty()) return false;
  if (command) {
    command->assign(cmd);
    for (char& c : *command) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
  }
  if (args) {
    if (sp == std::string_view::npos) {
      args->clear();
    } else {
      args->assign(body.substr(sp + 1));
    }
  }
  return true;
}

std::string make_action(std::string_view text) {
  std::string out;
  out.reserve(text.size() + kActionOverhead);
  out += "\x01" "ACTION ";
  out += text;
  out += '\x01';
  return out;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t bad = 0;
    const std::size_t len = utf8_sequence(s, i, &bad);
    if (len == 0) {
      out += kReplacement;
      i += bad;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t bad = 0;
    const std::size_t len = utf8_sequence(s, i, &bad);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string to_xmpp_text(std::string_view text) {
  // Repair first: stripping a control byte first could join two stray bytes
  // into a character the sender never wrote.
  const std::string stripped = strip_formatting(to_valid_utf8(text));
  std::string out;
  out.reserve(stripped.size());
  for (std::size_t i = 0; i < stripped.size(); ++i) {
    const auto c = static_cast<unsigned char>(stripped[i]);
    if (c < 0x20 && c != '\t') continue;
    // U+FFFE and U+FFFF (EF BF BE / EF BF BF) are not XML 1.0 characters.
    if (c == 0xEF && i + 2 < stripped.size() && static_cast<unsigned char>(stripped[i + 1]) == 0xBF &&
        (static_cast<unsigned char>(stripped[i + 2]) == 0xBE || static_cast<unsigned char>(stripped[i + 2]) == 0xBF)) {
      out += kReplacement;
      i += 2;
      continue;
    }
    out += stripped[i];
  }
  return out;
}

}  // namespace portcullis::irc
