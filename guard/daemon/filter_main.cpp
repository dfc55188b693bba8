// The filter: pipelines, no network. Its only I/O is the two frame channels.
#include <signal.h>

#include <algorithm>
#include <memory>

#include "guard/config/config.h"
#include "guard/daemon/roles.h"
#include "guard/daemon/signals.h"
#include "guard/filterproc/filter_process.h"
#include "guard/log/log.h"
#include "guard/supervisor/child_control.h"
#include "policy/policy_from_config.h"

namespace portcullis::daemon {

int run_filter(const DaemonOptions& opts, const supervisor::ChildArgs& args) {
  config::Config cfg;
  std::unique_ptr<policy::DirectionPipelines> pipelines;
  try {
    cfg = config::load_config(opts.config_file, opts.schema_dir);
    auto registry = policy::builtin_filters();
    pipelines = std::make_unique<policy::DirectionPipelines>(policy::build_pipelines(cfg, registry));
  } catch (const std::exception& e) {
    Logger fallback("filter", Logger::Target::Stderr, LogLevel::Info);
    fallback.error(std::string("cannot load policy: ") + e.what());
    return 2;
  }
  LogLevel level = LogLevel::Info;
  parse_log_level(cfg.log_level, level);
  Logger log("filter", !opts.foreground && cfg.log_target == "syslog" ? Logger::Target::Syslog : Logger::Target::Stderr,
             level);
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  const std::size_t max_bytes = std::max(cfg.low.max_stanza_bytes, cfg.high.max_stanza_bytes);
  filterproc::FilterProcess filter(loop, std::move(pipelines->low_to_high), std::move(pipelines->high_to_low),
                                   max_bytes, log);
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

  TerminationSignals signals(loop, [&](int sig) {
    if (sig == SIGHUP) {
      // Policy reload arrives with the policy file (issue 3); until then say so.
      log.warning("SIGHUP: reload is not supported by this version; running policy kept");
      return;
    }
    log.info("terminating");
    loop.stop();
  });
  log.info("started");
  loop.run();
  return 0;
}

}  // namespace portcullis::daemon
