// PeerRequirementsFilter (policy element <peer-requirements>): what the link a
// stanza arrived on must have given the peer's domain: TLS, and an accepted
// authentication method (SASL EXTERNAL with a certificate, XEP-0178, or
// dialback, XEP-0220). Refusing dialback is how a dialback-only peer is refused.
//
// Policy (rules in order; the first whose pattern matches the authenticated
// peer domain applies; "*" matches every peer):
//   <peer-requirements name="links" internal="pass">
//     <peer id="nato"     match="*.nato.example" require-tls="true" auth="sasl-external"/>
//     <peer id="partners" match="*"              require-tls="true" auth="sasl-external dialback"/>
//   </peer-requirements>
//
// Stanzas Portcullis generated itself (bounces, ctx.auth == Internal) have no
// peer link: with internal="pass" (the default) they pass this filter
// untouched (NoOpinion, note ("internal", "pass")); with internal="check" they
// are held to the matching rule like any other, and pass only if that rule's
// `auth` lists "internal" (and TLS is not required or was used). The FMUC
// traffic of the edges' hosted rooms (ctx.auth == Hosted: made inside the
// appliance, on no network link) is treated alike, with note ("hosted",
// "pass"), and under internal="check" passes only rules whose auth lists "hosted".
//
// Verdicts:
//  - ctx.auth == None (never valid for a stanza) -> Reject not-authorized,
//    rule "unauthenticated", whatever the rules say (fail closed);
//  - no TLS where required -> Reject(rule id, policy-violation), ("check", "tls");
//  - method not in `auth` -> Reject(rule id, not-authorized), ("check", "auth")
//    and ("auth", method);
//  - otherwise NoOpinion(rule id); a peer no rule matches -> NoOpinion() (this
//    filter states requirements, not which peers may connect: end the list
//    with a match="*" rule to cover everyone).
// shadow="true" on a <peer> records ("shadow", "<id> would reject: ...").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypePeerRequirements = "peer-requirements";
inline constexpr std::string_view kRuleUnauthenticated = "unauthenticated";

struct PeerRule {
  std::string id;
  DomainPattern match;
  bool require_tls = true;
  bool allow_sasl_external = false;
  bool allow_dialback = false;
  bool allow_internal = false;
  bool allow_hosted = false;     // FMUC frames of the edge's own rooms
  bool shadow = false;
};

struct PeerRequirementsConfig {
  bool internal_passes = true;
  std::vector<PeerRule> rules;
};

class PeerRequirementsFilter : public Filter {
 public:
  PeerRequirementsFilter(std::string name, PeerRequirementsConfig config);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypePeerRequirements; }

 private:
  std::string name_;
  PeerRequirementsConfig config_;
};

}  // namespace portcullis::policy::content
