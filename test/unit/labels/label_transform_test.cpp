// LabelTransformFilter: mapping both ways, no equivalent, marking, modes.
#include <catch2/catch.hpp>

#include "policy/labels/ess_label.h"
#include "policy/labels/label_transform.h"
#include "policy/labels/nato_label.h"
#include "policy/labels/security_label.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;
using policy::StanzaContext;
using policy::Verdict;
using policy::VerdictKind;
using xmpp::StanzaErrorCondition;
using labels_test::has_note;

namespace {

struct TransformFixture {
  labels_test::SamplePolicy policy;
  // low -> high: add-equivalent, same format.
  LabelTransformFilter to_nato{"map-to-nato", LabelTransformFilter::config_from_node(policy.filter("map-to-nato"))};
  // high -> low: replace, written as ESS.
  LabelTransformFilter to_low{"map-to-low", LabelTransformFilter::config_from_node(policy.filter("map-to-low"))};
  StanzaContext ctx;
};

const xmpp::Element& only_label(const xmpp::Element& stanza) {
  const auto labels = find_security_labels(stanza);
  REQUIRE(labels.size() == 1);
  return *labels[0];
}

// The ESS label inside a <label>/<equivalentlabel> container, decoded.
Label ess_in(const xmpp::Element& container) {
  const xmpp::Element* e = container.find_child("esssecuritylabel", "urn:xmpp:sec-label:ess:0");
  REQUIRE(e);
  const auto der = base64_decode(e->text());
  REQUIRE(der);
  const auto l = decode_ess(*der);
  REQUIRE(l);
  return *l;
}

std::string low_confidential_with(const std::string& extra_equivalent, const std::string& marking) {
  return "<message xmlns='jabber:server' from='alice@low.example' to='bob@high.example' type='chat'><body>x</body>"
         "<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>" + marking + "</displaymarking><label>"
         "<esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MSkCAQ0GBCoDBAExHjAcgApghkgBZQIBCAMBoQ4wDAYFKgMEAQIxAwIBAQ==</esssecuritylabel>"
         "</label>" + extra_equivalent + "</securitylabel></message>";
}

}  // namespace

TEST_CASE_METHOD(TransformFixture, "low to NATO: the mapped label is added as an equivalent, marking regenerated",
                 "[labels][label_transform]") {
  auto s = labels_test::corpus_stanza("msg-ess-low-confidential-rel-gbr.xml");
  const Verdict v = to_nato.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "map-low-to-nato");
  CHECK(v.transformation == "label-map");
  CHECK(has_note(v.notes, "label.original", "LOW-NATION: LOW CONFIDENTIAL REL GBR"));
  CHECK(has_note(v.notes, "label.mapped", "NATO: NATO CONFIDENTIAL REL GBR"));
  CHECK(has_note(v.notes, "label.mode", "add-equivalent"));

  const xmpp::Element& sl = only_label(s);
  const xmpp::Element* dm = sl.find_child("displaymarking");
  REQUIRE(dm);
  CHECK(dm->text() == "NATO CONFIDENTIAL REL GBR");
  CHECK(dm->attr_or("bgcolor") == "#0000FF");
  // The original label is untouched.
  CHECK(sl.find_child("label")->find_child("esssecuritylabel")->text() ==
        "MSkCAQ0GBCoDBAExHjAcgApghkgBZQIBCAMBoQ4wDAYFKgMEAQIxAwIBAQ==");
  const xmpp::Element* eq = sl.find_child("equivalentlabel");
  REQUIRE(eq);
  const Label mapped = ess_in(*eq);
  CHECK(mapped.policy_id == "1.2.3.4.2");
  CHECK(mapped.classification == 3);
  REQUIRE(mapped.categories.size() == 1);
  CHECK(mapped.categories[0].tag_set_id == "1.2.3.4.2.2");
  CHECK(mapped.categories[0].kind == TagKind::Permissive);   // NATO's tag is a permissive bitmap
  CHECK(mapped.categories[0].lacv == 0);
  CHECK(to_nato.counters().mapped == 1);
  // The body and the rest of the stanza are as they were.
  CHECK(s.find_child("body")->text() == "status report");
}

TEST_CASE_METHOD(TransformFixture, "NATO to low: a 4774 label is replaced by an ESS label via a decrypt equivalence",
                 "[labels][label_transform]") {
  auto s = labels_test::corpus_stanza("msg-nato-secret-rel-gbr.xml");
  const Verdict v = to_low.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "map-nato-to-low");
  CHECK(has_note(v.notes, "label.original", "NATO: NATO SECRET REL GBR"));
  CHECK(has_note(v.notes, "label.mapped", "LOW-NATION: LOW SECRET REL GBR"));
  const xmpp::Element& sl = only_label(s);
  CHECK(sl.find_child("displaymarking")->text() == "LOW SECRET REL GBR");
  CHECK(sl.find_child("equivalentlabel") == nullptr);
  const xmpp::Element* label = sl.find_child("label");
  CHECK(label->find_child("originatorConfidentialityLabel") == nullptr);
  const Label mapped = ess_in(*label);
  CHECK(mapped.policy_id == "1.2.3.4.1");
  CHECK(mapped.classification == 14);
  REQUIRE(mapped.categories.size() == 1);
  CHECK(mapped.categories[0].tag_set_id == "1.2.3.4.1.2");
  CHECK(mapped.categories[0].syntax == TagSyntax::Enumerated);
  CHECK(mapped.categories[0].lacv == 1);
}

TEST_CASE_METHOD(TransformFixture, "no equivalent classification: rejected, stanza unchanged",
                 "[labels][label_transform]") {
  auto s = labels_test::corpus_stanza("msg-ess-low-secret.xml");
  const std::string before = s.serialize();
  const Verdict v = to_nato.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "map-low-to-nato");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "no equivalent label");
  CHECK(s.serialize() == before);
  CHECK(to_nato.counters().no_equivalent == 1);
}

TEST_CASE_METHOD(TransformFixture, "a category without an equivalent is rejected", "[labels][label_transform]") {
  // LOW-NATION RESTRICTED, Compartments {BRAVO} (restrictive bitmap, bit 1):
  // 31 22 02 01 0c 06 04 2a 03 04 01 31 17 30 15 80 0a <restrictive bitmap OID>
  //       a1 07 30 05 ... built by the encoder from the label below.
  Label l;
  l.policy_id = "1.2.3.4.1";
  l.classification = 12;
  LabelCategory c;
  c.tag_set_id = "1.2.3.4.1.1";
  c.kind = TagKind::Restrictive;
  c.syntax = TagSyntax::Bitmap;
  c.lacv = 1;
  l.categories.push_back(c);
  const std::string b64 = base64_encode(*encode_ess(l));
  auto s = labels_test::stanza(
      "<message xmlns='jabber:server' from='a@low.example' to='b@high.example'><securitylabel xmlns='urn:xmpp:sec-label:0'>"
      "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>" + b64 + "</esssecuritylabel></label></securitylabel></message>");
  const Verdict v = to_nato.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.error->text == "no equivalent label");
  CHECK(labels_test::note(v.notes, "label.error").find("Compartments") != std::string::npos);
}

TEST_CASE_METHOD(TransformFixture, "a lying display marking and a claimed equivalent are not passed through",
                 "[labels][label_transform]") {
  // The sender claims a NATO UNCLASSIFIED equivalent (SET { INTEGER 1, OID 1.2.3.4.2 }).
  const std::string claimed =
      "<equivalentlabel><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQkCAQEGBCoDBAI=</esssecuritylabel></equivalentlabel>";
  auto s = labels_test::stanza(low_confidential_with(claimed, "UNCLASSIFIED"));
  const Verdict v = to_nato.evaluate(s, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  const xmpp::Element& sl = only_label(s);
  CHECK(sl.find_child("displaymarking")->text() == "NATO CONFIDENTIAL REL GBR");
  std::size_t equivalents = 0;
  for (const xmpp::Element* e : sl.child_elements())
    if (e->name() == "equivalentlabel") {
      ++equivalents;
      CHECK(ess_in(*e).classification == 3);   // ours, not the sender's claim
    }
  CHECK(equivalents == 1);
}

TEST_CASE_METHOD(TransformFixture, "replace mode drops the original label, add-equivalent keeps it",
                 "[labels][label_transform]") {
  labels_test::SamplePolicy p;
  policy::PolicyNode replace_node = p.filter("map-to-nato");
  for (auto& [k, v] : replace_node.attrs)
    if (k == "mode") v = "replace";
  LabelTransformFilter replacing{"replace", LabelTransformFilter::config_from_node(replace_node)};
  auto s = labels_test::stanza(low_confidential_with("", "X"));
  const Verdict v = replacing.evaluate(s, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  CHECK(has_note(v.notes, "label.mode", "replace"));
  const xmpp::Element& sl = only_label(s);
  CHECK(sl.find_child("equivalentlabel") == nullptr);
  CHECK(ess_in(*sl.find_child("label")).policy_id == "1.2.3.4.2");
}

TEST_CASE_METHOD(TransformFixture, "a nato format writes a 4774 label", "[labels][label_transform]") {
  labels_test::SamplePolicy p;
  policy::PolicyNode node = p.filter("map-to-nato");
  node.attrs.emplace_back("format", "nato");
  LabelTransformFilter f{"nato-format", LabelTransformFilter::config_from_node(node)};
  auto s = labels_test::corpus_stanza("msg-ess-low-confidential-rel-gbr.xml");
  REQUIRE(f.evaluate(s, ctx).kind == VerdictKind::Modify);
  const xmpp::Element* eq = only_label(s).find_child("equivalentlabel");
  REQUIRE(eq);
  const xmpp::Element* nato = eq->find_child("originatorConfidentialityLabel", kNsNato4774);
  REQUIRE(nato);
  const auto l = parse_nato(*nato);
  REQUIRE(l);
  CHECK(l->policy_name == "NATO");
  CHECK(l->classification_name == "CONFIDENTIAL");
  CHECK(l->categories.at(0).name == "GBR");
}

TEST_CASE_METHOD(TransformFixture, "unlabelled traffic: no opinion, unless a default label is configured",
                 "[labels][label_transform]") {
  auto s = labels_test::stanza("<message xmlns='jabber:server' from='a@low.example' to='b@high.example'><body>x</body></message>");
  const std::string before = s.serialize();
  Verdict v = to_nato.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "map-low-to-nato");
  CHECK(s.serialize() == before);
  CHECK(to_nato.counters().unlabelled == 1);

  labels_test::SamplePolicy p;
  policy::PolicyNode node = p.filter("map-to-nato");
  policy::PolicyNode def;
  def.name = "default-label";
  def.file = node.file;
  def.attrs = {{"classification", "UNCLASSIFIED"}};
  node.children.push_back(def);
  LabelTransformFilter with_default{"defaulting", LabelTransformFilter::config_from_node(node)};
  v = with_default.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(has_note(v.notes, "label.mapped", "NATO: NATO UNCLASSIFIED"));
  const xmpp::Element& sl = only_label(s);
  CHECK(ess_in(*sl.find_child("label")).classification == 11);            // LOW-NATION UNCLASSIFIED
  CHECK(ess_in(*sl.find_child("equivalentlabel")).classification == 1);   // NATO UNCLASSIFIED
}

TEST_CASE_METHOD(TransformFixture, "a label under neither policy has no equivalent", "[labels][label_transform]") {
  auto s = labels_test::stanza(
      "<message xmlns='jabber:server' from='a@low.example' to='b@high.example'><securitylabel xmlns='urn:xmpp:sec-label:0'>"
      "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQYCAQQGASk=</esssecuritylabel></label></securitylabel></message>");
  const Verdict v = to_nato.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.error->text == "no equivalent label");
}

TEST_CASE_METHOD(TransformFixture, "labelled presence is refused here too", "[labels][label_transform]") {
  auto s = labels_test::corpus_stanza("presence-labelled.xml");
  const Verdict v = to_nato.evaluate(s, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "labelled-presence");
}

TEST_CASE("a default label without an equivalent stops the load at its element", "[labels][label_transform][errors]") {
  labels_test::SamplePolicy p;
  policy::PolicyNode node = p.filter("map-to-nato");
  policy::PolicyNode def;
  def.name = "default-label";
  def.file = node.file;
  def.line = 99;
  def.column = 5;
  def.attrs = {{"classification", "SECRET"}};
  node.children.push_back(def);
  try {
    LabelTransformFilter::config_from_node(node);
    FAIL("loaded");
  } catch (const config::ConfigError& e) {
    CHECK(e.line() == 99);
    CHECK(e.message().find("no equivalent") != std::string::npos);
  }
}
