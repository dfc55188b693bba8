// The filter in the middle of the sandwich. It has no network sockets: it
// reads frames from edge(low) and edge(high), runs each stanza through the
// pipeline of its direction, and then either
//   - releases it: a Stanza frame to the far edge (exact bytes unless a named
//     transformation changed them), or
//   - rejects it: an error reply (never echoing the stanza) as a Local frame
//     back to the origin edge, when bounce rules allow a reply;
// and finally acknowledges the frame to the origin edge (Ack), so the edge
// knows the stanza was decided. A stanza whose far edge is down is rejected
// with remote-server-timeout (wait): nothing waits in the filter.
//
// The filter trusts nothing in a frame it cannot check: a frame with the
// wrong direction for its channel, an unknown auth method or an unparseable
// body is rejected and logged, never released.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "guard/ipc/frame_channel.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"
#include "policy/pipeline.h"

namespace portcullis::filterproc {

struct FilterCounters {
  std::uint64_t released = 0;
  std::uint64_t rejected = 0;
  std::uint64_t errors_sent = 0;
  std::uint64_t refused_frames = 0;   // malformed or inconsistent frames
};

class FilterProcess {
 public:
  FilterProcess(net::EventLoop& loop, policy::Pipeline low_to_high, policy::Pipeline high_to_low,
                std::size_t max_stanza_bytes, Logger& log);
  ~FilterProcess();

  // Replaces both pipelines at once (the policy reload). The process is
  // single-threaded and this runs from the event loop, so it happens between
  // stanzas: every stanza is decided entirely by one policy. `policy_id`
  // ("<version>/<first 12 hex of sha256>") goes into every decision log line
  // from now on; `owner` is kept alive exactly as long as these pipelines (the
  // policy tree their filters point into). The old pipelines, and then the old
  // owner, are destroyed here.
  void replace_pipelines(policy::Pipeline low_to_high, policy::Pipeline high_to_low,
                         std::string policy_id, std::shared_ptr<const void> owner = {});
  // The policy the pipelines came from ("-" until replace_pipelines()).
  const std::string& policy_id() const { return policy_id_; }

  // Installs (or replaces) the channel to an edge. Takes ownership of `fd`.
  void attach_low(int fd);
  void attach_high(int fd);

  const FilterCounters& counters() const { return counters_; }

 private:
  void attach(bool low, int fd);
  void on_frame(bool from_low, ipc::Frame&& f);
  void send_error(bool to_low, const xmpp::Element& stanza, const xmpp::StanzaError& err);
  bool send_to(bool low, const ipc::Frame& f);

  net::EventLoop& loop_;
  // Declared before the pipelines so it is destroyed after them.
  std::shared_ptr<const void> policy_owner_;
  policy::Pipeline low_to_high_, high_to_low_;
  std::string policy_id_ = "-";
  std::size_t max_stanza_bytes_;
  Logger& log_;
  std::unique_ptr<ipc::FrameChannel> low_, high_;
  std::uint64_t out_seq_ = 1;
  FilterCounters counters_;
};

}  // namespace portcullis::filterproc
