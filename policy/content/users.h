// UsersFilter (policy element <users>): which users may send across this
// boundary and which may receive, in this direction.
//
// Policy:
//   <users name="users">
//     <senders id="known-senders">
//       <allow-sender id="ops" match="ops@low.example"/>     bare JID (any resource)
//       <allow-sender id="hq"  match="hq.low.example"/>      every JID at that domain
//       <allow-sender id="sub" match="*.units.low.example"/> every JID at a subdomain
//       <allow-sender id="srv" match="low.example" server-only="true"/>
//                                              the server's own address only
//     </senders>
//     <recipients id="known-recipients">
//       <allow-recipient id="desk" match="desk@high.example"/>
//     </recipients>
//   </users>
//
// The presence of <senders> (or <recipients>) means "restrict": an absent list
// leaves that side unrestricted by this filter, a present but EMPTY list
// denies everything (STYLE.md: an empty allow-list denies everything). A
// <users> with neither list fails the load (it would restrict nothing).
//
// Verdicts: a stanza whose 'from' (or 'to') is missing or malformed while that
// side is restricted -> Reject(list id, jid-malformed); a sender (recipient)
// that matches no entry -> Reject(list id, forbidden), with ("check",
// "sender"|"recipient"); otherwise NoOpinion() with ("allow-sender", entry id)
// and ("allow-recipient", entry id) notes. shadow="true" on a list records
// ("shadow", "<list id> would reject: forbidden") and lets the stanza pass.
// Error texts never name the address (it is the sender's own content).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypeUsers = "users";

struct UserEntry {
  std::string id;
  JidPattern pattern;
  // server-only="true" (with a plain domain): the server's own address (no
  // localpart, any resource), not the users at that domain.
  bool server_only = false;
};

struct UserList {
  std::string id;
  bool shadow = false;
  std::vector<UserEntry> entries;   // empty: nobody
};

struct UsersConfig {
  std::optional<UserList> senders;      // none: senders not restricted here
  std::optional<UserList> recipients;   // none: recipients not restricted here
};

class UsersFilter : public Filter {
 public:
  UsersFilter(std::string name, UsersConfig config);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeUsers; }

 private:
  std::string name_;
  UsersConfig config_;
};

}  // namespace portcullis::policy::content
