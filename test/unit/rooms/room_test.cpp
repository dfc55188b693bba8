// The hosted rooms (guard/rooms): the FMUC codec, one room's XEP-0045 core,
// and two or three federated rooms wired together (relay, loss, rejoin,
// backfill), driven directly: no network, an explicit clock.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "guard/rooms/bounded_ids.h"
#include "guard/rooms/fmuc.h"
#include "guard/rooms/room_service.h"
#include "guard/xmpp/stream_parser.h"

using namespace portcullis;
using rooms::Outputs;

namespace {

xmpp::Element el(const std::string& s) {
  std::string err;
  auto e = xmpp::parse_element(s, {}, &err);
  INFO(s << " " << err);
  REQUIRE(e.has_value());
  return *e;
}

std::string xml(const xmpp::Element& e) { return e.serialize(); }

config::RoomServiceSpec service(const std::string& domain, const std::string& upstream = {},
                                std::vector<std::string> downstream = {}, std::size_t history = 20) {
  config::RoomServiceSpec s;
  s.domain = domain;
  s.ping_interval_ms = 2000;
  s.retry_ms = 1000;
  config::RoomSpec r;
  r.name = "ops";
  r.subject = "initial";
  r.history = history;
  r.federate_with = upstream;
  r.accept_from = std::move(downstream);
  s.rooms = {r};
  return s;
}

std::string join(const std::string& from, const std::string& room_nick, const std::string& history = "") {
  return "<presence xmlns='jabber:server' from='" + from + "' to='" + room_nick +
         "'><x xmlns='http://jabber.org/protocol/muc'>" + history + "</x></presence>";
}

std::string groupchat(const std::string& from, const std::string& room, const std::string& body,
                      const std::string& id = "c1") {
  return "<message xmlns='jabber:server' from='" + from + "' to='" + room + "' type='groupchat' id='" + id +
         "'><body>" + body + "</body></message>";
}

// Outputs to one recipient (full JID), in order.
std::vector<xmpp::Element> to(const Outputs& out, const std::string& jid) {
  std::vector<xmpp::Element> v;
  for (const auto& o : out) {
    if (o.stanza.attr_or("to") == jid) v.push_back(o.stanza);
  }
  return v;
}

std::size_t peer_count(const Outputs& out) {
  std::size_t n = 0;
  for (const auto& o : out) n += o.to_peer ? 1 : 0;
  return n;
}

bool has_status(const xmpp::Element& p, const std::string& code) {
  return xml(p).find("code='" + code + "'") != std::string::npos;
}

// Several services whose peer outputs are delivered to each other while their link is up.
struct Net {
  std::map<std::string, rooms::RoomService*> by_domain;
  std::map<std::string, std::vector<xmpp::Element>> users;   // full JID -> what it got
  std::map<std::pair<std::string, std::string>, bool> down;  // (from domain, to domain)
  std::int64_t now = 1'700'000'000'000;
  std::size_t relays = 0;

  void add(rooms::RoomService& s) { by_domain[s.domain()] = &s; }
  void cut(const std::string& a, const std::string& b, bool is_down) {
    down[{a, b}] = is_down;
    down[{b, a}] = is_down;
  }
  void pump(Outputs out, const std::string& from_domain) {
    std::vector<std::pair<Outputs, std::string>> work{{std::move(out), from_domain}};
    for (int round = 0; round < 200 && !work.empty(); ++round) {
      auto batch = std::move(work);
      work.clear();
      for (auto& [outs, origin] : batch) {
        for (auto& o : outs) {
          const std::string t = o.stanza.attr_or("to");
          const std::string d = t.substr(t.find('@') + 1, t.find('/') == std::string::npos ? std::string::npos
                                                                                           : t.find('/') - t.find('@') - 1);
          if (!o.to_peer) {
            users[t].push_back(o.stanza);
            continue;
          }
          ++relays;
          if (down[{origin, d}] || by_domain.count(d) == 0) continue;
          Outputs next;
          by_domain[d]->on_federated(o.stanza, now, next);
          work.emplace_back(std::move(next), d);
        }
      }
    }
  }
  void local(rooms::RoomService& s, const std::string& stanza) {
    Outputs out;
    s.on_local(el(stanza), now, out);
    pump(std::move(out), s.domain());
  }
  void tick(rooms::RoomService& s, std::int64_t advance = 0) {
    now += advance;
    Outputs out;
    s.tick(now, out);
    pump(std::move(out), s.domain());
  }
  std::size_t bodies(const std::string& user, const std::string& body) {
    std::size_t n = 0;
    for (const auto& m : users[user]) {
      if (m.name() == "message" && xml(m).find("<body>" + body + "</body>") != std::string::npos) ++n;
    }
    return n;
  }
};

}  // namespace

TEST_CASE("fmuc codec: relay, reject, left, resume, origin and stamps", "[rooms][fmuc]") {
  auto relay = el("<presence xmlns='jabber:server'><fmuc xmlns='http://isode.com/protocol/fmuc' from='a@b/c'>"
                  "<resume by='r@s' id='x-1'/></fmuc></presence>");
  auto v = rooms::read_fmuc(relay);
  CHECK(v.kind == rooms::FmucKind::Relay);
  CHECK(v.from == "a@b/c");
  REQUIRE(v.resume.has_value());
  CHECK(v.resume->second == "x-1");
  CHECK(rooms::read_fmuc(el("<presence xmlns='jabber:server'><fmuc xmlns='http://isode.com/protocol/fmuc'>"
                            "<reject>no</reject></fmuc></presence>"))
            .reject_text == "no");
  CHECK(rooms::read_fmuc(el("<presence xmlns='jabber:server'><fmuc xmlns='http://isode.com/protocol/fmuc'><left/>"
                            "</fmuc></presence>"))
            .kind == rooms::FmucKind::Left);
  CHECK(rooms::read_fmuc(el("<presence xmlns='jabber:server'><fmuc xmlns='urn:other' from='x@y'/></presence>")).kind ==
        rooms::FmucKind::None);
  rooms::set_fmuc_from(relay, "p@q");
  CHECK(rooms::read_fmuc(relay).from == "p@q");
  rooms::strip_fmuc(relay);
  CHECK_FALSE(rooms::has_fmuc(relay));
  auto o = rooms::read_origin(el("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' by='r@s' id='7'/>"
                                 "</message>"));
  REQUIRE(o.has_value());
  CHECK(o->by == "r@s");
  CHECK_FALSE(rooms::read_origin(el("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' by='r@s' id=''/>"
                                    "</message>")));
  CHECK_FALSE(rooms::read_origin(el("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' by='r@s' id='" +
                                    std::string(200, 'x') + "'/></message>")));
  const std::int64_t t = 1'334'851'244'123;
  CHECK(rooms::parse_stamp(rooms::format_stamp(t)) == t);
  CHECK(rooms::parse_stamp("2012-04-19T16:00:44Z") == 1'334'851'244'000);
  CHECK(rooms::parse_stamp("2012-04-19T18:00:44+02:00") == 1'334'851'244'000);
  CHECK(rooms::parse_stamp("20120419T16:00:44") == 1'334'851'244'000);   // XEP-0091, as XEP-0289's examples
  CHECK_FALSE(rooms::parse_stamp("yesterday"));
  CHECK_FALSE(rooms::parse_stamp("2012-13-19T16:00:44Z"));
  CHECK(rooms::read_delay(el("<message xmlns='jabber:server'><x xmlns='urn:xmpp:delay' stamp='20120419T16:00:44'/>"
                             "</message>")) == 1'334'851'244'000);
}

TEST_CASE("a room: join order, 110 last, history, subject; conflicts and errors", "[rooms][muc]") {
  rooms::RoomService svc(service("rooms.low.test"), "key-0123456789abcdef");
  Net net;
  net.add(svc);
  net.local(svc, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  auto a = net.users["alice@a.test/r"];
  REQUIRE(a.size() == 2);
  CHECK(has_status(a[0], "110"));
  CHECK(xml(a[1]).find("<subject>initial</subject>") != std::string::npos);
  net.local(svc, groupchat("alice@a.test/r", "ops@rooms.low.test", "first", "cid-1"));
  auto echo = net.users["alice@a.test/r"].back();
  CHECK(echo.attr_or("from") == "ops@rooms.low.test/alice");
  CHECK(echo.attr_or("id") == "cid-1");   // muc#stable_id
  CHECK(xml(echo).find("urn:xmpp:sid:0") != std::string::npos);
  CHECK(xml(echo).find("urn:xmpp:occupant-id:0") != std::string::npos);

  net.local(svc, join("bob@a.test/r", "ops@rooms.low.test/bob", "<history maxstanzas='5'/>"));
  auto b = net.users["bob@a.test/r"];
  // alice's presence, then bob's own (110), then history (delayed), then the subject.
  REQUIRE(b.size() == 4);
  CHECK(b[0].attr_or("from") == "ops@rooms.low.test/alice");
  CHECK(has_status(b[1], "110"));
  CHECK(xml(b[2]).find("<body>first</body>") != std::string::npos);
  CHECK(xml(b[2]).find("urn:xmpp:delay") != std::string::npos);
  CHECK(xml(b[3]).find("<subject>") != std::string::npos);
  CHECK(net.users["alice@a.test/r"].back().attr_or("from") == "ops@rooms.low.test/bob");

  SECTION("maxchars='0' means no history") {
    net.local(svc, join("carol@a.test/r", "ops@rooms.low.test/carol", "<history maxchars='0'/>"));
    CHECK(net.bodies("carol@a.test/r", "first") == 0);
  }
  SECTION("a nick held by another user: conflict") {
    net.local(svc, join("mallory@a.test/r", "ops@rooms.low.test/alice"));
    auto m = net.users["mallory@a.test/r"];
    REQUIRE(m.size() == 1);
    CHECK(m[0].attr_or("type") == "error");
    CHECK(xml(m[0]).find("<conflict") != std::string::npos);
  }
  SECTION("the same user from a second resource shares the nick") {
    net.local(svc, join("alice@a.test/phone", "ops@rooms.low.test/alice"));
    net.local(svc, groupchat("bob@a.test/r", "ops@rooms.low.test", "to both"));
    CHECK(net.bodies("alice@a.test/r", "to both") == 1);
    CHECK(net.bodies("alice@a.test/phone", "to both") == 1);
  }
  SECTION("no nick, non-occupant, groupchat PM, unknown nick") {
    net.local(svc, "<presence xmlns='jabber:server' from='x@a.test/r' to='ops@rooms.low.test'>"
                   "<x xmlns='http://jabber.org/protocol/muc'/></presence>");
    CHECK(xml(net.users["x@a.test/r"].back()).find("jid-malformed") != std::string::npos);
    net.local(svc, groupchat("x@a.test/r", "ops@rooms.low.test", "hi"));
    CHECK(xml(net.users["x@a.test/r"].back()).find("not-acceptable") != std::string::npos);
    net.local(svc, "<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test/bob' type='groupchat'>"
                   "<body>x</body></message>");
    CHECK(xml(net.users["alice@a.test/r"].back()).find("bad-request") != std::string::npos);
    net.local(svc, "<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test/zed' type='chat'>"
                   "<body>x</body></message>");
    CHECK(xml(net.users["alice@a.test/r"].back()).find("item-not-found") != std::string::npos);
  }
  SECTION("a private message, a nick change, a self-ping, leaving") {
    net.local(svc, "<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test/bob' type='chat'>"
                   "<body>psst</body></message>");
    auto pm = net.users["bob@a.test/r"].back();
    CHECK(pm.attr_or("from") == "ops@rooms.low.test/alice");
    CHECK(xml(pm).find("muc#user") != std::string::npos);
    net.local(svc, "<presence xmlns='jabber:server' from='bob@a.test/r' to='ops@rooms.low.test/robert'/>");
    auto& al = net.users["alice@a.test/r"];
    REQUIRE(al.size() >= 2);
    CHECK(al[al.size() - 2].attr_or("type") == "unavailable");
    CHECK(has_status(al[al.size() - 2], "303"));
    CHECK(al.back().attr_or("from") == "ops@rooms.low.test/robert");
    net.local(svc, "<iq xmlns='jabber:server' from='bob@a.test/r' to='ops@rooms.low.test/robert' type='get' id='p'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK(net.users["bob@a.test/r"].back().attr_or("type") == "result");
    net.local(svc, "<iq xmlns='jabber:server' from='bob@a.test/r' to='ops@rooms.low.test/alice' type='get' id='p'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK(xml(net.users["bob@a.test/r"].back()).find("not-acceptable") != std::string::npos);
    net.local(svc, "<presence xmlns='jabber:server' from='bob@a.test/r' to='ops@rooms.low.test/robert' type='unavailable'/>");
    CHECK(has_status(net.users["bob@a.test/r"].back(), "110"));
    CHECK(net.users["alice@a.test/r"].back().attr_or("type") == "unavailable");
  }
  SECTION("disco of the service and the room; unknown rooms") {
    net.local(svc, "<iq xmlns='jabber:server' from='x@a.test/r' to='rooms.low.test' type='get' id='d'>"
                   "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    CHECK(xml(net.users["x@a.test/r"].back()).find("jid='ops@rooms.low.test'") != std::string::npos);
    net.local(svc, "<iq xmlns='jabber:server' from='x@a.test/r' to='ops@rooms.low.test' type='get' id='d'>"
                   "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    CHECK(xml(net.users["x@a.test/r"].back()).find("http://jabber.org/protocol/muc") != std::string::npos);
    net.local(svc, join("x@a.test/r", "nope@rooms.low.test/x"));
    CHECK(xml(net.users["x@a.test/r"].back()).find("item-not-found") != std::string::npos);
  }
}

TEST_CASE("a user's <fmuc/> is stripped: a user is not a node", "[rooms][fmuc]") {
  rooms::RoomService low(service("rooms.low.test", "ops@rooms.high.test"), "k0123456789abcdef");
  rooms::RoomService high(service("rooms.high.test", {}, {"ops@rooms.low.test"}), "k0123456789abcdef");
  Net net;
  net.add(low);
  net.add(high);
  net.local(high, join("bob@b.test/r", "ops@rooms.high.test/bob"));
  net.local(low, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  net.local(low, "<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test' type='groupchat' id='f'>"
                 "<body>spoof</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='general@b.test/hq'/></message>");
  REQUIRE(net.bodies("bob@b.test/r", "spoof") == 1);
  for (const auto& m : net.users["bob@b.test/r"]) CHECK(xml(m).find("general@b.test") == std::string::npos);
  for (const auto& m : net.users["alice@a.test/r"]) CHECK(xml(m).find("isode.com/protocol/fmuc") == std::string::npos);
}

TEST_CASE("federated rooms: lazy join, one copy per message, no echo, conflicts, PMs, subject", "[rooms][fmuc]") {
  rooms::RoomService low(service("rooms.low.test", "ops@rooms.high.test"), "k0123456789abcdef");
  rooms::RoomService high(service("rooms.high.test", {}, {"ops@rooms.low.test"}), "k0123456789abcdef");
  Net net;
  net.add(low);
  net.add(high);
  for (int i = 0; i < 10; ++i) {
    net.local(high, join("u" + std::to_string(i) + "@b.test/r", "ops@rooms.high.test/u" + std::to_string(i)));
  }
  CHECK(net.relays == 0);   // no local occupant on the low side yet: no federation (lazy)
  net.local(low, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  CHECK(low.room("ops")->link_state("ops@rooms.high.test") == rooms::LinkState::Up);
  CHECK(low.room("ops")->remote_occupants() == 10);
  CHECK(high.room("ops")->remote_occupants() == 1);

  Outputs out;
  low.on_local(el(groupchat("alice@a.test/r", "ops@rooms.low.test", "one copy")), net.now, out);
  CHECK(peer_count(out) == 1);   // ten far occupants, one copy across
  net.pump(std::move(out), "rooms.low.test");
  for (int i = 0; i < 10; ++i) CHECK(net.bodies("u" + std::to_string(i) + "@b.test/r", "one copy") == 1);
  CHECK(net.bodies("alice@a.test/r", "one copy") == 1);   // no echo back from the twin

  net.local(high, groupchat("u3@b.test/r", "ops@rooms.high.test", "from high"));
  CHECK(net.bodies("alice@a.test/r", "from high") == 1);
  CHECK(net.users["alice@a.test/r"].back().attr_or("from") == "ops@rooms.low.test/u3");

  net.local(low, join("mallory@a.test/r", "ops@rooms.low.test/u3"));
  CHECK(xml(net.users["mallory@a.test/r"].back()).find("<conflict") != std::string::npos);

  net.local(high, "<message xmlns='jabber:server' from='u1@b.test/r' to='ops@rooms.high.test/alice' type='chat'>"
                  "<body>pm across</body></message>");
  CHECK(net.bodies("alice@a.test/r", "pm across") == 1);
  CHECK(net.users["alice@a.test/r"].back().attr_or("from") == "ops@rooms.low.test/u1");

  net.local(low, "<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test' type='groupchat'>"
                 "<subject>new plan</subject></message>");
  CHECK(high.room("ops")->subject() == "new plan");

  SECTION("a relay refused on the way: the author is told, the local half has it") {
    Outputs o;
    low.on_local(el(groupchat("alice@a.test/r", "ops@rooms.low.test", "secret", "cid-9")), net.now, o);
    std::string relay_id;
    for (const auto& x : o) {
      if (x.to_peer) relay_id = x.stanza.attr_or("id");
    }
    REQUIRE_FALSE(relay_id.empty());
    Outputs e;
    low.on_federated(el("<message xmlns='jabber:server' from='ops@rooms.high.test' to='ops@rooms.low.test/alice' "
                        "type='error' id='" + relay_id + "'><error type='modify'><policy-violation "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"),
                     net.now, e);
    auto told = to(e, "alice@a.test/r");
    REQUIRE(told.size() == 1);
    CHECK(told[0].attr_or("type") == "error");
    CHECK(told[0].attr_or("id") == "cid-9");
    CHECK(xml(told[0]).find("policy-violation") != std::string::npos);
    CHECK(low.room("ops")->link_state("ops@rooms.high.test") == rooms::LinkState::Up);   // not a link failure
  }
  SECTION("a message that comes again (a loop, an overlapping backfill) is dropped") {
    const std::string relay = "<message xmlns='jabber:server' from='ops@rooms.high.test/u2' to='ops@rooms.low.test' "
                              "type='groupchat' id='h-77'><body>twice</body><fmuc xmlns='http://isode.com/protocol/fmuc' "
                              "from='u2@anon.test/1'/><stanza-id xmlns='urn:xmpp:sid:0' by='ops@rooms.high.test' "
                              "id='h-77'/></message>";
    for (int i = 0; i < 2; ++i) {
      Outputs o;
      low.on_federated(el(relay), net.now, o);
      net.pump(std::move(o), "rooms.low.test");
    }
    CHECK(net.bodies("alice@a.test/r", "twice") == 1);
    CHECK(low.room("ops")->counters().duplicates_dropped == 1);
  }
  SECTION("a room that is not configured may not join") {
    Outputs e;
    high.on_federated(el("<presence xmlns='jabber:server' from='ops@rooms.evil.test/x' to='ops@rooms.high.test/x'>"
                         "<fmuc xmlns='http://isode.com/protocol/fmuc' from='x@evil.test'/>"
                         "<x xmlns='http://jabber.org/protocol/muc'/><x xmlns='http://jabber.org/protocol/muc#user'/>"
                         "</presence>"),
                      net.now, e);
    REQUIRE(e.size() == 1);
    CHECK(xml(e[0].stanza).find("not-allowed") != std::string::npos);
    CHECK(high.room("ops")->remote_occupants() == 1);
  }
}

TEST_CASE("federated rooms: loss (333), both halves go on, rejoin and backfill each message once", "[rooms][fmuc]") {
  rooms::RoomService low(service("rooms.low.test", "ops@rooms.high.test"), "k0123456789abcdef");
  rooms::RoomService high(service("rooms.high.test", {}, {"ops@rooms.low.test"}), "k0123456789abcdef");
  Net net;
  net.add(low);
  net.add(high);
  net.local(high, join("bob@b.test/r", "ops@rooms.high.test/bob"));
  net.local(low, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  net.local(low, groupchat("alice@a.test/r", "ops@rooms.low.test", "before"));
  REQUIRE(net.bodies("bob@b.test/r", "before") == 1);

  // The link goes silent: pings go unanswered, the upstream room notices.
  net.cut("rooms.low.test", "rooms.high.test", true);
  net.local(low, groupchat("alice@a.test/r", "ops@rooms.low.test", "lost in flight"));
  for (int i = 0; i < 6; ++i) {
    net.tick(low, 2000);
    net.tick(high, 0);
  }
  CHECK(low.room("ops")->link_state("ops@rooms.high.test") != rooms::LinkState::Up);
  bool saw333 = false;
  for (const auto& p : net.users["alice@a.test/r"]) {
    if (p.name() == "presence" && p.attr_or("from") == "ops@rooms.low.test/bob" && has_status(p, "333")) saw333 = true;
  }
  CHECK(saw333);
  CHECK(low.room("ops")->remote_occupants() == 0);
  net.local(low, groupchat("alice@a.test/r", "ops@rooms.low.test", "low alone"));
  net.local(high, groupchat("bob@b.test/r", "ops@rooms.high.test", "high alone"));
  CHECK(net.bodies("alice@a.test/r", "low alone") == 1);
  CHECK(net.bodies("bob@b.test/r", "high alone") == 1);
  for (int i = 0; i < 4; ++i) net.tick(high, 2000);   // the joined side notices the silence too
  CHECK(high.room("ops")->link_state("ops@rooms.low.test") == rooms::LinkState::Down);

  // Back: the low room rejoins by itself; each half gets what it missed, delayed, once.
  net.cut("rooms.low.test", "rooms.high.test", false);
  for (int i = 0; i < 3; ++i) net.tick(low, 1500);
  CHECK(low.room("ops")->link_state("ops@rooms.high.test") == rooms::LinkState::Up);
  CHECK(net.bodies("bob@b.test/r", "lost in flight") == 1);   // sent while the link was silently dead
  CHECK(net.bodies("bob@b.test/r", "low alone") == 1);
  CHECK(net.bodies("alice@a.test/r", "high alone") == 1);
  CHECK(net.bodies("bob@b.test/r", "before") == 1);            // not again
  CHECK(net.bodies("alice@a.test/r", "before") == 1);
  for (const auto& m : net.users["bob@b.test/r"]) {
    if (xml(m).find("<body>low alone</body>") != std::string::npos) CHECK(xml(m).find("urn:xmpp:delay") != std::string::npos);
  }
  // A second loss and rejoin over the same history delivers nothing twice.
  Outputs o;
  low.links_lost([](const std::string&) { return true; }, "test", net.now, o);
  net.pump(std::move(o), "rooms.low.test");
  for (int i = 0; i < 3; ++i) net.tick(low, 1500);
  CHECK(net.bodies("bob@b.test/r", "low alone") == 1);
  CHECK(net.bodies("alice@a.test/r", "high alone") == 1);
  CHECK(net.bodies("bob@b.test/r", "lost in flight") == 1);
}

TEST_CASE("a chain of three rooms: each message reaches every node once and never comes back", "[rooms][fmuc]") {
  rooms::RoomService a(service("rooms.a.test", "ops@rooms.b.test"), "k0123456789abcdef");
  rooms::RoomService b(service("rooms.b.test", "ops@rooms.c.test", {"ops@rooms.a.test"}), "k0123456789abcdef");
  rooms::RoomService c(service("rooms.c.test", {}, {"ops@rooms.b.test"}), "k0123456789abcdef");
  Net net;
  net.add(a);
  net.add(b);
  net.add(c);
  net.local(c, join("carol@c.test/r", "ops@rooms.c.test/carol"));
  net.local(b, join("bob@b.test/r", "ops@rooms.b.test/bob"));
  net.local(a, join("alice@a.test/r", "ops@rooms.a.test/alice"));
  CHECK(c.room("ops")->remote_occupants() == 2);
  CHECK(a.room("ops")->remote_occupants() == 2);
  net.local(a, groupchat("alice@a.test/r", "ops@rooms.a.test", "down the chain"));
  CHECK(net.bodies("carol@c.test/r", "down the chain") == 1);
  CHECK(net.bodies("bob@b.test/r", "down the chain") == 1);
  CHECK(net.bodies("alice@a.test/r", "down the chain") == 1);
  CHECK(a.room("ops")->counters().duplicates_dropped == 0);
  net.local(c, groupchat("carol@c.test/r", "ops@rooms.c.test", "up the chain"));
  CHECK(net.bodies("alice@a.test/r", "up the chain") == 1);
  CHECK(net.bodies("carol@c.test/r", "up the chain") == 1);
}

TEST_CASE("a federated node speaks only for the occupants it brought", "[rooms][fmuc]") {
  rooms::RoomService low(service("rooms.low.test", "ops@rooms.high.test"), "k0123456789abcdef");
  rooms::RoomService high(service("rooms.high.test", {}, {"ops@rooms.low.test"}), "k0123456789abcdef");
  Net net;
  net.add(low);
  net.add(high);
  net.local(high, join("bob@b.test/r", "ops@rooms.high.test/bob"));
  net.local(low, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  net.local(low, join("carol@a.test/r", "ops@rooms.low.test/carol"));
  const std::size_t before = net.users["carol@a.test/r"].size();
  auto forged = [&](const std::string& stanza) {
    Outputs o;
    low.on_federated(el(stanza), net.now, o);
    net.pump(std::move(o), "rooms.low.test");
  };
  // A groupchat, a PM and a subject under a local occupant's nick.
  forged("<message xmlns='jabber:server' from='ops@rooms.high.test/alice' to='ops@rooms.low.test' type='groupchat' "
         "id='f1'><body>I am alice</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='x@anon.test'/></message>");
  forged("<message xmlns='jabber:server' from='ops@rooms.high.test/alice' to='ops@rooms.low.test/carol' type='chat'>"
         "<body>pm as alice</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='x@anon.test'/></message>");
  forged("<message xmlns='jabber:server' from='ops@rooms.high.test/alice' to='ops@rooms.low.test' type='groupchat'>"
         "<subject>forged</subject><fmuc xmlns='http://isode.com/protocol/fmuc' from='x@anon.test'/></message>");
  // A relay claiming this room's own message id.
  forged("<message xmlns='jabber:server' from='ops@rooms.high.test/bob' to='ops@rooms.low.test' type='groupchat' id='f2'>"
         "<body>own id</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='x@anon.test'/>"
         "<stanza-id xmlns='urn:xmpp:sid:0' by='ops@rooms.low.test' id='abc'/></message>");
  CHECK(net.users["carol@a.test/r"].size() == before);
  CHECK(low.room("ops")->subject() == "initial");
  CHECK(low.room("ops")->counters().refused_from_peer == 4);
  // A conflict error long after alice joined does not remove her.
  net.now += 60000;
  forged("<presence xmlns='jabber:server' from='ops@rooms.high.test/alice' to='ops@rooms.low.test/alice' type='error'>"
         "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
  CHECK(low.room("ops")->local_occupants() == 2);
  // bob (whom the node brought) still speaks.
  forged("<message xmlns='jabber:server' from='ops@rooms.high.test/bob' to='ops@rooms.low.test' type='groupchat' id='f3'>"
         "<body>really bob</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='x@anon.test'/>"
         "<stanza-id xmlns='urn:xmpp:sid:0' by='ops@rooms.high.test' id='h-9'/></message>");
  CHECK(net.bodies("carol@a.test/r", "really bob") == 1);
}

TEST_CASE("a labelled subject keeps its label, locally and across", "[rooms][fmuc]") {
  rooms::RoomService low(service("rooms.low.test", "ops@rooms.high.test"), "k0123456789abcdef");
  rooms::RoomService high(service("rooms.high.test", {}, {"ops@rooms.low.test"}), "k0123456789abcdef");
  Net net;
  net.add(low);
  net.add(high);
  net.local(high, join("bob@b.test/r", "ops@rooms.high.test/bob"));
  net.local(low, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  Outputs o;
  high.on_local(el("<message xmlns='jabber:server' from='bob@b.test/r' to='ops@rooms.high.test' type='groupchat'>"
                   "<subject>secret plan</subject><securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>SECRET"
                   "</displaymarking><label><x xmlns='urn:example'/></label></securitylabel></message>"),
                net.now, o);
  bool relay_labelled = false;
  for (const auto& x : o) {
    if (x.to_peer && xml(x.stanza).find("<subject>secret plan</subject>") != std::string::npos) {
      relay_labelled = xml(x.stanza).find("urn:xmpp:sec-label:0") != std::string::npos;
    }
  }
  CHECK(relay_labelled);   // the boundary judges the subject by its own label
  net.pump(std::move(o), "rooms.high.test");
  // A later joiner on the high side gets the subject with its label.
  net.local(high, join("dave@b.test/r", "ops@rooms.high.test/dave"));
  const auto& d = net.users["dave@b.test/r"];
  REQUIRE_FALSE(d.empty());
  CHECK(xml(d.back()).find("<subject>secret plan</subject>") != std::string::npos);
  CHECK(xml(d.back()).find("SECRET") != std::string::npos);
}

TEST_CASE("a subject set on the joining half survives a rejoin", "[rooms][fmuc]") {
  rooms::RoomService low(service("rooms.low.test", "ops@rooms.high.test"), "k0123456789abcdef");
  rooms::RoomService high(service("rooms.high.test", {}, {"ops@rooms.low.test"}), "k0123456789abcdef");
  Net net;
  net.add(low);
  net.add(high);
  net.local(high, join("bob@b.test/r", "ops@rooms.high.test/bob"));
  net.local(low, join("alice@a.test/r", "ops@rooms.low.test/alice"));
  net.local(low, "<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test' type='groupchat'>"
                 "<subject>set by alice</subject></message>");
  REQUIRE(high.room("ops")->subject() == "set by alice");
  Outputs o;
  low.links_lost([](const std::string&) { return true; }, "test", net.now, o);
  high.links_lost([](const std::string&) { return true; }, "test", net.now, o);
  net.pump(std::move(o), "rooms.low.test");
  for (int i = 0; i < 3; ++i) net.tick(low, 1500);
  // The join answer ends with the subject alice set: from the room, so alice's own room takes it.
  CHECK(low.room("ops")->link_state("ops@rooms.high.test") == rooms::LinkState::Up);
  CHECK(low.room("ops")->counters().refused_from_peer == 0);
}

TEST_CASE("a room's relay-id memory keeps the newest ids, the first entry for an id standing", "[rooms]") {
  portcullis::rooms::BoundedIds<int> ids(3);
  CHECK(ids.insert("a", 1));
  CHECK_FALSE(ids.insert("a", 2));   // a repeat changes nothing
  REQUIRE(ids.find("a") != nullptr);
  CHECK(*ids.find("a") == 1);
  CHECK(ids.insert("b", 2));
  CHECK(ids.insert("c", 3));
  CHECK(ids.insert("d", 4));   // past the bound: the oldest ("a") goes
  CHECK(ids.find("a") == nullptr);
  CHECK(ids.find("b") != nullptr);
  CHECK(ids.find("d") != nullptr);
  CHECK(ids.insert("a", 5));   // forgotten, so new again
  CHECK(ids.find("b") == nullptr);
}
