// The sample policy test/corpus/policy/content-sample.xml (which validates
// against schemas/policy/policy.xsd): every filter element in it builds through
// the registry, and its low->high pipeline decides real stanzas end to end.
#include <catch2/catch.hpp>

#include "policy/content/register.h"
#include "policy/pipeline.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;

namespace {

const std::string kSample = std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/policy/content-sample.xml";

// Stands in for the allow filter (domain-pair-allow) that ends a real policy.
class AllowAll : public policy::Filter {
 public:
  policy::Verdict evaluate(xmpp::Element&, const policy::StanzaContext&) const override {
    return policy::Verdict::accept("allow-all");
  }
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return "allow-all"; }

 private:
  std::string name_ = "allow-all";
};

struct SampleFixture {
  policy::PolicyNode root = test::policy_file_node(kSample);
  policy::FilterRegistry registry = test::content_registry();

  policy::Pipeline pipeline(std::size_t direction) const {
    policy::Pipeline p;
    for (const policy::PolicyNode& f : root.children.at(direction).children) {
      const auto spec = test::spec_for(f);
      p.add(registry.build(spec), spec.shadow);
    }
    p.add(std::make_shared<AllowAll>());
    return p;
  }
  static policy::StanzaContext from_low() {
    policy::StanzaContext ctx;
    ctx.peer_domain = "low.example";
    ctx.auth = ipc::AuthMethod::SaslExternal;
    ctx.peer_tls = true;
    return ctx;
  }
};

}  // namespace

TEST_CASE("the registry knows every content filter by its element name", "[content][registry]") {
  const auto r = test::content_registry();
  CHECK(r.types() == std::vector<std::string>{"chat-mode", "keywords", "payload-filter", "peer-requirements",
                                              "presence-scrub", "stanza-kinds", "users"});
}

TEST_CASE("a content filter built without a policy element is a config error", "[content][registry][config]") {
  policy::FilterSpec spec;
  spec.type = "users";
  spec.name = "u";
  spec.file = "/etc/portcullis/portcullis.xml";
  spec.line = 7;
  try {
    test::content_registry().build(spec);
    FAIL("expected a ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(e.line() == 7);
  }
}

TEST_CASE_METHOD(SampleFixture, "every filter of the sample policy builds", "[content][sample]") {
  REQUIRE(root.children.size() == 2);
  CHECK(pipeline(0).size() == 8);
  CHECK(pipeline(1).size() == 7);
}

TEST_CASE_METHOD(SampleFixture, "sample low->high: a chatty presence is released scrubbed", "[content][sample]") {
  auto p = test::stanza(
      "<presence xmlns='jabber:server' from='ops@low.example/console' to='desk@high.example'>"
      "<status>on watch</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>");
  const auto d = pipeline(0).run(p, from_low());
  CHECK(d.release);
  CHECK(d.transformations == std::vector<std::string>{"presence-scrub"});
  CHECK(p.serialize() == "<presence xmlns='jabber:server' from='ops@low.example/console' to='desk@high.example'/>");
}

TEST_CASE_METHOD(SampleFixture, "sample low->high: an OMEMO message is rejected by rule e2e", "[content][sample]") {
  auto m = test::stanza(
      "<message xmlns='jabber:server' from='ops@low.example/console' to='desk@high.example' type='chat' id='x'>"
      "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><iv>aa</iv></header><payload>bb</payload></encrypted>"
      "<body>I sent you an OMEMO encrypted message</body></message>");
  const auto d = pipeline(0).run(m, from_low());
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "e2e");
  CHECK(d.trail.back().filter == "payloads");
}

TEST_CASE_METHOD(SampleFixture, "sample low->high: a stranger is refused by the users filter", "[content][sample]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='eve@low.example/x' to='desk@high.example' type='chat'>"
                        "<body>hello</body></message>");
  const auto d = pipeline(0).run(m, from_low());
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "known-senders");
  CHECK(d.final_verdict.error->condition == xmpp::StanzaErrorCondition::Forbidden);
}

TEST_CASE_METHOD(SampleFixture, "sample low->high: a clean chat message crosses unchanged", "[content][sample]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='ops@low.example/console' to='desk@high.example' type='chat'>"
                        "<body>all quiet</body></message>");
  const std::string before = m.serialize();
  const auto d = pipeline(0).run(m, from_low());
  CHECK(d.release);
  CHECK(d.trail.size() == 8);
  CHECK(d.transformations.empty());
  CHECK(m.serialize() == before);
}
