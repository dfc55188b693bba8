// IRC text toward XMPP (guard/irc/text): mIRC formatting, CTCP, UTF-8 repair
// and the XML 1.0 character rules.
#include <catch2/catch.hpp>

#include <string>

#include "guard/irc/text.h"

using namespace portcullis::irc;

TEST_CASE("strip_formatting removes the toggles", "[irc][text]") {
  CHECK(strip_formatting("\x02" "bold\x02 \x1Ditalic\x1D \x1Funder\x1F \x1Estrike\x1E \x11mono\x11 \x16rev\x16\x0F") ==
        "bold italic under strike mono rev");
  CHECK(strip_formatting("plain text, 100% (ok)") == "plain text, 100% (ok)");
  CHECK(strip_formatting("") == "");
}

TEST_CASE("strip_formatting removes colour codes with their digits only", "[irc][text]") {
  CHECK(strip_formatting("\x03" "4red\x03") == "red");
  CHECK(strip_formatting("\x03" "04,12red on blue\x03") == "red on blue");
  CHECK(strip_formatting("\x03" "4,1x") == "x");
  CHECK(strip_formatting("\x03" "123") == "3");         // at most two digits
  CHECK(strip_formatting("\x03" "04,123") == "3");      // and two for the background
  CHECK(strip_formatting("\x03" "04,x") == ",x");       // a comma without a digit is text
  CHECK(strip_formatting("\x03,04x") == ",04x");        // no foreground: the comma is text
  CHECK(strip_formatting("\x03" "5") == "");
  CHECK(strip_formatting("\x03" "5,") == ",");
  CHECK(strip_formatting("a\x03\x03" "b") == "ab");
  CHECK(strip_formatting("\x04" "FF0000red\x04") == "red");
  CHECK(strip_formatting("\x04" "ff0000,00ff00x") == "x");
  CHECK(strip_formatting("\x04" "ff00zz") == "ff00zz");  // not six hex digits: only \x04 goes
  CHECK(strip_formatting("\x04" "ff0000,00ffx") == ",00ffx");
}

TEST_CASE("parse_ctcp reads ACTION and other CTCP, with or without the closing \\x01", "[irc][text]") {
  std::string cmd, args;
  REQUIRE(parse_ctcp("\x01" "ACTION waves\x01", &cmd, &args));
  CHECK(cmd == "ACTION");
  CHECK(args == "waves");
  REQUIRE(parse_ctcp("\x01" "action waves at you", &cmd, &args));
  CHECK(cmd == "ACTION");
  CHECK(args == "waves at you");
  REQUIRE(parse_ctcp("\x01VERSION\x01", &cmd, &args));
  CHECK(cmd == "VERSION");
  CHECK(args.empty());
  cmd = "unchanged";
  CHECK_FALSE(parse_ctcp("plain", &cmd, &args));
  CHECK_FALSE(parse_ctcp("\x01", &cmd, &args));
  CHECK_FALSE(parse_ctcp("\x01\x01", &cmd, &args));
  CHECK_FALSE(parse_ctcp("\x01 x\x01", &cmd, &args));
  CHECK(cmd == "unchanged");
  CHECK(parse_ctcp("\x01PING 123\x01", nullptr, nullptr));
}

TEST_CASE("make_action frames a /me", "[irc][text]") {
  CHECK(make_action("waves") == "\x01" "ACTION waves\x01");
  CHECK(make_action("").size() == kActionOverhead);
  std::string cmd, args;
  REQUIRE(parse_ctcp(make_action("dances a jig"), &cmd, &args));
  CHECK(args == "dances a jig");
}

TEST_CASE("to_valid_utf8 keeps valid UTF-8 and replaces each ill-formed subpart", "[irc][text]") {
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(to_valid_utf8("plain ascii") == "plain ascii");
  CHECK(to_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  CHECK(to_valid_utf8("caf\xE9") == "caf" + fffd);               // Latin-1 é
  CHECK(to_valid_utf8("\x80") == fffd);                          // stray continuation
  CHECK(to_valid_utf8("\xC0\xAF") == fffd + fffd);               // overlong '/'
  CHECK(to_valid_utf8("\xE0\x80\xAF") == fffd + fffd + fffd);    // overlong, 3 bytes
  CHECK(to_valid_utf8("\xED\xA0\x80") == fffd + fffd + fffd);    // a surrogate
  CHECK(to_valid_utf8("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd);  // over U+10FFFF
  CHECK(to_valid_utf8("\xF5") == fffd);
  CHECK(to_valid_utf8("\xE2\x82") == fffd);                      // truncated: one maximal subpart
  CHECK(to_valid_utf8("\xE2\x82x") == fffd + "x");
  CHECK(to_valid_utf8("\xF0\x9F\x98") == fffd);
  CHECK(to_valid_utf8("a\xFF" "b\xFE" "c") == "a" + fffd + "b" + fffd + "c");
  CHECK(is_valid_utf8("caf\xC3\xA9"));
  CHECK_FALSE(is_valid_utf8("caf\xE9"));
}

TEST_CASE("to_xmpp_text yields only XML 1.0 characters", "[irc][text]") {
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(to_xmpp_text("\x02hi\x02 \x03" "4there") == "hi there");
  CHECK(to_xmpp_text("tab\tkept, bell\x07 and esc\x1B gone") == "tab\tkept, bell and esc gone");
  CHECK(to_xmpp_text("\x01" "ACTION x\x01") == "ACTION x");
  CHECK(to_xmpp_text("\xEF\xBF\xBE \xEF\xBF\xBF") == fffd + " " + fffd);  // U+FFFE, U+FFFF
  CHECK(to_xmpp_text("caf\xE9") == "caf" + fffd);
  // Repair comes before stripping: a control byte between two stray bytes
  // does not join them into a character nobody sent.
  CHECK(to_xmpp_text("\xC3\x02\xA9") == fffd + fffd);
  CHECK(to_xmpp_text(std::string("a\0b", 3)) == "ab");
}
