// The seccomp filter is irreversible, so each check runs in a forked child and
// reports through its exit status.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <functional>
#include <string>

#include "guard/sandbox/no_network.h"

namespace {

// Runs `body` in a child after forbid_network_sockets(); returns its exit code.
int in_sandboxed_child(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string err;
    if (!portcullis::sandbox::forbid_network_sockets(err)) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

int socket_errno(int family, int type) {
  int fd = socket(family, type, 0);
  if (fd >= 0) {
    close(fd);
    return 0;
  }
  return errno;
}

}  // namespace

TEST_CASE("after forbid_network_sockets no IP socket can be made", "[sandbox]") {
  CHECK(in_sandboxed_child([] { return socket_errno(AF_INET, SOCK_STREAM) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_INET6, SOCK_DGRAM) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_NETLINK, SOCK_RAW) == EPERM ? 0 : 1; }) == 0);
  CHECK(in_sandboxed_child([] { return socket_errno(AF_PACKET, SOCK_RAW) == EPERM ? 0 : 1; }) == 0);
}

TEST_CASE("AF_UNIX sockets and ordinary work still function", "[sandbox]") {
  CHECK(in_sandboxed_child([] { return socket_errno(AF_UNIX, SOCK_STREAM); }) == 0);
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
