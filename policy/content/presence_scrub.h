// PresenceScrubFilter (policy element <presence-scrub>): removes from every
// presence stanza each child element that is not on the policy's keep list.
//
// Presence leaks more than availability: status text, <show>, <priority>,
// entity capabilities (XEP-0115 <c xmlns='http://jabber.org/protocol/caps'/>,
// which fingerprint the client), avatar hashes (vcard-temp:x:update), idle time
// (urn:xmpp:idle:1, jabber:iq:last), nicknames (http://jabber.org/protocol/nick),
// signed presence (jabber:x:signed) and whatever a client invents next. The
// filter is an allow-list: only children named by a <keep ns=".." element=".."/>
// entry survive (namespace + local name, both exact). An empty <scrub> keeps
// nothing. Character data directly inside <presence> is removed too (noted as
// "#text" unless it is only white space). To let MUC joins work, keep {http://jabber.org/protocol/muc}x and
// {http://jabber.org/protocol/muc#user}x. Attributes (from, to, id, type,
// xml:lang) are never touched. The <error/> of a presence of type 'error' (a
// refused MUC join) is always kept.
//
// Policy:
//   <presence-scrub name="scrub-presence">
//     <scrub id="presence-minimal">
//       <keep ns="http://jabber.org/protocol/muc" element="x"/>
//     </scrub>
//   </presence-scrub>
//
// Verdicts: a presence that loses children -> Modify(rule id, "presence-scrub")
// with one ("removed", name) note per removed element; a presence that keeps
// everything -> NoOpinion(rule id); not a presence -> NoOpinion(). With
// shadow="true" on <scrub>: NoOpinion(rule id), the stanza untouched, notes
// ("shadow", "<id> would modify: presence-scrub") and ("would-remove", name).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypePresenceScrub = "presence-scrub";
inline constexpr std::string_view kTransformPresenceScrub = "presence-scrub";

struct KeptChild {
  std::string ns;
  std::string local;
};

struct PresenceScrubConfig {
  std::string rule_id;
  bool shadow = false;
  std::vector<KeptChild> keep;   // empty: keep nothing
};

class PresenceScrubFilter : public Filter {
 public:
  PresenceScrubFilter(std::string name, PresenceScrubConfig config);
  // Factory: reads <presence-scrub> from spec.node (throws config::ConfigError).
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypePresenceScrub; }

 private:
  bool kept(const xmpp::Element& child, bool error_presence) const;

  std::string name_;
  PresenceScrubConfig config_;
};

}  // namespace portcullis::policy::content
