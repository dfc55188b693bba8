// Tests for the built-in filters, the registry, and the pipelines built from
// config (policy/filters/*, policy/registry.h, policy/policy_from_config.h).
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "guard/xmpp/element.h"
#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"
#include "policy/policy_from_config.h"
#include "policy/registry.h"

using namespace portcullis;
using config::DomainPairRule;
using policy::Decision;
using policy::StanzaContext;
using policy::Verdict;
using policy::VerdictKind;
using xmpp::StanzaErrorCondition;

namespace {

xmpp::Element message(const char* from, const char* to, const char* body = "hello") {
  xmpp::Element m("jabber:server", "message");
  if (from) m.set_attr("from", from);
  if (to) m.set_attr("to", to);
  m.set_attr("type", "chat");
  m.add_child("jabber:server", "body").add_text(body);
  return m;
}

StanzaContext from_peer(const char* peer, std::size_t wire_bytes = 200) {
  StanzaContext ctx;
  ctx.peer_domain = peer;
  ctx.wire_bytes = wire_bytes;
  return ctx;
}

// The demo's low->high rules.
std::vector<DomainPairRule> demo_rules() {
  return {{"r1", "a.test", "b.test"}, {"r2", "a.test", "*.b.test"}};
}

}  // namespace

// ----- DomainPairAllowFilter -----

struct DomainPairFixture {
  policy::DomainPairAllowFilter filter{"domain-pair-allow", demo_rules()};
};

TEST_CASE_METHOD(DomainPairFixture, "an allowed pair is accepted with the rule id",
                 "[filter][domain_pair]") {
  auto m = message("alice@a.test/phone", "room@conference.b.test/nick");
  const Verdict v = filter.evaluate(m, from_peer("a.test"));
  CHECK(v.kind == VerdictKind::Accept);
  CHECK(v.rule_id == "r2");
  CHECK(filter.type() == "domain_pair_allow");
}

TEST_CASE_METHOD(DomainPairFixture, "first matching rule wins", "[filter][domain_pair]") {
  auto m = message("alice@a.test", "bob@b.test");
  CHECK(filter.evaluate(m, from_peer("a.test")).rule_id == "r1");
}

TEST_CASE_METHOD(DomainPairFixture, "a pair no rule names has no opinion",
                 "[filter][domain_pair]") {
  auto m = message("alice@a.test", "eve@c.test");
  const Verdict v = filter.evaluate(m, from_peer("a.test"));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK_FALSE(v.error);
}

TEST_CASE_METHOD(DomainPairFixture, "the wildcard does not match the parent domain",
                 "[filter][domain_pair]") {
  policy::DomainPairAllowFilter only_sub{"f", {{"sub", "a.test", "*.b.test"}}};
  auto m = message("alice@a.test", "bob@b.test");
  CHECK(only_sub.evaluate(m, from_peer("a.test")).kind == VerdictKind::NoOpinion);
}

TEST_CASE_METHOD(DomainPairFixture, "missing or malformed addresses are jid-malformed",
                 "[filter][domain_pair][hostile]") {
  const char* bad_to[] = {nullptr, "", "bob@", "@b.test", "bob@b..test", "bob@b.test/"};
  for (const char* to : bad_to) {
    INFO((to ? to : "(absent)"));
    auto m = message("alice@a.test", to);
    const Verdict v = filter.evaluate(m, from_peer("a.test"));
    CHECK(v.kind == VerdictKind::Reject);
    CHECK(v.rule_id == "addressing");
    REQUIRE(v.error);
    CHECK(v.error->condition == StanzaErrorCondition::JidMalformed);
  }
  auto no_from = message(nullptr, "bob@b.test");
  CHECK(filter.evaluate(no_from, from_peer("a.test")).rule_id == "addressing");
}

TEST_CASE_METHOD(DomainPairFixture, "a sender outside the authenticated peer is forbidden",
                 "[filter][domain_pair][hostile]") {
  // Stream authenticated as c.test claims to carry a.test's traffic.
  auto m = message("alice@a.test", "bob@b.test", "spoofed words");
  const Verdict v = filter.evaluate(m, from_peer("c.test"));
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "peer-mismatch");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::Forbidden);
  CHECK(v.error->text.find("spoofed") == std::string::npos);
  CHECK(v.error->text.find("a.test") == std::string::npos);

  // A look-alike suffix is not a subdomain.
  auto lookalike = message("alice@evila.test", "bob@b.test");
  CHECK(filter.evaluate(lookalike, from_peer("a.test")).rule_id == "peer-mismatch");
  // No authenticated peer at all.
  CHECK(filter.evaluate(m, from_peer("")).rule_id == "peer-mismatch");
}

TEST_CASE_METHOD(DomainPairFixture, "a subdomain of the authenticated peer may send",
                 "[filter][domain_pair]") {
  policy::DomainPairAllowFilter f{"f", {{"muc", "*.a.test", "b.test"}}};
  auto m = message("room@conference.a.test/nick", "bob@b.test");
  CHECK(f.evaluate(m, from_peer("a.test")).rule_id == "muc");
}

// ----- SizeLimitFilter -----

TEST_CASE("size limit: at the limit passes, over it rejects with stanza-too-big",
          "[filter][size_limit]") {
  policy::SizeLimitFilter filter("size-limit", 1024);
  auto m = message("alice@a.test", "bob@b.test");

  CHECK(filter.evaluate(m, from_peer("a.test", 1024)).kind == VerdictKind::NoOpinion);

  const Verdict v = filter.evaluate(m, from_peer("a.test", 1025));
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "max-stanza-bytes");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::NotAllowed);
  CHECK(v.error->type == xmpp::StanzaErrorType::Modify);
  REQUIRE(v.error->app);
  CHECK(v.error->app->name() == "stanza-too-big");
  CHECK(v.error->app->ns() == "urn:xmpp:errors");
  CHECK(filter.type() == "size_limit");
}

TEST_CASE("size limit measures the stanza when the wire size is unknown",
          "[filter][size_limit]") {
  policy::SizeLimitFilter filter("size-limit", 1024);
  auto small = message("alice@a.test", "bob@b.test");
  auto big = message("alice@a.test", "bob@b.test", std::string(2000, 'x').c_str());
  CHECK(filter.evaluate(small, from_peer("a.test", 0)).kind == VerdictKind::NoOpinion);
  const Verdict v = filter.evaluate(big, from_peer("a.test", 0));
  CHECK(v.kind == VerdictKind::Reject);
  REQUIRE(v.error);
  CHECK(v.error->text.find("xxx") == std::string::npos);
}

// ----- registry -----

TEST_CASE("builtin_filters registers each built-in once", "[registry]") {
  policy::FilterRegistry r = policy::builtin_filters();
  const auto types = r.types();
  for (const char* t : {"domain_pair_allow", "size_limit"}) {
    CHECK(std::count(types.begin(), types.end(), t) == 1);
  }
  CHECK_THROWS_AS(r.add("size_limit", [](const policy::FilterSpec&) {
    return std::shared_ptr<const policy::Filter>();
  }), std::logic_error);
}

TEST_CASE("the registry refuses unknown types and empty factories with a position",
          "[registry]") {
  policy::FilterRegistry r = policy::builtin_filters();
  policy::FilterSpec spec;
  spec.type = "regex_filter";
  spec.name = "x";
  spec.file = "policy.xml";
  spec.line = 7;
  spec.column = 3;
  try {
    r.build(spec);
    FAIL("expected ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(std::string(e.what()) == "policy.xml:7:3: expected a known filter type, got 'regex_filter'");
  }
  r.replace("regex_filter", [](const policy::FilterSpec&) {
    return std::shared_ptr<const policy::Filter>();
  });
  CHECK_THROWS_AS(r.build(spec), config::ConfigError);
}

// ----- pipelines from config -----

struct ConfigPipelineFixture {
  ConfigPipelineFixture() {
    cfg.file = "demo.xml";
    cfg.low_to_high.allow = demo_rules();
    cfg.low_to_high.max_stanza_bytes = 1024;
    // high_to_low left with an empty allow list: denies everything.
    pipelines = std::make_unique<policy::DirectionPipelines>(
        policy::build_pipelines(cfg, policy::builtin_filters()));
  }
  config::Config cfg;
  std::unique_ptr<policy::DirectionPipelines> pipelines;
};

TEST_CASE_METHOD(ConfigPipelineFixture, "config pipeline: size limit first, then the allow list",
                 "[policy_from_config]") {
  const auto& stages = pipelines->low_to_high.stages();
  REQUIRE(stages.size() == 2);
  CHECK(stages[0].filter->name() == "size-limit");
  CHECK(stages[0].filter->type() == "size_limit");
  CHECK(stages[1].filter->name() == "domain-pair-allow");
  CHECK_FALSE(stages[0].shadow);
  CHECK_FALSE(stages[1].shadow);
}

TEST_CASE_METHOD(ConfigPipelineFixture, "config pipeline: an allowed stanza is released",
                 "[policy_from_config]") {
  auto m = message("alice@a.test", "bob@b.test");
  const Decision d = pipelines->low_to_high.run(m, from_peer("a.test"));
  CHECK(d.release);
  CHECK(d.final_verdict.rule_id == "r1");
  REQUIRE(d.trail.size() == 2);
  CHECK(d.trail[0].filter == "size-limit");
  CHECK(d.trail[0].verdict.kind == VerdictKind::NoOpinion);
  CHECK(d.trail[1].filter == "domain-pair-allow");
  CHECK(pipelines->low_to_high.counters(1).accept == 1);
}

TEST_CASE_METHOD(ConfigPipelineFixture, "config pipeline: an unlisted pair is default-denied",
                 "[policy_from_config]") {
  auto m = message("alice@a.test", "eve@c.test");
  const Decision d = pipelines->low_to_high.run(m, from_peer("a.test"));
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "default-deny");
  CHECK(d.trail.size() == 2);
}

TEST_CASE_METHOD(ConfigPipelineFixture, "config pipeline: an oversized stanza stops at the size limit",
                 "[policy_from_config]") {
  auto m = message("alice@a.test", "bob@b.test");
  const Decision d = pipelines->low_to_high.run(m, from_peer("a.test", 5000));
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "max-stanza-bytes");
  CHECK(d.trail.size() == 1);
  CHECK(pipelines->low_to_high.counters(0).reject == 1);
  CHECK(pipelines->low_to_high.counters(1).accept == 0);
}

TEST_CASE_METHOD(ConfigPipelineFixture, "config pipeline: an empty allow list denies everything",
                 "[policy_from_config]") {
  auto m = message("bob@b.test", "alice@a.test");
  const Decision d = pipelines->high_to_low.run(m, from_peer("b.test"));
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "default-deny");
  REQUIRE(d.trail.size() == 2);
  CHECK(d.trail[1].verdict.kind == VerdictKind::NoOpinion);
  CHECK(pipelines->high_to_low.counters(1).no_opinion == 1);
}
