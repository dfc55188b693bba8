#include <fstream>
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "guard/ipc/fd_passing.h"
#include "guard/ipc/frame_channel.h"
#include "guard/supervisor/child_control.h"
#include "guard/supervisor/supervisor.h"
#include "test/unit/ipc/loop_wait.h"
#include "test/unit/needs_root.h"

using namespace portcullis::ipc;
using namespace portcullis::supervisor;
using portcullis::ipc::testing::run_until;
using portcullis::net::Duration;
using portcullis::net::EventLoop;
using portcullis::net::SteadyClock;

// ---- command lines -------------------------------------------------------

TEST_CASE("child command lines", "[supervisor][args]") {
  ChildFds edge;
  edge.ipc_fd = 5;
  edge.control_fd = 6;
  CHECK(child_command_line("/usr/sbin/portcullisd", Role::EdgeLow, edge,
                           {"--config", "/etc/portcullis/guard.xml", "--foreground"}) ==
        std::vector<std::string>{"/usr/sbin/portcullisd", "--role", "edge", "--side", "low",
                                 "--ipc-fd", "5", "--control-fd", "6", "--config",
                                 "/etc/portcullis/guard.xml", "--foreground"});
  CHECK(child_command_line("x", Role::EdgeHigh, edge, {}) ==
        std::vector<std::string>{"x", "--role", "edge", "--side", "high", "--ipc-fd", "5",
                                 "--control-fd", "6"});
  ChildFds filter;
  filter.low_fd = 7;
  filter.high_fd = 8;
  filter.control_fd = 9;
  CHECK(child_command_line("x", Role::Filter, filter, {"--config", "c.xml"}) ==
        std::vector<std::string>{"x", "--role", "filter", "--low-fd", "7", "--high-fd", "8",
                                 "--control-fd", "9", "--config", "c.xml"});
  ChildFds node;
  node.control_fd = 4;
  CHECK(child_command_line("x", Role::Node, node, {"--config", "n.xml"}) ==
        std::vector<std::string>{"x", "--role", "node", "--control-fd", "4", "--config", "n.xml"});
}

TEST_CASE("child command lines parse back", "[supervisor][args]") {
  std::string error;
  for (Role r : {Role::EdgeLow, Role::Filter, Role::EdgeHigh, Role::Node}) {
    ChildFds fds;
    fds.control_fd = 10;
    fds.ipc_fd = r == Role::Filter || r == Role::Node ? -1 : 11;
    fds.low_fd = r == Role::Filter ? 12 : -1;
    fds.high_fd = r == Role::Filter ? 13 : -1;
    auto argv = child_command_line("exe", r, fds, {"--config", "c.xml", "--foreground"});
    argv.erase(argv.begin());
    auto parsed = parse_child_args(argv, error);
    REQUIRE(parsed);
    CHECK(error.empty());
    CHECK(parsed->role == r);
    CHECK(parsed->fds.control_fd == 10);
    CHECK(parsed->fds.ipc_fd == fds.ipc_fd);
    CHECK(parsed->fds.low_fd == fds.low_fd);
    CHECK(parsed->fds.high_fd == fds.high_fd);
    CHECK(parsed->rest == std::vector<std::string>{"--config", "c.xml", "--foreground"});
  }
}

TEST_CASE("bad child command lines are rejected with a reason", "[supervisor][args]") {
  std::string error;
  CHECK_FALSE(parse_child_args({"--config", "c.xml"}, error));
  CHECK(error.empty());  // no --role: the supervisor itself
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const Case cases[] = {
      {{"--role", "edge", "--side", "low", "--ipc-fd", "5"}, "--control-fd"},
      {{"--role", "edge", "--side", "middle", "--ipc-fd", "5", "--control-fd", "6"}, "--side"},
      {{"--role", "edge", "--side", "low", "--control-fd", "6"}, "--ipc-fd"},
      {{"--role", "edge", "--side", "low", "--ipc-fd", "6", "--control-fd", "6"}, "differ"},
      {{"--role", "edge", "--side", "low", "--ipc-fd", "2", "--control-fd", "6"}, ">= 3"},
      {{"--role", "edge", "--side", "low", "--ipc-fd", "x5", "--control-fd", "6"}, "--ipc-fd"},
      {{"--role", "edge", "--side", "low", "--ipc-fd", "5", "--control-fd", "6", "--low-fd", "7"},
       "filter arguments"},
      {{"--role", "filter", "--low-fd", "5", "--control-fd", "6"}, "--high-fd"},
      {{"--role", "filter", "--low-fd", "5", "--high-fd", "5", "--control-fd", "6"}, "differ"},
      {{"--role", "filter", "--low-fd", "5", "--high-fd", "7", "--control-fd", "6", "--ipc-fd",
        "8"},
       "edge arguments"},
      {{"--role", "router", "--control-fd", "6"}, "unknown --role"},
      {{"--role", "node", "--ipc-fd", "5", "--control-fd", "6"}, "only --control-fd"},
      {{"--role", "node", "--side", "low", "--control-fd", "6"}, "only --control-fd"},
      {{"--role", "node"}, "--control-fd"},
      {{"--role"}, "needs a value"},
      {{"--ipc-fd", "5"}, "without --role"},
      {{"--role", "edge", "--role", "filter"}, "twice"},
  };
  for (const Case& c : cases) {
    INFO(c.says);
    CHECK_FALSE(parse_child_args(c.args, error));
    CHECK(error.find(c.says) != std::string::npos);
  }
}

TEST_CASE("role names and link tags", "[supervisor][args]") {
  CHECK(to_string(Role::EdgeLow) == "edge(low)");
  CHECK(to_string(Role::Filter) == "filter");
  CHECK(to_string(Role::EdgeHigh) == "edge(high)");
  CHECK(link_tag(Role::EdgeLow) == "edge:low");
  CHECK(link_tag(Role::Filter) == "filter");
  CHECK(link_tag(Role::EdgeHigh) == "edge:high");
  CHECK(to_string(Role::Node) == "node");
}

// ---- ChildControl --------------------------------------------------------

TEST_CASE("ChildControl hands over fds and notices the supervisor going", "[supervisor][control]") {
  SteadyClock clock;
  EventLoop loop(clock);
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  std::vector<std::pair<std::string, int>> got;
  std::vector<UniqueFd> keep;
  std::vector<std::string> bad, gone;
  ChildControl control(loop, child.release(),
                       {[&](std::string_view tag, UniqueFd fd) {
                          got.emplace_back(std::string(tag), fd.get());
                          keep.push_back(std::move(fd));
                        },
                        [&](const std::string& reason) { gone.push_back(reason); },
                        [&](const std::string& e) { bad.push_back(e); },
                        [] { return std::string("{\"x\":1}"); },
                        nullptr});
  control.start();

  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  UniqueFd a(fds[0]), b(fds[1]);
  REQUIRE(send_fd(sup.get(), a.get(), "edge:low").status == FdPassStatus::Ok);
  REQUIRE(::send(sup.get(), "junk", 4, 0) == 4);  // no fd: reported, channel stays
  REQUIRE(send_fd(sup.get(), a.get(), "edge:high").status == FdPassStatus::Ok);
  REQUIRE(run_until(loop, [&] { return got.size() == 2; }));
  CHECK(got[0].first == "edge:low");
  CHECK(got[1].first == "edge:high");
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].find("unknown request") != std::string::npos);
  // A question is answered on the same socket: kind, round, the owner's text;
  // without on_reload, a reload says there is nothing to reload.
  REQUIRE(::send(sup.get(), "status 5", 8, 0) == 8);
  REQUIRE(::send(sup.get(), "reload 6 uid=0 pid=1", 20, 0) == 20);
  std::vector<std::string> answers;
  REQUIRE(run_until(loop, [&] {
    char buf[256];
    const ssize_t n = ::recv(sup.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 1) answers.emplace_back(buf, static_cast<std::size_t>(n));   // heartbeats are 1 byte
    return answers.size() == 2;
  }));
  CHECK(answers[0] == "S5\n{\"x\":1}");
  CHECK(answers[1] == "R6\n{\"ok\":true,\"reloaded\":\"nothing\"}");
  // The received fd is a working copy of `a`.
  REQUIRE(::write(got[0].second, "p", 1) == 1);
  char c = 0;
  REQUIRE(::read(b.get(), &c, 1) == 1);
  CHECK(c == 'p');

  CHECK(gone.empty());
  sup.reset();
  REQUIRE(run_until(loop, [&] { return !gone.empty(); }));
  CHECK(gone == std::vector<std::string>{"supervisor closed the control socket"});
  CHECK_FALSE(control.is_open());
}

// ---- the supervisor with real children -----------------------------------

namespace {

// Peer inode of a unix socket, through NETLINK_SOCK_DIAG (what `ss -x` shows).
std::optional<unsigned> unix_peer_inode(unsigned inode) {
  UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return std::nullopt;
  struct {
    nlmsghdr nlh;
    unix_diag_req req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0U;
  msg.req.udiag_ino = inode;
  msg.req.udiag_show = UDIAG_SHOW_PEER;
  msg.req.udiag_cookie[0] = ~0U;  // INET_DIAG_NOCOOKIE: look up by inode alone
  msg.req.udiag_cookie[1] = ~0U;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return std::nullopt;
  }
  alignas(nlmsghdr) char buf[8192];
  const ssize_t n = ::recv(nl.get(), buf, sizeof buf, 0);
  if (n <= 0) return std::nullopt;
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(h, static_cast<unsigned>(n)) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY) {
    return std::nullopt;
  }
  auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
  for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == UNIX_DIAG_PEER) return *static_cast<unsigned*>(RTA_DATA(a));
  }
  return std::nullopt;
}

std::optional<unsigned> socket_inode(pid_t pid, int fd) {
  char target[128] = {};
  const std::string link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
  if (n <= 0) return std::nullopt;
  unsigned ino = 0;
  if (std::sscanf(target, "socket:[%u]", &ino) != 1) return std::nullopt;
  return ino;
}

std::set<unsigned> socket_inodes(pid_t pid) {
  std::set<unsigned> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (auto ino = socket_inode(pid, std::atoi(e->d_name))) out.insert(*ino);
  }
  ::closedir(d);
  return out;
}

// One connection from a test child to the test.
struct ChildPeer {
  std::unique_ptr<FrameChannel> channel;
  std::string role;  // "edge:low", "edge:high", "filter" (from its hello)
  pid_t pid = 0;
  std::vector<int> link_fds;          // as reported in the hello
  std::vector<std::string> reports;   // "newfd ...", "closed ...", "sighup", ...
  std::vector<std::string> data;      // bodies of frames it delivered to us
  bool closed = false;

  bool reported(const std::string& prefix) const {
    for (const auto& r : reports) {
      if (r.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }
  bool delivered(const std::string& body) const {
    for (const auto& d : data) {
      if (d == body) return true;
    }
    return false;
  }
  // The link fd the child uses now: the last "newfd <tag> N", else the hello's.
  int current_link_fd(const std::string& tag) const {
    int fd = -1;
    if (role == "filter") {
      fd = tag == "edge:low" ? link_fds.at(0) : link_fds.at(1);
    } else {
      fd = link_fds.at(0);
    }
    for (const auto& r : reports) {
      const std::string p = "newfd " + tag + " ";
      if (r.rfind(p, 0) == 0) fd = std::atoi(r.c_str() + p.size());
    }
    return fd;
  }
  bool send(const std::string& body, const std::string& peer_domain = "low.example") {
    Frame f;
    f.header.kind = FrameKind::Stanza;
    f.header.direction = Direction::LowToHigh;
    f.header.auth = AuthMethod::SaslExternal;
    f.header.peer_domain = peer_domain;
    f.body = body;
    return channel->send(f);
  }
};

class Harness {
 public:
  Harness() {
    char tmpl[] = "/tmp/portcullis-ipc-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/children.sock";
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    REQUIRE(listener_);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_.get(), 16) == 0);
    loop.watch(listener_.get(), portcullis::net::kReadable, [this](std::uint32_t) { accept(); });
  }

  ~Harness() {
    supervisor.reset();
    peers.clear();
    loop.unwatch(listener_.get());
    listener_.reset();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  // Makes the test reachable by an unprivileged user: the socket directory and
  // socket, and a copy of the test child in a world-readable directory (the
  // build tree may sit under a private home). Returns the copy's path.
  std::string open_to_everyone() {
    REQUIRE(::chmod(dir_.c_str(), 0755) == 0);
    REQUIRE(::chmod(path_.c_str(), 0777) == 0);
    const std::string copy = dir_ + "/test-child";
    std::ifstream in(PORTCULLIS_TEST_CHILD, std::ios::binary);
    std::ofstream out(copy, std::ios::binary);
    out << in.rdbuf();
    out.close();
    REQUIRE(::chmod(copy.c_str(), 0755) == 0);
    return copy;
  }

  void start(bool handle_signals = true, Duration watchdog = Duration(10000),
             std::optional<std::array<SupervisorOptions::Identity, 4>> identities = std::nullopt,
             std::string executable = {}, bool filter_netns = false, bool node = false) {
    SupervisorOptions o;
    o.node = node;
    o.watchdog_timeout = watchdog;
    if (identities) o.identities = *identities;
    o.filter_netns = filter_netns;
    o.executable = executable.empty() ? std::string(PORTCULLIS_TEST_CHILD) : executable;
    o.common_args = {"--test-socket", path_, "--foreground"};
    o.initial_backoff = Duration(20);
    o.max_backoff = Duration(200);
    o.stable_after = Duration(60000);
    o.stop_grace = Duration(3000);
    o.give_up_after = give_up_after;
    o.handle_signals = handle_signals;
    o.log = [this](std::string_view line) { logs.emplace_back(line); };
    supervisor = std::make_unique<Supervisor>(loop, o);
    supervisor->set_on_stopped([this] { stopped = true; });
    supervisor->start();
  }

  // The connection of the child now running as `role`, once it said hello.
  ChildPeer* live(Role role) {
    const pid_t pid = supervisor->pid(role);
    for (auto& p : peers) {
      if (p->pid == pid && pid > 0 && !p->closed) return p.get();
    }
    return nullptr;
  }

  bool all_live() { return live(Role::EdgeLow) && live(Role::Filter) && live(Role::EdgeHigh); }

  bool logged(const std::string& text) const {
    for (const auto& l : logs) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::size_t log_index(const std::string& text) const {
    for (std::size_t i = 0; i < logs.size(); ++i) {
      if (logs[i].find(text) != std::string::npos) return i;
    }
    return logs.size();
  }

  std::string dump_logs() const {
    std::string s;
    for (const auto& l : logs) s += l + "\n";
    return s;
  }

  SteadyClock clock;
  EventLoop loop{clock};
  std::unique_ptr<Supervisor> supervisor;
  std::vector<std::unique_ptr<ChildPeer>> peers;
  std::vector<std::string> logs;
  bool stopped = false;
  unsigned give_up_after = 0;   // SupervisorOptions::give_up_after for start()
  const std::string& socket_path() const { return path_; }

 private:
  void accept() {
    for (;;) {
      const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      auto peer = std::make_unique<ChildPeer>();
      ChildPeer* p = peer.get();
      peer->channel = std::make_unique<FrameChannel>(loop, fd);
      peer->channel->set_callbacks({[p](Frame&& f) {
                                      if (f.header.kind != FrameKind::Hello) {
                                        p->data.push_back(f.body);
                                      } else if (p->role.empty()) {
                                        std::istringstream in(f.body);
                                        in >> p->role >> p->pid;
                                        int n;
                                        while (in >> n) p->link_fds.push_back(n);
                                      } else {
                                        p->reports.push_back(f.body);
                                      }
                                    },
                                    [p](const std::string&) { p->closed = true; }, {}});
      peer->channel->start();
      peers.push_back(std::move(peer));
    }
  }

  std::string dir_, path_;
  UniqueFd listener_;
};

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Each edge's link fd is connected to a socket held by the filter, never to one
// held by the other edge; and no socket of one edge has its peer in the other.
void require_no_edge_to_edge_link(Harness& h) {
  ChildPeer* low = h.live(Role::EdgeLow);
  ChildPeer* high = h.live(Role::EdgeHigh);
  ChildPeer* filter = h.live(Role::Filter);
  REQUIRE(low);
  REQUIRE(high);
  REQUIRE(filter);
  const auto filter_socks = socket_inodes(filter->pid);
  const auto low_socks = socket_inodes(low->pid);
  const auto high_socks = socket_inodes(high->pid);
  REQUIRE_FALSE(filter_socks.empty());
  for (auto [edge, other] : {std::pair{low, &high_socks}, std::pair{high, &low_socks}}) {
    INFO(edge->role);
    const auto ino = socket_inode(edge->pid, edge->current_link_fd("filter"));
    REQUIRE(ino);
    const auto peer = unix_peer_inode(*ino);
    REQUIRE(peer);
    CHECK(filter_socks.count(*peer) == 1);
    CHECK(other->count(*peer) == 0);
    // And the filter's end for this side is that very peer.
    const auto filter_end = socket_inode(filter->pid, filter->current_link_fd(edge->role));
    REQUIRE(filter_end);
    CHECK(*filter_end == *peer);
  }
  for (unsigned s : low_socks) {
    if (auto p = unix_peer_inode(s)) CHECK(high_socks.count(*p) == 0);
  }
}

}  // namespace

TEST_CASE("supervisor starts three children and frames cross low -> filter -> high",
          "[supervisor]") {
  Harness h;
  // An fd someone forgot to make close-on-exec must still not reach a child.
  int leaky[2];
  REQUIRE(::pipe(leaky) == 0);
  UniqueFd leaky_r(leaky[0]), leaky_w(leaky[1]);
  struct stat leaky_st {};
  REQUIRE(::fstat(leaky[0], &leaky_st) == 0);
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  INFO(h.dump_logs());
  CHECK(h.logged("started filter (pid " + std::to_string(h.supervisor->pid(Role::Filter))));
  CHECK(h.logged("started edge(low) (pid "));
  CHECK(h.logged("started edge(high) (pid "));

  ChildPeer* low = h.live(Role::EdgeLow);
  ChildPeer* high = h.live(Role::EdgeHigh);
  REQUIRE(low->send("<message id='1'/>"));
  REQUIRE(high->send("<message id='2'/>"));
  REQUIRE(run_until(h.loop, [&] {
    return high->delivered("<message id='1'/>") && low->delivered("<message id='2'/>");
  }));
  // Nothing echoes back to the sender's own side.
  CHECK_FALSE(low->delivered("<message id='1'/>"));
  CHECK_FALSE(high->delivered("<message id='2'/>"));

  for (Role r : {Role::EdgeLow, Role::Filter, Role::EdgeHigh}) {
    const std::string dir = "/proc/" + std::to_string(h.supervisor->pid(r)) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    REQUIRE(d != nullptr);
    while (dirent* e = ::readdir(d)) {
      struct stat st {};
      if (e->d_name[0] == '.' || ::stat((dir + "/" + e->d_name).c_str(), &st) != 0) continue;
      INFO(to_string(r) << " fd " << e->d_name);
      CHECK_FALSE((st.st_ino == leaky_st.st_ino && st.st_dev == leaky_st.st_dev));
    }
    ::closedir(d);
  }

  require_no_edge_to_edge_link(h);
}

TEST_CASE("a killed filter is restarted and the edges get new links", "[supervisor]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  const pid_t old_filter = h.supervisor->pid(Role::Filter);
  REQUIRE(::kill(old_filter, SIGKILL) == 0);

  REQUIRE(run_until(h.loop, [&] {
    ChildPeer* low = h.live(Role::EdgeLow);
    ChildPeer* high = h.live(Role::EdgeHigh);
    return h.supervisor->pid(Role::Filter) != old_filter && h.live(Role::Filter) &&
           low->reported("newfd filter") && high->reported("newfd filter");
  }));
  INFO(h.dump_logs());
  CHECK(h.logged("filter killed by signal 9 (SIGKILL)"));
  CHECK(h.logged("restarting filter in 20 ms"));
  CHECK(h.logged("restarted filter (pid " + std::to_string(h.supervisor->pid(Role::Filter)) +
                 ", restart #1)"));
  CHECK(h.logged("handed new filter link to edge(low)"));
  CHECK(h.logged("handed new filter link to edge(high)"));
  CHECK(h.supervisor->restarts(Role::Filter) == 1);
  CHECK(h.supervisor->restarts(Role::EdgeLow) == 0);
  CHECK(process_gone(old_filter));

  ChildPeer* low = h.live(Role::EdgeLow);
  ChildPeer* high = h.live(Role::EdgeHigh);
  REQUIRE(low->send("after restart"));
  REQUIRE(high->send("and back"));
  REQUIRE(run_until(h.loop, [&] {
    return high->delivered("after restart") && low->delivered("and back");
  }));
  require_no_edge_to_edge_link(h);
}

namespace {

// The real, effective and saved uid of a process (the "Uid:" line of its status).
std::string uid_line(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Uid:", 0) == 0) return line;
  return {};
}

}  // namespace

std::string netns_of(pid_t pid) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/net", ec).string();
}

std::string uid_line_for(uid_t u) {
  const std::string n = std::to_string(u);
  return "Uid:\t" + n + "\t" + n + "\t" + n + "\t" + n;
}

TEST_CASE("separated: each child runs as its own user, the filter in an empty network namespace",
          "[supervisor][privsep]") {
  PORTCULLIS_NEEDS_ROOT();
  Harness h;
  const std::string exe = h.open_to_everyone();
  // Three uids with no passwd entry: setuid needs none.
  std::array<SupervisorOptions::Identity, 4> ids{};
  ids[static_cast<std::size_t>(Role::EdgeLow)] = {true, 61001, 61001};
  ids[static_cast<std::size_t>(Role::Filter)] = {true, 61002, 61002};
  ids[static_cast<std::size_t>(Role::EdgeHigh)] = {true, 61003, 61003};
  h.start(true, Duration(10000), ids, exe, true);
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  INFO(h.dump_logs());
  CHECK(uid_line(h.supervisor->pid(Role::EdgeLow)) == uid_line_for(61001));
  CHECK(uid_line(h.supervisor->pid(Role::Filter)) == uid_line_for(61002));
  CHECK(uid_line(h.supervisor->pid(Role::EdgeHigh)) == uid_line_for(61003));
  // The filter alone is in a network namespace of its own; the edges keep the host's.
  const std::string host_ns = netns_of(::getpid());
  REQUIRE(!host_ns.empty());
  CHECK(netns_of(h.supervisor->pid(Role::Filter)) != host_ns);
  CHECK(netns_of(h.supervisor->pid(Role::EdgeLow)) == host_ns);
  CHECK(netns_of(h.supervisor->pid(Role::EdgeHigh)) == host_ns);
  // Frames still cross: the children work as their unprivileged users.
  ChildPeer* low = h.live(Role::EdgeLow);
  ChildPeer* high = h.live(Role::EdgeHigh);
  REQUIRE(low->send("as 61001"));
  REQUIRE(run_until(h.loop, [&] { return high->delivered("as 61001"); }));
  // A restarted child is dropped again, the filter into a fresh namespace.
  for (Role r : {Role::EdgeLow, Role::Filter}) {
    const pid_t old = h.supervisor->pid(r);
    REQUIRE(::kill(old, SIGKILL) == 0);
    REQUIRE(run_until(h.loop, [&] { return h.supervisor->pid(r) != old && h.live(r) != nullptr; }));
  }
  CHECK(uid_line(h.supervisor->pid(Role::EdgeLow)) == uid_line_for(61001));
  CHECK(uid_line(h.supervisor->pid(Role::Filter)) == uid_line_for(61002));
  CHECK(netns_of(h.supervisor->pid(Role::Filter)) != host_ns);
}

TEST_CASE("a hung filter (no heartbeat) is killed by the watchdog and restarted", "[supervisor][watchdog]") {
  Harness h;
  h.start(true, Duration(1500));
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  const pid_t old_filter = h.supervisor->pid(Role::Filter);
  // A stopped process runs no event loop: exactly what a hung filter looks like.
  REQUIRE(::kill(old_filter, SIGSTOP) == 0);
  REQUIRE(run_until(h.loop, [&] {
    return h.supervisor->pid(Role::Filter) != old_filter && h.live(Role::Filter) != nullptr;
  }, std::chrono::seconds(10)));
  INFO(h.dump_logs());
  CHECK(h.logged("filter (pid " + std::to_string(old_filter) + ") sent no heartbeat for"));
  CHECK(h.logged("hung, killing it (SIGKILL) to restart it"));
  CHECK(h.logged("filter killed by signal 9 (SIGKILL)"));
  CHECK(process_gone(old_filter));
  // The edges kept heartbeating, so they were left alone.
  CHECK(h.supervisor->restarts(Role::EdgeLow) == 0);
  CHECK(h.supervisor->restarts(Role::EdgeHigh) == 0);
}

TEST_CASE("a filter crashing on a frame is restarted with a growing backoff", "[supervisor]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));

  // The "crash" frame travels edge(low) -> filter, which aborts.
  REQUIRE(h.live(Role::EdgeLow)->send("crash"));
  REQUIRE(run_until(h.loop, [&] { return h.supervisor->restarts(Role::Filter) == 1 && h.all_live(); }));
  REQUIRE(run_until(h.loop, [&] { return h.live(Role::EdgeLow)->reported("newfd filter"); }));
  // It died right after starting: the next restart waits twice as long.
  REQUIRE(h.live(Role::EdgeLow)->send("crash"));
  REQUIRE(run_until(h.loop, [&] { return h.supervisor->restarts(Role::Filter) == 2 && h.all_live(); }));
  INFO(h.dump_logs());
  CHECK(h.logged("filter killed by signal 6 (SIGABRT)"));
  const auto first = h.log_index("restarting filter in 20 ms");
  const auto second = h.log_index("restarting filter in 40 ms");
  CHECK(first < h.logs.size());
  CHECK(second < h.logs.size());
  CHECK(first < second);
}

TEST_CASE("a child that dies the same way N times in a row stops the supervisor with that reason", "[supervisor]") {
  Harness h;
  h.give_up_after = 3;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  for (unsigned i = 1; i <= 2; ++i) {
    REQUIRE(h.live(Role::EdgeLow)->send("crash"));
    REQUIRE(run_until(h.loop, [&] { return h.supervisor->restarts(Role::Filter) == i && h.all_live(); }));
    REQUIRE(run_until(h.loop, [&] { return h.live(Role::EdgeLow)->reported("newfd filter"); }));
    h.live(Role::EdgeLow)->reports.clear();
  }
  CHECK(h.supervisor->gave_up().empty());
  REQUIRE(h.live(Role::EdgeLow)->send("crash"));   // the third SIGABRT in a row
  REQUIRE(run_until(h.loop, [&] { return h.stopped; }));
  INFO(h.dump_logs());
  CHECK(h.supervisor->gave_up() ==
        "filter killed by signal 6 (SIGABRT) 3 times in a row, each within 60000 ms of its start; not restarting it "
        "again");
  CHECK(h.supervisor->restarts(Role::Filter) == 2);
  CHECK(h.logged("giving up: filter killed by signal 6 (SIGABRT) 3 times in a row"));
}

TEST_CASE("deaths of different kinds do not add up to giving up", "[supervisor]") {
  Harness h;
  h.give_up_after = 2;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  REQUIRE(h.live(Role::EdgeLow)->send("exit:3", "self"));
  REQUIRE(run_until(h.loop, [&] { return h.supervisor->restarts(Role::EdgeLow) == 1 && h.all_live(); }));
  const pid_t second = h.supervisor->pid(Role::EdgeLow);
  REQUIRE(::kill(second, SIGKILL) == 0);    // a different death: the count starts over
  REQUIRE(run_until(h.loop, [&] { return h.supervisor->restarts(Role::EdgeLow) == 2 && h.all_live(); }));
  INFO(h.dump_logs());
  CHECK(h.supervisor->gave_up().empty());
  CHECK_FALSE(h.stopped);
}

TEST_CASE("a killed edge is restarted and the filter gets a new link", "[supervisor]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  const pid_t old_high = h.supervisor->pid(Role::EdgeHigh);
  const pid_t filter = h.supervisor->pid(Role::Filter);
  REQUIRE(::kill(old_high, SIGKILL) == 0);
  REQUIRE(run_until(h.loop, [&] {
    return h.supervisor->pid(Role::EdgeHigh) != old_high && h.live(Role::EdgeHigh) &&
           h.live(Role::Filter)->reported("newfd edge:high");
  }));
  INFO(h.dump_logs());
  CHECK(h.logged("edge(high) killed by signal 9 (SIGKILL)"));
  CHECK(h.logged("restarted edge(high)"));
  CHECK(h.logged("handed new edge(high) link to filter"));
  CHECK(h.supervisor->pid(Role::Filter) == filter);  // the filter kept running
  CHECK(h.live(Role::Filter)->reported("closed edge:high"));
  CHECK_FALSE(h.live(Role::EdgeLow)->reported("newfd"));  // the other edge is untouched

  REQUIRE(h.live(Role::EdgeLow)->send("to the new edge"));
  REQUIRE(run_until(h.loop, [&] { return h.live(Role::EdgeHigh)->delivered("to the new edge"); }));
  REQUIRE(h.live(Role::EdgeHigh)->send("from the new edge"));
  REQUIRE(run_until(h.loop, [&] { return h.live(Role::EdgeLow)->delivered("from the new edge"); }));
  require_no_edge_to_edge_link(h);
}

TEST_CASE("an edge's exit status is logged", "[supervisor]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  REQUIRE(h.live(Role::EdgeLow)->send("exit:3", "self"));
  REQUIRE(run_until(h.loop, [&] { return h.supervisor->restarts(Role::EdgeLow) == 1 && h.all_live(); }));
  INFO(h.dump_logs());
  CHECK(h.logged("edge(low) exited with status 3"));
}

TEST_CASE("SIGHUP is forwarded to the filter", "[supervisor]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  REQUIRE(::kill(::getpid(), SIGHUP) == 0);  // blocked here, read by the supervisor's signalfd
  REQUIRE(run_until(h.loop, [&] { return h.live(Role::Filter)->reported("sighup"); }));
  CHECK(h.logged("forwarding SIGHUP to filter"));
  CHECK(h.all_live());
}

TEST_CASE("SIGTERM stops the edges, then the filter, and nothing restarts", "[supervisor]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  const pid_t pids[] = {h.supervisor->pid(Role::EdgeLow), h.supervisor->pid(Role::Filter),
                        h.supervisor->pid(Role::EdgeHigh)};
  REQUIRE(::kill(::getpid(), SIGTERM) == 0);
  REQUIRE(run_until(h.loop, [&] { return h.stopped; }));
  INFO(h.dump_logs());
  CHECK(h.supervisor->stopped());
  for (pid_t p : pids) CHECK(process_gone(p));  // dead and reaped
  for (Role r : {Role::EdgeLow, Role::Filter, Role::EdgeHigh}) CHECK(h.supervisor->pid(r) == -1);
  CHECK(h.logged("received SIGTERM; stopping children"));
  CHECK(h.log_index("stopping edge(low)") < h.log_index("stopping filter"));
  CHECK(h.log_index("stopping edge(high)") < h.log_index("stopping filter"));
  CHECK(h.log_index("edge(low) killed by signal 15 (SIGTERM)") < h.log_index("stopping filter"));
  CHECK(h.logged("filter killed by signal 15 (SIGTERM)"));
  CHECK(h.logged("all children stopped"));
  CHECK_FALSE(h.logged("restarting"));
}

TEST_CASE("a child exits when its supervisor goes away", "[supervisor][control]") {
  Harness h;
  // Play supervisor by hand: one edge child, then drop its control socket.
  int link[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link) == 0);
  UniqueFd filter_end(link[0]), edge_end(link[1]);
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  ChildFds fds;
  fds.ipc_fd = edge_end.get();
  fds.control_fd = child.get();
  const auto args = child_command_line(PORTCULLIS_TEST_CHILD, Role::EdgeLow, fds,
                                       {"--test-socket", h.socket_path()});
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::fcntl(fds.ipc_fd, F_SETFD, 0);
    ::fcntl(fds.control_fd, F_SETFD, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  child.reset();
  edge_end.reset();
  REQUIRE(run_until(h.loop, [&] {
    for (auto& p : h.peers) {
      if (p->pid == pid) return true;
    }
    return false;
  }));
  sup.reset();  // the supervisor "dies"
  int status = 0;
  REQUIRE(run_until(h.loop, [&] { return ::waitpid(pid, &status, WNOHANG) == pid; }));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
}

// ---- a standalone FMUC node: one child, no filter, no links --------------------

TEST_CASE("a node supervisor starts the node alone, restarts it, ignores SIGHUP and stops it", "[supervisor][node]") {
  Harness h;
  h.start(true, Duration(10000), std::nullopt, {}, false, /*node=*/true);
  REQUIRE(run_until(h.loop, [&] { return h.live(Role::Node) != nullptr; }));
  INFO(h.dump_logs());
  // Nothing else runs: no filter to route through, no edges of any side.
  for (Role r : {Role::EdgeLow, Role::Filter, Role::EdgeHigh}) CHECK(h.supervisor->pid(r) == -1);
  CHECK(h.live(Role::Node)->role == "node");
  CHECK(h.live(Role::Node)->link_fds.empty());
  CHECK(h.logged("started node"));

  const pid_t first = h.supervisor->pid(Role::Node);
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(run_until(h.loop, [&] { return h.supervisor->pid(Role::Node) != first && h.live(Role::Node); }));
  CHECK(h.logged("node killed by signal 9 (SIGKILL)"));
  CHECK(h.logged("restarted node"));
  CHECK_FALSE(h.logged("handed new"));   // no link to hand anyone
  for (Role r : {Role::EdgeLow, Role::Filter, Role::EdgeHigh}) CHECK(h.supervisor->pid(r) == -1);

  REQUIRE(::kill(::getpid(), SIGHUP) == 0);
  REQUIRE(run_until(h.loop, [&] { return h.logged("a node has no policy to reload"); }));
  const pid_t second = h.supervisor->pid(Role::Node);
  REQUIRE(::kill(::getpid(), SIGTERM) == 0);
  REQUIRE(run_until(h.loop, [&] { return h.stopped; }));
  CHECK(process_gone(second));
  CHECK(h.logged("stopping node"));
  CHECK(h.logged("all children stopped"));
}

namespace {

// Makes a test child answer status questions in `mode` (normal, silent, hostile).
void set_status_mode(Harness& h, Role r, const std::string& mode) {
  REQUIRE(h.live(r)->send("status-mode:" + mode, "self"));
  REQUIRE(run_until(h.loop, [&] { return h.live(r)->reported("status-mode " + mode); }));
}

}  // namespace

TEST_CASE("a status question reaches every child and each answer comes back as the child sent it",
          "[supervisor][query]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  std::optional<std::vector<Supervisor::ChildAnswer>> got;
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto answers) { got = std::move(answers); }));
  REQUIRE(run_until(h.loop, [&] { return got.has_value(); }));
  REQUIRE(got->size() == 3);
  for (const Supervisor::ChildAnswer& a : *got) {
    INFO(to_string(a.role));
    CHECK(a.asked);
    CHECK(a.answered);
    CHECK(a.pid == h.supervisor->pid(a.role));
    CHECK(a.reply == "{\"role\":\"" + std::string(to_string(a.role)) + "\",\"pid\":" + std::to_string(a.pid) + "}");
    CHECK(a.up_ms >= 0);
  }
}

TEST_CASE("a reload question goes to the filter alone, with who asked", "[supervisor][query]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  std::optional<std::vector<Supervisor::ChildAnswer>> got;
  REQUIRE(h.supervisor->query(Supervisor::Query::Reload, "uid=0 pid=42", [&](auto a) { got = std::move(a); }));
  REQUIRE(run_until(h.loop, [&] { return got.has_value(); }));
  for (const Supervisor::ChildAnswer& a : *got) {
    INFO(to_string(a.role));
    CHECK(a.asked == (a.role == Role::Filter));
    CHECK(a.answered == (a.role == Role::Filter));
  }
  REQUIRE(run_until(h.loop, [&] { return h.live(Role::Filter)->reported("reload uid=0 pid=42"); }));
  CHECK_FALSE(h.live(Role::EdgeLow)->reported("reload"));
}

TEST_CASE("a silent child is reported as not answering after the timeout; the others still answer",
          "[supervisor][query]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  set_status_mode(h, Role::EdgeHigh, "silent");
  std::optional<std::vector<Supervisor::ChildAnswer>> got;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto a) { got = std::move(a); }));
  REQUIRE(run_until(h.loop, [&] { return got.has_value(); }));
  CHECK(std::chrono::steady_clock::now() - t0 >= Supervisor::kQueryTimeout - Duration(50));
  for (const Supervisor::ChildAnswer& a : *got) {
    INFO(to_string(a.role));
    CHECK(a.answered == (a.role != Role::EdgeHigh));
  }
  // The next question is asked afresh (the silent round does not linger).
  set_status_mode(h, Role::EdgeHigh, "normal");
  got.reset();
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto a) { got = std::move(a); }));
  REQUIRE(run_until(h.loop, [&] { return got.has_value(); }));
  for (const Supervisor::ChildAnswer& a : *got) CHECK(a.answered);
}

TEST_CASE("a hostile child's forged, stale and oversized answers are not taken; its reply stays its own text",
          "[supervisor][query]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  set_status_mode(h, Role::EdgeLow, "hostile");
  std::optional<std::vector<Supervisor::ChildAnswer>> got;
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto a) { got = std::move(a); }));
  REQUIRE(run_until(h.loop, [&] { return got.has_value(); }));
  const Supervisor::ChildAnswer& low = got->at(0);
  REQUIRE(low.role == Role::EdgeLow);
  CHECK(low.answered);
  // Exactly the reply to this round: not the stale, wrong-kind or oversized ones.
  CHECK(low.reply == "\"},\"children\":[],\"pwned\":{\"\xff");
  CHECK(got->at(1).answered);
  CHECK(got->at(2).answered);
  CHECK(h.all_live());
}

TEST_CASE("a child that dies while asked ends the question at once", "[supervisor][query]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  set_status_mode(h, Role::EdgeHigh, "silent");
  std::optional<std::vector<Supervisor::ChildAnswer>> got;
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto a) { got = std::move(a); }));
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(h.live(Role::EdgeHigh)->send("exit:3", "self"));
  REQUIRE(run_until(h.loop, [&] { return got.has_value(); }));
  CHECK(std::chrono::steady_clock::now() - t0 < Supervisor::kQueryTimeout);
  const Supervisor::ChildAnswer& high = got->at(2);
  CHECK_FALSE(high.answered);
  CHECK(high.last_exit == "exited with status 3");
}

TEST_CASE("a reload waits only for the question being answered, and a question whose asker has gone is dropped",
          "[supervisor][query]") {
  Harness h;
  h.start();
  REQUIRE(run_until(h.loop, [&] { return h.all_live(); }));
  // The first status question stays open until the timeout: edge(high) is silent.
  set_status_mode(h, Role::EdgeHigh, "silent");
  std::vector<std::string> order;
  bool asker_gone = false;
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto) { order.push_back("status-1"); }));
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto) { order.push_back("status-gone"); },
                              [&] { return asker_gone; }));
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto) { order.push_back("status-2"); }));
  REQUIRE(h.supervisor->query(Supervisor::Query::Reload, "uid=0 pid=7", [&](auto) { order.push_back("reload"); }));
  asker_gone = true;   // its control-socket client hung up while it waited
  REQUIRE(run_until(h.loop, [&] { return order.size() >= 3; }));
  // The reload went ahead of the waiting status questions; the abandoned one never ran.
  CHECK(order == std::vector<std::string>{"status-1", "reload", "status-2"});
  CHECK(h.live(Role::Filter)->reported("reload uid=0 pid=7"));
  // A reload whose client has gone before its turn is not done, and the log says so.
  REQUIRE(h.supervisor->query(Supervisor::Query::Status, "", [&](auto) { order.push_back("status-3"); }));
  bool reload_gone = true;
  REQUIRE(h.supervisor->query(Supervisor::Query::Reload, "uid=0 pid=8", [&](auto) { order.push_back("reload-2"); },
                              [&] { return reload_gone; }));
  REQUIRE(run_until(h.loop, [&] { return h.logged("reload asked by uid=0 pid=8 not done"); }));
  CHECK_FALSE(h.live(Role::Filter)->reported("reload uid=0 pid=8"));
}
