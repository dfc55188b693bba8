// The filter contract of the policy pipeline.
//
// A Filter inspects one stanza in its context and returns a closed Verdict.
// Filters never throw on the data path and never touch the network, the archive
// or the clock directly: the runner records what they decided. A filter that
// throws anyway is treated as a Reject (fail closed).
//
// Filters are built once from validated policy by a FilterFactory (control
// plane, may throw ConfigError) and are then immutable and shared; per-stanza
// state lives in the StanzaContext.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guard/ipc/frame.h"
#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_error.h"

namespace portcullis::policy {

enum class VerdictKind {
  Accept,      // explicitly allowed: ends the pipeline with a release (unless shadow)
  NoOpinion,   // passes to the next filter
  Reject,      // stops the pipeline; the sender gets `error`
  Modify,      // the filter transformed the stanza (named transformation), continue
};

std::string_view to_string(VerdictKind k);

struct Verdict {
  VerdictKind kind = VerdictKind::NoOpinion;
  std::string rule_id;                       // which rule decided; may be empty for NoOpinion
  std::optional<xmpp::StanzaError> error;    // for Reject
  std::string transformation;                // for Modify: its name (audited)
  // What the filter saw or did that the audit record must show, as (key, value):
  // e.g. ("label.original", "SECRET"), ("label.mapped", "NATO SECRET"),
  // ("removed", "urn:xmpp:jingle:1"). Never stanza text the officer did not ask for.
  std::vector<std::pair<std::string, std::string>> notes;

  static Verdict accept(std::string rule);
  static Verdict no_opinion(std::string rule = {});
  static Verdict reject(std::string rule, xmpp::StanzaErrorCondition c, std::string text);
  static Verdict modify(std::string rule, std::string transformation);
};

// What the pipeline knows about the stanza besides its bytes.
struct StanzaContext {
  ipc::Direction direction = ipc::Direction::LowToHigh;
  std::string peer_domain;          // authenticated domain of the stream it came in on
  ipc::AuthMethod auth = ipc::AuthMethod::None;
  bool peer_tls = false;
  std::string cert_identity;
  std::uint64_t seq = 0;
  std::size_t wire_bytes = 0;       // size of the serialized stanza as framed
};

class Filter {
 public:
  virtual ~Filter() = default;
  // Called once per stanza, in pipeline order. May modify `stanza` only when it
  // returns Modify. Must not throw (a throw is a Reject by the runner).
  virtual Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const = 0;
  // The filter's instance name (as in the policy) and type name (registry key).
  virtual const std::string& name() const = 0;
  virtual std::string_view type() const = 0;
};

// One step of the decision trail.
struct TrailEntry {
  std::string filter;        // instance name
  std::string type;          // registry type
  Verdict verdict;
  bool shadow = false;       // decided but not enforced
};

struct Decision {
  bool release = false;                      // true: forward the (possibly modified) stanza
  Verdict final_verdict;                     // the verdict that ended the pipeline
  std::vector<TrailEntry> trail;             // every filter that ran, in order
  std::vector<std::string> transformations;  // applied, in order
};

// Counters per filter instance, for operators (exposed in logs/status).
struct FilterCounters {
  std::uint64_t accept = 0, no_opinion = 0, reject = 0, modify = 0, error = 0;
};

}  // namespace portcullis::policy
