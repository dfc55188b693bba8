// StanzaKindsFilter (policy element <stanza-kinds>): which stanza kinds and
// types may cross in this direction, how big each kind may be, and which IQ
// requests (by payload namespace) may cross.
//
// Policy (one optional element per kind; a kind with no element is refused):
//   <stanza-kinds name="kinds">
//     <message id="msg" max-bytes="65536" types="normal chat error"/>
//     <presence id="pres" max-bytes="4096" types="available unavailable error"/>
//     <iq id="iq" max-bytes="16384" types="get set result error">
//       <payload id="ping" ns="urn:xmpp:ping"/>
//       <payload id="version" ns="jabber:iq:version" element="query"/>
//     </iq>
//   </stanza-kinds>
//
// Checks, in this order, with the kind element's id as the rule id:
//  1. kind listed? No element for the kind (or not a message/presence/iq at
//     all) -> Reject policy-violation, rule "kind-not-listed".
//  2. size (StanzaContext::wire_bytes, or the serialized size when 0) over
//     max-bytes -> Reject not-allowed (type modify) with the XEP-0205
//     application condition <stanza-too-big xmlns='urn:xmpp:errors'/>.
//  3. type (defaults: message "normal", presence "available") not in `types`
//     -> Reject policy-violation. types="" allows none.
//  4. iq get/set: exactly one payload element, else Reject bad-request; its
//     namespace (and local name, when the entry gives one) must match a
//     <payload>, else Reject service-unavailable. service-unavailable is what
//     RFC 6120 §8.4 prescribes for a request nobody serves, so a refused
//     request looks to the requester like an unsupported feature, which
//     clients handle quietly (policy-violation is kept for kinds and types,
//     where the sender should learn that a rule stopped it). An <iq> with no
//     <payload> allows no requests. Results and errors are answers and pass
//     without a payload check (if their type is allowed).
// Every refusal notes ("check", "kind"|"size"|"type"|"payload-count"|"payload").
// Passing -> NoOpinion(rule id), with ("payload", id) for an allowed request.
// A kind element with shadow="true" records ("shadow", "<id> would reject ...")
// instead of refusing, and the stanza passes its checks.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypeStanzaKinds = "stanza-kinds";
inline constexpr std::string_view kRuleKindNotListed = "kind-not-listed";

struct IqPayloadRule {
  std::string id;
  std::string ns;
  std::string local;   // empty: any element in `ns`
};

struct KindRule {
  std::string id;
  bool shadow = false;
  std::optional<std::size_t> max_bytes;   // none: no size limit here
  std::set<std::string, std::less<>> types;
  std::vector<IqPayloadRule> payloads;    // iq only
};

struct StanzaKindsConfig {
  std::optional<KindRule> message, presence, iq;   // none: kind refused
};

class StanzaKindsFilter : public Filter {
 public:
  StanzaKindsFilter(std::string name, StanzaKindsConfig config);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeStanzaKinds; }

 private:
  std::string name_;
  StanzaKindsConfig config_;
};

}  // namespace portcullis::policy::content
