// Tests for the pipeline runner (policy/pipeline.h): one fixture, one stanza,
// assert the decision, the trail and the counters.
#include <catch2/catch.hpp>
#include <memory>
#include <stdexcept>
#include <string>

#include "guard/xmpp/element.h"
#include "policy/pipeline.h"

using namespace portcullis;
using policy::Decision;
using policy::Pipeline;
using policy::StanzaContext;
using policy::Verdict;
using policy::VerdictKind;
using xmpp::StanzaErrorCondition;

namespace {

// A filter that returns a fixed verdict and counts its calls.
class ScriptedFilter : public policy::Filter {
 public:
  ScriptedFilter(std::string name, Verdict v) : name_(std::move(name)), verdict_(std::move(v)) {}
  Verdict evaluate(xmpp::Element&, const StanzaContext&) const override {
    ++calls;
    return verdict_;
  }
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return "scripted"; }
  mutable int calls = 0;

 private:
  std::string name_;
  Verdict verdict_;
};

// Throws the stanza's body text, as a careless filter might: the runner must
// neither propagate it nor copy its text into the error.
class ThrowingFilter : public policy::Filter {
 public:
  explicit ThrowingFilter(std::string name) : name_(std::move(name)) {}
  Verdict evaluate(xmpp::Element& stanza, const StanzaContext&) const override {
    stanza.set_attr("half-done", "yes");   // a partial change before failing
    const xmpp::Element* body = stanza.find_child("body");
    throw std::runtime_error(body ? body->text() : "boom");
  }
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return "throwing"; }

 private:
  std::string name_;
};

// Renames the stanza's id: a named transformation.
class RewriteIdFilter : public policy::Filter {
 public:
  explicit RewriteIdFilter(std::string name) : name_(std::move(name)) {}
  Verdict evaluate(xmpp::Element& stanza, const StanzaContext&) const override {
    stanza.set_attr("id", "rewritten");
    return Verdict::modify("rewrite-1", "rewrite-id");
  }
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return "rewrite"; }

 private:
  std::string name_;
};

struct PipelineFixture {
  PipelineFixture() {
    stanza.set_attr("from", "alice@a.test/phone");
    stanza.set_attr("to", "bob@b.test");
    stanza.set_attr("id", "m1");
    stanza.add_child("jabber:server", "body").add_text("top secret words");
    ctx.peer_domain = "a.test";
    ctx.wire_bytes = 120;
  }

  std::shared_ptr<ScriptedFilter> scripted(std::string name, Verdict v) {
    return std::make_shared<ScriptedFilter>(std::move(name), std::move(v));
  }

  xmpp::Element stanza{"jabber:server", "message"};
  StanzaContext ctx;
  Pipeline pipeline;
};

std::vector<std::string> trail_names(const Decision& d) {
  std::vector<std::string> out;
  for (const auto& t : d.trail) out.push_back(t.filter);
  return out;
}

}  // namespace

TEST_CASE_METHOD(PipelineFixture, "an enforced accept releases and ends the pipeline",
                 "[pipeline]") {
  auto first = scripted("first", Verdict::no_opinion());
  auto allow = scripted("allow", Verdict::accept("r1"));
  auto after = scripted("after", Verdict::reject("x", StanzaErrorCondition::Forbidden, "no"));
  pipeline.add(first);
  pipeline.add(allow);
  pipeline.add(after);

  const Decision d = pipeline.run(stanza, ctx);

  CHECK(d.release);
  CHECK(d.final_verdict.kind == VerdictKind::Accept);
  CHECK(d.final_verdict.rule_id == "r1");
  CHECK(trail_names(d) == std::vector<std::string>{"first", "allow"});
  CHECK(d.trail[0].type == "scripted");
  CHECK(d.trail[0].verdict.kind == VerdictKind::NoOpinion);
  CHECK(d.trail[1].verdict.kind == VerdictKind::Accept);
  CHECK_FALSE(d.trail[1].shadow);
  CHECK(after->calls == 0);
  CHECK(pipeline.counters(0).no_opinion == 1);
  CHECK(pipeline.counters(1).accept == 1);
  CHECK(pipeline.counters(2).reject == 0);
}

TEST_CASE_METHOD(PipelineFixture, "an enforced reject blocks with the filter's error",
                 "[pipeline]") {
  pipeline.add(scripted("deny", Verdict::reject("r9", StanzaErrorCondition::Forbidden, "nope")));
  pipeline.add(scripted("allow", Verdict::accept("r1")));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.kind == VerdictKind::Reject);
  CHECK(d.final_verdict.rule_id == "r9");
  REQUIRE(d.final_verdict.error);
  CHECK(d.final_verdict.error->condition == StanzaErrorCondition::Forbidden);
  CHECK(d.final_verdict.error->text == "nope");
  CHECK(trail_names(d) == std::vector<std::string>{"deny"});
  CHECK(pipeline.counters(0).reject == 1);
  CHECK(pipeline.counters(1).accept == 0);
}

TEST_CASE_METHOD(PipelineFixture, "no explicit accept is a default deny (fail closed)",
                 "[pipeline]") {
  pipeline.add(scripted("a", Verdict::no_opinion()));
  pipeline.add(scripted("b", Verdict::no_opinion("looked")));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.kind == VerdictKind::Reject);
  CHECK(d.final_verdict.rule_id == "default-deny");
  REQUIRE(d.final_verdict.error);
  CHECK(d.final_verdict.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(trail_names(d) == std::vector<std::string>{"a", "b"});
  CHECK(d.trail[1].verdict.rule_id == "looked");
}

TEST_CASE_METHOD(PipelineFixture, "an empty pipeline denies", "[pipeline]") {
  const Decision d = pipeline.run(stanza, ctx);
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "default-deny");
  CHECK(d.trail.empty());
}

TEST_CASE_METHOD(PipelineFixture, "a throwing filter rejects with internal-server-error",
                 "[pipeline][hostile]") {
  auto allow = scripted("allow", Verdict::accept("r1"));
  pipeline.add(std::make_shared<ThrowingFilter>("thrower"));
  pipeline.add(allow);

  const Decision d = pipeline.run(stanza, ctx);

  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.kind == VerdictKind::Reject);
  CHECK(d.final_verdict.rule_id == "exception:thrower");
  REQUIRE(d.final_verdict.error);
  CHECK(d.final_verdict.error->condition == StanzaErrorCondition::InternalServerError);
  // The exception text quoted the body; the error text must not.
  CHECK(d.final_verdict.error->text.find("secret") == std::string::npos);
  CHECK(trail_names(d) == std::vector<std::string>{"thrower"});
  CHECK(d.trail[0].verdict.rule_id == "exception:thrower");
  CHECK(allow->calls == 0);
  CHECK(pipeline.counters(0).error == 1);
  CHECK(pipeline.counters(0).reject == 0);
}

TEST_CASE_METHOD(PipelineFixture, "a shadow accept is recorded but does not release",
                 "[pipeline][shadow]") {
  pipeline.add(scripted("trial", Verdict::accept("trial-1")), /*shadow=*/true);
  pipeline.add(scripted("rest", Verdict::no_opinion()));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "default-deny");
  REQUIRE(d.trail.size() == 2);
  CHECK(d.trail[0].shadow);
  CHECK(d.trail[0].verdict.kind == VerdictKind::Accept);
  CHECK(d.trail[0].verdict.rule_id == "trial-1");
  CHECK_FALSE(d.trail[1].shadow);
  CHECK(pipeline.counters(0).accept == 1);
}

TEST_CASE_METHOD(PipelineFixture, "a shadow reject is recorded but does not block",
                 "[pipeline][shadow]") {
  pipeline.add(scripted("trial", Verdict::reject("t", StanzaErrorCondition::Forbidden, "would")),
               /*shadow=*/true);
  pipeline.add(scripted("allow", Verdict::accept("r1")));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK(d.release);
  CHECK(d.final_verdict.rule_id == "r1");
  REQUIRE(d.trail.size() == 2);
  CHECK(d.trail[0].shadow);
  CHECK(d.trail[0].verdict.kind == VerdictKind::Reject);
  CHECK(pipeline.counters(0).reject == 1);
  CHECK(pipeline.counters(1).accept == 1);
}

TEST_CASE_METHOD(PipelineFixture, "shadow filters never change the stanza, even when they throw",
                 "[pipeline][shadow][hostile]") {
  const std::string before = stanza.serialize();
  pipeline.add(std::make_shared<RewriteIdFilter>("shadow-rewrite"), /*shadow=*/true);
  pipeline.add(std::make_shared<ThrowingFilter>("shadow-thrower"), /*shadow=*/true);
  pipeline.add(scripted("allow", Verdict::accept("r1")));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK(d.release);
  CHECK(stanza.serialize() == before);
  CHECK(d.transformations.empty());
  REQUIRE(d.trail.size() == 3);
  CHECK(d.trail[0].verdict.kind == VerdictKind::Modify);
  CHECK(d.trail[0].shadow);
  CHECK(d.trail[1].verdict.rule_id == "exception:shadow-thrower");
  CHECK(d.trail[1].shadow);
  CHECK(pipeline.counters(1).error == 1);
}

TEST_CASE_METHOD(PipelineFixture, "modify applies, is recorded, and the pipeline continues",
                 "[pipeline]") {
  pipeline.add(std::make_shared<RewriteIdFilter>("rewrite"));
  pipeline.add(scripted("allow", Verdict::accept("r1")));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK(d.release);
  CHECK(*stanza.attr("id") == "rewritten");
  CHECK(d.transformations == std::vector<std::string>{"rewrite-id"});
  CHECK(trail_names(d) == std::vector<std::string>{"rewrite", "allow"});
  CHECK(d.trail[0].verdict.kind == VerdictKind::Modify);
  CHECK(pipeline.counters(0).modify == 1);
}

TEST_CASE_METHOD(PipelineFixture, "the trail proves every filter ran, in order", "[pipeline]") {
  for (const char* n : {"f1", "f2", "f3", "f4"}) pipeline.add(scripted(n, Verdict::no_opinion()));
  pipeline.add(scripted("f5", Verdict::accept("last")));

  const Decision d = pipeline.run(stanza, ctx);
  const Decision again = pipeline.run(stanza, ctx);

  CHECK(d.release);
  CHECK(trail_names(d) == std::vector<std::string>{"f1", "f2", "f3", "f4", "f5"});
  CHECK(trail_names(again) == trail_names(d));
  for (std::size_t i = 0; i < 4; ++i) CHECK(pipeline.counters(i).no_opinion == 2);
  CHECK(pipeline.counters(4).accept == 2);
}

TEST_CASE_METHOD(PipelineFixture, "a reject verdict without an error still rejects with one",
                 "[pipeline][hostile]") {
  Verdict bare;
  bare.kind = VerdictKind::Reject;
  bare.rule_id = "sloppy";
  pipeline.add(scripted("sloppy", bare));

  const Decision d = pipeline.run(stanza, ctx);

  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "sloppy");
  REQUIRE(d.final_verdict.error);
  CHECK(d.final_verdict.error->condition == StanzaErrorCondition::PolicyViolation);
}

TEST_CASE("Pipeline::add refuses a null filter", "[pipeline]") {
  Pipeline p;
  CHECK_THROWS_AS(p.add(nullptr), std::invalid_argument);
  CHECK(p.size() == 0);
}

TEST_CASE("verdict kinds have stable names", "[pipeline]") {
  CHECK(policy::to_string(VerdictKind::Accept) == "accept");
  CHECK(policy::to_string(VerdictKind::NoOpinion) == "no-opinion");
  CHECK(policy::to_string(VerdictKind::Reject) == "reject");
  CHECK(policy::to_string(VerdictKind::Modify) == "modify");
}
