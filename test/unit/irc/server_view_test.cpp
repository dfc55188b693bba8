// 005 ISUPPORT and MODE parsing (guard/irc/server_view).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "guard/irc/server_view.h"

using namespace portcullis::irc;

namespace {
Message isupport(std::vector<std::string> tokens) {
  Message m;
  m.command = "005";
  m.params.push_back("me");
  for (auto& t : tokens) m.params.push_back(std::move(t));
  m.params.push_back("are supported by this server");
  return m;
}
}  // namespace

TEST_CASE("ISUPPORT tokens fill the server view; bad values change nothing", "[irc][isupport]") {
  ServerView v;
  CHECK_FALSE(apply_isupport(v, isupport({"NETWORK=My\\x20Net", "MAXNICKLEN=16", "CHANTYPES=#"})));
  CHECK(v.network == "My Net");
  CHECK(v.nicklen == 16);
  CHECK(v.chantypes == "#");
  CHECK(apply_isupport(v, isupport({"CASEMAPPING=strict-rfc1459"})));
  CHECK(v.casemapping == CaseMapping::StrictRfc1459);
  CHECK_FALSE(apply_isupport(v, isupport({"CASEMAPPING=rfc7613"})));  // unknown: kept
  CHECK(v.casemapping == CaseMapping::StrictRfc1459);
  apply_isupport(v, isupport({"NICKLEN=0", "NICKLEN=99999", "TOPICLEN=x", "CHANTYPES=", "CHANTYPES=#\\x2C",
                              "PREFIX=(ov)@", "PREFIX=ov@+", "CHANMODES=b,k,l", "CHANMODES=b,k,l,i-n"}));
  CHECK(v.nicklen == 16);
  CHECK(v.topiclen == 0);
  CHECK(v.chantypes == "#");
  CHECK(v.prefix_modes == "ov");
  CHECK(v.chanmodes_flag == "imnpst");
  apply_isupport(v, isupport({"PREFIX="}));  // no prefixes at all
  CHECK(v.prefix_modes.empty());
  CHECK(v.prefix_symbols.empty());
  apply_isupport(v, isupport({"-PREFIX", "-CHANTYPES", "-NICKLEN"}));
  CHECK(v.prefix_modes == "ov");
  CHECK(v.chantypes == "#&");
  CHECK(v.nicklen == 9);
  // The last parameter is the text, never a token.
  Message m = isupport({});
  m.params.back() = "NICKLEN=1";
  apply_isupport(v, m);
  CHECK(v.nicklen == 9);
}

TEST_CASE("MODE parameters follow PREFIX and CHANMODES", "[irc][isupport]") {
  ServerView v;
  apply_isupport(v, isupport({"PREFIX=(qaohv)~&@%+", "CHANMODES=beI,k,l,imnst"}));
  const std::vector<std::string> p{"#c", "+qbl-lk+i-e+x", "owner", "*!*@bad", "50", "key", "*!*@ok", "extra"};
  const auto m = parse_modes(v, p, 1, true);
  CHECK(m == std::vector<ModeChange>{{true, 'q', "owner"}, {true, 'b', "*!*@bad"}, {true, 'l', "50"},
                                     {false, 'l', ""}, {false, 'k', "key"}, {true, 'i', ""},
                                     {false, 'e', "*!*@ok"}, {true, 'x', ""}});
  // Missing arguments leave the parameter empty; user modes take none.
  CHECK(parse_modes(v, {"#c", "+ov"}, 1, true) == std::vector<ModeChange>{{true, 'o', ""}, {true, 'v', ""}});
  CHECK(parse_modes(v, {"me", "+iw", "x"}, 1, false) == std::vector<ModeChange>{{true, 'i', ""}, {true, 'w', ""}});
  CHECK(parse_modes(v, {"#c"}, 1, true).empty());
}
