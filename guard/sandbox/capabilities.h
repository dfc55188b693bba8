// The supervisor's capabilities, cut to what restarting the children needs.
//
// In separated mode portcullisd starts as root only to start each child as
// its own user. Once the side firewall is installed and the archive directory
// made, limit_supervisor_capabilities() leaves it (effective, permitted and
// bounding set, via libcap-ng) exactly:
//   CAP_SETUID, CAP_SETGID  drop a restarted child to its user,
//   CAP_SYS_ADMIN           unshare a restarted filter's network namespace
//                           (not kept for a standalone node: it has no filter),
//   CAP_KILL                signal children that run as other users,
//   CAP_NET_ADMIN           delete the side firewall's table at stop.
// Root's file access (DAC override), chown, raw sockets, module loading and
// the rest are gone; children (non-root after their drop) have none at all.
// Shrinking the bounding set takes CAP_SETPCAP (then dropped as well): a
// systemd unit's CapabilityBoundingSet= must include it, or the supervisor
// refuses to run.
#pragma once

#include <cstdint>
#include <string>

namespace portcullis::sandbox {

// The capability mask the supervisor keeps (bit n = capability n).
// `netns`: children get a network namespace made (the appliance's filter).
std::uint64_t supervisor_capability_mask(bool netns = true);

// Capabilities this process holds (effective, permitted or bounding set)
// outside `keep`, as text ("CAP_CHOWN (bounding), ..."); empty when none.
std::string capabilities_beyond(std::uint64_t keep);

// Applies it, then reads back what the kernel holds; false with `error` set
// when the kernel refuses or anything outside the mask is left (libcap-ng
// reports success without CAP_SETPCAP yet leaves the bounding set unchanged).
bool limit_supervisor_capabilities(std::string& error, bool netns = true);

}  // namespace portcullis::sandbox
