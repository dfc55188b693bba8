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
//   - socket(2) of any family, AF_UNIX too (EPERM): no IP, netlink, packet
//     socket, and no AF_UNIX socket that could reach a socket file on the
//     host (a resolver, the system bus) around the empty network namespace;
//     socketpair(2) stays for AF_UNIX SOCK_STREAM only (a connected pair; a
//     datagram one could still be aimed at a socket file with sendto);
//   - io_uring (which can make sockets without socket(2)), ptrace,
//     process_vm_readv/writev, bpf, perf_event_open, kexec, init/finit_module,
//     add_key/keyctl/request_key (EPERM);
//   - any syscall of a foreign ABI: i386 (int 0x80) and x32 (the x32 bit on
//     x86-64 numbers) kill the process (SIGSYS), so the number checks above
//     cannot be sidestepped through another syscall table.
//
// install_edge_allowlist(): an edge's seccomp allow-list (libseccomp). Unlike
// the filter's deny list, everything not named is refused: any syscall not on
// the list, or on it with arguments it does not allow, kills the process
// (SIGSYS); so does any syscall of a foreign ABI. It is installed with TSYNC
// once start-up is over (config, certificate, key, CA and dialback secret
// loaded, listeners bound) and before the edge reads any byte from the network.
// What stays is what a single-threaded edge does from then on:
//   - its event loop: epoll_wait/epoll_pwait/epoll_ctl, read/write and the
//     send/recv family on fds it already has or accepts, fcntl for O_NONBLOCK
//     and FD_CLOEXEC only, shutdown, close;
//   - outbound S2S links: socket(2) for AF_INET/AF_INET6 SOCK_STREAM with
//     protocol 0 or TCP only (no raw, UDP, SCTP, MPTCP, netlink, packet,
//     vsock, TIPC, RDS...), connect, getsockopt, setsockopt TCP_NODELAY;
//     accept4 on its listeners; with `syslog`, also AF_UNIX SOCK_DGRAM
//     sockets (glibc reconnects to /dev/log when the log daemon restarts);
//   - memory (brk, mmap/mprotect without PROT_EXEC, munmap, mremap, madvise),
//     time (the vDSO's syscall fallbacks), getrandom, futex, sysinfo (glibc's
//     qsort, which OpenSSL's sk_sort uses), signal return and restart,
//     getpid/gettid, tgkill of itself (abort), exit and exit_group.
// open/openat/openat2 fail with EACCES rather than kill, so a lazy load
// nobody foresaw degrades like a missing file (and is logged by the kernel)
// instead of killing a side's edge; one a peer can reach before it has
// authenticated: iconv opening its gconv files for an encoding declaration. Everything else (execve, fork/clone,
// ptrace, bind/listen, mount, namespaces, bpf, keyctl, io_uring, ...) kills.
// The refusals are logged by the kernel's audit (SECCOMP_FILTER_FLAG_LOG).
// Before it loads the filter it makes glibc read the time zone (tzset), which
// syslog(3) would otherwise open /etc/localtime for on its first line.
// Sanitizer builds (PORTCULLIS_ASAN below) add the few calls a sanitizer
// report needs and run LeakSanitizer's check as the filter goes on, not at exit.
#pragma once

#include <string>

// AddressSanitizer builds (PORTCULLIS_SANITIZE, PORTCULLIS_FUZZ), in which the
// edge's allow-list keeps what the sanitizers' reports need (seccomp.cpp,
// docs/design.md). GCC defines __SANITIZE_ADDRESS__, clang answers __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define PORTCULLIS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PORTCULLIS_ASAN 1
#endif
#endif

namespace portcullis::sandbox {

// Returns false and sets `error` if a prctl failed.
bool harden_process(std::string& error);

// Returns false and sets `error` if the kernel refused the filter.
bool forbid_network_sockets(std::string& error);

// What the edge's allow-list needs to know about the edge.
struct EdgeAllowlist {
  bool syslog = false;   // logs go to syslog(3): AF_UNIX datagram sockets stay
};

// Returns false and sets `error` if the filter could not be built or the
// kernel refused it; the caller must then exit (fail closed).
bool install_edge_allowlist(const EdgeAllowlist& edge, std::string& error);

}  // namespace portcullis::sandbox
