// Two or three Room objects federated (XEP-0289 primary-primary) through the
// Net harness of support.h: what crosses, how often, and what users of each
// half see across a loss, the rejoin and the backfill.
#include <algorithm>

#include "guard/config/config.h"
#include "guard/rooms/room_service.h"
#include "support.h"

using namespace rooms_test;
namespace rooms = portcullis::rooms;
namespace xmpp = portcullis::xmpp;

namespace {

const std::string kA = "ops@rooms.low";    // joining (downstream) room
const std::string kB = "ops@rooms.high";   // joined (upstream) room
const std::string kAlice = "alice@low.test/phone";
const std::string kCarol = "carol@low.test/home";
const std::string kBob = "bob@high.test/desk";
const std::string kBob2 = "bob@high.test/tablet";

struct Pair {
  Room a{room_settings("ops", kB), "rooms.low", "key-low", fast_timing()};
  Room b{[] {
           auto s = room_settings("ops", "", {kA});
           s.subject = "High subject";
           return s;
         }(),
         "rooms.high", "key-high", fast_timing()};
  Net net{{&a, &b}};
};

std::vector<const Element*> wire_from(const Net& n, const std::string& room, std::size_t mark,
                                      const std::string& name = "") {
  std::vector<const Element*> v;
  for (std::size_t i = mark; i < n.wire.size(); ++i) {
    if (n.wire[i].from_room != room) continue;
    if (!name.empty() && n.wire[i].stanza.name() != name) continue;
    v.push_back(&n.wire[i].stanza);
  }
  return v;
}

// a -> b -> c (each joins the next), with al, bo and cy in them.
// b_internal: nodes of b's own process (an IRC link's, whose words b shows).
struct Chain {
  const std::string ra = "ops@rooms.a", rb = "ops@rooms.b", rc = "ops@rooms.c";
  Room a{room_settings("ops", rb), "rooms.a", "ka", fast_timing()};
  Room b;
  Room c{room_settings("ops", "", {rb}), "rooms.c", "kc", fast_timing()};
  Net net{{&a, &b, &c}};
  explicit Chain(std::vector<std::string> b_internal = {})
      : b{[&] {
            auto s = room_settings("ops", rc, {ra});
            s.internal_nodes = std::move(b_internal);
            return s;
          }(),
          "rooms.b", "kb", fast_timing()} {
    net.user(c, join("cy@c.test/r", rc + "/cy"));
    net.user(b, join("bo@b.test/r", rb + "/bo"));
    net.user(a, join("al@a.test/r", ra + "/al"));
  }
};

Outputs since(const Net& n, std::size_t mark) { return Outputs(n.users.begin() + static_cast<long>(mark), n.users.end()); }

bool delayed(const Element& m) { return m.find_child("delay", rooms::kNsDelay) != nullptr; }

// Advances until `pred` holds (at most `max_ms`).
template <class P>
bool advance_until(Net& n, P pred, std::int64_t max_ms = 20000) {
  for (std::int64_t t = 0; t < max_ms && !pred(); t += 100) n.advance(100);
  return pred();
}

}  // namespace

TEST_CASE("federation: lazy join of the upstream room, its answer, then each half sees the other",
          "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.now += 1000;
  p.net.user(p.b, say(kBob, kB, "said before", "b0"));
  CHECK(p.a.link_state(kB) == rooms::LinkState::Down);   // nobody at A: no federation

  p.net.now += 1000;
  const std::size_t wmark = p.net.wire.size(), umark = p.net.users.size();
  Outputs direct;
  p.a.on_local(join(kAlice, kA + "/alice"), p.net.now, direct);
  REQUIRE(count_to_peer(direct) == 1);
  const Element* jp = nullptr;
  for (const auto& o : direct)
    if (o.to_peer) jp = &o.stanza;
  REQUIRE(jp);
  CHECK(jp->name() == "presence");
  CHECK(jp->attr_or("from") == kA + "/alice");
  CHECK(jp->attr_or("to") == kB + "/alice");
  auto f = rooms::read_fmuc(*jp);
  CHECK(f.kind == rooms::FmucKind::Relay);
  CHECK(f.from == kAlice);
  const Element* mx = jp->find_child("x", rooms::kNsMuc);
  REQUIRE(mx);
  CHECK(mx->find_child("history", rooms::kNsMuc) != nullptr);
  REQUIRE(muc_item(*jp));
  CHECK(muc_item(*jp)->attr_or("jid") == kAlice);
  p.net.pump(kA, std::move(direct));

  CHECK(p.a.link_state(kB) == rooms::LinkState::Up);
  CHECK(p.b.link_state(kA) == rooms::LinkState::Up);

  // The joined room answered: occupants, then history, then the subject (last).
  auto answer = wire_from(p.net, kB, wmark);
  REQUIRE(answer.size() >= 3);
  CHECK(answer[0]->name() == "presence");
  CHECK(answer[0]->attr_or("from") == kB + "/bob");
  CHECK(rooms::read_fmuc(*answer[0]).from == kBob);
  CHECK(answer[1]->name() == "message");
  CHECK(body_of(*answer[1]) == "said before");
  CHECK(delayed(*answer[1]));
  CHECK(is_subject(*answer[2]));

  Outputs got = since(p.net, umark);
  CHECK(count_presence(got, kAlice, kA + "/bob", true) == 1);
  CHECK(bodies_to(got, kAlice) == std::vector<std::string>{"said before"});
  CHECK(delayed(*chat_to(got, kAlice)[0]));
  CHECK(p.a.subject() == "High subject");
  CHECK(count_presence(got, kBob, kB + "/alice", true) == 1);
  for (const auto& o : got) CHECK_FALSE(rooms::has_fmuc(o.stanza));
  CHECK(p.a.remote_occupants() == 1);
  CHECK(p.b.remote_occupants() == 1);
}

TEST_CASE("federation: one copy per message per link, whatever the number of far occupants; never echoed",
          "[fmuc][federation]") {
  for (int far : {1, 10}) {
    INFO("occupants on each far half: " << far);
    Pair p;
    std::vector<std::string> bs, as;
    for (int i = 0; i < far; ++i) {
      bs.push_back("u" + std::to_string(i) + "@high.test/r");
      p.net.user(p.b, join(bs.back(), kB + "/hu" + std::to_string(i)));
    }
    for (int i = 0; i < far; ++i) {
      as.push_back("u" + std::to_string(i) + "@low.test/r");
      p.net.user(p.a, join(as.back(), kA + "/lu" + std::to_string(i)));
    }
    REQUIRE(p.a.remote_occupants() == static_cast<std::size_t>(far));
    REQUIRE(p.b.remote_occupants() == static_cast<std::size_t>(far));

    // A -> B
    std::size_t wmark = p.net.wire.size(), umark = p.net.users.size();
    Outputs o;
    p.a.on_local(say(as[0], kA, "low to high", "c1"), p.net.now, o);
    CHECK(count_to_peer(o) == 1);
    p.net.pump(kA, std::move(o));
    CHECK(wire_from(p.net, kB, wmark, "message").empty());   // not back to its origin
    Outputs got = since(p.net, umark);
    for (const auto& u : bs) CHECK(count_body(got, u, "low to high") == 1);
    for (const auto& u : as) CHECK(count_body(got, u, "low to high") == 1);

    // B -> A
    wmark = p.net.wire.size();
    umark = p.net.users.size();
    Outputs o2;
    p.b.on_local(say(bs[0], kB, "high to low", "c2"), p.net.now, o2);
    CHECK(count_to_peer(o2) == 1);
    p.net.pump(kB, std::move(o2));
    CHECK(wire_from(p.net, kA, wmark, "message").empty());
    got = since(p.net, umark);
    for (const auto& u : bs) CHECK(count_body(got, u, "high to low") == 1);
    for (const auto& u : as) CHECK(count_body(got, u, "high to low") == 1);
    CHECK(p.a.history_size() == 2);
    CHECK(p.b.history_size() == 2);
  }
}

TEST_CASE("federation: a nick in use on the other half is refused with conflict (409)", "[fmuc][federation]") {
  SECTION("federation up: the local join is refused at once") {
    Pair p;
    p.net.user(p.b, join(kBob, kB + "/bob"));
    p.net.user(p.a, join(kAlice, kA + "/alice"));
    Outputs out = p.net.user(p.a, join(kCarol, kA + "/bob"));
    auto err = sent_to(out, kCarol, "presence");
    REQUIRE(err.size() == 1);
    CHECK(err[0]->attr_or("type") == "error");
    CHECK(error_condition(*err[0]) == "conflict");
    CHECK(sent_to(out, kBob).empty());
    CHECK(p.a.local_occupants() == 1);
  }
  SECTION("the first user of the joining half takes a nick used in the joined room") {
    Pair p;
    p.net.user(p.b, join(kBob, kB + "/sam"));
    p.net.now += 60000;   // bob has been there a while
    const std::size_t umark = p.net.users.size();
    p.net.user(p.a, join(kAlice, kA + "/sam"));
    Outputs got = since(p.net, umark);
    bool conflict = false;
    for (const Element* e : sent_to(got, kAlice, "presence"))
      if (e->attr_or("type") == "error" && error_condition(*e) == "conflict") conflict = true;
    CHECK(conflict);
    CHECK(p.a.local_occupants() == 0);
    // The occupant already in the joined room is not disturbed.
    CHECK(p.b.local_occupants() == 1);
    CHECK(count_presence(got, kBob, kB + "/sam", false) == 0);
    for (const Element* e : sent_to(got, kBob, "presence")) CHECK(e->attr_or("type") != "error");
  }
}

TEST_CASE("federation: private messages cross by nick", "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.b, join(kBob2, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  Outputs got = p.net.user(p.a, pm(kAlice, kA + "/bob", "psst bob"));
  for (const std::string& s : {kBob, kBob2}) {
    INFO(s);
    auto ms = sent_to(got, s, "message");
    REQUIRE(ms.size() == 1);
    CHECK(ms[0]->attr_or("from") == kB + "/alice");
    CHECK(body_of(*ms[0]) == "psst bob");
    CHECK(muc_user_x(*ms[0]) != nullptr);
    CHECK_FALSE(rooms::has_fmuc(*ms[0]));
  }
  CHECK(sent_to(got, kAlice).empty());
  Outputs back = p.net.user(p.b, pm(kBob, kB + "/alice", "hi alice"));
  auto ms = sent_to(back, kAlice, "message");
  REQUIRE(ms.size() == 1);
  CHECK(ms[0]->attr_or("from") == kA + "/bob");
  CHECK(body_of(*ms[0]) == "hi alice");
  CHECK(p.a.history_size() == 0);
  CHECK(p.b.history_size() == 0);
}

TEST_CASE("federation: a nick change crosses as a nick change (303 with the new nick), the only occupant too",
          "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));   // alice is all the low half has
  const std::size_t umark = p.net.users.size();
  p.net.user(p.a, parse("<presence xmlns='jabber:server' from='" + kAlice + "' to='" + kA + "/alicia'/>"));
  Outputs got = since(p.net, umark);
  const auto ps = sent_to(got, kBob, "presence");
  REQUIRE(ps.size() == 2);
  CHECK(ps[0]->attr_or("from") == kB + "/alice");
  CHECK(is_unavailable(*ps[0]));
  CHECK(has_status(*ps[0], 303));
  REQUIRE(muc_item(*ps[0]) != nullptr);
  CHECK(muc_item(*ps[0])->attr_or("nick") == "alicia");
  CHECK(ps[1]->attr_or("from") == kB + "/alicia");
  CHECK(is_available(*ps[1]));
  // The low half stayed in the set: what bob says still reaches alicia.
  p.net.user(p.b, say(kBob, kB, "still there?"));
  CHECK(count_body(since(p.net, umark), kAlice, "still there?") == 1);
}

TEST_CASE("federation: a peer's departure codes are passed on only when they mean something", "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  p.net.user(p.a, join(kCarol, kA + "/carol"));
  // The low room tells the high room that carol left with a 110 (self), a
  // 307 with a reason and an actor, and a 201: only the 307 reaches bob.
  Outputs out;
  p.b.on_peer(kA, parse("<presence xmlns='jabber:server' from='" + kA + "/carol' to='" + kB + "/carol' type='unavailable'>"
                    "<fmuc xmlns='http://isode.com/protocol/fmuc' from='carol@low.test'/>"
                    "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'>"
                    "<actor nick='alice'/><reason>spam</reason></item>"
                    "<status code='110'/><status code='307'/><status code='201'/></x></presence>"),
              p.net.now, out);
  const auto ps = sent_to(out, kBob, "presence");
  REQUIRE(ps.size() == 1);
  CHECK(has_status(*ps[0], 307));
  CHECK_FALSE(has_status(*ps[0], 110));
  CHECK_FALSE(has_status(*ps[0], 201));
  const Element* item = muc_item(*ps[0]);
  REQUIRE(item != nullptr);
  REQUIRE(item->find_child("reason", rooms::kNsMucUser) != nullptr);
  CHECK(item->find_child("reason", rooms::kNsMucUser)->text() == "spam");
  REQUIRE(item->find_child("actor", rooms::kNsMucUser) != nullptr);
  CHECK(item->find_child("actor", rooms::kNsMucUser)->attr_or("nick") == "alice");
}

TEST_CASE("federation: what a peer's departure may not claim: a nick in use, a bad nick, a kicker it did not bring",
          "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));   // at b, alice is the low half's only occupant
  REQUIRE(p.b.link_state(kA) == rooms::LinkState::Up);
  auto departure = [&](const std::string& item_inner, const std::string& item_attrs, const std::string& codes) {
    Outputs out;
    p.b.on_peer(kA, parse("<presence xmlns='jabber:server' from='" + kA + "/alice' to='" + kB + "/alice' type='unavailable'>"
                          "<fmuc xmlns='http://isode.com/protocol/fmuc' from='" + kAlice + "'/>"
                          "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'" + item_attrs +
                          ">" + item_inner + "</item>" + codes + "</x></presence>"),
                p.net.now, out);
    return out;
  };
  auto to_bob = [&](const Outputs& out) {
    const auto ps = sent_to(out, kBob, "presence");
    REQUIRE(ps.size() == 1);
    return *ps[0];
  };
  auto left_sent = [](const Outputs& out) {
    for (const auto& o : out)
      if (o.to_peer && o.stanza.find_child("fmuc", rooms::kNsFmuc) &&
          o.stanza.find_child("fmuc", rooms::kNsFmuc)->find_child("left", rooms::kNsFmuc))
        return true;
    return false;
  };
  SECTION("a 303 to a nick in use here is a plain leave, and the node leaves the set") {
    Outputs out = departure("", " nick='bob'", "<status code='303'/>");
    const Element pr = to_bob(out);
    CHECK_FALSE(has_status(pr, 303));
    CHECK(muc_item(pr)->attr_or("nick").empty());
    CHECK(left_sent(out));
  }
  SECTION("a 303 to a nick no room JID can carry is a plain leave") {
    Outputs out = departure("", " nick='a&#9;b'", "<status code='303'/>");
    CHECK_FALSE(has_status(to_bob(out), 303));
  }
  SECTION("a 303 whose nick never comes: after a ping interval the node is out of the set") {
    Outputs out = departure("", " nick='alicia'", "<status code='303'/>");
    CHECK(has_status(to_bob(out), 303));
    CHECK_FALSE(left_sent(out));
    CHECK(p.b.link_state(kA) == rooms::LinkState::Up);
    Outputs later;
    p.b.tick(p.net.now + 3000, later);
    CHECK(left_sent(later));
    CHECK(p.b.link_state(kA) == rooms::LinkState::Down);
  }
  SECTION("a kick whose kicker this link did not bring keeps the 307, not the actor; a long reason is cut whole") {
    std::string reason;
    for (int i = 0; i < 400; ++i) reason += "\xE2\x82\xAC";   // 1200 bytes of three-byte characters
    Outputs out = departure("<actor nick='bob'/><reason>" + reason + "</reason>", "", "<status code='307'/>");
    const Element pr = to_bob(out);
    CHECK(has_status(pr, 307));
    const Element* item = muc_item(pr);
    CHECK(item->find_child("actor", rooms::kNsMucUser) == nullptr);   // bob is this room's own user
    REQUIRE(item->find_child("reason", rooms::kNsMucUser) != nullptr);
    CHECK(item->find_child("reason", rooms::kNsMucUser)->text() == reason.substr(0, 1023));
  }
  SECTION("a leave's status text reaches this room's users, and a local leave's the peer") {
    Outputs out;
    p.b.on_peer(kA, parse("<presence xmlns='jabber:server' from='" + kA + "/alice' to='" + kB + "/alice' type='unavailable'>"
                          "<status>gone home</status><fmuc xmlns='http://isode.com/protocol/fmuc' from='" + kAlice + "'/>"
                          "</presence>"),
                p.net.now, out);
    const Element pr = to_bob(out);
    REQUIRE(pr.find_child("status", pr.ns()) != nullptr);
    CHECK(pr.find_child("status", pr.ns())->text() == "gone home");
  }
}

TEST_CASE("federation: the subject is kept in sync both ways", "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  Outputs got = p.net.user(p.a, set_subject(kAlice, kA, "Set at low"));
  auto to_bob = sent_to(got, kBob, "message");
  REQUIRE(to_bob.size() == 1);
  CHECK(is_subject(*to_bob[0]));
  CHECK(to_bob[0]->find_child("subject", to_bob[0]->ns())->text() == "Set at low");
  CHECK(to_bob[0]->attr_or("from") == kB + "/alice");
  CHECK(p.b.subject() == "Set at low");
  Outputs later = p.net.user(p.b, join("dave@high.test/r", kB + "/dave"));
  auto ms = sent_to(later, "dave@high.test/r", "message");
  REQUIRE_FALSE(ms.empty());
  CHECK(ms.back()->find_child("subject", ms.back()->ns())->text() == "Set at low");

  Outputs got2 = p.net.user(p.b, set_subject(kBob, kB, "Set at high"));
  auto to_alice = sent_to(got2, kAlice, "message");
  REQUIRE(to_alice.size() == 1);
  CHECK(to_alice[0]->find_child("subject", to_alice[0]->ns())->text() == "Set at high");
  CHECK(to_alice[0]->attr_or("from") == kA + "/bob");
  CHECK(p.a.subject() == "Set at high");
}

TEST_CASE("federation: link loss (333), both halves go on, rejoin and backfill each message once, in order",
          "[fmuc][federation][loss]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.b, join(kBob2, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  p.net.advance(500);
  p.net.user(p.a, say(kAlice, kA, "pre-a"));
  p.net.user(p.b, say(kBob, kB, "pre-b"));
  p.net.advance(1500);   // pings answered: the link is fine
  REQUIRE(p.a.link_state(kB) == rooms::LinkState::Up);

  // The link goes silent: what is said now is lost in flight.
  p.net.drop = true;
  std::size_t umark = p.net.users.size();
  p.net.user(p.a, say(kAlice, kA, "a-inflight"));
  p.net.user(p.b, say(kBob, kB, "b-inflight"));
  REQUIRE(advance_until(p.net, [&] {
    return p.a.link_state(kB) != rooms::LinkState::Up && p.b.link_state(kA) == rooms::LinkState::Down;
  }));
  Outputs lost = since(p.net, umark);
  auto left_333 = [&](const std::string& to, const std::string& occ) {
    for (const Element* e : sent_to(lost, to, "presence"))
      if (e->attr_or("from") == occ && is_unavailable(*e) && has_status(*e, 333)) return true;
    return false;
  };
  CHECK(left_333(kAlice, kA + "/bob"));
  CHECK(left_333(kBob, kB + "/alice"));
  CHECK(left_333(kBob2, kB + "/alice"));
  CHECK(p.a.remote_occupants() == 0);
  CHECK(p.b.remote_occupants() == 0);

  // Each half keeps chatting locally.
  umark = p.net.users.size();
  p.net.user(p.a, say(kAlice, kA, "a1"));
  p.net.now += 50;
  p.net.user(p.a, say(kAlice, kA, "a2"));
  p.net.user(p.b, say(kBob2, kB, "b1"));
  Outputs during = since(p.net, umark);
  CHECK(count_body(during, kAlice, "a1") == 1);
  CHECK(count_body(during, kBob, "b1") == 1);
  CHECK(count_body(during, kBob2, "b1") == 1);
  CHECK(count_body(during, kAlice, "b1") == 0);

  // The link comes back: the joining room rejoins by itself.
  p.net.drop = false;
  const std::size_t wmark = p.net.wire.size();
  umark = p.net.users.size();
  REQUIRE(advance_until(p.net, [&] {
    return p.a.link_state(kB) == rooms::LinkState::Up && p.b.link_state(kA) == rooms::LinkState::Up;
  }));
  const Element* rejoin = nullptr;
  for (const Element* e : wire_from(p.net, kA, wmark, "presence"))
    if (e->find_child("x", rooms::kNsMuc) != nullptr) rejoin = e;
  REQUIRE(rejoin);
  // docs/design.md 2026-12-03: the rejoin names the last message received (<resume/>), not a time.
  CHECK(rooms::read_fmuc(*rejoin).resume.has_value());

  Outputs after = since(p.net, umark);
  CHECK(count_presence(after, kAlice, kA + "/bob", true) >= 1);
  for (const std::string& s : {kBob, kBob2}) {
    INFO(s);
    CHECK(bodies_to(after, s) == std::vector<std::string>{"a-inflight", "a1", "a2"});
    for (const Element* m : chat_to(after, s)) CHECK(delayed(*m));
  }
  CHECK(bodies_to(after, kAlice) == std::vector<std::string>{"b-inflight", "b1"});
  for (const Element* m : chat_to(after, kAlice)) CHECK(delayed(*m));

  SECTION("a second loss and backfill delivers nothing twice") {
    p.net.advance(300);
    p.net.cut(p.a, p.b);
    p.net.user(p.a, say(kAlice, kA, "a3"));
    umark = p.net.users.size();
    REQUIRE(advance_until(p.net, [&] {
      return p.a.link_state(kB) == rooms::LinkState::Up && p.b.link_state(kA) == rooms::LinkState::Up;
    }));
    Outputs again = since(p.net, umark);
    CHECK(bodies_to(again, kBob) == std::vector<std::string>{"a3"});
    CHECK(bodies_to(again, kBob2) == std::vector<std::string>{"a3"});
    CHECK(bodies_to(again, kAlice).empty());
  }
  SECTION("the same backfill delivered twice is dropped the second time") {
    // Replay every message B ever relayed to A: A has them all.
    umark = p.net.users.size();
    std::vector<Element> replay;
    for (const auto& w : p.net.wire)
      if (w.from_room == kB && w.stanza.name() == "message" && !is_subject(w.stanza)) replay.push_back(w.stanza);
    REQUIRE_FALSE(replay.empty());
    for (const auto& st : replay) p.net.peer(p.a, kB, st);
    CHECK(chat_to(since(p.net, umark), kAlice).empty());
    CHECK(p.a.counters().duplicates_dropped >= replay.size());
  }
}

TEST_CASE("federation: a chain of three rooms, a message from the end reaches the other end once, never back",
          "[fmuc][federation][chain]") {
  Chain ch;
  Room &a = ch.a, &b = ch.b, &c = ch.c;
  Net& net = ch.net;
  const std::string &ra = ch.ra, &rb = ch.rb, &rc = ch.rc;
  REQUIRE(a.link_state(rb) == rooms::LinkState::Up);
  REQUIRE(b.link_state(rc) == rooms::LinkState::Up);
  CHECK(c.remote_occupants() == 2);   // bo and al
  CHECK(a.remote_occupants() == 2);   // bo and cy

  std::size_t wmark = net.wire.size(), umark = net.users.size();
  net.user(a, say("al@a.test/r", ra, "from the end", "e1"));
  Outputs got = since(net, umark);
  CHECK(count_body(got, "cy@c.test/r", "from the end") == 1);
  CHECK(count_body(got, "bo@b.test/r", "from the end") == 1);
  CHECK(count_body(got, "al@a.test/r", "from the end") == 1);
  std::size_t to_a = 0, total = 0;
  for (std::size_t i = wmark; i < net.wire.size(); ++i) {
    if (net.wire[i].stanza.name() != "message") continue;
    ++total;
    if (bare(net.wire[i].stanza.attr_or("to")) == ra) ++to_a;
  }
  CHECK(to_a == 0);
  CHECK(total == 2);   // a->b, b->c

  umark = net.users.size();
  net.user(c, say("cy@c.test/r", rc, "from the other end", "e2"));
  got = since(net, umark);
  CHECK(count_body(got, "al@a.test/r", "from the other end") == 1);
  CHECK(count_body(got, "cy@c.test/r", "from the other end") == 1);
}

TEST_CASE("federation: a refusal of a private relay counts only from the link it went to; a remote peer gives no "
          "warnings",
          "[fmuc][federation][chain]") {
  Chain ch;
  Room& b = ch.b;
  Net& net = ch.net;
  const std::string &ra = ch.ra, &rb = ch.rb, &rc = ch.rc;
  REQUIRE(b.link_state(ra) == rooms::LinkState::Up);
  REQUIRE(b.link_state(rc) == rooms::LinkState::Up);
  // bo's private message to al goes to a's link only.
  std::size_t wmark = net.wire.size();
  net.user(b, pm("bo@b.test/r", rb + "/al", "psst", "chat", "bo-pm"));
  std::string relay_id;
  for (std::size_t i = wmark; i < net.wire.size(); ++i) {
    if (net.wire[i].from_room == rb && net.wire[i].stanza.name() == "message") {
      CHECK(bare(net.wire[i].stanza.attr_or("to")) == ra);
      relay_id = net.wire[i].stanza.attr_or("id");
    }
  }
  REQUIRE_FALSE(relay_id.empty());
  auto error_from = [&](const std::string& from_room, const std::string& id, const std::string& type) {
    return parse("<message xmlns='jabber:server' from='" + from_room + "/al' to='" + rb + "/bo' type='error' id='" + id +
                 "'><error type='" + type + "'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                 "</error></message>");
  };
  auto errors_to_bo = [&](const Outputs& got) {
    std::size_t n = 0;
    for (const Element* m : sent_to(got, "bo@b.test/r", "message")) n += m->attr_or("type") == "error";
    return n;
  };
  // c never had it: its claim reaches nobody.
  CHECK(errors_to_bo(net.peer(b, rc, error_from(rc, relay_id, "modify"))) == 0);
  // A remote peer's warning (type continue) is not shown either.
  CHECK(errors_to_bo(net.peer(b, ra, error_from(ra, relay_id, "continue"))) == 0);
  // a, which had it, is heard.
  const Outputs got = net.peer(b, ra, error_from(ra, relay_id, "modify"));
  REQUIRE(errors_to_bo(got) == 1);
  for (const Element* m : sent_to(got, "bo@b.test/r", "message")) {
    CHECK(m->attr_or("id") == "bo-pm");
    CHECK(error_text(*m).find("your private message did not reach the federated room " + ra) != std::string::npos);
  }
}

TEST_CASE("federation: an IRC link's refusal or warning of a message from another node reaches its author's room, "
          "in closed words",
          "[fmuc][federation][chain][irc]") {
  // c stands for b's IRC link (a node of b's process); al's message comes from a.
  Chain ch({"ops@rooms.c"});
  const std::size_t wmark = ch.net.wire.size();
  ch.net.user(ch.a, say("al@a.test/r", ch.ra, "for IRC", "al-1"));
  std::string id;
  for (std::size_t i = wmark; i < ch.net.wire.size(); ++i) {
    if (ch.net.wire[i].from_room == ch.rb && bare(ch.net.wire[i].stanza.attr_or("to")) == ch.rc)
      id = ch.net.wire[i].stanza.attr_or("id");
  }
  REQUIRE_FALSE(id.empty());
  auto from_link = [&](const std::string& type, const std::string& cond, const std::string& note,
                       const std::string& by = "") {
    return parse("<message xmlns='jabber:server' from='" + ch.rc + "' to='" + ch.rb + "/al' type='error' id='" + id +
                 "'><error type='" + type + "'" + (by.empty() ? "" : " by='" + by + "'") + "><" + cond +
                 " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"
                 "free words</text>" + note + "</error></message>");
  };
  auto told_al = [&](const Outputs& got) {
    std::vector<const Element*> v;
    for (const Element* m : sent_to(got, "al@a.test/r", "message"))
      if (m->attr_or("type") == "error") v.push_back(m);
    return v;
  };
  SECTION("a refusal for the label: al is told where and why, not the link's free words") {
    const Outputs got = ch.net.peer(
        ch.b, ch.rc, from_link("wait", "recipient-unavailable", "<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'/>"));
    const auto t = told_al(got);
    REQUIRE(t.size() == 1);
    CHECK(t[0]->attr_or("id") == "al-1");
    CHECK(error_condition(*t[0]) == "recipient-unavailable");
    CHECK(error_text(*t[0]).find("your message reached the federated room ops@rooms.b but not the IRC channel of "
                                 "ops@rooms.c") != std::string::npos);
    CHECK(error_text(*t[0]).find("its label is not within the IRC link's clearance") != std::string::npos);
    CHECK(error_text(*t[0]).find("free words") == std::string::npos);
    CHECK(ch.a.link_state(ch.rb) == rooms::LinkState::Up);
    // Said again (or come round a cycle of links): passed back once only.
    CHECK(told_al(ch.net.peer(ch.b, ch.rc,
                              from_link("wait", "recipient-unavailable",
                                        "<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'/>")))
              .empty());
  }
  SECTION("a cut at the line cap: al is warned, not told it failed") {
    const Outputs got = ch.net.peer(
        ch.b, ch.rc,
        from_link("continue", "policy-violation", "<irc xmlns='urn:portcullis:rooms:irc:1' reason='line-cap' lines='8'/>"));
    const auto t = told_al(got);
    REQUIRE(t.size() == 1);
    CHECK(error_type(*t[0]) == "continue");
    CHECK(error_text(*t[0]).find("reached the IRC channel of ops@rooms.c through the federated room ops@rooms.b, "
                                 "with a warning") != std::string::npos);
    CHECK(error_text(*t[0]).find("cut to 8 IRC line(s)") != std::string::npos);
  }
  SECTION("a private message passed on: its refusal comes back from the link it went to only") {
    const std::size_t mark = ch.net.wire.size();
    ch.net.user(ch.a, pm("al@a.test/r", ch.ra + "/cy", "psst", "chat", "al-pm"));
    std::string pm_id;
    for (std::size_t i = mark; i < ch.net.wire.size(); ++i) {
      if (ch.net.wire[i].from_room == ch.rb && bare(ch.net.wire[i].stanza.attr_or("to")) == ch.rc)
        pm_id = ch.net.wire[i].stanza.attr_or("id");
    }
    REQUIRE_FALSE(pm_id.empty());
    id = pm_id;
    const std::string note = "<irc xmlns='urn:portcullis:rooms:irc:1' reason='no-user'/>";
    // a is not where b passed it: a claim from there is not passed back.
    CHECK(told_al(ch.net.peer(ch.b, ch.ra, from_link("wait", "recipient-unavailable", note))).empty());
    const Outputs got = ch.net.peer(ch.b, ch.rc, from_link("wait", "recipient-unavailable", note));
    const auto t = told_al(got);
    REQUIRE(t.size() == 1);
    CHECK(t[0]->attr_or("id") == "al-pm");
    CHECK(error_text(*t[0]).find("your private message reached the federated room ops@rooms.b but not the IRC "
                                 "channel of ops@rooms.c") != std::string::npos);
    CHECK(error_text(*t[0]).find("no IRC user has that nick") != std::string::npos);
  }
  SECTION("a note outside the vocabulary, or none, is not passed on") {
    for (const std::string& note : {std::string("<irc xmlns='urn:portcullis:rooms:irc:1' reason='evil'/>"),
                                    std::string("<irc xmlns='urn:portcullis:rooms:irc:1' reason='label' lines='3'/>"),
                                    std::string("<irc xmlns='urn:portcullis:rooms:irc:1' reason='line-cap' lines='x'/>"),
                                    std::string("<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'>text</irc>"),
                                    std::string()}) {
      CHECK(told_al(ch.net.peer(ch.b, ch.rc, from_link("continue", "policy-violation", note))).empty());
    }
  }
  SECTION("a remote node speaks for an IRC link only by naming it; a warning without a note is dropped") {
    // a is not of b's process: a note from it about al's message is a's own (b does not own it), so
    // b passes nothing back to a; and a's room drops a bare warning from b.
    CHECK(told_al(ch.net.peer(ch.a, ch.rb,
                              parse("<message xmlns='jabber:server' from='" + ch.rb + "' to='" + ch.ra +
                                    "/al' type='error' id='" + id + "'><error type='continue'><policy-violation "
                                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")))
              .empty());
    const Outputs got = ch.net.peer(
        ch.a, ch.rb,
        parse("<message xmlns='jabber:server' from='" + ch.rb + "' to='" + ch.ra + "/al' type='error' id='" + id +
              "'><error type='wait' by='ops@irc.rooms.b'><recipient-unavailable "
              "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><irc xmlns='urn:portcullis:rooms:irc:1' reason='away'/>"
              "</error></message>"));
    const auto t = told_al(got);
    REQUIRE(t.size() == 1);
    CHECK(error_text(*t[0]).find("not the IRC channel of ops@irc.rooms.b") != std::string::npos);
    CHECK(error_text(*t[0]).find("was away") != std::string::npos);
    // Without a 'by' (the boundary drops it), the federated room's own IRC channel.
    const Outputs got2 = ch.net.peer(
        ch.a, ch.rb,
        parse("<message xmlns='jabber:server' from='" + ch.rb + "' to='" + ch.ra + "/al' type='error' id='" + id +
              "'><error type='continue'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
              "<irc xmlns='urn:portcullis:rooms:irc:1' reason='line-cap' lines='8'/></error></message>"));
    const auto t2 = told_al(got2);
    REQUIRE(t2.size() == 1);
    CHECK(error_text(*t2[0]).find("reached the IRC channel of the federated room ops@rooms.b, with a warning") !=
          std::string::npos);
  }
}

TEST_CASE("federation: a label out of place, or a second one, is refused, never relayed unlabelled",
          "[fmuc][federation][labels]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  p.net.user(p.a, join(kCarol, kA + "/carol"));
  const std::string lab = "<securitylabel xmlns='urn:xmpp:sec-label:0'><label>x</label></securitylabel>";
  auto answered_bad_request = [](const Outputs& out) {   // to the peer
    for (const auto& o : out) {
      if (o.to_peer && o.stanza.attr_or("type") == "error" && error_condition(o.stanza) == "bad-request") return true;
    }
    return false;
  };
  auto refused = [&](const Outputs& got, const std::string& id) {
    for (const Element* m : sent_to(got, kAlice, "message")) {
      if (m->attr_or("type") == "error" && m->attr_or("id") == id && error_condition(*m) == "bad-request") return true;
    }
    return false;
  };
  SECTION("inside the muc#user <x/> the room would drop") {
    const std::size_t umark = p.net.users.size();
    p.net.user(p.a, say(kAlice, kA, "hidden label", "m1", "<x xmlns='http://jabber.org/protocol/muc#user'>" + lab + "</x>"));
    Outputs got = since(p.net, umark);
    CHECK(refused(got, "m1"));
    CHECK(count_body(got, kCarol, "hidden label") == 0);
    CHECK(sent_to(got, kBob).empty());
    CHECK(p.a.history_size() == 0);
  }
  SECTION("inside <delay/>") {
    const std::size_t umark = p.net.users.size();
    p.net.user(p.a, say(kAlice, kA, "delayed label", "m2", "<delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'>" +
                                                            lab + "</delay>"));
    Outputs got = since(p.net, umark);
    CHECK(refused(got, "m2"));
    CHECK(sent_to(got, kBob).empty());
  }
  SECTION("two labels on a subject (the room keeps one)") {
    const std::size_t umark = p.net.users.size();
    p.net.user(p.a, parse("<message xmlns='jabber:server' type='groupchat' from='" + kAlice + "' to='" + kA +
                          "' id='s9'><subject>two labels</subject>" + lab + lab + "</message>"));
    Outputs got = since(p.net, umark);
    CHECK(refused(got, "s9"));
    CHECK(p.a.subject() != "two labels");
    CHECK(p.b.subject() != "two labels");
    CHECK(sent_to(got, kBob).empty());
  }
  SECTION("inside the user's own <fmuc/> (stripped, as a user is no node)") {
    const std::size_t umark = p.net.users.size();
    p.net.user(p.a, say(kAlice, kA, "fmuc label", "m3", "<fmuc xmlns='http://isode.com/protocol/fmuc'>" + lab + "</fmuc>"));
    Outputs got = since(p.net, umark);
    CHECK(refused(got, "m3"));
    CHECK(count_body(got, kCarol, "fmuc label") == 0);
    CHECK(sent_to(got, kBob).empty());
  }
  SECTION("private messages: inside <fmuc/> or the muc#user <x/>, or two labels") {
    const std::size_t umark = p.net.users.size();
    p.net.user(p.a, pm(kAlice, kA + "/bob", "pm fmuc", "chat", "p1"));   // fine: reaches bob
    p.net.user(p.a, parse("<message xmlns='jabber:server' type='chat' from='" + kAlice + "' to='" + kA +
                          "/bob' id='p2'><body>pm hidden</body><fmuc xmlns='http://isode.com/protocol/fmuc'>" + lab +
                          "</fmuc></message>"));
    p.net.user(p.a, parse("<message xmlns='jabber:server' type='chat' from='" + kAlice + "' to='" + kA +
                          "/carol' id='p3'><body>pm x</body><x xmlns='http://jabber.org/protocol/muc#user'>" + lab +
                          "</x></message>"));
    p.net.user(p.a, parse("<message xmlns='jabber:server' type='chat' from='" + kAlice + "' to='" + kA +
                          "/carol' id='p4'><body>pm two</body>" + lab + lab + "</message>"));
    Outputs got = since(p.net, umark);
    CHECK(refused(got, "p2"));
    CHECK(refused(got, "p3"));
    CHECK(refused(got, "p4"));
    for (const Element* m : sent_to(got, kBob, "message")) CHECK(body_of(*m) != "pm hidden");
    CHECK(sent_to(got, kCarol, "message").empty());
    bool first = false;
    for (const Element* m : sent_to(got, kBob, "message")) first = first || body_of(*m) == "pm fmuc";
    CHECK(first);
  }
  SECTION("a private message from a peer with a nested label: answered, not delivered") {
    Outputs out;
    p.b.on_peer(kA, parse("<message xmlns='jabber:server' type='chat' from='" + kA + "/alice' to='" + kB +
                          "/bob' id='pp1'><body>peer pm</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='" + kAlice +
                          "'/><x xmlns='http://jabber.org/protocol/muc#user'>" + lab + "</x></message>"),
                p.net.now, out);
    CHECK(sent_to(out, kBob).empty());
    CHECK(answered_bad_request(out));
  }
  SECTION("the subject that answers our join, with a nested label: the join completes, the subject is not taken") {
    Pair q;
    q.net.user(q.b, join(kBob, kB + "/bob"));
    std::vector<Element> held;
    q.net.intercept = [&](const std::string& from, const Element& st) {
      if (from == kB && st.name() == "message" && is_subject(st) && held.empty()) {
        held.push_back(st);
        return true;
      }
      return false;
    };
    q.net.user(q.a, join(kAlice, kA + "/alice"));
    REQUIRE(held.size() == 1);
    REQUIRE(q.a.link_state(kB) == rooms::LinkState::Joining);
    Element bad = held[0];
    bad.add_child(std::string(rooms::kNsMucUser), "x").add_child(parse(lab));
    q.net.intercept = nullptr;
    q.net.peer(q.a, kB, bad);
    CHECK(q.a.link_state(kB) == rooms::LinkState::Up);
    CHECK(q.a.subject() != "High subject");
    CHECK(q.a.counters().refused_labels == 1);
  }
  SECTION("from a peer: answered with bad-request, not relayed") {
    Outputs out;
    p.b.on_peer(kA, parse("<message xmlns='jabber:server' type='groupchat' from='" + kA + "/alice' to='" + kB +
                          "' id='r1'><body>nested</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='" + kAlice +
                          "'/><stanza-id xmlns='urn:xmpp:sid:0' by='" + kA + "' id='r1'>" + lab + "</stanza-id></message>"),
                p.net.now, out);
    CHECK(sent_to(out, kBob).empty());
    CHECK(answered_bad_request(out));
    CHECK(p.b.counters().refused_labels == 1);
  }
}

TEST_CASE("federation: a relay refused on the way (policy-violation) is told to its author", "[fmuc][federation]") {
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/bob"));
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  p.net.user(p.a, join(kCarol, kA + "/carol"));
  std::vector<Element> held;
  p.net.intercept = [&](const std::string& from, const Element& st) {
    if (from == kA && st.name() == "message" && body_of(st) == "secret words") {
      held.push_back(st);
      return true;
    }
    return false;
  };
  const std::size_t umark = p.net.users.size();
  p.net.user(p.a, say(kAlice, kA, "secret words", "client-9"));
  REQUIRE(held.size() == 1);
  Element err = xmpp::make_error_reply(
      held[0], {xmpp::StanzaErrorCondition::PolicyViolation, xmpp::StanzaErrorType::Modify, "refused", kB, {}});
  p.net.peer(p.a, kB, err);
  Outputs got = since(p.net, umark);
  CHECK(count_body(got, kCarol, "secret words") == 1);   // the local half got it
  CHECK(count_body(got, kAlice, "secret words") == 1);
  CHECK(sent_to(got, kBob).empty());
  const Element* e = nullptr;
  for (const Element* m : sent_to(got, kAlice, "message"))
    if (m->attr_or("type") == "error") e = m;
  REQUIRE(e);
  CHECK(error_condition(*e) == "policy-violation");
  CHECK(e->attr_or("id") == "client-9");
  CHECK(sent_to(got, kCarol, "message").size() == 1);   // carol is told nothing more
  CHECK(p.a.link_state(kB) == rooms::LinkState::Up);    // a refusal is not a lost link
}

TEST_CASE("federation: a join from a room not in accept_from is refused (not-allowed)", "[fmuc][federation]") {
  portcullis::config::RoomServiceSpec spec;
  spec.domain = "rooms.high";
  portcullis::config::RoomSpec r;
  r.name = "ops";
  r.accept_from = {kA};
  spec.rooms = {r};
  rooms::RoomService svc(spec, "key");
  Outputs out;
  svc.on_federated(parse("<presence xmlns='jabber:server' from='ops@rooms.evil/mal' to='ops@rooms.high/mal'>"
                         "<fmuc xmlns='http://isode.com/protocol/fmuc' from='mallory@evil.test/x'/>"
                         "<x xmlns='http://jabber.org/protocol/muc'/>"
                         "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x>"
                         "</presence>"),
                   kT0, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].to_peer);
  CHECK(out[0].stanza.name() == "presence");
  CHECK(out[0].stanza.attr_or("type") == "error");
  CHECK(out[0].stanza.attr_or("to") == "ops@rooms.evil/mal");
  CHECK(error_condition(out[0].stanza) == "not-allowed");
  REQUIRE(svc.room("ops"));
  CHECK(svc.room("ops")->remote_occupants() == 0);
  CHECK(svc.room("ops")->link_state("ops@rooms.evil") == rooms::LinkState::Down);
}

TEST_CASE("federation: a nick collision at the lazy join spares the occupant already in the joined room, "
          "however recently it joined",
          "[fmuc][federation][conflict]") {
  // Bob took "sam" in the joined room one second before Alice, the first user
  // of the joining half, asks for "sam" too. Alice is the newcomer: she gets
  // 409; Bob, already in, must stay.
  Pair p;
  p.net.user(p.b, join(kBob, kB + "/sam"));
  p.net.now += 1000;
  const std::size_t umark = p.net.users.size();
  p.net.user(p.a, join(kAlice, kA + "/sam"));
  Outputs got = since(p.net, umark);
  bool conflict = false;
  for (const Element* e : sent_to(got, kAlice, "presence"))
    if (e->attr_or("type") == "error" && error_condition(*e) == "conflict") conflict = true;
  CHECK(conflict);
  CHECK(p.a.local_occupants() == 0);
  CHECK(p.b.local_occupants() == 1);
  CHECK(count_presence(got, kBob, kB + "/sam", false) == 0);
  for (const Element* e : sent_to(got, kBob, "presence")) CHECK(e->attr_or("type") != "error");
}

TEST_CASE("federation: a middle room with no user of its own joins upstream for a downstream node, and leaves with it",
          "[fmuc][federation][chain]") {
  // site A node -> guard room B (nobody joins it directly) -> room C.
  const std::string ra = "ops@rooms.a", rb = "ops@rooms.b", rc = "ops@rooms.c";
  Room a(room_settings("ops", rb), "rooms.a", "ka", fast_timing());
  Room b(room_settings("ops", rc, {ra}), "rooms.b", "kb", fast_timing());
  Room c(room_settings("ops", "", {rb}), "rooms.c", "kc", fast_timing());
  Net net({&a, &b, &c});
  net.user(c, join("cy@c.test/r", rc + "/cy"));
  REQUIRE(b.link_state(rc) == rooms::LinkState::Down);   // lazy: nobody needs it yet
  net.user(a, join("al@a.test/r", ra + "/al"));
  CHECK(b.local_occupants() == 0);
  CHECK(a.link_state(rb) == rooms::LinkState::Up);
  CHECK(b.link_state(rc) == rooms::LinkState::Up);        // joined for al, brought by A
  CHECK(c.remote_occupants() == 1);                       // al reached the far end
  CHECK(a.remote_occupants() == 1);                       // and cy reached A

  const std::size_t umark = net.users.size();
  net.user(a, say("al@a.test/r", ra, "through the middle", "m1"));
  CHECK(count_body(since(net, umark), "cy@c.test/r", "through the middle") == 1);
  const std::size_t umark2 = net.users.size();
  net.user(c, say("cy@c.test/r", rc, "back through", "m2"));
  CHECK(count_body(since(net, umark2), "al@a.test/r", "back through") == 1);

  // The last occupant that needed C leaves: B leaves C too (and nothing is left there).
  net.user(a, leave("al@a.test/r", ra + "/al"));
  CHECK(b.link_state(rc) == rooms::LinkState::Down);
  CHECK(c.remote_occupants() == 0);
}

TEST_CASE("federation: when a downstream node comes back, what the far end said meanwhile reaches it once",
          "[fmuc][federation][chain]") {
  // A middle room with no user of its own leaves the upstream room when its
  // downstream node is lost (the upstream room says <left/>: nobody of B's is
  // there); when A is back, B rejoins C naming the last message it had, so
  // what C said meanwhile comes down the chain to A exactly once.
  const std::string ra = "ops@rooms.a", rb = "ops@rooms.b", rc = "ops@rooms.c";
  Room a(room_settings("ops", rb), "rooms.a", "ka", fast_timing());
  Room b(room_settings("ops", rc, {ra}), "rooms.b", "kb", fast_timing());
  Room c(room_settings("ops", "", {rb}), "rooms.c", "kc", fast_timing());
  Net net({&a, &b, &c});
  net.user(c, join("cy@c.test/r", rc + "/cy"));
  net.user(a, join("al@a.test/r", ra + "/al"));
  net.user(c, say("cy@c.test/r", rc, "before", "w0"));
  REQUIRE(b.link_state(rc) == rooms::LinkState::Up);
  const std::size_t cut_mark = net.users.size();
  net.cut(a, b);
  CHECK(c.remote_occupants() == 0);   // al is gone from C's view
  // ... and C's users are told al was lost with a link (333), not that al left.
  bool lost_333 = false;
  const Outputs at_cut = since(net, cut_mark);
  for (const Element* e : sent_to(at_cut, "cy@c.test/r", "presence")) {
    if (e->attr_or("from") == rc + "/al" && is_unavailable(*e) && has_status(*e, 333)) lost_333 = true;
  }
  CHECK(lost_333);
  const std::size_t umark = net.users.size();
  net.user(c, say("cy@c.test/r", rc, "said while A was away", "w1"));
  REQUIRE(advance_until(net, [&] {
    return a.link_state(rb) == rooms::LinkState::Up && b.link_state(rc) == rooms::LinkState::Up &&
           c.remote_occupants() == 1;
  }));
  net.advance(500);
  const Outputs after = since(net, umark);
  CHECK(count_body(after, "al@a.test/r", "said while A was away") == 1);
  CHECK(count_body(after, "al@a.test/r", "before") == 0);   // already had it
  CHECK(count_body(after, "cy@c.test/r", "said while A was away") == 1);   // its own echo, once
}

TEST_CASE("federation: a join the boundary refuses is answered, and retried less and less often", "[fmuc][federation][loss]") {
  // The filter answers a refused MUC join with a presence error
  // (xmpp::may_bounce); the joining room backs off instead of asking (and
  // being refused, and audited) every retry interval.
  Pair p;
  std::vector<std::int64_t> joins;
  p.net.intercept = [&](const std::string& from, const Element& st) {
    if (from != kA || st.name() != "presence" || st.find_child("x", rooms::kNsMuc) == nullptr) return false;
    joins.push_back(p.net.now);
    REQUIRE(xmpp::may_bounce(st));
    Element err = xmpp::make_error_reply(
        st, {xmpp::StanzaErrorCondition::PolicyViolation, xmpp::StanzaErrorType::Modify, "not allowed", "", {}});
    Outputs out;
    p.a.on_peer(kB, err, p.net.now, out);
    p.net.pump(kA, std::move(out));
    return true;
  };
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  REQUIRE(joins.size() == 1);
  CHECK(p.a.link_state(kB) == rooms::LinkState::Down);
  p.net.advance(40000);
  // retry 1 s doubling: tries at about 0, 2, 6, 14, 30 s (never more often).
  REQUIRE(joins.size() >= 4);
  CHECK(joins.size() <= 6);
  for (std::size_t i = 2; i < joins.size(); ++i) {
    INFO("join " << i);
    CHECK(joins[i] - joins[i - 1] >= 2 * (joins[i - 1] - joins[i - 2]) - 200);
  }
  // The local half works meanwhile.
  const std::size_t umark = p.net.users.size();
  p.net.user(p.a, say(kAlice, kA, "alone"));
  CHECK(count_body(since(p.net, umark), kAlice, "alone") == 1);
}

TEST_CASE("federation: a join that gets no answer is retried at the usual pace", "[fmuc][federation][loss]") {
  Pair p;
  std::size_t joins = 0;
  p.net.intercept = [&](const std::string& from, const Element& st) {
    if (from == kA && st.name() == "presence" && st.find_child("x", rooms::kNsMuc) != nullptr) ++joins;
    return true;   // everything is lost in flight
  };
  p.net.user(p.a, join(kAlice, kA + "/alice"));
  p.net.advance(30000);
  // join timeout 2 s + retry 1 s: about one try every 3 s, no backoff.
  CHECK(joins >= 8);
}
