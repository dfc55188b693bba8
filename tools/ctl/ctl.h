// portcullisctl's pieces that the unit tests also use: talking to the control
// socket, unpacking the children's reports, and the views (status, peers,
// rooms, OpenMetrics). docs/man/portcullisctl.1.md names every figure.
#pragma once

#include <optional>
#include <string>

#include "guard/audit/json.h"

namespace portcullis::ctl {

// Sends `command` (one line) to the control socket at `path` and returns the
// reply, or nullopt with `error` set (one readable line) when the socket
// cannot be reached, the reply is not JSON, or it takes over `timeout_ms`.
std::optional<audit::json::Value> ask(const std::string& path, const std::string& command, std::string& error,
                                      int timeout_ms = 10000);

// The supervisor passes each child's report on as a string (a child's own
// claim, never parsed by the supervisor): this replaces every
// children[].report string by the object it holds, or sets report_error.
audit::json::Value unpack(const audit::json::Value& reply);

// The views, from an unpacked reply. `degraded` is set when a child is not
// running or did not answer.
std::string render_status(const audit::json::Value& status, bool& degraded);
std::string render_peers(const audit::json::Value& status);
std::string render_rooms(const audit::json::Value& status);
// OpenMetrics text exposition (ends with "# EOF\n"); a null `status` (the
// socket did not answer) gives portcullis_up 0 and nothing else.
std::string render_metrics(const audit::json::Value* status);

}  // namespace portcullis::ctl
