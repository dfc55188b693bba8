// stanza-kinds (policy/content/stanza_kinds.h).
#include <catch2/catch.hpp>

#include "policy/content/stanza_kinds.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;
using test::note;
using xmpp::StanzaErrorCondition;

namespace {

constexpr std::string_view kPolicy =
    "<stanza-kinds xmlns='urn:portcullis:policy:1' name='kinds'>"
    "  <message id='msg' max-bytes='1024' types='normal chat error'/>"
    "  <presence id='pres' types='available unavailable'/>"
    "  <iq id='iq' types='get set result error'>"
    "    <payload id='ping' ns='urn:xmpp:ping' element='ping'/>"
    "    <payload id='version' ns='jabber:iq:version'/>"
    "  </iq>"
    "</stanza-kinds>";

struct KindsFixture {
  policy::PolicyNode node = test::policy_node(kPolicy);
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;   // wire_bytes 0: the filter measures the stanza
};

constexpr std::string_view kChat =
    "<message xmlns='jabber:server' from='alice@low.example/a' to='bob@high.example' type='chat' id='m1'>"
    "<body>Lunch?</body></message>";

}  // namespace

TEST_CASE_METHOD(KindsFixture, "an allowed chat message gets no opinion with the kind's rule", "[content][stanza-kinds]") {
  auto m = test::stanza(kChat);
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "msg");
  CHECK_FALSE(v.error);
}

TEST_CASE_METHOD(KindsFixture, "a message without type counts as normal", "[content][stanza-kinds]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example' to='b@high.example'><body>x</body></message>");
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::NoOpinion);
}

TEST_CASE_METHOD(KindsFixture, "an oversized message is refused with stanza-too-big", "[content][stanza-kinds]") {
  auto m = test::stanza(kChat);
  ctx.wire_bytes = 1025;
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "msg");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::NotAllowed);
  CHECK(v.error->type == xmpp::StanzaErrorType::Modify);
  REQUIRE(v.error->app);
  CHECK(v.error->app->serialize() == "<stanza-too-big xmlns='urn:xmpp:errors'/>");
  CHECK(v.error->text == "stanza larger than 1024 bytes");
  CHECK(note(v, "check") == "size");
}

TEST_CASE_METHOD(KindsFixture, "the size is measured when the wire size is unknown", "[content][stanza-kinds]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example' to='b@high.example' type='chat'><body>" +
                        std::string(2000, 'x') + "</body></message>");
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(note(v, "check") == "size");
}

TEST_CASE_METHOD(KindsFixture, "a headline message is a type not allowed", "[content][stanza-kinds]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='pubsub.low.example' to='b@high.example' type='headline'>"
                        "<event xmlns='http://jabber.org/protocol/pubsub#event'/></message>");
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "msg");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(note(v, "check") == "type");
}

TEST_CASE_METHOD(KindsFixture, "a subscription request is a presence type not allowed", "[content][stanza-kinds]") {
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example' to='b@high.example' type='subscribe'/>");
  const auto v = filter->evaluate(p, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "pres");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
}

TEST_CASE_METHOD(KindsFixture, "an allowed iq request names its payload rule", "[content][stanza-kinds]") {
  auto iq = test::stanza("<iq xmlns='jabber:server' from='low.example' to='high.example' type='get' id='p1'>"
                         "<ping xmlns='urn:xmpp:ping'/></iq>");
  const auto v = filter->evaluate(iq, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "iq");
  CHECK(note(v, "payload") == "ping");
}

TEST_CASE_METHOD(KindsFixture, "an iq request in an unlisted namespace is service-unavailable", "[content][stanza-kinds]") {
  auto iq = test::stanza("<iq xmlns='jabber:server' from='a@low.example/r' to='high.example' type='get' id='d1'>"
                         "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  const auto v = filter->evaluate(iq, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "iq");
  CHECK(v.error->condition == StanzaErrorCondition::ServiceUnavailable);
  CHECK(note(v, "check") == "payload");
}

TEST_CASE_METHOD(KindsFixture, "a payload entry with an element name needs that element", "[content][stanza-kinds]") {
  auto iq = test::stanza("<iq xmlns='jabber:server' from='low.example' to='high.example' type='get' id='p2'>"
                         "<pong xmlns='urn:xmpp:ping'/></iq>");
  CHECK(filter->evaluate(iq, ctx).error->condition == StanzaErrorCondition::ServiceUnavailable);
}

TEST_CASE_METHOD(KindsFixture, "an iq request with two payloads is bad-request", "[content][stanza-kinds]") {
  auto iq = test::stanza("<iq xmlns='jabber:server' from='low.example' to='high.example' type='set' id='x'>"
                         "<ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>");
  const auto v = filter->evaluate(iq, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.error->condition == StanzaErrorCondition::BadRequest);
  CHECK(note(v, "check") == "payload-count");
}

TEST_CASE_METHOD(KindsFixture, "an iq result passes as an answer whatever it carries", "[content][stanza-kinds]") {
  auto iq = test::stanza("<iq xmlns='jabber:server' from='b@high.example/r' to='a@low.example/r' type='result' id='d1'>"
                         "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  const auto v = filter->evaluate(iq, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "iq");
}

TEST_CASE("a kind without an element is refused as kind-not-listed", "[content][stanza-kinds]") {
  const auto node = test::policy_node("<stanza-kinds name='k'><message id='m' types='chat'/></stanza-kinds>");
  const auto filter = test::build_filter(node);
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'/>");
  const auto v = filter->evaluate(p, {});
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "kind-not-listed");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(note(v, "check") == "kind");
}

TEST_CASE("types='' allows no type of that kind", "[content][stanza-kinds]") {
  const auto node = test::policy_node("<stanza-kinds name='k'><message id='none' types=''/></stanza-kinds>");
  const auto filter = test::build_filter(node);
  auto m = test::stanza(kChat);
  CHECK(filter->evaluate(m, {}).kind == VerdictKind::Reject);
}

TEST_CASE("a shadow kind rule records the refusal and lets the stanza pass", "[content][stanza-kinds]") {
  const auto node = test::policy_node(
      "<stanza-kinds name='k'><message id='trial' types='normal' shadow='true'/></stanza-kinds>");
  const auto filter = test::build_filter(node);
  auto m = test::stanza(kChat);
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "trial");
  CHECK(note(v, "shadow") == "trial would reject: policy-violation");
  CHECK(note(v, "check") == "type");
  CHECK_FALSE(v.error);
}

TEST_CASE("stanza-kinds refuses an unknown type name at load", "[content][stanza-kinds][config]") {
  const auto node = test::policy_node("<stanza-kinds name='k'>\n<message id='m' types='chat chatty'/></stanza-kinds>");
  try {
    test::build_filter(node);
    FAIL("expected a ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(e.line() == 2);
    CHECK(e.message() == "'chatty' is not a message type");
  }
}

TEST_CASE("stanza-kinds refuses a non-numeric max-bytes at load", "[content][stanza-kinds][config]") {
  const auto node = test::policy_node("<stanza-kinds name='k'><message id='m' types='chat' max-bytes='64k'/></stanza-kinds>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}
