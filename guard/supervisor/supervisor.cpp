#include "guard/supervisor/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "guard/ipc/fd_passing.h"

#if __has_include(<linux/close_range.h>)
#include <linux/close_range.h>
#endif

namespace portcullis::supervisor {

namespace {

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "unknown signal";
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    // The codes the forked child uses before exec (spawn()).
    const char* why = code == 124 ? " (cannot create its network namespace)"
                      : code == 125 ? " (cannot drop to its user)"
                      : code == 126 ? " (cannot keep its fds)"
                      : code == 127 ? " (cannot execute)"
                                    : "";
    return "exited with status " + std::to_string(code) + why;
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    std::string s = "killed by signal " + std::to_string(sig) + " (" + signal_name(sig) + ")";
    if (WCOREDUMP(status)) s += ", core dumped";
    return s;
  }
  return "ended with wait status " + std::to_string(status);
}

std::string ms(net::Duration d) { return std::to_string(d.count()) + " ms"; }

bool parse_fd(const std::string& s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

constexpr Role kEdges[] = {Role::EdgeLow, Role::EdgeHigh, Role::Node};   // what stops first

}  // namespace

std::string_view to_string(Role r) {
  switch (r) {
    case Role::EdgeLow: return "edge(low)";
    case Role::Filter: return "filter";
    case Role::EdgeHigh: return "edge(high)";
    case Role::Node: return "node";
  }
  return "unknown";
}

std::string_view link_tag(Role r) {
  switch (r) {
    case Role::EdgeLow: return "edge:low";
    case Role::Filter: return "filter";
    case Role::EdgeHigh: return "edge:high";
    case Role::Node: return "node";
  }
  return "unknown";
}

std::vector<std::string> child_command_line(const std::string& executable, Role role,
                                            const ChildFds& fds,
                                            const std::vector<std::string>& common_args) {
  std::vector<std::string> argv{executable};
  if (role == Role::Filter) {
    argv.insert(argv.end(), {"--role", "filter", "--low-fd", std::to_string(fds.low_fd),
                             "--high-fd", std::to_string(fds.high_fd), "--control-fd",
                             std::to_string(fds.control_fd)});
  } else if (role == Role::Node) {
    argv.insert(argv.end(), {"--role", "node", "--control-fd", std::to_string(fds.control_fd)});
  } else {
    argv.insert(argv.end(), {"--role", "edge", "--side", role == Role::EdgeLow ? "low" : "high",
                             "--ipc-fd", std::to_string(fds.ipc_fd), "--control-fd",
                             std::to_string(fds.control_fd)});
  }
  argv.insert(argv.end(), common_args.begin(), common_args.end());
  return argv;
}

std::optional<ChildArgs> parse_child_args(const std::vector<std::string>& args,
                                          std::string& error) {
  error.clear();
  std::optional<std::string> role, side;
  std::optional<int> ipc, control, low, high;
  ChildArgs out;
  auto take_fd = [&](std::size_t& i, const std::string& name, std::optional<int>& slot) {
    int v = -1;
    if (i + 1 >= args.size() || !parse_fd(args[i + 1], v) || v < 3) {
      error = name + " needs a file descriptor number >= 3";
      return false;
    }
    if (slot) {
      error = name + " given twice";
      return false;
    }
    slot = v;
    ++i;
    return true;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--role" || a == "--side") {
      auto& slot = a == "--role" ? role : side;
      if (i + 1 >= args.size()) {
        error = a + " needs a value";
        return std::nullopt;
      }
      if (slot) {
        error = a + " given twice";
        return std::nullopt;
      }
      slot = args[++i];
    } else if (a == "--ipc-fd") {
      if (!take_fd(i, a, ipc)) return std::nullopt;
    } else if (a == "--control-fd") {
      if (!take_fd(i, a, control)) return std::nullopt;
    } else if (a == "--low-fd") {
      if (!take_fd(i, a, low)) return std::nullopt;
    } else if (a == "--high-fd") {
      if (!take_fd(i, a, high)) return std::nullopt;
    } else {
      out.rest.push_back(a);
    }
  }
  if (!role) {
    if (side || ipc || control || low || high) error = "role arguments given without --role";
    return std::nullopt;
  }
  if (!control) {
    error = "--control-fd is required for a child";
    return std::nullopt;
  }
  out.fds.control_fd = *control;
  if (*role == "edge") {
    if (!side || (*side != "low" && *side != "high")) {
      error = "--role edge needs --side low or --side high";
      return std::nullopt;
    }
    if (!ipc) {
      error = "--role edge needs --ipc-fd";
      return std::nullopt;
    }
    if (low || high) {
      error = "--low-fd/--high-fd are filter arguments, not edge arguments";
      return std::nullopt;
    }
    out.role = *side == "low" ? Role::EdgeLow : Role::EdgeHigh;
    out.fds.ipc_fd = *ipc;
    if (*ipc == *control) {
      error = "--ipc-fd and --control-fd must differ";
      return std::nullopt;
    }
  } else if (*role == "filter") {
    if (!low || !high) {
      error = "--role filter needs --low-fd and --high-fd";
      return std::nullopt;
    }
    if (side || ipc) {
      error = "--side/--ipc-fd are edge arguments, not filter arguments";
      return std::nullopt;
    }
    if (*low == *high || *low == *control || *high == *control) {
      error = "--low-fd, --high-fd and --control-fd must differ";
      return std::nullopt;
    }
    out.role = Role::Filter;
    out.fds.low_fd = *low;
    out.fds.high_fd = *high;
  } else if (*role == "node") {
    if (side || ipc || low || high) {
      error = "--role node takes only --control-fd (a node has no filter and no sides)";
      return std::nullopt;
    }
    out.role = Role::Node;
  } else {
    error = "unknown --role '" + *role + "' (expected edge, filter or node)";
    return std::nullopt;
  }
  return out;
}

Supervisor::Supervisor(net::EventLoop& loop, SupervisorOptions options)
    : loop_(loop), options_(std::move(options)) {
  for (Role r : {Role::EdgeLow, Role::Filter, Role::EdgeHigh, Role::Node}) child(r).role = r;
  if (!options_.log) {
    options_.log = [](std::string_view line) {
      std::fprintf(stderr, "portcullisd: %.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
}

Supervisor::~Supervisor() {
  for (Child& c : children_) {
    if (c.restart_pending) loop_.cancel_timer(c.restart_timer);
    c.restart_pending = false;
  }
  if (kill_timer_armed_) loop_.cancel_timer(kill_timer_);
  if (watchdog_timer_) loop_.cancel_timer(watchdog_timer_);
  if (query_timer_) loop_.cancel_timer(query_timer_);
  for (Child& c : children_) {
    if (c.control) loop_.unwatch(c.control.get());
  }
  // Nothing may outlive the supervisor object: kill and reap synchronously.
  for (Child& c : children_) {
    if (c.pid <= 0) continue;
    ::kill(c.pid, SIGKILL);
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    c.pid = -1;
  }
  if (signal_fd_) {
    loop_.unwatch(signal_fd_.get());
    // Consume what is pending (the SIGCHLDs just caused, a late SIGTERM) so
    // unblocking does not deliver it with its default action.
    signalfd_siginfo si;
    while (::read(signal_fd_.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    signal_fd_.reset();
  }
  if (signals_blocked_) ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

void Supervisor::log(const std::string& line) { options_.log(line); }

Supervisor::FilterLink Supervisor::make_link() {
  FilterLink link;
  int fds[2];
  // Stream pair: frames are a byte stream with their own delimiting.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == 0) {
    link.filter_end.reset(fds[0]);
    link.edge_end.reset(fds[1]);
  }
  return link;
}

bool Supervisor::spawn(Role r, const ChildFds& fds, ipc::UniqueFd child_control,
                       std::string& error) {
  ChildFds with_control = fds;
  with_control.control_fd = child_control.get();
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  const std::vector<std::string> args =
      child_command_line(options_.executable, r, with_control, options_.common_args);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int keep[] = {with_control.control_fd, with_control.ipc_fd, with_control.low_fd,
                      with_control.high_fd};
  const pid_t parent = ::getpid();
  const char* exe = options_.executable.c_str();
  const SupervisorOptions::Identity id = options_.identities[static_cast<std::size_t>(r)];
  const bool drop = id.drop;
  const uid_t uid = id.uid;
  const gid_t gid = id.gid;
  const bool netns = options_.filter_netns && r == Role::Filter;
  const int exe_fd = exe_fd_.get();
  char** envp = environ;

  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    // Die with the supervisor; and if it already died before prctl, go now.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    // An empty network namespace: no interface but a loopback that is down.
    if (netns && ::unshare(CLONE_NEWNET) != 0) ::_exit(124);
    if (drop) {
      // Groups first, then gid, then uid: after setuid nothing can be changed back.
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(125);
      if (::setuid(0) == 0) ::_exit(125);   // the drop must be irreversible
      // A change of credentials clears the parent-death signal: set it again.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
    }
#ifdef CLOSE_RANGE_CLOEXEC
    // Belt and braces: whatever fd a library opened without CLOEXEC stays behind.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    for (int fd : keep) {
      if (fd < 0) continue;
      const int fl = ::fcntl(fd, F_GETFD);
      if (fl < 0 || ::fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0) ::_exit(126);
    }
    if (exe_fd >= 0) {
      ::execveat(exe_fd, "", argv.data(), envp, AT_EMPTY_PATH);
    } else {
      ::execv(exe, argv.data());
    }
    static constexpr char kMsg[] = "portcullisd: execv of child failed\n";
    [[maybe_unused]] const ssize_t ignored = ::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  Child& c = child(r);
  c.pid = pid;
  c.control = ipc::UniqueFd();  // set by the caller (the supervisor's end)
  c.started = loop_.now();
  return true;
}

void Supervisor::hand_link(Role to, Role other_end, ipc::UniqueFd fd) {
  Child& c = child(to);
  if (c.pid <= 0 || !c.control) return;  // down: it gets a fresh link when it restarts
  const ipc::FdSendResult sent = ipc::send_fd(c.control.get(), fd.get(), link_tag(other_end));
  if (sent.status == ipc::FdPassStatus::Ok) {
    log("handed new " + std::string(to_string(other_end)) + " link to " + std::string(to_string(to)));
    return;
  }
  if (sent.status == ipc::FdPassStatus::Closed) {
    // It is dying; its exit will be reaped and it restarts with a fresh link.
    log("could not hand new " + std::string(to_string(other_end)) + " link to " +
        std::string(to_string(to)) + ": " + sent.error);
    return;
  }
  // A child that does not read its control socket would stay cut off: restart it
  // rather than leave it half connected.
  log("could not hand new " + std::string(to_string(other_end)) + " link to " +
      std::string(to_string(to)) + " (" +
      (sent.status == ipc::FdPassStatus::WouldBlock ? std::string("control socket full")
                                                    : sent.error) +
      "); killing it to restart it");
  ::kill(c.pid, SIGKILL);
}

bool Supervisor::launch(Role r, const ChildFds& fds, bool initial) {
  ipc::UniqueFd sup_end, child_end;
  std::string error;
  if (!ipc::make_control_pair(sup_end, child_end)) {
    error = std::string("control socketpair: ") + std::strerror(errno);
  } else if (spawn(r, fds, std::move(child_end), error)) {
    Child& c = child(r);
    c.control = std::move(sup_end);
    c.last_heartbeat = c.last_heard = loop_.now();
    c.watchdog_killed = false;
    c.heartbeat_seen = false;
    watch_control(r);
    if (!initial) ++c.restarts;
    log(std::string(initial ? "started " : "restarted ") + std::string(to_string(r)) + " (pid " +
        std::to_string(c.pid) + (initial ? "" : ", restart #" + std::to_string(c.restarts)) + ")");
    return true;
  }
  if (initial) throw std::runtime_error("cannot start " + std::string(to_string(r)) + ": " + error);
  log("cannot restart " + std::string(to_string(r)) + ": " + error);
  return false;
}

void Supervisor::start() {
  if (started_) return;
  started_ = true;
  if (options_.handle_signals) {
    sigset_t set;
    ::sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) ::sigaddset(&set, sig);
    if (::sigprocmask(SIG_BLOCK, &set, &old_mask_) != 0) {
      throw std::runtime_error(std::string("sigprocmask: ") + std::strerror(errno));
    }
    signals_blocked_ = true;
    signal_fd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signal_fd_) throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
    loop_.watch(signal_fd_.get(), net::kReadable, [this](std::uint32_t) { on_signal_readable(); });
  }
  exe_fd_.reset(::open(options_.executable.c_str(), O_RDONLY | O_CLOEXEC));
  if (!exe_fd_) {
    throw std::runtime_error("cannot open " + options_.executable + ": " + std::strerror(errno));
  }
  if (options_.node) {
    launch(Role::Node, ChildFds{}, true);
    if (options_.watchdog_timeout.count() > 0) {
      watchdog_timer_ = loop_.add_timer(net::Duration(1000), [this] { check_heartbeats(); });
    }
    return;
  }
  FilterLink low = make_link();
  FilterLink high = make_link();
  if (!low.edge_end || !high.edge_end) {
    throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
  }
  ChildFds filter_fds;
  filter_fds.low_fd = low.filter_end.get();
  filter_fds.high_fd = high.filter_end.get();
  launch(Role::Filter, filter_fds, true);
  ChildFds low_fds;
  low_fds.ipc_fd = low.edge_end.get();
  launch(Role::EdgeLow, low_fds, true);
  ChildFds high_fds;
  high_fds.ipc_fd = high.edge_end.get();
  launch(Role::EdgeHigh, high_fds, true);
  // Our copies of the link ends close here: each end now lives only in its child.
  if (options_.watchdog_timeout.count() > 0) {
    watchdog_timer_ = loop_.add_timer(net::Duration(1000), [this] { check_heartbeats(); });
  }
}

void Supervisor::watch_control(Role r) {
  const int fd = child(r).control.get();
  loop_.watch(fd, net::kReadable, [this, r](std::uint32_t) { on_control_readable(r); });
}

void Supervisor::on_control_readable(Role r) {
  Child& c = child(r);
  if (!c.control) return;
  // Children send heartbeats ('h') and answers to questions (see ChildControl);
  // anything readable proves the child's loop ran. EOF (the child is exiting)
  // is left to SIGCHLD. Bounded per wakeup: a flooding child cannot starve the loop.
  if (reply_buf_.empty()) reply_buf_.resize(kMaxReply);
  for (int i = 0; i < 64; ++i) {
    // Only a child that owes the current question an answer is read in
    // full; any other message is read into a few bytes (the kernel copies no
    // more), so a child flooding its socket costs us little. MSG_TRUNC: the
    // real length of a longer message, which is then ignored.
    const std::size_t room = owes_answer(r) ? reply_buf_.size() : 16;
    const ssize_t n = ::recv(c.control.get(), reply_buf_.data(), room, MSG_DONTWAIT | MSG_TRUNC);
    if (n > 0) {
      // Anything proves the child's loop ran (the watchdog); only the
      // heartbeat itself sets the heartbeat age the status shows, so a reply
      // cannot pass for one.
      c.last_heard = loop_.now();
      c.heartbeat_seen = true;
      const auto len = static_cast<std::size_t>(n);
      if (len == 1 && reply_buf_[0] == 'h') c.last_heartbeat = c.last_heard;
      if (len > 1 && len <= room) on_reply(r, reply_buf_.data(), len);
      if (!c.control) return;
      continue;
    }
    if (n == 0) loop_.unwatch(c.control.get());
    break;
  }
}

namespace {
bool belongs(Role r, bool node) { return node ? r == Role::Node : r != Role::Node; }
}  // namespace

bool Supervisor::query(Query q, std::string who, std::function<void(std::vector<ChildAnswer>)> done,
                       std::function<bool()> gone) {
  if (stopping_ || queries_.size() >= kMaxQueries) return false;
  PendingQuery pq{q, std::move(who), std::move(done), std::move(gone)};
  auto at = queries_.end();
  if (q == Query::Reload) {
    at = queries_.begin() + (query_active_ ? 1 : 0);
    while (at != queries_.end() && at->q == Query::Reload) ++at;
  }
  queries_.insert(at, std::move(pq));
  next_query();
  return true;
}

void Supervisor::next_query() {
  if (query_active_) return;
  while (!queries_.empty() && queries_.front().gone && queries_.front().gone()) {
    // Its client hung up while it waited: nobody would read the answer. A
    // reload said so, since its asker may have expected it to happen anyway.
    if (queries_.front().q == Query::Reload)
      log("control: reload asked by " + queries_.front().who + " not done: its client went away before its turn");
    queries_.pop_front();
  }
  if (queries_.empty()) return;
  query_active_ = true;
  ++query_round_;
  const PendingQuery& pq = queries_.front();
  answers_.clear();
  std::string text = (pq.q == Query::Status ? "status " : "reload ") + std::to_string(query_round_);
  if (pq.q == Query::Reload && !pq.who.empty()) text += " " + pq.who;
  if (text.size() > ipc::kMaxFdTag) text.resize(ipc::kMaxFdTag);
  bool any = false;
  for (const Child& c : children_) {
    if (!belongs(c.role, options_.node)) continue;
    ChildAnswer a;
    a.role = c.role;
    a.pid = c.pid;
    const bool target = pq.q == Query::Status || c.role == Role::Filter || c.role == Role::Node;
    if (target && c.pid > 0 && c.control) {
      a.asked = ::send(c.control.get(), text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL) ==
                static_cast<ssize_t>(text.size());
      any = any || a.asked;
    }
    answers_.push_back(std::move(a));
  }
  std::weak_ptr<bool> token = alive_;
  if (!any) {
    const std::uint32_t round_now = query_round_;
    loop_.post([this, token, round_now] {
      if (!token.expired() && query_active_ && query_round_ == round_now) finish_query();
    });
    return;
  }
  query_timer_ = loop_.add_timer(kQueryTimeout, [this] {
    query_timer_ = 0;
    finish_query();
  });
}

bool Supervisor::owes_answer(Role r) const {
  if (!query_active_) return false;
  for (const ChildAnswer& a : answers_) {
    if (a.role == r && a.asked && !a.answered) return true;
  }
  return false;
}

void Supervisor::on_reply(Role r, const char* data, std::size_t n) {
  if (!query_active_) return;
  const char want = queries_.front().q == Query::Status ? 'S' : 'R';
  if (data[0] != want) return;
  std::size_t i = 1;
  std::uint32_t round = 0;
  while (i < n && i < 12 && data[i] >= '0' && data[i] <= '9') round = round * 10 + static_cast<std::uint32_t>(data[i++] - '0');
  if (i >= n || data[i] != '\n' || round != query_round_) return;   // stale or malformed: not an answer
  bool waiting = false;
  for (ChildAnswer& a : answers_) {
    if (a.role == r && a.asked && !a.answered && a.pid == child(r).pid) {
      a.answered = true;
      a.reply.assign(data + i + 1, n - i - 1);
    }
    if (a.asked && !a.answered && a.pid == child(a.role).pid) waiting = true;
  }
  if (waiting) return;
  std::weak_ptr<bool> token = alive_;
  const std::uint32_t round_now = query_round_;
  loop_.post([this, token, round_now] {
    if (!token.expired() && query_active_ && query_round_ == round_now) finish_query();
  });
}

void Supervisor::finish_query() {
  if (!query_active_) return;
  if (query_timer_) loop_.cancel_timer(query_timer_);
  query_timer_ = 0;
  const auto now = loop_.now();
  for (ChildAnswer& a : answers_) {
    const Child& c = child(a.role);
    a.pid = c.pid;
    a.restarts = c.restarts;
    a.last_exit = c.last_exit;
    if (c.pid > 0) {
      a.up_ms = std::chrono::duration_cast<net::Duration>(now - c.started).count();
      if (c.heartbeat_seen) a.heartbeat_age_ms = std::chrono::duration_cast<net::Duration>(now - c.last_heartbeat).count();
    }
  }
  PendingQuery pq = std::move(queries_.front());
  queries_.pop_front();
  query_active_ = false;
  std::vector<ChildAnswer> out = std::move(answers_);
  answers_.clear();
  std::weak_ptr<bool> token = alive_;
  if (pq.done) pq.done(std::move(out));
  if (!token.expired()) next_query();
}

void Supervisor::check_heartbeats() {
  watchdog_timer_ = 0;
  if (stopping_) return;
  const auto now = loop_.now();
  for (Child& c : children_) {
    if (c.pid <= 0 || c.watchdog_killed) continue;
    const auto silent = std::chrono::duration_cast<net::Duration>(now - c.last_heard);
    // Before its first heartbeat a child is still starting (policy load, archive
    // recovery): it gets three timeouts, at least 30 s.
    const net::Duration limit = c.heartbeat_seen ? options_.watchdog_timeout
                                                 : std::max(options_.watchdog_timeout * 3, net::Duration(30000));
    if (silent < limit) continue;
    log(std::string(to_string(c.role)) + " (pid " + std::to_string(c.pid) + ") sent no heartbeat for " +
        ms(silent) + ": hung, killing it (SIGKILL) to restart it");
    c.watchdog_killed = true;
    ::kill(c.pid, SIGKILL);
  }
  watchdog_timer_ = loop_.add_timer(net::Duration(1000), [this] { check_heartbeats(); });
}

void Supervisor::restart(Role r) {
  child(r).restart_pending = false;
  if (stopping_) return;
  if (r == Role::Node) {
    if (!launch(Role::Node, ChildFds{}, false)) schedule_restart(r);
    return;
  }
  if (r == Role::Filter) {
    FilterLink low = make_link();
    FilterLink high = make_link();
    bool ok = low.edge_end && high.edge_end;
    if (ok) {
      ChildFds fds;
      fds.low_fd = low.filter_end.get();
      fds.high_fd = high.filter_end.get();
      ok = launch(Role::Filter, fds, false);
    } else {
      log(std::string("cannot restart filter: socketpair: ") + std::strerror(errno));
    }
    if (!ok) return schedule_restart(r);
    hand_link(Role::EdgeLow, Role::Filter, std::move(low.edge_end));
    hand_link(Role::EdgeHigh, Role::Filter, std::move(high.edge_end));
    return;
  }
  FilterLink link = make_link();
  bool ok = static_cast<bool>(link.edge_end);
  if (ok) {
    ChildFds fds;
    fds.ipc_fd = link.edge_end.get();
    ok = launch(r, fds, false);
  } else {
    log("cannot restart " + std::string(to_string(r)) + ": socketpair: " + std::strerror(errno));
  }
  if (!ok) return schedule_restart(r);
  hand_link(Role::Filter, r, std::move(link.filter_end));
}

void Supervisor::schedule_restart(Role r) {
  Child& c = child(r);
  if (stopping_ || c.restart_pending) return;
  if (c.backoff.count() <= 0) c.backoff = options_.initial_backoff;
  const net::Duration delay = c.backoff;
  c.backoff = std::min(c.backoff * 2, options_.max_backoff);
  c.restart_pending = true;
  c.restart_timer = loop_.add_timer(delay, [this, r] { restart(r); });
  log("restarting " + std::string(to_string(r)) + " in " + ms(delay));
}

void Supervisor::on_child_exit(Role r, int status) {
  Child& c = child(r);
  const auto up = std::chrono::duration_cast<net::Duration>(loop_.now() - c.started);
  c.pid = -1;
  if (c.control) loop_.unwatch(c.control.get());
  c.control.reset();
  c.last_exit = describe_status(status);
  log(std::string(to_string(r)) + " " + c.last_exit + " after " + ms(up));
  if (query_active_) {
    // It will not answer the question being asked: do not wait for it.
    bool waiting = false;
    for (const ChildAnswer& a : answers_) {
      if (a.asked && !a.answered && a.pid == child(a.role).pid) waiting = true;
    }
    std::weak_ptr<bool> token = alive_;
    const std::uint32_t round_now = query_round_;
    if (!waiting) {
      loop_.post([this, token, round_now] {
        if (!token.expired() && query_active_ && query_round_ == round_now) finish_query();
      });
    }
  }
  if (stopping_) return check_stop_progress();
  // A child that ran well for a while starts over with the shortest backoff; one
  // that keeps dying right after start backs off further each time.
  const bool quick = up < options_.stable_after;
  if (!quick) c.backoff = options_.initial_backoff;
  // Only quick deaths count; a stable run starts the count over.
  c.same_deaths = !quick ? 0 : status == c.last_status ? c.same_deaths + 1 : 1;
  c.last_status = status;
  if (options_.give_up_after > 0 && c.same_deaths >= options_.give_up_after) {
    gave_up_ = std::string(to_string(r)) + " " + describe_status(status) + " " + std::to_string(c.same_deaths) +
               " times in a row, each within " + ms(options_.stable_after) + " of its start; not restarting it again";
    log("giving up: " + gave_up_);
    return stop();
  }
  schedule_restart(r);
}

void Supervisor::reap() {
  for (Child& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(c.pid, &status, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == c.pid) on_child_exit(c.role, status);
  }
}

void Supervisor::reload() {
  const Child& f = child(Role::Filter);
  if (options_.node) {
    log("SIGHUP received: a node has no policy to reload; ignored");
    return;
  }
  if (f.pid > 0) {
    log("forwarding SIGHUP to filter (pid " + std::to_string(f.pid) + ")");
    ::kill(f.pid, SIGHUP);
  } else {
    log("SIGHUP received while the filter is down; nothing to reload");
  }
}

void Supervisor::on_signal_readable() {
  bool child_exited = false;
  signalfd_siginfo si;
  for (;;) {
    const ssize_t n = ::read(signal_fd_.get(), &si, sizeof si);
    if (n != static_cast<ssize_t>(sizeof si)) break;
    switch (si.ssi_signo) {
      case SIGCHLD:
        child_exited = true;
        break;
      case SIGTERM:
      case SIGINT:
        log("received " + signal_name(static_cast<int>(si.ssi_signo)) + "; stopping children");
        stop();
        break;
      case SIGHUP:
        reload();
        break;
      default:
        break;
    }
  }
  // SIGCHLDs coalesce: one read may stand for several exits, so check every child.
  if (child_exited) reap();
}

void Supervisor::set_on_stopped(std::function<void()> cb) { on_stopped_ = std::move(cb); }

void Supervisor::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (Child& c : children_) {
    if (c.restart_pending) loop_.cancel_timer(c.restart_timer);
    c.restart_pending = false;
  }
  // Edges first: they stop taking traffic from the sides; then the filter.
  stop_stage(true);
  check_stop_progress();
}

void Supervisor::stop_stage(bool edges) {
  stopping_edges_ = edges;
  std::vector<Role> roles;
  if (edges) {
    roles.assign(std::begin(kEdges), std::end(kEdges));
  } else {
    roles.push_back(Role::Filter);
  }
  bool any = false;
  for (Role r : roles) {
    if (!running(r)) continue;
    any = true;
    log("stopping " + std::string(to_string(r)) + " (pid " + std::to_string(child(r).pid) + ")");
    ::kill(child(r).pid, SIGTERM);
  }
  if (!any) return;
  if (kill_timer_armed_) loop_.cancel_timer(kill_timer_);
  kill_timer_armed_ = true;
  kill_timer_ = loop_.add_timer(options_.stop_grace, [this, roles] {
    kill_timer_armed_ = false;
    for (Role r : roles) {
      if (!running(r)) continue;
      log(std::string(to_string(r)) + " did not stop within " + ms(options_.stop_grace) +
          "; sending SIGKILL");
      ::kill(child(r).pid, SIGKILL);
    }
  });
}

void Supervisor::check_stop_progress() {
  if (!stopping_ || stopped_) return;
  if (stopping_edges_) {
    if (running(Role::EdgeLow) || running(Role::EdgeHigh) || running(Role::Node)) return;
    if (kill_timer_armed_) loop_.cancel_timer(kill_timer_);
    kill_timer_armed_ = false;
    stop_stage(false);
  }
  if (running(Role::Filter)) return;
  if (kill_timer_armed_) loop_.cancel_timer(kill_timer_);
  kill_timer_armed_ = false;
  stopped_ = true;
  log("all children stopped");
  if (on_stopped_) {
    std::weak_ptr<bool> token = alive_;
    loop_.post([this, token] {
      if (!token.expired() && on_stopped_) on_stopped_();
    });
  }
}

pid_t Supervisor::pid(Role r) const { return child(r).pid; }
unsigned Supervisor::restarts(Role r) const { return child(r).restarts; }

}  // namespace portcullis::supervisor
