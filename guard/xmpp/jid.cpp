#include "guard/xmpp/jid.h"

#include <arpa/inet.h>

#include <algorithm>

namespace portcullis::xmpp {

namespace {

constexpr std::size_t kMaxPartBytes = 1023;   // RFC 7622 §3.3.1, §3.4.1
constexpr std::size_t kMaxDomainBytes = 253;  // DNS, in A-label form
constexpr std::size_t kMaxLabelBytes = 63;

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b < 0x80) len = 1;
    else if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b == 0xE0) len = 3, lo = 0xA0;
    else if (b == 0xED) len = 3, hi = 0x9F;
    else if (b >= 0xE1 && b <= 0xEF) len = 3;
    else if (b == 0xF0) len = 4, lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3) len = 4;
    else if (b == 0xF4) len = 4, hi = 0x8F;
    else return false;
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
    }
    i += len;
  }
  return true;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return b < 0x20 || b == 0x7F;
  });
}

// Localpart: RFC 7622 §3.3 forbids these ASCII characters (and spaces) even
// though PRECIS IdentifierClass would admit some of them.
bool valid_local(std::string_view s) {
  if (s.empty() || s.size() > kMaxPartBytes || !valid_utf8(s) || has_control(s)) return false;
  return s.find_first_of("\"&'/:<>@ \t") == std::string_view::npos;
}

// Resourcepart: any UTF-8 text without controls (FreeformClass, roughly).
bool valid_resource(std::string_view s) {
  return !s.empty() && s.size() <= kMaxPartBytes && valid_utf8(s) && !has_control(s);
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_ldh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

std::string Jid::bare() const { return local.empty() ? domain : local + "@" + domain; }

std::string Jid::full() const { return resource.empty() ? bare() : bare() + "/" + resource; }

std::optional<std::string> normalize_domain(std::string_view s) {
  if (s.empty()) return std::nullopt;
  // Bracketed IPv6 literal (RFC 7622 §3.2 / RFC 3986 IP-literal).
  if (s.front() == '[') {
    if (s.size() < 3 || s.back() != ']') return std::nullopt;
    const std::string inner(s.substr(1, s.size() - 2));
    in6_addr a6{};
    if (inet_pton(AF_INET6, inner.c_str(), &a6) != 1) return std::nullopt;
    return ascii_lower(s);
  }
  // One trailing dot (fully qualified form) is not part of the identity.
  if (s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > kMaxDomainBytes) return std::nullopt;
  std::string d = ascii_lower(s);
  // Digits and dots only: must be a dotted-quad IPv4 literal.
  if (d.find_first_not_of("0123456789.") == std::string::npos) {
    in_addr a4{};
    if (inet_pton(AF_INET, d.c_str(), &a4) != 1) return std::nullopt;
    return d;
  }
  std::size_t start = 0;
  while (start <= d.size()) {
    std::size_t dot = d.find('.', start);
    if (dot == std::string::npos) dot = d.size();
    const std::string_view label(d.data() + start, dot - start);
    if (label.empty() || label.size() > kMaxLabelBytes) return std::nullopt;
    if (!std::all_of(label.begin(), label.end(), is_ldh)) return std::nullopt;
    if (label.front() == '-' || label.back() == '-') return std::nullopt;
    start = dot + 1;
  }
  return d;
}

std::optional<Jid> parse_jid(std::string_view s) {
  if (s.empty()) return std::nullopt;
  Jid jid;
  // The first '/' starts the resource (which may itself contain '/' and '@').
  std::string_view rest = s;
  const std::size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    const std::string_view resource = rest.substr(slash + 1);
    if (!valid_resource(resource)) return std::nullopt;
    jid.resource = std::string(resource);
    rest = rest.substr(0, slash);
  }
  const std::size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    const std::string_view local = rest.substr(0, at);
    if (!valid_local(local)) return std::nullopt;
    jid.local = std::string(local);
    rest = rest.substr(at + 1);
  }
  auto domain = normalize_domain(rest);
  if (!domain) return std::nullopt;
  jid.domain = std::move(*domain);
  return jid;
}

bool domain_matches(std::string_view pattern, std::string_view domain) {
  const auto d = normalize_domain(domain);
  if (!d) return false;
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    const auto base = normalize_domain(pattern.substr(2));
    if (!base || base->front() == '[') return false;
    // Strict subdomain: at least one more label in front of ".base".
    return d->size() > base->size() + 1 && d->compare(d->size() - base->size(), base->size(), *base) == 0 &&
           (*d)[d->size() - base->size() - 1] == '.';
  }
  const auto p = normalize_domain(pattern);
  return p && *p == *d;
}

}  // namespace portcullis::xmpp
