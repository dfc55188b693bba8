// Stream error bytes, stanza error helpers and bounce rules.
#include <catch2/catch.hpp>

#include <string>

#include "guard/xmpp/stream_error.h"
#include "guard/xmpp/stream_parser.h"

using namespace portcullis::xmpp;

namespace {
Element stanza(const std::string& xml) {
  auto e = parse_element(xml);
  REQUIRE(e.has_value());
  return std::move(*e);
}
}  // namespace

TEST_CASE("stream errors: names and bytes", "[xmpp][errors]") {
  CHECK(to_string(StreamErrorCondition::BadFormat) == "bad-format");
  CHECK(to_string(StreamErrorCondition::RestrictedXml) == "restricted-xml");
  CHECK(to_string(StreamErrorCondition::NotWellFormed) == "not-well-formed");
  CHECK(to_string(StreamErrorCondition::UnsupportedVersion) == "unsupported-version");
  CHECK(to_string(StreamErrorCondition::PolicyViolation) == "policy-violation");

  CHECK(stream_error_bytes(StreamErrorCondition::HostUnknown) ==
        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
  Element app(std::string(kNsXmppErrors), "stanza-too-big");
  CHECK(stream_error_bytes(StreamErrorCondition::PolicyViolation, "too <big>", &app) ==
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>too &lt;big&gt;</text>"
        "<stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>");
}

TEST_CASE("stanza errors: names, parsing, default types", "[xmpp][errors]") {
  CHECK(to_string(StanzaErrorCondition::ServiceUnavailable) == "service-unavailable");
  CHECK(to_string(StanzaErrorCondition::UnexpectedRequest) == "unexpected-request");
  CHECK(to_string(StanzaErrorType::Modify) == "modify");
  for (int i = 0; i <= static_cast<int>(StanzaErrorCondition::UnexpectedRequest); ++i) {
    const auto c = static_cast<StanzaErrorCondition>(i);
    CHECK(stanza_error_condition_from_string(to_string(c)) == c);
  }
  CHECK_FALSE(stanza_error_condition_from_string("no-such-condition").has_value());
  CHECK(default_type(StanzaErrorCondition::Forbidden) == StanzaErrorType::Auth);
  CHECK(default_type(StanzaErrorCondition::BadRequest) == StanzaErrorType::Modify);
  CHECK(default_type(StanzaErrorCondition::RemoteServerTimeout) == StanzaErrorType::Wait);
  CHECK(default_type(StanzaErrorCondition::ServiceUnavailable) == StanzaErrorType::Cancel);
  CHECK(default_type(StanzaErrorCondition::PolicyViolation) == StanzaErrorType::Modify);
}

TEST_CASE("may_bounce follows RFC 6120/6121", "[xmpp][errors]") {
  CHECK(may_bounce(stanza("<iq type='get' id='1'/>")));
  CHECK(may_bounce(stanza("<iq type='set' id='1'/>")));
  CHECK_FALSE(may_bounce(stanza("<iq type='result' id='1'/>")));
  CHECK_FALSE(may_bounce(stanza("<iq type='error' id='1'/>")));
  CHECK_FALSE(may_bounce(stanza("<iq id='1'/>")));
  CHECK(may_bounce(stanza("<message/>")));
  CHECK(may_bounce(stanza("<message type='chat'/>")));
  CHECK(may_bounce(stanza("<message type='normal'/>")));
  CHECK(may_bounce(stanza("<message type='groupchat'/>")));
  CHECK_FALSE(may_bounce(stanza("<message type='headline'/>")));
  CHECK_FALSE(may_bounce(stanza("<message type='error'/>")));
  CHECK_FALSE(may_bounce(stanza("<presence/>")));
  CHECK_FALSE(may_bounce(stanza("<presence type='subscribe'/>")));
  CHECK_FALSE(may_bounce(stanza("<presence type='probe'/>")));
  CHECK_FALSE(may_bounce(stanza("<presence type='error'/>")));
  // A MUC join is answered: its failure is a presence error (XEP-0045 §7.2).
  CHECK(may_bounce(stanza("<presence><x xmlns='http://jabber.org/protocol/muc'/></presence>")));
  CHECK_FALSE(may_bounce(stanza("<presence type='unavailable'><x xmlns='http://jabber.org/protocol/muc'/></presence>")));
  CHECK_FALSE(may_bounce(stanza("<presence type='error'><x xmlns='http://jabber.org/protocol/muc'/></presence>")));
  CHECK_FALSE(may_bounce(stanza("<presence><x xmlns='http://jabber.org/protocol/muc#user'/></presence>")));
  CHECK_FALSE(may_bounce(stanza("<db:result xmlns:db='jabber:server:dialback' type='valid'/>")));
}

TEST_CASE("make_error_reply swaps addresses and drops the payload", "[xmpp][errors]") {
  Element m = stanza(
      "<message xmlns='jabber:server' from='u@low.example/r' to='v@high.example' id='m1' "
      "type='chat'><body>SECRET</body><securitylabel xmlns='urn:xmpp:sec-label:0'/></message>");
  StanzaError err;
  err.condition = StanzaErrorCondition::PolicyViolation;
  err.type = default_type(err.condition);
  err.text = "blocked by policy";
  err.by = "guard.example";
  const std::string out = make_error_reply(m, err).serialize();
  CHECK(out ==
        "<message xmlns='jabber:server' from='v@high.example' to='u@low.example/r' id='m1' "
        "type='error'><error type='modify' by='guard.example'>"
        "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>blocked by policy</text>"
        "</error></message>");
  CHECK(out.find("SECRET") == std::string::npos);

  StanzaError big;
  big.condition = StanzaErrorCondition::NotAllowed;
  big.type = StanzaErrorType::Modify;
  big.app = Element(std::string(kNsXmppErrors), "stanza-too-big");
  Element iq = stanza("<iq from='a.example' to='b.example' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>");
  const Element reply = make_error_reply(iq, big);
  CHECK(reply.serialize() ==
        "<iq xmlns='jabber:server' from='b.example' to='a.example' id='q' type='error'>"
        "<error type='modify'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<stanza-too-big xmlns='urn:xmpp:errors'/></error></iq>");
  CHECK_FALSE(may_bounce(reply));
  // The reply parses and re-serializes to itself.
  auto back = parse_element(reply.serialize());
  REQUIRE(back.has_value());
  CHECK(back->serialize() == reply.serialize());

  Element c = stanza("<message xmlns='jabber:client' to='x@y'/>");
  CHECK(make_error_reply(c, err).ns() == "jabber:client");
}

TEST_CASE("read_stanza_error keeps only the closed parts of an <error/>", "[xmpp][stanza-error]") {
  const std::string s = "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'";
  auto read = [](const std::string& err) {
    return read_stanza_error(
        stanza("<message xmlns='jabber:server' from='a@b' to='c@d' type='error'>" + err + "</message>"));
  };
  auto e = read("<error type='wait' by='x.example'><remote-server-timeout " + s + "/><text " + s +
                ">far text</text><app xmlns='urn:example'/></error>");
  REQUIRE(e.has_value());
  CHECK(e->condition == StanzaErrorCondition::RemoteServerTimeout);
  CHECK(e->type == StanzaErrorType::Wait);
  CHECK(e->text.empty());
  CHECK(e->by.empty());
  CHECK_FALSE(e->app.has_value());

  CHECK(read("<error type='cancel'><gone " + s + ">xmpp:x@y</gone></error>")->condition == StanzaErrorCondition::Gone);
  CHECK_FALSE(read("").has_value());                                                          // no <error/>
  CHECK_FALSE(read("<error type='cancel'/>").has_value());                                    // no condition
  CHECK_FALSE(read("<error type='cancel'><made-up " + s + "/></error>").has_value());         // unknown
  CHECK_FALSE(read("<error type='nope'><conflict " + s + "/></error>").has_value());          // unknown type
  CHECK_FALSE(read("<error type='cancel'><conflict " + s + "/><gone " + s + "/></error>").has_value());
  CHECK_FALSE(read("<error type='cancel'><conflict " + s + "/></error><error type='cancel'><gone " + s +
                   "/></error>").has_value());                                                // two <error/>
  CHECK_FALSE(read("<error xmlns='urn:other' type='cancel'><conflict " + s + "/></error>").has_value());
  CHECK(stanza_error_type_from_string("modify") == StanzaErrorType::Modify);
  CHECK_FALSE(stanza_error_type_from_string("Modify").has_value());
}
