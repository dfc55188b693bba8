// The side firewall, installed for real in a network namespace of the test's
// own (so the host's rule set is untouched): each check runs in a forked child
// that unshares its network, brings up lo (which then holds all of 127/8),
// installs the table for two made-up edge uids and probes it with sockets owned
// by those uids. Root only; under CI not being root fails.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

#include "guard/supervisor/side_firewall.h"
#include "test/unit/needs_root.h"

using portcullis::supervisor::FirewallSide;
using portcullis::supervisor::SideFirewall;

namespace {

constexpr std::uint32_t kLowUid = 64101, kHighUid = 64102, kFilterUid = 64103;
constexpr int kListenPort = 15269, kPeerPort = 15270, kOtherPort = 15271;
const char* const kListen = "127.0.0.4";    // edge(low)'s listener
const char* const kLowPeer = "127.0.0.2";   // a low-side server
const char* const kHighHost = "127.0.0.3";  // a high-side server

sockaddr_in addr(const char* ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

int listener(const char* ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in a = addr(ip, port);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 8) != 0) {
    throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
  }
  return fd;
}

// 0 when a connection from `from` (any address if null) to ip:port completes
// and carries a byte back from the accepting side, else the errno.
int connect_and_hear(const char* from, const char* ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (from != nullptr) {
    const sockaddr_in b = addr(from, 0);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&b), sizeof b) != 0) return errno;
  }
  const sockaddr_in a = addr(ip, port);
  int rc = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    rc = errno;
  } else {
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    rc = n == 1 ? 0 : (n == 0 ? ECONNRESET : errno);
  }
  ::close(fd);
  return rc;
}

// A forked server, killed when the check ends however it ends.
struct Server {
  pid_t pid;
  ~Server() {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
};

// Listens on ip:port as `uid` (so the socket is that uid's, as the edge's
// listener is the edge's), accepts connections and writes one byte on each,
// until killed. Returns once it listens.
Server serve_as(std::uint32_t uid, const char* ip, int port) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(99);
    const int listen_fd = listener(ip, port);
    (void)!::write(ready[1], "r", 1);
    for (;;) {
      const int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      (void)!::write(c, "x", 1);
      ::close(c);
    }
  }
  ::close(ready[1]);
  char r = 0;
  const bool up = ::read(ready[0], &r, 1) == 1;
  ::close(ready[0]);
  Server server{pid};
  if (!up) throw std::runtime_error(std::string("no server on ") + ip);
  return server;
}

// Runs `body` as `uid` in a child; its result is the child's exit status.
int as_uid(std::uint32_t uid, const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(99);
    ::_exit(body());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

// Runs `body` in a child with a network namespace of its own (lo up).
int in_own_netns(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) ::_exit(97);
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) ::_exit(98);
    ::close(s);
    int rc = 0;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      rc = 96;
    }
    ::_exit(rc);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

FirewallSide low_side() {
  FirewallSide low;
  low.name = "low";
  low.uid = kLowUid;
  low.peers.push_back({kLowPeer, kPeerPort});
  low.listen.push_back({kListen, kListenPort, {kLowPeer}, ""});
  return low;
}

FirewallSide high_side() {
  FirewallSide high;
  high.name = "high";
  high.uid = kHighUid;
  high.peers.push_back({kHighHost, kPeerPort});
  high.listen.push_back({"127.0.0.6", kListenPort, {kHighHost}, ""});
  return high;
}

std::string lock_dir() {
  const std::string d = std::filesystem::temp_directory_path().string() + "/portcullis-fw-test-" +
                        std::to_string(::getpid());
  std::filesystem::create_directories(d);
  return d;
}

// Runs `body` in a network namespace of its own with a lock directory for
// the firewall's lock; its result is the body's (0: every probe as expected).
int in_firewall_netns(const std::function<int(const std::string& locks)>& body) {
  const std::string locks = lock_dir();
  const int rc = in_own_netns([&] { return body(locks); });
  std::filesystem::remove_all(locks);
  return rc;
}

}  // namespace

TEST_CASE("side firewall: a listener admits its own side's hosts and refuses the other side's", "[firewall]") {
  PORTCULLIS_NEEDS_ROOT();
  CHECK(in_firewall_netns([](const std::string& locks) {
          SideFirewall fw(low_side(), high_side(), kFilterUid, "test", locks);
          int fails = 0;
          {
            // edge(low)'s listener: a low-side server completes the connection
            // and hears the edge answer (its replies pass the reply rule); a
            // high-side host is reset.
            const Server edge = serve_as(kLowUid, kListen, kListenPort);
            if (connect_and_hear(kLowPeer, kListen, kListenPort) != 0) fails |= 1;
            if (connect_and_hear(kHighHost, kListen, kListenPort) != ECONNREFUSED) fails |= 2;
          }
          {
            // Whoever listens there, the input hook alone keeps the high host
            // out (the edge's output rules do not apply to another uid).
            const Server other = serve_as(64199, kListen, kListenPort);
            if (connect_and_hear(kLowPeer, kListen, kListenPort) != 0) fails |= 4;
            if (connect_and_hear(kHighHost, kListen, kListenPort) != ECONNREFUSED) fails |= 8;
          }
          return fails;
        }) == 0);
}

TEST_CASE("side firewall: an edge connects to its own peers only", "[firewall]") {
  PORTCULLIS_NEEDS_ROOT();
  CHECK(in_firewall_netns([](const std::string& locks) {
          const Server s1 = serve_as(0, kLowPeer, kPeerPort), s2 = serve_as(0, kHighHost, kPeerPort);
          SideFirewall fw(low_side(), high_side(), kFilterUid, "test", locks);
          int fails = 0;
          if (as_uid(kLowUid, [] { return connect_and_hear(nullptr, kLowPeer, kPeerPort); }) != 0) fails |= 1;
          if (as_uid(kLowUid, [] { return connect_and_hear(nullptr, kHighHost, kPeerPort); }) != ECONNREFUSED) {
            fails |= 2;
          }
          // Even from its listener's own address and port (what a simultaneous
          // open would need), edge(low)'s SYN to a high host is refused.
          if (as_uid(kLowUid, [] {
                const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                const int one = 1;
                ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                timeval tv{2, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                const sockaddr_in b = addr(kListen, kListenPort);
                if (::bind(fd, reinterpret_cast<const sockaddr*>(&b), sizeof b) != 0) return 90;
                const sockaddr_in a = addr(kHighHost, kPeerPort);
                return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
              }) != ECONNREFUSED) {
            fails |= 4;
          }
          // edge(high) is the mirror image; the filter's uid reaches nothing.
          if (as_uid(kHighUid, [] { return connect_and_hear(nullptr, kHighHost, kPeerPort); }) != 0) fails |= 8;
          if (as_uid(kHighUid, [] { return connect_and_hear(nullptr, kLowPeer, kPeerPort); }) != ECONNREFUSED) {
            fails |= 16;
          }
          if (as_uid(kFilterUid, [] { return connect_and_hear(nullptr, kLowPeer, kPeerPort); }) != ECONNREFUSED) {
            fails |= 32;
          }
          // The same connects from an unrelated uid succeed: the refusals are the rules' doing.
          if (as_uid(64199, [] { return connect_and_hear(nullptr, kHighHost, kPeerPort); }) != 0) fails |= 64;
          return fails;
        }) == 0);
}

TEST_CASE("side firewall: a listener the edge opens on some other port serves no one", "[firewall]") {
  PORTCULLIS_NEEDS_ROOT();
  CHECK(in_firewall_netns([](const std::string& locks) {
          // A compromised edge(low) listens where the config says nothing: its
          // answers are not replies on a configured listener's connection.
          SideFirewall fw(low_side(), high_side(), kFilterUid, "test", locks);
          const Server server = serve_as(kLowUid, kListen, kOtherPort);
          const int high = connect_and_hear(kHighHost, kListen, kOtherPort);
          const int low = connect_and_hear(kLowPeer, kListen, kOtherPort);
          return (high == 0 ? 1 : 0) | (low == 0 ? 2 : 0);
        }) == 0);
}

TEST_CASE("side firewall: a second instance with the same edge users is refused and leaves the first's table",
          "[firewall]") {
  PORTCULLIS_NEEDS_ROOT();
  CHECK(in_firewall_netns([](const std::string& locks) {
          const Server server = serve_as(0, kHighHost, kPeerPort);
          SideFirewall first(low_side(), high_side(), kFilterUid, "first", locks);
          std::string why;
          try {
            SideFirewall second(low_side(), high_side(), kFilterUid, "second", locks);
          } catch (const std::runtime_error& e) {
            why = e.what();
          }
          if (why.find("another portcullisd (pid " + std::to_string(::getpid()) + ")") == std::string::npos) return 1;
          // The first table still stands: its rules still refuse edge(low), and
          // only edge(low) (the high host does answer).
          int fails = 0;
          if (as_uid(kLowUid, [] { return connect_and_hear(nullptr, kHighHost, kPeerPort); }) != ECONNREFUSED) {
            fails |= 2;
          }
          if (as_uid(64199, [] { return connect_and_hear(nullptr, kHighHost, kPeerPort); }) != 0) fails |= 4;
          return fails;
        }) == 0);
}

TEST_CASE("node firewall: a standalone node reaches its peers only and admits only them", "[firewall][node]") {
  PORTCULLIS_NEEDS_ROOT();
  CHECK(portcullis::supervisor::node_firewall_table(kLowUid) == "portcullis_node_u64101");
  const std::string script = portcullis::supervisor::node_firewall_script(low_side(), "test");
  CHECK(script.find("meta skuid 64101 jump edge_low") != std::string::npos);
  CHECK(script.find("64102") == std::string::npos);   // nobody else's rules
  CHECK(in_firewall_netns([](const std::string& locks) {
          const Server s1 = serve_as(0, kLowPeer, kPeerPort), s2 = serve_as(0, kHighHost, kPeerPort);
          SideFirewall fw(low_side(), "test", locks);
          int fails = 0;
          if (fw.table() != "portcullis_node_u64101") fails |= 1;
          if (as_uid(kLowUid, [] { return connect_and_hear(nullptr, kLowPeer, kPeerPort); }) != 0) fails |= 2;
          if (as_uid(kLowUid, [] { return connect_and_hear(nullptr, kHighHost, kPeerPort); }) != ECONNREFUSED) {
            fails |= 4;
          }
          {
            const Server node = serve_as(kLowUid, kListen, kListenPort);
            if (connect_and_hear(kLowPeer, kListen, kListenPort) != 0) fails |= 8;
            if (connect_and_hear(kHighHost, kListen, kListenPort) != ECONNREFUSED) fails |= 16;
          }
          // A second node with the same user is refused.
          try {
            SideFirewall again(low_side(), "test", locks);
            fails |= 32;
          } catch (const std::runtime_error&) {
          }
          return fails;
        }) == 0);
}
