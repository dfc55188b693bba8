// Process hardening for the filter: after it has set itself up, the filter
// process (and anything it starts, such as an external guard program) can no
// longer create network sockets. socket(2) with any address family other than
// AF_UNIX fails with EPERM (AF_UNIX stays for syslog's /dev/log). This turns
// "the filter has no network sockets" from a property of the code into a
// property the kernel enforces, so even a compromised filter cannot reach a
// network. Implemented with a seccomp-BPF filter and PR_SET_NO_NEW_PRIVS;
// irreversible for the process and inherited by its children.
#pragma once

#include <string>

namespace portcullis::sandbox {

// Returns false and sets `error` if the kernel refused the filter.
bool forbid_network_sockets(std::string& error);

}  // namespace portcullis::sandbox
