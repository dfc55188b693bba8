#include "policy/content/register.h"

namespace portcullis::policy::content {

void register_content_filters(FilterRegistry&) {}

}  // namespace portcullis::policy::content
