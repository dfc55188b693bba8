// The sans-IO IRC client (guard/irc/client): registration transcripts (plain,
// PASS, SASL success and failure, nick collisions), membership tracking,
// netsplits, pacing and what XMPP text can and cannot inject.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "guard/irc/client.h"
#include "guard/irc/split.h"

using namespace portcullis::irc;

namespace {

ClientConfig base_config() {
  ClientConfig c;
  c.nick = "gw";
  c.user = "gwuser";
  c.realname = "XMPP gateway";
  return c;
}

// One client and the server's side of the conversation.
struct Session {
  explicit Session(ClientConfig cfg) : client(std::move(cfg)) {}

  // The server sends LINE (CRLF added); returns the events, keeps what the
  // client answered at once in `sent`.
  std::vector<Event> server(const std::string& line) {
    auto ev = client.feed(line + "\r\n");
    for (auto& l : client.take_output()) sent.push_back(std::move(l));
    return ev;
  }
  // What the client sent at once since the last call.
  std::vector<std::string> replies() { return std::exchange(sent, {}); }

  void register_plain(const std::string& nick = "gw") {
    client.start();
    server(":irc.example.net 001 " + nick + " :Welcome to the Example IRC Network " + nick + "!gwuser@gw.example");
    replies();
  }

  Client client;
  std::vector<std::string> sent;
};

// The one event of EV, of kind KIND (a copy: EV is usually a temporary).
Event only(const std::vector<Event>& ev, EventKind kind) {
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0].kind == kind);
  return ev[0];
}

std::vector<std::string> lines(std::initializer_list<const char*> l) {
  std::vector<std::string> out;
  for (const char* s : l) out.push_back(std::string(s) + "\r\n");
  return out;
}

std::vector<Member> members_of(const Client& c, const std::string& channel) { return c.members(channel); }

}  // namespace

TEST_CASE("plain registration: NICK, USER, 001, then the configured JOINs", "[irc][client][registration]") {
  ClientConfig cfg = base_config();
  cfg.channels = {"#ops", "#dev"};
  Session s(cfg);
  CHECK(s.client.state() == ClientState::Idle);
  CHECK(s.client.start() == lines({"NICK gw", "USER gwuser 0 * :XMPP gateway"}));
  CHECK(s.client.start().empty());  // only once
  CHECK(s.client.state() == ClientState::Registering);
  CHECK(s.client.due(0).empty());  // nothing paced before 001
  CHECK_FALSE(s.client.next_due_ms(0).has_value());

  s.server(":irc.example.net NOTICE * :*** Looking up your hostname...");
  const Event& welcome =
      only(s.server(":irc.example.net 001 gw :Welcome to the Example IRC Network gw!gwuser@gw.example"),
           EventKind::Registered);
  CHECK(welcome.nick == "gw");
  CHECK(s.client.state() == ClientState::Registered);
  CHECK(s.client.self_prefix() == "gw!gwuser@gw.example");
  CHECK(s.replies().empty());
  CHECK(s.client.due(0) == lines({"JOIN #ops,#dev"}));

  s.server(":irc.example.net 005 gw NETWORK=Example NICKLEN=30 TOPICLEN=490 CASEMAPPING=ascii "
           "PREFIX=(qaohv)~&@%+ CHANTYPES=#&+ CHANMODES=beI,k,l,imMnOPQRstVz :are supported by this server");
  const ServerView& v = s.client.server();
  CHECK(v.network == "Example");
  CHECK(v.nicklen == 30);
  CHECK(v.topiclen == 490);
  CHECK(v.casemapping == CaseMapping::Ascii);
  CHECK(v.prefix_modes == "qaohv");
  CHECK(v.prefix_symbols == "~&@%+");
  CHECK(v.chantypes == "#&+");
  CHECK(v.chanmodes_list == "beI");
  CHECK(v.chanmodes_param == "k");
  CHECK(v.chanmodes_param_when_set == "l");
  CHECK(v.chanmodes_flag == "imMnOPQRstVz");
  // Nonsense values are ignored, "-KEY" restores the default.
  s.server(":irc.example.net 005 gw NICKLEN=abc PREFIX=(ov)@ CHANMODES=b,k -TOPICLEN :are supported");
  CHECK(v.nicklen == 30);
  CHECK(v.prefix_modes == "qaohv");
  CHECK(v.chanmodes_flag == "imMnOPQRstVz");
  CHECK(v.topiclen == 0);
}

TEST_CASE("PASS goes first; 464 is CredentialsRejected, a QUIT, and the end", "[irc][client][registration]") {
  ClientConfig cfg = base_config();
  cfg.server_password = "letmein";
  cfg.channels = {"#ops"};
  Session s(cfg);
  CHECK(s.client.start() == lines({"PASS letmein", "NICK gw", "USER gwuser 0 * :XMPP gateway"}));
  const Event& e = only(s.server(":irc.example.net 464 gw :Password incorrect"), EventKind::CredentialsRejected);
  CHECK(e.code == "464");
  CHECK(e.text == "Password incorrect");
  CHECK(s.replies() == lines({"QUIT"}));
  CHECK(s.client.state() == ClientState::Closed);
  // Whatever follows is ignored; nothing is paced or answered any more.
  CHECK(s.server("ERROR :Closing Link: gw[10.0.0.1] (Bad password)").empty());
  CHECK(s.server("PING :x").empty());
  CHECK(s.replies().empty());
  CHECK(s.client.due(100000).empty());
  CHECK_FALSE(s.client.privmsg("#ops", "hi").ok);
}

TEST_CASE("465 (banned) is CredentialsRejected too", "[irc][client][registration]") {
  Session s(base_config());
  s.client.start();
  CHECK(only(s.server(":srv 465 gw :You are banned from this server"), EventKind::CredentialsRejected).code == "465");
  CHECK(s.client.state() == ClientState::Closed);
}

TEST_CASE("SASL PLAIN: CAP LS 302, REQ, AUTHENTICATE, 900/903, CAP END, 001", "[irc][client][sasl]") {
  ClientConfig cfg = base_config();
  cfg.user = "gw";
  cfg.sasl_user = "gw";
  cfg.sasl_password = "s3cret";
  cfg.channels = {"#ops"};
  Session s(cfg);
  CHECK(s.client.start() == lines({"CAP LS 302", "NICK gw", "USER gw 0 * :XMPP gateway"}));
  s.server(":irc.example.net CAP * LS * :multi-prefix away-notify");
  CHECK(s.replies().empty());  // more to come
  s.server(":irc.example.net CAP * LS :sasl=PLAIN,EXTERNAL cap-notify");
  CHECK(s.replies() == lines({"CAP REQ :sasl"}));
  s.server(":irc.example.net CAP gw ACK :sasl");
  CHECK(s.replies() == lines({"AUTHENTICATE PLAIN"}));
  s.server("AUTHENTICATE +");
  CHECK(s.replies() == lines({"AUTHENTICATE Z3cAZ3cAczNjcmV0"}));  // base64("gw\0gw\0s3cret")
  const Event& in = only(s.server(":irc.example.net 900 gw gw!gw@gw.example gw :You are now logged in as gw"),
                         EventKind::LoggedIn);
  CHECK(in.text == "gw");
  CHECK(s.client.account() == "gw");
  CHECK(s.client.self_prefix() == "gw!gw@gw.example");
  CHECK(s.server(":irc.example.net 903 gw :SASL authentication successful").empty());
  CHECK(s.replies() == lines({"CAP END"}));
  only(s.server(":irc.example.net 001 gw :Welcome"), EventKind::Registered);
  CHECK(s.client.due(0) == lines({"JOIN #ops"}));
}

TEST_CASE("SASL failure (904) is CredentialsRejected: no CAP END, a QUIT", "[irc][client][sasl]") {
  ClientConfig cfg = base_config();
  cfg.sasl_user = "gw";
  cfg.sasl_password = "wrong";
  Session s(cfg);
  s.client.start();
  s.server("CAP * LS :sasl");
  s.server("CAP * ACK :sasl");
  s.server("AUTHENTICATE +");
  s.replies();
  const Event& e = only(s.server(":srv 904 gw :SASL authentication failed"), EventKind::CredentialsRejected);
  CHECK(e.code == "904");
  CHECK(s.replies() == lines({"QUIT"}));
  CHECK(s.client.state() == ClientState::Closed);
  CHECK(s.server(":srv 001 gw :Welcome").empty());  // no registration after that
  CHECK(s.client.state() == ClientState::Closed);
}

TEST_CASE("SASL fails closed when the server offers no PLAIN or skips SASL", "[irc][client][sasl]") {
  ClientConfig cfg = base_config();
  cfg.sasl_user = "gw";
  cfg.sasl_password = "pw";
  SECTION("no sasl capability") {
    Session s(cfg);
    s.client.start();
    CHECK(only(s.server("CAP * LS :multi-prefix"), EventKind::CredentialsRejected).code == "no-sasl");
    CHECK(s.replies() == lines({"QUIT"}));
  }
  SECTION("sasl without PLAIN") {
    Session s(cfg);
    s.client.start();
    CHECK(only(s.server("CAP * LS :sasl=EXTERNAL,SCRAM-SHA-256"), EventKind::CredentialsRejected).code == "no-sasl");
  }
  SECTION("the capability refused") {
    Session s(cfg);
    s.client.start();
    s.server("CAP * LS :sasl");
    CHECK(only(s.server("CAP * NAK :sasl"), EventKind::CredentialsRejected).code == "no-sasl");
  }
  SECTION("a server that ignores CAP and registers us anyway") {
    Session s(cfg);
    s.client.start();
    s.server(":srv 421 gw CAP :Unknown command");
    const auto ev = s.server(":srv 001 gw :Welcome");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == EventKind::CredentialsRejected);
    CHECK(s.client.state() == ClientState::Closed);
  }
  SECTION("a challenge PLAIN does not have") {
    Session s(cfg);
    s.client.start();
    s.server("CAP * LS :sasl");
    s.server("CAP * ACK :sasl");
    s.replies();
    CHECK(only(s.server("AUTHENTICATE Zm9v"), EventKind::CredentialsRejected).code == "no-sasl");
    CHECK(s.replies() == lines({"AUTHENTICATE *", "QUIT"}));
  }
}

TEST_CASE("SASL payloads are sent in 400-byte chunks, '+' after an exact multiple", "[irc][client][sasl]") {
  ClientConfig cfg = base_config();
  cfg.sasl_user = "u";
  SECTION("exactly 400 bytes of base64") {
    cfg.sasl_password = std::string(296, 'p');  // "u\0u\0" + 296 = 300 bytes -> 400 base64
    Session s(cfg);
    s.client.start();
    s.server("CAP * LS :sasl");
    s.server("CAP * ACK :sasl");
    s.replies();
    s.server("AUTHENTICATE +");
    const auto r = s.replies();
    REQUIRE(r.size() == 2);
    CHECK(r[0].size() == std::string("AUTHENTICATE ").size() + 400 + 2);
    CHECK(r[1] == "AUTHENTICATE +\r\n");
  }
  SECTION("more than 400") {
    cfg.sasl_password = std::string(400, 'p');
    Session s(cfg);
    s.client.start();
    s.server("CAP * LS :sasl");
    s.server("CAP * ACK :sasl");
    s.replies();
    s.server("AUTHENTICATE +");
    const auto r = s.replies();
    REQUIRE(r.size() == 2);
    CHECK(r[0].size() == std::string("AUTHENTICATE ").size() + 400 + 2);
    CHECK(r[1].size() < r[0].size());
  }
}

TEST_CASE("a nick in use during registration takes the next suffix", "[irc][client][registration]") {
  ClientConfig cfg = base_config();
  cfg.nick = "gatewaybot";
  cfg.nick_rules.max_len = 10;
  cfg.max_nick_attempts = 3;
  SECTION("until one is free") {
    Session s(cfg);
    s.client.start();
    s.server(":srv 433 * gatewaybot :Nickname already in use");
    CHECK(s.replies() == lines({"NICK gatewaybo1"}));
    s.server(":srv 436 * gatewaybo1 :Nickname collision");
    CHECK(s.replies() == lines({"NICK gatewaybo2"}));
    s.server(":srv 432 * gatewaybo2 :Erroneous nickname");
    CHECK(s.replies() == lines({"NICK gatewaybo3"}));
    only(s.server(":srv 001 gatewaybo3 :Welcome"), EventKind::Registered);
    CHECK(s.client.current_nick() == "gatewaybo3");
  }
  SECTION("until the attempts run out") {
    Session s(cfg);
    s.client.start();
    for (int i = 0; i < 3; ++i) s.server(":srv 433 * x :Nickname already in use");
    s.replies();
    const Event& e = only(s.server(":srv 433 * x :Nickname already in use"), EventKind::NickUnavailable);
    CHECK(e.nick == "gatewaybot");
    CHECK(s.replies() == lines({"QUIT"}));
    CHECK(s.client.state() == ClientState::Closed);
  }
}

TEST_CASE("PING is answered at once, before and after registration; ERROR closes", "[irc][client]") {
  Session s(base_config());
  s.client.start();
  s.server("PING :12345678");
  CHECK(s.replies() == lines({"PONG :12345678"}));
  s.server(":irc.example.net 001 gw :Welcome");
  s.server("PING irc.example.net");
  CHECK(s.replies() == lines({"PONG :irc.example.net"}));
  s.server("PING");
  CHECK(s.replies() == lines({"PONG"}));
  const Event& e = only(s.server("ERROR :Closing Link: gw (Ping timeout)"), EventKind::Closed);
  CHECK(e.text == "Closing Link: gw (Ping timeout)");
  CHECK(s.client.state() == ClientState::Closed);
}

TEST_CASE("membership follows NAMES, JOIN, PART, KICK, NICK, MODE and QUIT", "[irc][client][members]") {
  Session s(base_config());
  s.register_plain();
  const Event& joined = only(s.server(":gw!gwuser@gw.example JOIN #ops"), EventKind::Joined);
  CHECK(joined.self);
  CHECK(s.client.channels() == std::vector<std::string>{"#ops"});
  s.server(":srv 332 gw #ops :Ops talk");
  s.server(":srv 333 gw #ops alice!a@h 1700000000");
  s.server(":srv 353 gw = #ops :@alice +bob");
  s.server(":srv 353 gw = #ops :gw @+carol!c@host");
  const Event& names = only(s.server(":srv 366 gw #ops :End of /NAMES list."), EventKind::Names);
  CHECK(names.names == std::vector<std::string>{"@alice", "+bob", "gw", "@+carol!c@host"});
  CHECK(members_of(s.client, "#OPS") == std::vector<Member>{{"alice", "o"}, {"bob", "v"}, {"carol", "ov"}, {"gw", ""}});
  CHECK(s.client.channel_topic("#ops") == "Ops talk");

  const Event& dave = only(s.server(":dave!d@h JOIN :#ops"), EventKind::Joined);
  CHECK_FALSE(dave.self);
  CHECK(dave.nick == "dave");
  CHECK(members_of(s.client, "#ops").size() == 5);

  const Event& part = only(s.server(":bob!b@h PART #ops :see you"), EventKind::Parted);
  CHECK(part.text == "see you");
  const Event& nick = only(s.server(":alice!a@h NICK :Alicia"), EventKind::NickChanged);
  CHECK(nick.new_nick == "Alicia");
  CHECK(nick.channels == std::vector<std::string>{"#ops"});
  CHECK_FALSE(nick.self);
  const Event& mode = only(s.server(":Alicia!a@h MODE #ops +v-o+kl dave Alicia secret 10"), EventKind::Mode);
  CHECK(mode.by == "Alicia");
  CHECK(mode.modes == std::vector<ModeChange>{{true, 'v', "dave"}, {false, 'o', "Alicia"}, {true, 'k', "secret"},
                                               {true, 'l', "10"}});
  const Event& kick = only(s.server(":Alicia!a@h KICK #ops carol :behave"), EventKind::Kicked);
  CHECK(kick.nick == "carol");
  CHECK(kick.by == "Alicia");
  CHECK(kick.text == "behave");
  CHECK_FALSE(kick.self);
  CHECK(members_of(s.client, "#ops") == std::vector<Member>{{"Alicia", ""}, {"dave", "v"}, {"gw", ""}});

  // rfc1459 mapping: DAVE and dave, [x] and {x} are the same.
  const Event& quit = only(s.server(":DAVE!d@h QUIT :Quit: bye"), EventKind::Quit);
  CHECK_FALSE(quit.netsplit);
  CHECK(quit.channels == std::vector<std::string>{"#ops"});
  CHECK(members_of(s.client, "#ops") == std::vector<Member>{{"Alicia", ""}, {"gw", ""}});

  // Being kicked drops the channel.
  CHECK(only(s.server(":Alicia!a@h KICK #ops gw"), EventKind::Kicked).self);
  CHECK(s.client.channels().empty());
  CHECK(members_of(s.client, "#ops").empty());
}

TEST_CASE("our own PART and NICK update our state", "[irc][client][members]") {
  Session s(base_config());
  s.register_plain();
  s.server(":gw!gwuser@gw.example JOIN #a");
  s.server(":gw!gwuser@gw.example JOIN #b");
  CHECK(s.client.channels() == std::vector<std::string>{"#a", "#b"});
  const Event& n = only(s.server(":gw!gwuser@gw.example NICK gw2"), EventKind::NickChanged);
  CHECK(n.self);
  CHECK(n.channels == std::vector<std::string>{"#a", "#b"});
  CHECK(s.client.current_nick() == "gw2");
  CHECK(s.client.self_prefix() == "gw2!gwuser@gw.example");
  CHECK(members_of(s.client, "#a") == std::vector<Member>{{"gw2", ""}});
  CHECK(only(s.server(":gw2!gwuser@gw.example PART #a"), EventKind::Parted).self);
  CHECK(s.client.channels() == std::vector<std::string>{"#b"});
}

TEST_CASE("a QUIT whose reason is two server names is a netsplit", "[irc][client][members]") {
  Session s(base_config());
  s.register_plain();
  s.server(":gw!gwuser@gw.example JOIN #ops");
  s.server(":srv 353 gw = #ops :gw alice bob carol");
  s.server(":srv 366 gw #ops :End");
  const Event& a = only(s.server(":alice!a@h QUIT :hub.example.net leaf.example.net"), EventKind::Quit);
  CHECK(a.netsplit);
  CHECK(only(s.server(":bob!b@h QUIT :*.net *.split"), EventKind::Quit).netsplit);
  CHECK_FALSE(only(s.server(":carol!c@h QUIT :going home now"), EventKind::Quit).netsplit);
  CHECK_FALSE(only(s.server(":x!x@h QUIT :a.b"), EventKind::Quit).netsplit);
  CHECK_FALSE(only(s.server(":x!x@h QUIT :a.b c.d e.f"), EventKind::Quit).netsplit);
  CHECK_FALSE(only(s.server(":x!x@h QUIT :a..b c.d"), EventKind::Quit).netsplit);
  CHECK_FALSE(only(s.server(":x!x@h QUIT"), EventKind::Quit).netsplit);
  CHECK(members_of(s.client, "#ops") == std::vector<Member>{{"gw", ""}});
}

TEST_CASE("CASEMAPPING=ascii keeps [x] and {x} apart", "[irc][client][members]") {
  Session s(base_config());
  s.register_plain();
  s.server(":srv 005 gw CASEMAPPING=ascii :are supported");
  s.server(":gw!gwuser@gw.example JOIN #ops");
  s.server(":[x]!a@h JOIN #ops");
  s.server(":{x}!a@h JOIN #ops");
  CHECK(members_of(s.client, "#ops").size() == 3);
  s.server(":{X}!a@h PART #ops");
  CHECK(members_of(s.client, "#ops") == std::vector<Member>{{"[x]", ""}, {"gw", ""}});
}

TEST_CASE("messages, actions, notices and CTCP become events", "[irc][client][messages]") {
  Session s(base_config());
  s.register_plain();
  const Event& m = only(s.server(":alice!a@h PRIVMSG #ops :hello \x02world\x02"), EventKind::Message);
  CHECK(m.channel == "#ops");
  CHECK(m.nick == "alice");
  CHECK(m.text == "hello \x02world\x02");  // as sent: the bridge strips (to_xmpp_text)
  CHECK_FALSE(m.action);
  CHECK_FALSE(m.private_message);
  const Event& a = only(s.server(":alice!a@h PRIVMSG #ops :\x01" "ACTION waves\x01"), EventKind::Message);
  CHECK(a.action);
  CHECK(a.text == "waves");
  const Event& p = only(s.server(":alice!a@h PRIVMSG gw :psst"), EventKind::Message);
  CHECK(p.private_message);
  CHECK(p.channel.empty());
  const Event& v = only(s.server(":alice!a@h PRIVMSG gw :\x01VERSION\x01"), EventKind::Ctcp);
  CHECK(v.ctcp_command == "VERSION");
  CHECK_FALSE(v.notice);
  CHECK(s.replies().empty());  // no automatic CTCP reply: nothing about the guard leaks
  const Event& n = only(s.server(":irc.example.net NOTICE gw :*** You are exempt"), EventKind::Notice);
  CHECK(n.from_server);
  CHECK(n.private_message);
  const Event& t = only(s.server(":alice!a@h TOPIC #ops :new topic"), EventKind::Topic);
  CHECK(t.by == "alice");
  CHECK(t.text == "new topic");
  const Event& w = only(s.server(":srv 333 gw #ops alice 1700000000"), EventKind::TopicSetBy);
  CHECK(w.by == "alice");
  CHECK(w.time == 1700000000);
  CHECK(only(s.server(":srv 331 gw #ops :No topic is set"), EventKind::Topic).text.empty());
  const Event& um = only(s.server(":gw MODE gw :+iw"), EventKind::Mode);
  CHECK(um.self);
  CHECK(um.modes.size() == 2);
}

TEST_CASE("refusals from the server name the channel and the numeric", "[irc][client]") {
  Session s(base_config());
  s.register_plain();
  const Event& j = only(s.server(":srv 473 gw #secret :Cannot join channel (+i)"), EventKind::JoinRefused);
  CHECK(j.channel == "#secret");
  CHECK(j.code == "473");
  const Event& m = only(s.server(":srv 404 gw #quiet :Cannot send to channel"), EventKind::SendRefused);
  CHECK(m.channel == "#quiet");
  CHECK(only(s.server(":srv 401 gw nobody :No such nick"), EventKind::SendRefused).nick == "nobody");
  const Event& r = only(s.server(":srv 482 gw #ops :You're not channel operator"), EventKind::Refused);
  CHECK(r.code == "482");
  CHECK(r.channel == "#ops");
  CHECK(only(s.server(":srv 437 gw #split :Channel temporarily unavailable"), EventKind::JoinRefused).code == "437");
}

TEST_CASE("NICK after registration: sent paced, confirmed or rejected", "[irc][client]") {
  Session s(base_config());
  s.register_plain();
  REQUIRE(s.client.nick("newgw").ok);
  CHECK(s.client.due(0) == lines({"NICK newgw"}));
  const Event& r = only(s.server(":srv 433 gw newgw :Nickname is already in use"), EventKind::NickRejected);
  CHECK(r.new_nick == "newgw");
  CHECK(s.client.current_nick() == "gw");
  CHECK(s.replies().empty());  // no automatic suffix once registered
  CHECK_FALSE(s.client.nick("bad nick").ok);
  CHECK_FALSE(s.client.nick("9lives").ok);
  CHECK_FALSE(s.client.nick("waytoolongnick").ok);  // NICKLEN 9
}

TEST_CASE("pacing: a burst of 4, then one line per 2 s", "[irc][client][pacing]") {
  Session s(base_config());
  s.register_plain();
  for (int i = 1; i <= 7; ++i) REQUIRE(s.client.privmsg("#ops", "line " + std::to_string(i)).ok);
  CHECK(s.client.queued() == 7);
  CHECK(s.client.due(10000) == lines({"PRIVMSG #ops :line 1", "PRIVMSG #ops :line 2", "PRIVMSG #ops :line 3",
                                      "PRIVMSG #ops :line 4"}));
  CHECK(s.client.next_due_ms(10000) == 12000);
  CHECK(s.client.due(11999).empty());
  CHECK(s.client.due(12000) == lines({"PRIVMSG #ops :line 5"}));
  CHECK(s.client.next_due_ms(12000) == 14000);
  CHECK(s.client.due(15000) == lines({"PRIVMSG #ops :line 6"}));
  CHECK(s.client.next_due_ms(15000) == 16000);
  CHECK(s.client.due(16000) == lines({"PRIVMSG #ops :line 7"}));
  CHECK_FALSE(s.client.next_due_ms(16000).has_value());
  // PONG is never held back by the queue.
  for (int i = 0; i < 5; ++i) s.client.privmsg("#ops", "more");
  s.server("PING :t");
  CHECK(s.replies() == lines({"PONG :t"}));
}

TEST_CASE("pacing is configurable", "[irc][client][pacing]") {
  ClientConfig cfg = base_config();
  cfg.pacing = PacingRules{1, 500};
  Session s(cfg);
  s.register_plain();
  s.client.privmsg("#ops", "a\nb\nc");
  CHECK(s.client.due(0).size() == 1);
  CHECK(s.client.due(499).empty());
  CHECK(s.client.due(500).size() == 1);
  CHECK(s.client.due(1000).size() == 1);
}

TEST_CASE("lines asked for before 001 wait, behind the configured JOINs", "[irc][client][pacing]") {
  ClientConfig cfg = base_config();
  cfg.channels = {"#ops"};
  Session s(cfg);
  s.client.start();
  REQUIRE(s.client.privmsg("#ops", "early").ok);
  CHECK(s.client.due(0).empty());
  s.server(":srv 001 gw :Welcome");
  CHECK(s.client.due(0) == lines({"JOIN #ops", "PRIVMSG #ops :early"}));
}

TEST_CASE("XMPP text cannot inject lines, CTCP or targets", "[irc][client][injection]") {
  Session s(base_config());
  s.register_plain();
  SECTION("CR LF in the body makes separate PRIVMSGs, never a command") {
    REQUIRE(s.client.privmsg("#ops", "hi\r\nQUIT :bye\r\nJOIN #evil").ok);
    CHECK(s.client.due(0) == lines({"PRIVMSG #ops :hi", "PRIVMSG #ops :QUIT :bye", "PRIVMSG #ops :JOIN #evil"}));
  }
  SECTION("a bare CR is dropped, not a line break") {
    REQUIRE(s.client.privmsg("#ops", "a\rQUIT").ok);
    CHECK(s.client.due(0) == lines({"PRIVMSG #ops :aQUIT"}));
  }
  SECTION("CTCP, NUL and formatting bytes are removed") {
    REQUIRE(s.client.privmsg("#ops", std::string("\x01" "DCC SEND x 1 2 3\x01 \x02" "b\x03" "4\0z", 25)).ok);
    CHECK(s.client.due(0) == lines({"PRIVMSG #ops :DCC SEND x 1 2 3 b4z"}));
  }
  SECTION("targets with CR LF, spaces, commas or masks are refused") {
    for (const char* t : {"#ops\r\nQUIT", "#ops x", "#a,#b", "alice,bob", "$*", ":#ops", "", "#", "a@b"}) {
      INFO(t);
      const SendResult r = s.client.privmsg(t, "x");
      CHECK_FALSE(r.ok);
      CHECK_FALSE(r.error.empty());
    }
    CHECK(s.client.privmsg("alice", "private").ok);
    CHECK(s.client.counters().sends_refused == 9);
  }
  SECTION("channel names and keys are checked") {
    CHECK_FALSE(s.client.join("#ops\r\nQUIT").ok);
    CHECK_FALSE(s.client.join("ops").ok);
    CHECK_FALSE(s.client.join("#a,#b").ok);
    CHECK_FALSE(s.client.join("#ops", "k ey").ok);
    CHECK_FALSE(s.client.join("#ops", "k,ey").ok);
    CHECK(s.client.join("#ops", "key").ok);
    CHECK(s.client.due(0) == lines({"JOIN #ops key"}));
  }
  SECTION("a topic, a part reason and a quit reason stay on one line") {
    REQUIRE(s.client.topic("#ops", "line one\nline two\r\nQUIT").ok);
    REQUIRE(s.client.part("#ops", "bye\r\nQUIT").ok);
    CHECK(s.client.due(0) == lines({"TOPIC #ops :line one line two QUIT", "PART #ops :bye QUIT"}));
    REQUIRE(s.client.quit("so\nlong").ok);
    CHECK(s.client.take_output() == lines({"QUIT :so long"}));
  }
  SECTION("empty text is refused, an empty topic clears it") {
    CHECK_FALSE(s.client.privmsg("#ops", "").ok);
    CHECK_FALSE(s.client.privmsg("#ops", "\r\n\n").ok);
    CHECK(s.client.topic("#ops", "").ok);
    CHECK(s.client.due(0) == lines({"TOPIC #ops :"}));
  }
}

TEST_CASE("long bodies are split within the budget the others see", "[irc][client][split]") {
  ClientConfig cfg = base_config();
  cfg.max_lines_per_message = 3;
  Session s(cfg);
  s.register_plain();
  const std::string prefix = "gw!gwuser@gw.example";
  REQUIRE(s.client.self_prefix() == prefix);
  const std::size_t budget = s.client.text_budget("PRIVMSG", "#ops");
  CHECK(budget == payload_budget(prefix, "PRIVMSG", "#ops"));

  SECTION("exactly the budget is one line, relayed at exactly 512 bytes") {
    const SendResult r = s.client.privmsg("#ops", std::string(budget, 'x'));
    CHECK(r.lines == 1);
    const auto out = s.client.due(0);
    REQUIRE(out.size() == 1);
    CHECK(1 + prefix.size() + 1 + out[0].size() == 512);
  }
  SECTION("one byte more is two lines") {
    CHECK(s.client.privmsg("#ops", std::string(budget + 1, 'x')).lines == 2);
  }
  SECTION("more than max_lines_per_message is cut and flagged") {
    const SendResult r = s.client.privmsg("#ops", std::string(budget * 5, 'x'));
    CHECK(r.ok);
    CHECK(r.lines == 3);
    CHECK(r.truncated);
  }
  SECTION("an action leaves room for the CTCP framing") {
    REQUIRE(s.client.action("#ops", std::string(budget, 'y')).lines == 2);
    for (const auto& l : s.client.due(0)) {
      CHECK(l.rfind("PRIVMSG #ops :\x01" "ACTION ", 0) == 0);
      CHECK(1 + prefix.size() + 1 + l.size() <= 512);
    }
  }
  SECTION("a 4-byte character straddling the budget moves whole to the next line") {
    const std::string text = std::string(budget - 2, 'a') + "\xF0\x9F\x98\x80" + "b";
    REQUIRE(s.client.privmsg("#ops", text).lines == 2);
    const auto out = s.client.due(0);
    CHECK(out[0] == "PRIVMSG #ops :" + std::string(budget - 2, 'a') + "\r\n");
    CHECK(out[1] == "PRIVMSG #ops :\xF0\x9F\x98\x80" "b\r\n");
  }
  SECTION("while our host is unknown, a worst-case host is assumed") {
    Session t(base_config());
    t.client.start();
    t.server(":srv 001 gw :Welcome");
    CHECK(t.client.self_prefix().empty());
    CHECK(t.client.text_budget("PRIVMSG", "#ops") ==
          payload_budget("gw!~gwuser@" + std::string(63, 'x'), "PRIVMSG", "#ops"));
    t.server(":srv 396 gw short.host :is now your displayed host");
    t.server(":gw!gwuser@short.host JOIN #ops");
    CHECK(t.client.self_prefix() == "gw!gwuser@short.host");
  }
  SECTION("the topic is cut to TOPICLEN") {
    s.server(":srv 005 gw TOPICLEN=10 :are supported");
    const SendResult r = s.client.topic("#ops", "a topic that is far too long");
    CHECK(r.truncated);
    CHECK(s.client.due(0) == lines({"TOPIC #ops :a topic"}));
  }
}

TEST_CASE("a full queue refuses a message whole", "[irc][client][pacing]") {
  ClientConfig cfg = base_config();
  cfg.max_queued_lines = 4;
  Session s(cfg);
  s.register_plain();
  CHECK(s.client.privmsg("#ops", "1\n2\n3").ok);
  const SendResult r = s.client.privmsg("#ops", "4\n5");
  CHECK_FALSE(r.ok);
  CHECK(r.error == "send queue full");
  CHECK(s.client.queued() == 3);
  CHECK(s.client.privmsg("#ops", "4").ok);
  CHECK(s.client.queued() == 4);
  CHECK(s.client.counters().sends_refused == 1);
}

TEST_CASE("QUIT goes at once, drops what is still paced, and ends sending", "[irc][client][pacing]") {
  Session s(base_config());
  s.register_plain();
  for (int i = 0; i < 6; ++i) REQUIRE(s.client.privmsg("#ops", "m").ok);
  CHECK(s.client.due(0).size() == 4);
  REQUIRE(s.client.quit("bye").ok);
  CHECK(s.client.take_output() == lines({"QUIT :bye"}));
  CHECK(s.client.counters().dropped_at_quit == 2);
  CHECK(s.client.queued() == 0);
  CHECK(s.client.due(100000).empty());
  CHECK_FALSE(s.client.privmsg("#ops", "after quit").ok);
  CHECK_FALSE(s.client.quit().ok);
  // A caller that wants the queue out first waits for it to drain.
  Session t(base_config());
  t.register_plain();
  for (int i = 0; i < 6; ++i) REQUIRE(t.client.privmsg("#ops", "m").ok);
  std::int64_t now = 0;
  std::size_t sent = 0;
  for (;;) {
    sent += t.client.due(now).size();
    const auto next = t.client.next_due_ms(now);
    if (!next) break;
    now = *next;
  }
  CHECK(sent == 6);
  CHECK(now == 4000);
  REQUIRE(t.client.quit().ok);
  CHECK(t.client.counters().dropped_at_quit == 0);
}

TEST_CASE("QUIT before registration goes at once", "[irc][client]") {
  Session s(base_config());
  s.client.start();
  REQUIRE(s.client.quit().ok);
  CHECK(s.client.take_output() == lines({"QUIT"}));
}

TEST_CASE("malformed, overlong and short lines from the server are counted, not fatal", "[irc][client]") {
  Session s(base_config());
  s.register_plain();
  CHECK(s.client.feed(std::string("PRIVMSG #a :x\0y\r\n", 17)).empty());
  CHECK(s.client.feed(":alice!a@h PRIVMSG #ops :" + std::string(600, 'x') + "\r\n").empty());
  CHECK(s.client.feed(":alice!a@h PRIVMSG\r\n").empty());
  CHECK(s.client.feed(":alice!a@h KICK #ops\r\n").empty());
  CHECK(s.client.feed(":srv 353 gw\r\n").empty());
  CHECK(s.client.counters().malformed == 1);
  CHECK(s.client.overlong_lines() == 1);
  CHECK(s.client.counters().ignored == 3);
  CHECK(s.client.state() == ClientState::Registered);
  only(s.server(":alice!a@h PRIVMSG #ops :still here"), EventKind::Message);
}

TEST_CASE("tracking is bounded by max_channels and max_members", "[irc][client][members]") {
  ClientConfig cfg = base_config();
  cfg.max_channels = 2;
  cfg.max_members = 3;
  Session s(cfg);
  s.register_plain();
  for (const char* c : {"#a", "#b", "#c"}) s.server(std::string(":gw!gwuser@gw.example JOIN ") + c);
  CHECK(s.client.channels().size() == 2);
  s.server(":srv 353 gw = #a :gw u1 u2 u3 u4");
  s.server(":srv 366 gw #a :End");
  CHECK(members_of(s.client, "#a").size() == 3);
  CHECK(s.client.counters().tracking_capped >= 2);
}

TEST_CASE("check_config refuses what cannot be sent safely", "[irc][client][config]") {
  ClientConfig ok = base_config();
  CHECK(check_config(ok).empty());
  auto bad = [&](auto mutate) {
    ClientConfig c = ok;
    mutate(c);
    return check_config(c);
  };
  CHECK_FALSE(bad([](ClientConfig& c) { c.nick = "bad nick"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.nick = "toolongnick"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.user = "a b"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.realname = "x\r\nQUIT"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.server_password = "pw\nQUIT"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.sasl_user = "u"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.sasl_password = "p"; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) {
                c.sasl_user = std::string("u\0x", 3);
                c.sasl_password = "p";
              }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.channels = {"ops"}; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.channels = {"#a,#b"}; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.pacing.burst = 0; }).empty());
  CHECK_FALSE(bad([](ClientConfig& c) { c.max_queued_lines = 0; }).empty());
  ClientConfig c = ok;
  c.nick = "";
  CHECK_THROWS_AS(Client(c), std::invalid_argument);
  // A password with a space is fine: it goes as a trailing parameter.
  ClientConfig spaced = ok;
  spaced.server_password = "two words";
  Session s(spaced);
  CHECK(s.client.start().front() == "PASS :two words\r\n");
}

TEST_CASE("a second 001 changes nothing and queues no more JOINs", "[irc][client][registration]") {
  ClientConfig cfg = base_config();
  cfg.channels = {"#ops"};
  Session s(cfg);
  s.register_plain();
  for (int i = 0; i < 100; ++i) CHECK(s.server(":srv 001 other :Welcome again").empty());
  CHECK(s.client.current_nick() == "gw");
  CHECK(s.client.queued() == 1);
}
