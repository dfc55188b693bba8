// XEP-0045 core of one Room (no federation), and the RoomService routing.
// Each test drives the room with stanzas as a user's server would send them
// and asserts what the users receive (protocols.md §4).
#include <algorithm>

#include "guard/config/config.h"
#include "guard/rooms/room_service.h"
#include "support.h"

using namespace rooms_test;
namespace rooms = portcullis::rooms;
namespace config = portcullis::config;

namespace {

const std::string kRoom = "lobby@rooms.low";
const std::string kAlice = "alice@low.test/phone";
const std::string kAlice2 = "alice@low.test/laptop";
const std::string kBob = "bob@low.test/desk";
const std::string kCarol = "carol@low.test/home";

std::string occ(const std::string& nick) { return kRoom + "/" + nick; }

struct Lobby {
  Room room;
  std::int64_t now = kT0;
  explicit Lobby(RoomSettings s = room_settings("lobby")) : room(std::move(s), "rooms.low", "test-key") {}
  Outputs in(const Element& st) {
    Outputs out;
    room.on_local(st, now, out);
    for (const auto& o : out) CHECK_FALSE(o.to_peer);   // no federation configured
    return out;
  }
};

// Index of the first output to `to` matching `pred` (npos if none).
template <class P>
std::size_t index_of(const Outputs& out, const std::string& to, P pred) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i].stanza.attr_or("to") == to && pred(out[i].stanza)) return i;
  }
  return std::string::npos;
}

std::string occupant_id_of(const Element& st) {
  const Element* o = st.find_child("occupant-id", rooms::kNsOccupantId);
  return o ? o->attr_or("id") : std::string{};
}

}  // namespace

TEST_CASE("join: occupants first, then self-presence (110) last, then history, then subject", "[muc][join]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.now += 1000;
  l.in(say(kAlice, kRoom, "one"));
  l.now += 1000;
  l.in(say(kAlice, kRoom, "two"));
  l.now += 1000;

  Outputs out = l.in(join(kBob, occ("bob")));
  // Only these kinds, only to the two users.
  std::vector<std::string> kinds;
  for (const auto& o : out) {
    if (o.stanza.attr_or("to") != kBob) continue;
    if (o.stanza.name() == "presence") kinds.push_back("presence:" + o.stanza.attr_or("from"));
    else if (is_subject(o.stanza)) kinds.push_back("subject");
    else kinds.push_back("history:" + body_of(o.stanza));
  }
  const std::vector<std::string> expected = {"presence:" + occ("alice"), "presence:" + occ("bob"), "history:one",
                                             "history:two", "subject"};
  CHECK(kinds == expected);

  auto to_bob = sent_to(out, kBob, "presence");
  REQUIRE(to_bob.size() == 2);
  CHECK_FALSE(has_status(*to_bob[0], 110));   // alice's presence
  CHECK(has_status(*to_bob[1], 110));          // self-presence, last of the presences
  REQUIRE(muc_item(*to_bob[1]));
  CHECK(muc_item(*to_bob[1])->attr_or("role") == "participant");
  CHECK(muc_item(*to_bob[1])->attr_or("affiliation") == "none");

  // History is delayed, from the original occupant JID.
  for (const Element* m : chat_to(out, kBob)) {
    CHECK(m->attr_or("from") == occ("alice"));
    const Element* d = m->find_child("delay", rooms::kNsDelay);
    REQUIRE(d);
    CHECK(d->attr_or("from") == kRoom);
    CHECK(rooms::parse_stamp(d->attr_or("stamp")));
  }
  // The subject is the room's initial subject, from the room itself.
  auto subj = std::find_if(out.begin(), out.end(), [](const Output& o) {
    return o.stanza.attr_or("to") == kBob && is_subject(o.stanza);
  });
  REQUIRE(subj != out.end());
  CHECK(subj->stanza.find_child("subject", subj->stanza.ns())->text() == "Welcome to lobby");
  CHECK(subj->stanza.attr_or("from") == kRoom);
}

TEST_CASE("a second user's join is announced to the first", "[muc][join]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  Outputs out = l.in(join(kBob, occ("bob")));
  CHECK(count_presence(out, kAlice, occ("bob"), true) == 1);
  for (const Element* p : sent_to(out, kAlice, "presence")) CHECK_FALSE(has_status(*p, 110));
  // Alice gets no history or subject again.
  CHECK(sent_to(out, kAlice, "message").empty());
  CHECK(l.room.local_occupants() == 2);
}

TEST_CASE("a nick in use by another bare JID is refused with conflict (409)", "[muc][join]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  Outputs out = l.in(join(kBob, occ("alice")));
  auto err = sent_to(out, kBob, "presence");
  REQUIRE(err.size() == 1);
  CHECK(err[0]->attr_or("type") == "error");
  CHECK(err[0]->attr_or("from") == occ("alice"));
  CHECK(error_condition(*err[0]) == "conflict");
  // Alice is told nothing; bob is not an occupant.
  CHECK(sent_to(out, kAlice).empty());
  CHECK(l.room.local_occupants() == 1);
  Outputs said = l.in(say(kBob, kRoom, "sneaky", "x1"));
  CHECK(sent_to(said, kAlice).empty());
}

TEST_CASE("the same bare JID may join the same nick from a second resource (multi-session)", "[muc][join]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.in(join(kBob, occ("bob")));
  Outputs out = l.in(join(kAlice2, occ("alice")));
  auto self = sent_to(out, kAlice2, "presence");
  REQUIRE_FALSE(self.empty());
  CHECK(is_available(*self.back()));
  CHECK(self.back()->attr_or("from") == occ("alice"));
  CHECK(has_status(*self.back(), 110));
  CHECK(l.room.local_occupants() == 2);

  // Room traffic goes to both sessions.
  Outputs said = l.in(say(kBob, kRoom, "hello both", "b1"));
  CHECK(count_body(said, kAlice, "hello both") == 1);
  CHECK(count_body(said, kAlice2, "hello both") == 1);
  CHECK(count_body(said, kBob, "hello both") == 1);
}

TEST_CASE("a join without a nickname is refused with jid-malformed", "[muc][join]") {
  Lobby l;
  Outputs out = l.in(join(kAlice, kRoom));
  auto err = sent_to(out, kAlice, "presence");
  REQUIRE(err.size() == 1);
  CHECK(err[0]->attr_or("type") == "error");
  CHECK(error_condition(*err[0]) == "jid-malformed");
  CHECK(l.room.local_occupants() == 0);
}

TEST_CASE("a members-only room refuses a non-member with registration-required", "[muc][join]") {
  RoomSettings s = room_settings("lobby");
  s.members_only = true;
  s.members = {"alice@low.test"};
  Lobby l(s);
  Outputs in = l.in(join(kAlice, occ("alice")));
  CHECK(has_status(*sent_to(in, kAlice, "presence").back(), 110));
  CHECK(muc_item(*sent_to(in, kAlice, "presence").back())->attr_or("affiliation") == "member");

  Outputs out = l.in(join(kBob, occ("bob")));
  auto err = sent_to(out, kBob, "presence");
  REQUIRE(err.size() == 1);
  CHECK(err[0]->attr_or("type") == "error");
  CHECK(error_condition(*err[0]) == "registration-required");
  CHECK(sent_to(out, kAlice).empty());
  CHECK(l.room.local_occupants() == 1);
}

TEST_CASE("groupchat is reflected to every occupant, sender included, with stanza-id and occupant-id",
          "[muc][message]") {
  Lobby l;
  Outputs a = l.in(join(kAlice, occ("alice")));
  l.in(join(kBob, occ("bob")));
  Outputs to_carol = l.in(join(kCarol, occ("carol")));
  const Element* alice_pres = nullptr;
  for (const Element* p : sent_to(to_carol, kCarol, "presence"))
    if (p->attr_or("from") == occ("alice")) alice_pres = p;
  REQUIRE(alice_pres);

  Outputs out = l.in(say(kAlice, kRoom, "hello room", "client-id-7"));
  std::string sid;
  for (const std::string& u : {kAlice, kBob, kCarol}) {
    INFO(u);
    auto ms = chat_to(out, u);
    REQUIRE(ms.size() == 1);
    const Element& m = *ms[0];
    CHECK(m.attr_or("from") == occ("alice"));
    CHECK(m.attr_or("type") == "groupchat");
    CHECK(m.attr_or("id") == "client-id-7");   // muc#stable_id: the client's id is kept
    CHECK(body_of(m) == "hello room");
    const Element* s = m.find_child("stanza-id", rooms::kNsSid);
    REQUIRE(s);
    CHECK(s->attr_or("by") == kRoom);
    CHECK_FALSE(s->attr_or("id").empty());
    if (sid.empty()) sid = s->attr_or("id");
    CHECK(s->attr_or("id") == sid);   // one message, one stanza-id
    CHECK(occupant_id_of(m) == occupant_id_of(*alice_pres));
    CHECK_FALSE(occupant_id_of(m).empty());
    CHECK(m.find_child("delay", rooms::kNsDelay) == nullptr);   // live, not history
    CHECK_FALSE(rooms::has_fmuc(m));
  }
  CHECK(l.room.history_size() == 1);

  // A second message gets another stanza-id.
  Outputs out2 = l.in(say(kAlice, kRoom, "again", "client-id-8"));
  REQUIRE(chat_to(out2, kBob).size() == 1);
  CHECK(chat_to(out2, kBob)[0]->find_child("stanza-id", rooms::kNsSid)->attr_or("id") != sid);
}

TEST_CASE("groupchat from a non-occupant is refused with not-acceptable", "[muc][message]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  Outputs out = l.in(say(kBob, kRoom, "let me in", "m1"));
  auto err = sent_to(out, kBob, "message");
  REQUIRE(err.size() == 1);
  CHECK(err[0]->attr_or("type") == "error");
  CHECK(err[0]->attr_or("id") == "m1");
  CHECK(error_condition(*err[0]) == "not-acceptable");
  CHECK(sent_to(out, kAlice).empty());
  CHECK(l.room.history_size() == 0);
}

TEST_CASE("history on join honours maxstanzas, maxchars='0', seconds and since", "[muc][history]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.now = kT0;
  l.in(say(kAlice, kRoom, "m0"));
  l.now = kT0 + 10000;
  l.in(say(kAlice, kRoom, "m1"));
  l.now = kT0 + 20000;
  l.in(say(kAlice, kRoom, "m2"));
  l.now = kT0 + 30000;

  auto history_for = [&](const std::string& user, const std::string& muc_inner) {
    Outputs out = l.in(join(user, occ(user.substr(0, user.find('@'))), muc_inner));
    return bodies_to(out, user);
  };
  using V = std::vector<std::string>;
  SECTION("no limit: everything kept") { CHECK(history_for(kBob, "") == V{"m0", "m1", "m2"}); }
  SECTION("maxstanzas: the newest N, oldest first") {
    CHECK(history_for(kBob, "<history maxstanzas='2'/>") == V{"m1", "m2"});
  }
  SECTION("maxstanzas='0': none") { CHECK(history_for(kBob, "<history maxstanzas='0'/>").empty()); }
  SECTION("maxchars='0': none") { CHECK(history_for(kBob, "<history maxchars='0'/>").empty()); }
  SECTION("seconds") { CHECK(history_for(kBob, "<history seconds='15'/>") == V{"m2"}); }
  SECTION("since") {
    CHECK(history_for(kBob, "<history since='" + rooms::format_stamp(kT0 + 5000) + "'/>") == V{"m1", "m2"});
    CHECK(history_for(kCarol, "<history since='" + rooms::format_stamp(kT0 + 10000) + "'/>") == V{"m1", "m2"});
  }
  SECTION("the smallest set meeting every limit") {
    CHECK(history_for(kBob, "<history maxstanzas='1' since='" + rooms::format_stamp(kT0) + "'/>") == V{"m2"});
  }
  SECTION("history stamps are the times the messages were said") {
    Outputs out = l.in(join(kBob, occ("bob")));
    auto ms = chat_to(out, kBob);
    REQUIRE(ms.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const Element* d = ms[i]->find_child("delay", rooms::kNsDelay);
      REQUIRE(d);
      CHECK(rooms::parse_stamp(d->attr_or("stamp")) == kT0 + static_cast<std::int64_t>(i) * 10000);
    }
  }
}

TEST_CASE("a subject change is reflected to all and sent on later joins", "[muc][subject]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.in(join(kBob, occ("bob")));
  Outputs out = l.in(set_subject(kAlice, kRoom, "Release planning"));
  for (const std::string& u : {kAlice, kBob}) {
    INFO(u);
    auto ms = sent_to(out, u, "message");
    REQUIRE(ms.size() == 1);
    CHECK(is_subject(*ms[0]));
    CHECK(ms[0]->find_child("subject", ms[0]->ns())->text() == "Release planning");
    CHECK(ms[0]->attr_or("from") == occ("alice"));
  }
  CHECK(l.room.subject() == "Release planning");
  CHECK(l.room.history_size() == 0);   // the subject is not history

  Outputs later = l.in(join(kCarol, occ("carol")));
  auto ms = sent_to(later, kCarol, "message");
  REQUIRE_FALSE(ms.empty());
  CHECK(is_subject(*ms.back()));
  CHECK(ms.back()->find_child("subject", ms.back()->ns())->text() == "Release planning");
}

TEST_CASE("private messages between occupants", "[muc][pm]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.in(join(kAlice2, occ("alice")));
  l.in(join(kBob, occ("bob")));

  SECTION("delivered to every session of the recipient, from room/sendernick, with muc#user x") {
    Outputs out = l.in(pm(kBob, occ("alice"), "psst"));
    for (const std::string& s : {kAlice, kAlice2}) {
      INFO(s);
      auto ms = sent_to(out, s, "message");
      REQUIRE(ms.size() == 1);
      CHECK(ms[0]->attr_or("from") == occ("bob"));
      CHECK(ms[0]->attr_or("type") == "chat");
      CHECK(body_of(*ms[0]) == "psst");
      CHECK(muc_user_x(*ms[0]) != nullptr);
    }
    CHECK(sent_to(out, kBob).empty());
    CHECK(l.room.history_size() == 0);
  }
  SECTION("type groupchat to an occupant is a bad-request") {
    Outputs out = l.in(pm(kBob, occ("alice"), "psst", "groupchat"));
    auto err = sent_to(out, kBob, "message");
    REQUIRE(err.size() == 1);
    CHECK(error_condition(*err[0]) == "bad-request");
    CHECK(sent_to(out, kAlice).empty());
  }
  SECTION("to an unknown nick: item-not-found") {
    Outputs out = l.in(pm(kBob, occ("nobody"), "hello?"));
    auto err = sent_to(out, kBob, "message");
    REQUIRE(err.size() == 1);
    CHECK(err[0]->attr_or("type") == "error");
    CHECK(error_condition(*err[0]) == "item-not-found");
  }
  SECTION("from a non-occupant: not-acceptable") {
    Outputs out = l.in(pm(kCarol, occ("alice"), "hi"));
    auto err = sent_to(out, kCarol, "message");
    REQUIRE(err.size() == 1);
    CHECK(error_condition(*err[0]) == "not-acceptable");
    CHECK(sent_to(out, kAlice).empty());
  }
}

TEST_CASE("a nick change: unavailable with 303 and the new nick, then available", "[muc][nick]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.in(join(kBob, occ("bob")));
  Outputs out = l.in(parse("<presence xmlns='jabber:server' from='" + kBob + "' to='" + occ("robert") + "'/>"));
  for (const std::string& u : {kAlice, kBob}) {
    INFO(u);
    auto ps = sent_to(out, u, "presence");
    REQUIRE(ps.size() == 2);
    CHECK(is_unavailable(*ps[0]));
    CHECK(ps[0]->attr_or("from") == occ("bob"));
    CHECK(has_status(*ps[0], 303));
    REQUIRE(muc_item(*ps[0]));
    CHECK(muc_item(*ps[0])->attr_or("nick") == "robert");
    CHECK(is_available(*ps[1]));
    CHECK(ps[1]->attr_or("from") == occ("robert"));
    CHECK(has_status(*ps[0], 110) == (u == kBob));
    CHECK(has_status(*ps[1], 110) == (u == kBob));
  }
  Outputs said = l.in(say(kBob, kRoom, "I am robert now"));
  REQUIRE(chat_to(said, kAlice).size() == 1);
  CHECK(chat_to(said, kAlice)[0]->attr_or("from") == occ("robert"));

  SECTION("to a nick in use: conflict") {
    Outputs c = l.in(parse("<presence xmlns='jabber:server' from='" + kBob + "' to='" + occ("alice") + "'/>"));
    auto err = sent_to(c, kBob, "presence");
    REQUIRE(err.size() == 1);
    CHECK(error_condition(*err[0]) == "conflict");
    CHECK(sent_to(c, kAlice).empty());
  }
}

TEST_CASE("leaving: unavailable to all, with 110 for the leaver", "[muc][leave]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.in(join(kBob, occ("bob")));
  Outputs out = l.in(leave(kBob, occ("bob")));
  auto to_alice = sent_to(out, kAlice, "presence");
  REQUIRE(to_alice.size() == 1);
  CHECK(is_unavailable(*to_alice[0]));
  CHECK(to_alice[0]->attr_or("from") == occ("bob"));
  CHECK_FALSE(has_status(*to_alice[0], 110));
  REQUIRE(muc_item(*to_alice[0]));
  CHECK(muc_item(*to_alice[0])->attr_or("role") == "none");
  auto to_bob = sent_to(out, kBob, "presence");
  REQUIRE(to_bob.size() == 1);
  CHECK(is_unavailable(*to_bob[0]));
  CHECK(has_status(*to_bob[0], 110));
  CHECK(l.room.local_occupants() == 1);

  // Bob is no longer in: no traffic for him, and he cannot speak.
  Outputs said = l.in(say(kAlice, kRoom, "bye bob"));
  CHECK(sent_to(said, kBob).empty());
  Outputs late = l.in(say(kBob, kRoom, "wait"));
  REQUIRE(sent_to(late, kBob, "message").size() == 1);
  CHECK(error_condition(*sent_to(late, kBob, "message")[0]) == "not-acceptable");
  // Unavailable from a non-occupant is ignored.
  CHECK(l.in(leave(kCarol, occ("carol"))).empty());
}

TEST_CASE("disco#info of the room lists the MUC features", "[muc][disco]") {
  Lobby l;
  Outputs out = l.in(iq_get(kAlice, kRoom, "<query xmlns='http://jabber.org/protocol/disco#info'/>"));
  auto r = sent_to(out, kAlice, "iq");
  REQUIRE(r.size() == 1);
  CHECK(r[0]->attr_or("type") == "result");
  CHECK(r[0]->attr_or("id") == "iq1");
  CHECK(r[0]->attr_or("from") == kRoom);
  const Element* q = r[0]->find_child("query", rooms::kNsDiscoInfo);
  REQUIRE(q);
  const Element* id = q->find_child("identity", rooms::kNsDiscoInfo);
  REQUIRE(id);
  CHECK(id->attr_or("category") == "conference");
  CHECK(id->attr_or("type") == "text");
  std::vector<std::string> features;
  for (const Element* f : q->child_elements())
    if (f->name() == "feature") features.push_back(f->attr_or("var"));
  auto has = [&](const std::string& f) { return std::find(features.begin(), features.end(), f) != features.end(); };
  CHECK(has("http://jabber.org/protocol/muc"));
  CHECK(has("muc_open"));
  CHECK_FALSE(has("muc_membersonly"));
  CHECK(has("urn:xmpp:occupant-id:0"));
  CHECK(has("urn:xmpp:sid:0"));
}

TEST_CASE("XEP-0410 self-ping: result for one's own occupant JID, not-acceptable otherwise", "[muc][ping]") {
  Lobby l;
  l.in(join(kAlice, occ("alice")));
  l.in(join(kBob, occ("bob")));
  const std::string ping = "<ping xmlns='urn:xmpp:ping'/>";

  Outputs ok = l.in(iq_get(kAlice, occ("alice"), ping, "p1"));
  auto r = sent_to(ok, kAlice, "iq");
  REQUIRE(r.size() == 1);
  CHECK(r[0]->attr_or("type") == "result");
  CHECK(r[0]->attr_or("id") == "p1");
  CHECK(r[0]->attr_or("from") == occ("alice"));
  CHECK(sent_to(ok, kBob).empty());   // not forwarded to the occupant

  Outputs other = l.in(iq_get(kAlice, occ("bob"), ping, "p2"));
  auto e = sent_to(other, kAlice, "iq");
  REQUIRE(e.size() == 1);
  CHECK(e[0]->attr_or("type") == "error");
  CHECK(error_condition(*e[0]) == "not-acceptable");
  CHECK(sent_to(other, kBob).empty());

  Outputs gone = l.in(iq_get(kCarol, occ("carol"), ping, "p3"));
  REQUIRE(sent_to(gone, kCarol, "iq").size() == 1);
  CHECK(error_condition(*sent_to(gone, kCarol, "iq")[0]) == "not-acceptable");
}

// ---- RoomService ---------------------------------------------------------------

namespace {

config::RoomSpec room_spec(const std::string& name, const std::string& federate_with = "",
                           std::vector<std::string> accept_from = {}) {
  config::RoomSpec r;
  r.name = name;
  r.title = name + " room";
  r.subject = "Welcome to " + name;
  r.federate_with = federate_with;
  r.accept_from = std::move(accept_from);
  return r;
}

config::RoomServiceSpec service_spec(const std::string& domain, std::vector<config::RoomSpec> rooms) {
  config::RoomServiceSpec s;
  s.domain = domain;
  s.rooms = std::move(rooms);
  return s;
}

}  // namespace

TEST_CASE("RoomService: an unknown room is item-not-found, disco#items lists the rooms", "[muc][service]") {
  rooms::RoomService svc(service_spec("rooms.low", {room_spec("lobby"), room_spec("ops")}), "test-key");
  Outputs out;
  svc.on_local(join(kAlice, "nowhere@rooms.low/alice"), kT0, out);
  auto err = sent_to(out, kAlice, "presence");
  REQUIRE(err.size() == 1);
  CHECK(err[0]->attr_or("type") == "error");
  CHECK(error_condition(*err[0]) == "item-not-found");

  out.clear();
  svc.on_local(say(kAlice, "nowhere@rooms.low", "hello?", "m1"), kT0, out);
  REQUIRE(sent_to(out, kAlice, "message").size() == 1);
  CHECK(error_condition(*sent_to(out, kAlice, "message")[0]) == "item-not-found");

  out.clear();
  svc.on_local(iq_get(kAlice, "rooms.low", "<query xmlns='http://jabber.org/protocol/disco#items'/>", "d1"), kT0, out);
  auto r = sent_to(out, kAlice, "iq");
  REQUIRE(r.size() == 1);
  CHECK(r[0]->attr_or("type") == "result");
  CHECK(r[0]->attr_or("id") == "d1");
  const Element* q = r[0]->find_child("query", rooms::kNsDiscoItems);
  REQUIRE(q);
  std::vector<std::string> jids;
  for (const Element* it : q->child_elements()) jids.push_back(it->attr_or("jid"));
  std::sort(jids.begin(), jids.end());
  CHECK(jids == std::vector<std::string>{"lobby@rooms.low", "ops@rooms.low"});

  // A known room is routed to.
  out.clear();
  svc.on_local(join(kAlice, "lobby@rooms.low/alice"), kT0, out);
  REQUIRE_FALSE(sent_to(out, kAlice, "presence").empty());
  CHECK(has_status(*sent_to(out, kAlice, "presence").back(), 110));
  REQUIRE(svc.room("lobby"));
  CHECK(svc.room("lobby")->local_occupants() == 1);
}

TEST_CASE("RoomService: <fmuc/> sent by a user is stripped (a user is not a node)", "[muc][service][fmuc]") {
  // Two services federated: ops@rooms.low joins ops@rooms.high.
  rooms::RoomService low(service_spec("rooms.low", {room_spec("ops", "ops@rooms.high")}), "key-low");
  rooms::RoomService high(service_spec("rooms.high", {room_spec("ops", "", {"ops@rooms.low"})}), "key-high");
  const std::string kHigh = "hank@high.test/r";
  Outputs users;
  auto pump = [&](rooms::RoomService& from, Outputs out) {
    std::deque<std::pair<rooms::RoomService*, Output>> q;
    for (auto& o : out) q.emplace_back(&from, std::move(o));
    while (!q.empty()) {
      auto [src, o] = std::move(q.front());
      q.pop_front();
      if (!o.to_peer) {
        users.push_back(std::move(o));
        continue;
      }
      rooms::RoomService* dst = src == &low ? &high : &low;
      Outputs next;
      dst->on_federated(o.stanza, kT0, next);
      for (auto& n : next) q.emplace_back(dst, std::move(n));
    }
  };
  const std::string evil = "<fmuc xmlns='http://isode.com/protocol/fmuc' from='mallory@evil.test/x'/>";
  {
    Outputs o;
    high.on_local(join(kHigh, "ops@rooms.high/hank"), kT0, o);
    pump(high, std::move(o));
  }
  // A join carrying a forged fmuc: the room's relay names the real user.
  std::size_t mark = users.size();
  {
    Outputs o;
    low.on_local(parse("<presence xmlns='jabber:server' from='" + kAlice + "' to='ops@rooms.low/alice'>"
                       "<x xmlns='http://jabber.org/protocol/muc'/>" + evil + "</presence>"),
                 kT0, o);
    // The federation join the room makes names alice, not mallory.
    bool join_sent = false;
    for (const auto& x : o) {
      if (!x.to_peer) continue;
      join_sent = true;
      CHECK(rooms::read_fmuc(x.stanza).from == kAlice);
    }
    CHECK(join_sent);
    pump(low, std::move(o));
  }
  REQUIRE(high.room("ops"));
  CHECK(high.room("ops")->remote_occupants() == 1);
  Outputs since(users.begin() + static_cast<long>(mark), users.end());
  CHECK(count_presence(since, kHigh, "ops@rooms.high/alice", true) == 1);
  for (const auto& x : since) CHECK_FALSE(rooms::has_fmuc(x.stanza));

  // A groupchat carrying a forged fmuc.
  mark = users.size();
  Outputs relayed;
  {
    Outputs o;
    low.on_local(say(kAlice, "ops@rooms.low", "hi from alice", "c1", evil), kT0 + 10, o);
    for (const auto& x : o) {
      if (x.to_peer) relayed.push_back(x);
      else CHECK_FALSE(rooms::has_fmuc(x.stanza));   // local reflection: no fmuc
    }
    pump(low, std::move(o));
  }
  REQUIRE(relayed.size() == 1);
  CHECK(rooms::read_fmuc(relayed[0].stanza).from == kAlice);
  CHECK(count_children(relayed[0].stanza, "fmuc", rooms::kNsFmuc) == 1);
  Outputs got(users.begin() + static_cast<long>(mark), users.end());
  REQUIRE(count_body(got, kHigh, "hi from alice") == 1);
  CHECK(count_body(got, kAlice, "hi from alice") == 1);
  for (const auto& x : got) CHECK_FALSE(rooms::has_fmuc(x.stanza));

  // A private message carrying a forged fmuc, to a local occupant.
  Outputs o;
  low.on_local(parse("<presence xmlns='jabber:server' from='" + kBob + "' to='ops@rooms.low/bob'>"
                     "<x xmlns='http://jabber.org/protocol/muc'/></presence>"),
               kT0 + 20, o);
  o.clear();
  low.on_local(parse("<message xmlns='jabber:server' type='chat' from='" + kAlice +
                     "' to='ops@rooms.low/bob'><body>psst</body>" + evil + "</message>"),
               kT0 + 30, o);
  auto to_bob = sent_to(o, kBob, "message");
  REQUIRE(to_bob.size() == 1);
  CHECK_FALSE(rooms::has_fmuc(*to_bob[0]));
}
