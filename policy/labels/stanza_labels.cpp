// Label discovery and XEP-0258 protocol checks shared by the label filters.
#include "policy/labels/stanza_labels.h"

#include <memory>

#include "policy/labels/label_access.h"

namespace portcullis::policy::labels {

using xmpp::StanzaErrorCondition;

namespace {

// Namespaces whose elements are, or are part of, a security label.
bool label_namespace(std::string_view ns) {
  return ns.starts_with("urn:xmpp:sec-label") || ns.starts_with("urn:nato:stanag:4774:");
}

// The first label element outside the one place XEP-0258 puts labels (a
// <securitylabel xmlns='urn:xmpp:sec-label:0'/> child of the stanza), as a
// path for the record; empty when there is none. A label inside <body>, inside
// an extension, or of another sec-label version would otherwise cross as an
// unlabelled stanza. An IQ's security label catalog (XEP-0258 §6) holds labels
// by design and is not searched.
std::string misplaced_label(const xmpp::Element& e, const std::string& path, bool top, bool iq) {
  for (const xmpp::Element* c : e.child_elements()) {
    const std::string here = (path.empty() ? "" : path + "/") + c->name() + "{" + c->ns() + "}";
    if (top && c->ns() == kNsSecLabel && c->name() == "securitylabel") continue;
    if (iq && top && c->ns().starts_with("urn:xmpp:sec-label:catalog:")) continue;
    if (label_namespace(c->ns())) return here;
    std::string deeper = misplaced_label(*c, here, false, iq);
    if (!deeper.empty()) return deeper;
  }
  return {};
}

}  // namespace

LabelScan scan_stanza_labels(const xmpp::Element& stanza) {
  LabelScan scan;
  const std::string& kind = stanza.name();
  const auto labels = find_security_labels(stanza);
  if (kind != "message" && kind != "iq" && kind != "presence") {
    scan.early = Verdict::no_opinion(std::string(kRuleNotAStanza));
    return scan;
  }
  if (const std::string where = misplaced_label(stanza, {}, true, kind == "iq"); !where.empty()) {
    // Labelling that is not where a receiver looks for it is ambiguous: refused, never treated as unlabelled.
    Verdict v = Verdict::reject(std::string(kRuleMisplacedLabel), StanzaErrorCondition::BadRequest,
                                "security label in a place where labels are not carried");
    v.notes.emplace_back("label.misplaced", where.substr(0, 512));
    scan.early = std::move(v);
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
