// What both label filters do first: find and decode the labels of a stanza,
// and the protocol checks of XEP-0258 that end the decision early (see the
// rule list in label_access.h: not-a-stanza, presence, labelled-presence,
// error-stanza, labelled-error, multiple-labels, malformed-label).
#pragma once

#include <optional>
#include <vector>

#include "guard/xmpp/element.h"
#include "policy/filter.h"
#include "policy/labels/label.h"
#include "policy/labels/security_label.h"

namespace portcullis::policy::labels {

struct LabelScan {
  std::optional<Verdict> early;             // set: the filter returns it as is
  std::optional<SecurityLabelView> view;    // unset: the stanza is unlabelled
  struct Candidate {
    Label label;
    const xmpp::Element* element = nullptr;  // the label element in the stanza
    bool equivalent = false;                 // from <equivalentlabel>
  };
  std::vector<Candidate> candidates;        // decoded labels, <label> first
};

LabelScan scan_stanza_labels(const xmpp::Element& stanza);

// Replaces the stanza's child `old_child` (a <securitylabel>) by `replacement`
// at the same position. Returns false if `old_child` is not a direct child.
bool replace_child(xmpp::Element& stanza, const xmpp::Element* old_child, xmpp::Element replacement);

}  // namespace portcullis::policy::labels
