// Label discovery and XEP-0258 protocol checks shared by the label filters.
#include "policy/labels/stanza_labels.h"

#include <memory>

#include "policy/labels/label_access.h"

namespace portcullis::policy::labels {

using xmpp::StanzaErrorCondition;

LabelScan scan_stanza_labels(const xmpp::Element& stanza) {
  LabelScan scan;
  const std::string& kind = stanza.name();
  const auto labels = find_security_labels(stanza);
  if (kind != "message" && kind != "iq" && kind != "presence") {
    scan.early = Verdict::no_opinion(std::string(kRuleNotAStanza));
    return scan;
  }
  if (kind == "presence") {
    // XEP-0258: presence MUST NOT carry labels.
    scan.early = labels.empty() ? Verdict::no_opinion(std::string(kRulePresence))
                                : Verdict::reject(std::string(kRuleLabelledPresence),
                                                  StanzaErrorCondition::BadRequest, "labelled presence");
    return scan;
  }
  if (stanza.attr_or("type") == "error") {
    // Errors are not label-checked, and an error carrying a label must be discarded.
    scan.early = labels.empty() ? Verdict::no_opinion(std::string(kRuleErrorStanza))
                                : Verdict::reject(std::string(kRuleLabelledError),
                                                  StanzaErrorCondition::BadRequest, "labelled error");
    return scan;
  }
  if (labels.empty()) return scan;
  if (labels.size() > 1) {
    scan.early = Verdict::reject(std::string(kRuleMultipleLabels), StanzaErrorCondition::BadRequest,
                                 "more than one security label");
    return scan;
  }
  std::string why;
  scan.view = view_security_label(*labels.front(), &why);
  auto malformed = [&](const std::string& reason) {
    Verdict v = Verdict::reject(std::string(kRuleMalformedLabel), StanzaErrorCondition::BadRequest,
                                std::string(kTextMalformed));
    v.notes.emplace_back("label.error", reason);
    return v;
  };
  if (!scan.view) {
    scan.early = malformed(why);
    return scan;
  }
  auto consider = [&](const xmpp::Element* e, bool equivalent) {
    DecodedLabel d = decode_label_element(*e);
    if (d.status == DecodedLabel::Status::Malformed) {
      scan.early = malformed(d.why);
      return false;
    }
    if (d.status == DecodedLabel::Status::Ok) scan.candidates.push_back({std::move(d.label), e, equivalent});
    return true;   // an unknown format is not ours to judge: it is skipped
  };
  if (scan.view->label && !consider(scan.view->label, false)) return scan;
  for (const xmpp::Element* e : scan.view->equivalents)
    if (!consider(e, true)) return scan;
  return scan;
}

bool replace_child(xmpp::Element& stanza, const xmpp::Element* old_child, xmpp::Element replacement) {
  for (auto& n : stanza.children())
    if (n.element.get() == old_child) {
      n.element = std::make_unique<xmpp::Element>(std::move(replacement));
      return true;
    }
  return false;
}

}  // namespace portcullis::policy::labels
