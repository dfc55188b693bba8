// portcullisd: the supervisor. It holds no stanza and no peer connection; it
// creates the filter<->edge socketpairs, starts the children and restarts them.
#include <unistd.h>

#include <memory>

#include "guard/config/config.h"
#include "guard/daemon/roles.h"
#include "guard/log/log.h"

namespace portcullis::daemon {

std::unique_ptr<Logger> make_logger(const std::string& name, const config::Config& cfg, bool foreground) {
  LogLevel level = LogLevel::Info;
  parse_log_level(cfg.log_level, level);
  const bool syslog = !foreground && cfg.log_target == "syslog";
  return std::make_unique<Logger>(name, syslog ? Logger::Target::Syslog : Logger::Target::Stderr, level);
}

int run_supervisor(const DaemonOptions& opts) {
  config::Config cfg;
  try {
    cfg = config::load_config(opts.config_file, opts.schema_dir);
  } catch (const std::exception& e) {
    Logger fallback("portcullisd", Logger::Target::Stderr, LogLevel::Info);
    fallback.error(e.what());
    return 2;
  }
  auto logger = make_logger("portcullisd", cfg, opts.foreground);
  Logger& log = *logger;
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  supervisor::SupervisorOptions so;
  so.common_args = {"--config", opts.config_file, "--schema-dir", opts.schema_dir};
  if (opts.foreground) so.common_args.push_back("--foreground");
  so.initial_backoff = net::Duration(cfg.supervision.restart_backoff_ms);
  so.max_backoff = net::Duration(cfg.supervision.restart_backoff_max_ms);
  so.watchdog_timeout = net::Duration(cfg.supervision.watchdog_ms);
  if (!cfg.supervision.edge_user.empty()) {
    if (::geteuid() != 0) {
      log.error("<supervision edge-user='" + cfg.supervision.edge_user +
                "'> needs portcullisd to start as root (it drops the edges to that user)");
      return 2;
    }
    so.drop_edges = true;
    so.edge_uid = cfg.supervision.edge_uid;
    so.edge_gid = cfg.supervision.edge_gid;
    log.info("edges run as user " + cfg.supervision.edge_user);
  }
  so.log = [&log](std::string_view line) { log.info(line); };
  supervisor::Supervisor sup(loop, so);
  sup.set_on_stopped([&loop] { loop.stop(); });
  try {
    sup.start();
  } catch (const std::exception& e) {
    log.error(std::string("cannot start: ") + e.what());
    return 3;
  }
  log.info("started: edge(low), filter, edge(high) running; config " + opts.config_file);
  loop.run();
  log.info("stopped");
  return 0;
}

}  // namespace portcullis::daemon
