// The FMUC wire format (XEP-0289 <fmuc/>), the XEP-0359 origin key and the
// XEP-0203/0082/0091 delay stamps, as guard/rooms/fmuc.h reads and writes them.
#include "support.h"

using namespace rooms_test;
namespace rooms = portcullis::rooms;

namespace {
const std::string kF = "xmlns='http://isode.com/protocol/fmuc'";
}

TEST_CASE("read_fmuc tells a relay, a reject, a left and a plain stanza apart", "[fmuc][wire]") {
  SECTION("relay carries the author's real JID") {
    auto st = parse("<message xmlns='jabber:server' from='a@rooms.low/al' to='b@rooms.high' type='groupchat'>"
                    "<body>hi</body><fmuc " + kF + " from='alice@low.test/phone'/></message>");
    auto v = rooms::read_fmuc(st);
    CHECK(v.kind == rooms::FmucKind::Relay);
    CHECK(v.from == "alice@low.test/phone");
    CHECK(rooms::has_fmuc(st));
  }
  SECTION("reject with its text") {
    auto st = parse("<presence xmlns='jabber:server' from='b@rooms.high' to='a@rooms.low'>"
                    "<fmuc " + kF + "><reject>no circular federation</reject></fmuc></presence>");
    auto v = rooms::read_fmuc(st);
    CHECK(v.kind == rooms::FmucKind::Reject);
    CHECK(v.reject_text == "no circular federation");
    CHECK(v.from.empty());
  }
  SECTION("reject without text") {
    auto st = parse("<presence xmlns='jabber:server'><fmuc " + kF + "><reject/></fmuc></presence>");
    CHECK(rooms::read_fmuc(st).kind == rooms::FmucKind::Reject);
  }
  SECTION("left") {
    auto st = parse("<presence xmlns='jabber:server' from='b@rooms.high' to='a@rooms.low'>"
                    "<fmuc " + kF + "><left/></fmuc></presence>");
    CHECK(rooms::read_fmuc(st).kind == rooms::FmucKind::Left);
  }
  SECTION("none: no fmuc child, or one in another namespace") {
    auto plain = parse("<message xmlns='jabber:server' type='groupchat'><body>hi</body></message>");
    CHECK(rooms::read_fmuc(plain).kind == rooms::FmucKind::None);
    CHECK_FALSE(rooms::has_fmuc(plain));
    auto other = parse("<message xmlns='jabber:server'><fmuc xmlns='urn:example:not-fmuc' from='x@y'/></message>");
    CHECK(rooms::read_fmuc(other).kind == rooms::FmucKind::None);
    CHECK_FALSE(rooms::has_fmuc(other));
  }
}

TEST_CASE("set_fmuc_from replaces whatever fmuc the stanza had by exactly one relay marker", "[fmuc][wire]") {
  auto st = parse("<message xmlns='jabber:server' type='groupchat'><body>hi</body>"
                  "<fmuc " + kF + " from='mallory@evil.test/x'/><fmuc " + kF + "><reject/></fmuc></message>");
  rooms::set_fmuc_from(st, "alice@low.test/phone");
  CHECK(count_children(st, "fmuc", rooms::kNsFmuc) == 1);
  auto v = rooms::read_fmuc(st);
  CHECK(v.kind == rooms::FmucKind::Relay);
  CHECK(v.from == "alice@low.test/phone");
  CHECK(body_of(st) == "hi");

  auto fresh = parse("<presence xmlns='jabber:server'/>");
  rooms::set_fmuc_from(fresh, "bob@high.test/r");
  CHECK(rooms::read_fmuc(fresh).from == "bob@high.test/r");
}

TEST_CASE("strip_fmuc removes every fmuc child and nothing else", "[fmuc][wire]") {
  auto st = parse("<message xmlns='jabber:server' type='groupchat'><fmuc " + kF + " from='a@b/c'/>"
                  "<body>hi</body><fmuc " + kF + "><left/></fmuc><x xmlns='urn:example:keep'/></message>");
  rooms::strip_fmuc(st);
  CHECK_FALSE(rooms::has_fmuc(st));
  CHECK(count_children(st, "fmuc", rooms::kNsFmuc) == 0);
  CHECK(body_of(st) == "hi");
  CHECK(st.find_child("x", "urn:example:keep") != nullptr);
}

TEST_CASE("read_origin reads the first stanza-id and refuses unusable ones", "[fmuc][origin]") {
  SECTION("the first stanza-id is the origin") {
    auto st = parse("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' by='a@rooms.low' id='m-1'/>"
                    "<stanza-id xmlns='urn:xmpp:sid:0' by='b@rooms.high' id='other'/></message>");
    auto k = rooms::read_origin(st);
    REQUIRE(k);
    CHECK(k->by == "a@rooms.low");
    CHECK(k->id == "m-1");
    CHECK_FALSE(k->empty());
    CHECK(*k == rooms::OriginKey{"a@rooms.low", "m-1"});
  }
  SECTION("no stanza-id") {
    CHECK_FALSE(rooms::read_origin(parse("<message xmlns='jabber:server'><body>x</body></message>")));
  }
  SECTION("empty id or empty by") {
    CHECK_FALSE(rooms::read_origin(
        parse("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' by='a@rooms.low' id=''/></message>")));
    CHECK_FALSE(rooms::read_origin(
        parse("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' id='m-1'/></message>")));
  }
  SECTION("a huge id is refused (it would be kept in the dedupe set)") {
    const std::string huge(4096, 'x');
    CHECK_FALSE(rooms::read_origin(parse("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' "
                                         "by='a@rooms.low' id='" + huge + "'/></message>")));
    const std::string ok(128, 'y');
    CHECK(rooms::read_origin(parse("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:0' "
                                   "by='a@rooms.low' id='" + ok + "'/></message>")));
  }
  SECTION("a stanza-id in another namespace is not an origin") {
    CHECK_FALSE(rooms::read_origin(
        parse("<message xmlns='jabber:server'><stanza-id xmlns='urn:xmpp:sid:1' by='a@b' id='m'/></message>")));
  }
}

TEST_CASE("delay stamps: written as XEP-0082 UTC, read in every form the federation uses", "[fmuc][stamp]") {
  // 2012-04-19T16:00:44Z
  const std::int64_t t = 1334851244000;

  SECTION("format_stamp writes XEP-0082 with milliseconds and Z") {
    CHECK(rooms::format_stamp(t) == "2012-04-19T16:00:44.000Z");
    CHECK(rooms::format_stamp(t + 7) == "2012-04-19T16:00:44.007Z");
  }
  SECTION("round trip") {
    for (std::int64_t v : {std::int64_t{0}, t, t + 1, t + 999, kT0 + 123, std::int64_t{4102444799999}}) {
      INFO(v);
      auto back = rooms::parse_stamp(rooms::format_stamp(v));
      REQUIRE(back);
      CHECK(*back == v);
    }
  }
  SECTION("XEP-0082 without and with a fraction") {
    CHECK(rooms::parse_stamp("2012-04-19T16:00:44Z") == t);
    CHECK(rooms::parse_stamp("2012-04-19T16:00:44.123Z") == t + 123);
    CHECK(rooms::parse_stamp("2012-04-19T16:00:44.5Z") == t + 500);
    CHECK(rooms::parse_stamp("2012-04-19T16:00:44.123456Z") == t + 123);
  }
  SECTION("numeric offsets") {
    CHECK(rooms::parse_stamp("2012-04-19T18:00:44+02:00") == t);
    CHECK(rooms::parse_stamp("2012-04-19T11:30:44-04:30") == t);
    CHECK(rooms::parse_stamp("2012-04-19T16:00:44.250+00:00") == t + 250);
  }
  SECTION("legacy XEP-0091 form of the XEP-0289 examples") {
    CHECK(rooms::parse_stamp("20120419T16:00:44") == t);
  }
  SECTION("garbage is refused") {
    for (const char* bad : {"", "yesterday", "2012-04-19", "2012-04-19 16:00:44Z", "2012-13-19T16:00:44Z",
                            "2012-04-32T16:00:44Z", "2012-04-19T24:00:44Z", "2012-04-19T16:61:44Z",
                            "2012-04-19T16:00:44Zjunk", "2012-04-19T16:00:44.Z", "2012-04-19T16:00:44+0200",
                            "2012-4-19T16:00:44Z", "20120419", "2012-04-19T16:00"}) {
      INFO(bad);
      CHECK_FALSE(rooms::parse_stamp(bad));
    }
  }
}

TEST_CASE("read_delay reads <delay/> and the legacy <x xmlns='urn:xmpp:delay'/>", "[fmuc][stamp]") {
  const std::int64_t t = 1334851244000;
  CHECK(rooms::read_delay(parse("<message xmlns='jabber:server'><delay xmlns='urn:xmpp:delay' from='b@rooms.high' "
                                "stamp='2012-04-19T16:00:44Z'/></message>")) == t);
  CHECK(rooms::read_delay(parse("<message xmlns='jabber:server'><x xmlns='urn:xmpp:delay' "
                                "stamp='20120419T16:00:44'/></message>")) == t);
  CHECK_FALSE(rooms::read_delay(parse("<message xmlns='jabber:server'><body>now</body></message>")));
  CHECK_FALSE(rooms::read_delay(
      parse("<message xmlns='jabber:server'><delay xmlns='urn:xmpp:delay' stamp='not a date'/></message>")));
  // The old XEP-0091 namespace is not the delay of XEP-0203.
  CHECK_FALSE(rooms::read_delay(
      parse("<message xmlns='jabber:server'><x xmlns='jabber:x:delay' stamp='20120419T16:00:44'/></message>")));
}
