// peer-requirements (policy/content/peer_requirements.h).
#include <catch2/catch.hpp>

#include "policy/content/peer_requirements.h"
#include "policy_xml.h"

using namespace portcullis;
using ipc::AuthMethod;
using policy::VerdictKind;
using test::note;
using xmpp::StanzaErrorCondition;

namespace {

policy::StanzaContext link(const char* peer, AuthMethod auth, bool tls) {
  policy::StanzaContext ctx;
  ctx.peer_domain = peer;
  ctx.auth = auth;
  ctx.peer_tls = tls;
  return ctx;
}

struct PeersFixture {
  policy::PolicyNode node = test::policy_node(
      "<peer-requirements name='links'>"
      "<peer id='nato' match='*.nato.example' require-tls='true' auth='sasl-external'/>"
      "<peer id='everyone' match='*' require-tls='true' auth='sasl-external dialback'/>"
      "</peer-requirements>");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  xmpp::Element m = test::stanza("<message xmlns='jabber:server' from='a@hq.nato.example' to='b@high.example'><body>x</body></message>");
};

}  // namespace

TEST_CASE_METHOD(PeersFixture, "a certificate-authenticated TLS peer passes its rule", "[content][peer-requirements]") {
  const auto v = filter->evaluate(m, link("hq.nato.example", AuthMethod::SaslExternal, true));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "nato");
}

TEST_CASE_METHOD(PeersFixture, "a dialback-only peer is refused where certificates are required", "[content][peer-requirements]") {
  const auto v = filter->evaluate(m, link("hq.nato.example", AuthMethod::Dialback, true));
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "nato");
  CHECK(v.error->condition == StanzaErrorCondition::NotAuthorized);
  CHECK(note(v, "check") == "auth");
  CHECK(note(v, "auth") == "dialback");
}

TEST_CASE_METHOD(PeersFixture, "dialback is accepted by the catch-all rule", "[content][peer-requirements]") {
  const auto v = filter->evaluate(m, link("partner.example", AuthMethod::Dialback, true));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "everyone");
}

TEST_CASE_METHOD(PeersFixture, "a link without TLS is a policy violation", "[content][peer-requirements]") {
  const auto v = filter->evaluate(m, link("partner.example", AuthMethod::Dialback, false));
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "everyone");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(note(v, "check") == "tls");
}

TEST_CASE_METHOD(PeersFixture, "Portcullis's own bounces pass by default", "[content][peer-requirements]") {
  const auto v = filter->evaluate(m, link("", AuthMethod::Internal, false));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(note(v, "internal") == "pass");
}

TEST_CASE_METHOD(PeersFixture, "a hosted room's FMUC passes by default, like a bounce", "[content][peer-requirements][fmuc]") {
  // (A match="*" require-tls rule would otherwise refuse all room traffic: it crossed no network link.)
  const auto v = filter->evaluate(m, link("rooms.low.example", AuthMethod::Hosted, false));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(note(v, "hosted") == "pass");
  const auto strict = test::build_filter(test::policy_node(
      "<peer-requirements name='l' internal='check'><peer id='p' match='*' require-tls='false' auth='sasl-external'/></peer-requirements>"));
  const auto lenient = test::build_filter(test::policy_node(
      "<peer-requirements name='l' internal='check'><peer id='p' match='*' require-tls='false' auth='sasl-external hosted'/></peer-requirements>"));
  CHECK(strict->evaluate(m, link("rooms.low.example", AuthMethod::Hosted, false)).kind == VerdictKind::Reject);
  CHECK(lenient->evaluate(m, link("rooms.low.example", AuthMethod::Hosted, false)).kind == VerdictKind::NoOpinion);
}

TEST_CASE_METHOD(PeersFixture, "an unauthenticated frame is always refused", "[content][peer-requirements]") {
  const auto v = filter->evaluate(m, link("hq.nato.example", AuthMethod::None, true));
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "unauthenticated");
  CHECK(v.error->condition == StanzaErrorCondition::NotAuthorized);
}

TEST_CASE("internal='check' holds bounces to the rules", "[content][peer-requirements]") {
  const auto strict = test::build_filter(test::policy_node(
      "<peer-requirements name='l' internal='check'><peer id='p' match='*' require-tls='false' auth='sasl-external'/></peer-requirements>"));
  const auto lenient = test::build_filter(test::policy_node(
      "<peer-requirements name='l' internal='check'><peer id='p' match='*' require-tls='false' auth='sasl-external internal'/></peer-requirements>"));
  auto m = test::stanza("<message xmlns='jabber:server' from='high.example' to='a@low.example' type='error'/>");
  const auto v_strict = strict->evaluate(m, link("", AuthMethod::Internal, false));
  CHECK(v_strict.kind == VerdictKind::Reject);
  CHECK(note(v_strict, "auth") == "internal");
  CHECK(lenient->evaluate(m, link("", AuthMethod::Internal, false)).kind == VerdictKind::NoOpinion);
}

TEST_CASE("a peer no rule matches gets no opinion", "[content][peer-requirements]") {
  const auto filter = test::build_filter(test::policy_node(
      "<peer-requirements name='l'><peer id='p' match='nato.example' require-tls='true' auth='sasl-external'/></peer-requirements>"));
  auto m = test::stanza("<message xmlns='jabber:server' from='a@other.example' to='b@high.example'/>");
  const auto v = filter->evaluate(m, link("other.example", AuthMethod::Dialback, false));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id.empty());
}

TEST_CASE("a shadow peer rule records the refusal", "[content][peer-requirements]") {
  const auto filter = test::build_filter(test::policy_node(
      "<peer-requirements name='l'><peer id='trial' match='*' require-tls='true' auth='sasl-external' shadow='true'/></peer-requirements>"));
  auto m = test::stanza("<message xmlns='jabber:server' from='a@p.example' to='b@high.example'/>");
  const auto v = filter->evaluate(m, link("p.example", AuthMethod::Dialback, true));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "trial");
  CHECK(note(v, "shadow") == "trial would reject: not-authorized");
}

TEST_CASE("a peer rule without require-tls stops the load", "[content][peer-requirements][config]") {
  const auto node = test::policy_node(
      "<peer-requirements name='l'><peer id='p' match='*' auth='sasl-external'/></peer-requirements>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}

TEST_CASE("an unknown auth method stops the load", "[content][peer-requirements][config]") {
  const auto node = test::policy_node(
      "<peer-requirements name='l'><peer id='p' match='*' require-tls='true' auth='plain'/></peer-requirements>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}
