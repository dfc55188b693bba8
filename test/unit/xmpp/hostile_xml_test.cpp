// The hostile-XML suite: every input in test/corpus/xml/ is fed to a stream
// parser whole and byte by byte; each must end in exactly one stream error with
// the expected condition, with the offending stanza never delivered.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "guard/xmpp/stream_parser.h"
#include "parser_test_support.h"

using namespace portcullis::xmpp;
using portcullis::xmpp::test::corpus_file;
using portcullis::xmpp::test::Recorder;
using C = StreamErrorCondition;

namespace {

struct HostileCase {
  const char* file;
  StreamErrorCondition expected;
  bool small_limits = false;   // run with max_stanza_bytes = 1024
  bool header_expected = true; // the stream header itself is fine
};

// The exact condition chosen for each hostile class (see stream_parser.h).
const std::vector<HostileCase> kCases = {
    {"billion-laughs.xml", C::RestrictedXml, false, false},
    {"doctype-internal.xml", C::RestrictedXml, false, false},
    {"doctype-external.xml", C::RestrictedXml, false, false},
    {"external-entity.xml", C::RestrictedXml, false, false},
    {"undefined-entity.xml", C::RestrictedXml},
    {"undefined-entity-in-attribute.xml", C::RestrictedXml},
    {"pi-in-stanza.xml", C::RestrictedXml},
    {"pi-at-stream-level.xml", C::RestrictedXml},
    {"comment-in-stanza.xml", C::RestrictedXml},
    {"comment-at-stream-level.xml", C::RestrictedXml},
    {"comment-before-header.xml", C::RestrictedXml, false, false},
    {"deep-nesting.xml", C::PolicyViolation},
    {"too-many-attributes.xml", C::PolicyViolation},
    {"long-name.xml", C::PolicyViolation},
    {"oversized-stanza.xml", C::PolicyViolation, true},
    {"unterminated-stanza.xml", C::PolicyViolation, true},
    {"header-too-big.xml", C::PolicyViolation, false, false},
    {"invalid-utf8.xml", C::NotWellFormed},
    {"overlong-utf8.xml", C::NotWellFormed},
    {"nul-byte.xml", C::NotWellFormed},
    {"unbound-prefix.xml", C::NotWellFormed},
    {"unbound-attribute-prefix.xml", C::NotWellFormed},
    {"wrong-stream-namespace.xml", C::InvalidNamespace, false, false},
    {"wrong-root-element.xml", C::InvalidNamespace, false, false},
    {"unprefixed-stream.xml", C::BadNamespacePrefix, false, false},
    {"wrong-content-namespace.xml", C::InvalidNamespace, false, false},
    {"missing-content-namespace.xml", C::InvalidNamespace, false, false},
    {"prefixed-content-namespace.xml", C::BadNamespacePrefix, false, false},
    {"text-at-stream-level.xml", C::NotWellFormed},
    {"non-utf8-encoding.xml", C::UnsupportedEncoding, false, false},
    {"utf16-encoding.xml", C::UnsupportedEncoding, false, false},
    {"xml-declaration-mid-stream.xml", C::NotWellFormed},
    {"mismatched-tags.xml", C::NotWellFormed},
    {"cdata-doctype-trick.xml", C::NotWellFormed},
    // A '&' that starts no reference: at once, not when some later ';' arrives (issue 12, item 3).
    {"bare-ampersand.xml", C::NotWellFormed},
    {"bare-ampersand-in-attribute.xml", C::NotWellFormed},
    {"entity-without-semicolon.xml", C::NotWellFormed},
    {"charref-without-semicolon.xml", C::NotWellFormed},
    {"xml-version-1-1.xml", C::NotWellFormed, false, false},   // expat (Prosody, ejabberd) takes 1.0 only
    {"nested-stream-header.xml", C::InvalidNamespace},          // inside a stanza: at once, not when it closes
    {"nested-stream-header-top.xml", C::InvalidNamespace},      // where a stanza would start
};

ParserLimits limits_for(const HostileCase& c) {
  ParserLimits l;
  if (c.small_limits) l.max_stanza_bytes = 1024;
  return l;
}

void check_outcome(const HostileCase& c, const Recorder& r) {
  INFO("corpus file " << c.file);
  REQUIRE(r.errors.size() == 1);
  CHECK(to_string(r.errors[0].first) == to_string(c.expected));
  CHECK_FALSE(r.errors[0].second.empty());
  // The bad stanza never reaches the handler (none of the files has a good one).
  CHECK(r.elements.empty());
  CHECK(r.closes == 0);
  CHECK(r.opens.size() == (c.header_expected ? 1u : 0u));
}

}  // namespace

TEST_CASE("hostile XML: each corpus input is refused with its exact condition, fed whole",
          "[xmpp][hostile]") {
  for (const auto& c : kCases) {
    const std::string bytes = corpus_file(c.file);
    Recorder r;
    StreamParser p(r, limits_for(c));
    CHECK_FALSE(p.feed(bytes));
    CHECK(p.failed());
    check_outcome(c, r);
    // Dead after the error: further input is ignored and nobody is told again.
    CHECK_FALSE(p.feed("<message/>"));
    CHECK(r.errors.size() == 1);
  }
}

TEST_CASE("hostile XML: same verdicts when fed byte by byte", "[xmpp][hostile]") {
  for (const auto& c : kCases) {
    const std::string bytes = corpus_file(c.file);
    Recorder r;
    StreamParser p(r, limits_for(c));
    bool ok = true;
    for (char ch : bytes) ok = p.feed(std::string_view(&ch, 1)) && ok;
    CHECK_FALSE(ok);
    check_outcome(c, r);
  }
}

TEST_CASE("hostile XML: billion laughs is refused at the DOCTYPE, before any expansion",
          "[xmpp][hostile]") {
  const std::string bytes = corpus_file("billion-laughs.xml");
  Recorder r;
  StreamParser p(r);
  // Feed only up to the end of the first entity declaration: the DOCTYPE start
  // alone must already stop the parser.
  const auto cut = bytes.find("<!ENTITY lol1");
  REQUIRE(cut != std::string::npos);
  CHECK_FALSE(p.feed(std::string_view(bytes).substr(0, cut)));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].first == C::RestrictedXml);
}

TEST_CASE("hostile XML: a stanza that never closes is cut off at the limit (default limits)",
          "[xmpp][hostile]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(portcullis::xmpp::test::kHeader));
  REQUIRE(p.feed("<message from='u@a.example' to='v@b.example'><body>"));
  const std::string chunk(64 * 1024, 'x');
  std::size_t fed = 0;
  bool alive = true;
  for (int i = 0; i < 1000 && alive; ++i) {   // up to 64 MB if nothing stopped it
    alive = p.feed(chunk);
    fed += chunk.size();
  }
  CHECK_FALSE(alive);
  CHECK(fed <= ParserLimits{}.max_stanza_bytes + chunk.size());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].first == C::PolicyViolation);
  CHECK(r.errors[0].second.find("262144") != std::string::npos);
  CHECK(r.elements.empty());
}

TEST_CASE("hostile XML: an oversized but complete stanza is refused (default limits)",
          "[xmpp][hostile]") {
  Recorder r;
  StreamParser p(r);
  std::string stanza = "<message from='u@a.example' to='v@b.example'><body>" +
                       std::string(300 * 1024, 'y') + "</body></message>";
  CHECK_FALSE(p.feed(portcullis::xmpp::test::kHeader + stanza));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].first == C::PolicyViolation);
  CHECK(r.elements.empty());
}

TEST_CASE("hostile XML: the stanza size limit is exact", "[xmpp][hostile]") {
  const std::string prefix = "<message to='v@b.example'><body>";
  const std::string suffix = "</body></message>";
  ParserLimits l;
  l.max_stanza_bytes = 200;
  const std::size_t fill = l.max_stanza_bytes - prefix.size() - suffix.size();

  Recorder ok;
  StreamParser p1(ok, l);
  CHECK(p1.feed(portcullis::xmpp::test::kHeader + prefix + std::string(fill, 'z') + suffix));
  REQUIRE(ok.elements.size() == 1);
  CHECK(ok.wire_sizes[0] == 200);
  CHECK(ok.errors.empty());

  Recorder bad;
  StreamParser p2(bad, l);
  CHECK_FALSE(p2.feed(portcullis::xmpp::test::kHeader + prefix + std::string(fill + 1, 'z') + suffix));
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].first == C::PolicyViolation);
  CHECK(bad.elements.empty());
}

TEST_CASE("hostile XML: good stanzas before the bad one are delivered, the bad one is not",
          "[xmpp][hostile]") {
  Recorder r;
  StreamParser p(r);
  CHECK_FALSE(p.feed(portcullis::xmpp::test::kHeader +
                     "<message to='v@b.example' id='good'/>"
                     "<message to='v@b.example' id='bad'><!-- x --></message>"
                     "<message to='v@b.example' id='after'/>"));
  REQUIRE(r.elements.size() == 1);
  CHECK(r.elements[0].attr_or("id") == "good");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].first == C::RestrictedXml);
}

TEST_CASE("hostile XML: inputs refused by parse_element() too", "[xmpp][hostile]") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"<message><!-- c --></message>", "restricted-xml"},
      {"<message><?pi x?></message>", "restricted-xml"},
      {"<message>&foo;</message>", "restricted-xml"},
      {"<!DOCTYPE m [<!ENTITY a 'b'>]><message>&a;</message>", "restricted-xml"},
      {"<message>", "not-well-formed"},
      {"<message/><message/>", "not-well-formed"},
      {"<message/>junk", "not-well-formed"},
      {"<a:message/>", "not-well-formed"},
      {"<message>\xff</message>", "not-well-formed"},
      {"", "not-well-formed"},
  };
  for (const auto& [input, condition] : bad) {
    INFO(input);
    std::string error;
    CHECK_FALSE(parse_element(input, {}, &error).has_value());
    CHECK(error.rfind(condition, 0) == 0);
  }
  ParserLimits l;
  l.max_stanza_bytes = 10;
  std::string error;
  CHECK_FALSE(parse_element("<message>0123456789</message>", l, &error).has_value());
  CHECK(error.rfind("policy-violation", 0) == 0);
  l = ParserLimits{};
  l.max_depth = 2;
  CHECK_FALSE(parse_element("<a><b><c/></b></a>", l, &error).has_value());
  CHECK(parse_element("<a><b/></a>", l, &error).has_value());
}

TEST_CASE("hostile XML: a peer inventing new names forever is stopped", "[xmpp][hostile]") {
  ParserLimits l;
  l.max_distinct_names = 200;
  Recorder r;
  StreamParser p(r, l);
  REQUIRE(p.feed(portcullis::xmpp::test::kHeader));
  bool alive = true;
  int i = 0;
  for (; i < 1000 && alive; ++i) {
    alive = p.feed("<message to='v@b.example'><n" + std::to_string(i) + "/></message>");
  }
  CHECK_FALSE(alive);
  CHECK(i < 300);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].first == C::PolicyViolation);
}
