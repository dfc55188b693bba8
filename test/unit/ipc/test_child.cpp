// A stand-in for the real edge/filter children in the supervisor tests. It is
// exec'd by the Supervisor with the real role command lines plus
// `--test-socket PATH`, and connects there (a FrameChannel) to report to the
// test and take commands from it:
//   hello frame on connect, body "<role> <pid> <link fds>"
//   every frame an edge gets from the filter is copied to the test
//   every new fd from ChildControl is reported: body "newfd <tag> <fd>"
//   every link that closes is reported: body "closed <link>"
// Edges forward test frames to the filter; the filter forwards low <-> high. A
// frame whose body is "crash" makes the filter (or an edge, if it comes from
// the test with peer_domain "self") abort; "exit:N" from the test with
// peer_domain "self" exits with status N. The filter reports SIGHUP ("sighup").
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "guard/ipc/frame_channel.h"
#include "guard/supervisor/child_control.h"
#include "guard/supervisor/supervisor.h"

using portcullis::ipc::Frame;
using portcullis::ipc::FrameChannel;
using portcullis::ipc::FrameKind;
using portcullis::net::EventLoop;
using portcullis::net::SteadyClock;
using portcullis::supervisor::ChildArgs;
using portcullis::supervisor::ChildControl;
using portcullis::supervisor::Role;

namespace {

Frame text_frame(FrameKind kind, std::string body) {
  Frame f;
  f.header.kind = kind;
  f.body = std::move(body);
  return f;
}

struct TestChild {
  EventLoop& loop;
  ChildArgs args;
  std::unique_ptr<FrameChannel> test;
  // edge: links[0] is the link to the filter; filter: links[0] low, links[1] high.
  std::unique_ptr<FrameChannel> links[2];
  std::unique_ptr<ChildControl> control;

  void report(const std::string& body) {
    if (test) test->send(text_frame(FrameKind::Hello, body));
  }

  std::string link_name(int i) const {
    if (args.role != Role::Filter) return "filter";
    return i == 0 ? "edge:low" : "edge:high";
  }

  void attach(int i, int fd) {
    links[i] = std::make_unique<FrameChannel>(loop, fd);
    FrameChannel* self = links[i].get();
    links[i]->set_callbacks({
        [this, i](Frame&& f) { on_link_frame(i, std::move(f)); },
        [this, i, self](const std::string& reason) {
          report("closed " + link_name(i) + " " + reason);
          // Destroy later, and only if it was not replaced meanwhile.
          loop.post([this, i, self] {
            if (links[i].get() == self) links[i].reset();
          });
        },
        {},
    });
    links[i]->start();
  }

  void on_link_frame(int i, Frame&& f) {
    if (args.role == Role::Filter) {
      if (f.body == "crash") std::abort();
      const int other = 1 - i;
      if (links[other]) links[other]->send(f);
      return;
    }
    if (test) test->send(f);  // an edge delivers what the filter released
  }

  // How it answers the supervisor's status question (set by the test with a
  // "status-mode:M" frame, peer_domain "self"): "normal"; "silent" (never);
  // "hostile": before a reply that is not JSON and tries to break out of its
  // string, it sends the supervisor an answer for another round, one of the
  // wrong kind and one longer than the supervisor reads.
  std::string status_mode = "normal";

  std::string status() {
    if (status_mode == "silent") return {};
    if (status_mode == "hostile") {
      const int fd = args.fds.control_fd;
      const std::string stale = "S999999\n{\"forged\":\"stale round\"}";
      ::send(fd, stale.data(), stale.size(), MSG_DONTWAIT);
      const std::string wrong = "R1\n{\"forged\":\"wrong kind\"}";
      ::send(fd, wrong.data(), wrong.size(), MSG_DONTWAIT);
      std::string huge = "S1\n";
      huge.append(70 * 1024, 'x');
      ::send(fd, huge.data(), huge.size(), MSG_DONTWAIT);
      return "\"},\"children\":[],\"pwned\":{\"\xff";
    }
    return "{\"role\":\"" + std::string(portcullis::supervisor::to_string(args.role)) + "\",\"pid\":" + std::to_string(::getpid()) + "}";
  }

  void on_test_frame(Frame&& f) {
    if (f.body.rfind("status-mode:", 0) == 0 && f.header.peer_domain == "self") {
      status_mode = f.body.substr(12);
      report("status-mode " + status_mode);
      return;
    }
    if (f.body == "crash" && f.header.peer_domain == "self") std::abort();
    if (f.body.rfind("exit:", 0) == 0 && f.header.peer_domain == "self") {
      std::_Exit(std::atoi(f.body.c_str() + 5));
    }
    if (args.role == Role::Filter) return;
    if (links[0]) {
      links[0]->send(f);
    } else {
      report("no-link");
    }
  }

  void on_new_fd(std::string_view tag, portcullis::ipc::UniqueFd fd) {
    int i = -1;
    if (args.role == Role::Filter) {
      if (tag == "edge:low") i = 0;
      if (tag == "edge:high") i = 1;
    } else if (tag == "filter") {
      i = 0;
    }
    if (i < 0) {
      report("badtag " + std::string(tag));
      return;
    }
    const int raw = fd.release();
    attach(i, raw);
    report("newfd " + std::string(tag) + " " + std::to_string(raw));
  }
};

int connect_test_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string error;
  auto parsed = portcullis::supervisor::parse_child_args(args, error);
  if (!parsed) {
    std::fprintf(stderr, "test_child: %s\n", error.empty() ? "no --role" : error.c_str());
    return 2;
  }
  std::string test_socket;
  for (std::size_t i = 0; i + 1 < parsed->rest.size(); ++i) {
    if (parsed->rest[i] == "--test-socket") test_socket = parsed->rest[i + 1];
  }
  if (args.empty() || test_socket.empty()) {
    std::fprintf(stderr, "test_child: --test-socket PATH is required\n");
    return 2;
  }

  // The tests crash children on purpose: no core files.
  rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);

  SteadyClock clock;
  EventLoop loop(clock);
  TestChild child{loop, *parsed, nullptr, {}, nullptr};

  const int tfd = connect_test_socket(test_socket);
  if (tfd < 0) {
    std::fprintf(stderr, "test_child: cannot connect to %s\n", test_socket.c_str());
    return 3;
  }
  child.test = std::make_unique<FrameChannel>(loop, tfd);
  child.test->set_callbacks({[&child](Frame&& f) { child.on_test_frame(std::move(f)); },
                             [&loop](const std::string&) { loop.stop(); }, {}});
  child.test->start();

  std::string hello;
  if (parsed->role == Role::Filter) {
    hello = "filter " + std::to_string(::getpid()) + " " + std::to_string(parsed->fds.low_fd) +
            " " + std::to_string(parsed->fds.high_fd);
    child.attach(0, parsed->fds.low_fd);
    child.attach(1, parsed->fds.high_fd);
  } else if (parsed->role == Role::Node) {
    hello = "node " + std::to_string(::getpid());   // a node has no link to anyone
  } else {
    hello = std::string(parsed->role == Role::EdgeLow ? "edge:low " : "edge:high ") +
            std::to_string(::getpid()) + " " + std::to_string(parsed->fds.ipc_fd);
    child.attach(0, parsed->fds.ipc_fd);
  }
  child.control = std::make_unique<ChildControl>(
      loop, parsed->fds.control_fd,
      ChildControl::Callbacks{
          [&child](std::string_view tag, portcullis::ipc::UniqueFd fd) {
            child.on_new_fd(tag, std::move(fd));
          },
          nullptr,  // default: exit when the supervisor is gone
          [&child](const std::string& e) { child.report("badmsg " + e); },
          [&child] { return child.status(); },
          [&child](const std::string& who) {
            child.report("reload " + who);
            return std::string("{\"ok\":true}");
          }});
  child.control->start();

  // The filter reports the SIGHUPs the supervisor forwards (set up before the
  // hello, so the test cannot send one too early).
  int hup_fd = -1;
  if (parsed->role == Role::Filter) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    hup_fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    loop.watch(hup_fd, portcullis::net::kReadable, [&child, hup_fd](std::uint32_t) {
      signalfd_siginfo si;
      while (::read(hup_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) child.report("sighup");
    });
  }
  child.test->send(text_frame(FrameKind::Hello, hello));
  loop.run();
  return 0;
}
