// label-access and FMUC presence (policy/labels/label_access.cpp): an FMUC
// join or leave carries no label but does cross into a room, so it is judged by
// the room's default label against the channel and the room's clearances;
// ordinary presence still passes with no opinion (rule "presence").
#include <catch2/catch.hpp>

#include "policy/labels/label_access.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;
using labels_test::has_note;
using labels_test::note;
using policy::StanzaContext;
using policy::Verdict;
using policy::VerdictKind;
using xmpp::StanzaErrorCondition;

namespace {

policy::PolicyNode element(std::string name, std::vector<std::pair<std::string, std::string>> attrs,
                           std::vector<policy::PolicyNode> children = {}) {
  policy::PolicyNode n;
  n.name = std::move(name);
  n.attrs = std::move(attrs);
  n.children = std::move(children);
  return n;
}

// The sample policy's nato-access filter, plus a room cleared below its own
// default label: closed@conference.high.example has default label NATO
// RESTRICTED REL GBR and a clearance up to UNCLASSIFIED.
struct FmucAccessFixture {
  labels_test::SamplePolicy policy;
  LabelAccessFilter filter{"nato-access", LabelAccessFilter::config_from_node(with_closed_room())};

  policy::PolicyNode with_closed_room() const {
    policy::PolicyNode node = policy.filter("nato-access");
    node.children.push_back(element("clearance", {{"id", "clr-unclassified-room"}, {"up-to", "UNCLASSIFIED"}},
                                    {element("category", {{"tag-set", "Releasable To"}, {"value", "GBR"}})}));
    node.children.push_back(element("room", {{"rule", "room-closed"},
                                             {"jid", "closed@conference.high.example"},
                                             {"clearance", "clr-unclassified-room"},
                                             {"default-label", "nato-restricted-rel-gbr"}}));
    return node;
  }

  Verdict run(const std::string& xml, const std::string& peer = "low.example") {
    auto s = labels_test::stanza(xml);
    const std::string before = s.serialize();
    StanzaContext ctx;
    ctx.peer_domain = peer;
    Verdict v = filter.evaluate(s, ctx);
    CHECK(s.serialize() == before);   // label-access never changes the stanza
    return v;
  }
};

std::string fmuc_presence(const std::string& room, const std::string& type = "") {
  return "<presence xmlns='jabber:server' from='ops@conference.low.example/Nick1' to='" + room + "/Nick1'" +
         (type.empty() ? "" : " type='" + type + "'") +
         "><x xmlns='http://jabber.org/protocol/muc'/>"
         "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@low.example/pc'/></presence>";
}

std::string plain_presence(const std::string& room) {
  return "<presence xmlns='jabber:server' from='alice@low.example/pc' to='" + room +
         "/Nick1'><x xmlns='http://jabber.org/protocol/muc'/></presence>";
}

}  // namespace

TEST_CASE_METHOD(FmucAccessFixture, "an FMUC join to a room cleared for its default label is judged and passes",
                 "[labels][label_access][fmuc]") {
  const Verdict v = run(fmuc_presence("ops@conference.high.example"));
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "room-ops");   // decided by the room's entry, not the presence shortcut
  CHECK_FALSE(v.error);
  CHECK(has_note(v.notes, "label.original", "(unlabelled)"));
  CHECK(has_note(v.notes, "label.source", "room-default:room-ops"));
  CHECK(has_note(v.notes, "label.effective", "NATO RESTRICTED REL GBR"));
  CHECK(has_note(v.notes, "clearance.channel", "clr-low-channel"));
  CHECK(has_note(v.notes, "clearance.recipient", "clr-ops-room"));
  CHECK(has_note(v.notes, "acdf", "grant"));
  CHECK(filter.counters().granted == 1);
  CHECK(filter.counters().defaulted == 1);

  SECTION("the leave is judged the same way") {
    const Verdict leave = run(fmuc_presence("ops@conference.high.example", "unavailable"));
    CHECK(leave.kind == VerdictKind::NoOpinion);
    CHECK(leave.rule_id == "room-ops");
    CHECK(has_note(leave.notes, "label.source", "room-default:room-ops"));
  }
}

TEST_CASE_METHOD(FmucAccessFixture, "an FMUC join to a room cleared below its default label is refused",
                 "[labels][label_access][fmuc]") {
  const Verdict v = run(fmuc_presence("closed@conference.high.example"));
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "room-closed");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "security label not permitted");
  CHECK(has_note(v.notes, "label.source", "room-default:room-closed"));
  CHECK(has_note(v.notes, "clearance.recipient", "clr-unclassified-room"));
  CHECK(note(v.notes, "acdf") == "deny: classification RESTRICTED not in clearance");
  CHECK(filter.counters().denied == 1);
}

TEST_CASE_METHOD(FmucAccessFixture, "a non-FMUC presence still passes with no opinion",
                 "[labels][label_access][fmuc]") {
  for (const std::string room : {"ops@conference.high.example", "closed@conference.high.example"}) {
    INFO(room);
    const Verdict v = run(plain_presence(room));
    CHECK(v.kind == VerdictKind::NoOpinion);
    CHECK(v.rule_id == "presence");
    CHECK_FALSE(v.error);
    CHECK(note(v.notes, "label.source") == "(absent)");   // not judged
  }
  // An <fmuc/> in another namespace is not FMUC.
  const Verdict other = run("<presence xmlns='jabber:server' from='alice@low.example/pc' "
                            "to='closed@conference.high.example/Nick1'><fmuc xmlns='urn:example:fmuc'/></presence>");
  CHECK(other.kind == VerdictKind::NoOpinion);
  CHECK(other.rule_id == "presence");
  CHECK(filter.counters().granted == 0);
  CHECK(filter.counters().denied == 0);
}

TEST_CASE_METHOD(FmucAccessFixture, "a labelled FMUC presence is still a protocol violation",
                 "[labels][label_access][fmuc]") {
  const Verdict v = run(
      "<presence xmlns='jabber:server' from='ops@conference.low.example/Nick1' to='ops@conference.high.example/Nick1'>"
      "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@low.example/pc'/>"
      "<securitylabel xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>"
      "MQkCAQ4GBCoDBAE=</esssecuritylabel></label></securitylabel></presence>");
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "labelled-presence");
  REQUIRE(v.error);
  CHECK(v.error->condition == StanzaErrorCondition::BadRequest);
}
