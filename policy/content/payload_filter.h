// PayloadFilter (policy element <payload-filter>): finds file-transfer offers
// and end-to-end-encrypted payloads and strips or rejects them, per rule.
//
// Policy:
//   <payload-filter name="payloads">
//     <rule id="ft"  class="file-transfer" action="strip"/>
//     <rule id="e2e" class="encrypted"     action="reject"/>
//   </payload-filter>
//
// Classes (a top-level child of the stanza is in a class when it, or any
// element below it, is in one of these namespaces):
//  file-transfer
//    XEP-0066  jabber:x:oob, jabber:iq:oob
//    XEP-0096  http://jabber.org/protocol/si (+ .../si/profile/file-transfer)
//    XEP-0065 / XEP-0047 transports: http://jabber.org/protocol/bytestreams,
//              http://jabber.org/protocol/ibb (blocking the offer but not the
//              transport would leave the data path open)
//    XEP-0234  urn:xmpp:jingle:apps:file-transfer:* (:3, :4, :5), and the
//              Jingle IBB/SOCKS5 transports urn:xmpp:jingle:transports:ibb:1,
//              urn:xmpp:jingle:transports:s5b:1
//    XEP-0363  urn:xmpp:http:upload:0 (and the older urn:xmpp:http:upload,
//              eu:siacs:conversations:http:upload): slot requests and answers
//    XEP-0385  urn:xmpp:sims:1;  XEP-0447 urn:xmpp:sfs:0
//    Bodies: a <body> whose text begins with "aesgcm://" (XEP-0454 encrypted
//    upload link), and a <body> whose whole (trimmed) text equals the <url> of
//    an OOB element of the same message (the XEP-0363 sharing convention).
//    A plain https:// link in a body WITHOUT an OOB tag is not detected: it is
//    indistinguishable from a link a person typed.
//  encrypted
//    XEP-0384  eu.siacs.conversations.axolotl, urn:xmpp:omemo:* (omemo:2)
//    XEP-0373/0374 urn:xmpp:openpgp:*;  XEP-0027 jabber:x:encrypted, jabber:x:signed
//    XEP-0380  urn:xmpp:eme:0
//    Key material fetched or announced through PubSub/PEP: any element whose
//    'node' attribute starts with one of those namespaces (device lists,
//    bundles, public keys), so the key exchange fails as well.
//    OTR in bodies: text beginning with "?OTR", containing "?OTR:" or the OTR
//    whitespace tag " \t  \t\t\t\t \t \t \t  ".
//
// Actions: strip removes the matching children (<body> included, for the body
// forms above); reject refuses the stanza (policy-violation). Rules are taken
// in order; the first enforcing reject rule with a match decides. Special cases:
//  - an iq cannot lose its payload: strip on an iq rejects it;
//  - a message that would be left with no <body> and no <subject> after
//    stripping (e.g. an OMEMO message without fallback body, a Jingle Message
//    Initiation, a PEP event whose item was key material) is rejected instead,
//    rule = the strip rule: forwarding an empty shell would only leak metadata
//    and confuse the recipient;
//  - a presence may lose any payload.
// Verdicts: Modify(rule id, "payload-strip") with ("removed", name) and
// ("class", class) notes; Reject(rule id, policy-violation) with ("class",..)
// notes; NoOpinion() when nothing matched. shadow="true" on a rule records
// ("shadow", "<id> would reject|modify") and the rule does nothing else; if
// only shadow rules matched the verdict is NoOpinion(first shadow rule id).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypePayloadFilter = "payload-filter";
inline constexpr std::string_view kTransformPayloadStrip = "payload-strip";

enum class PayloadClass { FileTransfer, Encrypted };
enum class PayloadAction { Strip, Reject };

std::string_view to_string(PayloadClass c);

struct PayloadRule {
  std::string id;
  PayloadClass cls = PayloadClass::FileTransfer;
  PayloadAction action = PayloadAction::Reject;
  bool shadow = false;
};

struct PayloadFilterConfig {
  std::vector<PayloadRule> rules;
};

// True when `e` or any element below it is in class `c` (namespaces and PEP
// nodes above; bodies are judged separately by the filter).
bool element_in_class(const xmpp::Element& e, PayloadClass c);

class PayloadFilter : public Filter {
 public:
  PayloadFilter(std::string name, PayloadFilterConfig config);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypePayloadFilter; }

 private:
  std::string name_;
  PayloadFilterConfig config_;
};

}  // namespace portcullis::policy::content
