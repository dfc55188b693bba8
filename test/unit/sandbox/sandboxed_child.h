// Seccomp filters are irreversible, so each check runs in a forked child and
// reports through its exit status: the body's exit code, or 200 + the signal
// that killed it (200 + SIGSYS when the filter killed it). 100 means the
// filter could not be installed.
#pragma once

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <functional>

namespace portcullis::sandbox::testing {

constexpr int kKilledBySigsys = 200 + SIGSYS;

// `install` runs first in the child (false: exit 100), then `body`.
inline int in_child(const std::function<bool()>& install, const std::function<int()>& body) {
  std::fflush(nullptr);   // a child that ends in exit() must not print the test's buffered output again
  const pid_t pid = fork();
  if (pid == 0) {
    // Catch2's fatal-signal handlers would report in the child and change how
    // it dies: the child dies of the signal itself.
    for (int sig : {SIGSEGV, SIGABRT, SIGILL, SIGFPE, SIGBUS, SIGINT, SIGTERM}) signal(sig, SIG_DFL);
    if (!install()) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

// 0 if socket(2) made a socket (closed again), else its errno.
inline int socket_errno(int family, int type, int protocol = 0) {
  const int fd = socket(family, type, protocol);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  return errno;
}

#if defined(__x86_64__)
// getpid (20) through the i386 entry point (int 0x80).
inline int i386_getpid() {
  long ret = 20;
  asm volatile("int $0x80" : "+a"(ret) : : "memory");
  return ret > 0 ? 0 : 1;
}

// Whether this kernel runs i386 syscalls at all: kernels built without IA32
// emulation fault on int 0x80 (SIGSEGV) before seccomp sees it.
inline bool ia32_available() {
  const pid_t probe = fork();
  if (probe == 0) {
    signal(SIGSEGV, SIG_DFL);
    _exit(i386_getpid());
  }
  int status = 0;
  waitpid(probe, &status, 0);
  return WIFEXITED(status);
}
#endif

}  // namespace portcullis::sandbox::testing
