// Kernel-enforced confinement of the sandwich's processes.
//
// harden_process(): every portcullisd process (the supervisor and each child)
// calls it first thing. It sets
// PR_SET_NO_NEW_PRIVS (no exec can ever gain privilege again) and clears
// PR_SET_DUMPABLE, so no other process of the same uid (another child, a
// compromised guard program) can ptrace it, read its /proc/PID/mem or steal
// its fds through /proc/PID/fd.
//
// forbid_network_sockets(): the filter's seccomp filter (libseccomp). It is
// installed with TSYNC, so it applies to every thread the process has, and it
// is meant to be installed before any thread or child exists; everything the
// process starts later inherits it, across exec. What it refuses:
//   - socket(2) with any family but AF_UNIX (EPERM): no IP, netlink, packet
//     or other socket can be made; socketpair(2) stays (AF_UNIX only);
//   - io_uring (which can make sockets without socket(2)), ptrace,
//     process_vm_readv/writev, bpf, perf_event_open, kexec, init/finit_module,
//     add_key/keyctl/request_key (EPERM);
//   - any syscall of a foreign ABI: i386 (int 0x80) and x32 (the x32 bit on
//     x86-64 numbers) kill the process (SIGSYS), so the number checks above
//     cannot be sidestepped through another syscall table.
#pragma once

#include <string>

namespace portcullis::sandbox {

// Returns false and sets `error` if a prctl failed.
bool harden_process(std::string& error);

// Returns false and sets `error` if the kernel refused the filter.
bool forbid_network_sockets(std::string& error);

}  // namespace portcullis::sandbox
