// PRECIS and IDNA2008 checks for JIDs (see precis.h).
#include "guard/xmpp/precis.h"

#include <idn2.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace portcullis::xmpp {

namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

std::string u_plus(ucs4_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(c));
  return buf;
}

std::optional<std::u32string> decode(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  if (u8_check(p, s.size()) != nullptr) return std::nullopt;
  size_t n = 0;
  std::unique_ptr<uint32_t, FreeDeleter> out(u8_to_u32(p, s.size(), nullptr, &n));
  if (!out && s.size() > 0) return std::nullopt;
  return std::u32string(reinterpret_cast<const char32_t*>(out.get()), n);
}

// RFC 8264 §9 derived property values, for one string class.
enum class Prop { Pvalid, ContextJ, ContextO, Disallowed, Unassigned };

bool in(uc_general_category_t cat, ucs4_t c) { return uc_is_general_category(c, cat); }

// RFC 5892 §2.6 exceptions (F), as RFC 8264 §9.1 uses them.
std::optional<Prop> exception(ucs4_t c) {
  switch (c) {
    case 0x00DF: case 0x03C2: case 0x06FD: case 0x06FE: case 0x0F0B: case 0x3007:
      return Prop::Pvalid;
    case 0x00B7: case 0x0375: case 0x05F3: case 0x05F4: case 0x30FB:
      return Prop::ContextO;
    case 0x0640: case 0x07FA: case 0x302E: case 0x302F: case 0x3031: case 0x3032: case 0x3033:
    case 0x3034: case 0x3035: case 0x303B:
      return Prop::Disallowed;
    default:
      break;
  }
  if ((c >= 0x0660 && c <= 0x0669) || (c >= 0x06F0 && c <= 0x06F9)) return Prop::ContextO;
  return std::nullopt;
}

bool has_compat(ucs4_t c) {
  size_t n = 0;
  std::unique_ptr<uint32_t, FreeDeleter> out(u32_normalize(UNINORM_NFKC, &c, 1, nullptr, &n));
  return out && !(n == 1 && out.get()[0] == c);
}

bool old_hangul_jamo(ucs4_t c) {
  return (c >= 0x1100 && c <= 0x11FF) || (c >= 0xA960 && c <= 0xA97F) || (c >= 0xD7B0 && c <= 0xD7FF);
}

// RFC 8264 §8, in its order. `freeform`: FreeformClass, else IdentifierClass.
Prop derived(ucs4_t c, bool freeform) {
  if (auto e = exception(c)) return *e;
  if (in(UC_CATEGORY_Cn, c) && !uc_is_property_not_a_character(c)) return Prop::Unassigned;
  if (c >= 0x21 && c <= 0x7E) return Prop::Pvalid;
  if (uc_is_property_join_control(c)) return Prop::ContextJ;
  if (old_hangul_jamo(c)) return Prop::Disallowed;
  if (uc_is_property_default_ignorable_code_point(c) || uc_is_property_not_a_character(c)) return Prop::Disallowed;
  if (in(UC_CATEGORY_Cc, c)) return Prop::Disallowed;
  const Prop free_or_dis = freeform ? Prop::Pvalid : Prop::Disallowed;
  if (has_compat(c)) return free_or_dis;
  for (auto cat : {UC_CATEGORY_Ll, UC_CATEGORY_Lu, UC_CATEGORY_Lo, UC_CATEGORY_Nd, UC_CATEGORY_Lm, UC_CATEGORY_Mn,
                   UC_CATEGORY_Mc})
    if (in(cat, c)) return Prop::Pvalid;
  for (auto cat : {UC_CATEGORY_Lt, UC_CATEGORY_Nl, UC_CATEGORY_No, UC_CATEGORY_Me, UC_CATEGORY_Zs, UC_CATEGORY_Sm,
                   UC_CATEGORY_Sc, UC_CATEGORY_Sk, UC_CATEGORY_So, UC_CATEGORY_Pc, UC_CATEGORY_Pd, UC_CATEGORY_Ps,
                   UC_CATEGORY_Pe, UC_CATEGORY_Pi, UC_CATEGORY_Pf, UC_CATEGORY_Po})
    if (in(cat, c)) return free_or_dis;
  return Prop::Disallowed;
}

bool script_is(ucs4_t c, const char* name) {
  const uc_script_t* s = uc_script(c);
  return s != nullptr && std::strcmp(s->name, name) == 0;
}

// RFC 5892 Appendix A: the contextual rules for CONTEXTJ and CONTEXTO.
bool context_ok(const std::u32string& s, std::size_t i) {
  const ucs4_t c = s[i];
  const bool has_before = i > 0;
  if (c == 0x200D) return has_before && uc_combining_class(s[i - 1]) == UC_CCC_VR;   // A.2 ZWJ
  if (c == 0x200C) {                                                                 // A.1 ZWNJ
    if (has_before && uc_combining_class(s[i - 1]) == UC_CCC_VR) return true;
    // (Joining_Type:{L,D})(Joining_Type:T)* ZWNJ (Joining_Type:T)*(Joining_Type:{R,D})
    std::size_t j = i;
    bool left = false;
    while (j > 0) {
      const int jt = uc_joining_type(s[--j]);
      if (jt == UC_JOINING_TYPE_T) continue;
      left = jt == UC_JOINING_TYPE_L || jt == UC_JOINING_TYPE_D;
      break;
    }
    if (!left) return false;
    for (j = i + 1; j < s.size(); ++j) {
      const int jt = uc_joining_type(s[j]);
      if (jt == UC_JOINING_TYPE_T) continue;
      return jt == UC_JOINING_TYPE_R || jt == UC_JOINING_TYPE_D;
    }
    return false;
  }
  if (c == 0x00B7) return has_before && i + 1 < s.size() && s[i - 1] == 0x006C && s[i + 1] == 0x006C;   // A.3
  if (c == 0x0375) return i + 1 < s.size() && script_is(s[i + 1], "Greek");                            // A.4
  if (c == 0x05F3 || c == 0x05F4) return has_before && script_is(s[i - 1], "Hebrew");                   // A.5, A.6
  if (c == 0x30FB) {                                                                                     // A.7
    for (ucs4_t d : s) {
      if (d != 0x30FB && (script_is(d, "Hiragana") || script_is(d, "Katakana") || script_is(d, "Han"))) return true;
    }
    return false;
  }
  if (c >= 0x0660 && c <= 0x0669) {   // A.8
    for (ucs4_t d : s)
      if (d >= 0x06F0 && d <= 0x06F9) return false;
    return true;
  }
  if (c >= 0x06F0 && c <= 0x06F9) {   // A.9
    for (ucs4_t d : s)
      if (d >= 0x0660 && d <= 0x0669) return false;
    return true;
  }
  return false;
}

std::optional<std::string> class_problem(const std::u32string& s, bool freeform) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    switch (derived(s[i], freeform)) {
      case Prop::Pvalid:
        break;
      case Prop::ContextJ:
      case Prop::ContextO:
        if (!context_ok(s, i)) return u_plus(s[i]) + " is not allowed in this context";
        break;
      case Prop::Unassigned:
        return u_plus(s[i]) + " is unassigned";
      case Prop::Disallowed:
        return u_plus(s[i]) + " is disallowed";
    }
  }
  return std::nullopt;
}

bool nfc(const std::u32string& s) {
  size_t n = 0;
  const auto* p = reinterpret_cast<const uint32_t*>(s.data());
  std::unique_ptr<uint32_t, FreeDeleter> out(u32_normalize(UNINORM_NFC, p, s.size(), nullptr, &n));
  return out && n == s.size() && std::memcmp(out.get(), p, n * sizeof(uint32_t)) == 0;
}

// RFC 5893 §2, for a string that holds a right-to-left character.
std::optional<std::string> bidi_problem(const std::u32string& s) {
  bool rtl = false;
  for (ucs4_t c : s) {
    const int b = uc_bidi_class(c);
    if (b == UC_BIDI_R || b == UC_BIDI_AL || b == UC_BIDI_AN) rtl = true;
  }
  if (!rtl || s.empty()) return std::nullopt;
  const int first = uc_bidi_class(s.front());
  if (first != UC_BIDI_L && first != UC_BIDI_R && first != UC_BIDI_AL)
    return std::string("the Bidi Rule: it starts with neither a left-to-right nor a right-to-left character");
  // The last character that is not NSM.
  std::size_t end = s.size();
  while (end > 0 && uc_bidi_class(s[end - 1]) == UC_BIDI_NSM) --end;
  if (first == UC_BIDI_L) {
    for (ucs4_t c : s) {
      const int b = uc_bidi_class(c);
      if (b != UC_BIDI_L && b != UC_BIDI_EN && b != UC_BIDI_ES && b != UC_BIDI_CS && b != UC_BIDI_ET &&
          b != UC_BIDI_ON && b != UC_BIDI_BN && b != UC_BIDI_NSM)
        return "the Bidi Rule: " + u_plus(c) + " in a left-to-right string";
    }
    const int last = end ? uc_bidi_class(s[end - 1]) : -1;
    if (last != UC_BIDI_L && last != UC_BIDI_EN) return std::string("the Bidi Rule: a left-to-right string's end");
    return std::nullopt;
  }
  bool en = false, an = false;
  for (ucs4_t c : s) {
    const int b = uc_bidi_class(c);
    if (b != UC_BIDI_R && b != UC_BIDI_AL && b != UC_BIDI_AN && b != UC_BIDI_EN && b != UC_BIDI_ES &&
        b != UC_BIDI_CS && b != UC_BIDI_ET && b != UC_BIDI_ON && b != UC_BIDI_BN && b != UC_BIDI_NSM)
      return "the Bidi Rule: " + u_plus(c) + " in a right-to-left string";
    en = en || b == UC_BIDI_EN;
    an = an || b == UC_BIDI_AN;
  }
  const int last = end ? uc_bidi_class(s[end - 1]) : -1;
  if (last != UC_BIDI_R && last != UC_BIDI_AL && last != UC_BIDI_EN && last != UC_BIDI_AN)
    return std::string("the Bidi Rule: a right-to-left string's end");
  if (en && an) return std::string("the Bidi Rule: European and Arabic-Indic digits mixed");
  return std::nullopt;
}

}  // namespace

namespace {

// Printable ASCII only (and, for a resource, the space): the common case, for
// which the profiles reduce to a byte check, with no decoding or normalising
// on the way of every stanza.
bool printable_ascii(std::string_view s, bool space) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c > 0x7E || c < (space ? 0x20 : 0x21)) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> precis_localpart_problem(std::string_view text) {
  if (!text.empty() && printable_ascii(text, false)) {
    // ASCII7 is PVALID (RFC 8264 §9.11); only the case mapping can change it.
    for (char c : text)
      if (c >= 'A' && c <= 'Z') return std::string("not in lower case");
    return std::nullopt;
  }
  const auto s = decode(text);
  if (!s) return std::string("not UTF-8");
  if (s->empty()) return std::string("empty");
  for (ucs4_t c : *s) {
    // Width mapping (RFC 8265 §3.3.2 step 1): a fullwidth or halfwidth form
    // would be mapped to its decomposition, so it is not the prepared form.
    int tag = 0;
    ucs4_t d[UC_DECOMPOSITION_MAX_LENGTH];
    if (uc_decomposition(c, &tag, d) > 0 && (tag == UC_DECOMP_WIDE || tag == UC_DECOMP_NARROW))
      return u_plus(c) + " is a fullwidth or halfwidth form";
  }
  if (auto p = class_problem(*s, false)) return p;
  size_t n = 0;
  const auto* p = reinterpret_cast<const uint32_t*>(s->data());
  std::unique_ptr<uint32_t, FreeDeleter> lower(u32_tolower(p, s->size(), "", nullptr, nullptr, &n));
  if (!lower || n != s->size() || std::memcmp(lower.get(), p, n * sizeof(uint32_t)) != 0)
    return std::string("not in lower case");
  if (!nfc(*s)) return std::string("not in Unicode NFC");
  return bidi_problem(*s);
}

std::optional<std::string> precis_resource_problem(std::string_view text) {
  // ASCII7 and U+0020 are valid in FreeformClass and left alone by OpaqueString.
  if (!text.empty() && printable_ascii(text, true)) return std::nullopt;
  const auto s = decode(text);
  if (!s) return std::string("not UTF-8");
  if (s->empty()) return std::string("empty");
  for (ucs4_t c : *s) {
    // OpaqueString maps non-ASCII spaces to U+0020 (RFC 8265 §4.2.2).
    if (c != 0x20 && in(UC_CATEGORY_Zs, c)) return u_plus(c) + " is a non-ASCII space";
  }
  if (auto p = class_problem(*s, true)) return p;
  if (!nfc(*s)) return std::string("not in Unicode NFC");
  return std::nullopt;
}

std::optional<std::string> idna_domain_problem(std::string_view domain) {
  if (domain.empty()) return std::string("empty");
  if (domain.front() == '[') return std::nullopt;   // an IP literal (checked by parse_jid)
  std::size_t start = 0;
  while (start <= domain.size()) {
    std::size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    const std::string label(domain.substr(start, dot - start));
    if (label.size() >= 4 && label.compare(0, 4, "xn--") == 0) {
      // An A-label must be the IDNA2008 encoding of a valid U-label: decode,
      // then encode the U-label again; anything but the same A-label is refused.
      char* u = nullptr;
      if (idn2_to_unicode_8z8z(label.c_str(), &u, 0) != IDN2_OK || u == nullptr)
        return "label '" + label + "' is not a valid A-label";
      std::unique_ptr<char, decltype(&idn2_free)> uf(u, &idn2_free);
      uint8_t* back = nullptr;
      const int rc = idn2_lookup_u8(reinterpret_cast<const uint8_t*>(u), &back, IDN2_NONTRANSITIONAL);
      std::unique_ptr<uint8_t, decltype(&idn2_free)> bf(back, &idn2_free);
      if (rc != IDN2_OK || back == nullptr) return "label '" + label + "': " + idn2_strerror(rc);
      if (label != reinterpret_cast<const char*>(back)) return "label '" + label + "' is not in its IDNA2008 form";
    }
    start = dot + 1;
  }
  return std::nullopt;
}

std::optional<std::string> jid_prepared_problem(const Jid& jid) {
  if (!jid.local.empty()) {
    if (auto p = precis_localpart_problem(jid.local)) return "localpart: " + *p;
  }
  if (auto p = idna_domain_problem(jid.domain)) return "domainpart: " + *p;
  if (!jid.resource.empty()) {
    if (auto p = precis_resource_problem(jid.resource)) return "resourcepart: " + *p;
  }
  return std::nullopt;
}

}  // namespace portcullis::xmpp
