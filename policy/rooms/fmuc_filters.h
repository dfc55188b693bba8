// The policy's view of federated rooms (FMUC, XEP-0289) across the boundary.
//
// <room-federation>: which room pairs may federate, default deny.
//   <room-federation name="rooms">
//     <allow id="ops-pair" from="ops@rooms.low.example" to="ops@rooms.high.example"/>
//   </room-federation>
//   - a stanza carrying <fmuc/> (or sent by a hosted room, auth hosted) whose
//     sender room and recipient room (bare JIDs) match an <allow> of this
//     direction: Accept with the rule id;
//   - such a stanza that matches none: Reject policy-violation, rule
//     "room-pair-not-allowed" (FMUC never crosses by a domain rule alone);
//   - an FMUC error (type='error') carrying more than one <error/> with one
//     defined condition, at most a <text/> and at most one IRC link note
//     (guard/rooms/irc_note.h, closed words read exactly): Reject policy-violation, rule
//     "room-error-not-plain" (label filters do not judge errors, so an error
//     with a body would be a channel around them);
//   - a bare ping (XEP-0199), an empty iq result or such a plain error
//     between the two rooms of an allowed pair, without <fmuc/>: the pair's
//     link upkeep (FMUC pass-through: two nodes beyond the boundary, neither
//     hosted here), Accept with the rule id (a shadow rule: a note only);
//   - anything else: NoOpinion.
//   Put it after the filters that judge or transform FMUC traffic (labels,
//   pseudonyms, presence scrubbing): an Accept ends the pipeline.
//
// <fmuc-pseudonyms>: no real JID of this side crosses in FMUC traffic.
//   <fmuc-pseudonyms name="pseudonyms" domain="anon.boundary.example" key-file="keys/pseudonym.key"/>
//   - <fmuc from='JID'/> and muc#user <item jid='JID'/> become
//     HASH@domain/RHASH: keyed BLAKE2b of the bare JID (and of the full JID for
//     the resource) under the key file's secret, so the pseudonym is stable
//     (a user keeps one across joins and restarts) and cannot be reversed
//     without the key; XEP-0033 <addresses/> (ofrom) is removed;
//   - nothing maps a pseudonym back: the filter keeps no table (a reverse map
//     would be an oracle for whoever can make a stanza cross with a
//     pseudonym in it); private messages route by occupant nick;
//   - Modify "fmuc-pseudonyms" with a note per replaced JID; NoOpinion when
//     there is nothing to replace.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy/filter.h"
#include "policy/registry.h"

namespace portcullis::policy::rooms {

inline constexpr std::string_view kTypeRoomFederation = "room-federation";
inline constexpr std::string_view kTypeFmucPseudonyms = "fmuc-pseudonyms";
inline constexpr std::string_view kTransformPseudonyms = "fmuc-pseudonyms";
inline constexpr std::string_view kRuleRoomPairNotAllowed = "room-pair-not-allowed";
inline constexpr std::string_view kRuleRoomErrorNotPlain = "room-error-not-plain";

// True for FMUC traffic: an <fmuc/> child, or a frame from a hosted room.
bool is_fmuc_traffic(const xmpp::Element& stanza, const StanzaContext& ctx);

class RoomFederationFilter : public Filter {
 public:
  struct Rule {
    std::string id, from, to;   // bare room JIDs
    bool shadow = false;
  };
  RoomFederationFilter(std::string name, std::vector<Rule> rules);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);
  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeRoomFederation; }

 private:
  std::string name_;
  std::vector<Rule> rules_;
};

// Keyed pseudonyms: a pure function of the key, the domain and the JID (no state).
class PseudonymTable {
 public:
  PseudonymTable(std::string key, std::string domain);
  // The pseudonym of `jid` (full or bare).
  std::string pseudonym(const std::string& jid) const;
  const std::string& domain() const { return domain_; }

 private:
  std::string hash(const std::string& what, std::size_t bytes) const;
  std::string key_, domain_;
};

class FmucPseudonymsFilter : public Filter {
 public:
  FmucPseudonymsFilter(std::string name, std::shared_ptr<PseudonymTable> table);
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);
  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeFmucPseudonyms; }

 private:
  std::string name_;
  std::shared_ptr<PseudonymTable> table_;
};

void register_room_filters(FilterRegistry& registry);

}  // namespace portcullis::policy::rooms
