// ExternalGuard: an independent guard program, run as its own process, asked
// about every stanza over the PCG1 pipe protocol (guard_protocol.h,
// docs/guard-protocol.md). It answers pass or block; it never transforms: an
// echo that differs from what was sent blocks the stanza.
//
// The program is started with fork/exec (no shell), stdin and stdout connected
// to Portcullis (AF_UNIX stream sockets, which read and write like pipes but
// never raise SIGPIPE in Portcullis), stderr inherited, every other descriptor
// closed, an environment of PATH only, PR_SET_NO_NEW_PRIVS, and
// PR_SET_PDEATHSIG(SIGKILL) so it dies with the filter process. Network: when
// Portcullis runs as root the program gets an empty network namespace (a
// failure to create it stops the start); otherwise an unprivileged user +
// network namespace is tried, and if the kernel refuses, the program runs with
// the host network and a warning is logged (isolation() says which).
// run_as_user (root only) drops to that user's uid/gid before exec.
//
// Fail closed: a crash, a timeout, a garbled answer or a changed stanza blocks
// the stanza in flight (the GuardResult reason says which), the program is
// killed and restarted after a backoff (doubling up to a maximum, reset by the
// next good answer), and every stanza queued or arriving while it is down is
// blocked. One request is in flight at a time; others wait in a bounded queue
// ("guard busy" over the bound).
//
// All of this runs on the caller's event loop; check() and the callbacks run
// on the loop thread. The constructor starts the program and throws
// config::ConfigError if it cannot (control plane); later start failures only
// keep the guard down (blocking) and retry.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "guard/log/log.h"
#include "guard/net/event_loop.h"
#include "policy/guard/guard.h"

namespace portcullis::policy {

struct ExternalGuardOptions {
  std::string program;                  // path of the executable (no PATH search)
  std::vector<std::string> args;        // argv[1..]
  std::chrono::milliseconds timeout{2000};         // per stanza, from when it is sent
  std::string run_as_user;              // empty: keep the current user
  // Isolation: the program runs in its own network and mount namespaces (and a
  // user namespace when the filter is not root), in which each path of `hide`
  // is covered: a directory by an empty read-only tmpfs, a file by /dev/null
  // (the audit archive and its signing key, which the filter's user may read).
  // When the namespaces cannot be made the guard does not start, unless
  // `isolation_waived` (a <waiver of="guard-isolation">): then it runs on the
  // host's namespaces with a warning.
  std::vector<std::string> hide;
  bool isolation_waived = false;
  std::size_t max_queue = 64;           // stanzas waiting behind the one in flight
  std::chrono::milliseconds restart_backoff{200};  // first restart delay
  std::chrono::milliseconds restart_backoff_max{10000};
};

class ExternalGuard final : public Guard {
 public:
  ExternalGuard(std::string name, ExternalGuardOptions options, net::EventLoop& loop, Logger& log);
  // Kills and reaps the program; pending callbacks are dropped, not called.
  ~ExternalGuard() override;
  ExternalGuard(const ExternalGuard&) = delete;
  ExternalGuard& operator=(const ExternalGuard&) = delete;

  // Queues the stanza for the program. Completes at once with Block when the
  // program is down ("guard program not running") or the queue is full
  // ("guard busy"); otherwise later, from the loop.
  void check(const std::string& bytes, const StanzaContext& ctx,
             std::function<void(GuardResult)> done) override;
  const std::string& name() const override { return name_; }

  // Observability (status, tests).
  bool running() const;
  pid_t pid() const;
  std::uint64_t starts() const;      // successful starts, including the first
  std::uint64_t failures() const;    // crashes, timeouts, garbage, changed stanzas
  // "netns+mountns" (root), "userns+netns+mountns" (unprivileged), or "none"
  // (host namespaces; only with isolation_waived).
  const std::string& isolation() const;

 private:
  struct Impl;
  std::string name_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::policy
