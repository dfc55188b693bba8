// NATO STANAG 4774 XML confidentiality label: a read-only view that decodes the
// element into a Label, and a generator (protocols.md §2.4).
//
//   <originatorConfidentialityLabel xmlns='urn:nato:stanag:4774:confidentialitymetadatalabel:1:0'>
//     <ConfidentialityInformation>
//       <PolicyIdentifier URI='urn:oid:1.2.3.4'>NATO</PolicyIdentifier>
//       <Classification>SECRET</Classification>
//       <PrivacyMark>...</PrivacyMark>                                  optional
//       <Category TagName='Releasable To' Type='PERMISSIVE' URI='urn:oid:...'>
//         <GenericValue>GBR</GenericValue> ...
//       </Category> ...
//     </ConfidentialityInformation>
//     <CreationDateTime>2016-11-10T12:30:00Z</CreationDateTime>      optional
//   </originatorConfidentialityLabel>
//
// Accepted root names: originatorConfidentialityLabel,
// alternativeConfidentialityLabel and ConfidentialityLabel. Anything else in
// the label (unknown elements, non-whitespace text where none belongs, a Type
// other than RESTRICTIVE/PERMISSIVE/INFORMATIVE, variants such as
// CategoryValue) makes it malformed: the guard does not judge what it cannot
// read. Categories and the classification are by name; Spif::canonicalize
// resolves them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "guard/xmpp/element.h"
#include "policy/labels/label.h"

namespace portcullis::policy::labels {

inline constexpr std::string_view kNsNato4774 = "urn:nato:stanag:4774:confidentialitymetadatalabel:1:0";

// True if `e` is a 4774 label element (by namespace and name).
bool is_nato_label(const xmpp::Element& e);

// Decodes `e`; nullopt with *why on any deviation (never echoes the content).
std::optional<Label> parse_nato(const xmpp::Element& e, std::string* why = nullptr);

// Writes a canonical label (names filled in) as an originatorConfidentialityLabel.
xmpp::Element write_nato(const Label& label);

}  // namespace portcullis::policy::labels
