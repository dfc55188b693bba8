// The edges' seccomp allow-list: what it kills, what it refuses, and that what
// an edge does once started still works under it. Each check runs in a forked
// child (sandboxed_child.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "guard/sandbox/seccomp.h"
#include "guard/xmpp/stream_parser.h"
#include "test/unit/sandbox/sandboxed_child.h"

using portcullis::sandbox::EdgeAllowlist;
using portcullis::sandbox::install_edge_allowlist;
using portcullis::sandbox::testing::in_child;
using portcullis::sandbox::testing::kKilledBySigsys;
using portcullis::sandbox::testing::socket_errno;

namespace {

// Runs `body` in a child under the edge allow-list.
int under_allowlist(const std::function<int()>& body, EdgeAllowlist edge = {}) {
  return in_child(
      [edge] {
        std::string err;
        return install_edge_allowlist(edge, err);
      },
      body);
}

// The pid of the test process, which is the forked child's parent. Read here,
// before the fork and so before the filter: getppid() is not on the list, so a
// child calling it would be killed there, before the call a check is about.
pid_t test_process() { return getpid(); }

// A TCP listener on 127.0.0.1 (ephemeral port), made before the filter as the
// edge's listeners are.
struct LoopbackListener {
  int fd = -1;
  sockaddr_in addr{};

  LoopbackListener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      FAIL("cannot make a loopback listener");
    }
  }
  ~LoopbackListener() { close(fd); }
};

}  // namespace

TEST_CASE("under the edge allow-list execve, ptrace, fork and bind kill the process", "[sandbox][edge]") {
  CHECK(under_allowlist([] {
          execl("/bin/true", "true", static_cast<char*>(nullptr));
          return 1;
        }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return syscall(SYS_ptrace, 0 /*TRACEME*/, 0, 0, 0) < 0 ? 1 : 2; }) == kKilledBySigsys);
  const pid_t parent = test_process();
  CHECK(under_allowlist([parent] { return syscall(SYS_process_vm_readv, parent, nullptr, 0, nullptr, 0, 0) < 0 ? 1 : 2; }) ==
        kKilledBySigsys);
  // The edge has no threads and starts no process: fork and pthread_create (clone/clone3) kill.
  CHECK(under_allowlist([] {
          const pid_t p = fork();
          if (p == 0) _exit(0);
          return 1;
        }) == kKilledBySigsys);
  CHECK(under_allowlist([] {
          pthread_t t;
          return pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr) == 0 ? 1 : 2;
        }) == kKilledBySigsys);
  // No new listener after start-up.
  CHECK(under_allowlist([] {
          const int fd = socket(AF_INET, SOCK_STREAM, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
          return 1;
        }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return syscall(SYS_io_uring_setup, 1, nullptr) < 0 ? 1 : 2; }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return syscall(SYS_unshare, 0) < 0 ? 1 : 2; }) == kKilledBySigsys);
}

TEST_CASE("under the edge allow-list only TCP sockets over IPv4 and IPv6 can be made", "[sandbox][edge]") {
  CHECK(under_allowlist([] { return socket_errno(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC); }) == 0);
  CHECK(under_allowlist([] { return socket_errno(AF_INET6, SOCK_STREAM, IPPROTO_TCP); }) == 0);
  CHECK(under_allowlist([] { return socket_errno(AF_NETLINK, SOCK_RAW); }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_PACKET, SOCK_RAW); }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_INET, SOCK_DGRAM); }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_INET, SOCK_RAW, IPPROTO_ICMP); }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_INET, SOCK_STREAM, IPPROTO_SCTP); }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_UNIX, SOCK_STREAM); }) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_UNIX, SOCK_DGRAM); }) == kKilledBySigsys);
  // Families with a history of kernel holes, asked with the type and protocol
  // an edge does use, so the family alone refuses (loaded module or not).
  for (int family : {AF_VSOCK, AF_TIPC, AF_RDS}) {
    INFO("family " << family);
    CHECK(under_allowlist([family] { return socket_errno(family, SOCK_STREAM); }) == kKilledBySigsys);
  }
  CHECK(under_allowlist([] {
          int sv[2];
          return socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        }) == kKilledBySigsys);
}

TEST_CASE("an edge that logs to syslog may also make AF_UNIX datagram sockets, nothing more", "[sandbox][edge]") {
  const EdgeAllowlist syslog{/*syslog=*/true};
  CHECK(under_allowlist([] { return socket_errno(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC); }, syslog) == 0);
  CHECK(under_allowlist([] { return socket_errno(AF_UNIX, SOCK_STREAM); }, syslog) == kKilledBySigsys);
  CHECK(under_allowlist([] { return socket_errno(AF_NETLINK, SOCK_DGRAM); }, syslog) == kKilledBySigsys);
}

TEST_CASE("under the edge allow-list what an edge does once started still works", "[sandbox][edge]") {
  LoopbackListener listener;
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  REQUIRE(ep >= 0);
  const int lfd = listener.fd;
  const sockaddr_in to = listener.addr;
  CHECK(under_allowlist([ep, lfd, to] {
          // An outbound link: non-blocking connect, watched by epoll, SO_ERROR.
          const int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
          if (c < 0) return 1;
          if (connect(c, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) return 2;
          epoll_event ev{};
          ev.events = EPOLLOUT;
          ev.data.fd = c;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) != 0) return 3;
          epoll_event got{};
          if (epoll_wait(ep, &got, 1, 5000) != 1 || got.data.fd != c) return 4;
          int soerr = -1;
          socklen_t sl = sizeof soerr;
          if (getsockopt(c, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) return 5;
          const int one = 1;
          if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) return 6;
          // The listener's side: accept4, then bytes both ways.
          sockaddr_storage peer{};
          socklen_t pl = sizeof peer;
          const int a = accept4(lfd, reinterpret_cast<sockaddr*>(&peer), &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (a < 0) return 7;
          const int fl = fcntl(a, F_GETFL);
          if (fl < 0 || fcntl(a, F_SETFL, fl | O_NONBLOCK) != 0) return 8;
          if (send(c, "hello", 5, MSG_NOSIGNAL) != 5) return 9;
          char buf[8] = {};
          ev.events = EPOLLIN;
          ev.data.fd = a;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) != 0 || epoll_wait(ep, &got, 1, 5000) != 1) return 10;
          if (recv(a, buf, sizeof buf, 0) != 5 || std::string(buf) != "hello") return 11;
          if (shutdown(a, SHUT_WR) != 0) return 12;
          close(a);
          close(c);
          // Randomness, time, memory (small and large allocations, freed).
          unsigned char rnd[32];
          if (getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd)) return 13;
          timespec ts{};
          if (syscall(SYS_clock_gettime, CLOCK_REALTIME, &ts) != 0) return 14;
          std::vector<char> big(64 << 20, 'x');
          std::string small(100, 'y');
          big.clear();
          big.shrink_to_fit();
          return 0;
        }) == 0);
  close(ep);
}

TEST_CASE("under the edge allow-list files cannot be opened, and nothing can be made executable", "[sandbox][edge]") {
  CHECK(under_allowlist([] { return open("/etc/passwd", O_RDONLY) < 0 && errno == EACCES ? 0 : 1; }) == 0);
  CHECK(under_allowlist([] { return openat(AT_FDCWD, "/etc/passwd", O_RDONLY) < 0 && errno == EACCES ? 0 : 1; }) == 0);
  CHECK(under_allowlist([] { return open("/tmp/portcullis-edge-test", O_WRONLY | O_CREAT, 0600) < 0 && errno == EACCES
                                        ? 0 : 1; }) == 0);
  // Paths are not looked up at all: stat, unlink, rename, mkdir kill.
  CHECK(under_allowlist([] { return unlink("/tmp/portcullis-edge-test") < 0 ? 1 : 2; }) == kKilledBySigsys);
  CHECK(under_allowlist([] {
          void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          return p == MAP_FAILED ? 1 : 2;
        }) == kKilledBySigsys);
  CHECK(under_allowlist([] {
          void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (p == MAP_FAILED) return 1;
          return mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0 ? 2 : 3;
        }) == kKilledBySigsys);
}

TEST_CASE("a peer's non-UTF-8 encoding declaration is a stream error under the allow-list, not a kill",
          "[sandbox][edge]") {
  // libxml2 looks up a handler for the declared encoding before the parser's
  // own UTF-8-only check runs; for one it has no built-in converter for,
  // glibc's iconv_open opens its gconv files. Before any authentication: were
  // open a kill, one XML declaration would take the edge down.
  struct Handler : portcullis::xmpp::StreamHandler {
    portcullis::xmpp::StreamErrorCondition condition{};
    bool error = false;
    void on_stream_open(const portcullis::xmpp::StreamHeader&) override {}
    void on_element(portcullis::xmpp::Element, std::size_t) override {}
    void on_stream_close() override {}
    void on_stream_error(portcullis::xmpp::StreamErrorCondition c, std::string) override {
      error = true;
      condition = c;
    }
  };
  for (const char* encoding : {"ISO-8859-2", "KOI8-R", "SHIFT_JIS"}) {
    INFO(encoding);
    CHECK(in_child([] { return true; }, [encoding] {
            Handler h;
            portcullis::xmpp::StreamParser parser(h);   // made before the filter, as the edge's are
            std::string err;
            if (!install_edge_allowlist({}, err)) return 100;
            parser.feed(std::string("<?xml version='1.0' encoding='") + encoding +
                        "'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"
                        " to='b.example' version='1.0'>");
            return h.error && h.condition == portcullis::xmpp::StreamErrorCondition::UnsupportedEncoding ? 0 : 1;
          }) == 0);
  }
}

TEST_CASE("under the edge allow-list signals reach only the process itself", "[sandbox][edge]") {
  // abort() is tgkill of itself: the process dies of SIGABRT, not of the filter.
  CHECK(under_allowlist([] {
          std::abort();
          return 1;
        }) == 200 + SIGABRT);
  const pid_t parent = test_process();
  CHECK(under_allowlist([parent] { return kill(parent, 0) == 0 ? 1 : 2; }) == kKilledBySigsys);
  CHECK(under_allowlist([parent] { return syscall(SYS_tgkill, parent, parent, 0) == 0 ? 1 : 2; }) == kKilledBySigsys);
}

#if defined(PORTCULLIS_ASAN)
TEST_CASE("in a sanitizer build an edge's sanitizer reports and its exit get past the allow-list",
          "[sandbox][edge]") {
  const auto quiet_install = [] {   // the report is expected: keep it out of the test's output
    const int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, STDERR_FILENO) < 0) return false;
    std::string err;
    return install_edge_allowlist({}, err);
  };
  // exit(), not _exit(): LeakSanitizer's end-of-process check would need a
  // tracer thread and ptrace; it ran when the filter went on instead.
  CHECK(in_child(quiet_install, [] {
          std::exit(0);
          return 1;
        }) == 0);
  // A heap overflow ends in AddressSanitizer's report (its exit code 1), not in SIGSYS.
  CHECK(in_child(quiet_install, [] {
          volatile char* p = new char[4];
          volatile int past_end = 5;
          p[past_end] = 1;
          return 2;
        }) == 1);
  // So does undefined behaviour: UBSan reports and the process goes on, or,
  // with UBSAN_OPTIONS=halt_on_error=1 (as CI runs it), ends with its exit code 1.
  const char* ubsan = std::getenv("UBSAN_OPTIONS");
  const bool halts = ubsan != nullptr && std::string(ubsan).find("halt_on_error=1") != std::string::npos;
  CHECK(in_child(quiet_install, [] {
          volatile int big = 0x7fffffff;
          volatile int sum = big + 1;
          return sum == 0 ? 3 : 0;
        }) == (halts ? 1 : 0));
}
#endif

#if defined(__x86_64__)
TEST_CASE("under the edge allow-list x32 and i386 system calls kill the process", "[sandbox][edge]") {
  CHECK(under_allowlist([] { return static_cast<int>(syscall(0x40000000 | SYS_getpid) > 0 ? 0 : 1); }) ==
        kKilledBySigsys);
  const int under_filter = under_allowlist(portcullis::sandbox::testing::i386_getpid);
  CHECK(under_filter == (portcullis::sandbox::testing::ia32_available() ? kKilledBySigsys : 200 + SIGSEGV));
}
#endif

TEST_CASE("the edge allow-list covers threads that existed before it (TSYNC)", "[sandbox][edge]") {
  // A thread made before the filter (the edge has none; TSYNC makes sure any
  // a library might have made is covered too) reads its own Seccomp: mode
  // through a status fd opened beforehand, then dies making a UDP socket.
  const int code = in_child([] { return true; }, [] {
    static int status_fd = -1;
    static int go = 0;
    static int mode_seen = -1;
    pthread_t t;
    auto body = [](void*) -> void* {
      const std::string path = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/status";
      status_fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      while (__atomic_load_n(&go, __ATOMIC_SEQ_CST) == 0) usleep(1000);
      char buf[4096];
      const ssize_t n = read(status_fd, buf, sizeof buf - 1);
      if (n > 0) {
        buf[n] = 0;
        const char* m = strstr(buf, "Seccomp:");
        if (m != nullptr) mode_seen = atoi(m + 8);
      }
      __atomic_store_n(&go, 2, __ATOMIC_SEQ_CST);
      socket(AF_INET, SOCK_DGRAM, 0);   // killed
      return nullptr;
    };
    if (pthread_create(&t, nullptr, body, nullptr) != 0) return 10;
    while (__atomic_load_n(&status_fd, __ATOMIC_SEQ_CST) == -1) usleep(1000);
    std::string err;
    if (!install_edge_allowlist({}, err)) return 11;
    __atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&go, __ATOMIC_SEQ_CST) != 2) {
      struct timespec ts{0, 1000000};
      nanosleep(&ts, nullptr);
    }
    if (mode_seen != 2) return 12;
    for (;;) {
      struct timespec ts{1, 0};
      nanosleep(&ts, nullptr);   // the thread's socket call kills the process
    }
  });
  CHECK(code == kKilledBySigsys);
}

TEST_CASE("a refused install is reported, not ignored", "[sandbox][edge]") {
  // In a process whose seccomp(2) already fails (as under a stricter container
  // profile) the allow-list cannot be installed: the call must say so (the edge
  // then exits, edge_main.cpp), not fall back to something without TSYNC.
  const int code = in_child(
      [] {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
        static sock_filter insns[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        sock_fprog prog{static_cast<unsigned short>(sizeof insns / sizeof insns[0]), insns};
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0;
      },
      [] {
        std::string err;
        if (install_edge_allowlist({}, err)) return 1;
        return err.empty() ? 2 : 0;
      });
  CHECK(code == 0);
}
