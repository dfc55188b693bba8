// ChatModeFilter (policy element <chat-mode>): blocks group chat (MUC) or
// one-to-one chat in this direction.
//
// Policy:
//   <chat-mode name="one-to-one-only">
//     <muc-service match="conference.example.org"/>   (zero or more)
//     <block-muc id="no-muc"/>                         (optional)
//     <block-one-to-one id="no-1to1"/>                 (optional; one of the two)
//   </chat-mode>
//
// A stanza is MUC traffic when any of these holds (the first that holds is
// noted as ("muc", reason)):
//   "groupchat"      a message of type groupchat;
//   "muc-element"    a direct child <x/> in http://jabber.org/protocol/muc or
//                    .../muc#user (joins, room presence, mediated invitations,
//                    private messages through a room), or a direct invitation
//                    <x xmlns='jabber:x:conference'/> (XEP-0249);
//   "muc-admin"      an iq whose payload is in .../muc#admin or .../muc#owner;
//   "muc-service"    its 'to' or 'from' domain matches a <muc-service> pattern
//                    (catches everything addressed to or coming from a room:
//                    disco, vCards, IQs a client sends to an occupant).
// Without <muc-service> entries, detection relies on the stanza's content only,
// which misses e.g. a disco#info query to a room: list your MUC services.
// One-to-one traffic is a message of type chat or normal (no type) that is not
// MUC traffic. Headline and error messages, presence and iq are neither.
//
// Verdicts: blocked -> Reject(rule id, policy-violation) with a ("muc", reason)
// or ("chat", "one-to-one") note; otherwise NoOpinion(). shadow="true" on a
// block element gives NoOpinion(rule id) with ("shadow", "<id> would reject:
// policy-violation") and the ("muc"|"chat", ...) note instead.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypeChatMode = "chat-mode";

struct BlockRule {
  std::string id;
  bool shadow = false;
};

struct ChatModeConfig {
  std::vector<DomainPattern> muc_services;
  std::optional<BlockRule> block_muc;
  std::optional<BlockRule> block_one_to_one;
};

class ChatModeFilter : public Filter {
 public:
  ChatModeFilter(std::string name, ChatModeConfig config);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeChatMode; }

  // Why `stanza` is MUC traffic ("groupchat", "muc-element", "muc-admin",
  // "muc-service"), or empty when it is not.
  std::string_view muc_reason(const xmpp::Element& stanza) const;

 private:
  std::string name_;
  ChatModeConfig config_;
};

}  // namespace portcullis::policy::content
