// The filter in the middle of the sandwich. It has no network sockets (the
// kernel forbids them once it runs, guard/sandbox): it reads frames from
// edge(low) and edge(high), and for each stanza
//   1. runs the policy pipeline of its direction (policy/pipeline.h);
//   2. if the pipeline releases it, runs the guard stage of that direction
//      (policy/guard/guard.h) on the exact bytes that would cross;
//   3. appends the decision record (bytes included) to the audit archive and
//      waits until it is durable (guard/audit/archive.h, group commit);
//   4. only then releases the stanza to the far edge (exact bytes unless a
//      named transformation changed them), or sends the sender an error reply
//      that never echoes the stanza (Local frame to the origin edge);
//   5. acknowledges the frame to the origin edge (Ack), so the edge knows the
//      stanza was decided.
// A record that cannot be made durable means no release: the sender gets a
// wait-type error (fail closed). A stanza whose far edge is down is rejected
// with remote-server-timeout (wait): nothing waits in the filter.
//
// The filter trusts nothing in a frame it cannot check: before the pipeline,
// every Stanza frame is checked against what its edge may claim (frame_check.h:
// direction, authentication, `from` = peer domain, a peer of that side, `to`
// fronted there); a frame that fails is refused with rule frame-consistency
// (recorded, logged, and answered only where the sender is verified), never
// released. An error stanza that is released crosses with only its type and
// condition (error_text.h): no text chosen beyond the boundary.
//
// Connection events from the edges (Event frames) become connection records.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>

#include "guard/audit/archive.h"
#include "guard/filterproc/frame_check.h"
#include "guard/ipc/frame_channel.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"
#include "policy/guard/guard.h"
#include "policy/pipeline.h"

namespace portcullis::filterproc {

struct FilterCounters {
  std::uint64_t released = 0;
  std::uint64_t rejected = 0;
  std::uint64_t errors_sent = 0;
  std::uint64_t refused_frames = 0;   // malformed or inconsistent frames (frame-consistency)
  std::uint64_t error_texts_removed = 0;   // released error stanzas rewritten (error_text.h)
  std::uint64_t guard_blocks = 0;     // released by the policy, blocked by a guard
  std::uint64_t audit_failures = 0;   // records that could not be made durable
  std::uint64_t far_confirmed = 0;    // released stanzas the far edge confirmed it took
  std::uint64_t far_delivered = 0;    // ... and the far server acknowledged (delivery accounting)
  std::uint64_t far_lost = 0;         // ... whose link ended before any proof: bounced, in doubt
  std::uint64_t far_in_doubt = 0;     // released, never confirmed (far edge lost or timed out)
  std::uint64_t unknown_acks = 0;     // confirmations for nothing this filter released
  std::uint64_t near_pauses = 0;      // times a near channel stopped being read (far one full)
  std::uint64_t edge_refusals = 0;    // stanzas an edge refused itself, recorded (Refusal frames)
};

// Which policy decided: its officer's version string and the SHA-256 of the file.
struct PolicyIdentity {
  std::string version = "-";
  std::string sha256;
  // "<version>/<first 12 hex of sha256>", as in the decision log lines.
  std::string short_id() const;
};

class FilterProcess {
 public:
  // `archive` must outlive the FilterProcess. Until replace_pipelines() runs the
  // pipelines are empty, which denies everything. `boundary` (from the config
  // the filter loads itself) is what frames are checked against; an empty one
  // refuses every frame.
  FilterProcess(net::EventLoop& loop, audit::AuditArchive& archive, std::size_t max_stanza_bytes, Logger& log,
                Boundary boundary);
  ~FilterProcess();
  FilterProcess(const FilterProcess&) = delete;
  FilterProcess& operator=(const FilterProcess&) = delete;

  // Replaces both pipelines at once (start and policy reload). The process is
  // single-threaded and this runs from the event loop, so between decisions:
  // each stanza is decided entirely by one policy. `owner` is kept alive
  // exactly as long as these pipelines (the policy tree their filters point into).
  void replace_pipelines(policy::Pipeline low_to_high, policy::Pipeline high_to_low, PolicyIdentity id,
                         std::shared_ptr<const void> owner = {});
  const PolicyIdentity& policy() const { return policy_; }
  // The guard stage per direction (empty chains pass everything the policy released).
  void set_guards(policy::GuardChain low_to_high, policy::GuardChain high_to_low);

  // Installs (or replaces) the channel to an edge. Takes ownership of `fd`.
  void attach_low(int fd);
  void attach_high(int fd);

  const FilterCounters& counters() const { return counters_; }
  std::size_t pending() const { return pending_; }
  // Released stanzas the far edge has not confirmed taking yet (flow control).
  std::size_t awaiting_far() const { return awaiting_.size() - taken_by_age_.size(); }
  // Taken by the far edge, not yet known delivered or lost (delivery accounting).
  std::size_t awaiting_delivery() const { return taken_by_age_.size(); }
  // A released stanza the far edge does not confirm (taken, then delivered or
  // lost) within this time is recorded as in doubt; its sender's credit is given back.
  static constexpr std::chrono::seconds kFarConfirmTimeout{120};
  // Delivered stanzas are recorded together: one record per far domain, edge
  // and kind of proof, at most this often (or every kDeliveredBatch stanzas).
  static constexpr std::chrono::milliseconds kDeliveredFlush{1000};
  static constexpr std::size_t kDeliveredBatch = 512;
  // Taken stanzas awaiting their outcome, at most (then the oldest is in doubt).
  static constexpr std::size_t kMaxTaken = 16384;

 private:
  struct InFlight;
  void attach(bool low, int fd);
  void on_frame(bool from_low, ipc::Frame&& f);
  void on_event(bool from_low, const ipc::Frame& f);
  void on_refusal(bool from_low, const ipc::Frame& f);
  void after_guards(const std::shared_ptr<InFlight>& s);
  void commit(const std::shared_ptr<InFlight>& s);
  void act(const std::shared_ptr<InFlight>& s, const audit::AppendResult& r);
  void send_error(bool to_low, const xmpp::Element& stanza, const xmpp::StanzaError& err);
  bool send_to(bool low, const ipc::Frame& f);
  bool send_control_to(bool low, const ipc::Frame& f);
  void send_ack(bool to_low, std::uint64_t seq);
  void on_far_ack(bool from_low, const ipc::Frame& f);
  // Edge `low` (true) or high is gone: what it was given and never confirmed is in doubt.
  void far_gone(bool low, const std::string& reason);
  // `bounce`: the sender gets remote-server-timeout with `error_text`.
  void in_doubt(const InFlight& s, const std::string& why, bool bounce,
                const std::string& error_text = "far side of the boundary unavailable");
  void delivered(const InFlight& s, const std::string& proof);
  // Holds a released stanza until the far edge confirms it (flow control, delivery accounting).
  void await_far(const std::shared_ptr<InFlight>& s);
  void flush_delivered();
  void sweep_awaiting();
  void log_summary();
  bool channel_up(bool low) const;
  void log_decision(const InFlight& s, const std::string& outcome, const std::string& audit_seq);

  net::EventLoop& loop_;
  audit::AuditArchive& archive_;
  // Declared before the pipelines so it is destroyed after them.
  std::shared_ptr<const void> policy_owner_;
  policy::Pipeline low_to_high_, high_to_low_;
  policy::GuardChain guards_low_to_high_, guards_high_to_low_;
  PolicyIdentity policy_;
  Boundary boundary_;
  std::size_t max_stanza_bytes_;
  Logger& log_;
  std::unique_ptr<ipc::FrameChannel> low_, high_;
  std::uint64_t out_seq_ = 1;
  std::size_t pending_ = 0;            // stanzas between decision and action
  // Released, not yet confirmed by the far edge, by (sender is low, frame seq):
  // the sender's edge gets its Ack (and its stream its credit) only then.
  // After the far edge took it (taken), the entry stays until that edge says
  // delivered or lost: the stanza is kept so a loss can be bounced and recorded.
  struct Awaiting {
    std::shared_ptr<InFlight> s;
    net::TimePoint since;
    bool taken = false;
  };
  using AwaitMap = std::map<std::pair<bool, std::uint64_t>, Awaiting>;
  AwaitMap awaiting_;
  // The entries of awaiting_ with taken set, oldest release first.
  std::set<std::pair<net::TimePoint, std::pair<bool, std::uint64_t>>> taken_by_age_;
  // Erases an entry (and its taken_by_age_ entry); one never taken gives its
  // sender's credit back. Returns the next entry.
  AwaitMap::iterator drop_awaiting(AwaitMap::iterator it);
  // Delivered, not yet recorded: by (sender is low, far domain, proof), the frame seqs.
  std::map<std::tuple<bool, std::string, std::string>, std::vector<std::uint64_t>> delivered_;
  std::size_t delivered_count_ = 0;
  net::TimerId delivered_timer_ = 0;
  net::TimerId sweep_timer_ = 0;
  net::TimerId summary_timer_ = 0;
  std::uint64_t summarised_released_ = 0, summarised_rejected_ = 0;
  FilterCounters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis::filterproc
