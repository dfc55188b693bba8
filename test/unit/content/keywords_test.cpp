// keywords (policy/content/keywords.h): a LOW-ASSURANCE heuristic; these tests
// pin down exactly what it does catch and what it does not.
#include <catch2/catch.hpp>

#include "policy/content/keywords.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;
using test::note;
using test::note_count;
using xmpp::StanzaErrorCondition;

namespace {

const std::string kCorpus = std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/policy/";

xmpp::Element message(const std::string& body) {
  return test::stanza("<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat'><body>" +
                      body + "</body></message>");
}

struct KeywordsFixture {
  // The file is resolved relative to the policy file's directory.
  policy::PolicyNode node = test::policy_node(
      "<keywords name='dirty-words'>"
      "<list id='codewords' action='reject' file='content-sample-words.txt'/>"
      "<list id='watch' action='flag'><word>neptune</word><word>operation overlord</word></list>"
      "</keywords>",
      kCorpus + "inline-policy.xml");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

std::u32string norm(std::string_view s) { return policy::content::normalize_for_matching(s).value(); }

}  // namespace

TEST_CASE_METHOD(KeywordsFixture, "a code word rejects, naming the entry not the word", "[content][keywords]") {
  auto m = message("Tell the team: Bluebird is go.");
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "codewords");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "message content not allowed across this boundary");
  CHECK(note(v, "keyword.match") == "codewords entry 1 (content-sample-words.txt line 3)");
  for (const auto& [k, val] : v.notes) CHECK(val.find("luebird") == std::string::npos);
}

TEST_CASE_METHOD(KeywordsFixture, "full-width letters are folded by NFKC", "[content][keywords]") {
  auto m = message("\xEF\xBC\xA2\xEF\xBC\xAC\xEF\xBC\xB5\xEF\xBC\xA5\xEF\xBC\xA2\xEF\xBC\xA9\xEF\xBC\xB2\xEF\xBC\xA4");  // ＢＬＵＥＢＩＲＤ
  CHECK(filter->evaluate(m, ctx).rule_id == "codewords");
}

TEST_CASE_METHOD(KeywordsFixture, "a zero-width space inside the word does not hide it", "[content][keywords]") {
  auto m = message("blue\xE2\x80\x8B" "bird");
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::Reject);
}

TEST_CASE_METHOD(KeywordsFixture, "a phrase matches across any white space and case", "[content][keywords]") {
  auto m = message("about OPERATION\n\t  SeaLion tomorrow");
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(note(v, "keyword.match") == "codewords entry 2 (content-sample-words.txt line 4)");
}

TEST_CASE_METHOD(KeywordsFixture, "only whole words match", "[content][keywords]") {
  auto m = message("bluebirds and superbluebird are fine");
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.notes.empty());
}

TEST_CASE_METHOD(KeywordsFixture, "a subject is checked too", "[content][keywords]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example' to='b@high.example'>"
                        "<subject>Re: bluebird</subject><body>see subject</body></message>");
  CHECK(filter->evaluate(m, ctx).kind == VerdictKind::Reject);
}

TEST_CASE_METHOD(KeywordsFixture, "a watch word flags and lets the message pass", "[content][keywords]") {
  auto m = message("Neptune and Operation Overlord are on schedule");
  const std::string before = m.serialize();
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "watch");
  REQUIRE(note_count(v, "keyword.flag") == 2);
  CHECK(v.notes[0].second == "watch entry 1");
  CHECK(v.notes[1].second == "watch entry 2");
  CHECK(m.serialize() == before);
}

TEST_CASE_METHOD(KeywordsFixture, "presence status is not a body: no opinion", "[content][keywords]") {
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'><status>bluebird</status></presence>");
  CHECK(filter->evaluate(p, ctx).kind == VerdictKind::NoOpinion);
}

TEST_CASE("a shadow reject list records the match and lets the message pass", "[content][keywords]") {
  const auto filter = test::build_filter(test::policy_node(
      "<keywords name='k'><list id='trial' action='reject' shadow='true'><word>bluebird</word></list></keywords>"));
  auto m = message("bluebird");
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "trial");
  CHECK(note(v, "shadow") == "trial would reject: policy-violation");
  CHECK(note(v, "keyword.match") == "trial entry 1");
}

TEST_CASE("normalisation: NFKC, case folding, ignorables, white space", "[content][keywords]") {
  CHECK(norm("Stra\xC3\x9F" "e") == U"strasse");          // ß folds to ss
  CHECK(norm("\xEF\xAC\x81" "le") == U"file");            // the ﬁ ligature
  CHECK(norm("  a \t\n b  ") == U"a b");
  CHECK(norm("so\xC2\xAD" "ft") == U"soft");              // soft hyphen removed
  CHECK_FALSE(policy::content::normalize_for_matching("\xC3\x28").has_value());   // invalid UTF-8
}

TEST_CASE("whole-word matching honours the entry's own edges", "[content][keywords]") {
  using policy::content::contains_words;
  CHECK(contains_words(U"we use c++ daily", U"c++"));
  CHECK_FALSE(contains_words(U"abc++", U"c++"));
  CHECK(contains_words(U"(bluebird)", U"bluebird"));
  CHECK_FALSE(contains_words(U"bluebird_x", U"bluebird"));   // '_' joins words
  CHECK(contains_words(U"x bluebird bluebirdy", U"bluebird"));
}

TEST_CASE("a missing word file stops the load", "[content][keywords][config]") {
  const auto node = test::policy_node(
      "<keywords name='k'><list id='l' action='reject' file='no-such-file.txt'/></keywords>", "/nonexistent/policy.xml");
  try {
    test::build_filter(node);
    FAIL("expected a ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(e.message() == "cannot read the word list file '/nonexistent/no-such-file.txt'");
  }
}

TEST_CASE("a list with no entries stops the load", "[content][keywords][config]") {
  CHECK_THROWS_AS(test::build_filter(test::policy_node("<keywords name='k'><list id='l' action='flag'/></keywords>")),
                  config::ConfigError);
}

TEST_CASE("an entry that normalises to nothing stops the load", "[content][keywords][config]") {
  CHECK_THROWS_AS(test::build_filter(test::policy_node(
                      "<keywords name='k'><list id='l' action='flag'><word>\xE2\x80\x8B</word></list></keywords>")),
                  config::ConfigError);
}

TEST_CASE("keywords: the ASCII fast path normalises exactly like the general path", "[content][keywords]") {
  // Appending one non-ASCII letter forces the general (libunistring) path; the
  // ASCII prefix must come out the same either way.
  for (std::string_view s : {"Hello WORLD", "  tabs\tand\r\nnewlines  ", "MiXeD 123 !?-_ CaSe", "a\x0b\x0c" "b",
                             "\x01\x1f control", "ZZZ"}) {
    const std::u32string fast = norm(s);
    std::u32string general = norm(std::string(s) + " \xC3\xA9");   // " é"
    REQUIRE(general.size() >= 2);
    general.erase(general.size() - 2);                             // drop " é"
    CHECK(fast == general);
  }
}
