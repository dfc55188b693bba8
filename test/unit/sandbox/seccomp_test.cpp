// The filter's deny list (forbid_network_sockets) and harden_process. Each
// check runs in a forked child (sandboxed_child.h).
#include <pthread.h>
#include <sys/mount.h>
#include <sys/un.h>
#include <sched.h>
#include <syslog.h>
#include <cstring>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <functional>
#include <signal.h>
#include <string>

#include "guard/sandbox/seccomp.h"
#include "test/unit/needs_root.h"
#include "test/unit/sandbox/sandboxed_child.h"

using portcullis::sandbox::testing::in_child;
using portcullis::sandbox::testing::socket_errno;

namespace {

// Runs `body` in a child after forbid_network_sockets(); returns its exit code.
int in_sandboxed_child(const std::function<int()>& body) {
  return in_child(
      [] {
        std::string err;
        return portcullis::sandbox::forbid_network_sockets(err);
      },
      body);
}

}  // namespace

TEST_CASE("after forbid_network_sockets no IP socket can be made", "[sandbox]") {
  CHECK(in_sandboxed_child([] { return socket_errno(AF_INET, SOCK_STREAM) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_INET6, SOCK_DGRAM) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_NETLINK, SOCK_RAW) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_PACKET, SOCK_RAW) == EPERM ? 0 : 1; }) == 0);
}

TEST_CASE("no AF_UNIX socket either (it could reach host socket files); socket pairs and ordinary work function",
          "[sandbox]") {
  CHECK(in_sandboxed_child([] { return socket_errno(AF_UNIX, SOCK_STREAM) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_UNIX, SOCK_DGRAM) == EPERM ? 0 : 1; }) == 0);
  CHECK(socket_errno(AF_UNIX, SOCK_DGRAM) == 0);   // outside the filter it works: the refusal is the filter's
  // Datagram pairs could be aimed at a socket file (sendto with an address): refused too.
  CHECK(in_sandboxed_child([] {
          int sv[2];
          return socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0 && errno == EPERM ? 0 : 1;
        }) == 0);
  CHECK(in_sandboxed_child([] {
          int sv[2];
          return socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0 && errno == EPERM ? 0 : 1;
        }) == 0);
  CHECK(in_sandboxed_child([] {
          int sv[2];
          if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
          if (write(sv[0], "x", 1) != 1) return 2;
          char c = 0;
          return read(sv[1], &c, 1) == 1 && c == 'x' ? 0 : 3;
        }) == 0);
}

TEST_CASE("the restriction is inherited by children and across exec", "[sandbox]") {
  CHECK(in_sandboxed_child([] {
          pid_t p = fork();
          if (p == 0) _exit(socket_errno(AF_INET, SOCK_STREAM) == EPERM ? 0 : 1);
          int st = 0;
          waitpid(p, &st, 0);
          return WIFEXITED(st) ? WEXITSTATUS(st) : 9;
        }) == 0);
  // An exec'd program (bash opening /dev/tcp on loopback) gets EPERM from socket(2).
  CHECK(in_sandboxed_child([] {
          int pipefd[2];
          if (pipe(pipefd) != 0) return 1;
          pid_t p = fork();
          if (p == 0) {
            dup2(pipefd[1], 2);
            execl("/bin/bash", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9", static_cast<char*>(nullptr));
            _exit(127);
          }
          close(pipefd[1]);
          std::string err;
          char buf[256];
          ssize_t n;
          while ((n = read(pipefd[0], buf, sizeof buf)) > 0) err.append(buf, static_cast<std::size_t>(n));
          int st = 0;
          waitpid(p, &st, 0);
          return err.find("Operation not permitted") != std::string::npos ? 0 : 2;
        }) == 0);
}

#if defined(__x86_64__)
TEST_CASE("x32 and i386 system calls kill the process instead of bypassing the filter", "[sandbox]") {
  // getpid through the x32 table (the x32 bit set on an x86-64 syscall number).
  CHECK(in_sandboxed_child([] { return static_cast<int>(syscall(0x40000000 | SYS_getpid) > 0 ? 0 : 1); }) ==
        200 + SIGSYS);
  // getpid (20) through the i386 entry point. Kernels built without IA32
  // emulation fault on int 0x80 (SIGSEGV) before seccomp sees it; where it is
  // available, the filter must kill the caller. Either way the call never runs.
  using portcullis::sandbox::testing::i386_getpid;
  const int under_filter = in_sandboxed_child(i386_getpid);
  if (portcullis::sandbox::testing::ia32_available()) {
    CHECK(under_filter == 200 + SIGSYS);
  } else {
    CHECK(under_filter == 200 + SIGSEGV);
  }
  // Without the filter the same x32 call is just an ordinary failure, not a kill.
  pid_t pid = fork();
  if (pid == 0) {
    syscall(0x40000000 | SYS_getpid);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
}
#endif

namespace {

int seccomp_mode_of_task(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Seccomp:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

}  // namespace

TEST_CASE("the filter covers threads that existed before it was installed (TSYNC)", "[sandbox]") {
  pid_t pid = fork();
  if (pid == 0) {
    static pid_t tid = 0;
    static int socket_result = 0;
    static int go = 0;
    pthread_t t;
    auto body = [](void*) -> void* {
      tid = static_cast<pid_t>(syscall(SYS_gettid));
      while (__atomic_load_n(&go, __ATOMIC_SEQ_CST) == 0) usleep(1000);
      socket_result = socket_errno(AF_INET, SOCK_STREAM);
      return nullptr;
    };
    if (pthread_create(&t, nullptr, body, nullptr) != 0) _exit(10);
    while (__atomic_load_n(&tid, __ATOMIC_SEQ_CST) == 0) usleep(1000);
    std::string err;
    if (!portcullis::sandbox::forbid_network_sockets(err)) _exit(11);
    if (seccomp_mode_of_task(tid) != 2) _exit(12);
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, nullptr);
    _exit(socket_result == EPERM ? 0 : 13);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("harden_process: no new privileges, not dumpable", "[sandbox]") {
  pid_t pid = fork();
  if (pid == 0) {
    std::string err;
    if (!portcullis::sandbox::harden_process(err)) _exit(10);
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) _exit(11);
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) _exit(12);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("io_uring and ptrace are refused under the filter", "[sandbox]") {
  CHECK(in_sandboxed_child([] { return syscall(SYS_io_uring_setup, 1, nullptr) < 0 && errno == EPERM ? 0 : 1; }) ==
        0);
  CHECK(in_sandboxed_child([] { return syscall(SYS_ptrace, 0 /*TRACEME*/, 0, 0, 0) < 0 && errno == EPERM ? 0 : 1; }) ==
        0);
}

TEST_CASE("syslog connected before the filter goes on still delivers; connected after, it cannot", "[sandbox]") {
  PORTCULLIS_NEEDS_ROOT();
  // In a child with a private /dev whose /dev/log is our own datagram socket.
  auto run = [](bool connect_first) {
    const pid_t pid = fork();
    if (pid == 0) {
      if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          mount("tmpfs", "/dev", "tmpfs", 0, "size=64k") != 0) {
        _exit(10);
      }
      const int sink = socket(AF_UNIX, SOCK_DGRAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strcpy(a.sun_path, "/dev/log");
      if (sink < 0 || bind(sink, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) _exit(11);
      if (connect_first) openlog("portcullis-test", LOG_NDELAY, LOG_AUTHPRIV);
      std::string err;
      if (!portcullis::sandbox::forbid_network_sockets(err)) _exit(12);
      syslog(LOG_AUTHPRIV | LOG_NOTICE, "summary line");
      char buf[512];
      const ssize_t n = recv(sink, buf, sizeof buf - 1, MSG_DONTWAIT);
      if (n <= 0) _exit(20);   // nothing arrived
      buf[n] = 0;
      _exit(std::strstr(buf, "summary line") != nullptr ? 0 : 21);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
  };
  CHECK(run(true) == 0);
  CHECK(run(false) == 20);
}
