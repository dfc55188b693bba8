// PRECIS and IDNA2008 checks of JIDs (guard/xmpp/precis.h): the examples of
// RFC 7622 §3.5, the contextual rules of RFC 5892 Appendix A, the Bidi Rule
// (RFC 5893) and the cases the hostile corpus found (a zero-width joiner,
// U+202E, a private-use character in a localpart).
#include <catch2/catch.hpp>

#include "guard/xmpp/precis.h"

using namespace portcullis::xmpp;

namespace {

std::optional<std::string> problem(const std::string& jid) {
  auto j = parse_jid(jid);
  if (!j) return std::string("(unparseable)");
  return jid_prepared_problem(*j);
}

}  // namespace

TEST_CASE("RFC 7622 §3.5.1 examples in their prepared form pass", "[xmpp][precis]") {
  for (const char* ok :
       {"juliet@example.com", "juliet@example.com/foo", "juliet@example.com/foo bar", "juliet@example.com/foo@bar",
        "foo\\20bar@example.com", "fussball@example.com", "fu\xc3\x9f" "ball@example.com", "\xcf\x80@example.com",
        "\xcf\x83@example.com/foo", "\xcf\x82@example.com/foo", "king@example.com/\xe2\x99\x9a", "example.com",
        "example.com/foobar", "a.example.com/b@example.net", "juliet@xn--bcher-kva.example"}) {
    INFO(ok);
    CHECK(problem(ok) == std::nullopt);
  }
}

TEST_CASE("RFC 7622 §3.5.2 examples and unprepared forms are refused, not rewritten", "[xmpp][precis]") {
  struct Case {
    std::string jid, why;
  };
  const Case cases[] = {
      {"henry\xe2\x85\xa3@example.com", "localpart: U+2163 is disallowed"},           // ROMAN NUMERAL FOUR
      {"\xe2\x99\x9a@example.com", "localpart: U+265A is disallowed"},                // a chess king: a symbol
      {"\xce\xa3@example.com/foo", "localpart: not in lower case"},                   // capital sigma
      {"Juliet@example.com", "localpart: not in lower case"},
      {"\xef\xbd\x8auliet@example.com", "localpart: U+FF4A is a fullwidth or halfwidth form"},
      {"jul\x65\xcc\x81@example.com", "localpart: not in Unicode NFC"},                // e + combining acute
      {"al\xe2\x80\x8dice@example.com", "localpart: U+200D is not allowed in this context"},   // ZWJ
      {"al\xe2\x80\x8cice@example.com", "localpart: U+200C is not allowed in this context"},   // ZWNJ
      {"\xe2\x80\xae" "ecila@example.com", "localpart: U+202E is disallowed"},         // RIGHT-TO-LEFT OVERRIDE
      {"al\xee\x80\x80@example.com", "localpart: U+E000 is disallowed"},               // private use
      {"a\xe2\x80\x8b@example.com", "localpart: U+200B is disallowed"},                // zero-width space
      {"a\xd7\xa9@example.com", "localpart: the Bidi Rule: U+05E9 in a left-to-right string"},
      {"\xd9\xa0\xdb\xb0@example.com", "localpart: U+0660 is not allowed in this context"},   // mixed digits
      {"a\xc2\xb7" "b@example.com", "localpart: U+00B7 is not allowed in this context"},      // middle dot
      {"juliet@example.com/foo\xc2\xa0" "bar", "resourcepart: U+00A0 is a non-ASCII space"},
      {"juliet@example.com/x\xe2\x80\xae", "resourcepart: U+202E is disallowed"},
      {"juliet@example.com/\xee\x80\x80", "resourcepart: U+E000 is disallowed"},
      {"juliet@example.com/\x65\xcc\x81", "resourcepart: not in Unicode NFC"},
      {"juliet@xn--ls8h.example", "domainpart: label 'xn--ls8h'"},                      // an emoji: not IDNA2008
      {"juliet@xn--a.example", "domainpart: label 'xn--a'"},
      {"\xd9\xa0\xd9\xa1@example.com", "localpart: the Bidi Rule: it starts with"},   // digits first
  };
  for (const Case& c : cases) {
    INFO(c.jid);
    const auto p = problem(c.jid);
    REQUIRE(p.has_value());
    CHECK_THAT(*p, Catch::StartsWith(c.why));
  }
}

TEST_CASE("the contextual rules admit what RFC 5892 Appendix A admits", "[xmpp][precis]") {
  for (const char* ok : {
           "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d\xe0\xa4\xb7@example.com",   // KA VIRAMA ZWJ SSA
           "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8c\xe0\xa4\xb7@example.com",   // KA VIRAMA ZWNJ SSA
           "l\xc2\xb7l@example.com",                                         // l·l (Catalan)
           "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@example.com",                   // Hebrew, right to left
           "\xd8\xa8\xd9\xa0\xd9\xa1@example.com",                         // BEH and Arabic-Indic digits
       }) {
    INFO(ok);
    CHECK(problem(ok) == std::nullopt);
  }
}
