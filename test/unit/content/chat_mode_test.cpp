// chat-mode (policy/content/chat_mode.h).
#include <catch2/catch.hpp>

#include "policy/content/chat_mode.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;
using test::note;
using xmpp::StanzaErrorCondition;

namespace {

constexpr std::string_view kMucJoin =
    "<presence xmlns='jabber:server' from='hag66@low.example/pda' to='coven@chat.high.example/thirdwitch'>"
    "<x xmlns='http://jabber.org/protocol/muc'/></presence>";
constexpr std::string_view kGroupchat =
    "<message xmlns='jabber:server' from='hag66@low.example/pda' to='coven@chat.high.example' type='groupchat' id='g1'>"
    "<body>Harpier cries: 'tis time, 'tis time.</body></message>";
constexpr std::string_view kRoomDisco =
    "<iq xmlns='jabber:server' from='hag66@low.example/pda' to='coven@chat.high.example' type='get' id='d1'>"
    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>";
constexpr std::string_view kChat =
    "<message xmlns='jabber:server' from='romeo@low.example/o' to='juliet@high.example' type='chat' id='c1'>"
    "<body>Art thou not Romeo?</body></message>";
// XEP-0249 direct invitation.
constexpr std::string_view kDirectInvite =
    "<message xmlns='jabber:server' from='crone1@low.example/desktop' to='hecate@high.example'>"
    "<x xmlns='jabber:x:conference' jid='darkcave@macbeth.low.example' reason='Hey Hecate, this is the place for all good witches!'/>"
    "</message>";

struct NoMucFixture {
  policy::PolicyNode node = test::policy_node(
      "<chat-mode name='no-rooms'>"
      "<muc-service match='chat.high.example'/>"
      "<block-muc id='no-muc'/>"
      "</chat-mode>");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

struct NoOneToOneFixture {
  policy::PolicyNode node = test::policy_node(
      "<chat-mode name='rooms-only'><block-one-to-one id='no-1to1'/></chat-mode>");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

}  // namespace

TEST_CASE_METHOD(NoMucFixture, "a MUC join is refused", "[content][chat-mode]") {
  auto p = test::stanza(kMucJoin);
  const auto v = filter->evaluate(p, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "no-muc");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "group chat is not allowed across this boundary");
  CHECK(note(v, "muc") == "muc-element");
}

TEST_CASE_METHOD(NoMucFixture, "a groupchat message is refused", "[content][chat-mode]") {
  auto m = test::stanza(kGroupchat);
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(note(v, "muc") == "groupchat");
}

TEST_CASE_METHOD(NoMucFixture, "a disco query to a room is MUC traffic by its service", "[content][chat-mode]") {
  auto iq = test::stanza(kRoomDisco);
  const auto v = filter->evaluate(iq, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(note(v, "muc") == "muc-service");
}

TEST_CASE_METHOD(NoMucFixture, "a direct invitation is MUC traffic", "[content][chat-mode]") {
  auto m = test::stanza(kDirectInvite);
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::Reject);
}

TEST_CASE_METHOD(NoMucFixture, "a MUC admin request is MUC traffic", "[content][chat-mode]") {
  auto iq = test::stanza("<iq xmlns='jabber:server' from='crone1@low.example/d' to='heath@rooms.elsewhere.example' type='set' id='k1'>"
                         "<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='pistol' role='none'/></query></iq>");
  const auto v = filter->evaluate(iq, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(note(v, "muc") == "muc-admin");
}

TEST_CASE_METHOD(NoMucFixture, "one-to-one chat passes when only MUC is blocked", "[content][chat-mode]") {
  auto m = test::stanza(kChat);
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.notes.empty());
}

TEST_CASE_METHOD(NoOneToOneFixture, "a chat message is refused", "[content][chat-mode]") {
  auto m = test::stanza(kChat);
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "no-1to1");
  CHECK(v.error->text == "one-to-one chat is not allowed across this boundary");
  CHECK(note(v, "chat") == "one-to-one");
}

TEST_CASE_METHOD(NoOneToOneFixture, "a message without type (normal) is refused", "[content][chat-mode]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example' to='b@high.example'><body>memo</body></message>");
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::Reject);
}

TEST_CASE_METHOD(NoOneToOneFixture, "groupchat passes when only one-to-one is blocked", "[content][chat-mode]") {
  auto m = test::stanza(kGroupchat);
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::NoOpinion);
}

TEST_CASE_METHOD(NoOneToOneFixture, "a headline or error message is not chat", "[content][chat-mode]") {
  auto h = test::stanza("<message xmlns='jabber:server' from='news.low.example' to='b@high.example' type='headline'><body>n</body></message>");
  auto e = test::stanza("<message xmlns='jabber:server' from='b@high.example' to='a@low.example' type='error'>"
                        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
  CHECK(filter->evaluate(h, ctx).kind == VerdictKind::NoOpinion);
  CHECK(filter->evaluate(e, ctx).kind == VerdictKind::NoOpinion);
}

TEST_CASE("a shadow block records the refusal and lets the chat pass", "[content][chat-mode]") {
  const auto node = test::policy_node("<chat-mode name='c'><block-one-to-one id='trial' shadow='true'/></chat-mode>");
  const auto filter = test::build_filter(node);
  auto m = test::stanza(kChat);
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "trial");
  CHECK(note(v, "shadow") == "trial would reject: policy-violation");
  CHECK(note(v, "chat") == "one-to-one");
  CHECK_FALSE(v.error);
}

TEST_CASE("chat-mode that blocks nothing stops the load", "[content][chat-mode][config]") {
  const auto node = test::policy_node("<chat-mode name='c'><muc-service match='chat.example'/></chat-mode>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}

TEST_CASE("a muc-service that is not a domain stops the load", "[content][chat-mode][config]") {
  const auto node = test::policy_node("<chat-mode name='c'><muc-service match='not a domain'/><block-muc id='m'/></chat-mode>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}
