#include "policy/labels/register.h"

namespace portcullis::policy::labels {

void register_label_filters(FilterRegistry&) {}

}  // namespace portcullis::policy::labels
