#include "guard/sandbox/capabilities.h"

#include <cap-ng.h>
#include <linux/capability.h>
#include <sys/prctl.h>

#include <cctype>
#include <vector>

namespace portcullis::sandbox {

namespace {

constexpr unsigned kKept[] = {CAP_SETUID, CAP_SETGID, CAP_SYS_ADMIN, CAP_KILL, CAP_NET_ADMIN};

// What is kept: all of kKept, less CAP_SYS_ADMIN for a node (no filter, no
// network namespace to make).
std::vector<unsigned> kept(bool netns) {
  std::vector<unsigned> v;
  for (unsigned c : kKept) {
    if (c != CAP_SYS_ADMIN || netns) v.push_back(c);
  }
  return v;
}

std::string cap_name(unsigned c) {
  const char* n = capng_capability_to_name(c);
  if (n == nullptr) return "capability " + std::to_string(c);
  std::string s = "CAP_";
  for (const char* p = n; *p != '\0'; ++p) s.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(*p))));
  return s;
}

}  // namespace

std::uint64_t supervisor_capability_mask(bool netns) {
  std::uint64_t m = 0;
  for (unsigned c : kept(netns)) m |= std::uint64_t{1} << c;
  return m;
}

std::string capabilities_beyond(std::uint64_t keep) {
  std::string extra;
  const auto add = [&extra](const std::string& what) { extra += (extra.empty() ? "" : ", ") + what; };
  capng_clear(CAPNG_SELECT_BOTH);
  if (capng_get_caps_process() != 0) return "cannot read this process's capabilities";
  // The kernel may know more capabilities than these headers: ask it for the bounding set.
  for (unsigned c = 0; c < 64; ++c) {
    const bool kept = (keep >> c) & 1U;
    const int in_bounding = ::prctl(PR_CAPBSET_READ, c, 0, 0, 0);
    if (in_bounding < 0) break;   // EINVAL: past the kernel's last capability
    if (kept) continue;
    if (in_bounding == 1) add(cap_name(c) + " (bounding)");
    if (c <= CAP_LAST_CAP && capng_have_capability(CAPNG_PERMITTED, c) != 0) add(cap_name(c) + " (permitted)");
    if (c <= CAP_LAST_CAP && capng_have_capability(CAPNG_EFFECTIVE, c) != 0) add(cap_name(c) + " (effective)");
  }
  return extra;
}

bool limit_supervisor_capabilities(std::string& error, bool netns) {
  const std::vector<unsigned> keep = kept(netns);
  // A capability to keep that this process does not hold cannot be kept.
  capng_clear(CAPNG_SELECT_BOTH);
  if (capng_get_caps_process() != 0) {
    error = "cannot read this process's capabilities";
    return false;
  }
  std::string missing;
  for (unsigned c : keep) {
    if (capng_have_capability(CAPNG_PERMITTED, c) == 0) missing += (missing.empty() ? "" : ", ") + cap_name(c);
  }
  if (!missing.empty()) {
    error = "it does not hold " + missing +
            ", which restarting children needs (under systemd: CapabilityBoundingSet= must include it)";
    return false;
  }
  capng_clear(CAPNG_SELECT_BOTH);
  for (unsigned c : keep) {
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
  // libcap-ng (0.8.3, Debian 12) returns success without CAP_SETPCAP but leaves
  // the bounding set as it was: check what the kernel now holds.
  const std::string extra = capabilities_beyond(supervisor_capability_mask(netns));
  if (!extra.empty()) {
    error = "still holds " + extra +
            " after dropping them (the bounding set needs CAP_SETPCAP to shrink: under systemd, "
            "CapabilityBoundingSet= must include it)";
    return false;
  }
  return true;
}

}  // namespace portcullis::sandbox
