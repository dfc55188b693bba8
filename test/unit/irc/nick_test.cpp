// Nick mapping (guard/irc/nick): XMPP nick -> IRC nick, suffixes, case mapping.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "guard/irc/nick.h"

using namespace portcullis::irc;

namespace {
const NickRules nine{};
}

TEST_CASE("valid IRC nicks are kept as they are", "[irc][nick]") {
  CHECK(irc_nick_for("alice", nine) == "alice");
  CHECK(irc_nick_for("[bot]`^{|}-", nine) == "[bot]`^{|");  // cut to 9
  CHECK(irc_nick_for("a-1", nine) == "a-1");
  CHECK(irc_nick_for("Zed", nine) == "Zed");
}

TEST_CASE("spaces, dots and other punctuation become '_', one per run", "[irc][nick]") {
  CHECK(irc_nick_for("John Smith", NickRules{20}) == "John_Smith");
  CHECK(irc_nick_for("j.r.r. tolkien", NickRules{20}) == "j_r_r_tolkien");
  CHECK(irc_nick_for("a@b!c#d~e", NickRules{20}) == "a_b_c_d_e");
  CHECK(irc_nick_for("tab\there", NickRules{20}) == "tabhere");  // controls are dropped
  CHECK(irc_nick_for("x  _y", NickRules{20}) == "x__y");          // a kept '_' is not merged
}

TEST_CASE("non-ASCII is transliterated or dropped, deterministically", "[irc][nick]") {
  CHECK(irc_nick_for("Zo\xC3\xAB", nine) == "Zoe");                       // Zoë
  CHECK(irc_nick_for("J\xC3\xBCrgen", nine) == "Jurgen");                 // Jürgen
  CHECK(irc_nick_for("Stra\xC3\x9F" "e", nine) == "Strasse");             // Straße
  CHECK(irc_nick_for("\xC5\x81ukasz", nine) == "Lukasz");                 // Łukasz
  CHECK(irc_nick_for("\xC3\x86sir", nine) == "AEsir");                    // Æsir
  CHECK(irc_nick_for("\xD0\x96\xD0\xB5\xD0\xBD\xD1\x8F", nine) == "Zhenya");  // Женя
  CHECK(irc_nick_for("Bob\xE2\x98\x83", nine) == "Bob");                  // snowman dropped
  CHECK(irc_nick_for("caf\xE9", nine) == "caf");                          // ill-formed byte dropped
}

TEST_CASE("a nick that would start with a digit or '-' gets a '_' in front", "[irc][nick]") {
  CHECK(irc_nick_for("42", nine) == "_42");
  CHECK(irc_nick_for("-dash", nine) == "_-dash");
  CHECK(irc_nick_for("1234567890", nine) == "_12345678");
  CHECK(irc_nick_for(" x", nine) == "_x");
}

TEST_CASE("a nick with nothing left is a hash, never empty, distinct per input", "[irc][nick]") {
  const std::string a = irc_nick_for("\xE5\xBC\xA0\xE4\xB8\x89", nine);  // 张三
  const std::string b = irc_nick_for("\xE6\x9D\x8E\xE5\x9B\x9B", nine);  // 李四
  CHECK(a.size() == 9);
  CHECK(a.front() == 'x');
  CHECK(a != b);
  CHECK(a == irc_nick_for("\xE5\xBC\xA0\xE4\xB8\x89", nine));
  CHECK(is_valid_nick(a, nine));
  CHECK(irc_nick_for("", nine).front() == 'x');
  CHECK(irc_nick_for("...", nine).front() == 'x');
  CHECK(irc_nick_for("", NickRules{3}).size() == 3);
  CHECK(irc_nick_for("", NickRules{0}).size() == 1);  // max_len 0 counts as 1
}

TEST_CASE("every mapped nick is valid and fits, whatever the input", "[irc][nick]") {
  const std::string inputs[] = {"", " ", "-", "0", "\x01\x02", "a b c d e f g h i j k", "\xF0\x9F\x98\x80",
                                "\xC3", "{}|^", "~tilde", std::string(300, 'z'), "x\r\ny"};
  for (std::size_t len : {1u, 2u, 9u, 30u}) {
    for (const auto& in : inputs) {
      const std::string n = irc_nick_for(in, NickRules{len});
      INFO(in << " len " << len << " -> " << n);
      CHECK(is_valid_nick(n, NickRules{len}));
    }
  }
}

TEST_CASE("with_suffix keeps nick and suffix within max_len", "[irc][nick]") {
  CHECK(with_suffix("alice", 1, nine) == "alice1");
  CHECK(with_suffix("alexander", 2, nine) == "alexande2");
  CHECK(with_suffix("alexander", 12, nine) == "alexand12");
  CHECK(with_suffix("alexander", 0, nine) == "alexander");
  CHECK(with_suffix("alexanderthegreat", 0, nine) == "alexander");
  CHECK(with_suffix("bob", 123, NickRules{2}) == "b3");     // first char kept, leading digits dropped
  CHECK(with_suffix("bob", 7, NickRules{1}) == "b");
  std::set<std::string> seen;
  for (unsigned n = 0; n < 100; ++n) {
    const std::string s = with_suffix("gatewaybot", n, nine);
    CHECK(s.size() <= 9);
    CHECK(is_valid_nick(s, nine));
    seen.insert(s);
  }
  CHECK(seen.size() == 100);  // distinct while the digits fit
}

TEST_CASE("rfc1459 case mapping folds []\\~ to {}|^", "[irc][nick]") {
  CHECK(nick_equal("Alice[m]", "alice{M}"));
  CHECK(nick_equal("a\\b~", "A|B^"));
  CHECK_FALSE(nick_equal("alice", "alice_"));
  CHECK(nick_fold("[Bob]\\~") == "{bob}|^");
  CHECK(nick_equal("x~", "x^", CaseMapping::Rfc1459));
  CHECK_FALSE(nick_equal("x~", "x^", CaseMapping::StrictRfc1459));
  CHECK(nick_equal("x[", "x{", CaseMapping::StrictRfc1459));
  CHECK_FALSE(nick_equal("x[", "x{", CaseMapping::Ascii));
  CHECK(nick_equal("ALICE", "alice", CaseMapping::Ascii));
  CHECK(nick_fold("[Bob]", CaseMapping::Ascii) == "[bob]");
}

TEST_CASE("is_valid_nick follows RFC 2812 and the length limit", "[irc][nick]") {
  CHECK(is_valid_nick("alice", nine));
  CHECK(is_valid_nick("[a]-1", nine));
  CHECK_FALSE(is_valid_nick("", nine));
  CHECK_FALSE(is_valid_nick("1abc", nine));
  CHECK_FALSE(is_valid_nick("-abc", nine));
  CHECK_FALSE(is_valid_nick("a b", nine));
  CHECK_FALSE(is_valid_nick("a~b", nine));
  CHECK_FALSE(is_valid_nick("abcdefghij", nine));
  CHECK_FALSE(is_valid_nick("a\r\nQUIT", NickRules{20}));
}
