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
std::unique_ptr<Guard> make_guard(const config::GuardSpec& spec, net::EventLoop& loop, Logger& log);

// Appends one guard per spec, in order, to `chain`.
void add_guards(GuardChain& chain, const std::vector<config::GuardSpec>& specs, net::EventLoop& loop,
                Logger& log);

}  // namespace portcullis::policy
