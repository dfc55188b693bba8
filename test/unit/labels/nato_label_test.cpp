// STANAG 4774 label view and generator, and the XEP-0258 securitylabel view.
#include <catch2/catch.hpp>

#include "policy/labels/nato_label.h"
#include "policy/labels/security_label.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;
using labels_test::stanza;

namespace {

const std::string kNs = "urn:nato:stanag:4774:confidentialitymetadatalabel:1:0";

std::string nato(const std::string& info_body, const std::string& extra = "") {
  return "<originatorConfidentialityLabel xmlns='" + kNs + "'><ConfidentialityInformation>" + info_body +
         "</ConfidentialityInformation>" + extra + "</originatorConfidentialityLabel>";
}

}  // namespace

TEST_CASE("a 4774 label from the corpus decodes by name", "[labels][nato]") {
  const auto msg = labels_test::corpus_stanza("msg-nato-secret-rel-gbr.xml");
  const auto view = view_security_label(*find_security_labels(msg).at(0));
  REQUIRE(view);
  REQUIRE(view->label);
  CHECK(view->display_marking == "NATO SECRET REL GBR");
  std::string why;
  const auto l = parse_nato(*view->label, &why);
  REQUIRE(l);
  CHECK(l->format == LabelFormat::Nato4774);
  CHECK(l->policy_id == "1.2.3.4.2");
  CHECK(l->policy_name == "NATO");
  CHECK(l->classification_name == "SECRET");
  CHECK_FALSE(l->classification);
  REQUIRE(l->categories.size() == 1);
  CHECK(l->categories[0].tag_set_name == "Releasable To");
  CHECK(l->categories[0].tag_set_id == "1.2.3.4.2.2");
  CHECK(l->categories[0].kind == TagKind::Permissive);
  CHECK(l->categories[0].name == "GBR");
}

TEST_CASE("a generated 4774 label parses back to the same label", "[labels][nato]") {
  Label l;
  l.format = LabelFormat::Nato4774;
  l.policy_id = "1.2.3.4.2";
  l.policy_name = "NATO";
  l.classification_name = "CONFIDENTIAL";
  l.privacy_mark = "EXERCISE ONLY";
  for (const char* v : {"GBR", "USA"}) {
    LabelCategory c;
    c.tag_set_name = "Releasable To";
    c.tag_set_id = "1.2.3.4.2.2";
    c.kind = TagKind::Permissive;
    c.name = v;
    l.categories.push_back(c);
  }
  const xmpp::Element e = write_nato(l);
  CHECK(e.serialize() ==
        "<originatorConfidentialityLabel xmlns='" + kNs +
            "'><ConfidentialityInformation><PolicyIdentifier URI='urn:oid:1.2.3.4.2'>NATO</PolicyIdentifier>"
            "<Classification>CONFIDENTIAL</Classification><PrivacyMark>EXERCISE ONLY</PrivacyMark>"
            "<Category TagName='Releasable To' Type='PERMISSIVE' URI='urn:oid:1.2.3.4.2.2'>"
            "<GenericValue>GBR</GenericValue><GenericValue>USA</GenericValue></Category>"
            "</ConfidentialityInformation></originatorConfidentialityLabel>");
  const auto back = parse_nato(stanza(e.serialize()));
  REQUIRE(back);
  CHECK(back->policy_name == "NATO");
  CHECK(back->classification_name == "CONFIDENTIAL");
  CHECK(back->privacy_mark == "EXERCISE ONLY");
  REQUIRE(back->categories.size() == 2);
  CHECK(back->categories[1].name == "USA");
}

TEST_CASE("malformed 4774 labels are refused", "[labels][nato][hostile]") {
  const std::string policy = "<PolicyIdentifier>NATO</PolicyIdentifier>";
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"no classification", nato(policy)},
      {"no policy", nato("<Classification>SECRET</Classification>")},
      {"unknown category type",
       nato(policy + "<Classification>SECRET</Classification><Category TagName='R' Type='OTHER'><GenericValue>A</GenericValue></Category>")},
      {"CategoryValue variant",
       nato(policy + "<Classification>SECRET</Classification><Category TagName='R' Type='PERMISSIVE'><CategoryValue>A</CategoryValue></Category>")},
      {"category without values", nato(policy + "<Classification>SECRET</Classification><Category TagName='R' Type='PERMISSIVE'/>")},
      {"text in a container", nato(policy + "<Classification>SECRET</Classification>", "stray")},
      {"element in a text field", nato("<PolicyIdentifier><b/>NATO</PolicyIdentifier><Classification>SECRET</Classification>")},
      {"policy URI not an OID URN", nato("<PolicyIdentifier URI='http://x'>NATO</PolicyIdentifier><Classification>S</Classification>")},
      {"two classifications", nato(policy + "<Classification>SECRET</Classification><Classification>UNCLASSIFIED</Classification>")},
      {"unknown element", nato(policy + "<Classification>SECRET</Classification>", "<Whatever/>")},
      {"empty classification", nato(policy + "<Classification> </Classification>")},
  };
  for (const auto& [what, xml] : cases) {
    INFO(what);
    std::string why;
    CHECK_FALSE(parse_nato(stanza(xml), &why));
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("securitylabel structure is checked", "[labels][xep0258][hostile]") {
  const std::string ns = "urn:xmpp:sec-label:0";
  const std::string ess = "<esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQYCAQQGASk=</esssecuritylabel>";
  CHECK(view_security_label(stanza("<securitylabel xmlns='" + ns + "'><label/></securitylabel>")));
  CHECK_FALSE(view_security_label(stanza("<securitylabel xmlns='" + ns + "'/>")));
  CHECK_FALSE(view_security_label(stanza("<securitylabel xmlns='" + ns + "'><label>" + ess + ess + "</label></securitylabel>")));
  CHECK_FALSE(view_security_label(stanza("<securitylabel xmlns='" + ns + "'><label/><label/></securitylabel>")));
  CHECK_FALSE(view_security_label(stanza("<securitylabel xmlns='" + ns + "'><label/><equivalentlabel/></securitylabel>")));
  CHECK_FALSE(view_security_label(stanza("<securitylabel xmlns='" + ns + "'><label>text</label></securitylabel>")));
  CHECK_FALSE(view_security_label(stanza("<securitylabel xmlns='" + ns + "'><label/><foo xmlns='x'/></securitylabel>")));
  const auto sl = stanza("<securitylabel xmlns='" + ns + "'><displaymarking>S</displaymarking><label>" + ess +
                         "</label><equivalentlabel>" + ess + "</equivalentlabel></securitylabel>");
  const auto v = view_security_label(sl);
  REQUIRE(v);
  CHECK(v->equivalents.size() == 1);
  CHECK(decode_label_element(*v->label).status == DecodedLabel::Status::Ok);
  CHECK(decode_label_element(stanza("<icismlabel xmlns='http://example.gov/IC-ISM/0'/>")).status ==
        DecodedLabel::Status::UnknownFormat);
  CHECK(decode_label_element(stanza("<esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>!!</esssecuritylabel>")).status ==
        DecodedLabel::Status::Malformed);
}
