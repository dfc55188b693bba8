// DomainPairAllowFilter: the first-version allow list of a direction.
//
// For each stanza:
//  1. 'from' and 'to' must both be present and valid JIDs, otherwise Reject
//     jid-malformed, rule "addressing";
//  2. the sender's domain must be the authenticated peer domain
//     (StanzaContext::peer_domain) or a subdomain of it, otherwise Reject
//     forbidden, rule "peer-mismatch" (the edge enforces this too; defence in
//     depth);
//  3. the rules are tried in order: the first whose from-pattern matches the
//     sender's domain and whose to-pattern matches the recipient's domain gives
//     Accept with its id. A matching SHADOW rule (DomainPairRule::shadow) does
//     not accept: it adds the note ("shadow-match", its id) and the search
//     goes on, so the officer sees what the rule would have done;
//  4. no rule matches: NoOpinion (with any shadow notes), so the pipeline's
//     default deny rejects (an empty rule list therefore denies everything).
#pragma once

#include <string>
#include <vector>

#include "guard/config/config.h"
#include "policy/filter.h"
#include "policy/registry.h"

namespace portcullis::policy {

inline constexpr std::string_view kRuleAddressing = "addressing";
inline constexpr std::string_view kRulePeerMismatch = "peer-mismatch";
inline constexpr std::string_view kNoteShadowMatch = "shadow-match";

class DomainPairAllowFilter : public Filter {
 public:
  // `rules` are already validated (patterns normalized) by the config loader.
  DomainPairAllowFilter(std::string name, std::vector<config::DomainPairRule> rules);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override;
  const std::vector<config::DomainPairRule>& rules() const { return rules_; }

 private:
  std::string name_;
  std::vector<config::DomainPairRule> rules_;
};

// The factory of kTypeDomainPairAllow. From the policy file (spec.node is
// <domain-pair-allow> with <allow id from to [shadow]/> children: patterns are
// normalized here, ids must be unique within the filter) or, without a node,
// from the legacy spec.policy.allow. Control plane: throws ConfigError at the
// offending <allow>.
std::shared_ptr<const Filter> make_domain_pair_allow_filter(const FilterSpec& spec);

}  // namespace portcullis::policy
