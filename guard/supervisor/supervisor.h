// portcullisd's supervisor: starts the three children of the sandwich,
// edge(low), filter and edge(high), watches them and restarts a dead one.
//
// The children share nothing but socketpairs carrying frames:
//   edge(low) <-> filter   and   filter <-> edge(high).
// The only link the supervisor can make is a FilterLink (filter <-> one edge);
// there is no way to express an edge <-> edge pair, so none can exist.
//
// Each child is the same executable re-executed (execv) with role arguments
// (child_command_line), so it starts from a fresh address space and inherits
// only the fds meant for it (its link ends and its control socket; every other
// fd is close-on-exec). The supervisor keeps a control socketpair with each
// child. When it restarts a child it creates fresh links to the neighbours:
// the new child gets its ends at exec, the surviving neighbours get theirs over
// their control socket (SCM_RIGHTS) tagged with what the fd connects to:
//   restarted filter  -> edge(low) and edge(high) receive tag "filter"
//   restarted edge(x) -> filter receives tag "edge:low" / "edge:high"
// A neighbour that is itself down gets nothing; it receives a fresh link at its
// own restart.
//
// Signals (when handle_signals): SIGCHLD -> reap and schedule a restart;
// SIGTERM/SIGINT -> stop(); SIGHUP -> forwarded to the filter. They are read
// through a signalfd on the event loop, so the process must be single-threaded
// (the signals are blocked with sigprocmask while the Supervisor lives).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guard/ipc/unique_fd.h"
#include "guard/net/event_loop.h"

namespace portcullis::supervisor {

// Node: the one child of a standalone FMUC node (SupervisorOptions::node): no
// filter, no links, no other side.
enum class Role { EdgeLow = 0, Filter = 1, EdgeHigh = 2, Node = 3 };

// "edge(low)", "filter", "edge(high)", "node": the names used in logs.
std::string_view to_string(Role r);
// Tag sent with a fresh fd to a neighbour: "edge:low", "filter", "edge:high".
std::string_view link_tag(Role r);

// The fds a child inherits at exec (numbers as seen by the child).
struct ChildFds {
  int control_fd = -1;
  int ipc_fd = -1;   // edge: its link to the filter
  int low_fd = -1;   // filter: its link to edge(low)
  int high_fd = -1;  // filter: its link to edge(high)
};

// argv of a child, argv[0] = `executable`:
//   <exe> --role edge --side low|high --ipc-fd N --control-fd M [common args]
//   <exe> --role filter --low-fd N --high-fd M --control-fd C [common args]
//   <exe> --role node --control-fd M [common args]
std::vector<std::string> child_command_line(const std::string& executable, Role role,
                                            const ChildFds& fds,
                                            const std::vector<std::string>& common_args);

// What a child finds on its command line.
struct ChildArgs {
  Role role = Role::Filter;
  ChildFds fds;
  std::vector<std::string> rest;  // every argument that is not a role argument, in order
};

// Parses a child command line (argv[1..]); returns nullopt and sets `error` if
// there is no --role, or the role's fds are missing, invalid or duplicated.
// Arguments that are not role arguments are returned in `rest` untouched.
// Without --role it returns nullopt and leaves `error` empty (the supervisor
// itself is running).
std::optional<ChildArgs> parse_child_args(const std::vector<std::string>& args,
                                          std::string& error);

struct SupervisorOptions {
  std::string executable = "/proc/self/exe";  // what each child execs
  std::vector<std::string> common_args;       // appended to every child's argv
  net::Duration initial_backoff{250};
  net::Duration max_backoff{30000};
  // A child that stayed up this long gets its backoff reset on its next death.
  net::Duration stable_after{60000};
  // A child that dies the same way (same exit status or signal) this many
  // times in a row, each time before stable_after, stops the appliance: the
  // cause will not go away by restarting (a key that became unreadable, a full
  // disk) and a supervisor that restarts forever looks healthy. 0: never.
  unsigned give_up_after = 0;
  // stop(): how long each stage waits after SIGTERM before SIGKILL.
  net::Duration stop_grace{5000};
  // Watchdog: every child's ChildControl sends a heartbeat from its event loop
  // (ChildControl::kHeartbeatEvery). A child whose heartbeat has not been seen
  // for this long is hung: it is killed (SIGKILL) and restarts like a crashed
  // one, so its neighbours bounce what it held. 0 disables the watchdog.
  net::Duration watchdog_timeout{10000};
  // Privilege separation (the supervisor must run as root): each child with
  // `drop` set runs as that uid/gid with no supplementary groups, so it can
  // read only what its user may (an edge: its own side's TLS key and secret;
  // the filter: the audit signing key). Indexed by Role.
  struct Identity {
    bool drop = false;
    uid_t uid = 0;
    gid_t gid = 0;
  };
  std::array<Identity, 4> identities{};
  // A standalone FMUC node: start() launches Role::Node alone (no filter, no
  // edges, no links between children); restarts, watchdog and stop as usual.
  bool node = false;
  // The filter starts in a fresh, empty network namespace (only a down
  // loopback), made while the child is still root, before it drops.
  bool filter_netns = false;
  // Own SIGCHLD/SIGTERM/SIGINT/SIGHUP through a signalfd on the loop.
  bool handle_signals = true;
  // One line per event (no trailing newline). Default: stderr.
  std::function<void(std::string_view)> log;
};

class Supervisor {
 public:
  Supervisor(net::EventLoop& loop, SupervisorOptions options);
  // Kills (SIGKILL) and reaps any child still running, restores the signal mask.
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts the three children (a node: its one child). Throws std::runtime_error if the links, control
  // sockets or signalfd cannot be created or fork fails (control plane).
  void start();

  // Orderly stop: SIGTERM to both edges, wait for them (SIGKILL after
  // stop_grace), then the same for the filter; no more restarts. When all are
  // gone, on_stopped is called (from the loop). Idempotent.
  void stop();
  void set_on_stopped(std::function<void()> cb);

  // Reaps children now (what SIGCHLD does); for owners that set
  // handle_signals = false and watch children themselves.
  void reap();
  // Forwards SIGHUP to the filter (what SIGHUP does).
  void reload();

  // A question from the control socket (portcullisctl). Status goes to every
  // running child, Reload to the filter (a node: to the node). Questions are
  // asked one at a time, in order; `done` is called from the loop once every
  // asked child has answered or kQueryTimeout has passed, with one answer per
  // child of this appliance, in Role order. A child's reply is its own claim
  // (a compromised edge can say anything): it is bounded, kept as text and
  // never parsed here. Returns false (and never calls `done`) when
  // kMaxQueries are already waiting or the supervisor is stopping. A
  // question whose `gone` says its asker left is dropped before it is asked;
  // a Reload goes ahead of the Status questions still waiting, so a flood of
  // status questions delays it by one round at most.
  enum class Query { Status, Reload };
  struct ChildAnswer {
    Role role = Role::Filter;
    pid_t pid = -1;                  // -1: not running (waiting for its restart)
    unsigned restarts = 0;
    std::int64_t up_ms = -1;         // since its (re)start, -1 when not running
    std::int64_t heartbeat_age_ms = -1;
    std::string last_exit;           // how it last ended ("exited with status 2"), "" if never
    bool asked = false;
    bool answered = false;
    std::string reply;               // its JSON text, unparsed
  };
  bool query(Query q, std::string who, std::function<void(std::vector<ChildAnswer>)> done,
             std::function<bool()> gone = {});
  static constexpr net::Duration kQueryTimeout{2000};
  static constexpr std::size_t kMaxQueries = 32;
  // The longest message read from a child's control socket (its reply).
  static constexpr std::size_t kMaxReply = 64 * 1024;

  pid_t pid(Role r) const;          // -1 while not running
  unsigned restarts(Role r) const;  // restarts so far
  // Why the supervisor stopped by itself (give_up_after); empty otherwise.
  const std::string& gave_up() const { return gave_up_; }
  bool stopping() const { return stopping_; }
  bool stopped() const { return stopped_; }

 private:
  struct Child {
    Role role = Role::Filter;
    pid_t pid = -1;
    ipc::UniqueFd control;              // supervisor's end
    net::TimePoint started{};
    net::Duration backoff{0};
    bool restart_pending = false;
    net::TimerId restart_timer = 0;
    unsigned restarts = 0;
    int last_status = -1;        // of its last quick death
    unsigned same_deaths = 0;    // quick deaths in a row with that status
    net::TimePoint last_heartbeat{};    // its last heartbeat ('h'), for status
    net::TimePoint last_heard{};        // anything it sent, for the watchdog
    bool watchdog_killed = false;       // killed for silence; its exit says so
    bool heartbeat_seen = false;        // since its (re)start
    std::string last_exit;              // describe_status of its last exit
  };

  // The only kind of link there is: filter <-> one edge.
  struct FilterLink {
    ipc::UniqueFd filter_end;
    ipc::UniqueFd edge_end;
  };
  static FilterLink make_link();

  Child& child(Role r) { return children_[static_cast<std::size_t>(r)]; }
  const Child& child(Role r) const { return children_[static_cast<std::size_t>(r)]; }
  void log(const std::string& line);
  bool spawn(Role r, const ChildFds& fds, ipc::UniqueFd child_control, std::string& error);
  // Creates the control pair and spawns `r` with `fds`. Initial start: throws on
  // failure; restart: logs and returns false.
  bool launch(Role r, const ChildFds& fds, bool initial);
  void hand_link(Role to, Role other_end, ipc::UniqueFd fd);
  void on_child_exit(Role r, int status);
  void schedule_restart(Role r);
  void restart(Role r);
  void on_signal_readable();
  void on_control_readable(Role r);
  void on_reply(Role r, const char* data, std::size_t n);
  bool owes_answer(Role r) const;
  void next_query();
  void finish_query();
  void watch_control(Role r);
  void check_heartbeats();
  void stop_stage(bool edges);
  void check_stop_progress();
  bool running(Role r) const { return child(r).pid > 0; }

  net::EventLoop& loop_;
  SupervisorOptions options_;
  std::array<Child, 4> children_;
  ipc::UniqueFd signal_fd_;
  // The executable, opened at start: children exec it through this fd, so a
  // child dropped to an unprivileged user does not need search permission on
  // the directories above it (a build tree under a 0700 home).
  ipc::UniqueFd exe_fd_;
  bool signals_blocked_ = false;
  sigset_t old_mask_{};
  bool started_ = false;
  std::string gave_up_;
  bool stopping_ = false;
  bool stopped_ = false;
  bool stopping_edges_ = false;
  net::TimerId kill_timer_ = 0;
  bool kill_timer_armed_ = false;
  std::function<void()> on_stopped_;
  net::TimerId watchdog_timer_ = 0;
  struct PendingQuery {
    Query q = Query::Status;
    std::string who;
    std::function<void(std::vector<ChildAnswer>)> done;
    std::function<bool()> gone;
  };
  std::deque<PendingQuery> queries_;     // front: being asked when query_active_
  bool query_active_ = false;
  std::uint32_t query_round_ = 0;
  std::vector<ChildAnswer> answers_;
  net::TimerId query_timer_ = 0;
  std::vector<char> reply_buf_;
  // Posted callbacks check this: the owner may destroy us before they run.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis::supervisor
