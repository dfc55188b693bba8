// The registry of every built-in filter type.
#include "policy/content/register.h"
#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"
#include "policy/labels/register.h"
#include "policy/registry.h"

namespace portcullis::policy {

FilterRegistry builtin_filters() {
  FilterRegistry r;
  r.add(std::string(kTypeSizeLimit), [](const FilterSpec& spec) -> std::shared_ptr<const Filter> {
    return std::make_shared<const SizeLimitFilter>(spec.name, spec.policy.max_stanza_bytes);
  });
  r.add(std::string(kTypeDomainPairAllow),
        [](const FilterSpec& spec) -> std::shared_ptr<const Filter> {
          return std::make_shared<const DomainPairAllowFilter>(spec.name, spec.policy.allow);
        });
  labels::register_label_filters(r);
  content::register_content_filters(r);
  return r;
}

}  // namespace portcullis::policy
