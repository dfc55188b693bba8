#include "guard/sandbox/capabilities.h"

#include <cap-ng.h>
#include <linux/capability.h>

namespace portcullis::sandbox {

namespace {

constexpr unsigned kKept[] = {CAP_SETUID, CAP_SETGID, CAP_SYS_ADMIN, CAP_KILL, CAP_NET_ADMIN};

}  // namespace

std::uint64_t supervisor_capability_mask() {
  std::uint64_t m = 0;
  for (unsigned c : kKept) m |= std::uint64_t{1} << c;
  return m;
}

bool limit_supervisor_capabilities(std::string& error) {
  capng_clear(CAPNG_SELECT_BOTH);
  for (unsigned c : kKept) {
    if (capng_update(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET),
                     c) != 0) {
      error = "cannot select capability " + std::to_string(c);
      return false;
    }
  }
  if (capng_apply(CAPNG_SELECT_BOTH) != 0) {
    error = "capng_apply refused (not root, or no CAP_SETPCAP)";
    return false;
  }
  return true;
}

}  // namespace portcullis::sandbox
