// XEP-0258 <securitylabel xmlns='urn:xmpp:sec-label:0'>: a read-only view on
// the stanza's element, the decoder for the label formats it may carry, and
// the generator of a new <securitylabel> (protocols.md §2.2).
//
//   <securitylabel xmlns='urn:xmpp:sec-label:0'>
//     <displaymarking fgcolor? bgcolor?>TEXT</displaymarking>    optional on input
//     <label>ONE label element, or empty = the policy default</label>
//     <equivalentlabel>ONE label element</equivalentlabel>*
//   </securitylabel>
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guard/xmpp/element.h"
#include "policy/labels/label.h"

namespace portcullis::policy::labels {

inline constexpr std::string_view kNsSecLabel = "urn:xmpp:sec-label:0";

struct SecurityLabelView {
  const xmpp::Element* element = nullptr;         // the <securitylabel>
  const xmpp::Element* label = nullptr;           // child of <label>; null = empty <label/> (default)
  std::vector<const xmpp::Element*> equivalents;  // child of each <equivalentlabel>
  std::string display_marking;                    // as sent (never trusted)
};

// The <securitylabel> children of a stanza.
std::vector<const xmpp::Element*> find_security_labels(const xmpp::Element& stanza);

// Checks the structure: at most one <displaymarking>, exactly one <label>
// holding zero or one element, each <equivalentlabel> holding exactly one,
// nothing else but whitespace. nullopt with *why otherwise.
std::optional<SecurityLabelView> view_security_label(const xmpp::Element& securitylabel, std::string* why = nullptr);

struct DecodedLabel {
  enum class Status { Ok, UnknownFormat, Malformed };
  Status status = Status::Malformed;
  Label label;        // for Ok
  std::string why;    // for Malformed
};

// Decodes one label element: <esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>
// (base64 DER) or a STANAG 4774 label. Another namespace is UnknownFormat; a
// known format that does not decode is Malformed.
DecodedLabel decode_label_element(const xmpp::Element& e);

// The element for `label` in its format (ESS: base64 DER; 4774: XML).
// nullopt if it cannot be written (e.g. ESS without policy OID).
std::optional<xmpp::Element> label_element(const Label& label);

// A new <securitylabel> with a display marking (bgcolor only when `bgcolor`
// is a #RRGGBB or a name the XEP allows), the label, and the equivalents.
xmpp::Element make_security_label(const std::string& marking, const std::string& bgcolor,
                                  const xmpp::Element* label, const std::vector<xmpp::Element>& equivalents);

// Short text describing a label for the audit notes: its display marking if
// it has one, else "(no marking)". Never the raw label.
std::string summary(const SecurityLabelView& view);

}  // namespace portcullis::policy::labels
