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

  for (const config::DomainPairRule& r : rules_) {
    if (xmpp::domain_matches(r.from_pattern, from->domain) &&
        xmpp::domain_matches(r.to_pattern, to->domain)) {
      return Verdict::accept(r.id);
    }
  }
  return Verdict::no_opinion();
}

}  // namespace portcullis::policy
