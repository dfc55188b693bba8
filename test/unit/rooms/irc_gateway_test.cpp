// The IRC gateway of a room (guard/rooms/irc_gateway.h) through its room
// service, with a scripted IRC server: what the gateway sends on each
// connection, and what the room's users see.
#include <fstream>
#include <map>

#include "guard/config/xml_tree.h"
#include "guard/rooms/room_service.h"
#include "policy/labels/security_label.h"
#include "policy/labels/spif.h"
#include "support.h"

using namespace rooms_test;
namespace rooms = portcullis::rooms;
namespace config = portcullis::config;

namespace {

struct FakeIrc : rooms::IrcTransport {
  std::vector<int> opened;
  std::map<int, std::string> sent;   // everything sent per connection
  std::vector<int> closed;
  void open(const std::string&, int conn, const config::IrcLinkSpec&) override { opened.push_back(conn); }
  void send(const std::string&, int conn, const std::string& bytes) override { sent[conn] += bytes; }
  void close(const std::string&, int conn) override { closed.push_back(conn); }
  std::vector<std::string> lines(int conn) const {
    std::vector<std::string> v;
    auto it = sent.find(conn);
    if (it == sent.end()) return v;
    std::size_t at = 0;
    while (at < it->second.size()) {
      const std::size_t e = it->second.find("\r\n", at);
      if (e == std::string::npos) break;
      v.push_back(it->second.substr(at, e - at));
      at = e + 2;
    }
    return v;
  }
  bool sent_line(int conn, const std::string& line) const {
    for (const auto& l : lines(conn))
      if (l == line) return true;
    return false;
  }
};

config::RoomServiceSpec spec_with_irc() {
  config::RoomServiceSpec s;
  s.domain = "rooms.low";
  config::RoomSpec r;
  r.name = "ops";
  r.subject = "ops subject";
  config::IrcLinkSpec irc;
  irc.server = "127.0.0.5";
  irc.port = 6667;
  irc.tls = false;
  irc.channel = "#ops";
  irc.nick = "pcgate";
  irc.max_nick_length = 30;
  irc.flood_burst = 100;
  irc.flood_interval_ms = 0;
  irc.max_puppets = 1;
  r.irc = irc;
  s.rooms.push_back(r);
  return s;
}

const std::string kAlice = "alice@low.test/phone";

struct Gate {
  rooms::RoomService svc;
  explicit Gate(const config::RoomServiceSpec& spec = spec_with_irc()) : svc(spec, "key") {}
  FakeIrc irc;
  Outputs users;   // what this side's users got
  std::int64_t now = kT0;

  void take(Outputs& out) {
    for (auto& o : out) {
      if (!o.to_peer) users.push_back(std::move(o));
    }
    out.clear();
  }
  void start() {
    Outputs out;
    svc.start_irc(&irc, now, out);
    take(out);
  }
  void connected(int conn) {
    Outputs out;
    svc.irc_connected("ops", conn, now, out);
    take(out);
  }
  void server(int conn, const std::string& lines) {
    Outputs out;
    svc.irc_data("ops", conn, lines, now, out);
    take(out);
  }
  void user(const Element& st) {
    Outputs out;
    svc.on_local(st, now, out);
    take(out);
  }
  void tick() {
    now += 1000;
    Outputs out;
    svc.tick(now, out);
    take(out);
  }
  // The gateway in #ops with carl (IRC), alice (XMPP) in the room with her puppet.
  void carl_and_alice() {
    register_and_join(0, "pcgate", "@pcgate carl");
    user(join(kAlice, "ops@rooms.low/alice"));
    register_and_join(1, "alice", "alice @pcgate carl");
  }
  // Registers connection `conn` as `nick` and has it join #ops with `names`.
  void register_and_join(int conn, const std::string& nick, const std::string& names) {
    connected(conn);
    server(conn, ":irc-a.test 001 " + nick + " :Welcome\r\n");
    tick();
    server(conn, ":" + nick + "!u@h JOIN #ops\r\n:irc-a.test 353 " + nick + " = #ops :" + names +
                     "\r\n:irc-a.test 366 " + nick + " #ops :End of NAMES list\r\n");
  }
};


}  // namespace

TEST_CASE("irc gateway: an IRC user and an XMPP user in one room, each message once, no injection",
          "[rooms][irc]") {
  Gate g;
  g.start();
  REQUIRE(g.irc.opened == std::vector<int>{0});
  g.register_and_join(0, "pcgate", "@pcgate carl");
  CHECK(g.irc.sent_line(0, "NICK pcgate"));
  CHECK(g.irc.sent_line(0, "JOIN #ops"));
  REQUIRE(g.svc.gateway("ops") != nullptr);
  CHECK(g.svc.gateway("ops")->irc_users() == 1);
  CHECK(g.svc.gateway("ops")->in_room());   // carl brought the gateway into the room

  // alice joins: she sees carl; the gateway opens her puppet.
  g.user(join(kAlice, "ops@rooms.low/alice"));
  CHECK(count_presence(g.users, kAlice, "ops@rooms.low/carl", true) == 1);
  REQUIRE(g.irc.opened == std::vector<int>{0, 1});
  g.register_and_join(1, "alice", "alice @pcgate carl");
  CHECK(g.irc.sent_line(1, "NICK alice"));

  // carl speaks: alice gets it once, formatting removed, though every
  // connection of the gateway saw it.
  const std::string carl_says = ":carl!c@irc-b.test PRIVMSG #ops :hello \x02" "bold\x02 \x03" "4red\r\n";
  g.server(0, carl_says);
  g.server(1, carl_says);
  CHECK(count_body(g.users, kAlice, "hello bold red") == 1);

  // alice speaks with a line break and a CR: two PRIVMSGs, nothing else.
  g.users.clear();
  g.user(say(kAlice, "ops@rooms.low", "hi\r\nQUIT :pwned"));
  const auto lines = g.irc.lines(1);
  std::size_t privmsgs = 0;
  for (const auto& l : lines) {
    CHECK(l.rfind("QUIT", 0) != 0);
    if (l.rfind("PRIVMSG #ops :", 0) == 0) ++privmsgs;
  }
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :hi"));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :QUIT :pwned"));
  CHECK(privmsgs == 2);
  CHECK(count_body(g.users, kAlice, "hi\r\nQUIT :pwned") + count_body(g.users, kAlice, "hi\nQUIT :pwned") == 1);

  // A /me goes out as a CTCP ACTION.
  g.user(say(kAlice, "ops@rooms.low", "/me waves"));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :\x01" "ACTION waves\x01"));

  // A labelled message never reaches IRC; alice is told.
  g.users.clear();
  const std::size_t before = g.irc.lines(1).size();
  g.user(say(kAlice, "ops@rooms.low", "secret words", "lab1",
             "<securitylabel xmlns='urn:xmpp:sec-label:0'><label/></securitylabel>"));
  CHECK(g.irc.lines(1).size() == before);
  bool told = false;
  for (const Element* m : sent_to(g.users, kAlice, "message")) {
    if (m->attr_or("type") == "error" && error_condition(*m) == "recipient-unavailable") told = true;
  }
  CHECK(told);

  // A private message from IRC to alice's puppet reaches alice through the room.
  g.users.clear();
  g.server(1, ":carl!c@irc-b.test PRIVMSG alice :psst\r\n");
  bool pm = false;
  for (const Element* m : sent_to(g.users, kAlice, "message")) {
    if (m->attr_or("from") == "ops@rooms.low/carl" && body_of(*m) == "psst" && m->attr_or("type") == "chat") pm = true;
  }
  CHECK(pm);
}

TEST_CASE("irc gateway: beyond max-puppets an occupant gets no connection, and is told", "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  g.user(join(kAlice, "ops@rooms.low/alice"));
  g.user(join("bob@low.test/r", "ops@rooms.low/bob"));
  CHECK(g.irc.opened == std::vector<int>{0, 1});   // max_puppets = 1: only alice's
  g.users.clear();
  g.user(say("bob@low.test/r", "ops@rooms.low", "hello irc"));
  bool told = false;
  for (const Element* m : sent_to(g.users, "bob@low.test/r", "message")) {
    if (m->attr_or("type") == "error") told = true;
  }
  CHECK(told);
}

TEST_CASE("irc gateway: the IRC server goes away: IRC users leave with 333, the gateway reconnects with backoff, "
          "never after its credentials were refused",
          "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  g.user(join(kAlice, "ops@rooms.low/alice"));
  g.users.clear();
  Outputs out;
  g.svc.irc_closed("ops", 0, "peer closed", g.now, out);
  g.take(out);
  bool left_333 = false;
  for (const Element* p : sent_to(g.users, kAlice, "presence")) {
    if (p->attr_or("from") == "ops@rooms.low/carl" && is_unavailable(*p) && has_status(*p, 333)) left_333 = true;
  }
  CHECK(left_333);
  CHECK(g.svc.gateway("ops")->irc_users() == 0);
  const std::size_t opens = g.irc.opened.size();
  g.tick();   // retry-ms 2000 (default): not yet
  CHECK(g.irc.opened.size() == opens);
  g.tick();
  g.tick();
  CHECK(g.irc.opened.size() == opens + 1);   // reconnected
  CHECK(g.irc.opened.back() == 0);
  // The server refuses the credentials: no more attempts, ever.
  g.connected(0);
  g.server(0, ":irc-a.test 464 * :Password incorrect\r\nERROR :Bad password\r\n");
  Outputs out2;
  g.svc.irc_closed("ops", 0, "peer closed", g.now, out2);
  const std::size_t after = g.irc.opened.size();
  for (int i = 0; i < 200; ++i) g.tick();
  CHECK(g.irc.opened.size() == after);
}

TEST_CASE("irc gateway: an IRC nick taken in the room enters as nick|irc", "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate dave");
  g.user(join(kAlice, "ops@rooms.low/alice"));
  // bob (XMPP) is beyond max-puppets: no IRC connection holds his nick there.
  g.user(join("bob@low.test/r", "ops@rooms.low/bob"));
  // An IRC user named bob joins the channel.
  g.server(0, ":bob!x@irc-b.test JOIN #ops\r\n");
  CHECK(count_presence(g.users, kAlice, "ops@rooms.low/bob|irc", true) == 1);
  // and never speaks as the XMPP bob.
  g.users.clear();
  g.server(0, ":bob!x@irc-b.test PRIVMSG #ops :i am bob\r\n");
  for (const Element* m : chat_to(g.users, kAlice)) CHECK(m->attr_or("from") != "ops@rooms.low/bob");
  CHECK(count_body(g.users, kAlice, "i am bob") == 1);
}

TEST_CASE("irc gateway: only the configured channel is the room's; a labelled subject stays off IRC", "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  g.user(join(kAlice, "ops@rooms.low/alice"));
  // The gateway finds itself in another channel (forwarded, forced): nothing of it enters the room.
  g.users.clear();
  g.server(0, ":pcgate!u@h JOIN #other\r\n:mallory!m@h JOIN #other\r\n:mallory!m@h PRIVMSG #other :leak\r\n");
  CHECK(count_body(g.users, kAlice, "leak") == 0);
  CHECK(count_presence(g.users, kAlice, "ops@rooms.low/mallory", true) == 0);
  CHECK(g.svc.gateway("ops")->irc_users() == 1);
  // A labelled subject change is not sent as the channel's topic.
  const std::size_t before = g.irc.lines(0).size();
  g.user(parse("<message xmlns='jabber:server' type='groupchat' from='" + kAlice +
               "' to='ops@rooms.low' id='s2'><subject>secret plans</subject>"
               "<securitylabel xmlns='urn:xmpp:sec-label:0'><label/></securitylabel></message>"));
  for (std::size_t i = before; i < g.irc.lines(0).size(); ++i) CHECK(g.irc.lines(0)[i].find("TOPIC") == std::string::npos);
  // ...and its author is told, by the id she gave, that it reached the room but not IRC.
  bool subject_told = false;
  for (const Element* m : sent_to(g.users, kAlice, "message")) {
    if (m->attr_or("type") == "error" && m->attr_or("id") == "s2" && error_type(*m) == "wait" &&
        error_text(*m).find("your subject reached this room but not") != std::string::npos &&
        error_text(*m).find("the subject was not set on IRC") != std::string::npos)
      subject_told = true;
  }
  CHECK(subject_told);
  // An unlabelled one is.
  g.user(set_subject(kAlice, "ops@rooms.low", "open plans"));
  CHECK(g.irc.sent_line(0, "TOPIC #ops :open plans"));
}

TEST_CASE("irc gateway: a kick of the gateway is a lost link, and repeated kicks back off", "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  g.server(0, ":op!o@h KICK #ops pcgate :go away\r\n");
  CHECK_FALSE(g.svc.gateway("ops")->connected());
  CHECK(g.svc.gateway("ops")->irc_users() == 0);
  CHECK(std::find(g.irc.closed.begin(), g.irc.closed.end(), 0) != g.irc.closed.end());
}

TEST_CASE("irc gateway: a kicked puppet quits, its occupant is told, and it comes back later", "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  g.user(join(kAlice, "ops@rooms.low/alice"));
  REQUIRE(g.irc.opened == std::vector<int>{0, 1});
  g.register_and_join(1, "alice", "alice @pcgate carl");
  REQUIRE(g.svc.gateway("ops")->puppets() == 1);
  g.server(1, ":carl!c@irc-b.test KICK #ops alice :out\r\n");
  CHECK(g.svc.gateway("ops")->puppets() == 0);
  CHECK(std::find(g.irc.closed.begin(), g.irc.closed.end(), 1) != g.irc.closed.end());
  // Meanwhile alice's message does not go to IRC, and she is told why.
  g.users.clear();
  g.user(say(kAlice, "ops@rooms.low", "still here?", "k1"));
  bool told = false;
  for (const Element* m : sent_to(g.users, kAlice, "message")) {
    if (m->attr_or("type") != "error") continue;
    const Element* e = m->find_child("error", m->ns());
    const Element* t = e ? e->find_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas") : nullptr;
    if (t && t->text().find("kicked from #ops") != std::string::npos) told = true;
  }
  CHECK(told);
  // Not at once (no kick loop), but after the retry interval: a new connection.
  g.tick();
  CHECK(g.irc.opened.size() == 2);
  for (int i = 0; i < 6; ++i) g.tick();
  CHECK(g.irc.opened.size() == 3);
}

// ---- the IRC link's labels (issue 10 item 4) ---------------------------------------

namespace {

namespace labels = portcullis::policy::labels;

const std::string kSpif = std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/labels/spif-low-nation.xml";

std::shared_ptr<const config::XmlNode> label_node(const std::string& name, const std::string& classification,
                                                  const std::string& up_to = "") {
  config::XmlNode n;
  n.name = name;
  n.file = "test.xml";
  n.line = 7;
  n.column = 9;
  if (name == "clearance") {
    n.attrs = {{"id", "irc-link"}, {"up-to", up_to}};
  } else {
    n.attrs = {{"classification", classification}};
  }
  return std::make_shared<const config::XmlNode>(std::move(n));
}

config::RoomServiceSpec labelled_spec(const std::string& up_to, const std::string& unlabelled = "") {
  config::RoomServiceSpec s = spec_with_irc();
  config::IrcLinkSpec& irc = *s.rooms.at(0).irc;
  irc.max_puppets = 5;
  irc.spif_file = kSpif;
  irc.label = label_node("label", "UNCLASSIFIED");
  irc.clearance = label_node("clearance", "", up_to);
  if (!unlabelled.empty()) irc.unlabelled = label_node("unlabelled", unlabelled);
  return s;
}

// A <securitylabel> of LOW-NATION `classification`, as a client writes it (ESS).
std::string sec_label(const std::string& classification, const std::string& marking = "", const std::string& rel = "") {
  const labels::Spif spif = labels::Spif::load(kSpif);
  config::XmlNode n;
  n.name = "label";
  n.attrs = {{"classification", classification}};
  if (!rel.empty()) {
    config::XmlNode cat;
    cat.name = "category";
    cat.attrs = {{"tag-set", "Releasable To"}, {"value", rel}};
    n.children.push_back(cat);
  }
  const labels::Label l = spif.label_from_node(n);
  const auto el = labels::label_element(l);
  REQUIRE(el);
  return labels::make_security_label(marking.empty() ? spif.marking(l) : marking, "", &*el, {}).serialize();
}

std::string marking_of(const std::string& classification) {
  const labels::Spif spif = labels::Spif::load(kSpif);
  config::XmlNode n;
  n.name = "label";
  n.attrs = {{"classification", classification}};
  return spif.marking(spif.label_from_node(n));
}

bool has_audit(const std::vector<std::string>& audit, std::initializer_list<std::string> parts) {
  for (const std::string& a : audit) {
    bool all = true;
    for (const std::string& p : parts) all = all && a.find(p) != std::string::npos;
    if (all) return true;
  }
  return false;
}

// Alice's error replies: the text of each.
std::vector<std::string> errors_to(const Outputs& out, const std::string& to) {
  std::vector<std::string> v;
  for (const Element* m : sent_to(out, to, "message")) {
    if (m->attr_or("type") != "error") continue;
    const Element* e = m->find_child("error", m->ns());
    const Element* t = e ? e->find_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas") : nullptr;
    v.push_back(t ? t->text() : std::string("(no text)"));
  }
  return v;
}

}  // namespace

TEST_CASE("irc labels: a message goes to IRC only within the link's clearance, marked; IRC brings its label in",
          "[rooms][irc][labels]") {
  Gate g(labelled_spec("RESTRICTED"));
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  g.user(join(kAlice, "ops@rooms.low/alice"));
  REQUIRE(g.irc.opened == std::vector<int>{0, 1});
  g.register_and_join(1, "alice", "alice @pcgate carl");
  std::vector<std::string> audit = g.svc.take_audit();
  // The JID <-> nick pair of the puppet, when the server gave the nick.
  CHECK(has_audit(audit, {"irc-puppet", "room-nick=alice", "jid=" + kAlice, "irc-nick=alice"}));

  const std::string restricted = marking_of("RESTRICTED");
  REQUIRE_FALSE(restricted.empty());

  // Within the clearance: out on alice's puppet with the marking leading the text.
  g.user(say(kAlice, "ops@rooms.low", "routine words", "m1", sec_label("RESTRICTED")));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :[" + restricted + "] routine words"));
  audit = g.svc.take_audit();
  CHECK(has_audit(audit, {"irc-out channel=#ops", "from=alice", "jid=" + kAlice, "lines=1",
                          "label=\"" + restricted + "\"", "routine words"}));
  // Every IRC line a message becomes carries the marking: a later line cannot pass as unmarked or fake one.
  g.user(say(kAlice, "ops@rooms.low", "first line\n[UNCLASSIFIED] second line", "m1a", sec_label("RESTRICTED")));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :[" + restricted + "] first line"));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :[" + restricted + "] [UNCLASSIFIED] second line"));
  // A /me keeps its marking inside the action.
  g.user(say(kAlice, "ops@rooms.low", "/me nods", "m1b", sec_label("UNCLASSIFIED")));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :\x01" "ACTION [" + marking_of("UNCLASSIFIED") + "] nods\x01"));

  // Above it: nothing on IRC, alice told why, the refusal archived.
  g.users.clear();
  const std::size_t before = g.irc.lines(1).size();
  g.user(say(kAlice, "ops@rooms.low", "secret words", "m2", sec_label("SECRET")));
  CHECK(g.irc.lines(1).size() == before);
  const auto errs = errors_to(g.users, kAlice);
  REQUIRE(errs.size() == 1);
  CHECK_THAT(errs[0], Catch::Contains(marking_of("SECRET")));
  CHECK_THAT(errs[0], Catch::Contains("above what this IRC link is cleared for"));
  CHECK_THAT(errs[0], Catch::Contains("UNCLASSIFIED, RESTRICTED"));
  audit = g.svc.take_audit();
  CHECK(has_audit(audit, {"irc-refused channel", "denied by clearance irc-link", "secret words"}));
  CHECK_FALSE(has_audit(audit, {"irc-out", "secret words"}));
  // The room still has it: carl is not the only reader.
  CHECK(count_body(g.users, kAlice, "secret words") == 1);

  // A label that is not valid, or of a policy the link does not know: refused (fail closed).
  g.users.clear();
  g.user(say(kAlice, "ops@rooms.low", "garbled", "m3",
             "<securitylabel xmlns='urn:xmpp:sec-label:0'><label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>"
             "!!notbase64</esssecuritylabel></label></securitylabel>"));
  g.user(say(kAlice, "ops@rooms.low", "default label", "m4", "<securitylabel xmlns='urn:xmpp:sec-label:0'><label/></securitylabel>"));
  CHECK(g.irc.lines(1).size() == before);
  CHECK(errors_to(g.users, kAlice).size() == 2);
  audit = g.svc.take_audit();
  CHECK(has_audit(audit, {"irc-refused", "malformed", "garbled"}));
  CHECK(has_audit(audit, {"irc-refused", "no label of policy LOW-NATION", "default label"}));

  // Unlabelled, in a room without a default label: goes unmarked.
  g.user(say(kAlice, "ops@rooms.low", "plain words", "m5"));
  CHECK(g.irc.sent_line(1, "PRIVMSG #ops :plain words"));

  // A labelled subject within the clearance becomes the topic, marked; above it, it stays in the room.
  g.user(parse("<message xmlns='jabber:server' type='groupchat' from='" + kAlice + "' to='ops@rooms.low' id='s9'>"
               "<subject>new plans</subject>" + sec_label("SECRET") + "</message>"));
  for (const auto& l : g.irc.lines(0)) CHECK(l.find("new plans") == std::string::npos);
  g.user(parse("<message xmlns='jabber:server' type='groupchat' from='" + kAlice + "' to='ops@rooms.low' id='s10'>"
               "<subject>open plans</subject>" + sec_label("RESTRICTED") + "</message>"));
  CHECK(g.irc.sent_line(0, "TOPIC #ops :[" + restricted + "] open plans"));

  // From IRC: carl's message enters with the link's label, marking and all.
  g.users.clear();
  g.server(0, ":carl!c@irc-b.test PRIVMSG #ops :from irc\r\n");
  const auto got = chat_to(g.users, kAlice);
  REQUIRE(got.size() == 1);
  const Element* sl = got[0]->find_child("securitylabel", "urn:xmpp:sec-label:0");
  REQUIRE(sl != nullptr);
  const auto view = labels::view_security_label(*sl);
  REQUIRE(view);
  CHECK(view->display_marking == marking_of("UNCLASSIFIED"));
  REQUIRE(view->label != nullptr);
  labels::DecodedLabel d = labels::decode_label_element(*view->label);
  REQUIRE(d.status == labels::DecodedLabel::Status::Ok);
  const labels::Spif spif = labels::Spif::load(kSpif);
  REQUIRE(spif.canonicalize(d.label));
  CHECK(spif.marking(d.label) == marking_of("UNCLASSIFIED"));
  audit = g.svc.take_audit();
  CHECK(has_audit(audit, {"irc-in channel=#ops", "from=carl", "label=\"" + marking_of("UNCLASSIFIED") + "\"", "from irc"}));
  // A private message from IRC carries it too.
  g.users.clear();
  g.server(1, ":carl!c@irc-b.test PRIVMSG alice :psst\r\n");
  bool labelled_pm = false;
  for (const Element* m : sent_to(g.users, kAlice, "message")) {
    if (body_of(*m) == "psst" && m->find_child("securitylabel", "urn:xmpp:sec-label:0") != nullptr) labelled_pm = true;
  }
  CHECK(labelled_pm);
}

TEST_CASE("irc labels: an unlabelled message is judged at <unlabelled>", "[rooms][irc][labels]") {
  SECTION("within the clearance: marked") {
    Gate g(labelled_spec("RESTRICTED", "RESTRICTED"));
    g.start();
    g.register_and_join(0, "pcgate", "@pcgate carl");
    g.user(join(kAlice, "ops@rooms.low/alice"));
    g.register_and_join(1, "alice", "alice @pcgate carl");
    g.user(say(kAlice, "ops@rooms.low", "plain words", "m1"));
    CHECK(g.irc.sent_line(1, "PRIVMSG #ops :[" + marking_of("RESTRICTED") + "] plain words"));
  }
  SECTION("above it: refused") {
    Gate g(labelled_spec("RESTRICTED", "CONFIDENTIAL"));
    g.start();
    g.register_and_join(0, "pcgate", "@pcgate carl");
    g.user(join(kAlice, "ops@rooms.low/alice"));
    g.register_and_join(1, "alice", "alice @pcgate carl");
    g.users.clear();
    const std::size_t before = g.irc.lines(1).size();
    g.user(say(kAlice, "ops@rooms.low", "plain words", "m1"));
    CHECK(g.irc.lines(1).size() == before);
    const auto errs = errors_to(g.users, kAlice);
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0], Catch::Contains(marking_of("CONFIDENTIAL")));
    CHECK(has_audit(g.svc.take_audit(), {"irc-refused", "unlabelled, judged as " + marking_of("CONFIDENTIAL")}));
  }
}

TEST_CASE("irc labels: names the SPIF does not define, or a label the clearance refuses, stop the start at "
          "file:line:column", "[rooms][irc][labels]") {
  SECTION("an unknown classification") {
    config::RoomServiceSpec s = labelled_spec("RESTRICTED");
    s.rooms.at(0).irc->label = label_node("label", "TOP SECRET");
    try {
      rooms::RoomService svc(s, "key");
      FAIL("loaded");
    } catch (const config::ConfigError& e) {
      CHECK(e.file() == "test.xml");
      CHECK(e.line() == 7);
      CHECK(e.column() == 9);
      CHECK_THAT(e.message(), Catch::Contains("TOP SECRET"));
    }
  }
  SECTION("IRC's own label above the link's clearance") {
    config::RoomServiceSpec s = labelled_spec("RESTRICTED");
    s.rooms.at(0).irc->label = label_node("label", "SECRET");
    try {
      rooms::RoomService svc(s, "key");
      FAIL("loaded");
    } catch (const config::ConfigError& e) {
      CHECK(e.line() == 7);
      CHECK_THAT(e.message(), Catch::Contains("expected a label that the link's <clearance> grants"));
    }
  }
}

TEST_CASE("irc gateway: an IRC topic becomes the room's subject, once", "[rooms][irc]") {
  Gate g;
  g.start();
  g.carl_and_alice();
  g.users.clear();
  // Every connection of the gateway sees the TOPIC; the room takes it once.
  g.server(0, ":carl!c@irc-b.test TOPIC #ops :new \x02topic\x02\r\n");
  g.server(1, ":carl!c@irc-b.test TOPIC #ops :new \x02topic\x02\r\n");
  std::vector<const Element*> subjects;
  for (const Element* m : sent_to(g.users, kAlice, "message"))
    if (is_subject(*m)) subjects.push_back(m);
  REQUIRE(subjects.size() == 1);
  CHECK(subjects[0]->attr_or("from") == "ops@rooms.low/carl");
  CHECK(subjects[0]->find_child("subject", subjects[0]->ns())->text() == "new topic");
  CHECK(has_audit(g.svc.take_audit(), {"irc-in topic", "from=carl", "new topic"}));

  // An operator's change sent in the server's name is the room's subject too,
  // from the room itself (no occupant set it).
  g.users.clear();
  g.server(0, ":irc-b.test TOPIC #ops :server topic\r\n");
  subjects.clear();
  for (const Element* m : sent_to(g.users, kAlice, "message"))
    if (is_subject(*m)) subjects.push_back(m);
  REQUIRE(subjects.size() == 1);
  CHECK(subjects[0]->attr_or("from") == "ops@rooms.low");
  CHECK(subjects[0]->find_child("subject", subjects[0]->ns())->text() == "server topic");
  // A puppet's own topic echo is not taken back in.
  g.users.clear();
  g.server(0, ":alice!a@h TOPIC #ops :echo\r\n");
  for (const Element* m : sent_to(g.users, kAlice, "message")) CHECK_FALSE(is_subject(*m));
}

TEST_CASE("irc gateway: an IRC nick change is a nick change in the room (303), a kick is a kick (307)",
          "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");   // carl alone brought the gateway in
  g.user(join(kAlice, "ops@rooms.low/alice"));
  g.register_and_join(1, "alice", "alice @pcgate carl");
  auto* gw = g.svc.gateway("ops");
  REQUIRE(gw != nullptr);

  SECTION("the only IRC user renames: 303 with the new nick, the gateway and the puppets stay") {
    g.users.clear();
    g.server(0, ":carl!c@irc-b.test NICK :carlos\r\n");
    const auto ps = sent_to(g.users, kAlice, "presence");
    REQUIRE(ps.size() == 2);
    CHECK(is_unavailable(*ps[0]));
    CHECK(ps[0]->attr_or("from") == "ops@rooms.low/carl");
    CHECK(has_status(*ps[0], 303));
    REQUIRE(muc_item(*ps[0]) != nullptr);
    CHECK(muc_item(*ps[0])->attr_or("nick") == "carlos");
    CHECK(is_available(*ps[1]));
    CHECK(ps[1]->attr_or("from") == "ops@rooms.low/carlos");
    CHECK(gw->in_room());
    CHECK(gw->puppets() == 1);
    CHECK(g.irc.closed.empty());   // alice's puppet did not quit
    CHECK(has_audit(g.svc.take_audit(), {"irc-in nick", "from=carl", "to=carlos", "as=carlos@irc."}));
    // carlos speaks under the new nick.
    g.server(0, ":carlos!c@irc-b.test PRIVMSG #ops :renamed\r\n");
    bool heard = false;
    for (const Element* m : chat_to(g.users, kAlice)) {
      if (m->attr_or("from") == "ops@rooms.low/carlos" && body_of(*m) == "renamed") heard = true;
    }
    CHECK(heard);
  }
  SECTION("dave quits with a message: the room's users see it as the leave's status") {
    g.server(0, ":dave!d@irc-b.test JOIN #ops\r\n");
    g.users.clear();
    g.server(0, ":dave!d@irc-b.test QUIT :gone home\r\n");
    const auto ps = sent_to(g.users, kAlice, "presence");
    REQUIRE(ps.size() == 1);
    CHECK(is_unavailable(*ps[0]));
    const Element* status = ps[0]->find_child("status", ps[0]->ns());
    REQUIRE(status != nullptr);
    CHECK(status->text() == "gone home");
  }
  SECTION("carl kicks dave: 307 with carl as the actor and the reason") {
    g.server(0, ":dave!d@irc-b.test JOIN #ops\r\n");
    CHECK(count_presence(g.users, kAlice, "ops@rooms.low/dave", true) == 1);
    g.users.clear();
    g.server(0, ":carl!c@irc-b.test KICK #ops dave :off \x02topic\x02\r\n");
    const auto ps = sent_to(g.users, kAlice, "presence");
    REQUIRE(ps.size() == 1);
    CHECK(is_unavailable(*ps[0]));
    CHECK(ps[0]->attr_or("from") == "ops@rooms.low/dave");
    CHECK(has_status(*ps[0], 307));
    const Element* item = muc_item(*ps[0]);
    REQUIRE(item != nullptr);
    const Element* actor = item->find_child("actor", rooms::kNsMucUser);
    REQUIRE(actor != nullptr);
    CHECK(actor->attr_or("nick") == "carl");
    const Element* reason = item->find_child("reason", rooms::kNsMucUser);
    REQUIRE(reason != nullptr);
    CHECK(reason->text() == "off topic");
  }
  SECTION("a rename to the nick of an occupant without a puppet: 303 to nick|irc, the nick that follows") {
    g.user(join("bob@low.test/r", "ops@rooms.low/bob"));   // beyond max-puppets: no IRC nick of its own
    g.users.clear();
    g.server(0, ":carl!c@irc-b.test NICK :bob\r\n");
    const auto ps = sent_to(g.users, kAlice, "presence");
    REQUIRE(ps.size() == 2);
    CHECK(has_status(*ps[0], 303));
    CHECK(muc_item(*ps[0])->attr_or("nick") == "bob|irc");
    CHECK(ps[1]->attr_or("from") == "ops@rooms.low/bob|irc");
    CHECK(is_available(*ps[1]));
  }
  SECTION("a change of case only is a nick change too, and nobody leaves") {
    g.users.clear();
    g.server(0, ":carl!c@irc-b.test NICK :Carl\r\n");
    const auto ps = sent_to(g.users, kAlice, "presence");
    REQUIRE(ps.size() == 2);
    CHECK(has_status(*ps[0], 303));
    CHECK(ps[1]->attr_or("from") == "ops@rooms.low/Carl");
    CHECK(gw->in_room());
    CHECK(gw->puppets() == 1);
  }
}

TEST_CASE("irc gateway: the audit record's fields cannot be forged by a room nick", "[rooms][irc]") {
  Gate g;
  g.start();
  g.register_and_join(0, "pcgate", "@pcgate carl");
  const std::string nick = "mal jid=boss@high.test: fake";
  g.user(join(kAlice, "ops@rooms.low/" + nick));
  g.register_and_join(1, "mal", "mal @pcgate carl");
  g.svc.take_audit();
  g.user(say(kAlice, "ops@rooms.low", "hello"));
  const auto audit = g.svc.take_audit();
  // The nick is quoted: no second jid= field, no early ": ".
  CHECK(has_audit(audit, {"irc-out channel=#ops from=\"mal jid=boss@high.test: fake\" jid=" + kAlice + " as=mal ",
                          ": hello"}));
  CHECK_FALSE(has_audit(audit, {"from=mal "}));
}

TEST_CASE("irc labels: a sender's display marking cannot forge a field of the irc-refused record",
          "[rooms][irc][labels]") {
  Gate g(labelled_spec("RESTRICTED"));
  g.start();
  g.carl_and_alice();
  g.svc.take_audit();
  // A label of another policy, with a marking written to look like the end of the record's fields.
  g.user(say(kAlice, "ops@rooms.low", "forged", "f1",
             "<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>x) id=forged: \"fake</displaymarking>"
             "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQkCAQwGBCoDBAk=</esssecuritylabel></label>"
             "</securitylabel>"));
  const auto audit = g.svc.take_audit();
  CHECK(has_audit(audit, {"irc-refused", "why=\"", "x) id=forged: \\\"fake", "\": forged"}));
  CHECK_FALSE(has_audit(audit, {"(no label"}));
}

TEST_CASE("irc labels: private messages, equivalent labels, another policy's label, and the backfill are judged too",
          "[rooms][irc][labels]") {
  Gate g(labelled_spec("RESTRICTED"));
  g.start();
  g.carl_and_alice();
  const std::string restricted = marking_of("RESTRICTED");

  SECTION("a private message to an IRC user") {
    g.users.clear();
    g.user(pm(kAlice, "ops@rooms.low/carl", "secret pm", "chat", "p1"));   // unlabelled: no default, goes
    CHECK(g.irc.sent_line(1, "PRIVMSG carl :secret pm"));
    g.user(parse("<message xmlns='jabber:server' type='chat' from='" + kAlice + "' to='ops@rooms.low/carl' id='p2'>"
                 "<body>above the link</body>" + sec_label("SECRET") + "</message>"));
    for (const auto& l : g.irc.lines(1)) CHECK(l.find("above the link") == std::string::npos);
    const auto errs = errors_to(g.users, kAlice);
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0], Catch::Contains("above what this IRC link is cleared for"));
    g.user(parse("<message xmlns='jabber:server' type='chat' from='" + kAlice + "' to='ops@rooms.low/carl' id='p3'>"
                 "<body>within it</body>" + sec_label("RESTRICTED") + "</message>"));
    CHECK(g.irc.sent_line(1, "PRIVMSG carl :[" + restricted + "] within it"));
    CHECK(has_audit(g.svc.take_audit(), {"irc-refused", "above the link"}));
  }
  SECTION("a label of another policy is refused; with an equivalent label of the link's policy it is judged by that") {
    std::string nato;
    {
      std::ifstream f(std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/labels/msg-nato-secret-rel-gbr.xml");
      const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const Element m = parse(text);
      const Element* sl = m.find_child("securitylabel", "urn:xmpp:sec-label:0");
      REQUIRE(sl != nullptr);
      nato = sl->serialize();
    }
    g.users.clear();
    const std::size_t before = g.irc.lines(1).size();
    g.user(say(kAlice, "ops@rooms.low", "nato words", "n1", nato));
    CHECK(g.irc.lines(1).size() == before);
    const auto errs = errors_to(g.users, kAlice);
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0], Catch::Contains("not of this IRC link's policy"));
    CHECK(has_audit(g.svc.take_audit(), {"irc-refused", "no label of policy LOW-NATION", "nato words"}));

    // The same NATO label with an equivalent LOW-NATION RESTRICTED: sent, marked as the equivalent.
    const Element natol = parse(nato);
    const Element* inner = natol.find_child("label", "urn:xmpp:sec-label:0");
    REQUIRE(inner != nullptr);
    const Element low = parse(sec_label("RESTRICTED"));
    const Element equiv = *low.find_child("label", "urn:xmpp:sec-label:0")->child_elements().front();
    const std::string both =
        labels::make_security_label("NATO SECRET REL GBR", "", inner->child_elements().front(), {equiv}).serialize();
    g.user(say(kAlice, "ops@rooms.low", "equivalent words", "n2", both));
    CHECK(g.irc.sent_line(1, "PRIVMSG #ops :[" + restricted + "] equivalent words"));
    CHECK(has_audit(g.svc.take_audit(), {"irc-out", "equivalent words"}));
  }
  SECTION("a category the link is not cleared for is named as such, not as a level above it") {
    g.users.clear();
    const std::size_t before = g.irc.lines(1).size();
    g.user(say(kAlice, "ops@rooms.low", "releasable words", "c1", sec_label("RESTRICTED", "", "GBR")));
    CHECK(g.irc.lines(1).size() == before);
    const auto errs = errors_to(g.users, kAlice);
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0], Catch::Contains("carries a category this IRC link is not cleared for"));
    CHECK_THAT(errs[0], !Catch::Contains("is above"));
  }
  SECTION("what was said while IRC was away is judged before it is replayed") {
    g.user(say(kAlice, "ops@rooms.low", "before the outage", "b0"));   // the gateway's last message: it resumes after it
    Outputs out;
    g.svc.irc_closed("ops", 0, "peer closed", g.now, out);
    g.take(out);
    g.users.clear();
    g.user(say(kAlice, "ops@rooms.low", "away restricted", "b1", sec_label("RESTRICTED")));
    g.user(say(kAlice, "ops@rooms.low", "away secret", "b2", sec_label("SECRET")));
    for (int i = 0; i < 5 && g.irc.opened.size() < 3; ++i) g.tick();
    g.register_and_join(0, "pcgate", "@pcgate carl");   // back: carl brings the gateway in again
    for (int i = 0; i < 3; ++i) g.tick();
    bool replayed = false;
    for (const auto& l : g.irc.lines(0)) {
      CHECK(l.find("away secret") == std::string::npos);
      if (l.find("away restricted") != std::string::npos && l.find("[" + restricted + "]") != std::string::npos) {
        replayed = true;
      }
    }
    CHECK(replayed);
    CHECK(has_audit(g.svc.take_audit(), {"irc-refused backfill", "away secret"}));
  }
}

TEST_CASE("irc gateway: renames while the gateway's join is on its way, into another IRC user's nick|irc, "
          "and a kick by the server", "[rooms][irc]") {
  Gate g;
  g.start();
  g.user(join(kAlice, "ops@rooms.low/alice"));   // in the room before any IRC user
  g.connected(0);
  g.server(0, ":irc-a.test 001 pcgate :Welcome\r\n");
  g.tick();
  auto* gw = g.svc.gateway("ops");
  REQUIRE(gw != nullptr);
  const std::string names = ":pcgate!u@h JOIN #ops\r\n:irc-a.test 353 pcgate = #ops :@pcgate carl dave\r\n"
                            ":irc-a.test 366 pcgate #ops :End of NAMES list\r\n";
  SECTION("in one read: the users that bring the gateway in, then both rename before the join is answered") {
    // carl's presence made the join (the room has it): a 303; dave was not
    // announced yet: he enters as davey, never as dave.
    g.server(0, names + ":carl!c@h NICK :carlos\r\n:dave!d@h NICK :davey\r\n");
    CHECK(gw->in_room());
    CHECK(count_presence(g.users, kAlice, "ops@rooms.low/carlos", true) == 1);
    CHECK(count_presence(g.users, kAlice, "ops@rooms.low/davey", true) == 1);
    CHECK(count_presence(g.users, kAlice, "ops@rooms.low/dave", true) == 0);
    bool change = false;
    for (const Element* pr : sent_to(g.users, kAlice, "presence")) {
      if (pr->attr_or("from") == "ops@rooms.low/carl" && has_status(*pr, 303)) change = true;
      if (pr->attr_or("from") == "ops@rooms.low/carl" && is_available(*pr)) CHECK(change == false);
    }
    CHECK(change);
    g.users.clear();
    g.server(0, ":carlos!c@h PRIVMSG #ops :still here\r\n");
    CHECK(count_body(g.users, kAlice, "still here") == 1);
  }
  SECTION("a rename into the room nick another IRC user has (nick|irc) does not take it over") {
    g.user(join("bob@low.test/r", "ops@rooms.low/bob"));
    g.server(0, names + ":bob!b@h JOIN #ops\r\n");
    REQUIRE(count_presence(g.users, kAlice, "ops@rooms.low/bob|irc", true) == 1);
    g.users.clear();
    g.server(0, ":dave!d@h NICK :bob|irc\r\n");
    for (const Element* pr : sent_to(g.users, kAlice, "presence")) CHECK(pr->attr_or("from") != "ops@rooms.low/bob|irc");
    g.users.clear();
    g.server(0, ":bob|irc!d@h PRIVMSG #ops :not bob\r\n:bob!b@h PRIVMSG #ops :the real bob\r\n");
    for (const Element* m : chat_to(g.users, kAlice)) {
      if (body_of(*m) == "not bob") CHECK(m->attr_or("from") != "ops@rooms.low/bob|irc");
      if (body_of(*m) == "the real bob") CHECK(m->attr_or("from") == "ops@rooms.low/bob|irc");
    }
    CHECK(count_body(g.users, kAlice, "the real bob") == 1);
  }
  SECTION("a kick by the server: 307, no actor") {
    g.server(0, names);
    g.users.clear();
    g.server(0, ":irc-a.test KICK #ops dave :services\r\n");
    const auto ps = sent_to(g.users, kAlice, "presence");
    REQUIRE(ps.size() == 1);
    CHECK(has_status(*ps[0], 307));
    CHECK(muc_item(*ps[0])->find_child("actor", rooms::kNsMucUser) == nullptr);
  }
}

TEST_CASE("irc gateway: a message cut at line-cap is sent cut, archived as truncated, and its author is warned",
          "[rooms][irc]") {
  config::RoomServiceSpec spec = spec_with_irc();
  spec.rooms[0].irc->line_cap = 2;
  Gate g(spec);
  g.start();
  g.carl_and_alice();
  const std::size_t before = g.irc.lines(1).size();
  g.users.clear();
  // Five IRC lines' worth of text (each line holds well under 500 bytes).
  const std::string word = std::string(90, 'w') + " ";
  std::string text;
  for (int i = 0; i < 25; ++i) text += word;
  Outputs out;
  g.svc.on_local(say(kAlice, "ops@rooms.low", text, "long1"), g.now, out);
  g.take(out);
  std::size_t privmsgs = 0;
  for (std::size_t i = before; i < g.irc.lines(1).size(); ++i) privmsgs += g.irc.lines(1)[i].rfind("PRIVMSG #ops :", 0) == 0;
  CHECK(privmsgs == 2);
  CHECK(has_audit(g.svc.take_audit(), {"irc-out channel=", "id=", "lines=2 truncated"}));
  // The room still has the whole message.
  CHECK(count_body(g.users, kAlice, text) == 1);
  // The author is warned (type continue: it did arrive), by her id, not told it failed.
  std::size_t warned = 0, failed = 0;
  for (const Element* m : sent_to(g.users, kAlice, "message")) {
    if (m->attr_or("type") != "error") continue;
    if (m->attr_or("id") == "long1" && error_type(*m) == "continue" && error_condition(*m) == "policy-violation" &&
        error_text(*m).find("with a warning") != std::string::npos &&
        error_text(*m).find("cut to 2 IRC line(s) (the link's line-cap is 2)") != std::string::npos)
      ++warned;
    if (error_text(*m).find("not the federated room") != std::string::npos) ++failed;
  }
  CHECK(warned == 1);
  CHECK(failed == 0);
  // A message that fits is not warned of.
  g.users.clear();
  Outputs out2;
  g.svc.on_local(say(kAlice, "ops@rooms.low", "short", "short1"), g.now, out2);
  g.take(out2);
  for (const Element* m : sent_to(g.users, kAlice, "message")) CHECK(m->attr_or("type") != "error");
}
