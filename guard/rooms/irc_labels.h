// The security labels of an IRC link (issue 10 item 4).
//
// IRC carries no labels, so the gateway is where a room's labelled traffic
// meets a network that cannot hold them. Configured on <irc spif=...> with
// <label>, <clearance> and (optionally) <unlabelled>:
//  - a room message goes to IRC only if the link's clearance grants its label
//    (the ACDF of policy/labels, under the link's SPIF), and then with the
//    label's display marking as leading text ("[MARKING] text", FLOT);
//  - an unlabelled room message is judged at <unlabelled> when given, else it
//    goes unmarked (a room without a default label: config.cpp requires
//    <unlabelled> in a room that has one);
//  - a label that is malformed, misplaced, of another policy, or not valid
//    under the SPIF is refused (fail closed);
//  - every message IRC brings into the room carries <label>.
// Without labels configured (no spif), a labelled message never goes to IRC
// and an unlabelled one goes unmarked.
#pragma once

#include <memory>
#include <string>

#include "guard/config/config.h"
#include "guard/xmpp/element.h"

namespace portcullis::rooms {

struct IrcLabelJudgement {
  bool send = false;
  std::string marking;   // the display marking to lead the text with ("" = none)
  std::string why;       // refused: for the author (no policy internals)
  std::string audit;     // for the archive: the label and the deciding reason in policy terms
};

class IrcLabels {
 public:
  // Loads the SPIF and resolves the link's labels and clearance. Throws
  // config::ConfigError at the element (file:line:column) that names something
  // the SPIF does not define. A spec without spif gives the unlabelled link.
  explicit IrcLabels(const config::IrcLinkSpec& spec);
  ~IrcLabels();
  IrcLabels(const IrcLabels&) = delete;
  IrcLabels& operator=(const IrcLabels&) = delete;

  bool configured() const { return impl_ != nullptr; }
  // May `message` (from the room) go to IRC, and marked how?
  IrcLabelJudgement judge(const xmpp::Element& message) const;
  // The <securitylabel> a message from IRC carries into the room (nullptr: none).
  const xmpp::Element* irc_label() const;
  // The display marking of that label ("" without labels).
  std::string irc_marking() const;
  // One line for logs and --check-config.
  std::string summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::rooms
