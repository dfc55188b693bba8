// LabelAccessFilter verdicts, notes and counters, built from the sample policy.
#include <catch2/catch.hpp>

#include "policy/labels/label_access.h"
#include "policy/labels/register.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;
using policy::StanzaContext;
using policy::Verdict;
using policy::VerdictKind;
using xmpp::StanzaErrorCondition;
using labels_test::has_note;
using labels_test::note;

namespace {

// A message with a NATO 4774 label (categories: {tag set, type, value}).
std::string nato_message(const std::string& to, const std::string& cls,
                         const std::vector<std::array<std::string, 3>>& cats = {},
                         const std::string& marking = "SOME MARKING") {
  std::string c;
  for (const auto& [tag, type, value] : cats)
    c += "<Category TagName='" + tag + "' Type='" + type + "'><GenericValue>" + value + "</GenericValue></Category>";
  return "<message xmlns='jabber:server' from='alice@low.example/pc' to='" + to +
         "' type='chat'><body>secret words</body><securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>" +
         marking + "</displaymarking><label><originatorConfidentialityLabel "
         "xmlns='urn:nato:stanag:4774:confidentialitymetadatalabel:1:0'><ConfidentialityInformation>"
         "<PolicyIdentifier URI='urn:oid:1.2.3.4.2'>NATO</PolicyIdentifier><Classification>" +
         cls + "</Classification>" + c +
         "</ConfidentialityInformation></originatorConfidentialityLabel></label></securitylabel></message>";
}

std::string plain_message(const std::string& to, const std::string& from = "alice@low.example/pc") {
  return "<message xmlns='jabber:server' from='" + from + "' to='" + to + "' type='chat'><body>hi</body></message>";
}

StanzaContext from_peer(const std::string& peer) {
  StanzaContext ctx;
  ctx.peer_domain = peer;
  return ctx;
}

struct NatoAccessFixture {
  labels_test::SamplePolicy policy;
  LabelAccessFilter filter{"nato-access", LabelAccessFilter::config_from_node(policy.filter("nato-access"))};

  Verdict run(const std::string& xml, const std::string& peer = "low.example") {
    auto s = labels_test::stanza(xml);
    const std::string before = s.serialize();
    Verdict v = filter.evaluate(s, from_peer(peer));
    CHECK(s.serialize() == before);   // label-access never changes the stanza
    return v;
  }
};

void check_denied(const Verdict& v, const std::string& rule) {
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == rule);
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "security label not permitted");
}

}  // namespace

TEST_CASE_METHOD(NatoAccessFixture, "a label both the channel and the user are cleared for passes",
                 "[labels][label_access]") {
  const Verdict v = run(nato_message("bob@high.example", "CONFIDENTIAL",
                                     {{{"Compartments", "RESTRICTIVE", "ALPHA"}}, {{"Releasable To", "PERMISSIVE", "GBR"}}}));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "user-bob");
  CHECK_FALSE(v.error);
  CHECK(has_note(v.notes, "label.original", "SOME MARKING"));
  CHECK(has_note(v.notes, "label.effective", "NATO CONFIDENTIAL ALPHA REL GBR"));
  CHECK(has_note(v.notes, "label.source", "stanza"));
  CHECK(has_note(v.notes, "clearance.channel", "clr-low-channel"));
  CHECK(has_note(v.notes, "clearance.recipient", "clr-bob"));
  CHECK(has_note(v.notes, "acdf", "grant"));
  CHECK(filter.counters().granted == 1);
  CHECK(filter.counters().denied == 0);
  CHECK(filter.type() == "label-access");
}

TEST_CASE_METHOD(NatoAccessFixture, "an over-classified label is refused by the channel clearance",
                 "[labels][label_access]") {
  const Verdict v = run(nato_message("bob@high.example", "SECRET", {{{"Releasable To", "PERMISSIVE", "GBR"}}},
                                     "NATO SECRET REL GBR"));
  check_denied(v, "peer-low");
  CHECK(note(v.notes, "acdf") == "deny: classification SECRET not in clearance");
  // The error never echoes the label, its marking, or the body.
  CHECK(v.error->text.find("SECRET") == std::string::npos);
  CHECK(v.error->text.find("secret words") == std::string::npos);
  CHECK(filter.counters().denied == 1);
}

TEST_CASE_METHOD(NatoAccessFixture, "a restrictive category the recipient lacks is refused by the recipient entry",
                 "[labels][label_access]") {
  const Verdict v = run(nato_message("carol@high.example", "RESTRICTED",
                                     {{{"Compartments", "RESTRICTIVE", "ALPHA"}}, {{"Releasable To", "PERMISSIVE", "GBR"}}}));
  check_denied(v, "dom-high");
  CHECK(has_note(v.notes, "clearance.recipient", "clr-high-users"));
  CHECK(note(v.notes, "acdf") == "deny: restrictive category ALPHA of Compartments not in clearance");
}

TEST_CASE_METHOD(NatoAccessFixture, "a permissive tag set the recipient holds none of is refused",
                 "[labels][label_access]") {
  const Verdict v = run(nato_message("ops@conference.high.example", "RESTRICTED",
                                     {{{"Releasable To", "PERMISSIVE", "FRA"}}}));
  // The channel holds GBR and USA only, and is checked first.
  check_denied(v, "peer-low");
  CHECK(note(v.notes, "acdf") == "deny: no permissive category of Releasable To in clearance");
}

TEST_CASE_METHOD(NatoAccessFixture, "a labelled presence is a protocol violation", "[labels][label_access]") {
  auto s = labels_test::corpus_stanza("presence-labelled.xml");
  const Verdict v = filter.evaluate(s, from_peer("low.example"));
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "labelled-presence");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::BadRequest);
  CHECK(v.error->text == "labelled presence");
  CHECK(filter.counters().labelled_presence == 1);
}

TEST_CASE_METHOD(NatoAccessFixture, "a label under an unknown policy, with no policy default, is the nil label",
                 "[labels][label_access]") {
  // ESS SET { INTEGER 4, OID 1.1 }: a policy this filter does not know.
  const Verdict v = run(
      "<message xmlns='jabber:server' from='alice@low.example' to='bob@high.example'><securitylabel "
      "xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQYCAQQGASk=</esssecuritylabel>"
      "</label></securitylabel></message>");
  check_denied(v, "nil-label");
  CHECK(has_note(v.notes, "label.effective", "(nil)"));
  CHECK(filter.counters().nil_label == 1);
}

TEST_CASE_METHOD(NatoAccessFixture, "unlabelled traffic from a peer takes the peer's default label",
                 "[labels][label_access]") {
  const Verdict v = run(plain_message("bob@high.example"));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "user-bob");
  CHECK(has_note(v.notes, "label.original", "(unlabelled)"));
  CHECK(has_note(v.notes, "label.source", "peer-default:peer-low"));
  CHECK(has_note(v.notes, "label.effective", "NATO UNCLASSIFIED"));
  CHECK(filter.counters().defaulted == 1);
}

TEST_CASE_METHOD(NatoAccessFixture, "unlabelled traffic to a room takes the room's default label first",
                 "[labels][label_access]") {
  const Verdict v = run(plain_message("ops@conference.high.example"));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "room-ops");
  CHECK(has_note(v.notes, "label.source", "room-default:room-ops"));
  CHECK(has_note(v.notes, "label.effective", "NATO RESTRICTED REL GBR"));
}

TEST_CASE_METHOD(NatoAccessFixture, "unlabelled traffic from a peer without a default label is denied",
                 "[labels][label_access]") {
  check_denied(run(plain_message("bob@high.example", "mallory@other.example"), "other.example"), "nil-label");
}

TEST_CASE_METHOD(NatoAccessFixture, "a recipient with no entry and no default clearance holds the nil clearance",
                 "[labels][label_access]") {
  const Verdict v = run(nato_message("dave@elsewhere.example", "UNCLASSIFIED"));
  check_denied(v, "nil-clearance");
  CHECK(has_note(v.notes, "clearance.recipient", "(nil)"));
  CHECK(filter.counters().nil_clearance == 1);
}

TEST_CASE_METHOD(NatoAccessFixture, "a label the SPIF does not define is not valid", "[labels][label_access]") {
  const Verdict v = run(nato_message("bob@high.example", "COSMIC TOP SECRET"));
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "invalid-label");
  CHECK(v.error->text == "security label not valid");
}

TEST_CASE_METHOD(NatoAccessFixture, "malformed and repeated labels are bad requests", "[labels][label_access][hostile]") {
  const std::string bad_ess =
      "<message xmlns='jabber:server' from='alice@low.example' to='bob@high.example'><securitylabel "
      "xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQQGAg==</esssecuritylabel>"
      "</label></securitylabel></message>";
  Verdict v = run(bad_ess);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "malformed-label");
  CHECK(v.error->condition == StanzaErrorCondition::BadRequest);
  CHECK(v.error->text == "malformed security label");

  const std::string two =
      "<message xmlns='jabber:server' from='alice@low.example' to='bob@high.example'>"
      "<securitylabel xmlns='urn:xmpp:sec-label:0'><label/></securitylabel>"
      "<securitylabel xmlns='urn:xmpp:sec-label:0'><label/></securitylabel></message>";
  v = run(two);
  CHECK(v.rule_id == "multiple-labels");
  CHECK(filter.counters().malformed == 2);
}

TEST_CASE("a policy default label and clearance apply to unknown labels and recipients", "[labels][label_access]") {
  labels_test::SamplePolicy policy;
  LabelAccessFilter low{"low-access", LabelAccessFilter::config_from_node(policy.filter("low-access"))};
  auto s = labels_test::stanza(
      "<message xmlns='jabber:server' from='bob@high.example' to='alice@low.example'><securitylabel "
      "xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQYCAQQGASk=</esssecuritylabel>"
      "</label></securitylabel></message>");
  const Verdict v = low.evaluate(s, from_peer("high.example"));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "low-default");
  CHECK(has_note(v.notes, "label.source", "policy-default:low-default"));
  CHECK(has_note(v.notes, "label.effective", "UNCLASSIFIED"));
  CHECK(has_note(v.notes, "clearance.recipient", "clr-low-users"));
  CHECK(note(v.notes, "clearance.channel") == "(absent)");   // check="recipient"
}

TEST_CASE("the registry builds label-access from its element and reports bad references", "[labels][registry]") {
  policy::FilterRegistry registry;
  register_label_filters(registry);
  CHECK(registry.contains("label-access"));
  CHECK(registry.contains("label-transform"));
  labels_test::SamplePolicy policy;
  policy::FilterSpec spec;
  spec.type = "label-access";
  spec.name = "nato-access";
  spec.node = &policy.filter("nato-access");
  const auto f = registry.build(spec);
  REQUIRE(f);
  CHECK(f->name() == "nato-access");
  CHECK(f->type() == "label-access");

  // A <peer> naming a clearance that does not exist: error at that element.
  policy::PolicyNode broken = policy.filter("nato-access");
  for (auto& c : broken.children)
    if (c.name == "peer") c.attrs.emplace_back("clearance", "no-such");
  for (auto& c : broken.children)
    if (c.name == "peer") std::erase_if(c.attrs, [](const auto& a) { return a.first == "clearance" && a.second != "no-such"; });
  spec.node = &broken;
  try {
    registry.build(spec);
    FAIL("built");
  } catch (const config::ConfigError& e) {
    CHECK(e.message().find("no-such") != std::string::npos);
    CHECK(e.line() > 0);
  }
  // Without its policy-file element the factory refuses.
  spec.node = nullptr;
  CHECK_THROWS_AS(registry.build(spec), config::ConfigError);
}

TEST_CASE("marking='check' refuses a display marking that is not the label's", "[labels][label_access]") {
  labels_test::SamplePolicy policy;
  portcullis::policy::PolicyNode node = policy.filter("nato-access");   // a copy, with marking='check' added
  node.attrs.emplace_back("marking", "check");
  LabelAccessFilter filter{"nato-access", LabelAccessFilter::config_from_node(node)};
  const std::vector<std::array<std::string, 3>> cats = {{{"Compartments", "RESTRICTIVE", "ALPHA"}},
                                                        {{"Releasable To", "PERMISSIVE", "GBR"}}};
  SECTION("the SPIF's own marking passes") {
    auto s = labels_test::stanza(nato_message("bob@high.example", "CONFIDENTIAL", cats, "NATO CONFIDENTIAL ALPHA REL GBR"));
    const Verdict v = filter.evaluate(s, from_peer("low.example"));
    CHECK(v.kind == VerdictKind::NoOpinion);
    CHECK(v.rule_id == "user-bob");
  }
  SECTION("a lower marking on a higher label is refused") {
    auto s = labels_test::stanza(nato_message("bob@high.example", "CONFIDENTIAL", cats, "NATO UNCLASSIFIED"));
    const Verdict v = filter.evaluate(s, from_peer("low.example"));
    CHECK(v.kind == VerdictKind::Reject);
    CHECK(v.rule_id == "marking-mismatch");
    REQUIRE(v.error);
    CHECK(v.error->text.find("UNCLASSIFIED") == std::string::npos);
    CHECK(note(v.notes, "marking.expected") == "NATO CONFIDENTIAL ALPHA REL GBR");
  }
  SECTION("ignore (the default) does not compare markings") {
    LabelAccessFilter lax{"nato-access", LabelAccessFilter::config_from_node(policy.filter("nato-access"))};
    auto s = labels_test::stanza(nato_message("bob@high.example", "CONFIDENTIAL", cats, "NATO UNCLASSIFIED"));
    CHECK(lax.evaluate(s, from_peer("low.example")).kind == VerdictKind::NoOpinion);
  }
}
