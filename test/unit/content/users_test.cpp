// users (policy/content/users.h).
#include <catch2/catch.hpp>

#include "policy/content/users.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;
using test::note;
using xmpp::StanzaErrorCondition;

namespace {

xmpp::Element chat(const std::string& from, const std::string& to) {
  return test::stanza("<message xmlns='jabber:server' from='" + from + "' to='" + to +
                      "' type='chat'><body>status report</body></message>");
}

struct SendersFixture {
  policy::PolicyNode node = test::policy_node(
      "<users name='users'><senders id='known-senders'>"
      "<allow-sender id='ops' match='ops@low.example'/>"
      "<allow-sender id='hq' match='hq.low.example'/>"
      "<allow-sender id='units' match='*.units.low.example'/>"
      "</senders></users>");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

}  // namespace

TEST_CASE_METHOD(SendersFixture, "a listed bare JID may send from any resource", "[content][users]") {
  auto m = chat("ops@low.example/console", "desk@high.example");
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(note(v, "allow-sender") == "ops");
}

TEST_CASE_METHOD(SendersFixture, "bare JID entries compare localparts case-insensitively", "[content][users]") {
  auto m = chat("OPS@low.example/console", "desk@high.example");
  CHECK(note(filter->evaluate(m, ctx), "allow-sender") == "ops");
}

TEST_CASE_METHOD(SendersFixture, "a domain entry allows everyone at that domain", "[content][users]") {
  auto m = chat("anyone@hq.low.example/r", "desk@high.example");
  CHECK(note(filter->evaluate(m, ctx), "allow-sender") == "hq");
}

TEST_CASE_METHOD(SendersFixture, "a wildcard entry allows subdomains, not the parent", "[content][users]") {
  auto sub = chat("sgt@3rd.units.low.example", "desk@high.example");
  auto parent = chat("sgt@units.low.example", "desk@high.example");
  CHECK(note(filter->evaluate(sub, ctx), "allow-sender") == "units");
  CHECK(filter->evaluate(parent, ctx).kind == VerdictKind::Reject);
}

TEST_CASE_METHOD(SendersFixture, "an unlisted sender is forbidden, without naming the address", "[content][users]") {
  auto m = chat("mallory@low.example/x", "desk@high.example");
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "known-senders");
  CHECK(v.error->condition == StanzaErrorCondition::Forbidden);
  CHECK(v.error->text == "sender not allowed across this boundary");
  CHECK(v.error->text.find("mallory") == std::string::npos);
  CHECK(note(v, "check") == "sender");
}

TEST_CASE_METHOD(SendersFixture, "a stanza without from is jid-malformed", "[content][users]") {
  auto m = test::stanza("<message xmlns='jabber:server' to='desk@high.example'><body>x</body></message>");
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.error->condition == StanzaErrorCondition::JidMalformed);
}

TEST_CASE_METHOD(SendersFixture, "recipients are not restricted when there is no recipients list", "[content][users]") {
  auto m = chat("ops@low.example", "anybody@anywhere.example");
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::NoOpinion);
}

TEST_CASE("an empty senders list denies everyone", "[content][users]") {
  const auto node = test::policy_node("<users name='u'><senders id='nobody'/></users>");
  const auto filter = test::build_filter(node);
  auto m = chat("ops@low.example", "desk@high.example");
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "nobody");
}

TEST_CASE("recipients restricted: an unlisted recipient is forbidden", "[content][users]") {
  const auto node = test::policy_node(
      "<users name='u'><recipients id='desks'><allow-recipient id='desk' match='desk@high.example'/></recipients></users>");
  const auto filter = test::build_filter(node);
  auto ok = chat("whoever@low.example", "desk@high.example/pc");
  auto bad = chat("whoever@low.example", "ceo@high.example");
  const auto v_ok = filter->evaluate(ok, {});
  CHECK(v_ok.kind == VerdictKind::NoOpinion);
  CHECK(note(v_ok, "allow-recipient") == "desk");
  const auto v_bad = filter->evaluate(bad, {});
  REQUIRE(v_bad.kind == VerdictKind::Reject);
  CHECK(v_bad.rule_id == "desks");
  CHECK(v_bad.error->text == "recipient not allowed across this boundary");
}

TEST_CASE("a shadow recipients list records and lets the stanza pass", "[content][users]") {
  const auto node = test::policy_node(
      "<users name='u'><recipients id='trial' shadow='true'><allow-recipient id='d' match='desk@high.example'/></recipients></users>");
  const auto filter = test::build_filter(node);
  auto m = chat("whoever@low.example", "ceo@high.example");
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "trial");
  CHECK(note(v, "shadow") == "trial would reject: forbidden");
}

TEST_CASE("users with neither list stops the load", "[content][users][config]") {
  const auto node = test::policy_node("<users name='u'/>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}

TEST_CASE("a user pattern with a resource stops the load", "[content][users][config]") {
  const auto node = test::policy_node(
      "<users name='u'><senders id='s'><allow-sender id='x' match='ops@low.example/console'/></senders></users>");
  try {
    test::build_filter(node);
    FAIL("expected a ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(e.message().find("names a resource") != std::string::npos);
  }
}

TEST_CASE("a server-only entry lets the server's own address through, not the users at it", "[content][users]") {
  const auto node = test::policy_node(
      "<users name='u'><recipients id='r'>"
      "<allow-recipient id='srv' match='high.example' server-only='true'/>"
      "</recipients></users>");
  const auto filter = test::build_filter(node);
  policy::StanzaContext ctx;
  auto to_server = chat("ops@low.example/c", "high.example");
  const auto ok = filter->evaluate(to_server, ctx);
  CHECK(ok.kind == VerdictKind::NoOpinion);
  CHECK(note(ok, "allow-recipient") == "srv");
  auto to_resource = chat("ops@low.example/c", "high.example/admin");
  CHECK(filter->evaluate(to_resource, ctx).kind == VerdictKind::NoOpinion);
  auto to_user = chat("ops@low.example/c", "anyone@high.example");
  const auto no = filter->evaluate(to_user, ctx);
  CHECK(no.kind == VerdictKind::Reject);
  CHECK(no.error->condition == StanzaErrorCondition::Forbidden);
}

TEST_CASE("server-only on a user or a wildcard stops the load", "[content][users][config]") {
  for (const std::string& m : {std::string("ops@low.example"), std::string("*.low.example")}) {
    INFO(m);
    const auto node = test::policy_node("<users name='u'><senders id='s'><allow-sender id='x' match='" + m +
                                        "' server-only='true'/></senders></users>");
    try {
      test::build_filter(node);
      FAIL("expected a ConfigError");
    } catch (const config::ConfigError& e) {
      CHECK(e.message().find("server-only=\"true\" needs a plain domain") != std::string::npos);
    }
  }
}
