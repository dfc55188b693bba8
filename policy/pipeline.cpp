#include "policy/pipeline.h"

#include <exception>
#include <stdexcept>

namespace portcullis::policy {

namespace {

void count(FilterCounters& c, VerdictKind k) {
  switch (k) {
    case VerdictKind::Accept: ++c.accept; break;
    case VerdictKind::NoOpinion: ++c.no_opinion; break;
    case VerdictKind::Reject: ++c.reject; break;
    case VerdictKind::Modify: ++c.modify; break;
  }
}

// Calls the filter; an exception becomes a Reject. The exception's text is not
// used: it may quote stanza content, and error texts go back to the sender.
Verdict evaluate_guarded(const Filter& f, xmpp::Element& stanza, const StanzaContext& ctx,
                         bool& threw) noexcept {
  threw = false;
  try {
    Verdict v = f.evaluate(stanza, ctx);
    // A Reject must carry an error for the sender; a filter that forgot one
    // still rejects, with a generic condition.
    if (v.kind == VerdictKind::Reject && !v.error) {
      v.error = xmpp::StanzaError{};
      v.error->condition = xmpp::StanzaErrorCondition::PolicyViolation;
      v.error->type = xmpp::default_type(v.error->condition);
    }
    return v;
  } catch (...) {
    threw = true;
  }
  try {
    return Verdict::reject(std::string(kRuleExceptionPrefix) + f.name(),
                           xmpp::StanzaErrorCondition::InternalServerError,
                           "internal filter error");
  } catch (...) {
    std::terminate();   // cannot even build the reject: do not continue
  }
}

}  // namespace

void Pipeline::add(std::shared_ptr<const Filter> filter, bool shadow) {
  if (!filter) throw std::invalid_argument("Pipeline::add: null filter");
  stages_.push_back(PipelineStage{std::move(filter), shadow});
  counters_.emplace_back();
}

Decision Pipeline::run(xmpp::Element& stanza, const StanzaContext& ctx) const noexcept {
  Decision d;
  d.trail.reserve(stages_.size());   // one entry per stage run: no regrowth per stanza
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const PipelineStage& stage = stages_[i];
    const Filter& f = *stage.filter;
    bool threw = false;
    Verdict v;
    if (stage.shadow) {
      xmpp::Element scratch = stanza;   // a shadow filter never touches the real stanza
      v = evaluate_guarded(f, scratch, ctx, threw);
    } else {
      v = evaluate_guarded(f, stanza, ctx, threw);
    }
    FilterCounters& c = counters_[i];
    if (threw) {
      ++c.error;
    } else {
      count(c, v.kind);
    }
    d.trail.push_back(TrailEntry{f.name(), std::string(f.type()), v, stage.shadow});
    if (stage.shadow) continue;

    switch (v.kind) {
      case VerdictKind::Accept:
        d.release = true;
        d.final_verdict = std::move(v);
        return d;
      case VerdictKind::Reject:
        d.release = false;
        d.final_verdict = std::move(v);
        return d;
      case VerdictKind::Modify:
        d.transformations.push_back(v.transformation);
        break;
      case VerdictKind::NoOpinion:
        break;
    }
  }
  // Fail closed: nobody explicitly accepted.
  d.release = false;
  d.final_verdict = Verdict::reject(std::string(kRuleDefaultDeny),
                                    xmpp::StanzaErrorCondition::PolicyViolation,
                                    "no policy rule allows this stanza");
  return d;
}

}  // namespace portcullis::policy
