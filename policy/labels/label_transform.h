// LabelTransformFilter ("label-transform"): maps the label of a stanza from
// one security policy (from-spif, the sending side's) to another (to-spif,
// the receiving side's) with the SPIF equivalences (spif.h translate(): the
// source's applied=encrypt|both entries, else the target's decrypt|both).
//
// For each message or iq (presence, errors, other elements and malformed
// labels: the same early checks and rule ids as label-access):
//  - unlabelled: with a configured <default-label> (a label of the source
//    policy) that label is mapped and added; without one: NoOpinion with the
//    filter's rule id (label-access decides what unlabelled traffic gets);
//  - the source label is the first of <label>, <equivalentlabel>... under the
//    source policy (or, if none is, under the target policy: then it is kept
//    as it is and only the marking is regenerated); an empty <label/> means
//    the source default label; nothing usable -> Reject policy-violation
//    "no equivalent label"; a label not valid under its SPIF -> Reject
//    policy-violation "security label not valid";
//  - no equivalent for its classification or for any category -> Reject
//    policy-violation "no equivalent label" (never map silently);
//  - the <securitylabel> is rebuilt in place with a <displaymarking>
//    regenerated from the TARGET SPIF (marking text, classification colour):
//      mode "replace":        <label> = the mapped label, no <equivalentlabel>;
//      mode "add-equivalent": <label> kept, any <equivalentlabel> claiming the
//                             target policy dropped (never trust a sender's
//                             equivalence), the mapped label added as an
//                             <equivalentlabel>; other decodable equivalents kept;
//    and the verdict is Modify, transformation "label-map", with the rule id
//    and the notes label.original (source SPIF marking) and label.mapped
//    (target SPIF marking).
// The mapped label is written in `format` (ess or nato), or by default in the
// source label's own format.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "policy/filter.h"
#include "policy/labels/label.h"
#include "policy/labels/spif.h"
#include "policy/policy_node.h"

namespace portcullis::policy::labels {

inline constexpr std::string_view kTypeLabelTransform = "label-transform";
inline constexpr std::string_view kTransformLabelMap = "label-map";
inline constexpr std::string_view kTextNoEquivalent = "no equivalent label";

enum class TransformMode { Replace, AddEquivalent };

struct LabelTransformConfig {
  std::string rule;                                   // the officer's id
  std::shared_ptr<const Spif> from, to;
  TransformMode mode = TransformMode::Replace;
  std::optional<LabelFormat> format;                  // none: keep the source format
  std::optional<Label> default_label;                 // under `from`, for unlabelled stanzas
  // marking="check": the display marking sent with the label must be its
  // SPIF's marking (else refused, rule marking-mismatch). The transform writes
  // a fresh marking, so a later label-access can no longer see the sender's.
  bool check_marking = false;
};

struct LabelTransformCounters {
  std::uint64_t mapped = 0, no_equivalent = 0, invalid = 0, unlabelled = 0, defaulted = 0, marking_mismatch = 0;
};

class LabelTransformFilter : public Filter {
 public:
  LabelTransformFilter(std::string name, LabelTransformConfig config);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeLabelTransform; }
  const LabelTransformCounters& counters() const { return counters_; }

  // Builds the config from its <label-transform> element, loading both SPIFs
  // relative to the policy file. Throws config::ConfigError.
  static LabelTransformConfig config_from_node(const PolicyNode& node);

 private:
  std::string name_;
  LabelTransformConfig config_;
  mutable LabelTransformCounters counters_;
};

}  // namespace portcullis::policy::labels
