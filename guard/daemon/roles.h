// Entry points of the processes of the sandwich. main.cpp only parses the
// command line and calls one of these.
#pragma once

#include <string>

#include <memory>

#include "guard/config/config.h"
#include "guard/log/log.h"
#include "guard/supervisor/supervisor.h"

namespace portcullis::daemon {

struct DaemonOptions {
  std::string config_file;
  std::string schema_dir;
  bool foreground = false;     // log to stderr instead of syslog
};

// The process's logger as the config says (stderr when --foreground).
std::unique_ptr<Logger> make_logger(const std::string& name, const config::Config& cfg, bool foreground,
                                    bool child = false);

// portcullisd itself: starts and watches edge(low), filter, edge(high).
int run_supervisor(const DaemonOptions& opts);
// A child, after the supervisor re-executed us with role arguments.
int run_edge(const DaemonOptions& opts, const supervisor::ChildArgs& args);
int run_filter(const DaemonOptions& opts, const supervisor::ChildArgs& args);

}  // namespace portcullis::daemon
