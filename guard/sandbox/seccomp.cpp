#include "guard/sandbox/seccomp.h"

#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace portcullis::sandbox {

namespace {

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

std::string fail(const char* what, int rc) { return std::string(what) + ": " + std::strerror(-rc); }

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
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    error = std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
    return false;
  }
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) {
    error = "seccomp_init failed";
    return false;
  }
  int rc = 0;
  // Only the native ABI is in the filter (libseccomp adds it alone); a syscall
  // of any other ABI, x32 included, takes the bad-arch action.
  if ((rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0) {
    error = fail("seccomp bad-arch action", rc);
    return false;
  }
  if ((rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
    error = fail("seccomp TSYNC", rc);
    return false;
  }
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  // Sockets and socket pairs of any family but AF_UNIX.
  for (int nr : {SCMP_SYS(socket), SCMP_SYS(socketpair)}) {
    if ((rc = seccomp_rule_add(ctx.get(), deny, nr, 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) != 0) {
      error = fail("seccomp rule for socket", rc);
      return false;
    }
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
  if ((rc = seccomp_load(ctx.get())) != 0) {
    error = fail("seccomp_load", rc);
    return false;
  }
  return true;
}

}  // namespace portcullis::sandbox
