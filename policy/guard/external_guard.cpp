// ExternalGuard: process management and the PCG1 exchange on the event loop.
//
// User callbacks are only ever called at the top of a loop callback (I/O,
// timer, post) or directly from check(), never from deep inside the state
// machine, and each call is followed by a liveness check: a callback may
// destroy the guard.
#include "policy/guard/external_guard.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>

#include "guard/config/config.h"
#include "policy/guard/guard_protocol.h"

namespace portcullis::policy {

namespace {

using Callback = std::function<void(GuardResult)>;

struct Pending {
  std::string request;  // the encoded frame
  std::string body;     // what the echo must equal
  Callback done;
};

enum class Failure { Crash, Timeout, Garbage, Changed };

// Printable ASCII only, bounded: the reason goes into logs and the audit record.
std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out.push_back(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F ? c : '?');
  }
  if (s.size() > max) out += "...";
  return out;
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// What the child reports on its status pipe before exec (see spawn()).
struct ChildPlan {
  const char* path;
  char* const* argv;
  char* const* envp;
  pid_t parent;
  bool root;
  bool drop_user;
  uid_t uid;
  gid_t gid;
  bool isolation_waived;
  const char* const* hide_dirs;    // nullptr-terminated
  const char* const* hide_files;   // nullptr-terminated
  const sock_fprog* socket_filter;
};

// Landlock (kernel ABI 6 or later; Debian 12's headers predate it, so the
// constants are written here): the guard may open no file for writing but
// /dev/null, create or remove nothing, bind or connect no TCP port, and signal
// or reach by abstract AF_UNIX socket nothing outside its own domain. It runs as
// the filter's user, so without this it could signal the filter or rewrite
// files that user owns. Only raw syscalls: this runs between fork and exec.
constexpr long kSysLandlockCreateRuleset = 444, kSysLandlockAddRule = 445, kSysLandlockRestrictSelf = 446;
struct LandlockRulesetAttr {
  std::uint64_t handled_access_fs, handled_access_net, scoped;
};
struct __attribute__((packed)) LandlockPathBeneath {
  std::uint64_t allowed_access;
  std::int32_t parent_fd;
};
constexpr std::uint64_t kFsWriteFile = 1ULL << 1, kFsTruncate = 1ULL << 14;
// Every write-side right of ABI 6: write, remove dir/file, make char/dir/reg/
// sock/fifo/block/sym, refer, truncate, ioctl on devices.
constexpr std::uint64_t kFsWriteRights = kFsWriteFile | (1ULL << 4) | (1ULL << 5) | (1ULL << 6) | (1ULL << 7) |
                                         (1ULL << 8) | (1ULL << 9) | (1ULL << 10) | (1ULL << 11) | (1ULL << 12) |
                                         (1ULL << 13) | kFsTruncate | (1ULL << 15);
constexpr std::uint64_t kNetBindConnectTcp = 1ULL | 2ULL;
constexpr std::uint64_t kScopeAbstractUnix = 1ULL, kScopeSignal = 2ULL;
constexpr int kLandlockRulePathBeneath = 1;
constexpr long kLandlockMinAbi = 6;

// 0 when the guard is confined, else an errno.
int confine_with_landlock() {
  const long abi = ::syscall(kSysLandlockCreateRuleset, nullptr, 0, 1U /* LANDLOCK_CREATE_RULESET_VERSION */);
  if (abi < 0) return errno;
  if (abi < kLandlockMinAbi) return EOPNOTSUPP;
  const LandlockRulesetAttr attr{kFsWriteRights, kNetBindConnectTcp, kScopeAbstractUnix | kScopeSignal};
  const int ruleset = static_cast<int>(::syscall(kSysLandlockCreateRuleset, &attr, sizeof attr, 0U));
  if (ruleset < 0) return errno;
  const int devnull = ::open("/dev/null", O_PATH | O_CLOEXEC);
  if (devnull >= 0) {
    const LandlockPathBeneath rule{kFsWriteFile | kFsTruncate, devnull};
    if (::syscall(kSysLandlockAddRule, ruleset, kLandlockRulePathBeneath, &rule, 0U) != 0) return errno;
    ::close(devnull);
  }
  if (::syscall(kSysLandlockRestrictSelf, ruleset, 0U) != 0) return errno;
  ::close(ruleset);
  return 0;
}

// A classic-BPF seccomp filter, built before fork and installed in the child
// with one prctl (async-signal-safe): socket(2) fails with EACCES. An empty
// network namespace stops IP, but not an AF_UNIX socket aimed at a socket
// file of the host (a resolver, the system bus); Landlock ABI 6 scopes only
// abstract ones. Socket pairs have no far end and stay. The filter's own
// seccomp filter, inherited, already kills foreign-ABI calls; this one also
// refuses the x32 number of socket for a guard started outside the filter.
const sock_fprog* guard_socket_filter() {
  static sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(offsetof(seccomp_data, nr))),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(__NR_socket), 2, 0),
#if defined(__x86_64__)
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x40000000U | static_cast<std::uint32_t>(__NR_socket), 1, 0),
#else
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(__NR_socket), 1, 0),
#endif
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & SECCOMP_RET_DATA)),
  };
  static const sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  return &prog;
}

// Runs in the forked child: only async-signal-safe calls. Fd 3 is the status
// pipe: one isolation byte ('R' netns as root, 'U' user+net namespace, 'N'
// none; '1', '2', '0' for the same when Landlock confines it too), then on failure a stage
// byte and the errno; EOF at exec means success.
[[noreturn]] void child_exec(const ChildPlan& plan, int stdin_fd, int stdout_fd, int status_fd) {
  auto report = [](char stage, int err) {
    char buf[1 + sizeof(int)];
    buf[0] = stage;
    std::memcpy(buf + 1, &err, sizeof(int));
    [[maybe_unused]] ssize_t n = ::write(3, buf, sizeof(buf));
    ::_exit(127);
  };
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0) ::_exit(127);
  if (status_fd != 3 && ::dup3(status_fd, 3, O_CLOEXEC) < 0) ::_exit(127);
  if (::close_range(4, ~0U, 0) != 0) {
    for (int fd = 4; fd < 65536; ++fd) ::close(fd);
  }

  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
  }

  // Own network and mount namespaces (as root directly, otherwise inside a
  // fresh user namespace); without them the guard does not start unless the
  // config waives it.
  char isolation = 'N';
  const int ns = CLONE_NEWNET | CLONE_NEWNS;
  if (::unshare(plan.root ? ns : ns | CLONE_NEWUSER) == 0) {
    isolation = plan.root ? 'R' : 'U';
  } else if (!plan.isolation_waived) {
    report('n', errno);
  }
  if (isolation != 'N') {
    // Nothing mounted here propagates back; then cover what the filter's user
    // may read and a guard must not: the archive and its signing key.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) report('m', errno);
    for (const char* const* d = plan.hide_dirs; *d != nullptr; ++d) {
      if (::mount("tmpfs", *d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k,mode=0500") != 0) {
        report('m', errno);
      }
    }
    for (const char* const* f = plan.hide_files; *f != nullptr; ++f) {
      if (::mount("/dev/null", *f, nullptr, MS_BIND, nullptr) != 0) report('m', errno);
    }
  }
  if (plan.drop_user) {
    if (::setgroups(1, &plan.gid) != 0) report('g', errno);
    if (::setgid(plan.gid) != 0) report('g', errno);
    if (::setuid(plan.uid) != 0) report('u', errno);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) report('p', errno);
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, plan.socket_filter) != 0) report('s', errno);
  if (const int err = confine_with_landlock(); err == 0) {
    isolation = isolation == 'N' ? '0' : isolation == 'R' ? '1' : '2';   // letters are failure stages
  } else if (!plan.isolation_waived) {
    report('l', err);
  }
  // After any credential change (which clears it).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) report('p', errno);
  if (::getppid() != plan.parent) ::_exit(127);
  [[maybe_unused]] ssize_t n = ::write(3, &isolation, 1);
  ::execve(plan.path, plan.argv, plan.envp);
  report('e', errno);
  ::_exit(127);  // not reached
}

std::string stage_name(char stage) {
  switch (stage) {
    case 'n': return "cannot create its network and mount namespaces (isolation; see <waiver of='guard-isolation'>)";
    case 'm': return "cannot hide the audit archive from it (mount)";
    case 's': return "cannot forbid it sockets (seccomp)";
    case 'l': return "cannot confine it with Landlock (kernel ABI 6 or later: no writes, no signals outside; see <waiver of='guard-isolation'>)";
    case 'g': return "cannot set group";
    case 'u': return "cannot set user";
    case 'p': return "cannot set process restrictions";
    case 'e': return "cannot execute";
    default: return "cannot start";
  }
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "stopped";
}

}  // namespace

struct ExternalGuard::Impl {
  Impl(std::string n, ExternalGuardOptions o, net::EventLoop& l, Logger& lg)
      : name(std::move(n)), opt(std::move(o)), loop(l), log(lg), backoff(opt.restart_backoff) {}

  std::string name;
  ExternalGuardOptions opt;
  net::EventLoop& loop;
  Logger& log;

  bool drop_user = false;
  uid_t uid = 0;
  gid_t gid = 0;

  pid_t pid = -1;
  int to_fd = -1, from_fd = -1;
  bool watching_write = false;
  std::string isolation = "none";
  std::uint64_t starts = 0, failures = 0;

  std::optional<Pending> inflight;
  std::deque<Pending> queue;
  std::string out;
  std::size_t out_off = 0;
  std::optional<guardproto::AnswerParser> parser;
  net::TimerId timeout_timer = 0, restart_timer = 0;
  std::chrono::milliseconds backoff;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  GuardResult block(std::string reason) const { return GuardResult{false, name, std::move(reason)}; }

  // Starts the program; returns an error text or empty on success.
  std::string spawn() {
    int in[2], outp[2], st[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) return std::strerror(errno);
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, outp) != 0) {
      const int e = errno;
      ::close(in[0]);
      ::close(in[1]);
      return std::strerror(e);
    }
    if (::pipe2(st, O_CLOEXEC) != 0) {
      const int e = errno;
      for (int fd : {in[0], in[1], outp[0], outp[1]}) ::close(fd);
      return std::strerror(e);
    }
    // Everything the child needs is prepared before fork.
    std::vector<std::string> args;
    args.push_back(opt.program);
    args.insert(args.end(), opt.args.begin(), opt.args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string path_env = "PATH=/usr/local/bin:/usr/bin:/bin";
    char* envp[] = {path_env.data(), nullptr};
    std::vector<const char*> hide_dirs, hide_files;
    for (const std::string& h : opt.hide) {
      struct stat hs {};
      if (::stat(h.c_str(), &hs) != 0) continue;   // nothing there to hide
      (S_ISDIR(hs.st_mode) ? hide_dirs : hide_files).push_back(h.c_str());
    }
    hide_dirs.push_back(nullptr);
    hide_files.push_back(nullptr);
    const ChildPlan plan{opt.program.c_str(), argv.data(), envp, ::getpid(), ::geteuid() == 0,
                         drop_user, uid, gid, opt.isolation_waived, hide_dirs.data(), hide_files.data(),
                         guard_socket_filter()};

    const pid_t child = ::fork();
    if (child < 0) {
      const int e = errno;
      for (int fd : {in[0], in[1], outp[0], outp[1], st[0], st[1]}) ::close(fd);
      return std::string("fork: ") + std::strerror(e);
    }
    if (child == 0) child_exec(plan, in[1], outp[1], st[1]);

    ::close(in[1]);
    ::close(outp[1]);
    ::close(st[1]);
    // Blocks only until the child has exec'd or failed (fork + exec time).
    char report[16];
    std::size_t got = 0;
    for (;;) {
      const ssize_t n = ::read(st[0], report + got, sizeof(report) - got);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
        if (got == sizeof(report)) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    ::close(st[0]);
    // Either the isolation byte alone (exec succeeded), or a failure record
    // (stage, errno), preceded by the isolation byte when exec itself failed.
    auto is_isolation = [](char c) { return c == 'R' || c == 'U' || c == 'N' || (c >= '0' && c <= '2'); };
    char iso = 0;
    std::size_t at = 0;
    if (got >= 1 && is_isolation(report[0])) {
      iso = report[0];
      at = 1;
    }
    std::string error;
    if (got > at) {
      int err = 0;
      if (got >= at + 1 + sizeof(int)) std::memcpy(&err, report + at + 1, sizeof(int));
      error = stage_name(report[at]) + (err != 0 ? std::string(": ") + std::strerror(err) : std::string());
    } else if (iso == 0) {
      error = "the program exited before exec";
    }
    if (!error.empty()) {
      ::close(in[0]);
      ::close(outp[0]);
      int status = 0;
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      return error;
    }
    const bool landlock = iso >= '0' && iso <= '2';
    const char base = iso == '1' ? 'R' : iso == '2' ? 'U' : iso == '0' ? 'L' : iso;
    isolation = base == 'R' ? "netns+mountns+" : base == 'U' ? "userns+netns+mountns+" : base == 'L' ? "" : "none";
    if (landlock) isolation += "landlock";
    pid = child;
    to_fd = in[0];
    from_fd = outp[0];
    set_nonblocking(to_fd);
    set_nonblocking(from_fd);
    ++starts;
    loop.watch(from_fd, net::kReadable, [this](std::uint32_t ev) { on_readable(ev); });
    if (isolation == "none") {
      LogLine(log, LogLevel::Warning) << "guard " << name << ": program " << opt.program
                                      << " runs WITHOUT isolation (host network, archive visible): waived by the config";
    }
    return {};
  }

  // Kills and reaps the program; returns how it ended.
  std::string stop_process() {
    if (watching_write) loop.unwatch(to_fd);
    watching_write = false;
    if (from_fd >= 0) loop.unwatch(from_fd);
    close_fd(to_fd);
    close_fd(from_fd);
    if (timeout_timer != 0) loop.cancel_timer(timeout_timer);
    timeout_timer = 0;
    parser.reset();
    out.clear();
    out_off = 0;
    if (pid < 0) return "not running";
    // A program that already exited is reaped without the kill mattering.
    ::kill(pid, SIGKILL);
    int status = 0;
    pid_t r;
    while ((r = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    pid = -1;
    return r < 0 ? std::string("status unknown") : describe_status(status);
  }

  void schedule_restart() {
    if (restart_timer != 0) return;
    const auto delay = backoff;
    backoff = std::min(backoff * 2, opt.restart_backoff_max);
    restart_timer = loop.add_timer(delay, [this] {
      restart_timer = 0;
      const std::string err = spawn();
      if (err.empty()) {
        LogLine(log, LogLevel::Info) << "guard " << name << ": program restarted (pid " << pid << ")";
        return;
      }
      LogLine(log, LogLevel::Error) << "guard " << name << ": cannot restart " << opt.program << ": "
                                    << err << "; retrying in " << backoff.count() << " ms";
      schedule_restart();
    });
  }

  // Fail closed: block what is in flight and queued, kill, restart later. The
  // callbacks run from a post so that no caller up the stack sees the guard
  // change under it.
  void fail(Failure kind, std::string detail) {  // by value: callers pass parser state that stop_process() frees
    ++failures;
    const std::string how = stop_process();
    std::string reason;
    switch (kind) {
      case Failure::Crash: reason = "guard program died (" + how + ")"; break;
      case Failure::Timeout:
        reason = "guard program did not answer within " + std::to_string(opt.timeout.count()) + " ms";
        break;
      case Failure::Garbage: reason = "guard program sent a garbled answer: " + detail; break;
      case Failure::Changed:
        reason = "guard program changed the stanza" + (detail.empty() ? std::string() : ": " + detail);
        break;
    }
    LogLine(log, LogLevel::Warning) << "guard " << name << ": " << reason << "; restarting in "
                                    << backoff.count() << " ms";
    schedule_restart();

    std::vector<std::pair<Callback, GuardResult>> calls;
    if (inflight) calls.emplace_back(std::move(inflight->done), block(reason));
    inflight.reset();
    for (auto& p : queue) {
      calls.emplace_back(std::move(p.done), block("guard program not running (restarting after: " + reason + ")"));
    }
    queue.clear();
    if (calls.empty()) return;
    std::weak_ptr<bool> token = alive;
    loop.post([token, calls = std::move(calls)]() mutable {
      for (auto& [done, result] : calls) {
        if (token.expired()) return;  // the guard is gone: drop, as documented
        done(std::move(result));
      }
    });
  }

  void send_next() {
    if (inflight || queue.empty() || pid < 0) return;
    inflight = std::move(queue.front());
    queue.pop_front();
    out = std::move(inflight->request);
    out_off = 0;
    parser.emplace(inflight->body.size());
    timeout_timer = loop.add_timer(opt.timeout, [this] {
      timeout_timer = 0;
      fail(Failure::Timeout, {});
    });
    flush();
  }

  void flush() {
    while (out_off < out.size()) {
      const ssize_t n = ::send(to_fd, out.data() + out_off, out.size() - out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        out_off += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!watching_write) {
          loop.watch(to_fd, net::kWritable, [this](std::uint32_t ev) {
            if (ev & net::kHangup) {
              fail(Failure::Crash, {});
              return;
            }
            flush();
          });
          watching_write = true;
        }
        return;
      }
      fail(Failure::Crash, {});
      return;
    }
    out.clear();
    out_off = 0;
    if (watching_write) {
      loop.unwatch(to_fd);
      watching_write = false;
    }
  }

  void on_readable(std::uint32_t /*events*/) {
    char buf[16384];
    std::string got;
    bool eof = false;
    for (;;) {
      const ssize_t n = ::read(from_fd, buf, sizeof(buf));
      if (n > 0) {
        got.append(buf, static_cast<std::size_t>(n));
        if (got.size() > guardproto::kMaxBody + guardproto::kMaxReason + 64) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;  // 0 = EOF; any other error is as good as a crash
      break;
    }
    if (!got.empty()) {
      if (!inflight || !parser) {
        fail(Failure::Garbage, "output while no request was outstanding");
        return;
      }
      switch (parser->feed(got)) {
        case guardproto::AnswerParser::State::NeedMore: break;
        case guardproto::AnswerParser::State::Garbage: fail(Failure::Garbage, parser->problem()); return;
        case guardproto::AnswerParser::State::LengthMismatch:
          fail(Failure::Changed, parser->problem());
          return;
        case guardproto::AnswerParser::State::Complete:
          if (parser->answer().body != inflight->body) {
            fail(Failure::Changed, "echoed body differs from the stanza sent");
            return;
          }
          if (!complete()) return;  // the guard was destroyed by the callback
          break;
      }
    }
    if (eof) fail(Failure::Crash, {});
  }

  // Delivers the verdict for the stanza in flight; returns false if the
  // callback destroyed the guard.
  bool complete() {
    const guardproto::Answer answer = parser->answer();
    parser.reset();
    if (timeout_timer != 0) loop.cancel_timer(timeout_timer);
    timeout_timer = 0;
    backoff = opt.restart_backoff;  // a good answer: the program is healthy
    Callback done = std::move(inflight->done);
    inflight.reset();
    GuardResult r{answer.pass, name, {}};
    if (!answer.pass) {
      r.reason = answer.reason.empty() ? "blocked by guard program"
                                       : "blocked by guard program: " + printable(answer.reason);
    }
    std::weak_ptr<bool> token = alive;
    done(std::move(r));
    if (token.expired()) return false;
    send_next();
    return true;
  }
};

ExternalGuard::ExternalGuard(std::string name, ExternalGuardOptions options, net::EventLoop& loop, Logger& log)
    : name_(std::move(name)) {
  if (options.program.empty()) throw config::ConfigError("", 0, 0, "guard " + name_ + ": no program configured");
  if (::access(options.program.c_str(), X_OK) != 0) {
    throw config::ConfigError(options.program, 0, 0,
                              "guard " + name_ + ": program is missing or not executable");
  }
  if (options.timeout.count() <= 0) {
    throw config::ConfigError(options.program, 0, 0, "guard " + name_ + ": timeout must be positive");
  }
  if (options.restart_backoff.count() <= 0) options.restart_backoff = std::chrono::milliseconds(1);
  if (options.restart_backoff_max < options.restart_backoff) options.restart_backoff_max = options.restart_backoff;
  impl_ = std::make_unique<Impl>(name_, std::move(options), loop, log);
  Impl& m = *impl_;
  if (!m.opt.run_as_user.empty()) {
    if (::geteuid() != 0) {
      throw config::ConfigError(m.opt.program, 0, 0,
                                "guard " + name_ + ": run_as_user needs Portcullis to start as root");
    }
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwnam_r(m.opt.run_as_user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
      throw config::ConfigError(m.opt.program, 0, 0,
                                "guard " + name_ + ": unknown user '" + m.opt.run_as_user + "'");
    }
    m.drop_user = true;
    m.uid = pw.pw_uid;
    m.gid = pw.pw_gid;
  }
  const std::string err = m.spawn();
  if (!err.empty()) {
    throw config::ConfigError(m.opt.program, 0, 0, "guard " + name_ + ": cannot start: " + err);
  }
  LogLine(log, LogLevel::Info) << "guard " << name_ << ": started " << m.opt.program << " (pid " << m.pid
                               << ", network isolation " << m.isolation << ")";
}

ExternalGuard::~ExternalGuard() {
  Impl& m = *impl_;
  m.alive.reset();
  if (m.restart_timer != 0) m.loop.cancel_timer(m.restart_timer);
  m.stop_process();
}

void ExternalGuard::check(const std::string& bytes, const StanzaContext& ctx, std::function<void(GuardResult)> done) {
  Impl& m = *impl_;
  if (m.pid < 0) {
    done(m.block("guard program not running (restart pending)"));
    return;
  }
  if (m.inflight && m.queue.size() >= m.opt.max_queue) {
    done(m.block("guard busy"));
    return;
  }
  if (bytes.size() > guardproto::kMaxBody) {
    done(m.block("stanza too large for the guard protocol"));
    return;
  }
  m.queue.push_back(Pending{guardproto::encode_request(bytes, ctx), bytes, std::move(done)});
  m.send_next();
}

bool ExternalGuard::running() const { return impl_->pid >= 0; }
pid_t ExternalGuard::pid() const { return impl_->pid; }
std::uint64_t ExternalGuard::starts() const { return impl_->starts; }
std::uint64_t ExternalGuard::failures() const { return impl_->failures; }
const std::string& ExternalGuard::isolation() const { return impl_->isolation; }

}  // namespace portcullis::policy
