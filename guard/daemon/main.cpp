// portcullisd command line. Thin on purpose: each role lives in its own file.
//
//   portcullisd --config FILE [--foreground] [--schema-dir DIR]
//   portcullisd --check-config FILE [--schema-dir DIR]
//   (internal) portcullisd --role edge|filter ...   (started by the supervisor)
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "guard/config/config.h"
#include "guard/daemon/roles.h"
#include "guard/sandbox/seccomp.h"
#include "policy/policy_file.h"

#ifndef PORTCULLIS_SCHEMA_DIR
#define PORTCULLIS_SCHEMA_DIR "/usr/share/portcullis/schemas"
#endif

namespace {

int usage(const char* why) {
  std::fprintf(stderr,
               "portcullisd: %s\n"
               "usage: portcullisd --config FILE [--foreground] [--schema-dir DIR]\n"
               "       portcullisd --check-config FILE [--schema-dir DIR]\n",
               why);
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace portcullis;
  // OpenSSL writes with write(2): a peer resetting mid-TLS must give EPIPE, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> all(argv + 1, argv + argc);
  std::string error;
  auto child = supervisor::parse_child_args(all, error);
  if (!child && !error.empty()) return usage(error.c_str());
  const std::vector<std::string>& rest = child ? child->rest : all;

  daemon::DaemonOptions opts;
  opts.schema_dir = PORTCULLIS_SCHEMA_DIR;
  std::string check_file;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const std::string& a = rest[i];
    auto value = [&](const char* name) -> const std::string* {
      if (i + 1 >= rest.size()) {
        usage((std::string(name) + " needs a value").c_str());
        return nullptr;
      }
      return &rest[++i];
    };
    if (a == "--config") { auto v = value("--config"); if (!v) return 64; opts.config_file = *v; }
    else if (a == "--check-config") { auto v = value("--check-config"); if (!v) return 64; check_file = *v; }
    else if (a == "--schema-dir") { auto v = value("--schema-dir"); if (!v) return 64; opts.schema_dir = *v; }
    else if (a == "--foreground") opts.foreground = true;
    else return usage(("unknown argument '" + a + "'").c_str());
  }

  if (!check_file.empty()) {
    // The config and the policy file it names: what the daemon would load.
    try {
      const config::Config cfg = config::load_config(check_file, opts.schema_dir);
      const policy::LoadedPolicy p = policy::load_policy(cfg.policy_file, opts.schema_dir, policy::builtin_filters());
      std::printf("%s: OK (policy %s version %s sha256 %s)\n", check_file.c_str(), p.file.c_str(), p.version.c_str(),
                  p.sha256.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
    return 0;
  }
  if (opts.config_file.empty()) return usage("--config FILE is required");
  // Every process of the sandwich: no exec may gain privilege, and no other
  // process of the same uid may ptrace it or read its memory or fds.
  if (std::string harden_error; !sandbox::harden_process(harden_error)) {
    std::fprintf(stderr, "portcullisd: cannot harden the process: %s\n", harden_error.c_str());
    return 4;
  }
  if (child) {
    return child->role == supervisor::Role::Filter ? daemon::run_filter(opts, *child)
                                                   : daemon::run_edge(opts, *child);
  }
  return daemon::run_supervisor(opts);
}
