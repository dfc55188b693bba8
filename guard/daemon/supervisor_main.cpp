// portcullisd: the supervisor. It holds no stanza and no peer connection; it
// creates the filter<->edge socketpairs, starts the children and restarts them.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <memory>

#include "guard/config/config.h"
#include "guard/daemon/preflight.h"
#include "guard/daemon/roles.h"
#include "guard/daemon/status_report.h"
#include "guard/audit/json.h"
#include "guard/supervisor/control_server.h"
#include "guard/log/log.h"
#include "guard/sandbox/capabilities.h"
#include "guard/supervisor/side_firewall.h"

namespace portcullis::daemon {

std::unique_ptr<Logger> make_logger(const std::string& name, const config::Config& cfg, bool foreground, bool child) {
  LogLevel level = LogLevel::Info;
  parse_log_level(cfg.log_level, level);
  // In separated mode a child keeps no syslog socket: an AF_UNIX datagram
  // socket can be aimed (sendto, connect) at any socket file on the host, a
  // way around the side firewall. Children write to the stderr they inherit
  // (the journal's stream under systemd); the supervisor alone uses syslog.
  const bool separated_child = child && cfg.supervision.mode == config::SupervisionMode::Separated;
  const bool syslog = !foreground && cfg.log_target == "syslog" && !separated_child;
  return std::make_unique<Logger>(name, syslog ? Logger::Target::Syslog : Logger::Target::Stderr, level);
}

namespace {

// The archive directory, created as the filter user's (mode 0700) when it does
// not exist yet; its parents, when missing, as root's with mode 0755. An
// existing directory is left as it is: the config check has judged its modes.
bool prepare_archive_dir(const std::string& dir, const config::ProcessUser& filter, std::string& error) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) return true;
  const std::filesystem::path p(dir);
  std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) {
    error = p.parent_path().string() + ": " + ec.message();
    return false;
  }
  if (::mkdir(dir.c_str(), 0700) != 0 || ::chown(dir.c_str(), filter.uid, filter.gid) != 0) {
    error = dir + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

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
  // What would only fail once an edge or the filter runs (a key that does not
  // match, a CA file that is a key, an expired certificate, an audit key pair
  // that does not match) stops the start here, with its position.
  try {
    const PreflightReport pre = preflight(cfg, std::time(nullptr), opts.schema_dir);
    for (const std::string& w : pre.warnings) log.warning(w);
    for (const std::string& line : pre.summary) log.info(line);
  } catch (const std::exception& e) {
    log.error(e.what());
    return 2;
  }
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  // The control socket (portcullisctl), made while the supervisor may still
  // give it to the operator group; it answers once the children run.
  const bool node = cfg.kind == config::ConfigKind::Node;
  supervisor::Supervisor* running = nullptr;
  ApplianceInfo info;
  info.kind = node ? "node" : "appliance";
  info.mode = cfg.supervision.mode == config::SupervisionMode::Separated ? "separated" : "single-user-development";
  info.config_file = opts.config_file;
  info.started_unix_ms = unix_now_ms();
  std::unique_ptr<supervisor::ControlServer> control;
  if (cfg.control.enabled) {
    supervisor::ControlServer::Options co;
    co.path = cfg.control.socket;
    co.set_group = !cfg.control.group.empty();
    co.group = cfg.control.gid;
    auto handler = [&](std::string_view command, const supervisor::ControlPeer& who,
                       supervisor::ControlServer::Respond respond, supervisor::ControlServer::Gone gone) {
      const bool reload = command == "reload";
      if (command != "status" && !reload) {
        audit::json::Object err{{"error", "unknown command '" + std::string(command.substr(0, 64)) +
                                              "'; the commands are: status, reload"}};
        return respond(audit::json::dump(err));
      }
      if (running == nullptr) return respond("{\"error\":\"starting\"}");
      if (reload) log.info("control: reload requested by " + who.describe());
      const bool asked = running->query(
          reload ? supervisor::Supervisor::Query::Reload : supervisor::Supervisor::Query::Status, who.describe(),
          [&info, respond, &running](std::vector<supervisor::Supervisor::ChildAnswer> answers) {
            info.stopping = running != nullptr && running->stopping();
            respond(appliance_status(info, answers));
          },
          std::move(gone));
      if (!asked) respond("{\"error\":\"busy or stopping\"}");
    };
    try {
      control = std::make_unique<supervisor::ControlServer>(loop, co, handler,
                                                            [&log](std::string_view line) { log.warning(line); });
    } catch (const std::exception& e) {
      log.error(std::string(e.what()) + " (" + cfg.file + ":" + std::to_string(cfg.control.line) + ":" +
                std::to_string(cfg.control.column) + ", <control>)");
      return 2;
    }
    log.info("control socket " + co.path + (co.set_group ? " (group " + cfg.control.group + ", mode 0660)" : " (mode 0660)"));
  }
  supervisor::SupervisorOptions so;
  so.common_args = {"--config", opts.config_file, "--schema-dir", opts.schema_dir};
  if (opts.foreground) so.common_args.push_back("--foreground");
  so.initial_backoff = net::Duration(cfg.supervision.restart_backoff_ms);
  so.max_backoff = net::Duration(cfg.supervision.restart_backoff_max_ms);
  so.watchdog_timeout = net::Duration(cfg.supervision.watchdog_ms);
  so.give_up_after = cfg.supervision.give_up_after;
  std::unique_ptr<supervisor::SideFirewall> firewall;   // removed when portcullisd stops
  so.node = node;
  // Each server reaches only its own peers: the kernel rejects anything else it sends.
  const auto firewall_side = [](const config::Side& sd, const config::ProcessUser& u) {
    supervisor::FirewallSide f;
    f.name = sd.name;
    f.uid = u.uid;
    for (const config::Peer& p : sd.peers) f.peers.push_back({p.host, p.port});
    // The IRC servers its rooms gateway (issue 10) are this side's too.
    for (const config::RoomServiceSpec& svc : sd.rooms) {
      for (const config::RoomSpec& r : svc.rooms) {
        if (r.irc) f.peers.push_back({r.irc->server, r.irc->port});
      }
    }
    for (const config::Listen& l : sd.listen) f.listen.push_back({l.address, l.port, l.from, l.interface});
    return f;
  };
  const std::string firewall_comment = "portcullisd pid " + std::to_string(::getpid()) + " config " + opts.config_file;
  if (node && cfg.supervision.mode == config::SupervisionMode::Separated) {
    if (::geteuid() != 0) {
      log.error("separated mode needs portcullisd to start as root (it starts the node as its own user); "
                "for development set <supervision mode='single-user-development'/>");
      return 2;
    }
    const config::ProcessUser& u = cfg.supervision.node;
    so.identities[static_cast<std::size_t>(supervisor::Role::Node)] = {true, u.uid, u.gid};
    try {
      firewall = std::make_unique<supervisor::SideFirewall>(firewall_side(cfg.node, u), firewall_comment);
    } catch (const std::exception& e) {
      log.error(e.what());
      return 2;
    }
    log.info("node firewall: nftables table inet " + firewall->table() + " keeps the node to its peers");
    std::string error;
    if (!sandbox::limit_supervisor_capabilities(error, /*netns=*/false)) {
      log.error("cannot limit the supervisor's capabilities: " + error);
      return 2;
    }
    log.info("separated: the node runs as " + u.name);
  } else if (node) {
    log.warning("single-user-development mode: the node runs as this user (uid " + std::to_string(::getuid()) +
                "). Not for deployment.");
  } else if (cfg.supervision.mode == config::SupervisionMode::Separated) {
    // The config loader has already checked, for each user, what it can and
    // cannot read (config::load_config, LoadFor::Appliance).
    if (::geteuid() != 0) {
      log.error("separated mode needs portcullisd to start as root (it starts each child as its own user); "
                "for development set <supervision mode='single-user-development'/>");
      return 2;
    }
    const auto identity = [](const config::ProcessUser& u) {
      return supervisor::SupervisorOptions::Identity{true, u.uid, u.gid};
    };
    so.identities[static_cast<std::size_t>(supervisor::Role::EdgeLow)] = identity(cfg.supervision.low_edge);
    so.identities[static_cast<std::size_t>(supervisor::Role::Filter)] = identity(cfg.supervision.filter);
    so.identities[static_cast<std::size_t>(supervisor::Role::EdgeHigh)] = identity(cfg.supervision.high_edge);
    so.filter_netns = true;
    std::string error;
    if (!prepare_archive_dir(cfg.audit.dir, cfg.supervision.filter, error)) {
      log.error("cannot prepare the archive directory: " + error);
      return 2;
    }
    try {
      firewall = std::make_unique<supervisor::SideFirewall>(firewall_side(cfg.low, cfg.supervision.low_edge),
                                                            firewall_side(cfg.high, cfg.supervision.high_edge),
                                                            cfg.supervision.filter.uid, firewall_comment);
    } catch (const std::exception& e) {
      log.error(e.what());
      return 2;
    }
    log.info("side firewall: nftables table inet " + firewall->table() + " keeps each edge to its own side's peers");
    // From here on the supervisor needs only what restarting children takes.
    if (!sandbox::limit_supervisor_capabilities(error)) {
      log.error("cannot limit the supervisor's capabilities: " + error);
      return 2;
    }
    log.info("separated: edge(low) runs as " + cfg.supervision.low_edge.name + ", edge(high) as " +
             cfg.supervision.high_edge.name + ", filter as " + cfg.supervision.filter.name +
             " in an empty network namespace");
  } else {
    log.warning("single-user-development mode: every process runs as this user (uid " + std::to_string(::getuid()) +
                "); nothing keeps a compromised edge from the other side's keys. Not for deployment.");
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
  running = &sup;
  log.info(std::string(node ? "started: standalone FMUC node running" : "started: edge(low), filter, edge(high) running") +
           "; config " + opts.config_file);
  loop.run();
  running = nullptr;
  control.reset();
  if (!sup.gave_up().empty()) {
    // systemd (Restart=on-failure) shows this line and the status.
    log.error("stopped: " + sup.gave_up());
    return 5;
  }
  log.info("stopped");
  return 0;
}

}  // namespace portcullis::daemon
