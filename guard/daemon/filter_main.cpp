// The filter: pipelines, no network. Its only I/O is the two frame channels.
#include <signal.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "guard/audit/archive.h"
#include "guard/audit/json.h"
#include "guard/config/config.h"
#include "guard/daemon/roles.h"
#include "guard/daemon/signals.h"
#include "guard/daemon/status_report.h"
#include "guard/filterproc/filter_process.h"
#include "guard/log/log.h"
#include "guard/sandbox/seccomp.h"
#include "guard/supervisor/child_control.h"
#include "policy/guard/guard_factory.h"
#include "policy/policy_file.h"

namespace portcullis::daemon {

namespace {

// Installs a loaded policy: its pipelines into the filter, its tree kept alive
// with them (the filters point into it).
void install(filterproc::FilterProcess& filter, policy::LoadedPolicy&& p) {
  filterproc::PolicyIdentity id{p.version, p.sha256};
  std::shared_ptr<const policy::PolicyNode> tree = std::move(p.tree);
  filter.replace_pipelines(std::move(p.pipelines.low_to_high), std::move(p.pipelines.high_to_low), std::move(id),
                           std::move(tree));
}

// An administrative record (policy load and reload): the archive keeps the
// policy's hash next to the decisions it made.
void record_admin(audit::AuditArchive& archive, std::string kind, std::string text,
                  std::vector<std::pair<std::string, std::string>> fields) {
  audit::AdminEvent ev;
  ev.kind = std::move(kind);
  ev.text = std::move(text);
  ev.fields = std::move(fields);
  audit::Record r;
  r.body = std::move(ev);
  archive.append(std::move(r), [](audit::AppendResult) {});
}

// How this start deviates from the shipped, fail-closed settings, in the
// archive at every start: the supervision mode, and every waiver with its reason.
void record_start_settings(audit::AuditArchive& archive, const config::Config& cfg, Logger& log) {
  const bool separated = cfg.supervision.mode == config::SupervisionMode::Separated;
  record_admin(archive, "supervision",
               separated ? "separated: each process runs as its own user, the filter in an empty network namespace"
                         : "single-user-development: every process runs as one user (a development setting)",
               {{"mode", separated ? "separated" : "single-user-development"},
                {"filter-uid", std::to_string(::getuid())}});
  if (!separated) {
    LogLine(log, LogLevel::Warning) << "single-user-development mode (recorded in the archive)";
  }
  for (const config::Waiver& w : cfg.waivers) {
    const bool stage = w.of == config::Waiver::Of::NoGuardStage;
    const std::string what = stage ? "no guard stage for " + w.direction
                                   : "guard " + w.guard + " may run without isolation" +
                                         (w.direction.empty() ? "" : " (" + w.direction + ")");
    LogLine(log, LogLevel::Warning) << "waiver at " << cfg.file << ":" << w.line << ": " << what << ": " << w.reason;
    record_admin(archive, "waiver", "waiver in force: " + what,
                 {{"of", stage ? "no-guard-stage" : "guard-isolation"},
                  {"direction", w.direction},
                  {"guard", w.guard},
                  {"reason", w.reason},
                  {"config", cfg.file + ":" + std::to_string(w.line) + ":" + std::to_string(w.column)}});
  }
}

}  // namespace

int run_filter(const DaemonOptions& opts, const supervisor::ChildArgs& args) {
  // Block the termination signals before any thread exists (the audit writer
  // thread inherits the mask), so they reach the signalfd, not a default action
  // on some thread: a SIGTERM must close the archive with its last checkpoint.
  block_termination_signals();
  // The config first (files only, no thread): it says whether the archive
  // sends its syslog summary, whose socket must be connected now, since no
  // socket can be made once the filter below is on.
  config::Config cfg;
  try {
    cfg = config::load_config(opts.config_file, opts.schema_dir, config::LoadFor::Filter);
  } catch (const std::exception& e) {
    Logger fallback("filter", Logger::Target::Stderr, LogLevel::Info);
    fallback.error(std::string("cannot load the configuration: ") + e.what());
    return 2;
  }
  if (cfg.audit.syslog_summary) ::openlog("portcullis-audit", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
  // The logger too (with a syslog target, single-user mode: its socket).
  auto logger = make_logger("filter", cfg, opts.foreground, /*child=*/true);
  Logger& log = *logger;
  // The kernel refuses this process every socket from here on (socket pairs
  // stay), for every thread (TSYNC) and everything it starts: installed before
  // the audit writer thread and the external guards exist, so none of them
  // escapes it. Failing to install it is failing closed.
  {
    std::string sandbox_error;
    if (!sandbox::forbid_network_sockets(sandbox_error)) {
      Logger fallback("filter", Logger::Target::Stderr, LogLevel::Info);
      fallback.error("cannot forbid network sockets: " + sandbox_error);
      return 4;
    }
  }
  const policy::FilterRegistry registry = policy::builtin_filters();
  std::optional<policy::LoadedPolicy> loaded;
  try {
    loaded.emplace(policy::load_policy(cfg.policy_file, opts.schema_dir, registry));
  } catch (const std::exception& e) {
    Logger fallback("filter", Logger::Target::Stderr, LogLevel::Info);
    fallback.error(std::string("cannot load policy: ") + e.what());
    return 2;
  }
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  const std::size_t max_bytes = std::max(cfg.low.max_stanza_bytes, cfg.high.max_stanza_bytes);
  if (!cfg.audit.enabled) {
    log.error("no <audit> in the config: nothing may be released without an audit archive");
    return 2;
  }
  // The archive and the guard stage are built before the sandbox closes the
  // door on sockets (an external guard is started here, and inherits it).
  std::unique_ptr<audit::AuditArchive> archive;
  policy::GuardChain guards_up, guards_down;
  try {
    archive = std::make_unique<audit::AuditArchive>(loop, cfg.audit, log);
    policy::add_guards(guards_up, cfg, "low-to-high", loop, log);
    policy::add_guards(guards_down, cfg, "high-to-low", loop, log);
  } catch (const std::exception& e) {
    log.error(std::string("cannot start: ") + e.what());
    return 2;
  }
  // Deny-all until the policy is installed, which happens before any channel is attached.
  // Frames are checked against the sides of the config this process loaded, never against what an edge says.
  filterproc::FilterProcess filter(loop, *archive, max_bytes, log, filterproc::Boundary::from_config(cfg));
  filter.set_guards(std::move(guards_up), std::move(guards_down));
  const std::string loaded_version = loaded->version, loaded_sha256 = loaded->sha256, loaded_file = loaded->file;
  LogLine(log, LogLevel::Info) << "policy " << loaded->version << " sha256 " << loaded->sha256 << " loaded from "
                               << loaded->file;
  record_admin(*archive, "policy-load", "policy loaded at start",
               {{"version", loaded->version}, {"sha256", loaded->sha256}, {"file", loaded->file}});
  LogLine(log, LogLevel::Info) << "guard stage: " << cfg.guards.low_to_high.size() << " guard(s) low->high, "
                               << cfg.guards.high_to_low.size() << " high->low; audit archive " << cfg.audit.dir;
  record_start_settings(*archive, cfg, log);
  install(filter, std::move(*loaded));
  loaded.reset();
  filter.attach_low(args.fds.low_fd);
  filter.attach_high(args.fds.high_fd);

  supervisor::ChildControl::Callbacks ccb;
  ccb.on_fd = [&](std::string_view tag, ipc::UniqueFd fd) {
    if (tag == "edge:low") filter.attach_low(fd.release());
    else if (tag == "edge:high") filter.attach_high(fd.release());
    else LogLine(log, LogLevel::Error) << "control: ignoring fd tagged '" << tag << "'";
  };
  ccb.on_supervisor_gone = [&](const std::string& reason) {
    LogLine(log, LogLevel::Error) << "supervisor gone (" << reason << "): exiting";
    loop.stop();
  };
  ccb.on_bad_message = [&](const std::string& err) { LogLine(log, LogLevel::Error) << "control: " << err; };
  supervisor::ChildControl control(loop, args.fds.control_fd, std::move(ccb));
  control.start();

  // All or nothing: the new policy is loaded and every filter built before
  // anything changes; any error keeps the running policy. The swap runs on the
  // event loop, so between stanzas. `how` says who asked (SIGHUP, or the
  // control socket's client as the supervisor saw it), for the archive.
  PolicyState policy_state{loaded_version, loaded_sha256, loaded_file, unix_now_ms(), 0, 0, {}};
  auto reload = [&](const std::string& how) -> std::string {
    audit::json::Object reply;
    // Who asked goes on a line of its own: the outcome lines keep the form
    // operators' log watchers match (and end in the file:line:column error).
    log.info("policy reload asked " + how);
    try {
      policy::LoadedPolicy next = policy::load_policy(cfg.policy_file, opts.schema_dir, registry);
      LogLine(log, LogLevel::Info) << "policy " << next.version << " sha256 " << next.sha256 << " loaded from "
                                   << next.file << " (reload, replacing version " << policy_state.version << ")";
      record_admin(*archive, "policy-reload", "policy reloaded " + how,
                   {{"version", next.version}, {"sha256", next.sha256}, {"file", next.file}, {"requested", how},
                    {"replaced-version", policy_state.version}});
      reply = {{"ok", true}, {"version", next.version}, {"sha256", next.sha256},
               {"replaced_version", policy_state.version}};
      policy_state.version = next.version;
      policy_state.sha256 = next.sha256;
      policy_state.file = next.file;
      policy_state.loaded_unix_ms = unix_now_ms();
      ++policy_state.reloads;
      install(filter, std::move(next));
    } catch (const std::exception& e) {
      LogLine(log, LogLevel::Error) << "policy reload failed, keeping version " << policy_state.version
                                    << ": " << e.what();
      record_admin(*archive, "policy-reload-failed", e.what(),
                   {{"kept-version", policy_state.version}, {"requested", how}});
      ++policy_state.reload_failures;
      policy_state.last_reload_error = e.what();
      reply = {{"ok", false}, {"error", std::string(e.what())}, {"kept_version", policy_state.version}};
    }
    return audit::json::dump(reply);
  };
  control.set_on_status([&] { return filter_status(filter, *archive, cfg.audit.dir, policy_state); });
  control.set_on_reload([&](const std::string& who) { return reload("over the control socket by " + who); });

  TerminationSignals signals(loop, [&](int sig) {
    if (sig == SIGHUP) {
      reload("on SIGHUP");
      return;
    }
    log.info("terminating");
    loop.stop();
  });
  log.info("started; network sockets forbidden by seccomp for every thread");
  loop.run();
  return 0;
}

}  // namespace portcullis::daemon
