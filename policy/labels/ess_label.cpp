// ESS security label codec (see ess_label.h).
#include "policy/labels/ess_label.h"

#include <openssl/asn1.h>

#include <algorithm>
#include <map>
#include <utility>

namespace portcullis::policy::labels {

namespace {

constexpr int kTagInteger = V_ASN1_INTEGER;           // 2
constexpr int kTagBitString = V_ASN1_BIT_STRING;      // 3
constexpr int kTagOid = V_ASN1_OBJECT;                // 6
constexpr int kTagUtf8 = V_ASN1_UTF8STRING;           // 12
constexpr int kTagSequence = V_ASN1_SEQUENCE;         // 16
constexpr int kTagSet = V_ASN1_SET;                   // 17
constexpr int kTagPrintable = V_ASN1_PRINTABLESTRING; // 19

bool fail(std::string* why, const char* msg) {
  if (why) *why = msg;
  return false;
}

struct Tlv {
  int tag = 0;
  int cls = 0;
  bool constructed = false;
  const std::uint8_t* content = nullptr;
  std::size_t length = 0;
};

// Reads TLVs one after the other from [p, end). ASN1_get_object checks that
// the length fits in what is left (it flags 0x80 otherwise); indefinite
// lengths are refused because DER has none and they would need nesting state.
class TlvReader {
 public:
  TlvReader(const std::uint8_t* p, std::size_t n) : p_(p), end_(p + n) {}
  bool at_end() const { return p_ == end_; }
  bool next(Tlv& out, std::string* why) {
    if (p_ >= end_) return fail(why, "truncated");
    const unsigned char* q = p_;
    long len = 0;
    int tag = 0, cls = 0;
    const long avail = static_cast<long>(end_ - p_);
    const int r = ASN1_get_object(&q, &len, &tag, &cls, avail);
    if (r & 0x80) return fail(why, "bad or truncated TLV");
    if (r == 0x21) return fail(why, "indefinite length");
    if (len < 0 || q < p_ || q > end_ || static_cast<std::size_t>(len) > static_cast<std::size_t>(end_ - q))
      return fail(why, "length beyond the data");
    out.tag = tag;
    out.cls = cls;
    out.constructed = (r & V_ASN1_CONSTRUCTED) != 0;
    out.content = q;
    out.length = static_cast<std::size_t>(len);
    p_ = q + len;
    return true;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

bool is_universal(const Tlv& t, int tag, bool constructed) {
  return t.cls == V_ASN1_UNIVERSAL && t.tag == tag && t.constructed == constructed;
}

// OID content octets -> dotted text. Strict: minimal base-128 arcs, bounded.
bool oid_to_text(const std::uint8_t* p, std::size_t n, std::string& out, std::string* why) {
  if (n == 0 || n > 64) return fail(why, "bad OID length");
  out.clear();
  std::uint64_t v = 0;
  bool first = true;
  bool start = true;
  for (std::size_t i = 0; i < n; ++i) {
    if (start && p[i] == 0x80) return fail(why, "non-minimal OID arc");
    start = false;
    if (v > (UINT64_MAX >> 8)) return fail(why, "OID arc too large");
    v = (v << 7) | (p[i] & 0x7F);
    if (p[i] & 0x80) continue;
    if (first) {
      const std::uint64_t a = v < 40 ? 0 : (v < 80 ? 1 : 2);
      out = std::to_string(a) + "." + std::to_string(v - a * 40);
      first = false;
    } else {
      out += "." + std::to_string(v);
    }
    v = 0;
    start = true;
  }
  if (!start) return fail(why, "truncated OID");
  return true;
}

bool read_oid(const Tlv& t, std::string& out, std::string* why) {
  return oid_to_text(t.content, t.length, out, why);
}

// INTEGER content -> long, DER-minimal, non-negative, at most 4 bytes.
bool read_uint(const Tlv& t, long& out, std::string* why) {
  if (t.length == 0 || t.length > 4) return fail(why, "bad INTEGER length");
  if (t.content[0] & 0x80) return fail(why, "negative INTEGER");
  if (t.length > 1 && t.content[0] == 0 && !(t.content[1] & 0x80)) return fail(why, "non-minimal INTEGER");
  long v = 0;
  for (std::size_t i = 0; i < t.length; ++i) v = (v << 8) | t.content[i];
  out = v;
  return true;
}

bool printable_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view(" '()+,-./:=?").find(static_cast<char>(c)) != std::string_view::npos;
}

bool valid_utf8(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    std::size_t extra = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) { ++i; if (c < 0x20 && c != '\t') return false; continue; }
    if ((c & 0xE0) == 0xC0) { extra = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { extra = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { extra = 3; cp = c & 0x07; }
    else return false;
    if (i + extra >= n) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += extra + 1;
  }
  return true;
}

// One SecurityCategory value: SEQUENCE { tagName OID, attributes }.
bool read_category(const Tlv& cat, std::vector<LabelCategory>& out, std::size_t& values,
                   std::string* why) {
  if (!is_universal(cat, kTagSequence, true)) return fail(why, "category is not a SEQUENCE");
  TlvReader r(cat.content, cat.length);
  Tlv type, value;
  if (!r.next(type, why)) return false;
  if (type.cls != V_ASN1_CONTEXT_SPECIFIC || type.tag != 0 || type.constructed)
    return fail(why, "category type is not [0] OID");
  std::string type_oid;
  if (!read_oid(type, type_oid, why)) return false;
  if (!r.next(value, why)) return false;
  if (value.cls != V_ASN1_CONTEXT_SPECIFIC || value.tag != 1 || !value.constructed)
    return fail(why, "category value is not [1]");
  if (!r.at_end()) return fail(why, "extra data in category");

  TagKind kind;
  TagSyntax syntax;
  if (type_oid == kOidRestrictiveBitmap) { kind = TagKind::Restrictive; syntax = TagSyntax::Bitmap; }
  else if (type_oid == kOidPermissiveBitmap) { kind = TagKind::Permissive; syntax = TagSyntax::Bitmap; }
  else if (type_oid == kOidEnumeratedAttributes) { kind = TagKind::Unknown; syntax = TagSyntax::Enumerated; }
  else if (type_oid == kOidInformative) { kind = TagKind::Informative; syntax = TagSyntax::Any; }
  else return fail(why, "unsupported security category syntax");

  TlvReader vr(value.content, value.length);
  Tlv seq;
  if (!vr.next(seq, why)) return false;
  if (!vr.at_end()) return fail(why, "extra data in category value");
  if (!is_universal(seq, kTagSequence, true)) return fail(why, "category value is not a SEQUENCE");
  TlvReader sr(seq.content, seq.length);
  Tlv name, attrs;
  if (!sr.next(name, why)) return false;
  if (!is_universal(name, kTagOid, false)) return fail(why, "tag name is not an OID");
  std::string tag_set;
  if (!read_oid(name, tag_set, why)) return false;
  if (!sr.next(attrs, why)) return false;
  if (!sr.at_end()) return fail(why, "extra data after attributes");

  const std::size_t first_new = out.size();
  auto add = [&](long lacv) {
    if (++values > kMaxCategoryValues) return fail(why, "too many category values");
    LabelCategory c;
    c.tag_set_id = tag_set;
    c.kind = kind;
    c.syntax = syntax;
    c.lacv = lacv;
    out.push_back(std::move(c));
    return true;
  };
  if (is_universal(attrs, kTagBitString, false)) {
    // Bitmap (restrictive, permissive, or informative bitSetAttributes):
    // bit n (most significant bit first) set = category with LACV n.
    if (attrs.length == 0 || attrs.content[0] > 7 || (attrs.length == 1 && attrs.content[0] != 0))
      return fail(why, "bad BIT STRING");
    if (attrs.length - 1 > kMaxLacv / 8) return fail(why, "bitmap too long");
    if (syntax == TagSyntax::Enumerated) return fail(why, "bitmap in an enumerated category");
    if (syntax == TagSyntax::Any) syntax = TagSyntax::Bitmap;
    const std::size_t bits = (attrs.length - 1) * 8 - attrs.content[0];
    for (std::size_t b = 0; b < bits; ++b)
      if (attrs.content[1 + b / 8] & (0x80 >> (b % 8)))
        if (!add(static_cast<long>(b))) return false;
  } else if (is_universal(attrs, kTagSet, true)) {
    // Enumerated (or informative securityAttributes): SET OF INTEGER.
    if (syntax == TagSyntax::Bitmap) return fail(why, "attribute list in a bitmap category");
    if (syntax == TagSyntax::Any) syntax = TagSyntax::Enumerated;
    TlvReader ar(attrs.content, attrs.length);
    if (ar.at_end()) return fail(why, "empty attribute list");
    while (!ar.at_end()) {
      Tlv a;
      if (!ar.next(a, why)) return false;
      if (!is_universal(a, kTagInteger, false)) return fail(why, "attribute is not an INTEGER");
      long v = 0;
      if (!read_uint(a, v, why)) return false;
      if (v > kMaxLacv) return fail(why, "attribute value too large");
      if (!add(v)) return false;
    }
  } else {
    return fail(why, "unsupported category attributes");
  }
  for (std::size_t i = first_new; i < out.size(); ++i) out[i].syntax = syntax;   // informative: now known
  return true;
}

// ---- encoding ----

void put_length(Bytes& out, std::size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<std::uint8_t>(n));
    return;
  }
  std::uint8_t buf[sizeof(std::size_t)];
  int k = 0;
  while (n) {
    buf[k++] = static_cast<std::uint8_t>(n & 0xFF);
    n >>= 8;
  }
  out.push_back(static_cast<std::uint8_t>(0x80 | k));
  while (k) out.push_back(buf[--k]);
}

Bytes tlv(std::uint8_t tag, const Bytes& content) {
  Bytes out;
  out.push_back(tag);
  put_length(out, content.size());
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Bytes uint_content(long v) {
  Bytes b;
  do {
    b.insert(b.begin(), static_cast<std::uint8_t>(v & 0xFF));
    v >>= 8;
  } while (v);
  if (b[0] & 0x80) b.insert(b.begin(), 0);
  return b;
}

bool oid_content(const std::string& text, Bytes& out, std::string* why) {
  std::vector<std::uint64_t> arcs;
  std::size_t i = 0;
  while (i <= text.size()) {
    const std::size_t dot = std::min(text.find('.', i), text.size());
    if (dot == i || dot - i > 18) return fail(why, "bad OID text");
    std::uint64_t v = 0;
    for (std::size_t k = i; k < dot; ++k) {
      if (text[k] < '0' || text[k] > '9') return fail(why, "bad OID text");
      v = v * 10 + static_cast<std::uint64_t>(text[k] - '0');
    }
    arcs.push_back(v);
    i = dot + 1;
  }
  if (arcs.size() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40)) return fail(why, "bad OID text");
  out.clear();
  auto put_arc = [&](std::uint64_t v) {
    std::uint8_t buf[10];
    int k = 0;
    do {
      buf[k++] = static_cast<std::uint8_t>(v & 0x7F);
      v >>= 7;
    } while (v);
    while (k) {
      --k;
      out.push_back(static_cast<std::uint8_t>(buf[k] | (k ? 0x80 : 0)));
    }
  };
  put_arc(arcs[0] * 40 + arcs[1]);
  for (std::size_t a = 2; a < arcs.size(); ++a) put_arc(arcs[a]);
  return true;
}

// X.690 §11.6: SET OF components in ascending order of their encodings, the
// shorter padded with zero octets at its end.
bool der_set_less(const Bytes& a, const Bytes& b) {
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    if (x != y) return x < y;
  }
  return false;
}

Bytes der_set_of(std::vector<Bytes> items) {
  std::sort(items.begin(), items.end(), der_set_less);
  Bytes content;
  for (const auto& i : items) content.insert(content.end(), i.begin(), i.end());
  return tlv(0x31, content);
}

}  // namespace

std::optional<Label> decode_ess(const std::uint8_t* der, std::size_t len, std::string* why) {
  if (der == nullptr || len == 0) {
    fail(why, "empty label");
    return std::nullopt;
  }
  if (len > kMaxEssBytes) {
    fail(why, "label too large");
    return std::nullopt;
  }
  TlvReader top(der, len);
  Tlv set;
  if (!top.next(set, why)) return std::nullopt;
  if (!top.at_end()) {
    fail(why, "data after the label");
    return std::nullopt;
  }
  if (!is_universal(set, kTagSet, true)) {
    fail(why, "label is not a SET");
    return std::nullopt;
  }
  Label label;
  label.format = LabelFormat::Ess;
  bool have_policy = false, have_class = false, have_mark = false, have_cats = false;
  std::size_t values = 0;
  TlvReader r(set.content, set.length);
  while (!r.at_end()) {
    Tlv t;
    if (!r.next(t, why)) return std::nullopt;
    if (is_universal(t, kTagOid, false) && !have_policy) {
      if (!read_oid(t, label.policy_id, why)) return std::nullopt;
      have_policy = true;
    } else if (is_universal(t, kTagInteger, false) && !have_class) {
      long v = 0;
      if (!read_uint(t, v, why)) return std::nullopt;
      if (v > 256) {
        fail(why, "classification out of range");
        return std::nullopt;
      }
      label.classification = v;
      have_class = true;
    } else if (is_universal(t, kTagPrintable, false) && !have_mark) {
      if (t.length == 0 || t.length > 128 ||
          !std::all_of(t.content, t.content + t.length, printable_char)) {
        fail(why, "bad PrintableString privacy mark");
        return std::nullopt;
      }
      label.privacy_mark.assign(reinterpret_cast<const char*>(t.content), t.length);
      have_mark = true;
    } else if (is_universal(t, kTagUtf8, false) && !have_mark) {
      if (t.length == 0 || t.length > 1024 || !valid_utf8(t.content, t.length)) {
        fail(why, "bad UTF8String privacy mark");
        return std::nullopt;
      }
      label.privacy_mark.assign(reinterpret_cast<const char*>(t.content), t.length);
      have_mark = true;
    } else if (is_universal(t, kTagSet, true) && !have_cats) {
      TlvReader cr(t.content, t.length);
      std::size_t count = 0;
      if (cr.at_end()) {
        fail(why, "empty security-categories");
        return std::nullopt;
      }
      while (!cr.at_end()) {
        Tlv cat;
        if (!cr.next(cat, why)) return std::nullopt;
        if (++count > 64) {
          fail(why, "more than 64 security categories");
          return std::nullopt;
        }
        if (!read_category(cat, label.categories, values, why)) return std::nullopt;
      }
      have_cats = true;
    } else {
      fail(why, "unexpected or repeated component in ESSSecurityLabel");
      return std::nullopt;
    }
  }
  if (!have_policy) {
    fail(why, "no security-policy-identifier");
    return std::nullopt;
  }
  return label;
}

std::optional<Bytes> encode_ess(const Label& label, std::string* why) {
  Bytes oid;
  if (label.policy_id.empty()) {
    fail(why, "label has no policy OID");
    return std::nullopt;
  }
  if (!oid_content(label.policy_id, oid, why)) return std::nullopt;
  // Components in DER SET order (by tag number): INTEGER 2, OID 6,
  // UTF8String 12, SET 17, PrintableString 19.
  std::vector<std::pair<int, Bytes>> parts;
  if (label.classification) {
    if (*label.classification < 0 || *label.classification > 256) {
      fail(why, "classification out of range");
      return std::nullopt;
    }
    parts.emplace_back(kTagInteger, tlv(0x02, uint_content(*label.classification)));
  }
  parts.emplace_back(kTagOid, tlv(0x06, oid));
  if (!label.privacy_mark.empty()) {
    const bool printable = label.privacy_mark.size() <= 128 &&
                           std::all_of(label.privacy_mark.begin(), label.privacy_mark.end(),
                                       [](char c) { return printable_char(static_cast<unsigned char>(c)); });
    const Bytes text(label.privacy_mark.begin(), label.privacy_mark.end());
    if (printable) parts.emplace_back(kTagPrintable, tlv(0x13, text));
    else parts.emplace_back(kTagUtf8, tlv(0x0C, text));
  }
  if (!label.categories.empty()) {
    // One SecurityCategory per (tag set, kind, syntax), holding its LACVs.
    std::map<std::tuple<std::string, TagKind, TagSyntax>, std::vector<long>> groups;
    for (const auto& c : label.categories) {
      if (!c.lacv || c.tag_set_id.empty()) {
        fail(why, "category without tag-set OID or LACV");
        return std::nullopt;
      }
      groups[{c.tag_set_id, c.kind, c.syntax}].push_back(*c.lacv);
    }
    std::vector<Bytes> cats;
    for (auto& [key, lacvs] : groups) {
      const auto& [tag_set, kind, syntax] = key;
      std::sort(lacvs.begin(), lacvs.end());
      lacvs.erase(std::unique(lacvs.begin(), lacvs.end()), lacvs.end());
      const bool bitmap = syntax == TagSyntax::Bitmap && kind != TagKind::Unknown;
      std::string_view type_oid = kOidEnumeratedAttributes;
      if (kind == TagKind::Informative) type_oid = kOidInformative;
      else if (bitmap) type_oid = kind == TagKind::Restrictive ? kOidRestrictiveBitmap : kOidPermissiveBitmap;
      Bytes attrs;
      if (bitmap) {
        const long top = lacvs.back();
        if (top < 0 || top > kMaxLacv) {
          fail(why, "LACV out of range");
          return std::nullopt;
        }
        const std::size_t nbytes = static_cast<std::size_t>(top / 8 + 1);
        Bytes content(nbytes + 1, 0);
        content[0] = static_cast<std::uint8_t>(7 - top % 8);   // unused trailing bits
        for (long v : lacvs) content[1 + static_cast<std::size_t>(v / 8)] |= static_cast<std::uint8_t>(0x80 >> (v % 8));
        attrs = tlv(0x03, content);
      } else {
        std::vector<Bytes> ints;
        for (long v : lacvs) ints.push_back(tlv(0x02, uint_content(v)));
        attrs = der_set_of(std::move(ints));
      }
      Bytes tag_oid, type_content;
      if (!oid_content(tag_set, tag_oid, why) || !oid_content(std::string(type_oid), type_content, why))
        return std::nullopt;
      Bytes seq_content = tlv(0x06, tag_oid);
      seq_content.insert(seq_content.end(), attrs.begin(), attrs.end());
      Bytes value = tlv(0x30, seq_content);
      Bytes cat = tlv(0x80, type_content);            // type [0] IMPLICIT OID
      const Bytes wrapped = tlv(0xA1, value);         // value [1] EXPLICIT
      cat.insert(cat.end(), wrapped.begin(), wrapped.end());
      cats.push_back(tlv(0x30, cat));
    }
    parts.emplace_back(kTagSet, der_set_of(std::move(cats)));
  }
  std::stable_sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Bytes content;
  for (const auto& [tag, bytes] : parts) content.insert(content.end(), bytes.begin(), bytes.end());
  return tlv(0x31, content);
}

std::optional<Bytes> base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  Bytes out;
  std::uint32_t acc = 0;
  int bits = 0, chars = 0, pad = 0;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad) return std::nullopt;   // data after padding
    const int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    ++chars;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xFF));
    }
  }
  if (chars % 4 == 1 || pad > 2 || (pad && (chars + pad) % 4 != 0)) return std::nullopt;
  // Leftover bits must be zero (canonical encoding).
  if (bits && (acc & ((1u << bits) - 1))) return std::nullopt;
  return out;
}

std::string base64_encode(const Bytes& bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t(bytes[i]) << 16) | (std::uint32_t(bytes[i + 1]) << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const std::uint32_t v = std::uint32_t(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const std::uint32_t v = (std::uint32_t(bytes[i]) << 16) | (std::uint32_t(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

}  // namespace portcullis::policy::labels
