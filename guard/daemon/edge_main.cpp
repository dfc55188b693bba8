// edge(low) / edge(high): the S2S server of one side plus its frame channel to
// the filter. The channel is the only route to the other side.
// node: the S2S server of a standalone FMUC node: the same server with no
// filter channel at all (there is no other side), hosting its rooms.
#include <signal.h>

#include <memory>

#include "guard/config/config.h"
#include "guard/daemon/roles.h"
#include "guard/daemon/signals.h"
#include "guard/daemon/status_report.h"
#include "guard/ipc/frame_channel.h"
#include "guard/log/log.h"
#include "guard/sandbox/seccomp.h"
#include "guard/s2s/edge_server.h"
#include "guard/supervisor/child_control.h"

namespace portcullis::daemon {

int run_edge(const DaemonOptions& opts, const supervisor::ChildArgs& args) {
  const bool node = args.role == supervisor::Role::Node;
  const bool low = args.role == supervisor::Role::EdgeLow;
  const std::string name(supervisor::to_string(args.role));
  config::Config cfg;
  try {
    cfg = config::load_config(opts.config_file, opts.schema_dir,
                              node ? config::LoadFor::Node : low ? config::LoadFor::EdgeLow : config::LoadFor::EdgeHigh);
  } catch (const std::exception& e) {
    Logger fallback(name, Logger::Target::Stderr, LogLevel::Info);
    fallback.error(std::string("cannot load config: ") + e.what());
    return 2;
  }
  auto log = make_logger(name, cfg, opts.foreground, /*child=*/true);
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  const config::Side& side = node ? cfg.node : low ? cfg.low : cfg.high;
  std::unique_ptr<s2s::EdgeServer> server;
  try {
    server = std::make_unique<s2s::EdgeServer>(loop, side, low ? ipc::Direction::LowToHigh : ipc::Direction::HighToLow, *log);
    server->start();
  } catch (const std::exception& e) {
    log->error(std::string("cannot start: ") + e.what());
    return 3;
  }

  std::unique_ptr<ipc::FrameChannel> channel;
  auto attach = [&](int fd) {
    channel = std::make_unique<ipc::FrameChannel>(loop, fd);
    ipc::FrameChannel::Callbacks cb;
    cb.on_frame = [&](ipc::Frame&& f) { server->on_filter_frame(f); };
    cb.on_drained = [&] { server->filter_drained(); };
    cb.on_closed = [&](const std::string& reason) {
      server->filter_lost(reason);
      // The channel object is dropped on the next iteration (we are inside it).
      loop.post([&] {
        if (channel && !channel->is_open()) channel.reset();
      });
    };
    channel->set_callbacks(std::move(cb));
    channel->start();
    ipc::FrameChannel* raw = channel.get();
    s2s::FilterPort port;
    port.send = [raw](const ipc::Frame& f) { return raw->send(f); };
    port.send_control = [raw](const ipc::Frame& f) { return raw->send_control(f); };
    port.congested = [raw] { return raw->congested(); };
    server->set_filter(std::move(port));
  };
  // A node has no filter: nothing it receives can leave but over S2S to its peers.
  if (!node) attach(args.fds.ipc_fd);

  supervisor::ChildControl::Callbacks ccb;
  ccb.on_fd = [&](std::string_view tag, ipc::UniqueFd fd) {
    if (tag != "filter" || node) {
      LogLine(*log, LogLevel::Error) << "control: ignoring fd tagged '" << tag << "'";
      return;
    }
    LogLine(*log, LogLevel::Info) << "control: new link to the filter";
    if (channel) {
      channel->close();
      server->filter_lost("replaced by a new link");
    }
    attach(fd.release());
  };
  ccb.on_supervisor_gone = [&](const std::string& reason) {
    LogLine(*log, LogLevel::Error) << "supervisor gone (" << reason << "): exiting";
    server->shutdown();
    loop.stop();
  };
  ccb.on_bad_message = [&](const std::string& err) { LogLine(*log, LogLevel::Error) << "control: " << err; };
  ccb.on_status = [&] { return edge_status(*server, name); };
  // An edge has nothing to reload (a new config means a restart).
  ccb.on_reload = [](const std::string&) { return std::string("{\"ok\":true,\"reloaded\":\"nothing\"}"); };
  supervisor::ChildControl control(loop, args.fds.control_fd, std::move(ccb));
  control.start();

  bool stopping = false;
  TerminationSignals signals(loop, [&](int sig) {
    if (sig == SIGHUP) return;   // edges have nothing to reload yet
    if (stopping) return;
    stopping = true;
    log->info("terminating: closing streams");
    server->shutdown();
    // Give the closing stream errors a moment to flush, then stop.
    loop.add_timer(net::Duration(300), [&] { loop.stop(); });
  });

  // Start-up is over: the config, certificate, key, CA and dialback secret are
  // loaded, the listeners bound, the signal fd made. From here the edge only
  // runs its loop, and the kernel holds it to that before the first hostile
  // byte is read (nothing is accepted or read before loop.run()). Edges have
  // nothing to reload (SIGHUP is ignored above); a new config means a restart.
  // Failing to install the filter is failing closed.
  if (std::string sandbox_error;
      !sandbox::install_edge_allowlist({/*syslog=*/log->target() == Logger::Target::Syslog}, sandbox_error)) {
    log->error("cannot install the seccomp allow-list: " + sandbox_error);
    return 4;
  }
  log->info(node ? std::string("started as a standalone FMUC node (seccomp allow-list installed)")
                 : "started for side " + side.name + " (seccomp allow-list installed)");
  loop.run();
  return 0;
}

}  // namespace portcullis::daemon
