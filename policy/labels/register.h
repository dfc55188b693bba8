// Registers the security-label filters (XEP-0258 access control and label
// transformation) in a filter registry.
#pragma once

#include "policy/registry.h"

namespace portcullis::policy::labels {

void register_label_filters(FilterRegistry& registry);

}  // namespace portcullis::policy::labels
