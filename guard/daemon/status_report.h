// What portcullisctl shows: each child's own figures (answered over its
// control socketpair, ChildControl::on_status) and the supervisor's account of
// its children, composed into one JSON text. Only integers, strings, booleans
// (the audit JSON subset), so the tools parse it with the same strict parser.
// docs/man/portcullisctl.1.md describes every field and metric.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "guard/supervisor/supervisor.h"

namespace portcullis::s2s {
class EdgeServer;
}
namespace portcullis::filterproc {
class FilterProcess;
struct PolicyIdentity;
}
namespace portcullis::audit {
class AuditArchive;
}

namespace portcullis::daemon {

// Streams listed per edge at most (the counts are always complete).
inline constexpr std::size_t kMaxListedStreams = 200;

std::string edge_status(const s2s::EdgeServer& server, std::string_view role);

struct PolicyState {
  std::string version, sha256, file;
  std::int64_t loaded_unix_ms = 0;
  std::uint64_t reloads = 0, reload_failures = 0;
  std::string last_reload_error;
};
std::string filter_status(const filterproc::FilterProcess& filter, const audit::AuditArchive& archive,
                          const std::string& archive_dir, const PolicyState& policy);

struct ApplianceInfo {
  std::string kind;         // "appliance" / "node"
  std::string mode;         // "separated" / "single-user-development"
  std::string config_file;
  std::int64_t started_unix_ms = 0;
  bool stopping = false;
};
// The answer to "status" or "reload": the appliance and, per child, what the
// supervisor knows (pid, restarts, heartbeat) and its reply as a string (its
// own claim, never parsed by the supervisor).
std::string appliance_status(const ApplianceInfo& info, const std::vector<supervisor::Supervisor::ChildAnswer>& answers);

std::int64_t unix_now_ms();

}  // namespace portcullis::daemon
