// The pipeline runner: one ordered list of filters for ONE direction.
//
// run() walks the filters in order and records a TrailEntry for every filter
// that ran, so the audit record proves each one was consulted, in order:
//  - Accept (enforced) ends the pipeline with release = true;
//  - Reject (enforced) ends it with release = false and the filter's error;
//  - Modify records the named transformation and continues;
//  - NoOpinion continues;
//  - a filter that throws is a Reject (internal-server-error, rule
//    "exception:<filter name>"): fail closed;
//  - reaching the end with no enforced Accept is a Reject (policy-violation,
//    rule "default-deny"): fail closed. An empty pipeline denies everything.
//
// Shadow stages decide and are counted and recorded (TrailEntry::shadow), but
// never end the pipeline and never change the stanza: they evaluate a copy, so
// a shadow Modify or a shadow filter that throws half-way leaves the real
// stanza untouched. A shadow filter that throws is recorded as a shadow
// reject and counted as an error; it does not block (it has no enforcement
// power to lose).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/filter.h"

namespace portcullis::policy {

// Rule ids the runner itself uses in verdicts.
inline constexpr std::string_view kRuleDefaultDeny = "default-deny";
inline constexpr std::string_view kRuleExceptionPrefix = "exception:";

struct PipelineStage {
  std::shared_ptr<const Filter> filter;
  bool shadow = false;
};

class Pipeline {
 public:
  Pipeline() = default;

  // Appends a stage (control plane). `filter` must not be null.
  void add(std::shared_ptr<const Filter> filter, bool shadow = false);

  // Runs the stanza through every stage as described above. Never throws
  // (allocation failure terminates the process: the supervisor restarts the
  // filter and nothing crosses meanwhile). Updates the per-stage counters.
  Decision run(xmpp::Element& stanza, const StanzaContext& ctx) const noexcept;

  std::size_t size() const { return stages_.size(); }
  const std::vector<PipelineStage>& stages() const { return stages_; }
  // Counters of stage `index` (same order as stages()). For a shadow stage the
  // accept/reject counters count what it would have done.
  const FilterCounters& counters(std::size_t index) const { return counters_.at(index); }

 private:
  std::vector<PipelineStage> stages_;
  // The process is single-threaded; counters are operator statistics only.
  mutable std::vector<FilterCounters> counters_;
};

}  // namespace portcullis::policy
