// Builds guards from validated configuration (control plane: may throw
// config::ConfigError). The filter process calls these once at start.
#pragma once

#include <memory>
#include <vector>

#include "guard/config/config.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"
#include "policy/guard/guard.h"

namespace portcullis::policy {

// Schema: a SchemaGuard loading spec.profile. External: an ExternalGuard
// running spec.program with spec.args, spec.timeout_ms and spec.run_as_user
// (restart backoff and queue bound take ExternalGuardOptions' defaults). The
// guard's name is spec.name. Errors from loading the profile name the schema
// file and position; other errors carry spec.line/spec.column.
// An external guard's isolation: what its mount namespace covers (see
// ExternalGuardOptions::hide) and whether the config waives isolation for it.
struct GuardIsolation {
  std::vector<std::string> hide;
  bool waived = false;
};
std::unique_ptr<Guard> make_guard(const config::GuardSpec& spec, net::EventLoop& loop, Logger& log,
                                  const GuardIsolation& isolation = {});

// Appends one guard per spec of `direction` ("low-to-high" / "high-to-low"),
// in order, to `chain`; each external guard hides the audit archive and its
// signing key, and is waived from isolation only by a <waiver of="guard-isolation">.
void add_guards(GuardChain& chain, const config::Config& cfg, const std::string& direction, net::EventLoop& loop,
                Logger& log);

}  // namespace portcullis::policy
