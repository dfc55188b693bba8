// presence-scrub (policy/content/presence_scrub.h): one fixture, one stanza;
// assert the verdict, the rule id, the stanza after the filter and the notes.
#include <catch2/catch.hpp>

#include "policy/content/presence_scrub.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;
using test::note;
using test::note_count;

namespace {

// A Conversations-style presence: status, show, priority, caps, avatar hash,
// idle and nick (XEP-0115, XEP-0153, XEP-0319, XEP-0172).
constexpr std::string_view kChattyPresence =
    "<presence xmlns='jabber:server' from='alice@low.example/phone' to='bob@high.example'>"
    "<show>away</show><status>At the dentist, back at 3</status><priority>5</priority>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://conversations.im'"
    " ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
    "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>"
    "<idle xmlns='urn:xmpp:idle:1' since='1969-07-21T02:56:15Z'/>"
    "<nick xmlns='http://jabber.org/protocol/nick'>Alice</nick>"
    "</presence>";

// XEP-0045 §7.2: joining a room, with caps.
constexpr std::string_view kMucJoin =
    "<presence xmlns='jabber:server' from='hag66@low.example/pda' to='coven@chat.high.example/thirdwitch'>"
    "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
    "</presence>";

constexpr std::string_view kPolicy =
    "<presence-scrub xmlns='urn:portcullis:policy:1' name='scrub'>"
    "  <scrub id='presence-minimal'>"
    "    <keep ns='http://jabber.org/protocol/muc' element='x'/>"
    "    <keep ns='http://jabber.org/protocol/muc#user' element='x'/>"
    "  </scrub>"
    "</presence-scrub>";

struct ScrubFixture {
  policy::PolicyNode node = test::policy_node(kPolicy);
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

}  // namespace

TEST_CASE_METHOD(ScrubFixture, "a chatty presence loses every child not kept", "[content][presence-scrub]") {
  auto p = test::stanza(kChattyPresence);
  const auto v = filter->evaluate(p, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "presence-minimal");
  CHECK(v.transformation == "presence-scrub");
  CHECK(p.serialize() ==
        "<presence xmlns='jabber:server' from='alice@low.example/phone' to='bob@high.example'/>");
  REQUIRE(note_count(v, "removed") == 7);
  std::vector<std::string> removed;
  for (const auto& [k, val] : v.notes) removed.push_back(val);
  CHECK(removed == std::vector<std::string>{"show", "status", "priority",
                                            "{http://jabber.org/protocol/caps}c",
                                            "{vcard-temp:x:update}x", "{urn:xmpp:idle:1}idle",
                                            "{http://jabber.org/protocol/nick}nick"});
  CHECK(filter->type() == "presence-scrub");
  CHECK(filter->name() == "scrub");
}

TEST_CASE_METHOD(ScrubFixture, "a MUC join keeps its muc element and loses caps", "[content][presence-scrub]") {
  auto p = test::stanza(kMucJoin);
  const auto v = filter->evaluate(p, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(note(v, "removed") == "{http://jabber.org/protocol/caps}c");
  CHECK(note_count(v, "removed") == 1);
  CHECK(p.serialize() ==
        "<presence xmlns='jabber:server' from='hag66@low.example/pda' to='coven@chat.high.example/thirdwitch'>"
        "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>");
}

TEST_CASE_METHOD(ScrubFixture, "a presence with nothing to remove gets no opinion", "[content][presence-scrub]") {
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='unavailable'/>");
  const std::string before = p.serialize();
  const auto v = filter->evaluate(p, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "presence-minimal");
  CHECK(v.notes.empty());
  CHECK(p.serialize() == before);
}

TEST_CASE_METHOD(ScrubFixture, "a message is not presence: untouched", "[content][presence-scrub]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example' to='b@high.example'>"
                        "<body>hi</body><nick xmlns='http://jabber.org/protocol/nick'>A</nick></message>");
  const std::string before = m.serialize();
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id.empty());
  CHECK(m.serialize() == before);
}

TEST_CASE("an empty scrub keeps nothing, not even MUC", "[content][presence-scrub]") {
  const auto node = test::policy_node("<presence-scrub name='s'><scrub id='nothing'/></presence-scrub>");
  const auto filter = test::build_filter(node);
  auto p = test::stanza(kMucJoin);
  const auto v = filter->evaluate(p, {});
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "nothing");
  CHECK(note_count(v, "removed") == 2);
  CHECK(p.child_elements().empty());
}

TEST_CASE("a shadow scrub records what it would remove and changes nothing", "[content][presence-scrub]") {
  const auto node = test::policy_node("<presence-scrub name='s'><scrub id='trial' shadow='true'/></presence-scrub>");
  const auto filter = test::build_filter(node);
  auto p = test::stanza(kChattyPresence);
  const std::string before = p.serialize();
  const auto v = filter->evaluate(p, {});
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "trial");
  CHECK(note(v, "shadow") == "trial would modify: presence-scrub");
  CHECK(note_count(v, "would-remove") == 7);
  CHECK(note_count(v, "removed") == 0);
  CHECK(p.serialize() == before);
}

TEST_CASE("presence-scrub without a scrub rule stops the load with its position", "[content][presence-scrub][config]") {
  const auto node = test::policy_node("<presence-scrub name='s'>\n</presence-scrub>", "/p/policy.xml");
  try {
    test::build_filter(node);
    FAIL("expected a ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(e.file() == "/p/policy.xml");
    CHECK(e.line() == 1);
    CHECK(e.message().find("<scrub") != std::string::npos);
  }
}

TEST_CASE_METHOD(ScrubFixture, "indentation goes with the removed children; stray text is removed and noted",
                 "[content][presence-scrub]") {
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'>\n"
                        "  <status>gone fishing</status>\n  covert\n</presence>");
  const auto v = filter->evaluate(p, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(test::note_count(v, "removed") == 2);
  CHECK(v.notes.back().second == "#text");
  CHECK(p.serialize() == "<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'/>");
}

TEST_CASE_METHOD(ScrubFixture, "white space alone in a kept presence is no change", "[content][presence-scrub]") {
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'>\n  "
                        "<x xmlns='http://jabber.org/protocol/muc'/>\n</presence>");
  const std::string before = p.serialize();
  CHECK(filter->evaluate(p, ctx).kind == VerdictKind::NoOpinion);
  CHECK(p.serialize() == before);
}

TEST_CASE_METHOD(ScrubFixture, "a presence error keeps its <error/>, and only a presence error does",
                 "[content][presence-scrub]") {
  // A refused MUC join is answered with a presence error (xmpp::may_bounce):
  // scrubbing its <error/> would leave the joiner an error that says nothing.
  auto e = test::stanza(
      "<presence xmlns='jabber:server' type='error' from='coven@chat.high.example/thirdwitch' to='hag66@low.example/pda'>"
      "<status>leak</status><error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
      "</presence>");
  const auto v = filter->evaluate(e, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(note(v, "removed") == "status");
  CHECK(e.serialize() ==
        "<presence xmlns='jabber:server' type='error' from='coven@chat.high.example/thirdwitch' to='hag66@low.example/pda'>"
        "<error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>");
  auto available = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'>"
                                "<error type='modify'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                                "</error></presence>");
  filter->evaluate(available, ctx);
  CHECK(available.serialize() == "<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'/>");
}
