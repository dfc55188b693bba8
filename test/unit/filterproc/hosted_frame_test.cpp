// The filter's check of frames from rooms an edge hosts (auth Hosted,
// guard/filterproc/frame_check.h): the peer domain and `from` domain are a
// room service of the origin side, `from` names one of its rooms, `to` names
// the twin room the config pairs it with on the far side, and the stanza is
// FMUC traffic, an IQ ping or its empty result, or a well-formed error reply.
// check_frame is pure, so it is called directly on a boundary with rooms.
#include <catch2/catch.hpp>
#include <string>

#include "guard/filterproc/frame_check.h"
#include "guard/xmpp/stream_parser.h"
#include "test/unit/filterproc/filter_fixture.h"

using namespace portcullis;

namespace {

config::RoomSpec room(std::string name, std::string federate_with = {}, std::vector<std::string> accept_from = {}) {
  config::RoomSpec r;
  r.name = std::move(name);
  r.federate_with = std::move(federate_with);
  r.accept_from = std::move(accept_from);
  return r;
}

config::RoomServiceSpec service(std::string domain, std::vector<config::RoomSpec> rooms) {
  config::RoomServiceSpec s;
  s.domain = std::move(domain);
  s.rooms = std::move(rooms);
  return s;
}

// The fixture's boundary, with rooms: low hosts rooms.low.test (ops, which
// federates with ops@rooms.high.test, and lobby, unlinked) and more.low.test
// (ops, unlinked); high hosts rooms.high.test (ops, which accepts
// ops@rooms.low.test, and other, unlinked).
filterproc::Boundary rooms_boundary() {
  filterproc::Boundary b = filterproc_test::test_boundary();
  b.low.hosted = {service("rooms.low.test", {room("ops", "ops@rooms.high.test"), room("lobby")}),
                  service("more.low.test", {room("ops")})};
  b.high.hosted = {service("rooms.high.test", {room("ops", {}, {"ops@rooms.low.test"}), room("other")})};
  return b;
}

ipc::FrameHeader hosted_header(std::string peer = "rooms.low.test", ipc::Direction dir = ipc::Direction::LowToHigh) {
  ipc::FrameHeader h;
  h.kind = ipc::FrameKind::Stanza;
  h.direction = dir;
  h.auth = ipc::AuthMethod::Hosted;
  h.flags = 0;   // a hosted room has no stream of its own
  h.seq = 1;
  h.peer_domain = std::move(peer);
  return h;
}

xmpp::Element parse(const std::string& xml) {
  std::string error;
  auto e = xmpp::parse_element(xml, {}, &error);
  INFO(error);
  REQUIRE(e);
  return std::move(*e);
}

std::string fmuc_message(const std::string& from = "ops@rooms.low.test/nick",
                         const std::string& to = "ops@rooms.high.test") {
  return "<message xmlns='jabber:server' from='" + from + "' to='" + to +
         "' type='groupchat' id='g1'><body>words</body>"
         "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@a.test/r'/></message>";
}

filterproc::FrameCheck check(const std::string& xml, const ipc::FrameHeader& h = hosted_header(),
                             bool from_low = true) {
  const filterproc::Boundary b = rooms_boundary();
  const xmpp::Element s = parse(xml);
  return filterproc::check_frame(b, from_low, h, s);
}

void expect_accepted(const filterproc::FrameCheck& c) {
  INFO((c.refusal ? c.refusal->check + ": " + c.refusal->reason : std::string("no refusal")));
  CHECK_FALSE(c.refusal);
  CHECK(c.sender_verified);
}

void expect_refused(const filterproc::FrameCheck& c, const std::string& check, const std::string& reason_part) {
  REQUIRE(c.refusal);
  INFO(c.refusal->reason);
  CHECK(c.refusal->check == check);
  CHECK_THAT(c.refusal->reason, Catch::Contains(reason_part));
}

}  // namespace

TEST_CASE("hosted: a consistent FMUC frame from a room to its twin is accepted", "[filterproc][hosted][fmuc]") {
  SECTION("message, low to high") { expect_accepted(check(fmuc_message())); }
  SECTION("join presence, low to high") {
    expect_accepted(check("<presence xmlns='jabber:server' from='ops@rooms.low.test/nick' to='ops@rooms.high.test/nick'>"
                          "<x xmlns='http://jabber.org/protocol/muc'/>"
                          "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@a.test/r'/></presence>"));
  }
  SECTION("message, high to low: the twin accepts the room, so it may answer it") {
    expect_accepted(check(fmuc_message("ops@rooms.high.test/nick", "ops@rooms.low.test"),
                          hosted_header("rooms.high.test", ipc::Direction::HighToLow), false));
  }
  SECTION("the peer domain is compared as a domain (case-insensitive)") {
    expect_accepted(check(fmuc_message(), hosted_header("Rooms.Low.Test")));
  }
}

TEST_CASE("hosted: a peer domain that is not a room service of the origin side is refused",
          "[filterproc][hosted][fmuc]") {
  SECTION("a peer server's domain") {
    const auto c = check(fmuc_message("ops@a.test/nick"), hosted_header("a.test"));
    expect_refused(c, "hosted", "peer domain 'a.test', which is not a room service side low hosts");
    CHECK_FALSE(c.sender_verified);
  }
  SECTION("the far side's room service") {
    const auto c = check(fmuc_message("ops@rooms.high.test/nick", "ops@rooms.low.test"), hosted_header("rooms.high.test"));
    expect_refused(c, "hosted", "not a room service side low hosts");
  }
  SECTION("edge(high) claiming a low-side room") {
    const auto c = check(fmuc_message("ops@rooms.low.test/nick", "ops@rooms.high.test"),
                         hosted_header("rooms.low.test", ipc::Direction::HighToLow), false);
    expect_refused(c, "hosted", "not a room service side high hosts");
  }
}

TEST_CASE("hosted: a from domain that is not the frame's peer domain is refused", "[filterproc][hosted][fmuc]") {
  // more.low.test is a service of side low too, with a room ops: only the mismatch is wrong.
  const auto c = check(fmuc_message("ops@more.low.test/nick"), hosted_header("rooms.low.test"));
  expect_refused(c, "hosted", "or is not the 'from' domain");
  CHECK_FALSE(c.sender_verified);
}

TEST_CASE("hosted: a from that is not a configured room is refused", "[filterproc][hosted][fmuc]") {
  const auto c = check(fmuc_message("nope@rooms.low.test/nick"));
  expect_refused(c, "hosted", "'from' 'nope@rooms.low.test' is not a configured room");
  CHECK_FALSE(c.sender_verified);
  SECTION("nor is a malformed from") {
    expect_refused(check(fmuc_message("ops@@rooms.low.test/nick")), "from", "malformed or missing 'from'");
  }
}

TEST_CASE("hosted: a to that is not the room's twin is refused", "[filterproc][hosted][fmuc]") {
  SECTION("another room of the twin service") {
    expect_refused(check(fmuc_message("ops@rooms.low.test/nick", "other@rooms.high.test")), "hosted",
                   "room 'ops@rooms.low.test' is not configured to federate with 'other@rooms.high.test' on side high");
  }
  SECTION("an unlinked room of the origin sending to a paired room") {
    expect_refused(check(fmuc_message("lobby@rooms.low.test/nick", "ops@rooms.high.test")), "hosted",
                   "room 'lobby@rooms.low.test' is not configured to federate with 'ops@rooms.high.test'");
  }
  SECTION("a user of the far side rather than a room") {
    expect_refused(check(fmuc_message("ops@rooms.low.test/nick", "bob@b.test")), "hosted",
                   "is not configured to federate with 'bob@b.test'");
  }
  SECTION("a malformed to") {
    expect_refused(check(fmuc_message("ops@rooms.low.test/nick", "ops@@rooms.high.test")), "to",
                   "malformed or missing 'to'");
  }
}

TEST_CASE("hosted: a room sends only FMUC traffic, pings and error replies", "[filterproc][hosted][fmuc]") {
  const std::string head = "from='ops@rooms.low.test' to='ops@rooms.high.test'";
  SECTION("a message without <fmuc/> is refused") {
    expect_refused(check("<message xmlns='jabber:server' from='ops@rooms.low.test/nick' to='ops@rooms.high.test' "
                         "type='groupchat'><body>words</body></message>"),
                   "hosted", "a room sends only FMUC traffic, pings and error replies across, got <message/>");
  }
  SECTION("an <fmuc/> in another namespace is not FMUC") {
    expect_refused(check("<message xmlns='jabber:server' from='ops@rooms.low.test/nick' to='ops@rooms.high.test' "
                         "type='groupchat'><fmuc xmlns='urn:example:not-fmuc' from='alice@a.test/r'/></message>"),
                   "hosted", "a room sends only FMUC traffic");
  }
  SECTION("an iq ping get is accepted") {
    expect_accepted(check("<iq xmlns='jabber:server' " + head + " type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"));
  }
  SECTION("an empty iq result is accepted") {
    expect_accepted(check("<iq xmlns='jabber:server' " + head + " type='result' id='p1'/>"));
  }
  SECTION("an iq result with a payload is refused") {
    expect_refused(check("<iq xmlns='jabber:server' " + head +
                         " type='result' id='p1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
                   "hosted", "got <iq/> type 'result'");
  }
  SECTION("an iq get that is not a ping is refused") {
    expect_refused(check("<iq xmlns='jabber:server' " + head +
                         " type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"),
                   "hosted", "got <iq/> type 'get'");
  }
  SECTION("a ping with content, or beside another child, is refused") {
    expect_refused(check("<iq xmlns='jabber:server' " + head +
                         " type='get' id='p2'><ping xmlns='urn:xmpp:ping'><x xmlns='urn:example'/></ping></iq>"),
                   "hosted", "got <iq/>");
    expect_refused(check("<iq xmlns='jabber:server' " + head +
                         " type='get' id='p3'><ping xmlns='urn:xmpp:ping'/><x xmlns='urn:example'/></iq>"),
                   "hosted", "got <iq/>");
  }
  SECTION("a ping in the wrong namespace is refused") {
    expect_refused(check("<iq xmlns='jabber:server' " + head + " type='get' id='p4'><ping xmlns='urn:example'/></iq>"),
                   "hosted", "got <iq/>");
  }
  SECTION("an iq set is refused") {
    expect_refused(check("<iq xmlns='jabber:server' " + head +
                         " type='set' id='s1'><query xmlns='http://jabber.org/protocol/muc#admin'/></iq>"),
                   "hosted", "got <iq/> type 'set'");
  }
}

TEST_CASE("hosted: error replies must carry a well-formed <error/>", "[filterproc][hosted][fmuc]") {
  SECTION("a well-formed error reply is accepted") {
    expect_accepted(check("<message xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' "
                          "type='error' id='g1'><error type='cancel'><service-unavailable "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"));
  }
  SECTION("an error stanza without <error/> is refused") {
    expect_refused(check("<message xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' "
                         "type='error' id='g1'/>"),
                   "error-element", "error stanza without exactly one <error/>");
  }
  SECTION("an <error/> without a defined condition is refused") {
    expect_refused(check("<message xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' "
                         "type='error' id='g1'><error type='cancel'><made-up xmlns='urn:example'/></error></message>"),
                   "error-element", "one defined condition");
  }
  SECTION("an <error/> with an unknown type is refused") {
    expect_refused(check("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' "
                         "type='error' id='p1'><error type='whenever'><service-unavailable "
                         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"),
                   "error-element", "known type");
  }
}

TEST_CASE("hosted: auth hosted on the wrong direction is refused", "[filterproc][hosted][fmuc]") {
  SECTION("edge(low)'s channel claiming high-to-low") {
    const auto c = check(fmuc_message(), hosted_header("rooms.low.test", ipc::Direction::HighToLow), true);
    expect_refused(c, "direction", "frame on edge(low)'s channel claims direction");
    CHECK_FALSE(c.sender_verified);
  }
  SECTION("edge(high)'s channel claiming low-to-high") {
    const auto c = check(fmuc_message("ops@rooms.high.test/nick", "ops@rooms.low.test"),
                         hosted_header("rooms.high.test", ipc::Direction::LowToHigh), false);
    expect_refused(c, "direction", "frame on edge(high)'s channel claims direction");
  }
}

TEST_CASE("hosted: without rooms in the config every hosted frame is refused", "[filterproc][hosted][fmuc]") {
  const filterproc::Boundary b = filterproc_test::test_boundary();   // hosts nothing
  const xmpp::Element s = parse(fmuc_message());
  const auto c = filterproc::check_frame(b, true, hosted_header(), s);
  expect_refused(c, "hosted", "not a room service side low hosts");
}

TEST_CASE("hosted: FMUC content is one <fmuc/> holding only reject, left or resume", "[filterproc][hosted][fmuc]") {
  expect_accepted(check("<presence xmlns='jabber:server' from='ops@rooms.low.test/nick' to='ops@rooms.high.test/nick'>"
                        "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@a.test/r'>"
                        "<resume by='ops@rooms.high.test' id='x1'/></fmuc></presence>"));
  expect_refused(check("<message xmlns='jabber:server' from='ops@rooms.low.test/nick' to='ops@rooms.high.test' "
                       "type='groupchat'><body>b</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='a@a.test'/>"
                       "<fmuc xmlns='http://isode.com/protocol/fmuc' from='b@a.test'/></message>"),
                 "hosted", "one <fmuc/>");
  expect_refused(check("<message xmlns='jabber:server' from='ops@rooms.low.test/nick' to='ops@rooms.high.test' "
                       "type='groupchat'><body>b</body><fmuc xmlns='http://isode.com/protocol/fmuc' from='a@a.test'>"
                       "<x xmlns='urn:example'/></fmuc></message>"),
                 "hosted", "one <fmuc/>");
  // <fmuc/> makes neither an IQ nor anything but presence and message FMUC traffic.
  expect_refused(check("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' type='set' id='s'>"
                       "<query xmlns='urn:example'/><fmuc xmlns='http://isode.com/protocol/fmuc' from='a@a.test'/></iq>"),
                 "hosted", "only FMUC traffic");
}
