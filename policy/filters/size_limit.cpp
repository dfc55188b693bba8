#include "policy/filters/size_limit.h"

#include "policy/registry.h"

namespace portcullis::policy {

SizeLimitFilter::SizeLimitFilter(std::string name, std::size_t max_bytes)
    : name_(std::move(name)), max_bytes_(max_bytes) {}

std::string_view SizeLimitFilter::type() const { return kTypeSizeLimit; }

Verdict SizeLimitFilter::evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const {
  const std::size_t size = ctx.wire_bytes != 0 ? ctx.wire_bytes : stanza.serialize().size();
  if (size <= max_bytes_) return Verdict::no_opinion();

  // The text names the limit only, never the content (it goes back to the sender).
  Verdict v = Verdict::reject(std::string(kRuleMaxStanzaBytes),
                              xmpp::StanzaErrorCondition::NotAllowed,
                              "stanza larger than " + std::to_string(max_bytes_) + " bytes");
  v.error->type = xmpp::StanzaErrorType::Modify;
  v.error->app = xmpp::Element(std::string(xmpp::kNsXmppErrors), "stanza-too-big");
  return v;
}

}  // namespace portcullis::policy
