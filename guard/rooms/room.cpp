#include "guard/rooms/room.h"

#include <sodium.h>

#include <algorithm>

#include "guard/xmpp/jid.h"
#include "policy/labels/label_access.h"
#include "policy/labels/stanza_labels.h"

namespace portcullis::rooms {

using xmpp::Element;
using xmpp::StanzaErrorCondition;

namespace {

constexpr std::size_t kSeenFactor = 8;       // message ids remembered: history_size x this (at least 1024)
constexpr std::size_t kMaxSessions = 16;     // resources of one occupant
constexpr std::size_t kMaxOccupants = 5000;
constexpr std::size_t kReservedLocal = 1000;  // places federated nodes cannot take

std::string bare_of(const std::string& jid) {
  auto j = xmpp::parse_jid(jid);
  return j ? j->bare() : jid;
}

std::string resource_of(const std::string& jid) {
  auto j = xmpp::parse_jid(jid);
  return j ? j->resource : std::string{};
}

// A nick is a non-empty resource that is not only spaces (XEP-0045 §7.2.1).
bool valid_nick(const std::string& nick) {
  return !nick.empty() && nick.size() <= 1023 && nick.find_first_not_of(' ') != std::string::npos;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

Element& status(Element& x, int code) {
  Element& s = x.add_child(std::string(kNsMucUser), "status");
  s.set_attr("code", std::to_string(code));
  return s;
}

// The payload of a groupchat message worth keeping and relaying: everything
// but the routing wrappers this node adds or strips.
Element payload_of(const Element& st) {
  Element m(st.ns(), "message");
  m.set_attr("type", "groupchat");
  if (const std::string* id = st.attr("id")) m.set_attr("id", *id);
  for (const auto& c : st.children()) {
    if (!c.is_element()) continue;
    const Element& e = *c.element;
    if (e.ns() == kNsFmuc || e.ns() == kNsSid || e.ns() == kNsDelay || e.ns() == kNsOccupantId) continue;
    if (e.ns() == kNsMucUser) continue;
    m.add_child(e);
  }
  return m;
}

// The stanza's security label (XEP-0258), if any: a subject keeps its label.
std::optional<Element> label_of(const Element& st) {
  if (const Element* l = st.find_child("securitylabel", "urn:xmpp:sec-label:0")) return *l;
  return std::nullopt;
}

// Why a message's labelling cannot be kept as it is, empty if it can: a label
// anywhere but as a direct child (the room rebuilds what it relays and would
// drop it with the wrapper it sits in, passing the message on as unlabelled),
// or more than one (a subject keeps one). Refused, never relayed unlabelled.
std::string label_placement_error(const Element& st) {
  namespace pl = portcullis::policy::labels;
  const pl::LabelScan scan = pl::scan_stanza_labels(st);
  if (!scan.early || scan.early->kind != portcullis::policy::VerdictKind::Reject) return {};
  if (scan.early->rule_id == pl::kRuleMisplacedLabel) {
    return "a security label is carried only as a direct child of the message";
  }
  if (scan.early->rule_id == pl::kRuleMultipleLabels) return "a message carries at most one security label";
  return {};
}

// What a room keeps of an occupant's presence: <show/> and <status/> (what it
// reflects), nothing else (the rest is never sent on, and it costs memory per occupant).
Element presence_essentials(const Element& st) {
  Element p(st.ns(), "presence");
  for (const auto& c : st.children()) {
    if (!c.is_element() || c.element->ns() != st.ns()) continue;
    const std::string& n = c.element->name();
    if ((n == "show" || n == "status") && c.element->text().size() <= 1024) {
      p.add_child(st.ns(), n).add_text(c.element->text());
    }
  }
  return p;
}

// Errors that say the node is out of reach, not that it refused this stanza.
// (A per-stanza refusal, an unknown nick or a busy filter is not: those are
// told to the author; pings and joins judge the link itself.)
bool link_failure(const xmpp::StanzaError& e) {
  return e.condition == StanzaErrorCondition::RemoteServerNotFound ||
         e.condition == StanzaErrorCondition::RemoteServerTimeout;
}

}  // namespace

std::string_view to_string(LinkState s) {
  switch (s) {
    case LinkState::Down: return "down";
    case LinkState::Joining: return "joining";
    case LinkState::Up: return "up";
  }
  return "?";
}

Room::Room(RoomSettings settings, std::string service_domain, std::string occupant_id_key, Timing timing)
    : s_(std::move(settings)), occupant_id_key_(std::move(occupant_id_key)), t_(timing) {
  jid_ = s_.name + "@" + service_domain;
  subject_ = s_.subject;
  if (s_.title.empty()) s_.title = s_.name;
  if (!s_.federate_with.empty()) {
    Link l;
    l.peer = s_.federate_with;
    l.upstream = true;
    links_.emplace(l.peer, std::move(l));
  }
  for (const auto& p : s_.accept_from) {
    Link l;
    l.peer = p;
    links_.emplace(p, std::move(l));
  }
}

bool Room::impersonates(const Link& l, const std::string& nick) {
  auto it = occupants_.find(nick);
  if (it == occupants_.end() || it->second.peer == l.peer) return false;
  // A node speaks only for the occupants it brought: never as ours, or another node's.
  ++counters_.refused_from_peer;
  event("dropped a stanza from " + l.peer + " under the nick '" + nick + "' of an occupant it did not bring");
  return true;
}

bool Room::links_with_domain(const std::string& domain) const {
  for (const auto& [peer, l] : links_) {
    if (peer.size() > domain.size() && peer.compare(peer.size() - domain.size(), domain.size(), domain) == 0 &&
        peer[peer.size() - domain.size() - 1] == '@') {
      return true;
    }
  }
  return false;
}

std::vector<std::pair<std::string, LinkState>> Room::federated_links() const {
  std::vector<std::pair<std::string, LinkState>> out;
  for (const auto& [peer, link] : links_) out.emplace_back(peer, link_state(peer));
  return out;
}

LinkState Room::link_state(const std::string& peer) const {
  auto it = links_.find(peer);
  return it == links_.end() ? LinkState::Down : it->second.state;
}

std::size_t Room::local_occupants() const {
  return static_cast<std::size_t>(
      std::count_if(occupants_.begin(), occupants_.end(), [](const auto& kv) { return kv.second.peer.empty(); }));
}

std::size_t Room::remote_occupants() const { return occupants_.size() - local_occupants(); }

std::string Room::next_id() {
  // Unpredictable: a peer that learns one id must not be able to name the next.
  unsigned char r[16];
  randombytes_buf(r, sizeof r);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, r, sizeof r);
  return hex;
}

std::string Room::make_occupant_id(const std::string& bare) const {
  unsigned char out[16];
  const std::string in = jid_ + "\n" + bare;
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(in.data()), in.size(),
                     reinterpret_cast<const unsigned char*>(occupant_id_key_.data()),
                     std::min<std::size_t>(occupant_id_key_.size(), crypto_generichash_KEYBYTES_MAX));
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

void Room::remember(const OriginKey& k) {
  if (!seen_.insert(k).second) return;
  seen_order_.push_back(k);
  const std::size_t cap = std::max<std::size_t>(1024, s_.history_size * kSeenFactor);
  while (seen_order_.size() > cap) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
}

Room::Occupant* Room::find_session(const std::string& full_jid) {
  for (auto& [nick, o] : occupants_) {
    if (o.peer.empty() && contains(o.sessions, full_jid)) return &o;
  }
  return nullptr;
}

void Room::error_to(const Element& st, StanzaErrorCondition c, const std::string& text, Outputs& out,
                    bool to_peer) const {
  if (!xmpp::may_bounce(st) && st.name() != "presence") return;
  if (st.attr_or("type") == "error") return;
  xmpp::StanzaError e{c, xmpp::default_type(c), text, jid_, {}};
  Element reply = xmpp::make_error_reply(st, e);
  if (st.name() == "presence") reply.set_attr("type", "error");
  out.push_back({to_peer, std::move(reply)});
}

// ---- presences ---------------------------------------------------------------

// <item/> of a presence: the new nick (303), the kick's reason and kicker (307).
void Room::departure_item(Element& item, const Departure& d) {
  if (!d.new_nick.empty()) item.set_attr("nick", d.new_nick);
  if (!d.actor.empty()) item.add_child(std::string(kNsMucUser), "actor").set_attr("nick", d.actor);
  if (!d.reason.empty()) item.add_child(std::string(kNsMucUser), "reason").add_text(d.reason);
}

Element Room::occupant_presence(const Occupant& o, bool available, const std::string& to, bool self,
                                const Departure& d) const {
  Element p(std::string(xmpp::kNsServer), "presence");
  p.set_attr("from", jid_ + "/" + o.nick);
  p.set_attr("to", to);
  if (!available) p.set_attr("type", "unavailable");
  if (available) {
    for (const xmpp::Element* c : o.presence.child_elements()) p.add_child(*c);   // show/status only (presence_essentials)
  } else if (!d.status.empty()) {
    p.add_child(std::string(xmpp::kNsServer), "status").add_text(d.status);
  }
  Element& x = p.add_child(std::string(kNsMucUser), "x");
  Element& item = x.add_child(std::string(kNsMucUser), "item");
  item.set_attr("affiliation", o.affiliation);
  item.set_attr("role", available ? o.role : "none");
  departure_item(item, d);
  for (int c : d.codes) status(x, c);
  if (self) status(x, 110);
  p.add_child(std::string(kNsOccupantId), "occupant-id").set_attr("id", o.occupant_id);
  return p;
}

void Room::broadcast_presence(const Occupant& o, bool available, const Departure& d, Outputs& out) const {
  for (const auto& [nick, other] : occupants_) {
    if (!other.peer.empty()) continue;
    for (const auto& s : other.sessions) {
      const bool self = &other == &o;
      out.push_back({false, occupant_presence(o, available, s, self, d)});
    }
  }
}

Element Room::fmuc_presence(const Occupant& o, bool available, const Link& l, bool join_request,
                            const Departure& d) const {
  Element p(std::string(xmpp::kNsServer), "presence");
  p.set_attr("from", jid_ + "/" + o.nick);
  p.set_attr("to", l.peer + "/" + o.nick);
  if (!available) p.set_attr("type", "unavailable");
  if (available) {
    for (const xmpp::Element* c : o.presence.child_elements()) p.add_child(*c);   // show/status only
  } else if (!d.status.empty()) {
    p.add_child(std::string(xmpp::kNsServer), "status").add_text(d.status);
  }
  set_fmuc_from(p, o.author);
  if (join_request) {
    // Nodes that know <resume/> backfill after it; others send the history asked for.
    if (!l.last_in.empty()) {
      Element& r = p.find_child("fmuc", kNsFmuc)->add_child(std::string(kNsFmuc), "resume");
      r.set_attr("by", l.last_in.by);
      r.set_attr("id", l.last_in.id);
    }
    Element& x = p.add_child(std::string(kNsMuc), "x");
    Element& h = x.add_child(std::string(kNsMuc), "history");
    h.set_attr("maxstanzas", std::to_string(s_.history_size));
  }
  Element& ux = p.add_child(std::string(kNsMucUser), "x");
  Element& item = ux.add_child(std::string(kNsMucUser), "item");
  item.set_attr("affiliation", o.affiliation);
  item.set_attr("role", available ? o.role : "none");
  item.set_attr("jid", o.author);
  departure_item(item, d);
  for (int code : d.codes) status(ux, code);
  return p;
}

void Room::send_to_peer(Link& l, Element st, Outputs& out) {
  if (l.state == LinkState::Joining) {
    if (l.queue.size() < 4 * s_.history_size + 1000) l.queue.push_back(std::move(st));
    return;
  }
  if (l.state != LinkState::Up) return;
  ++counters_.relayed_out;
  out.push_back({true, std::move(st)});
}

void Room::relay_presence(const Occupant& o, bool available, const std::string& except_peer, Outputs& out,
                          const std::string& only_peer, const Departure& d) {
  for (auto& [peer, l] : links_) {
    if (peer == except_peer || (!only_peer.empty() && peer != only_peer)) continue;
    if (l.state == LinkState::Down) continue;
    send_to_peer(l, fmuc_presence(o, available, l, false, d), out);
  }
}

void Room::local_presence(const Element& st, const std::string& from, const std::string& nick, std::int64_t now,
                          Outputs& out) {
  const std::string type = st.attr_or("type");
  Occupant* me = find_session(from);
  if (type.empty()) {
    if (nick.empty()) {
      error_to(st, StanzaErrorCondition::JidMalformed, "a join names the nickname: room@service/nick", out);
      return;
    }
    if (me != nullptr && me->nick != nick) {
      // Nick change (XEP-0045 §7.6).
      if (!valid_nick(nick)) {
        error_to(st, StanzaErrorCondition::JidMalformed, "not a valid nickname", out);
        return;
      }
      if (occupants_.count(nick) != 0) {
        error_to(st, StanzaErrorCondition::Conflict, "that nickname is in use in this room", out);
        return;
      }
      if (me->sessions.size() > 1) {
        error_to(st, StanzaErrorCondition::NotAcceptable, "leave with your other sessions before changing nickname",
                 out);
        return;
      }
      Occupant moved = *me;
      // The whole federation learns it as a nick change (303), not a leave.
      Departure change = Departure::with({303});
      change.new_nick = nick;
      broadcast_presence(*me, false, change, out);
      relay_presence(*me, false, {}, out, {}, change);
      occupants_.erase(me->nick);
      moved.nick = nick;
      moved.presence = presence_essentials(st);
      auto [it, ok] = occupants_.emplace(nick, std::move(moved));
      broadcast_presence(it->second, true, {}, out);
      relay_presence(it->second, true, {}, out);
      return;
    }
    if (me != nullptr) {
      if (st.find_child("x", kNsMuc) != nullptr) {
        // A join again from a joined session: resynchronise (XEP-0045 §7.2.1).
        local_join(st, from, nick, now, out);
        return;
      }
      me->presence = presence_essentials(st);
      broadcast_presence(*me, true, {}, out);
      relay_presence(*me, true, {}, out);
      return;
    }
    local_join(st, from, nick, now, out);
    return;
  }
  if (type == "unavailable") {
    if (me != nullptr) local_leave(*me, from, &st, out);
    return;   // from a non-occupant: ignored (XEP-0045 §7.14)
  }
  if (type == "error" && me != nullptr) {
    // The user's server says the session is gone: a ghost no longer.
    local_leave(*me, from, nullptr, out, {333});
  }
}

void Room::local_join(const Element& st, const std::string& from, const std::string& nick, std::int64_t now,
                      Outputs& out) {
  if (!valid_nick(nick)) {
    error_to(st, StanzaErrorCondition::JidMalformed, "not a valid nickname", out);
    return;
  }
  const std::string bare = bare_of(from);
  const bool owner = contains(s_.owners, bare);
  if (s_.members_only && !owner && !contains(s_.members, bare)) {
    error_to(st, StanzaErrorCondition::RegistrationRequired, "this room is members-only", out);
    return;
  }
  auto it = occupants_.find(nick);
  if (it != occupants_.end() && !(it->second.peer.empty() && it->second.bare == bare)) {
    error_to(st, StanzaErrorCondition::Conflict,
             it->second.peer.empty() ? "that nickname is in use in this room"
                                     : "that nickname is in use in the federated room (" + it->second.peer + ")",
             out);
    return;
  }
  bool fresh = false;
  if (it == occupants_.end()) {
    if (occupants_.size() >= kMaxOccupants) {
      error_to(st, StanzaErrorCondition::ServiceUnavailable, "the room is full", out);
      return;
    }
    Occupant o;
    o.nick = nick;
    o.author = from;
    o.bare = bare;
    o.affiliation = owner ? "owner" : (contains(s_.members, bare) ? "member" : "none");
    o.role = owner ? "moderator" : "participant";
    o.occupant_id = make_occupant_id(bare);
    o.joined_ms = now;
    it = occupants_.emplace(nick, std::move(o)).first;
    fresh = true;
  }
  Occupant& me = it->second;
  if (!contains(me.sessions, from)) {
    if (me.sessions.size() >= kMaxSessions) {
      error_to(st, StanzaErrorCondition::ServiceUnavailable, "too many sessions with this nickname", out);
      return;
    }
    me.sessions.push_back(from);
  }
  me.presence = presence_essentials(st);
  // 1. everyone already here, 2. the newcomer to all (self-presence last, 110).
  for (const auto& [n, other] : occupants_) {
    if (&other == &me) continue;
    out.push_back({false, occupant_presence(other, true, from, false)});
  }
  for (const auto& [n, other] : occupants_) {
    if (!other.peer.empty() || &other == &me) continue;
    for (const auto& s : other.sessions) out.push_back({false, occupant_presence(me, true, s, false)});
  }
  for (const auto& s : me.sessions) {
    if (s == from) continue;
    out.push_back({false, occupant_presence(me, true, s, true)});
  }
  Element self = occupant_presence(me, true, from, true);
  if (const std::string* id = st.attr("id")) self.set_attr("id", *id);
  out.push_back({false, std::move(self)});
  // 3. history, 4. subject.
  const Element* x = st.find_child("x", kNsMuc);
  send_history(x ? x->find_child("history", kNsMuc) : nullptr, from, now, out);
  send_subject(from, out);
  if (!fresh) return;
  // Federation: the new occupant is announced to every node that is up; the
  // first local occupant makes this node join its upstream room (lazy FMUC).
  for (auto& [peer, l] : links_) {
    if (l.upstream && l.state == LinkState::Down && !l.rejected) {
      start_join(l, now, out);
      continue;
    }
    if (l.state != LinkState::Down) send_to_peer(l, fmuc_presence(me, true, l, false), out);
  }
}

std::size_t Room::occupants_wanting(const Link& upstream) const {
  std::size_t n = static_cast<std::size_t>(std::count_if(
      occupants_.begin(), occupants_.end(), [&](const auto& kv) { return kv.second.peer != upstream.peer; }));
  // A downstream node lost (not left) will rejoin and ask for what it missed:
  // this room stays in the federation meanwhile, so it has it to give.
  for (const auto& [peer, l] : links_) {
    if (!l.upstream && l.state == LinkState::Down && l.lost_at_ms != 0) ++n;
  }
  return n;
}

void Room::join_upstream_if_wanted(std::int64_t now, Outputs& out) {
  for (auto& [peer, l] : links_) {
    if (l.upstream && l.state == LinkState::Down && !l.rejected && occupants_wanting(l) != 0) start_join(l, now, out);
  }
}

void Room::leave_upstream_if_idle(Outputs& out) {
  for (auto& [peer, l] : links_) {
    if (!l.upstream || l.state == LinkState::Down || occupants_wanting(l) != 0) continue;
    remove_remote_occupants(l, {}, 0, out);
    l.state = LinkState::Down;
    l.lost_at_ms = 0;
    l.queue.clear();
    event("left federated room " + peer + " (no occupant here needs it)");
  }
}

void Room::local_leave(Occupant& o, const std::string& session, const Element* st, Outputs& out,
                       const std::vector<int>& codes) {
  if (o.sessions.size() > 1) {
    o.sessions.erase(std::remove(o.sessions.begin(), o.sessions.end(), session), o.sessions.end());
    Element p = occupant_presence(o, false, session, true, Departure::with(codes));
    out.push_back({false, std::move(p)});
    return;
  }
  Departure d = Departure::with(codes);
  if (st != nullptr) {
    const Element kept = presence_essentials(*st);
    if (const Element* status = kept.find_child("status", st->ns())) d.status = status->text();
  }
  broadcast_presence(o, false, d, out);
  relay_presence(o, false, {}, out, {}, d);
  const std::string nick = o.nick;
  occupants_.erase(nick);
  // The last occupant that needed it left: this node leaves its upstream room.
  leave_upstream_if_idle(out);
}

// ---- messages ----------------------------------------------------------------

void Room::reflect_message(const HistoryEntry& e, bool delayed, const std::string& to_session,
                           Outputs& out) const {
  auto one = [&](const std::string& to) {
    Element m = e.message;
    m.set_attr("from", jid_ + "/" + e.nick);
    m.set_attr("to", to);
    Element& sid = m.add_child(std::string(kNsSid), "stanza-id");
    sid.set_attr("id", e.key.by == jid_ ? e.key.id : make_occupant_id("sid\n" + e.key.by + "\n" + e.key.id));
    sid.set_attr("by", jid_);
    auto occ = occupants_.find(e.nick);
    if (occ != occupants_.end() && occ->second.peer == e.peer) {
      m.add_child(std::string(kNsOccupantId), "occupant-id").set_attr("id", occ->second.occupant_id);
    }
    if (delayed) {
      Element& d = m.add_child(std::string(kNsDelay), "delay");
      d.set_attr("from", jid_);
      d.set_attr("stamp", format_stamp(e.stamp_ms));
    }
    out.push_back({false, std::move(m)});
  };
  if (!to_session.empty()) {
    one(to_session);
    return;
  }
  for (const auto& [nick, o] : occupants_) {
    if (!o.peer.empty()) continue;
    for (const auto& s : o.sessions) one(s);
  }
}

Element Room::relay_form(const HistoryEntry& e, const std::string& to, bool delayed) const {
  Element m = e.message;
  m.set_attr("from", jid_ + "/" + e.nick);
  m.set_attr("to", to);
  m.set_attr("id", e.key.id);
  set_fmuc_from(m, e.author);
  Element& sid = m.add_child(std::string(kNsSid), "stanza-id");
  sid.set_attr("id", e.key.id);
  sid.set_attr("by", e.key.by);
  if (delayed) {
    Element& d = m.add_child(std::string(kNsDelay), "delay");
    d.set_attr("from", jid_);
    d.set_attr("stamp", format_stamp(e.stamp_ms));
  }
  return m;
}

void Room::relay_message(const HistoryEntry& e, const std::string& except_peer, bool delayed, Outputs& out) {
  for (auto& [peer, l] : links_) {
    if (peer == except_peer || l.state == LinkState::Down) continue;
    send_to_peer(l, relay_form(e, peer, delayed), out);
  }
}

void Room::accept_message(HistoryEntry e, const std::string& via, bool delayed, Outputs& out) {
  remember(e.key);
  e.seq = ++next_seq_;
  ++counters_.messages;
  // History stays in time order: a backfilled message goes where its stamp says.
  auto pos = history_.end();
  if (delayed) {
    pos = std::upper_bound(history_.begin(), history_.end(), e.stamp_ms,
                           [](std::int64_t t, const HistoryEntry& h) { return t < h.stamp_ms; });
  }
  auto it = history_.insert(pos, std::move(e));
  const HistoryEntry& entry = *it;
  reflect_message(entry, delayed, {}, out);
  relay_message(entry, via, delayed, out);
  while (history_.size() > s_.history_size) history_.pop_front();
}

void Room::local_groupchat(const Element& st, const std::string& from, std::int64_t now, Outputs& out) {
  Occupant* me = find_session(from);
  if (me == nullptr) {
    error_to(st, StanzaErrorCondition::NotAcceptable, "you are not an occupant of this room", out);
    return;
  }
  const Element* subj = st.find_child("subject", st.ns());
  const Element* body = st.find_child("body", st.ns());
  if (subj != nullptr && body == nullptr) {
    subject_ = subj->text();
    subject_nick_ = me->nick;
    subject_label_ = label_of(st);   // a labelled subject crosses (and is judged) with its label
    for (const auto& [n, o] : occupants_) {
      if (!o.peer.empty()) continue;
      for (const auto& s : o.sessions) send_subject(s, out);
    }
    // One relay id on every link, remembered: a node that refuses the subject
    // (an IRC link's labels) reaches its author, as for a message.
    const std::string relay_id = next_id();
    remember_sent(relay_id, Sent{from, me->nick, st.attr_or("id"), SentKind::Subject, {}});
    for (auto& [peer, l] : links_) {
      if (l.state == LinkState::Down) continue;
      Element m(std::string(xmpp::kNsServer), "message");
      m.set_attr("from", jid_ + "/" + me->nick);
      m.set_attr("to", peer);
      m.set_attr("type", "groupchat");
      m.set_attr("id", relay_id);
      m.add_child(std::string(xmpp::kNsServer), "subject").add_text(subject_);
      if (subject_label_) m.add_child(*subject_label_);
      set_fmuc_from(m, me->author);
      send_to_peer(l, std::move(m), out);
    }
    return;
  }
  HistoryEntry e;
  e.key = {jid_, next_id()};
  e.nick = me->nick;
  e.author = from;
  e.stamp_ms = now;
  e.message = payload_of(st);
  remember_sent(e.key.id, Sent{from, me->nick, st.attr_or("id"), SentKind::Groupchat, {}});
  accept_message(std::move(e), {}, false, out);
}

void Room::remember_sent(const std::string& relay_id, Sent s) { sent_.insert(relay_id, std::move(s)); }

void Room::local_private(const Element& st, const std::string& from, const std::string& nick, Outputs& out) {
  const std::string type = st.attr_or("type");
  if (type == "error") {
    return;
  }
  if (type == "groupchat") {
    error_to(st, StanzaErrorCondition::BadRequest, "a private message is not of type groupchat", out);
    return;
  }
  Occupant* me = find_session(from);
  if (me == nullptr) {
    error_to(st, StanzaErrorCondition::NotAcceptable, "you are not an occupant of this room", out);
    return;
  }
  auto it = occupants_.find(nick);
  if (it == occupants_.end()) {
    error_to(st, StanzaErrorCondition::ItemNotFound, "no occupant with that nickname", out);
    return;
  }
  Occupant& to = it->second;
  Element m = st;
  strip_fmuc(m);
  m.set_attr("from", jid_ + "/" + me->nick);
  if (to.peer.empty()) {
    m.remove_children("x", kNsMucUser);
    m.add_child(std::string(kNsMucUser), "x");
    for (const auto& s : to.sessions) {
      Element c = m;
      c.set_attr("to", s);
      out.push_back({false, std::move(c)});
    }
    return;
  }
  auto l = links_.find(to.peer);
  if (l == links_.end() || l->second.state != LinkState::Up) {
    error_to(st, StanzaErrorCondition::RecipientUnavailable, "the federated room is not reachable now", out);
    return;
  }
  m.set_attr("to", to.peer + "/" + nick);
  set_fmuc_from(m, me->author);
  // Remembered like a groupchat relay, so a refusal on the way reaches its author.
  const std::string relay_id = next_id();
  remember_sent(relay_id, Sent{from, me->nick, st.attr_or("id"), SentKind::Private, to.peer});
  m.set_attr("id", relay_id);
  send_to_peer(l->second, std::move(m), out);
}

void Room::send_subject(const std::string& to_session, Outputs& out) const {
  Element m(std::string(xmpp::kNsServer), "message");
  m.set_attr("from", subject_nick_.empty() ? jid_ : jid_ + "/" + subject_nick_);
  m.set_attr("to", to_session);
  m.set_attr("type", "groupchat");
  m.add_child(std::string(xmpp::kNsServer), "subject").add_text(subject_);
  if (subject_label_) m.add_child(*subject_label_);
  out.push_back({false, std::move(m)});
}

std::vector<const Room::HistoryEntry*> Room::pick_history(const Element* req, std::int64_t now) const {
  // XEP-0045 §7.2.15: the smallest set that meets every limit given.
  std::size_t maxstanzas = history_.size();
  std::size_t maxchars = SIZE_MAX;
  std::int64_t since = INT64_MIN;
  if (req != nullptr) {
    auto num = [&](std::string_view a, std::size_t& v) {
      const std::string* s = req->attr(a);
      if (s == nullptr) return;
      try {
        v = std::min<std::size_t>(v, std::stoull(*s));
      } catch (...) {
      }
    };
    num("maxstanzas", maxstanzas);
    num("maxchars", maxchars);
    if (const std::string* s = req->attr("seconds")) {
      try {
        const std::uint64_t secs = std::min<std::uint64_t>(std::stoull(*s), 10ull * 365 * 86400);
        since = std::max<std::int64_t>(since, now - static_cast<std::int64_t>(secs) * 1000);
      } catch (...) {
      }
    }
    if (const std::string* s = req->attr("since")) {
      if (auto t = parse_stamp(*s)) since = std::max(since, *t);
    }
  }
  std::vector<const HistoryEntry*> pick;
  std::size_t chars = 0;
  for (auto it = history_.rbegin(); it != history_.rend() && pick.size() < maxstanzas; ++it) {
    if (it->stamp_ms < since) break;
    const std::size_t n = it->message.serialize().size();
    if (chars + n > maxchars) break;
    chars += n;
    pick.push_back(&*it);
  }
  std::reverse(pick.begin(), pick.end());
  return pick;
}

void Room::send_history(const Element* req, const std::string& to_session, std::int64_t now, Outputs& out) const {
  for (const HistoryEntry* e : pick_history(req, now)) reflect_message(*e, true, to_session, out);
}

// ---- IQs ---------------------------------------------------------------------

Element Room::disco_info() const {
  Element q(std::string(kNsDiscoInfo), "query");
  Element& id = q.add_child(std::string(kNsDiscoInfo), "identity");
  id.set_attr("category", "conference");
  id.set_attr("type", "text");
  id.set_attr("name", s_.title);
  for (const char* f : {"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#stable_id",
                        "urn:xmpp:occupant-id:0", "urn:xmpp:sid:0", "urn:xmpp:ping", "muc_persistent",
                        "muc_public", "muc_semianonymous", "muc_unmoderated", "muc_unsecured"}) {
    q.add_child(std::string(kNsDiscoInfo), "feature").set_attr("var", f);
  }
  q.add_child(std::string(kNsDiscoInfo), "feature").set_attr("var", s_.members_only ? "muc_membersonly" : "muc_open");
  if (!s_.label.empty()) q.add_child(std::string(kNsDiscoInfo), "feature").set_attr("var", "urn:xmpp:sec-label:0");
  return q;
}

void Room::local_iq(const Element& st, const std::string& from, const std::string& nick, Outputs& out) {
  const std::string type = st.attr_or("type");
  if (type == "result" || type == "error") return;
  auto result = [&](std::optional<Element> payload) {
    Element r(st.ns(), "iq");
    r.set_attr("from", st.attr_or("to"));
    r.set_attr("to", from);
    r.set_attr("type", "result");
    r.set_attr("id", st.attr_or("id"));
    if (payload) r.add_child(std::move(*payload));
    out.push_back({false, std::move(r)});
  };
  const Element* q = nullptr;
  for (const auto& c : st.children()) {
    if (c.is_element()) {
      q = c.element.get();
      break;
    }
  }
  if (!nick.empty()) {
    // XEP-0410 self-ping: a client asks whether it is still joined.
    Occupant* me = find_session(from);
    if (type == "get" && q != nullptr && q->ns() == kNsPing && q->name() == "ping") {
      if (me != nullptr && me->nick == nick) {
        result(std::nullopt);
      } else {
        error_to(st, StanzaErrorCondition::NotAcceptable, "you are not joined with this nickname", out);
      }
      return;
    }
    error_to(st, StanzaErrorCondition::ServiceUnavailable, "IQs to occupants are not relayed", out);
    return;
  }
  if (type == "get" && q != nullptr && q->ns() == kNsDiscoInfo && q->name() == "query" && q->attr("node") == nullptr) {
    result(disco_info());
    return;
  }
  if (type == "get" && q != nullptr && q->ns() == kNsDiscoItems && q->name() == "query") {
    result(Element(std::string(kNsDiscoItems), "query"));   // occupants are not listed (semi-anonymous)
    return;
  }
  if (type == "get" && q != nullptr && q->ns() == kNsPing && q->name() == "ping") {
    result(std::nullopt);
    return;
  }
  error_to(st, StanzaErrorCondition::FeatureNotImplemented, "rooms are configured by the operator", out);
}

void Room::on_local(const Element& user_st, std::int64_t now, Outputs& out) {
  if (user_st.name() == "message" && user_st.attr_or("type") != "error") {
    // Before anything of the stanza is dropped (a user's <fmuc/> below, the
    // wrappers payload_of and private messages drop): a label out of place or
    // a second one is refused, never passed on as unlabelled.
    if (const std::string why = label_placement_error(user_st); !why.empty()) {
      ++counters_.refused_labels;
      error_to(user_st, StanzaErrorCondition::BadRequest, why, out);
      return;
    }
  }
  // <fmuc/> from a user is never trusted: a user is not a node.
  std::optional<Element> stripped;
  if (has_fmuc(user_st)) {
    stripped = user_st;
    strip_fmuc(*stripped);
  }
  const Element& st = stripped ? *stripped : user_st;
  const std::string from = st.attr_or("from");
  const std::string nick = resource_of(st.attr_or("to"));
  if (st.name() == "presence") {
    local_presence(st, from, nick, now, out);
  } else if (st.name() == "message") {
    const std::string type = st.attr_or("type");
    if (nick.empty()) {
      if (type == "groupchat") {
        local_groupchat(st, from, now, out);
      } else if (type != "error") {
        error_to(st, StanzaErrorCondition::FeatureNotImplemented, "only groupchat messages go to the room", out);
      }
      return;
    }
    local_private(st, from, nick, out);
  } else if (st.name() == "iq") {
    local_iq(st, from, nick, out);
  }
}

// ---- federated nodes -----------------------------------------------------------

void Room::remove_remote_occupants(Link& l, const std::string& status_text, int code, Outputs& out) {
  for (auto it = occupants_.begin(); it != occupants_.end();) {
    if (it->second.peer != l.peer) {
      ++it;
      continue;
    }
    Occupant gone = std::move(it->second);
    it = occupants_.erase(it);
    // The occupant is gone everywhere this node told about it.
    Departure d;
    if (code != 0) d.codes.push_back(code);
    d.status = status_text;
    for (const auto& [n, o] : occupants_) {
      if (!o.peer.empty()) continue;
      for (const auto& s : o.sessions) out.push_back({false, occupant_presence(gone, false, s, false, d)});
    }
    relay_presence(gone, false, l.peer, out, {}, d);
  }
}

void Room::start_join(Link& l, std::int64_t now, Outputs& out) {
  // The join goes in the name of an occupant of this side if there is one,
  // else of one a downstream node brought (a middle node relays for it).
  const Occupant* first = nullptr;
  for (const auto& [n, o] : occupants_) {
    if (o.peer.empty()) {
      first = &o;
      break;
    }
    if (first == nullptr && o.peer != l.peer) first = &o;
  }
  if (first == nullptr) return;
  l.join_nick = first->nick;
  l.state = LinkState::Joining;
  l.join_started_ms = now;
  l.queue.clear();
  ++counters_.relayed_out;
  out.push_back({true, fmuc_presence(*first, true, l, true)});
  event("joining federated room " + l.peer + (l.lost_at_ms != 0 ? " (rejoin after a loss)" : ""));
}

void Room::join_complete(Link& l, const Element& subject, std::int64_t now, Outputs& out) {
  l.state = LinkState::Up;
  l.failed_joins = 0;
  l.last_heard_ms = now;
  // Every occupant this node knows but the one whose presence made the join,
  // then what was said here while the link was down, then what waited.
  for (const auto& [n, o] : occupants_) {
    if (o.peer == l.peer || n == l.join_nick) continue;
    ++counters_.relayed_out;
    out.push_back({true, fmuc_presence(o, true, l, false)});
  }
  const FmucView f = read_fmuc(subject);
  std::optional<OriginKey> after;
  if (f.resume) after = OriginKey{f.resume->first, f.resume->second};
  const bool rejoin = l.lost_at_ms != 0;
  const std::size_t backfilled = backfill(l, after, out);
  auto q = std::move(l.queue);
  l.queue.clear();
  for (auto& st : q) {
    ++counters_.relayed_out;
    out.push_back({true, std::move(st)});
  }
  event("federated with " + l.peer + (rejoin ? " again" : "") + "; sent " + std::to_string(backfilled) +
        " message(s) it may lack");
  l.lost_at_ms = 0;
}

std::size_t Room::backfill(Link& l, const std::optional<OriginKey>& after, Outputs& out) {
  std::uint64_t from_seq = 0;
  if (after) {
    for (const auto& e : history_) {
      if (e.key == *after) {
        from_seq = e.seq;
        break;
      }
    }
  }
  std::vector<const HistoryEntry*> pick;
  for (const auto& e : history_) {
    if (e.seq > from_seq && e.peer != l.peer) pick.push_back(&e);
  }
  std::sort(pick.begin(), pick.end(), [](const HistoryEntry* a, const HistoryEntry* b) { return a->seq < b->seq; });
  for (const HistoryEntry* e : pick) {
    ++counters_.relayed_out;
    ++counters_.backfilled_out;
    out.push_back({true, relay_form(*e, l.peer, true)});
  }
  return pick.size();
}

void Room::accept_join(Link& l, const Element& st, std::int64_t now, Outputs& out) {
  l.pending_rename.clear();
  if (l.state == LinkState::Up && now - l.last_accept_ms < t_.retry_ms) {
    // Each accepted join sends the whole room across: not more often than a rejoin may come.
    ++counters_.refused_from_peer;
    return;
  }
  l.last_accept_ms = now;
  if (l.state == LinkState::Up) {
    // A join on a link that is up: the joining node starts over (it restarted,
    // or lost the link without our noticing). Forget what it told us before.
    remove_remote_occupants(l, "the federated room rejoined", 333, out);
  }
  l.state = LinkState::Up;
  l.last_heard_ms = now;
  l.lost_at_ms = 0;
  event("federated room " + l.peer + " joined");
  // 1. occupants (not those the joining node gave us), 2. history as asked, 3. subject.
  for (const auto& [n, o] : occupants_) {
    if (o.peer == l.peer) continue;
    Element p = fmuc_presence(o, true, l, false);
    p.set_attr("to", l.peer);
    ++counters_.relayed_out;
    out.push_back({true, std::move(p)});
  }
  const FmucView f = read_fmuc(st);
  const Element* x = st.find_child("x", kNsMuc);
  const Element* req = x ? x->find_child("history", kNsMuc) : nullptr;
  if (f.resume || req == nullptr) {
    backfill(l, f.resume ? std::optional<OriginKey>(OriginKey{f.resume->first, f.resume->second}) : std::nullopt,
             out);
  } else {
    for (const HistoryEntry* e : pick_history(req, now)) {
      if (e->peer == l.peer) continue;
      ++counters_.relayed_out;
      ++counters_.backfilled_out;
      out.push_back({true, relay_form(*e, l.peer, true)});
    }
  }
  Element subj(std::string(xmpp::kNsServer), "message");
  // From the room itself: it ends the join answer, and the nick that set the subject may
  // be one of the joining room's own occupants (which that room would take for impersonation).
  subj.set_attr("from", jid_);
  subj.set_attr("to", l.peer);
  subj.set_attr("type", "groupchat");
  subj.set_attr("id", next_id());
  subj.add_child(std::string(xmpp::kNsServer), "subject").add_text(subject_);
  if (subject_label_) subj.add_child(*subject_label_);
  set_fmuc_from(subj, jid_);
  if (!l.last_in.empty()) {
    Element& r = subj.find_child("fmuc", kNsFmuc)->add_child(std::string(kNsFmuc), "resume");
    r.set_attr("by", l.last_in.by);
    r.set_attr("id", l.last_in.id);
  }
  ++counters_.relayed_out;
  out.push_back({true, std::move(subj)});
}

Room::Departure Room::peer_departure(const Link& l, const Element& st) const {
  // Only what a departure means travels on, each at most once, bounded: an
  // occupant lost with a link further along (333), a nick change to a nick
  // free here (303), a kick with its reason and a kicker the same link brought
  // (307). Anything else a peer puts there (110, 201, a nick in use, a local
  // user as the kicker) is not repeated to this room's users. Called with the
  // departing occupant already removed.
  // A nick read from an attribute must be one a room JID can carry.
  auto nick_ok = [this](const std::string& n) {
    if (!valid_nick(n)) return false;
    auto j = xmpp::parse_jid(jid_ + "/" + n);
    return j && j->resource == n;
  };
  Departure d;
  const Element kept = presence_essentials(st);
  if (const Element* status = kept.find_child("status", st.ns())) d.status = status->text();
  const Element* ux = st.find_child("x", kNsMucUser);
  if (ux == nullptr) return d;
  const Element* item = ux->find_child("item", kNsMucUser);
  bool lost = false, changed = false, kicked = false;
  for (const Element* c : ux->child_elements()) {
    if (c->name() != "status") continue;
    const std::string code = c->attr_or("code");
    lost = lost || code == "333";
    changed = changed || code == "303";
    kicked = kicked || code == "307";
  }
  if (lost) d.codes.push_back(333);
  if (changed && !lost && item != nullptr && nick_ok(item->attr_or("nick")) && occupants_.count(item->attr_or("nick")) == 0) {
    d.codes.push_back(303);
    d.new_nick = item->attr_or("nick");
  }
  if (kicked && !lost && d.new_nick.empty()) {
    d.codes.push_back(307);
    if (item != nullptr) {
      if (const Element* r = item->find_child("reason", kNsMucUser)) {
        d.reason = r->text();
        if (d.reason.size() > 1024) {   // cut on a UTF-8 character boundary
          std::size_t cut = 1024;
          while (cut > 0 && (static_cast<unsigned char>(d.reason[cut]) & 0xC0) == 0x80) --cut;
          d.reason.resize(cut);
        }
      }
      if (const Element* a = item->find_child("actor", kNsMucUser)) {
        auto k = occupants_.find(a->attr_or("nick"));
        if (k != occupants_.end() && k->second.peer == l.peer) d.actor = k->first;
      }
    }
  }
  return d;
}

void Room::left_if_no_occupant(Link& l, Outputs& out) {
  if (!l.upstream &&
      std::none_of(occupants_.begin(), occupants_.end(), [&](const auto& kv) { return kv.second.peer == l.peer; })) {
    // The joining node has no occupant left here: it left the set (XEP-0289 §4.4).
    Element left(std::string(xmpp::kNsServer), "presence");
    left.set_attr("from", jid_);
    left.set_attr("to", l.peer);
    left.add_child(std::string(kNsFmuc), "fmuc").add_child(std::string(kNsFmuc), "left");
    ++counters_.relayed_out;
    out.push_back({true, std::move(left)});
    l.state = LinkState::Down;
    event("federated room " + l.peer + " left (no occupant there)");
  }
  if (!l.upstream) leave_upstream_if_idle(out);
}

void Room::peer_presence(Link& l, const Element& st, const std::string& nick, std::int64_t now, Outputs& out) {
  const FmucView f = read_fmuc(st);
  const std::string type = st.attr_or("type");
  if (f.kind == FmucKind::Reject) {
    l.rejected = true;
    l.state = LinkState::Down;
    l.queue.clear();
    event("federated room " + l.peer + " refused our join" + (f.reject_text.empty() ? "" : ": " + f.reject_text) +
          "; not retried until restart");
    return;
  }
  if (f.kind == FmucKind::Left) {
    if (l.upstream) {
      remove_remote_occupants(l, {}, 0, out);
      l.state = LinkState::Down;
      l.lost_at_ms = 0;
    }
    return;
  }
  if (type == "error") {
    peer_error(l, st, now, out);
    return;
  }
  if (f.kind != FmucKind::Relay || nick.empty() || !valid_nick(nick)) return;   // not FMUC: nothing to relay
  const bool join_request = st.find_child("x", kNsMuc) != nullptr && st.find_child("x", kNsMucUser) != nullptr;
  if (!l.upstream && join_request) accept_join(l, st, now, out);
  if (l.state == LinkState::Down) return;   // a stale relay after the link was lost
  auto it = occupants_.find(nick);
  if (type == "unavailable") {
    if (it == occupants_.end() || it->second.peer != l.peer) return;
    Occupant gone = std::move(it->second);
    occupants_.erase(it);
    gone.presence = presence_essentials(st);
    const Departure d = peer_departure(l, st);
    for (const auto& [n, o] : occupants_) {
      if (!o.peer.empty()) continue;
      for (const auto& s : o.sessions) out.push_back({false, occupant_presence(gone, false, s, false, d)});
    }
    relay_presence(gone, false, l.peer, out, {}, d);
    // A nick change is a departure the new nick's presence follows: the
    // node stays in the set meanwhile (a ping interval at most), even with no
    // other occupant here.
    if (!d.new_nick.empty()) {
      l.pending_rename = d.new_nick;
      l.rename_deadline_ms = now + t_.ping_interval_ms;
      return;
    }
    left_if_no_occupant(l, out);
    return;
  }
  if (type != "") return;
  if (it != occupants_.end() && it->second.peer != l.peer) {
    // The nick is taken here (locally or through another node). From the
    // joined room (upstream) its occupant keeps the nick: that room refuses
    // ours with its own conflict error, which removes our newcomer. From a
    // joining room, we refuse its occupant.
    if (l.upstream) return;
    Element e = xmpp::make_error_reply(st, {StanzaErrorCondition::Conflict, xmpp::StanzaErrorType::Cancel,
                                            "that nickname is in use in the federated room " + jid_, jid_, {}});
    e.set_attr("type", "error");
    ++counters_.relayed_out;
    out.push_back({true, std::move(e)});
    return;
  }
  const bool fresh = it == occupants_.end();
  if (fresh) {
    // Room for this side's own users is kept whatever a node brings.
    if (remote_occupants() >= kMaxOccupants - kReservedLocal) {
      ++counters_.refused_from_peer;
      return;
    }
    Occupant o;
    o.nick = nick;
    o.peer = l.peer;
    o.author = f.from.empty() ? st.attr_or("from") : f.from;
    if (o.author.size() > 3071 || !xmpp::parse_jid(o.author)) {
      ++counters_.refused_from_peer;
      return;
    }
    o.bare = bare_of(o.author);
    // Affiliations are this room's to give: a node's occupants are plain participants here.
    if (const Element* x = st.find_child("x", kNsMucUser)) {
      if (const Element* item = x->find_child("item", kNsMucUser)) {
        if (item->attr_or("role") == "visitor") o.role = "visitor";
      }
    }
    o.occupant_id = make_occupant_id(o.bare);
    it = occupants_.emplace(nick, std::move(o)).first;
  }
  it->second.presence = presence_essentials(st);
  if (l.pending_rename == nick) l.pending_rename.clear();   // the nick a 303 announced came
  for (const auto& [n, o] : occupants_) {
    if (!o.peer.empty()) continue;
    for (const auto& s : o.sessions) out.push_back({false, occupant_presence(it->second, true, s, false)});
  }
  relay_presence(it->second, true, l.peer, out);
  // An occupant a downstream node brought needs the upstream room too.
  if (fresh && !l.upstream) join_upstream_if_wanted(now, out);
}

void Room::peer_message(Link& l, const Element& st, const std::string& nick, std::int64_t now, Outputs& out) {
  const std::string type = st.attr_or("type");
  if (type == "error") {
    peer_error(l, st, now, out);
    return;
  }
  const FmucView f = read_fmuc(st);
  if (f.kind != FmucKind::Relay) return;
  if (l.state == LinkState::Down) return;
  const std::string to_nick = resource_of(st.attr_or("to"));
  if (const std::string why = label_placement_error(st); !why.empty()) {
    // Groupchat or private: answered, so the node can tell its author; never
    // passed on unlabelled. The subject that answers our join still ends it
    // (the subject itself is not taken), or the link would wait and rejoin.
    ++counters_.refused_labels;
    error_to(st, StanzaErrorCondition::BadRequest, why, out, true);
    if (type == "groupchat" && l.upstream && l.state == LinkState::Joining &&
        st.find_child("subject", st.ns()) != nullptr && st.find_child("body", st.ns()) == nullptr) {
      join_complete(l, st, now, out);
    }
    return;
  }
  if (type == "groupchat") {
    const Element* subj = st.find_child("subject", st.ns());
    const Element* body = st.find_child("body", st.ns());
    if (subj != nullptr && body == nullptr) {
      if (!nick.empty() && impersonates(l, nick)) return;
      const bool changed = subj->text() != subject_;
      subject_ = subj->text();
      subject_label_ = label_of(st);
      subject_nick_ = nick;
      if (changed) {
        for (const auto& [n, o] : occupants_) {
          if (!o.peer.empty()) continue;
          for (const auto& s : o.sessions) send_subject(s, out);
        }
      }
      for (auto& [peer, other] : links_) {
        if (peer == l.peer || other.state == LinkState::Down) continue;
        Element m = st;
        m.set_attr("from", jid_ + (subject_nick_.empty() ? "" : "/" + subject_nick_));
        m.set_attr("to", peer);
        send_to_peer(other, std::move(m), out);
      }
      if (l.upstream && l.state == LinkState::Joining) join_complete(l, st, now, out);
      return;
    }
    if (nick.empty() || impersonates(l, nick)) return;
    auto key = read_origin(st);
    OriginKey k = key ? *key : OriginKey{l.peer, st.attr_or("id")};
    if (k.id.empty()) return;
    if (k.by == jid_) {
      // Only this room makes ids in its own name: a peer claiming one would
      // poison the dedupe of this room's own future messages.
      ++counters_.refused_from_peer;
      event("dropped a relay from " + l.peer + " claiming this room's own message id");
      return;
    }
    l.last_in = k;
    if (seen(k)) {
      ++counters_.duplicates_dropped;
      return;
    }
    auto stamp = read_delay(st);
    HistoryEntry e;
    e.key = k;
    e.nick = nick;
    e.author = f.from;
    e.peer = l.peer;
    e.stamp_ms = stamp ? std::min(*stamp, now) : now;
    e.message = payload_of(st);
    if (stamp) ++counters_.backfilled_in;
    accept_message(std::move(e), l.peer, stamp.has_value(), out);
    return;
  }
  // A private message through the federation, for one of our occupants or onward.
  if (to_nick.empty() || nick.empty() || impersonates(l, nick)) return;
  auto it = occupants_.find(to_nick);
  if (it == occupants_.end()) {
    error_to(st, StanzaErrorCondition::ItemNotFound, "no occupant with that nickname", out, true);
    return;
  }
  Element m = st;
  strip_fmuc(m);
  m.set_attr("from", jid_ + "/" + nick);
  if (it->second.peer.empty()) {
    m.remove_children("x", kNsMucUser);
    m.add_child(std::string(kNsMucUser), "x");
    for (const auto& s : it->second.sessions) {
      Element c = m;
      c.set_attr("to", s);
      out.push_back({false, std::move(c)});
    }
    return;
  }
  if (it->second.peer == l.peer) return;   // never back where it came from
  auto next = links_.find(it->second.peer);
  if (next == links_.end()) return;
  m.set_attr("to", it->second.peer + "/" + to_nick);
  set_fmuc_from(m, f.from);
  // Remembered (bounded), so an IRC link's note on it finds the way back.
  if (const std::string id = st.attr_or("id"); !id.empty()) onward_pms_.insert(id, OnwardPm{l.peer, nick, it->second.peer});
  send_to_peer(next->second, std::move(m), out);
}

namespace {

// What an author is told when `peer` refused (or, `warning`, passed on cut) a
// relay of theirs; `irc_link` is the IRC link that spoke, if one did.
std::string told_author(const std::string& what, bool private_msg, const std::string& peer,
                        const std::string& irc_link, bool warning) {
  if (irc_link == peer) {
    return warning ? what + " reached the IRC channel of the federated room " + peer + ", with a warning"
                   : what + " reached the federated room " + peer + " but not its IRC channel";
  }
  if (!irc_link.empty()) {
    return warning ? what + " reached the IRC channel of " + irc_link + " through the federated room " + peer +
                         ", with a warning"
                   : what + " reached the federated room " + peer + " but not the IRC channel of " + irc_link;
  }
  if (warning) return what + " reached " + peer + ", with a warning";
  return private_msg ? what + " did not reach the federated room " + peer
                     : what + " reached this room but not the federated room " + peer;
}

}  // namespace

void Room::peer_error(Link& l, const Element& st, std::int64_t now, Outputs& out) {
  auto err = xmpp::read_stanza_error(st);
  const std::string nick = resource_of(st.attr_or("to"));
  if (!err) return;
  if (st.name() == "presence" && err->condition == StanzaErrorCondition::Conflict && !nick.empty()) {
    // Only the joined room (upstream) decides who keeps a nick: a joining room
    // never removes the joined room's occupants.
    if (!l.upstream) return;
    // Our occupant's nick is taken in the federated room: they cannot stay.
    auto it = occupants_.find(nick);
    // Only an answer to the announcement of a recent join counts: a peer must
    // not be able to remove our occupants whenever it likes.
    if (it != occupants_.end() && it->second.peer.empty() && now - it->second.joined_ms <= t_.join_timeout_ms) {
      Occupant o = it->second;
      for (const auto& s : o.sessions) {
        Element e(std::string(xmpp::kNsServer), "presence");
        e.set_attr("from", jid_ + "/" + nick);
        e.set_attr("to", s);
        e.set_attr("type", "error");
        Element& er = e.add_child(std::string(xmpp::kNsServer), "error");
        er.set_attr("type", "cancel");
        er.set_attr("by", jid_);
        er.add_child(std::string(xmpp::kNsStanzas), "conflict");
        er.add_child(std::string(xmpp::kNsStanzas), "text").add_text("that nickname is in use in the federated room");
        out.push_back({false, std::move(e)});
      }
      local_leave(it->second, o.sessions.front(), nullptr, out, {333});
      if (o.sessions.size() > 1) {
        Occupant* again = nullptr;
        auto i2 = occupants_.find(nick);
        if (i2 != occupants_.end()) again = &i2->second;
        while (again != nullptr && !again->sessions.empty()) {
          const std::string s = again->sessions.front();
          local_leave(*again, s, nullptr, out, {333});
          auto i3 = occupants_.find(nick);
          again = i3 == occupants_.end() ? nullptr : &i3->second;
        }
      }
    }
    return;
  }
  if (link_failure(*err) || (st.name() == "presence" && l.state == LinkState::Joining)) {
    const bool refused = st.name() == "presence" && l.state == LinkState::Joining && !link_failure(*err);
    lose(l, "error " + std::string(xmpp::to_string(err->condition)) + " from " + l.peer, now, out, refused);
    return;
  }
  // Refused on the way (the boundary's policy) or by the node: the author learns
  // that the federated half did not get it; the local half did.
  const bool internal = std::find(s_.internal_nodes.begin(), s_.internal_nodes.end(), l.peer) != s_.internal_nodes.end();
  // An IRC link's note, in closed words (a remote node's free text is never shown).
  const std::optional<IrcNote> note = read_irc_note(st);
  const Sent* s = sent_.find(st.attr_or("id"));
  if (st.name() == "message" && s == nullptr && note) {
    // Not our author's: an IRC link (ours, or one further on) refused or cut a
    // message that came from another node. Its author's room is told.
    if (forward_irc_note(l, st, *err, *note, internal, out)) return;
  }
  if (st.name() != "message" || s == nullptr) {
    ++counters_.refused_by_peer;
    return;
  }
  // A private message went to one link: no other link speaks for it.
  if (!s->only_peer.empty() && s->only_peer != l.peer) return;
  // A warning (type continue: it arrived, changed, e.g. cut at an IRC link's
  // line cap) is given by an IRC link only; any other is dropped.
  const bool warning = err->type == xmpp::StanzaErrorType::Continue;
  if (warning && !note) return;
  // Only a node of this process says why in its own words; a remote node's
  // IRC link is described from its note; other remote text is not shown.
  std::string why;
  if (internal) {
    if (const Element* e = st.find_child("error", st.ns())) {
      if (const Element* t = e->find_child("text", std::string(xmpp::kNsStanzas))) why = t->text();
    }
  } else if (note) {
    why = describe(*note);
  }
  // The IRC link a remote room spoke for.
  const std::string irc_link = !internal && note ? irc_link_named(l, st) : std::string();
  if (warning) {
    ++counters_.warned_by_peer;
  } else {
    ++counters_.refused_by_peer;
  }
  const std::string text = told_author(s->kind == SentKind::Private   ? "your private message"
                                       : s->kind == SentKind::Subject ? "your subject"
                                                                      : "your message",
                                       s->kind == SentKind::Private, l.peer, irc_link, warning);
  Element m(std::string(xmpp::kNsServer), "message");
  m.set_attr("from", jid_);
  m.set_attr("to", s->author_session);
  m.set_attr("type", "error");
  if (!s->client_id.empty()) m.set_attr("id", s->client_id);
  Element& er = m.add_child(std::string(xmpp::kNsServer), "error");
  er.set_attr("type", std::string(xmpp::to_string(err->type)));
  er.set_attr("by", jid_);
  er.add_child(std::string(xmpp::kNsStanzas), std::string(xmpp::to_string(err->condition)));
  er.add_child(std::string(xmpp::kNsStanzas), "text")
      .add_text(text + " (" + std::string(xmpp::to_string(err->condition)) + ")" +
                (why.empty() ? std::string() : ": " + why.substr(0, 300)));
  out.push_back({false, std::move(m)});
  event("relay " + st.attr_or("id") + (warning ? " warned of by " : " refused on the way to ") + l.peer + ": " +
        std::string(xmpp::to_string(err->condition)) + "; author told");
}

std::string Room::irc_link_named(const Link& l, const Element& st) {
  // The 'by' of the error, a JID; the boundary drops it (free text), and then
  // the room that sent the error stands for its own IRC link.
  const Element* e = st.find_child("error", st.ns());
  const std::string by = e != nullptr ? e->attr_or("by") : std::string();
  return !by.empty() && by.size() <= 300 && xmpp::parse_jid(by) ? by : l.peer;
}

bool Room::forward_irc_note(const Link& l, const Element& st, const xmpp::StanzaError& err, const IrcNote& note,
                            bool internal, Outputs& out) {
  // The message it answers, as this room took it from another node.
  const std::string id = st.attr_or("id");
  std::string origin_peer, origin_nick;
  for (auto it = history_.rbegin(); it != history_.rend() && origin_peer.empty(); ++it) {
    if (it->key.id == id && !it->peer.empty() && it->peer != l.peer) {
      origin_peer = it->peer;
      origin_nick = it->nick;
    }
  }
  if (origin_peer.empty()) {
    // A private message passed on: only the link it went to speaks for it.
    const OnwardPm* p = onward_pms_.find(id);
    if (p == nullptr || p->to_peer != l.peer) return false;
    origin_peer = p->from_peer;
    origin_nick = p->nick;
  }
  // Once per message: a claim repeated, or an error going round a cycle of
  // links (origin ids are the peers' to choose), ends here.
  if (!forwarded_.insert(id, true)) return true;
  auto origin = links_.find(origin_peer);
  if (origin == links_.end() || origin->second.state != LinkState::Up) return true;
  // The IRC link: ours by its JID, or the one a further room named.
  const std::string by = internal ? l.peer : irc_link_named(l, st);
  Element m(std::string(xmpp::kNsServer), "message");
  m.set_attr("from", jid_);
  m.set_attr("to", origin_peer + "/" + origin_nick);
  m.set_attr("type", "error");
  m.set_attr("id", id);
  Element& er = m.add_child(std::string(xmpp::kNsServer), "error");
  er.set_attr("type", std::string(xmpp::to_string(err.type)));
  er.set_attr("by", by);
  er.add_child(std::string(xmpp::kNsStanzas), std::string(xmpp::to_string(err.condition)));
  er.add_child(make_irc_note(note));
  send_to_peer(origin->second, std::move(m), out);
  event("relay " + id + ": the IRC link " + by + " " +
        (err.type == xmpp::StanzaErrorType::Continue ? "warned of it" : "refused it") + "; told to " + origin_peer);
  return true;
}

void Room::peer_iq(Link& l, const Element& st, std::int64_t now, Outputs& out) {
  const std::string type = st.attr_or("type");
  if (type == "result") {
    if (!l.ping_id.empty() && st.attr_or("id") == l.ping_id) l.ping_id.clear();
    return;
  }
  if (type == "error") {
    peer_error(l, st, now, out);
    if (st.attr_or("id") == l.ping_id) {
      l.ping_id.clear();
      if (l.state != LinkState::Down) lose(l, "ping refused by " + l.peer, now, out);
    }
    return;
  }
  const Element* q = nullptr;
  for (const auto& c : st.children()) {
    if (c.is_element()) {
      q = c.element.get();
      break;
    }
  }
  if (type == "get" && q != nullptr && q->ns() == kNsPing && q->name() == "ping") {
    if (l.state == LinkState::Down) {
      // It thinks it is federated and we do not: tell it to rejoin.
      error_to(st, StanzaErrorCondition::ItemNotFound, "not federated with you; join again", out, true);
      return;
    }
    Element r(st.ns(), "iq");
    r.set_attr("from", jid_);
    r.set_attr("to", st.attr_or("from"));
    r.set_attr("type", "result");
    r.set_attr("id", st.attr_or("id"));
    out.push_back({true, std::move(r)});
    return;
  }
  error_to(st, StanzaErrorCondition::ServiceUnavailable, "not served to federated rooms", out, true);
}

void Room::on_peer(const std::string& peer, const Element& st, std::int64_t now, Outputs& out) {
  auto it = links_.find(peer);
  if (it == links_.end()) return;
  Link& l = it->second;
  l.last_heard_ms = now;
  const std::string nick = resource_of(st.attr_or("from"));
  if (st.name() == "presence") {
    peer_presence(l, st, nick, now, out);
  } else if (st.name() == "message") {
    peer_message(l, st, nick, now, out);
  } else if (st.name() == "iq") {
    peer_iq(l, st, now, out);
  }
}

void Room::lose(Link& l, const std::string& why, std::int64_t now, Outputs& out, bool refused_join) {
  l.pending_rename.clear();
  if (l.state == LinkState::Down) return;
  ++counters_.links_lost;
  // A join refused again and again (the boundary's policy does not allow the
  // pair, the peer will not have us) is retried less and less often:
  // retry_ms doubling, up to 64x. A join that got no answer (a dead link) is
  // retried at the usual pace, so the halves find each other soon after.
  l.failed_joins = refused_join ? l.failed_joins + 1 : 0;
  l.state = LinkState::Down;
  l.queue.clear();
  l.ping_id.clear();
  if (l.lost_at_ms == 0) l.lost_at_ms = now;
  l.next_attempt_ms = now + (static_cast<std::int64_t>(t_.retry_ms) << std::min(l.failed_joins, 6u));
  remove_remote_occupants(l, "the link to the federated room was lost", 333, out);
  event("link to federated room " + l.peer + " lost: " + why +
        (l.failed_joins > 1 ? " (" + std::to_string(l.failed_joins) + " failed joins in a row; next try in " +
                                  std::to_string((l.next_attempt_ms - now) / 1000) + " s)"
                            : std::string()));
}

void Room::link_lost(const std::string& peer, const std::string& why, std::int64_t now, Outputs& out) {
  auto it = links_.find(peer);
  if (it != links_.end()) lose(it->second, why, now, out);
}

void Room::tick(std::int64_t now, Outputs& out) {
  for (auto& [peer, l] : links_) {
    if (!l.pending_rename.empty() && now > l.rename_deadline_ms) {
      // The nick a 303 announced never came: the departure was a plain one.
      event("federated room " + l.peer + " announced a nick change to a nick that did not follow");
      l.pending_rename.clear();
      if (l.state == LinkState::Up) left_if_no_occupant(l, out);
    }
    switch (l.state) {
      case LinkState::Joining:
        if (now - l.join_started_ms > t_.join_timeout_ms) lose(l, "no answer to our join", now, out);
        break;
      case LinkState::Up:
        if (l.upstream) {
          if (!l.ping_id.empty() && now - l.ping_sent_ms > t_.ping_timeout_ms) {
            lose(l, "no answer to ping", now, out);
          } else if (l.ping_id.empty() && now - l.ping_sent_ms >= t_.ping_interval_ms) {
            l.ping_id = next_id();
            l.ping_sent_ms = now;
            Element p(std::string(xmpp::kNsServer), "iq");
            p.set_attr("from", jid_);
            p.set_attr("to", l.peer);
            p.set_attr("type", "get");
            p.set_attr("id", l.ping_id);
            p.add_child(std::string(kNsPing), "ping");
            ++counters_.relayed_out;
            out.push_back({true, std::move(p)});
          }
        } else if (now - l.last_heard_ms > 3 * t_.ping_interval_ms) {
          lose(l, "nothing heard for " + std::to_string(3 * t_.ping_interval_ms / 1000) + " s", now, out);
        }
        break;
      case LinkState::Down:
        if (l.upstream && !l.rejected && occupants_wanting(l) != 0 && now >= l.next_attempt_ms) {
          l.next_attempt_ms = now + t_.retry_ms;
          start_join(l, now, out);
        }
        break;
    }
  }
}

void Room::shutdown(Outputs& out) {
  for (auto& [n, o] : occupants_) {
    if (!o.peer.empty()) continue;
    for (const auto& s : o.sessions) out.push_back({false, occupant_presence(o, false, s, true, Departure::with({332}))});
  }
}

}  // namespace portcullis::rooms
