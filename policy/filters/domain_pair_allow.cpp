#include "policy/filters/domain_pair_allow.h"

#include "guard/xmpp/jid.h"
#include "policy/registry.h"

namespace portcullis::policy {

DomainPairAllowFilter::DomainPairAllowFilter(std::string name,
                                             std::vector<config::DomainPairRule> rules)
    : name_(std::move(name)), rules_(std::move(rules)) {}

std::string_view DomainPairAllowFilter::type() const { return kTypeDomainPairAllow; }

Verdict DomainPairAllowFilter::evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const {
  // Error texts name the problem, never the offending addresses: they are
  // peer-controlled content and go back to the sender.
  const std::string* from_attr = stanza.attr("from");
  const std::string* to_attr = stanza.attr("to");
  std::optional<xmpp::Jid> from = from_attr ? xmpp::parse_jid(*from_attr) : std::nullopt;
  std::optional<xmpp::Jid> to = to_attr ? xmpp::parse_jid(*to_attr) : std::nullopt;
  if (!from || !to) {
    return Verdict::reject(std::string(kRuleAddressing), xmpp::StanzaErrorCondition::JidMalformed,
                           "missing or malformed 'from' or 'to' address");
  }

  // The sender must belong to the peer that authenticated the stream.
  const std::string& peer = ctx.peer_domain;
  const bool from_peer =
      !peer.empty() && (xmpp::domain_matches(peer, from->domain) ||
                        xmpp::domain_matches("*." + peer, from->domain));
  if (!from_peer) {
    return Verdict::reject(std::string(kRulePeerMismatch), xmpp::StanzaErrorCondition::Forbidden,
                           "sender domain does not belong to the authenticated peer");
  }

  std::vector<std::pair<std::string, std::string>> shadow_notes;
  for (const config::DomainPairRule& r : rules_) {
    if (xmpp::domain_matches(r.from_pattern, from->domain) &&
        xmpp::domain_matches(r.to_pattern, to->domain)) {
      if (r.shadow) {
        shadow_notes.emplace_back(std::string(kNoteShadowMatch), r.id);
        continue;
      }
      Verdict v = Verdict::accept(r.id);
      v.notes = std::move(shadow_notes);
      return v;
    }
  }
  Verdict v = Verdict::no_opinion();
  v.notes = std::move(shadow_notes);
  return v;
}

namespace {

// "example.org" or "*.example.org", lower-cased; fails at the <allow>.
std::string domain_pattern(const PolicyNode& allow, std::string_view attr) {
  const std::string& v = allow.required(attr);
  std::string_view rest = v;
  const bool wildcard = rest.starts_with("*.");
  if (wildcard) rest.remove_prefix(2);
  auto d = xmpp::normalize_domain(rest);
  if (!d) {
    allow.fail("<allow> " + std::string(attr) +
               ": expected a domain pattern ('example.org' or '*.example.org'), got '" + v + "'");
  }
  return wildcard ? "*." + *d : *d;
}

}  // namespace

std::shared_ptr<const Filter> make_domain_pair_allow_filter(const FilterSpec& spec) {
  if (spec.node == nullptr) {
    return std::make_shared<const DomainPairAllowFilter>(spec.name, spec.policy.allow);
  }
  std::vector<config::DomainPairRule> rules;
  for (const PolicyNode* allow : spec.node->children_named("allow")) {
    config::DomainPairRule r;
    r.id = allow->required("id");
    for (const auto& earlier : rules) {
      if (earlier.id == r.id) {
        allow->fail("<allow> id: expected a rule id unique in <domain-pair-allow name='" +
                    spec.name + "'>, got '" + r.id + "' a second time");
      }
    }
    r.from_pattern = domain_pattern(*allow, "from");
    r.to_pattern = domain_pattern(*allow, "to");
    const std::string shadow = allow->attr_or("shadow", "false");
    r.shadow = shadow == "true" || shadow == "1";
    rules.push_back(std::move(r));
  }
  return std::make_shared<const DomainPairAllowFilter>(spec.name, std::move(rules));
}

}  // namespace portcullis::policy
