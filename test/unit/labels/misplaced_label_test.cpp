// A label is a label wherever it sits (issue 12, item 8): any element of a
// sec-label namespace (any version) or a STANAG 4774 label anywhere but a
// top-level <securitylabel xmlns='urn:xmpp:sec-label:0'/> makes the stanza
// refused (rule misplaced-label, bad-request), never treated as unlabelled and
// given a default label. An IQ's label catalog is where labels belong.
#include <catch2/catch.hpp>

#include "policy/labels/label_access.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;
using policy::Verdict;
using policy::VerdictKind;

namespace {

const std::string kLabel =
    "<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>SECRET</displaymarking><label>"
    "<esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQkCAQ4GBCoDBAE=</esssecuritylabel></label></securitylabel>";

struct Fixture {
  labels_test::SamplePolicy policy;
  LabelAccessFilter filter{"nato-access", LabelAccessFilter::config_from_node(policy.filter("nato-access"))};
  Verdict run(const std::string& xml) {
    auto s = labels_test::stanza(xml);
    policy::StanzaContext ctx;
    ctx.peer_domain = "low.example";
    return filter.evaluate(s, ctx);
  }
};

void check_misplaced(const Verdict& v, const std::string& where_part) {
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "misplaced-label");
  REQUIRE(v.error);
  CHECK(v.error->condition == xmpp::StanzaErrorCondition::BadRequest);
  CHECK(labels_test::note(v.notes, "label.misplaced").find(where_part) != std::string::npos);
}

}  // namespace

TEST_CASE_METHOD(Fixture, "a label inside <body> or an extension, or of another version, is refused",
                 "[labels][misplaced]") {
  check_misplaced(run("<message xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='chat'>"
                      "<body>text" + kLabel + "</body></message>"),
                  "body{jabber:server}/securitylabel");
  check_misplaced(run("<message xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='chat'>"
                      "<body>t</body><x xmlns='urn:example:ext'><y>" + kLabel + "</y></x></message>"),
                  "x{urn:example:ext}/y{urn:example:ext}/securitylabel");
  check_misplaced(run("<message xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='chat'>"
                      "<body>t</body><securitylabel xmlns='urn:xmpp:sec-label:1'><label/></securitylabel></message>"),
                  "urn:xmpp:sec-label:1");
  check_misplaced(run("<message xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='chat'>"
                      "<body>t</body><x xmlns='urn:example:ext'><ConfidentialityMetadataLabel "
                      "xmlns='urn:nato:stanag:4774:confidentialitymetadatalabel:1:0'/></x></message>"),
                  "stanag:4774");
  // Presence and errors too: a label hidden there is not a way around "no labels on presence".
  check_misplaced(run("<presence xmlns='jabber:server' from='a@low.example/r' to='room@conference.high.example/n'>"
                      "<x xmlns='urn:example:ext'>" + kLabel + "</x></presence>"),
                  "securitylabel");
  CHECK(filter.counters().malformed >= 4);
}

TEST_CASE_METHOD(Fixture, "labels where XEP-0258 puts them are judged as before", "[labels][misplaced]") {
  // A top-level label: judged (this one is LOW-NATION, which the NATO policy does not own: its default applies).
  const Verdict v = run("<message xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='chat'>"
                        "<body>t</body>" + kLabel + "</message>");
  CHECK(v.rule_id != "misplaced-label");
  // A label catalog answer carries labels by design.
  const Verdict c = run("<iq xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='result' id='c'>"
                        "<catalog xmlns='urn:xmpp:sec-label:catalog:2' to='bob@high.example'><item>" + kLabel +
                        "</item></catalog></iq>");
  CHECK(c.rule_id != "misplaced-label");
  // An unlabelled message stays unlabelled.
  CHECK(run("<message xmlns='jabber:server' from='a@low.example/r' to='bob@high.example' type='chat'><body>t</body>"
            "</message>").rule_id != "misplaced-label");
}
