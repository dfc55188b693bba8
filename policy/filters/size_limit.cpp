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

std::shared_ptr<const Filter> make_size_limit_filter(const FilterSpec& spec) {
  if (spec.node == nullptr) {
    return std::make_shared<const SizeLimitFilter>(spec.name, spec.policy.max_stanza_bytes);
  }
  // The XSD bounds the number (256 .. 16 MiB); this only converts it.
  const std::string& v = spec.node->required("max-bytes");
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size() || n == 0) {
    spec.node->fail("<size-limit> max-bytes: expected a positive number of bytes, got '" + v + "'");
  }
  return std::make_shared<const SizeLimitFilter>(spec.name, static_cast<std::size_t>(n));
}

}  // namespace portcullis::policy
