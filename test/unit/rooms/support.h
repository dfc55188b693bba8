// Shared helpers of the rooms/ unit tests: stanza builders (parsed from XML
// text, as they would arrive), queries over a room's Outputs, and a small
// network that wires Room objects together (to_peer outputs delivered to the
// addressed room's on_peer, with a switch to drop traffic = link down).
#pragma once

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "guard/rooms/fmuc.h"
#include "guard/rooms/room.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_error.h"
#include "guard/xmpp/stream_parser.h"

namespace rooms_test {

using portcullis::rooms::Output;
using portcullis::rooms::Outputs;
using portcullis::rooms::Room;
using portcullis::rooms::RoomSettings;
using portcullis::rooms::Timing;
using portcullis::xmpp::Element;

// A realistic "now" (2023-11-14), so stamps are ordinary dates.
inline constexpr std::int64_t kT0 = 1'700'000'000'000;

inline Element parse(const std::string& xml) {
  std::string error;
  auto e = portcullis::xmpp::parse_element(xml, {}, &error);
  INFO("parsing " << xml << ": " << error);
  REQUIRE(e);
  return std::move(*e);
}

inline std::string bare(const std::string& jid) {
  auto j = portcullis::xmpp::parse_jid(jid);
  return j ? j->bare() : jid;
}

// ---- stanzas a user's server sends -----------------------------------------

inline Element join(const std::string& from, const std::string& occupant, const std::string& muc_inner = "",
                    const std::string& id = "join1") {
  return parse("<presence xmlns='jabber:server' from='" + from + "' to='" + occupant + "' id='" + id +
               "'><x xmlns='http://jabber.org/protocol/muc'>" + muc_inner + "</x></presence>");
}

inline Element leave(const std::string& from, const std::string& occupant) {
  return parse("<presence xmlns='jabber:server' type='unavailable' from='" + from + "' to='" + occupant + "'/>");
}

inline Element say(const std::string& from, const std::string& room, const std::string& body,
                   const std::string& id = "", const std::string& extra = "") {
  return parse("<message xmlns='jabber:server' type='groupchat' from='" + from + "' to='" + room + "'" +
               (id.empty() ? std::string{} : " id='" + id + "'") + "><body>" + body + "</body>" + extra +
               "</message>");
}

inline Element set_subject(const std::string& from, const std::string& room, const std::string& subject) {
  return parse("<message xmlns='jabber:server' type='groupchat' from='" + from + "' to='" + room +
               "' id='s1'><subject>" + subject + "</subject></message>");
}

inline Element pm(const std::string& from, const std::string& occupant, const std::string& body,
                  const std::string& type = "chat", const std::string& id = "pm1") {
  return parse("<message xmlns='jabber:server' type='" + type + "' from='" + from + "' to='" + occupant + "' id='" +
               id + "'><body>" + body + "</body></message>");
}

inline Element iq_get(const std::string& from, const std::string& to, const std::string& child,
                      const std::string& id = "iq1") {
  return parse("<iq xmlns='jabber:server' type='get' from='" + from + "' to='" + to + "' id='" + id + "'>" + child +
               "</iq>");
}

// ---- queries over outputs ----------------------------------------------------

inline std::vector<const Element*> sent_to(const Outputs& out, const std::string& to, const std::string& name = "") {
  std::vector<const Element*> v;
  for (const auto& o : out) {
    if (o.stanza.attr_or("to") != to) continue;
    if (!name.empty() && o.stanza.name() != name) continue;
    v.push_back(&o.stanza);
  }
  return v;
}

inline std::size_t count_to_peer(const Outputs& out) {
  std::size_t n = 0;
  for (const auto& o : out) n += o.to_peer ? 1 : 0;
  return n;
}

inline std::string body_of(const Element& m) {
  const Element* b = m.find_child("body", m.ns());
  return b ? b->text() : std::string{};
}

// Groupchat messages with a body (not the subject) sent to `to`.
inline std::vector<const Element*> chat_to(const Outputs& out, const std::string& to) {
  std::vector<const Element*> v;
  for (const Element* m : sent_to(out, to, "message")) {
    if (m->attr_or("type") == "groupchat" && m->find_child("body", m->ns()) != nullptr) v.push_back(m);
  }
  return v;
}

inline std::vector<std::string> bodies_to(const Outputs& out, const std::string& to) {
  std::vector<std::string> v;
  for (const Element* m : chat_to(out, to)) v.push_back(body_of(*m));
  return v;
}

inline std::size_t count_body(const Outputs& out, const std::string& to, const std::string& body) {
  std::size_t n = 0;
  for (const Element* m : chat_to(out, to)) n += body_of(*m) == body ? 1 : 0;
  return n;
}

inline bool is_subject(const Element& m) {
  return m.name() == "message" && m.find_child("subject", m.ns()) != nullptr && m.find_child("body", m.ns()) == nullptr;
}

inline const Element* muc_user_x(const Element& st) { return st.find_child("x", portcullis::rooms::kNsMucUser); }

inline const Element* muc_item(const Element& st) {
  const Element* x = muc_user_x(st);
  return x ? x->find_child("item", portcullis::rooms::kNsMucUser) : nullptr;
}

inline bool has_status(const Element& st, int code) {
  const Element* x = muc_user_x(st);
  if (x == nullptr) return false;
  for (const auto& c : x->children()) {
    if (c.is_element() && c.element->name() == "status" && c.element->attr_or("code") == std::to_string(code)) {
      return true;
    }
  }
  return false;
}

inline std::size_t count_children(const Element& st, const std::string& name, std::string_view ns) {
  std::size_t n = 0;
  for (const auto& c : st.children()) n += (c.is_element() && c.element->name() == name && c.element->ns() == ns);
  return n;
}

// The defined condition of an error stanza ("" if none can be read).
inline std::string error_condition(const Element& st) {
  auto e = portcullis::xmpp::read_stanza_error(st);
  return e ? std::string(portcullis::xmpp::to_string(e->condition)) : std::string{};
}

// The error's type attribute and its <text/> ("" if none).
inline std::string error_type(const Element& st) {
  const Element* e = st.find_child("error", st.ns());
  return e ? e->attr_or("type") : std::string{};
}
inline std::string error_text(const Element& st) {
  const Element* e = st.find_child("error", st.ns());
  const Element* t = e ? e->find_child("text", portcullis::xmpp::kNsStanzas) : nullptr;
  return t ? t->text() : std::string{};
}

inline bool is_available(const Element& p) { return p.name() == "presence" && p.attr_or("type").empty(); }
inline bool is_unavailable(const Element& p) { return p.name() == "presence" && p.attr_or("type") == "unavailable"; }

// Presences to `to` announcing occupant `occupant_jid` (room/nick) as available / gone.
inline std::size_t count_presence(const Outputs& out, const std::string& to, const std::string& occupant_jid,
                                  bool available) {
  std::size_t n = 0;
  for (const Element* p : sent_to(out, to, "presence")) {
    if (p->attr_or("from") != occupant_jid) continue;
    n += available ? is_available(*p) : is_unavailable(*p);
  }
  return n;
}

inline Timing fast_timing() {
  Timing t;
  t.ping_interval_ms = 1000;
  t.ping_timeout_ms = 500;
  t.join_timeout_ms = 2000;
  t.retry_ms = 1000;
  return t;
}

inline RoomSettings room_settings(const std::string& name, const std::string& federate_with = "",
                                  std::vector<std::string> accept_from = {}) {
  RoomSettings s;
  s.name = name;
  s.subject = "Welcome to " + name;
  s.federate_with = federate_with;
  s.accept_from = std::move(accept_from);
  return s;
}

// ---- a network of rooms --------------------------------------------------------

struct Wire {
  std::string from_room;   // the room that emitted it
  Element stanza;
  bool dropped = false;
};

class Net {
 public:
  std::int64_t now = kT0;
  bool drop = false;   // link down: every to_peer output is lost
  // Sees every to_peer stanza before delivery; returning true consumes it.
  std::function<bool(const std::string& from_room, const Element&)> intercept;
  std::vector<Room*> rooms;
  Outputs users;            // everything ever sent to users of any side
  std::vector<Wire> wire;   // everything ever sent between rooms

  explicit Net(std::vector<Room*> r) : rooms(std::move(r)) {}

  Room* find(const std::string& jid) {
    for (Room* r : rooms)
      if (r->jid() == jid) return r;
    return nullptr;
  }

  // Delivers `out` (emitted by room `from`), and what it causes, until quiet.
  // Returns the stanzas for users produced on the way (all rooms).
  Outputs pump(const std::string& from, Outputs out) {
    Outputs local;
    std::deque<std::pair<std::string, Output>> q;
    for (auto& o : out) q.emplace_back(from, std::move(o));
    std::size_t guard = 0;
    while (!q.empty()) {
      REQUIRE(++guard < 100000);   // a relay loop would never end
      auto [src, o] = std::move(q.front());
      q.pop_front();
      if (!o.to_peer) {
        users.push_back(o);
        local.push_back(std::move(o));
        continue;
      }
      wire.push_back({src, o.stanza, drop});
      if (drop) continue;
      if (intercept && intercept(src, o.stanza)) continue;
      Room* target = find(bare(o.stanza.attr_or("to")));
      if (target == nullptr) continue;
      Outputs next;
      target->on_peer(src, o.stanza, now, next);
      for (auto& n : next) q.emplace_back(target->jid(), std::move(n));
    }
    return local;
  }

  Outputs user(Room& r, const Element& st) {
    Outputs out;
    r.on_local(st, now, out);
    return pump(r.jid(), std::move(out));
  }

  // A stanza arriving at `r` from federated room `peer`.
  Outputs peer(Room& r, const std::string& peer_jid, const Element& st) {
    Outputs out;
    r.on_peer(peer_jid, st, now, out);
    return pump(r.jid(), std::move(out));
  }

  Outputs tick() {
    Outputs local;
    for (Room* r : rooms) {
      Outputs out;
      r->tick(now, out);
      for (auto& o : pump(r->jid(), std::move(out))) local.push_back(std::move(o));
    }
    return local;
  }

  // Advances time by `ms` in steps of `step`, ticking every room each step.
  Outputs advance(std::int64_t ms, std::int64_t step = 100) {
    Outputs local;
    for (std::int64_t t = 0; t < ms; t += step) {
      now += step;
      for (auto& o : tick()) local.push_back(std::move(o));
    }
    return local;
  }

  // Both ends of the link between `a` and `b` are told it is gone.
  Outputs cut(Room& a, Room& b, const std::string& why = "test: link down") {
    Outputs local;
    Outputs o1, o2;
    a.link_lost(b.jid(), why, now, o1);
    for (auto& o : pump(a.jid(), std::move(o1))) local.push_back(std::move(o));
    b.link_lost(a.jid(), why, now, o2);
    for (auto& o : pump(b.jid(), std::move(o2))) local.push_back(std::move(o));
    return local;
  }

  std::size_t wire_since(std::size_t mark) const { return wire.size() - mark; }
};

}  // namespace rooms_test
