// The ACDF, rule by rule, and label canonicalization against the SPIF.
#include <catch2/catch.hpp>

#include "policy/labels/acdf.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;
using policy::PolicyNode;

namespace {

PolicyNode category(const std::string& tag_set, const std::string& value) {
  PolicyNode n;
  n.name = "category";
  n.attrs = {{"tag-set", tag_set}, {"value", value}};
  n.file = "test.xml";
  return n;
}

struct AcdfFixture {
  Spif nato = Spif::load(labels_test::corpus("spif-nato.xml"));

  // A canonical NATO label: classification and (tag set, category) names.
  Label label(const std::string& cls, std::vector<std::pair<std::string, std::string>> cats = {}) {
    PolicyNode n;
    n.name = "label";
    n.file = "test.xml";
    n.attrs = {{"classification", cls}};
    for (const auto& [t, v] : cats) n.children.push_back(category(t, v));
    return nato.label_from_node(n);
  }
  Clearance clearance(const std::string& up_to, std::vector<std::pair<std::string, std::string>> cats = {}) {
    PolicyNode n;
    n.name = "clearance";
    n.file = "test.xml";
    n.attrs = {{"id", "clr"}, {"up-to", up_to}};
    for (const auto& [t, v] : cats) n.children.push_back(category(t, v));
    return nato.clearance_from_node(n);
  }
};

}  // namespace

TEST_CASE_METHOD(AcdfFixture, "rule 1: the classification must be in the clearance", "[labels][acdf]") {
  CHECK(acdf(nato, clearance("SECRET"), label("CONFIDENTIAL")).grant);
  const AcdfResult r = acdf(nato, clearance("RESTRICTED"), label("CONFIDENTIAL"));
  CHECK_FALSE(r.grant);
  CHECK(r.reason == "classification CONFIDENTIAL not in clearance");
}

TEST_CASE_METHOD(AcdfFixture, "up-to grants the lower classifications, not the higher", "[labels][acdf]") {
  const Clearance c = clearance("RESTRICTED");
  CHECK(c.classifications == std::set<long>{1, 2});
}

TEST_CASE_METHOD(AcdfFixture, "rule 2: every restrictive category must be held", "[labels][acdf]") {
  const Label l = label("RESTRICTED", {{"Compartments", "ALPHA"}, {"Compartments", "CHARLIE"}});
  CHECK_FALSE(acdf(nato, clearance("SECRET", {{"Compartments", "ALPHA"}}), l).grant);
  CHECK(acdf(nato, clearance("SECRET", {{"Compartments", "ALPHA"}, {"Compartments", "CHARLIE"}}), l).grant);
  CHECK_FALSE(acdf(nato, clearance("SECRET"), label("RESTRICTED", {{"Compartments", "ALPHA"}})).grant);
}

TEST_CASE_METHOD(AcdfFixture, "rule 3: one permissive category of the tag set is enough", "[labels][acdf]") {
  const Label l = label("RESTRICTED", {{"Releasable To", "GBR"}, {"Releasable To", "USA"}});
  CHECK(acdf(nato, clearance("SECRET", {{"Releasable To", "USA"}}), l).grant);
  const AcdfResult r = acdf(nato, clearance("SECRET", {{"Releasable To", "FRA"}}), l);
  CHECK_FALSE(r.grant);
  CHECK(r.reason == "no permissive category of Releasable To in clearance");
}

TEST_CASE_METHOD(AcdfFixture, "rule 4: informative categories never matter", "[labels][acdf]") {
  CHECK(acdf(nato, clearance("SECRET"), label("SECRET", {{"Handling", "EXERCISE"}})).grant);
}

TEST_CASE_METHOD(AcdfFixture, "the nil clearance, another policy's clearance and a raw label deny", "[labels][acdf]") {
  CHECK_FALSE(acdf(nato, Clearance{}, label("UNCLASSIFIED")).grant);
  Clearance other = clearance("SECRET");
  other.policy_id = "1.2.3.4.1";
  CHECK_FALSE(acdf(nato, other, label("UNCLASSIFIED")).grant);
  Label raw = label("UNCLASSIFIED");
  raw.canonical = false;
  CHECK_FALSE(acdf(nato, clearance("SECRET"), raw).grant);
}

TEST_CASE_METHOD(AcdfFixture, "canonicalize resolves an ESS label and refuses what the SPIF lacks", "[labels][spif]") {
  Label l;
  l.policy_id = "1.2.3.4.2";
  l.classification = 3;
  LabelCategory c;
  c.tag_set_id = "1.2.3.4.2.2";
  c.kind = TagKind::Permissive;
  c.syntax = TagSyntax::Bitmap;
  c.lacv = 2;
  l.categories.push_back(c);
  Label ok = l;
  REQUIRE(nato.canonicalize(ok));
  CHECK(ok.classification_name == "CONFIDENTIAL");
  CHECK(ok.categories.at(0).name == "FRA");
  CHECK(nato.marking(ok) == "NATO CONFIDENTIAL REL FRA");

  std::string why;
  Label unknown_class = l;
  unknown_class.classification = 9;
  CHECK_FALSE(nato.canonicalize(unknown_class, &why));
  Label wrong_syntax = l;
  wrong_syntax.categories[0].syntax = TagSyntax::Enumerated;   // NATO's tag is a bitmap
  CHECK_FALSE(nato.canonicalize(wrong_syntax, &why));
  Label other_policy = l;
  other_policy.policy_id = "1.2.3.4.99";
  CHECK_FALSE(nato.canonicalize(other_policy, &why));
  Label no_class = l;
  no_class.classification.reset();
  CHECK_FALSE(nato.canonicalize(no_class, &why));
  CHECK(why == "label has no classification");
}

TEST_CASE_METHOD(AcdfFixture, "an unknown name in a policy-file label is a config error at the node", "[labels][spif][errors]") {
  PolicyNode n;
  n.name = "label";
  n.file = "policy.xml";
  n.line = 12;
  n.column = 7;
  n.attrs = {{"classification", "COSMIC"}};
  try {
    nato.label_from_node(n);
    FAIL("accepted");
  } catch (const config::ConfigError& e) {
    CHECK(e.line() == 12);
    CHECK(e.column() == 7);
    CHECK(e.message().find("COSMIC") != std::string::npos);
  }
}
