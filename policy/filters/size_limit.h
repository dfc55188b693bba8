// SizeLimitFilter: rejects a stanza whose serialized size exceeds the
// direction's limit (Prosody's s2s_stanza_size_limit, per direction here).
//
// The size is StanzaContext::wire_bytes (the framed bytes); when that is 0
// (unknown) the filter serializes the stanza to measure it. Over the limit:
// Reject not-allowed (type modify) with the application condition
// <stanza-too-big xmlns='urn:xmpp:errors'/>, rule "max-stanza-bytes".
// Otherwise NoOpinion.
#pragma once

#include <cstddef>
#include <string>

#include "policy/filter.h"
#include "policy/registry.h"

namespace portcullis::policy {

inline constexpr std::string_view kRuleMaxStanzaBytes = "max-stanza-bytes";

class SizeLimitFilter : public Filter {
 public:
  SizeLimitFilter(std::string name, std::size_t max_bytes);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override;
  std::size_t max_bytes() const { return max_bytes_; }

 private:
  std::string name_;
  std::size_t max_bytes_;
};

// The factory of kTypeSizeLimit. From the policy file (spec.node is
// <size-limit max-bytes="N"/>, validated by the XSD) or, without a node, from
// the legacy spec.policy.max_stanza_bytes. Control plane: throws ConfigError.
std::shared_ptr<const Filter> make_size_limit_filter(const FilterSpec& spec);

}  // namespace portcullis::policy
