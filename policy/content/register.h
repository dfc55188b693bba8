// Registers the content and traffic filters (presence scrubbing, stanza kinds
// and sizes, payload stripping, MUC/1:1 blocking, users, peer requirements,
// keywords) in a filter registry.
#pragma once

#include "policy/registry.h"

namespace portcullis::policy::content {

void register_content_filters(FilterRegistry& registry);

}  // namespace portcullis::policy::content
