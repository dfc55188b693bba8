// The IRC line grammar (guard/irc/message): parse_line, serialize, LineReader,
// with hostile input: injection, oversize at the exact 512-byte boundary,
// tags with escapes, too many parameters.
#include <catch2/catch.hpp>

#include <string>

#include "guard/irc/message.h"

using namespace portcullis::irc;

namespace {

Message parsed(const std::string& line) {
  std::string error;
  auto m = parse_line(line, &error);
  INFO(line << " -> " << error);
  REQUIRE(m.has_value());
  return *m;
}

std::string refusal(const std::string& line) {
  std::string error;
  auto m = parse_line(line, &error);
  INFO(line);
  REQUIRE_FALSE(m.has_value());
  REQUIRE_FALSE(error.empty());
  return error;
}

std::string refusal(const Message& m) {
  std::string error;
  const std::string wire = serialize(m, &error);
  REQUIRE(wire.empty());
  REQUIRE_FALSE(error.empty());
  return error;
}

Message msg(std::string command, std::vector<std::string> params, bool trailing = false) {
  Message m;
  m.command = std::move(command);
  m.params = std::move(params);
  m.trailing = trailing;
  return m;
}

}  // namespace

TEST_CASE("a PRIVMSG with a full prefix and a trailing parameter", "[irc][message]") {
  const Message m = parsed(":alice!al@host.example PRIVMSG #ops :hello there");
  CHECK(m.prefix == "alice!al@host.example");
  CHECK(m.nick() == "alice");
  CHECK_FALSE(m.from_server());
  CHECK(m.command == "PRIVMSG");
  REQUIRE(m.params.size() == 2);
  CHECK(m.params[0] == "#ops");
  CHECK(m.params[1] == "hello there");  // without its ':'
  CHECK(m.trailing);
  CHECK(m.tags.empty());
}

TEST_CASE("commands are upper-cased, numerics kept as three digits", "[irc][message]") {
  CHECK(parsed("privmsg #a :x").command == "PRIVMSG");
  CHECK(parsed("Ping :tok").command == "PING");
  const Message n = parsed(":irc.example.net 001 gw :Welcome");
  CHECK(n.command == "001");
  CHECK(n.from_server());
  CHECK(n.nick() == "irc.example.net");
  CHECK(parsed(":srv 005 gw NICKLEN=9 :are supported").params.size() == 3);
  CHECK(refusal("01 gw :x") == "malformed command");
  CHECK(refusal("0001 gw :x") == "malformed command");
  CHECK(refusal("00a gw") == "malformed command");
  CHECK(refusal("PRIV-MSG x") == "malformed command");
  CHECK(refusal("PRIVMSG1 x") == "malformed command");
}

TEST_CASE("parameters: middles, an empty trailing, spaces and a trailing space", "[irc][message]") {
  const Message empty_trailing = parsed("TOPIC #ops :");
  REQUIRE(empty_trailing.params.size() == 2);
  CHECK(empty_trailing.params[1].empty());
  CHECK(empty_trailing.trailing);

  const Message colon_inside = parsed("PRIVMSG #a :: starts with a colon");
  CHECK(colon_inside.params[1] == ": starts with a colon");

  const Message middles = parsed("MODE   #ops  +ov   alice bob ");
  CHECK(middles.params == std::vector<std::string>{"#ops", "+ov", "alice", "bob"});
  CHECK_FALSE(middles.trailing);

  const Message no_params = parsed("QUIT");
  CHECK(no_params.params.empty());
  CHECK(no_params.prefix.empty());
  CHECK(no_params.nick().empty());

  const Message nick_only = parsed(":bob NICK robert");
  CHECK(nick_only.nick() == "bob");
  CHECK_FALSE(nick_only.from_server());  // no '.', so a nick, not a server
  CHECK(parsed(":bob@host NOTICE x :y").nick() == "bob");
}

TEST_CASE("fifteen parameters are accepted, a sixteenth is refused", "[irc][message]") {
  std::string line = "CMD";
  for (int i = 1; i <= 14; ++i) line += " p" + std::to_string(i);
  CHECK(parsed(line + " :the fifteenth").params.size() == 15);
  CHECK(parsed(line + " p15").params.size() == 15);
  CHECK(refusal(line + " p15 p16") == "more than 15 parameters");
  CHECK(refusal(line + " p15 :trailing sixteenth") == "more than 15 parameters");
}

TEST_CASE("NUL, CR and LF are refused anywhere in a line", "[irc][message]") {
  CHECK(refusal(std::string("PRIVMSG #a :hi\0there", 20)) == "NUL in line");
  CHECK(refusal("PRIVMSG #a :hi\r\nQUIT :bye") == "CR or LF inside the line");
  CHECK(refusal("PRIVMSG #a :hi\rQUIT") == "CR or LF inside the line");
  CHECK(refusal("PRIVMSG #a :hi\nQUIT") == "CR or LF inside the line");
  CHECK(refusal("PRIVMSG #a :hi\r") == "CR or LF inside the line");  // the caller strips CR LF
}

TEST_CASE("empty lines, empty prefixes and missing commands are refused", "[irc][message]") {
  CHECK(refusal("") == "empty line");
  CHECK(refusal(": PRIVMSG #a :x") == "empty prefix");
  CHECK(refusal(":") == "empty prefix");
  CHECK(refusal(":alice") == "no command");
  CHECK(refusal(":alice ") == "no command");
  CHECK(refusal("   ") == "no command");
  CHECK(refusal("@a=b") == "tags without a command");
  CHECK(refusal("@a=b ") == "no command");
  CHECK(refusal(":x :y") == "malformed command");
}

TEST_CASE("a body of exactly 510 bytes (512 with CRLF) passes, 511 is refused", "[irc][message]") {
  const std::string head = ":alice!a@h PRIVMSG #ops :";
  const std::string fits = head + std::string(kMaxBodyBytes - head.size(), 'x');
  REQUIRE(fits.size() == 510);
  CHECK(parsed(fits).params[1].size() == 510 - head.size());
  CHECK(refusal(fits + "x") == "line over 512 bytes");
  // The limit is on the body: tags come on top of it.
  CHECK(parsed("@time=2024-01-01T00:00:00.000Z " + fits).tags.size() == 1);
  CHECK(refusal("@time=x " + fits + "x") == "line over 512 bytes");
}

TEST_CASE("IRCv3 tags are tolerated and unescaped", "[irc][message]") {
  const Message m = parsed(
      "@time=2023-01-01T00:00:00Z;msgid=abc;+example.com/emoji=\\:smile\\:\\sok\\\\\\r\\n;flag;b=bad\\x;t=trail\\ "
      ":nick!u@h PRIVMSG #a :hi");
  REQUIRE(m.tags.size() == 6);
  CHECK(m.tags[0] == std::pair<std::string, std::string>{"time", "2023-01-01T00:00:00Z"});
  CHECK(m.tags[1].second == "abc");
  CHECK(m.tags[2].first == "+example.com/emoji");
  CHECK(m.tags[2].second == ";smile; ok\\\r\n");
  CHECK(m.tags[3] == std::pair<std::string, std::string>{"flag", ""});
  CHECK(m.tags[4].second == "badx");  // an unknown escape is the character itself
  CHECK(m.tags[5].second == "trail");  // a lone trailing backslash is dropped
  CHECK(m.prefix == "nick!u@h");
  CHECK(m.params[1] == "hi");

  // The last of a duplicated key wins; empty items are skipped.
  const Message dup = parsed("@a=1;;a=2; PING :x");
  REQUIRE(dup.tags.size() == 1);
  CHECK(dup.tags[0].second == "2");

  CHECK(refusal("@=v PING") == "malformed tag key");
  CHECK(refusal("@k!y=v PING") == "malformed tag key");
}

TEST_CASE("the tag section may be 8191 bytes, not more", "[irc][message]") {
  // "@" + "k=" + value + " " == 8191
  const std::string value(8191 - 4, 'v');
  const std::string tags = "@k=" + value + " ";
  REQUIRE(tags.size() == kMaxTagBytes);
  CHECK(parsed(tags + "PING :x").tags[0].second.size() == value.size());
  CHECK(refusal("@k=" + value + "v PING :x") == "tag section over 8191 bytes");
}

TEST_CASE("serialize writes CRLF and a ':' only where the last parameter needs it", "[irc][message]") {
  CHECK(serialize(msg("NICK", {"alice"})) == "NICK alice\r\n");
  CHECK(serialize(msg("PRIVMSG", {"#a", "hello world"})) == "PRIVMSG #a :hello world\r\n");
  CHECK(serialize(msg("PRIVMSG", {"#a", "hello"}, true)) == "PRIVMSG #a :hello\r\n");
  CHECK(serialize(msg("TOPIC", {"#a", ""})) == "TOPIC #a :\r\n");
  CHECK(serialize(msg("PRIVMSG", {"#a", ":)"})) == "PRIVMSG #a ::)\r\n");
  CHECK(serialize(msg("QUIT", {})) == "QUIT\r\n");
  Message p = msg("PRIVMSG", {"#a", "x"});
  p.prefix = "alice!a@h";
  CHECK(serialize(p) == ":alice!a@h PRIVMSG #a x\r\n");
  Message t = msg("TAGMSG", {"#a"});
  t.tags = {{"+typing", "active"}, {"label", "a;b c\\"}, {"flag", ""}};
  CHECK(serialize(t) == "@+typing=active;label=a\\:b\\sc\\\\;flag TAGMSG #a\r\n");
}

TEST_CASE("serialize refuses anything that would inject or break a line", "[irc][message]") {
  CHECK(refusal(msg("PRIVMSG", {"#a", "hi\r\nQUIT :bye"})) == "CR, LF or NUL in a parameter");
  CHECK(refusal(msg("PRIVMSG", {"#a", "hi\nJOIN #evil"})) == "CR, LF or NUL in a parameter");
  CHECK(refusal(msg("PRIVMSG", {"#a", std::string("a\0b", 3)})) == "CR, LF or NUL in a parameter");
  CHECK(refusal(msg("PRIVMSG", {"#a\r\nQUIT", "x"})) == "CR, LF or NUL in a parameter");
  CHECK(refusal(msg("PRIVMSG", {"#a b", "x"})).find("other than the last") != std::string::npos);
  CHECK(refusal(msg("PRIVMSG", {"", "x"})).find("other than the last") != std::string::npos);
  CHECK(refusal(msg("PRIVMSG", {":#a", "x"})).find("other than the last") != std::string::npos);
  CHECK(refusal(msg("", {"x"})) == "empty command");
  CHECK(refusal(msg("PRIV MSG", {"x"})) == "malformed command");
  CHECK(refusal(msg("QUIT\r\n", {})) == "malformed command");
  Message bad_prefix = msg("PING", {"x"});
  bad_prefix.prefix = "a b";
  CHECK(refusal(bad_prefix) == "prefix with a space, CR, LF or NUL");
  Message bad_tag = msg("PING", {"x"});
  bad_tag.tags = {{"a b", "v"}};
  CHECK(refusal(bad_tag) == "malformed tag key");
  std::vector<std::string> sixteen(16, "p");
  CHECK(refusal(msg("CMD", sixteen)) == "more than 15 parameters");
}

TEST_CASE("serialize allows exactly 512 bytes with CRLF", "[irc][message]") {
  const std::string head = "PRIVMSG #ops :";
  const std::string text(kMaxLineBytes - 2 - head.size(), 'x');
  CHECK(serialize(msg("PRIVMSG", {"#ops", text}, true)).size() == 512);
  CHECK(refusal(msg("PRIVMSG", {"#ops", text + "y"}, true)) == "line over 512 bytes");
}

TEST_CASE("what parse_line accepts serializes back to the same message", "[irc][message]") {
  for (const std::string line :
       {":alice!a@h PRIVMSG #ops :hello there", "@a=b\\sc;d :s 005 me CHANMODES=b,k,l,imnpst :ok", "PING tok",
        "MODE #a +o  bob", ":s 353 me = #a :@alice +bob carol", "TOPIC #a :", "CAP * LS * :sasl multi-prefix"}) {
    const Message m = parsed(line);
    const std::string wire = serialize(m);
    REQUIRE_FALSE(wire.empty());
    CHECK(parsed(wire.substr(0, wire.size() - 2)) == m);
  }
}

TEST_CASE("LineReader splits on CRLF or LF, across chunks, skipping empty lines", "[irc][reader]") {
  LineReader r;
  r.feed("PING :a\r\nPI");
  CHECK(r.next() == "PING :a");
  CHECK_FALSE(r.next().has_value());
  r.feed("NG :b\n\r\n\nNOTICE x :y\r");
  CHECK(r.next() == "PING :b");
  CHECK_FALSE(r.next().has_value());  // "NOTICE x :y\r" waits for its LF
  r.feed("\n");
  CHECK(r.next() == "NOTICE x :y");
  CHECK_FALSE(r.next().has_value());
  CHECK(r.overlong() == 0);
  r.feed("A bare\rCR stays\r\n");
  CHECK(r.next() == "A bare\rCR stays");  // and parse_line refuses it
}

TEST_CASE("LineReader drops an overlong line whole and keeps its memory bounded", "[irc][reader]") {
  LineReader r;
  const std::string fits(kMaxBodyBytes, 'a');
  r.feed(fits + "\r\n");
  CHECK(r.next() == fits);
  r.feed(fits + "\n");
  CHECK(r.next() == fits);
  r.feed(fits + "b\r\n");  // 511 bytes of body
  CHECK_FALSE(r.next().has_value());
  CHECK(r.overlong() == 1);

  // A flood without LF, in small chunks: never more than the limit is held.
  for (int i = 0; i < 10000; ++i) {
    r.feed("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    REQUIRE(r.buffered() <= kMaxBodyBytes + 1);
  }
  CHECK(r.overlong() == 2);  // counted once
  r.feed("tail of the flood\r\nPING :after\r\n");
  CHECK(r.next() == "PING :after");  // the rest of the overlong line went with it
  CHECK_FALSE(r.next().has_value());

  // One huge chunk is not copied either.
  r.feed(std::string(1 << 20, 'z'));
  CHECK(r.buffered() == 0);
  r.feed("\nPING :x\n");
  CHECK(r.next() == "PING :x");
  CHECK(r.overlong() == 3);
}

TEST_CASE("LineReader allows a tagged line the tag allowance on top", "[irc][reader]") {
  LineReader r;
  const std::string tags = "@k=" + std::string(kMaxTagBytes - 4, 'v') + " ";
  const std::string body = ":s PRIVMSG #a :" + std::string(kMaxBodyBytes - 15, 'x');
  REQUIRE(body.size() == kMaxBodyBytes);
  r.feed(tags + body + "\r\n");
  auto line = r.next();
  REQUIRE(line.has_value());
  std::string error;
  CHECK(parse_line(*line, &error).has_value());
  r.feed(tags + body + "xx\r\n");
  CHECK_FALSE(r.next().has_value());
  CHECK(r.overlong() == 1);
}
