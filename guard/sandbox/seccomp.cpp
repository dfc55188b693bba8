#include "guard/sandbox/seccomp.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <seccomp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <memory>

#if defined(PORTCULLIS_ASAN)
#include <sanitizer/lsan_interface.h>
#endif

namespace portcullis::sandbox {

namespace {

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

std::string fail(const char* what, int rc) { return std::string(what) + ": " + std::strerror(-rc); }

// A filter with `default_action`, no_new_privs set, TSYNC, and any syscall of
// a foreign ABI killing the process. Null (and `error` set) on failure.
Ctx new_filter(std::uint32_t default_action, std::string& error) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    error = std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
    return nullptr;
  }
  Ctx ctx(seccomp_init(default_action));
  if (!ctx) {
    error = "seccomp_init failed";
    return nullptr;
  }
  int rc = 0;
  // Only the native ABI is in the filter (libseccomp adds it alone); a syscall
  // of any other ABI, x32 included, takes the bad-arch action.
  if ((rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0) {
    error = fail("seccomp bad-arch action", rc);
    return nullptr;
  }
  if ((rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
    error = fail("seccomp TSYNC", rc);
    return nullptr;
  }
  return ctx;
}

bool load(const Ctx& ctx, std::string& error) {
  if (int rc = seccomp_load(ctx.get()); rc != 0) {
    error = fail("seccomp_load", rc);
    return false;
  }
  return true;
}

// Adds rules, keeping the first failure.
struct Rules {
  scmp_filter_ctx ctx;
  std::string& error;
  bool ok = true;

  void add(std::uint32_t action, int nr, std::initializer_list<scmp_arg_cmp> args) {
    if (!ok) return;
    const int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(args.size()), args.begin());
    if (rc != 0) {
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      error = fail(("seccomp rule for " + std::string(name ? name : std::to_string(nr))).c_str(), rc);
      std::free(name);
      ok = false;
    }
  }
};

}  // namespace

bool harden_process(std::string& error) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    error = std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
    return false;
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    error = std::string("PR_SET_DUMPABLE: ") + std::strerror(errno);
    return false;
  }
  return true;
}

bool forbid_network_sockets(std::string& error) {
  Ctx ctx = new_filter(SCMP_ACT_ALLOW, error);
  if (!ctx) return false;
  int rc = 0;
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  // No socket at all: a new AF_UNIX socket could reach any socket file on the
  // host (a resolver, the system bus), which no network namespace stops. Only
  // AF_UNIX stream socket pairs (the guards' stdin and stdout), which are
  // connected to each other and cannot be pointed anywhere else.
  if ((rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(socket), 0)) != 0 ||
      (rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) != 0 ||
      // A datagram pair could still be aimed elsewhere (sendto with an address,
      // connect); a connected stream pair cannot.
      (rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(socketpair), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM))) != 0 ||
      (rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(socketpair), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_SEQPACKET))) != 0) {
    error = fail("seccomp rule for socket", rc);
    return false;
  }
  static const int kDenied[] = {
      SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
      SCMP_SYS(ptrace),         SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
      SCMP_SYS(bpf),            SCMP_SYS(perf_event_open),  SCMP_SYS(kexec_load),
      SCMP_SYS(kexec_file_load), SCMP_SYS(init_module),     SCMP_SYS(finit_module),
      SCMP_SYS(delete_module),  SCMP_SYS(add_key),          SCMP_SYS(keyctl),
      SCMP_SYS(request_key),    SCMP_SYS(userfaultfd),
  };
  for (int nr : kDenied) {
    if ((rc = seccomp_rule_add(ctx.get(), deny, nr, 0)) != 0) {
      error = fail("seccomp rule", rc);
      return false;
    }
  }
  return load(ctx, error);
}

bool install_edge_allowlist(const EdgeAllowlist& edge, std::string& error) {
  // syslog(3) formats its timestamp with localtime_r, which reads the time
  // zone (/etc/localtime) on its first call only: read it now, while files
  // may still be opened.
  ::tzset();
  Ctx ctx = new_filter(SCMP_ACT_KILL_PROCESS, error);
  if (!ctx) return false;
  // The kernel's audit log records every refusal (kills are logged anyway;
  // this adds the EACCES of open), so a missing entry shows up there.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_LOG, 1);
  if (rc != 0) {
    error = fail("seccomp log attribute", rc);
    return false;
  }
  Rules rules{ctx.get(), error};
  const auto allow = SCMP_ACT_ALLOW;

  // Syscalls allowed whatever their arguments. Each was seen in the edges
  // under the interop suite, or is a glibc path named beside it.
  static const int kAllowed[] = {
      // event loop and I/O on fds the edge already holds or accepts
      SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
      SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),   // writev: glibc's fatal messages
      SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
      SCMP_SYS(close), SCMP_SYS(shutdown),
      // sockets: outbound links and the listeners' accepted connections
      SCMP_SYS(connect), SCMP_SYS(accept4), SCMP_SYS(getsockopt),
      SCMP_SYS(getsockname), SCMP_SYS(getpeername),
      // memory (mmap and mprotect are below: never executable)
      SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
      // time: the vDSO answers these; the syscalls are its fallback
      SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
      SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
      // randomness (OpenSSL's DRBG reseeds, glibc), locks, scheduling
      SCMP_SYS(getrandom), SCMP_SYS(futex), SCMP_SYS(sched_yield),
      // glibc's qsort asks for the physical memory size (sysconf)
      SCMP_SYS(sysinfo),
      // signals and process end
      SCMP_SYS(rt_sigreturn), SCMP_SYS(restart_syscall), SCMP_SYS(rt_sigprocmask),
      SCMP_SYS(sigaltstack),   // AddressSanitizer asks before every noreturn call and throw
      SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(exit), SCMP_SYS(exit_group),
  };
  for (int nr : kAllowed) rules.add(allow, nr, {});

  // Never an executable mapping: no code can be written and then run.
  rules.add(allow, SCMP_SYS(mmap), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  rules.add(allow, SCMP_SYS(mprotect), {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  // abort() signals the process itself, nothing else.
  rules.add(allow, SCMP_SYS(tgkill), {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(::getpid()))});
  // fcntl: O_NONBLOCK and FD_CLOEXEC on a new link to the filter.
  for (int cmd : {F_GETFL, F_SETFL, F_GETFD, F_SETFD}) {
    rules.add(allow, SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(cmd))});
  }
  // ioctl SIOCOUTQ: whether the peer's TCP acknowledged all a link wrote
  // (delivery accounting without stream management, outbound_link.h).
  rules.add(allow, SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(SIOCOUTQ))});
  rules.add(allow, SCMP_SYS(setsockopt),
            {SCMP_A1(SCMP_CMP_EQ, IPPROTO_TCP), SCMP_A2(SCMP_CMP_EQ, TCP_NODELAY)});
  // socket(2): TCP over IPv4 or IPv6 only (the type may carry SOCK_NONBLOCK
  // and SOCK_CLOEXEC); with syslog, AF_UNIX datagrams for /dev/log.
  constexpr scmp_datum_t kTypeMask = 0xf;   // SOCK_TYPE_MASK
  for (int family : {AF_INET, AF_INET6}) {
    for (int protocol : {0, static_cast<int>(IPPROTO_TCP)}) {
      rules.add(allow, SCMP_SYS(socket),
                {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family)),
                 SCMP_A1(SCMP_CMP_MASKED_EQ, kTypeMask, SOCK_STREAM),
                 SCMP_A2(SCMP_CMP_EQ, static_cast<scmp_datum_t>(protocol))});
    }
  }
  if (edge.syslog) {
    rules.add(allow, SCMP_SYS(socket),
              {SCMP_A0(SCMP_CMP_EQ, AF_UNIX), SCMP_A1(SCMP_CMP_MASKED_EQ, kTypeMask, SOCK_DGRAM),
               SCMP_A2(SCMP_CMP_EQ, 0)});
  }
  // Files: refused, not killed (see the header).
  for (int nr : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2)}) rules.add(SCMP_ACT_ERRNO(EACCES), nr, {});
#if defined(PORTCULLIS_ASAN)
  // Sanitizer builds only (docs/design.md): what the sanitizer runtime needs
  // in a running edge and for its reports, so an edge is not killed for being
  // instrumented and a memory error or undefined behaviour is reported instead
  // of ending in SIGSYS: pipe2 (the runtime probes whether memory is readable
  // by writing it to a pipe; UBSan's vptr check does so on its cache misses,
  // outside any report), readlink of /proc/self/exe (the binary's name in a
  // report) and ioctl TCGETS (isatty, for colours). The runtime's opens of
  // /proc/self/maps and the binary fail with EACCES, and stat(2) (clang's
  // runtime looking for llvm-symbolizer on PATH) fails with ENOENT, so frames
  // stay unsymbolized (module+offset). Nothing that starts a process or a
  // thread: the symbolizer subprocess and LeakSanitizer's end-of-process check
  // (a tracer thread that ptraces the process) stay forbidden, see below.
  rules.add(allow, SCMP_SYS(readlink), {});
  rules.add(allow, SCMP_SYS(pipe2), {});
  rules.add(allow, SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, TCGETS)});
  rules.add(SCMP_ACT_ERRNO(ENOENT), SCMP_SYS(stat), {});
#endif
  if (!rules.ok) return false;
#if defined(PORTCULLIS_ASAN)
  // LeakSanitizer checks now, at the end of start-up, and not again at exit
  // (this call cancels the end-of-process check, which the list would kill).
  __lsan_do_leak_check();
#endif
  return load(ctx, error);
}

}  // namespace portcullis::sandbox
