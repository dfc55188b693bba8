// JID view (RFC 7622). Parsing checks structure, lengths and forbidden code
// points; it does not apply the full PRECIS profiles (no ICU on the appliance),
// so domains are compared after ASCII lower-casing only and any non-ASCII
// domain is treated as malformed unless it is already in IDNA A-label form.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis::xmpp {

struct Jid {
  std::string local;      // may be empty
  std::string domain;     // never empty, lower-case ASCII
  std::string resource;   // may be empty

  std::string bare() const;
  std::string full() const;
  bool operator==(const Jid&) const = default;
};

std::optional<Jid> parse_jid(std::string_view s);
// Lower-cases and validates a domain name (labels 1-63, total <= 253, LDH + '_').
std::optional<std::string> normalize_domain(std::string_view s);

// Domain pattern: "example.org" matches exactly; "*.example.org" matches any
// strict subdomain (not example.org itself).
bool domain_matches(std::string_view pattern, std::string_view domain);

}  // namespace portcullis::xmpp
