// The registry of every built-in filter type.
#include "policy/content/register.h"
#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"
#include "policy/labels/register.h"
#include "policy/registry.h"
#include "policy/rooms/fmuc_filters.h"

namespace portcullis::policy {

FilterRegistry builtin_filters() {
  FilterRegistry r;
  r.add(std::string(kTypeSizeLimit), make_size_limit_filter);
  r.add(std::string(kTypeDomainPairAllow), make_domain_pair_allow_filter);
  labels::register_label_filters(r);
  content::register_content_filters(r);
  rooms::register_room_filters(r);
  return r;
}

}  // namespace portcullis::policy
