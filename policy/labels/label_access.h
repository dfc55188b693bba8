// LabelAccessFilter ("label-access"): XEP-0258 access control under ONE
// security policy (one SPIF).
//
// For each stanza:
//  - not message/iq/presence: NoOpinion, rule "not-a-stanza";
//  - presence: labelled -> Reject bad-request "labelled presence" (rule
//    "labelled-presence"); unlabelled -> NoOpinion, rule "presence";
//  - type='error': labelled -> Reject bad-request (rule "labelled-error"; the
//    runner sends no error in reply to an error); else NoOpinion, rule
//    "error-stanza" (XEP-0258: errors are not label-checked);
//  - more than one <securitylabel> -> Reject bad-request, rule "multiple-labels";
//    a malformed <securitylabel>, or a label of a known format (ESS, 4774)
//    that does not decode -> Reject bad-request, rule "malformed-label";
//  - the effective label: the first of <label>, <equivalentlabel>... that is
//    under this filter's policy; a labelled stanza with none (unknown
//    formats, other policies, empty <label/>) takes the policy default label;
//    an unlabelled stanza takes the recipient room's default label, else the
//    sending peer's default label, else the policy default label; otherwise
//    the nil label -> Reject (rule "nil-label"). A stanza label that is not
//    valid under the SPIF -> Reject (rule "invalid-label");
//  - the clearances (attribute check: channel, recipient or both):
//      channel   = the <peer> entry for the authenticated peer domain
//                  (StanzaContext::peer_domain), else the default clearance;
//      recipient = the most specific entry for 'to': <room> or <user>
//                  (bare JID), else <domain> (exact or *.domain), else the
//                  default clearance;
//    an entry without a clearance, or no entry and no default clearance,
//    gives the nil clearance, which denies (rule "nil-clearance");
//  - the ACDF (acdf.h) must grant against EVERY clearance that applies;
//    a deny -> Reject with the id of the entry whose clearance denied.
//  - all granted: NoOpinion with the deciding entry's rule id (the recipient
//    entry when recipients are checked, else the channel entry): the label
//    check allows, later filters still run and one of them must accept.
// With marking="check", a display marking that is not the SPIF's marking of the
// stanza's own label -> Reject policy-violation, rule "marking-mismatch" (an
// absent marking is allowed: XEP-0258 makes it optional).
// Rejections for a label decision use policy-violation with the fixed text
// "security label not permitted" (or "security label not valid"): the error
// never carries the label, its marking or any stanza content.
// Notes on every labelled decision: label.original (the display marking as
// sent, or "(unlabelled)"), label.source, label.effective (the SPIF marking),
// clearance.channel / clearance.recipient (ids), acdf (the deny reason).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/filter.h"
#include "policy/labels/label.h"
#include "policy/labels/spif.h"
#include "policy/policy_node.h"

namespace portcullis::policy::labels {

inline constexpr std::string_view kTypeLabelAccess = "label-access";

inline constexpr std::string_view kRuleNotAStanza = "not-a-stanza";
inline constexpr std::string_view kRulePresence = "presence";
inline constexpr std::string_view kRuleLabelledPresence = "labelled-presence";
inline constexpr std::string_view kRuleErrorStanza = "error-stanza";
inline constexpr std::string_view kRuleLabelledError = "labelled-error";
inline constexpr std::string_view kRuleMultipleLabels = "multiple-labels";
inline constexpr std::string_view kRuleMisplacedLabel = "misplaced-label";   // a label anywhere but a top-level <securitylabel/>
inline constexpr std::string_view kRuleMalformedLabel = "malformed-label";
inline constexpr std::string_view kRuleInvalidLabel = "invalid-label";
inline constexpr std::string_view kRuleNilLabel = "nil-label";
inline constexpr std::string_view kRuleNilClearance = "nil-clearance";

inline constexpr std::string_view kTextNotPermitted = "security label not permitted";
inline constexpr std::string_view kTextNotValid = "security label not valid";
inline constexpr std::string_view kTextMalformed = "malformed security label";

struct LabelAccessConfig {
  struct Entry {
    std::string rule;                      // the officer's id
    std::string match;                     // peer/domain: domain pattern; user/room: bare JID
    std::optional<Clearance> clearance;    // none -> nil clearance
    std::optional<Label> default_label;    // peers and rooms only
  };
  std::shared_ptr<const Spif> spif;
  bool check_channel = true;
  bool check_recipient = true;
  // marking="check": a <displaymarking> sent with a label under this policy must
  // be the SPIF's marking of that label, else Reject (rule "marking-mismatch"):
  // users must never read a marking lower (or other) than the label.
  bool check_marking = false;
  std::string default_rule = "policy-default";
  std::optional<Label> default_label;
  std::optional<Clearance> default_clearance;
  std::vector<Entry> peers, domains, users, rooms;
};

struct LabelAccessCounters {
  std::uint64_t granted = 0, denied = 0, malformed = 0, labelled_presence = 0;
  std::uint64_t defaulted = 0;   // decided with a default label
  std::uint64_t nil_label = 0, nil_clearance = 0;
};

class LabelAccessFilter : public Filter {
 public:
  LabelAccessFilter(std::string name, LabelAccessConfig config);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeLabelAccess; }
  const LabelAccessCounters& counters() const { return counters_; }
  const LabelAccessConfig& config() const { return config_; }

  // Builds the config from its <label-access> element (schema-valid), loading
  // the SPIF relative to the policy file. Throws config::ConfigError.
  static LabelAccessConfig config_from_node(const PolicyNode& node);

 private:
  std::string name_;
  LabelAccessConfig config_;
  mutable LabelAccessCounters counters_;   // operator statistics; the filter process is single-threaded
};

}  // namespace portcullis::policy::labels
