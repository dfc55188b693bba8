// portcullisd command line. Thin on purpose: each role lives in its own file.
//
//   portcullisd --config FILE [--foreground] [--schema-dir DIR]
//   portcullisd --check-config FILE [--schema-dir DIR]
//   portcullisd --help | --version
//   (internal) portcullisd --role edge|filter ...   (started by the supervisor)
// Exit status as every Portcullis program (guard/cli/command_line.h).
#include <csignal>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "guard/cli/command_line.h"
#include "guard/config/config.h"
#include "guard/daemon/preflight.h"
#include "guard/daemon/roles.h"
#include "guard/sandbox/seccomp.h"
#include "policy/policy_file.h"
#include "portcullis_paths.h"

namespace {

constexpr const char* kProgram = "portcullisd";

constexpr const char* kHelp =
    "usage: portcullisd --config FILE [--foreground] [--schema-dir DIR]\n"
    "       portcullisd --check-config FILE [--schema-dir DIR]\n"
    "       portcullisd --help | --version\n"
    "Runs the Portcullis XMPP boundary guard: the supervisor, which starts and watches\n"
    "edge(low), the filter and edge(high), on the appliance configuration FILE; or, when\n"
    "FILE is a <node> configuration, a standalone FMUC node (one server, no boundary).\n"
    "  --config FILE        run on this configuration (the systemd unit's: " PORTCULLIS_CONFIG_FILE ")\n"
    "  --check-config FILE  load the configuration and the policy it names, print OK or the error\n"
    "  --foreground         log to stderr instead of syslog\n"
    "  --schema-dir DIR     where the XSDs are (default " PORTCULLIS_SCHEMA_DIR ")\n"
    "  --help, --version    this text, the version\n"
    "exit status: 0 ok (--check-config: the configuration is valid), 1 the configuration or\n"
    "policy is invalid, 2 bad command line; see portcullisd(8) for the daemon's own statuses\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace portcullis;
  // OpenSSL writes with write(2): a peer resetting mid-TLS must give EPIPE, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> all(argv + 1, argv + argc);
  std::string error;
  auto child = supervisor::parse_child_args(all, error);
  if (!child && !error.empty()) return cli::usage_error(kProgram, error);
  if (!child) {
    if (auto done = cli::answer_help_or_version(all, kProgram, kHelp)) return *done;
  }
  const std::vector<std::string>& rest = child ? child->rest : all;

  daemon::DaemonOptions opts;
  opts.schema_dir = PORTCULLIS_SCHEMA_DIR;
  std::string check_file;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const std::string& a = rest[i];
    const bool takes_value = a == "--config" || a == "--check-config" || a == "--schema-dir";
    if (takes_value && i + 1 >= rest.size()) return cli::usage_error(kProgram, a + " needs a value");
    if (a == "--config") opts.config_file = rest[++i];
    else if (a == "--check-config") check_file = rest[++i];
    else if (a == "--schema-dir") opts.schema_dir = rest[++i];
    else if (a == "--foreground") opts.foreground = true;
    else return cli::usage_error(kProgram, "unknown argument '" + a + "'");
  }
  if (!check_file.empty() && !opts.config_file.empty())
    return cli::usage_error(kProgram, "--check-config and --config do not go together");

  if (!check_file.empty()) {
    // The config and the policy file it names: what the daemon would load.
    try {
      const config::Config cfg = config::load_config(check_file, opts.schema_dir);
      const daemon::PreflightReport pre = daemon::preflight(cfg, std::time(nullptr), opts.schema_dir);
      if (cfg.kind == config::ConfigKind::Node) {
        std::printf("%s: OK (standalone FMUC node)\n", check_file.c_str());
        const config::Supervision& sup = cfg.supervision;
        std::printf("  supervision: %s\n", sup.mode == config::SupervisionMode::Separated
                                                 ? ("separated: the node runs as " + sup.node.name +
                                                    "; every file's readers and writers checked").c_str()
                                                 : "single-user-development (not for deployment)");
        for (const std::string& line : pre.summary) std::printf("  %s\n", line.c_str());
        for (const std::string& w : pre.warnings) std::fprintf(stderr, "%s: warning: %s\n", check_file.c_str(), w.c_str());
        return cli::kExitOk;
      }
      const policy::LoadedPolicy p = policy::load_policy(cfg.policy_file, opts.schema_dir, policy::builtin_filters());
      std::printf("%s: OK (policy %s version %s sha256 %s)\n", check_file.c_str(), p.file.c_str(), p.version.c_str(),
                  p.sha256.c_str());
      const config::Supervision& sup = cfg.supervision;
      const std::string supervision =
          sup.mode == config::SupervisionMode::Separated
              ? "separated: edge(low) " + sup.low_edge.name + ", edge(high) " + sup.high_edge.name + ", filter " +
                    sup.filter.name + "; every file's readers and writers checked"
              : std::string("single-user-development (not for deployment)");
      std::printf("  supervision: %s\n", supervision.c_str());
      for (const std::string& line : pre.summary) std::printf("  %s\n", line.c_str());
      std::printf("  guards: %zu low->high, %zu high->low; %zu waiver(s)\n", cfg.guards.low_to_high.size(),
                  cfg.guards.high_to_low.size(), cfg.waivers.size());
      for (const std::string& w : pre.warnings) std::fprintf(stderr, "%s: warning: %s\n", check_file.c_str(), w.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return cli::kExitFailed;
    }
    return cli::kExitOk;
  }
  if (opts.config_file.empty()) return cli::usage_error(kProgram, "--config FILE is required");
  // Every process of the sandwich: no exec may gain privilege, and no other
  // process of the same uid may ptrace it or read its memory or fds.
  if (std::string harden_error; !sandbox::harden_process(harden_error)) {
    std::fprintf(stderr, "portcullisd: cannot harden the process: %s\n", harden_error.c_str());
    return 4;
  }
  if (child) {
    // An edge or a standalone node's server: the same S2S server (a node's has no filter).
    return child->role == supervisor::Role::Filter ? daemon::run_filter(opts, *child)
                                                   : daemon::run_edge(opts, *child);
  }
  return daemon::run_supervisor(opts);
}
