// XML SPIF loading: what is read, and errors with file:line:column.
#include <catch2/catch.hpp>

#include "guard/config/config.h"
#include "policy/labels/spif.h"
#include "support.h"

using namespace portcullis;
using namespace portcullis::policy::labels;

namespace {

std::string spif_with(const std::string& body) {
  return "<SPIF xmlns='http://www.xmlspif.org/spif'>\n"
         "<securityPolicyId name='P' id='1.9.1'/>\n"
         "<equivalentPolicies><equivalentPolicy name='Q' id='1.9.2'/></equivalentPolicies>\n" +
         body + "\n</SPIF>\n";
}

const std::string kClasses =
    "<securityClassifications><securityClassification name='LOW' lacv='1' hierarchy='1'/>"
    "<securityClassification name='HIGH' lacv='2' hierarchy='2'/></securityClassifications>";

// Loads `text` as a SPIF and returns the ConfigError it throws.
config::ConfigError load_error(const std::string& name, const std::string& text) {
  const std::string path = labels_test::temp_file(name, text);
  try {
    Spif::load(path);
  } catch (const config::ConfigError& e) {
    return e;
  }
  FAIL("the SPIF loaded");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("the NATO test SPIF loads with its classifications, tag sets and equivalents", "[labels][spif]") {
  const Spif s = Spif::load(labels_test::corpus("spif-nato.xml"));
  CHECK(s.policy_name() == "NATO");
  CHECK(s.policy_id() == "1.2.3.4.2");
  REQUIRE(s.classifications().size() == 4);
  const SpifClassification* secret = s.classification_named("SECRET");
  REQUIRE(secret);
  CHECK(secret->lacv == 4);
  CHECK(secret->hierarchy == 4);
  CHECK(secret->marking == "NATO SECRET");
  CHECK(secret->color == "#FF0000");
  const SpifClassification* restricted = s.classification(2);
  REQUIRE(restricted);
  REQUIRE(restricted->equivalents.size() == 1);
  CHECK(restricted->equivalents[0].policy_id == "1.2.3.4.1");   // policyRef LOW-NATION resolved
  CHECK(restricted->equivalents[0].lacv == 12);
  CHECK(restricted->equivalents[0].applied == Applied::Encrypt);
  const SpifTagSet* rel = s.tag_set_named("Releasable To");
  REQUIRE(rel);
  CHECK(rel->id == "1.2.3.4.2.2");
  REQUIRE(rel->tags.size() == 1);
  CHECK(rel->tags[0].kind == TagKind::Permissive);
  CHECK(rel->tags[0].syntax == TagSyntax::Bitmap);
  CHECK(rel->tags[0].categories.size() == 4);
  CHECK(s.tag_set_named("Handling")->tags[0].kind == TagKind::Informative);
}

TEST_CASE("the national SPIF has an enumerated permissive tag and category equivalents", "[labels][spif]") {
  const Spif s = Spif::load(labels_test::corpus("spif-low-nation.xml"));
  const SpifTag& tag = s.tag_set_by_id("1.2.3.4.1.2")->tags.at(0);
  CHECK(tag.kind == TagKind::Permissive);
  CHECK(tag.syntax == TagSyntax::Enumerated);
  const SpifCategory& gbr = tag.categories.at(0);
  CHECK(gbr.marking == "REL GBR");
  REQUIRE(gbr.equivalents.size() == 1);
  CHECK(gbr.equivalents[0].policy_id == "1.2.3.4.2");
  CHECK(gbr.equivalents[0].tag_set_id == "1.2.3.4.2.2");
  CHECK(gbr.equivalents[0].kind == TagKind::Permissive);
  CHECK(gbr.equivalents[0].applied == Applied::Both);
}

TEST_CASE("a SPIF that is not well-formed fails at the parser's position", "[labels][spif][errors]") {
  const auto e = load_error("broken.xml", "<SPIF xmlns='http://www.xmlspif.org/spif'>\n<securityPolicyId name='P' id='1.9'>\n</SPIF>\n");
  CHECK(e.line() == 3);
  CHECK(e.column() > 0);
  CHECK(e.file().find("labels-test-broken.xml") != std::string::npos);
}

TEST_CASE("a SPIF with a DOCTYPE is refused", "[labels][spif][errors][hostile]") {
  const auto e = load_error("doctype.xml",
                            "<?xml version='1.0'?>\n<!DOCTYPE SPIF [<!ENTITY x 'y'>]>\n<SPIF xmlns='http://www.xmlspif.org/spif'>&x;</SPIF>\n");
  CHECK(e.line() == 2);
  CHECK(e.message().find("document type") != std::string::npos);
}

TEST_CASE("an unknown tagType is reported at its element", "[labels][spif][errors]") {
  const auto e = load_error("tagtype.xml", spif_with(kClasses + "\n<securityCategoryTagSets>\n"
                                                     "<securityCategoryTagSet name='T' id='1.9.1.1'>\n"
                                                     "<securityCategoryTag name='T' tagType='sometimes'/>\n"
                                                     "</securityCategoryTagSet></securityCategoryTagSets>"));
  CHECK(e.line() == 7);
  CHECK(e.column() == 1);
  CHECK(e.message().find("tagType") != std::string::npos);
}

TEST_CASE("a policyRef that names no equivalent policy is refused", "[labels][spif][errors]") {
  const auto e = load_error("policyref.xml",
                            spif_with("<securityClassifications>\n<securityClassification name='LOW' lacv='1' hierarchy='1'>\n"
                                      "<equivalentClassification policyRef='NOPE' lacv='1' applied='both'/>\n"
                                      "</securityClassification></securityClassifications>"));
  CHECK(e.line() == 6);
  CHECK(e.column() == 1);
  CHECK(e.message().find("NOPE") != std::string::npos);
}

TEST_CASE("meaning errors: duplicates, bad numbers, bad applied, no classifications", "[labels][spif][errors]") {
  CHECK(load_error("dup.xml", spif_with("<securityClassifications><securityClassification name='A' lacv='1' hierarchy='1'/>"
                                        "<securityClassification name='B' lacv='1' hierarchy='2'/></securityClassifications>"))
            .message()
            .find("used twice") != std::string::npos);
  CHECK(load_error("lacv.xml", spif_with("<securityClassifications><securityClassification name='A' lacv='x1' hierarchy='1'/>"
                                         "</securityClassifications>"))
            .message()
            .find("whole number") != std::string::npos);
  CHECK(load_error("applied.xml", spif_with("<securityClassifications><securityClassification name='A' lacv='1' hierarchy='1'>"
                                            "<equivalentClassification policyRef='Q' lacv='1' applied='sideways'/>"
                                            "</securityClassification></securityClassifications>"))
            .message()
            .find("applied") != std::string::npos);
  CHECK(load_error("empty.xml", spif_with("")).message().find("no <securityClassification>") != std::string::npos);
  CHECK(load_error("root.xml", "<NotSPIF/>").message().find("root element") != std::string::npos);
  CHECK(load_error("cat.xml", spif_with(kClasses + "<securityCategoryTagSets><securityCategoryTagSet name='T' id='1.9.1.1'>"
                                                   "<securityCategoryTag tagType='restrictive'>"
                                                   "<tagCategory name='X' lacv='0'/><tagCategory name='Y' lacv='0'/>"
                                                   "</securityCategoryTag></securityCategoryTagSet></securityCategoryTagSets>"))
            .message()
            .find("LACV 0 twice") != std::string::npos);
  CHECK(load_error("excl.xml", spif_with(kClasses + "<securityCategoryTagSets><securityCategoryTagSet name='T' id='1.9.1.1'>"
                                                    "<securityCategoryTag tagType='restrictive'>"
                                                    "<tagCategory name='X' lacv='0'><excludedClass>MIDDLE</excludedClass></tagCategory>"
                                                    "</securityCategoryTag></securityCategoryTagSet></securityCategoryTagSets>"))
            .message()
            .find("MIDDLE") != std::string::npos);
  const auto missing = load_error("missing.xml", "<SPIF xmlns='http://www.xmlspif.org/spif'/>");
  CHECK(missing.message().find("securityPolicyId") != std::string::npos);
}

TEST_CASE("a missing SPIF file is a config error naming the file", "[labels][spif][errors]") {
  try {
    Spif::load("/nonexistent/spif.xml");
    FAIL("loaded");
  } catch (const config::ConfigError& e) {
    CHECK(e.file() == "/nonexistent/spif.xml");
  }
}
