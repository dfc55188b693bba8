#include "policy/guard/guard_factory.h"

#include "policy/guard/external_guard.h"
#include "policy/guard/schema_guard.h"

namespace portcullis::policy {

std::unique_ptr<Guard> make_guard(const config::GuardSpec& spec, net::EventLoop& loop, Logger& log,
                                  const GuardIsolation& isolation) {
  switch (spec.kind) {
    case config::GuardSpec::Kind::Schema:
      if (spec.profile.empty()) {
        throw config::ConfigError("", spec.line, spec.column, "guard " + spec.name + ": no profile given");
      }
      return std::make_unique<SchemaGuard>(spec.name, spec.profile);
    case config::GuardSpec::Kind::External: {
      ExternalGuardOptions opt;
      opt.program = spec.program;
      opt.args = spec.args;
      opt.timeout = std::chrono::milliseconds(spec.timeout_ms);
      opt.run_as_user = spec.run_as_user;
      opt.hide = isolation.hide;
      opt.isolation_waived = isolation.waived;
      try {
        return std::make_unique<ExternalGuard>(spec.name, std::move(opt), loop, log);
      } catch (const config::ConfigError& e) {
        // The program is named in the message; point at the config element.
        throw config::ConfigError("", spec.line, spec.column, e.message() + " (" + e.file() + ")");
      }
    }
  }
  throw config::ConfigError("", spec.line, spec.column, "guard " + spec.name + ": unknown guard kind");
}

void add_guards(GuardChain& chain, const config::Config& cfg, const std::string& direction, net::EventLoop& loop,
                Logger& log) {
  const auto& specs = direction == "low-to-high" ? cfg.guards.low_to_high : cfg.guards.high_to_low;
  for (const auto& spec : specs) {
    GuardIsolation iso;
    if (cfg.audit.enabled) iso.hide = {cfg.audit.dir, cfg.audit.signing_key_file};
    iso.waived = config::isolation_waiver(cfg, direction, spec.name) != nullptr;
    chain.add(make_guard(spec, loop, log, iso));
  }
}

}  // namespace portcullis::policy
