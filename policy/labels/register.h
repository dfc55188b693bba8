// Registers the security-label filters (XEP-0258 access control and label
// transformation) in a filter registry, under the type names "label-access"
// (LabelAccessFilter, label_access.h) and "label-transform"
// (LabelTransformFilter, label_transform.h). Their factories read the
// filter's element (FilterSpec::node) and load the SPIF files it names,
// relative to the policy file; they throw config::ConfigError with the
// position of the offending element.
#pragma once

#include "policy/registry.h"

namespace portcullis::policy::labels {

void register_label_filters(FilterRegistry& registry);

}  // namespace portcullis::policy::labels
