// Fitting text into IRC lines (guard/irc/split): the relay budget and the
// splitter, at the exact byte boundaries.
#include <catch2/catch.hpp>

#include <string>

#include "guard/irc/message.h"
#include "guard/irc/split.h"
#include "guard/irc/text.h"

using namespace portcullis::irc;

TEST_CASE("payload_budget counts the full relayed line within 512 bytes", "[irc][split]") {
  // ":alice!al@host.example PRIVMSG #ops :" + text + "\r\n"
  const std::string prefix = "alice!al@host.example";
  const std::size_t b = payload_budget(prefix, "PRIVMSG", "#ops");
  CHECK(b == 512 - (1 + prefix.size() + 1 + 7 + 1 + 4 + 2 + 2));
  // A line built with exactly that much text is exactly 512 bytes.
  Message m;
  m.prefix = prefix;
  m.command = "PRIVMSG";
  m.params = {"#ops", std::string(b, 'x')};
  m.trailing = true;
  CHECK(serialize(m).size() == 512);
  m.params[1] += 'x';
  CHECK(serialize(m).empty());
  // Without a prefix: no ':' and no space for it.
  CHECK(payload_budget("", "PRIVMSG", "#ops") == 512 - (7 + 1 + 4 + 2 + 2));
  CHECK(payload_budget(std::string(600, 'h'), "PRIVMSG", "#ops") == 0);
}

TEST_CASE("short text is one line; newlines start new lines, CR is dropped", "[irc][split]") {
  auto s = split_text("hello", 100, 5);
  CHECK(s.lines == std::vector<std::string>{"hello"});
  CHECK_FALSE(s.truncated);
  s = split_text("one\r\ntwo\nthree", 100, 5);
  CHECK(s.lines == std::vector<std::string>{"one", "two", "three"});
  s = split_text("a\n\n\nb\n", 100, 5);  // blank lines yield nothing
  CHECK(s.lines == std::vector<std::string>{"a", "b"});
  s = split_text("\r\n\r\n", 100, 5);
  CHECK(s.lines.empty());
  CHECK_FALSE(s.truncated);
  s = split_text(std::string("nu\0l", 4), 100, 5);
  CHECK(s.lines == std::vector<std::string>{"nul"});
  CHECK(split_text("", 100, 5).lines.empty());
}

TEST_CASE("a long line is cut at the last space within the budget", "[irc][split]") {
  auto s = split_text("the quick brown fox jumps", 10, 10);
  CHECK(s.lines == std::vector<std::string>{"the quick", "brown fox", "jumps"});
  // A space exactly at the budget: the text before it fits exactly.
  s = split_text("0123456789 abc", 10, 10);
  CHECK(s.lines == std::vector<std::string>{"0123456789", "abc"});
  // Exactly the budget: one line.
  s = split_text("0123456789", 10, 10);
  CHECK(s.lines == std::vector<std::string>{"0123456789"});
  // No space: a hard cut.
  s = split_text("0123456789abcdef", 10, 10);
  CHECK(s.lines == std::vector<std::string>{"0123456789", "abcdef"});
}

TEST_CASE("a UTF-8 character is never split, even straddling the budget", "[irc][split]") {
  const std::string grin = "\xF0\x9F\x98\x80";  // 4 bytes
  // 8 ASCII bytes then the emoji: a 10-byte budget would cut it after 2 bytes.
  auto s = split_text("abcdefgh" + grin + "ij", 10, 10);
  REQUIRE(s.lines.size() == 2);
  CHECK(s.lines[0] == "abcdefgh");
  CHECK(s.lines[1] == grin + "ij");
  for (std::size_t offset = 0; offset < 12; ++offset) {
    const std::string text = std::string(offset, 'a') + grin + grin + grin + "z";
    const Split sp = split_text(text, 10, 10);
    std::string joined;
    for (const auto& l : sp.lines) {
      CHECK(l.size() <= 10);
      CHECK(is_valid_utf8(l));
      CHECK_FALSE(l.empty());
      joined += l;
    }
    CHECK(joined == text);  // no space in it: nothing is lost
  }
  // "é" (2 bytes) straddling a budget of 3.
  s = split_text("ab\xC3\xA9", 3, 5);
  CHECK(s.lines == std::vector<std::string>{"ab", "\xC3\xA9"});
}

TEST_CASE("a character longer than the budget stops the split, marked truncated", "[irc][split]") {
  auto s = split_text("ab\xF0\x9F\x98\x80", 3, 5);
  CHECK(s.lines == std::vector<std::string>{"ab"});
  CHECK(s.truncated);
  s = split_text("x", 0, 5);
  CHECK(s.lines.empty());
  CHECK(s.truncated);
}

TEST_CASE("max_lines caps the split and says so", "[irc][split]") {
  auto s = split_text("1\n2\n3\n4", 100, 2);
  CHECK(s.lines == std::vector<std::string>{"1", "2"});
  CHECK(s.truncated);
  s = split_text("1\n2", 100, 2);
  CHECK_FALSE(s.truncated);
  s = split_text("1\n2\n", 100, 2);  // a trailing newline needs no third line
  CHECK_FALSE(s.truncated);
  s = split_text(std::string(25, 'x'), 10, 2);
  CHECK(s.lines.size() == 2);
  CHECK(s.truncated);
  s = split_text("x", 100, 0);
  CHECK(s.lines.empty());
  CHECK(s.truncated);
}

TEST_CASE("ill-formed input is still cut within budget and never spins", "[irc][split]") {
  const std::string junk(40, '\x80');  // continuation bytes only
  const Split s = split_text(junk, 7, 100);
  std::size_t total = 0;
  for (const auto& l : s.lines) {
    CHECK(l.size() <= 7);
    total += l.size();
  }
  CHECK(total == junk.size());
}

TEST_CASE("an action fits the CTCP framing", "[irc][split]") {
  const std::size_t budget = payload_budget("gw!~gw@h", "PRIVMSG", "#ops");
  const Split s = split_text(std::string(1000, 'y'), budget - kActionOverhead, 10);
  for (const auto& l : s.lines) {
    Message m;
    m.prefix = "gw!~gw@h";
    m.command = "PRIVMSG";
    m.params = {"#ops", make_action(l)};
    CHECK(serialize(m).size() <= 512);
  }
  CHECK(serialize(Message{{}, "gw!~gw@h", "PRIVMSG", {"#ops", make_action(s.lines[0])}, true}).size() == 512);
}
