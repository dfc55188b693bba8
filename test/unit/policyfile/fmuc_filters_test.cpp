// Tests for the FMUC policy filters (policy/rooms/fmuc_filters.h), loaded from
// policy files as the filter process loads them (policy/policy_file.h):
//   - room-federation: allow pairs, default deny for FMUC traffic, no opinion
//     on anything else, shadow rules noted and never accepting, duplicate ids
//     refused at load with their position;
//   - fmuc-pseudonyms: keyed, stable pseudonyms for <fmuc from> and muc#user
//     item (and actor) JIDs, XEP-0033 addresses removed, the reverse map for
//     muc#admin items in the other direction, and the key file's checks.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <utility>

#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_parser.h"
#include "policy/policy_file.h"
#include "policy/rooms/fmuc_filters.h"

using namespace portcullis;
using policy::LoadedPolicy;
using policy::Verdict;
using policy::VerdictKind;

namespace {

namespace fs = std::filesystem;

const std::string kSchemaDir = PORTCULLIS_SOURCE_DIR "/schemas";
const std::string kKey = "0123456789abcdef0123456789abcdef";   // 32 bytes
const std::string kOtherKey = "fedcba9876543210fedcba9876543210";

class FmucDir {
 public:
  FmucDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("portcullis-fmuc-filters-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~FmucDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  FmucDir(const FmucDir&) = delete;
  FmucDir& operator=(const FmucDir&) = delete;
  std::string write(const std::string& name, const std::string& text, fs::perms perms = fs::perms(0600)) const {
    {
      std::ofstream out(dir_ / name, std::ios::binary);
      out << text;
    }
    fs::permissions(dir_ / name, perms);
    return (dir_ / name).string();
  }

 private:
  fs::path dir_;
};

// Both directions: pseudonyms, then the room pairs (after every transform).
std::string fmuc_policy(const std::string& key_file = "pseudonym.key") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<policy xmlns=\"urn:portcullis:policy:1\" version=\"fmuc-1\">\n"
         "  <direction from=\"low\" to=\"high\">\n"
         "    <fmuc-pseudonyms name=\"pseudonyms\" domain=\"anon.test\" key-file=\"" + key_file + "\"/>\n"
         "    <room-federation name=\"rooms\">\n"
         "      <allow id=\"lobby-trial\" from=\"lobby@rooms.low.test\" to=\"lobby@rooms.high.test\" shadow=\"true\"/>\n"
         "      <allow id=\"ops-pair\" from=\"ops@rooms.low.test\" to=\"ops@rooms.high.test\"/>\n"
         "    </room-federation>\n"
         "  </direction>\n"
         "  <direction from=\"high\" to=\"low\">\n"
         "    <fmuc-pseudonyms name=\"pseudonyms\" domain=\"anon.test\" key-file=\"" + key_file + "\"/>\n"
         "    <room-federation name=\"rooms\">\n"
         "      <allow id=\"ops-pair-back\" from=\"ops@rooms.high.test\" to=\"ops@rooms.low.test\"/>\n"
         "    </room-federation>\n"
         "  </direction>\n"
         "</policy>\n";
}

LoadedPolicy load(const std::string& path) { return policy::load_policy(path, kSchemaDir, policy::builtin_filters()); }

config::ConfigError load_error(const std::string& path) {
  try {
    load(path);
  } catch (const config::ConfigError& e) {
    return e;
  }
  FAIL("expected a ConfigError from " << path);
  throw std::logic_error("unreachable");
}

// 1-based (line, column) of the `nth` (0-based) occurrence of `needle`.
std::pair<int, int> position_of(const std::string& text, const std::string& needle, int nth = 0) {
  std::size_t pos = text.find(needle);
  for (int i = 0; i < nth && pos != std::string::npos; ++i) pos = text.find(needle, pos + 1);
  REQUIRE(pos != std::string::npos);
  int line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(pos - line_start) + 1};
}

const policy::Filter& stage(const policy::Pipeline& p, const std::string& name) {
  for (const auto& s : p.stages())
    if (s.filter->name() == name) return *s.filter;
  FAIL("no stage " << name);
  throw std::logic_error("unreachable");
}

xmpp::Element parse(const std::string& xml) {
  std::string error;
  auto e = xmpp::parse_element(xml, {}, &error);
  INFO(error);
  REQUIRE(e);
  return std::move(*e);
}

policy::StanzaContext ctx(ipc::Direction dir = ipc::Direction::LowToHigh, const std::string& peer = "rooms.low.test",
                          ipc::AuthMethod auth = ipc::AuthMethod::Hosted) {
  policy::StanzaContext c;
  c.direction = dir;
  c.peer_domain = peer;
  c.auth = auth;
  return c;
}

std::string fmuc_message(const std::string& from, const std::string& to, const std::string& real = "alice@a.test/res") {
  return "<message xmlns='jabber:server' from='" + from + "' to='" + to +
         "' type='groupchat' id='g1'><body>words</body>"
         "<fmuc xmlns='http://isode.com/protocol/fmuc' from='" + real + "'/></message>";
}

std::string note(const Verdict& v, const std::string& key) {
  for (const auto& [k, val] : v.notes)
    if (k == key) return val;
  return "(absent)";
}

const std::regex kFullPseudonym("[0-9a-f]{32}@anon\\.test/[0-9a-f]{12}");
const std::regex kBarePseudonym("[0-9a-f]{32}@anon\\.test");

// The pseudonym <fmuc from> carries after `f` has run on an FMUC message from `real`.
std::string fmuc_pseudonym(const policy::Filter& f, const std::string& real) {
  auto s = parse(fmuc_message("ops@rooms.low.test/Nick1", "ops@rooms.high.test", real));
  const Verdict v = f.evaluate(s, ctx());
  CHECK(v.kind == VerdictKind::Modify);
  const auto* fm = s.find_child("fmuc", "http://isode.com/protocol/fmuc");
  REQUIRE(fm != nullptr);
  return fm->attr_or("from");
}

}  // namespace

// ---- room-federation -----------------------------------------------------------

TEST_CASE("room-federation: an allowed pair is accepted with its rule id", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& rooms = stage(p.pipelines.low_to_high, "rooms");
  CHECK(rooms.type() == policy::rooms::kTypeRoomFederation);

  SECTION("an FMUC message from a room occupant to the twin room") {
    auto s = parse(fmuc_message("ops@rooms.low.test/Nick1", "ops@rooms.high.test"));
    const Verdict v = rooms.evaluate(s, ctx());
    CHECK(v.kind == VerdictKind::Accept);
    CHECK(v.rule_id == "ops-pair");
    CHECK_FALSE(v.error);
  }
  SECTION("a ping from a hosted room (no <fmuc/>, auth hosted) is FMUC traffic of the pair") {
    auto s = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' type='get' id='p1'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>");
    const Verdict v = rooms.evaluate(s, ctx());
    CHECK(v.kind == VerdictKind::Accept);
    CHECK(v.rule_id == "ops-pair");
  }
  SECTION("the whole pipeline releases it, pseudonymised") {
    auto s = parse(fmuc_message("ops@rooms.low.test/Nick1", "ops@rooms.high.test"));
    const policy::Decision dec = p.pipelines.low_to_high.run(s, ctx());
    CHECK(dec.release);
    CHECK(dec.final_verdict.rule_id == "ops-pair");
    CHECK(dec.transformations == std::vector<std::string>{"fmuc-pseudonyms"});
    CHECK(s.serialize().find("alice") == std::string::npos);
  }
  SECTION("the pair is directional: the high-to-low pipeline has its own rule") {
    auto s = parse(fmuc_message("ops@rooms.high.test/Nick1", "ops@rooms.low.test"));
    const Verdict v = stage(p.pipelines.high_to_low, "rooms").evaluate(s, ctx(ipc::Direction::HighToLow, "rooms.high.test"));
    CHECK(v.kind == VerdictKind::Accept);
    CHECK(v.rule_id == "ops-pair-back");
    auto back = parse(fmuc_message("ops@rooms.high.test/Nick1", "ops@rooms.low.test"));
    CHECK(rooms.evaluate(back, ctx(ipc::Direction::LowToHigh, "rooms.high.test")).kind == VerdictKind::Reject);
  }
}

TEST_CASE("room-federation: FMUC traffic of a pair not allowed is refused", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& rooms = stage(p.pipelines.low_to_high, "rooms");
  auto check_refused = [](const Verdict& v, const std::string& from, const std::string& to) {
    CHECK(v.kind == VerdictKind::Reject);
    CHECK(v.rule_id == "room-pair-not-allowed");
    REQUIRE(v.error);
    CHECK(v.error->condition == xmpp::StanzaErrorCondition::PolicyViolation);
    CHECK(note(v, "room.from") == from);
    CHECK(note(v, "room.to") == to);
  };
  SECTION("another room of the twin service") {
    auto s = parse(fmuc_message("ops@rooms.low.test/Nick1", "secret@rooms.high.test"));
    check_refused(rooms.evaluate(s, ctx()), "ops@rooms.low.test", "secret@rooms.high.test");
  }
  SECTION("an <fmuc/> from an ordinary server (not hosted) is judged too: no domain rule lets it by") {
    auto s = parse(fmuc_message("ops@conference.a.test/Nick1", "ops@rooms.high.test"));
    check_refused(rooms.evaluate(s, ctx(ipc::Direction::LowToHigh, "conference.a.test", ipc::AuthMethod::SaslExternal)),
                  "ops@conference.a.test", "ops@rooms.high.test");
  }
  SECTION("a hosted room's stanza without addresses") {
    auto s = parse("<iq xmlns='jabber:server' type='result' id='p1'/>");
    check_refused(rooms.evaluate(s, ctx()), "(none)", "(none)");
  }
}

TEST_CASE("room-federation: non-FMUC stanzas get no opinion", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& rooms = stage(p.pipelines.low_to_high, "rooms");
  const auto sasl = ctx(ipc::Direction::LowToHigh, "a.test", ipc::AuthMethod::SaslExternal);
  auto chat = parse("<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='chat'>"
                    "<body>hi</body></message>");
  Verdict v = rooms.evaluate(chat, sasl);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK_FALSE(v.error);
  // Even one addressed to an allowed room pair, when it is not FMUC traffic.
  auto groupchat = parse("<message xmlns='jabber:server' from='ops@rooms.low.test/Nick1' to='ops@rooms.high.test' "
                         "type='groupchat'><body>hi</body></message>");
  v = rooms.evaluate(groupchat, sasl);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id.empty());
}

TEST_CASE("room-federation: a shadow rule is noted and does not accept", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& rooms = stage(p.pipelines.low_to_high, "rooms");
  auto s = parse(fmuc_message("lobby@rooms.low.test/Nick1", "lobby@rooms.high.test"));
  const Verdict v = rooms.evaluate(s, ctx());
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "room-pair-not-allowed");
  CHECK(note(v, "shadow-match") == "lobby-trial");
}

TEST_CASE("room-federation: a rule id used twice is refused at load with its position", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const std::string text =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<policy xmlns=\"urn:portcullis:policy:1\" version=\"fmuc-dup\">\n"
      "  <direction from=\"low\" to=\"high\">\n"
      "    <fmuc-pseudonyms name=\"pseudonyms\" domain=\"anon.test\" key-file=\"pseudonym.key\"/>\n"
      "    <room-federation name=\"rooms\">\n"
      "      <allow id=\"r1\" from=\"ops@rooms.low.test\" to=\"ops@rooms.high.test\"/>\n"
      "      <allow id=\"r1\" from=\"team@rooms.low.test\" to=\"team@rooms.high.test\"/>\n"
      "    </room-federation>\n"
      "  </direction>\n"
      "  <direction from=\"high\" to=\"low\"/>\n"
      "</policy>\n";
  const std::string path = d.write("dup.xml", text, fs::perms(0644));
  const config::ConfigError e = load_error(path);
  INFO(e.what());
  const auto [line, column] = position_of(text, "<allow id=\"r1\"", 1);
  CHECK(e.file() == path);
  CHECK(e.line() == line);
  CHECK(e.column() == column);
  CHECK_THAT(e.message(), Catch::Contains("<allow> id: expected a rule id unique in <room-federation>, got 'r1' again"));

  SECTION("a full JID in an allow is refused by the schema") {
    std::string bad = text;
    bad.replace(bad.find("to=\"team@rooms.high.test\""), 25, "to=\"team@rooms.high.test/x\"");
    const config::ConfigError se = load_error(d.write("bad-jid.xml", bad, fs::perms(0644)));
    INFO(se.what());
    CHECK(se.line() == line);
    CHECK_THAT(se.message(), Catch::Contains("team@rooms.high.test/x"));
  }
}

// ---- fmuc-pseudonyms -----------------------------------------------------------

TEST_CASE("fmuc-pseudonyms: real JIDs are replaced by stable keyed pseudonyms", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& f = stage(p.pipelines.low_to_high, "pseudonyms");
  CHECK(f.type() == policy::rooms::kTypeFmucPseudonyms);

  const std::string join =
      "<presence xmlns='jabber:server' from='ops@rooms.low.test/Nick1' to='ops@rooms.high.test/Nick1'>"
      "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@a.test/res'/>"
      "<x xmlns='http://jabber.org/protocol/muc#user'>"
      "<item jid='alice@a.test/res' affiliation='member' role='participant'><actor jid='boss@a.test/desk'/></item>"
      "</x>"
      "<addresses xmlns='http://jabber.org/protocol/address'><address type='ofrom' jid='alice@a.test'/></addresses>"
      "</presence>";
  auto s = parse(join);
  const Verdict v = f.evaluate(s, ctx());
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "pseudonyms");
  CHECK(v.transformation == "fmuc-pseudonyms");

  const auto* fm = s.find_child("fmuc", "http://isode.com/protocol/fmuc");
  REQUIRE(fm != nullptr);
  const std::string pseudonym = fm->attr_or("from");
  INFO(pseudonym);
  CHECK(std::regex_match(pseudonym, kFullPseudonym));
  const auto* x = s.find_child("x", "http://jabber.org/protocol/muc#user");
  REQUIRE(x != nullptr);
  const auto* item = x->find_child("item", "http://jabber.org/protocol/muc#user");
  REQUIRE(item != nullptr);
  CHECK(item->attr_or("jid") == pseudonym);   // the same user, the same pseudonym
  CHECK(item->attr_or("affiliation") == "member");
  const auto* actor = item->find_child("actor", "http://jabber.org/protocol/muc#user");
  REQUIRE(actor != nullptr);
  CHECK(std::regex_match(actor->attr_or("jid"), kFullPseudonym));
  CHECK(actor->attr_or("jid") != pseudonym);
  CHECK(s.find_child("addresses", "http://jabber.org/protocol/address") == nullptr);

  // Nothing of the real addresses is left anywhere in the stanza.
  const std::string out = s.serialize();
  INFO(out);
  CHECK(out.find("alice") == std::string::npos);
  CHECK(out.find("boss") == std::string::npos);
  CHECK(out.find("a.test") == std::string::npos);
  CHECK(out.find("address") == std::string::npos);
  // The room addresses themselves are untouched.
  CHECK(s.attr_or("from") == "ops@rooms.low.test/Nick1");
  CHECK(s.attr_or("to") == "ops@rooms.high.test/Nick1");

  // The audit notes say what was replaced and removed.
  CHECK(note(v, "pseudonym.fmuc-from") == "alice@a.test/res -> " + pseudonym);
  CHECK(note(v, "pseudonym.item-jid") == "alice@a.test/res -> " + pseudonym);
  CHECK(note(v, "pseudonym.actor-jid") == "boss@a.test/desk -> " + actor->attr_or("jid"));
  CHECK(note(v, "removed") == "addresses");

  SECTION("stable across evaluations and across a reload with the same key") {
    CHECK(fmuc_pseudonym(f, "alice@a.test/res") == pseudonym);
    const LoadedPolicy again = load(d.write("policy-again.xml", fmuc_policy(), fs::perms(0644)));
    CHECK(fmuc_pseudonym(stage(again.pipelines.low_to_high, "pseudonyms"), "alice@a.test/res") == pseudonym);
  }
  SECTION("different users get different pseudonyms; one user keeps the bare part across resources") {
    const std::string bob = fmuc_pseudonym(f, "bob@a.test/res");
    CHECK(std::regex_match(bob, kFullPseudonym));
    CHECK(bob.substr(0, 32) != pseudonym.substr(0, 32));
    const std::string alice_phone = fmuc_pseudonym(f, "alice@a.test/phone");
    CHECK(alice_phone.substr(0, 42) == pseudonym.substr(0, 42));   // HEX@anon.test
    CHECK(alice_phone != pseudonym);
    const std::string alice_bare = fmuc_pseudonym(f, "alice@a.test");
    CHECK(std::regex_match(alice_bare, kBarePseudonym));
    CHECK(alice_bare == pseudonym.substr(0, 42));
  }
  SECTION("a message's <fmuc from> is replaced too") {
    auto m = parse(fmuc_message("ops@rooms.low.test/Nick1", "ops@rooms.high.test"));
    const Verdict mv = f.evaluate(m, ctx());
    CHECK(mv.kind == VerdictKind::Modify);
    CHECK(mv.transformation == "fmuc-pseudonyms");
    CHECK(m.find_child("fmuc", "http://isode.com/protocol/fmuc")->attr_or("from") == pseudonym);
    CHECK(m.serialize().find("a.test") == std::string::npos);
  }
  SECTION("nothing to replace: no opinion, stanza untouched") {
    auto chat = parse("<message xmlns='jabber:server' from='carol@a.test/r' to='bob@b.test' type='chat'>"
                      "<body>hi</body></message>");
    const std::string before = chat.serialize();
    const Verdict nv = f.evaluate(chat, ctx(ipc::Direction::LowToHigh, "a.test", ipc::AuthMethod::SaslExternal));
    CHECK(nv.kind == VerdictKind::NoOpinion);
    CHECK(chat.serialize() == before);
  }
}

TEST_CASE("fmuc-pseudonyms: no pseudonym is ever mapped back, and none can be borrowed", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& up = stage(p.pipelines.low_to_high, "pseudonyms");
  const policy::Filter& down = stage(p.pipelines.high_to_low, "pseudonyms");
  const std::string pseudonym = fmuc_pseudonym(up, "alice@a.test/res");
  REQUIRE(std::regex_match(pseudonym, kFullPseudonym));
  // A muc#admin item naming the pseudonym, the other way: the real JID must not
  // come back (a reverse map would be an oracle for whoever can send one).
  auto s = parse("<iq xmlns='jabber:server' from='ops@rooms.high.test' to='ops@rooms.low.test' type='set' id='k1'>"
                 "<query xmlns='http://jabber.org/protocol/muc#admin'><item jid='" + pseudonym +
                 "' affiliation='outcast'/></query></iq>");
  down.evaluate(s, ctx(ipc::Direction::HighToLow, "rooms.high.test"));
  CHECK(s.serialize().find("alice@a.test") == std::string::npos);
  // A JID already in the pseudonym domain is hashed again: nobody crosses as alice's pseudonym.
  const std::string borrowed = fmuc_pseudonym(down, pseudonym);
  CHECK(borrowed != pseudonym);
  CHECK(std::regex_match(borrowed, kFullPseudonym));
}

TEST_CASE("fmuc-pseudonyms: a different key gives different pseudonyms", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  d.write("other.key", kOtherKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const LoadedPolicy q = load(d.write("policy-other.xml", fmuc_policy("other.key"), fs::perms(0644)));
  const std::string a = fmuc_pseudonym(stage(p.pipelines.low_to_high, "pseudonyms"), "alice@a.test/res");
  const std::string b = fmuc_pseudonym(stage(q.pipelines.low_to_high, "pseudonyms"), "alice@a.test/res");
  CHECK(std::regex_match(a, kFullPseudonym));
  CHECK(std::regex_match(b, kFullPseudonym));
  CHECK(a.substr(0, 32) != b.substr(0, 32));
  CHECK(a.substr(43) != b.substr(43));
  // And the other key's table does not map the first key's pseudonym back.
  auto s = parse("<iq xmlns='jabber:server' from='ops@rooms.high.test' to='ops@rooms.low.test' type='set' id='k1'>"
                 "<query xmlns='http://jabber.org/protocol/muc#admin'><item jid='" + a +
                 "' affiliation='outcast'/></query></iq>");
  CHECK(stage(q.pipelines.high_to_low, "pseudonyms").evaluate(s, ctx(ipc::Direction::HighToLow, "rooms.high.test")).kind ==
        VerdictKind::NoOpinion);
}

TEST_CASE("fmuc-pseudonyms: the key file is checked at load", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  const std::string text = fmuc_policy();
  const auto [line, column] = position_of(text, "<fmuc-pseudonyms", 0);
  SECTION("world-readable: refused") {
    const std::string key = d.write("pseudonym.key", kKey, fs::perms(0644));
    const std::string path = d.write("policy.xml", text, fs::perms(0644));
    const config::ConfigError e = load_error(path);
    INFO(e.what());
    CHECK(e.file() == path);
    CHECK(e.line() == line);
    CHECK(e.column() == column);
    CHECK_THAT(e.message(),
               Catch::Contains("<fmuc-pseudonyms> key-file: expected a file that is not world-readable, got '" + key + "'"));
  }
  SECTION("shorter than 16 bytes: refused") {
    const std::string key = d.write("pseudonym.key", "fifteen-bytes!!", fs::perms(0600));
    const config::ConfigError e = load_error(d.write("policy.xml", text, fs::perms(0644)));
    INFO(e.what());
    CHECK(e.line() == line);
    CHECK(e.column() == column);
    CHECK_THAT(e.message(),
               Catch::Contains("<fmuc-pseudonyms> key-file: expected a secret of at least 16 bytes, got 15 in '" + key + "'"));
  }
  SECTION("exactly 16 bytes (a trailing newline not counted): loads") {
    d.write("pseudonym.key", "sixteen-bytes!!!\n", fs::perms(0600));
    CHECK_NOTHROW(load(d.write("policy.xml", text, fs::perms(0644))));
  }
  SECTION("missing: refused") {
    const config::ConfigError e = load_error(d.write("policy.xml", text, fs::perms(0644)));
    INFO(e.what());
    CHECK(e.line() == line);
    CHECK_THAT(e.message(), Catch::Contains("<fmuc-pseudonyms> key-file: cannot read"));
  }
}

TEST_CASE("room-federation without an enforced fmuc-pseudonyms before it is refused at load", "[policyfile][rooms][fmuc]") {
  FmucDir d;
  d.write("pseudonym.key", kKey);
  for (const std::string& before : {std::string(),
                                    std::string("    <fmuc-pseudonyms name=\"p\" domain=\"anon.test\" "
                                                "key-file=\"pseudonym.key\" shadow=\"true\"/>\n")}) {
    const std::string text =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<policy xmlns=\"urn:portcullis:policy:1\" version=\"fmuc-order\">\n"
        "  <direction from=\"low\" to=\"high\">\n" + before +
        "    <room-federation name=\"rooms\">\n"
        "      <allow id=\"r1\" from=\"ops@rooms.low.test\" to=\"ops@rooms.high.test\"/>\n"
        "    </room-federation>\n"
        "    <fmuc-pseudonyms name=\"late\" domain=\"anon.test\" key-file=\"pseudonym.key\"/>\n"
        "  </direction>\n"
        "  <direction from=\"high\" to=\"low\"/>\n"
        "</policy>\n";
    const config::ConfigError e = load_error(d.write("order.xml", text, fs::perms(0644)));
    INFO(e.what());
    const auto [line, column] = position_of(text, "<room-federation", 0);
    CHECK(e.line() == line);
    CHECK(e.column() == column);
    CHECK_THAT(e.message(), Catch::Contains("expected an enforced <fmuc-pseudonyms> before it"));
  }
}

TEST_CASE("room-federation: pass-through link upkeep between an allowed pair is accepted", "[policyfile][rooms][fmuc]") {
  // Two FMUC nodes beyond the boundary (no room hosted here): their pings,
  // results and errors carry no <fmuc/> and arrive over ordinary S2S.
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& rooms = stage(p.pipelines.low_to_high, "rooms");
  const auto s2s = ctx(ipc::Direction::LowToHigh, "rooms.low.test", ipc::AuthMethod::SaslExternal);
  SECTION("a ping between the pair's rooms") {
    auto s = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' type='get' id='p1'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>");
    const Verdict v = rooms.evaluate(s, s2s);
    CHECK(v.kind == VerdictKind::Accept);
    CHECK(v.rule_id == "ops-pair");
  }
  SECTION("an empty result and an error between them") {
    auto r = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test/Nick' type='result' id='p1'/>");
    CHECK(rooms.evaluate(r, s2s).kind == VerdictKind::Accept);
    auto e = parse("<message xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test/Nick' type='error'>"
                   "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    CHECK(rooms.evaluate(e, s2s).kind == VerdictKind::Accept);
  }
  SECTION("upkeep between rooms of no allowed pair, or the wrong way, is not this filter's to pass") {
    auto other = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='secret@rooms.high.test' type='get' id='p1'>"
                       "<ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK(rooms.evaluate(other, s2s).kind == VerdictKind::NoOpinion);
    auto back = parse("<iq xmlns='jabber:server' from='ops@rooms.high.test' to='ops@rooms.low.test' type='get' id='p1'>"
                      "<ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK(rooms.evaluate(back, s2s).kind == VerdictKind::NoOpinion);
  }
  SECTION("other iqs and a result with a payload between the pair are not upkeep") {
    auto disco = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test/Nick' to='ops@rooms.high.test' type='get' id='d1'>"
                       "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    CHECK(rooms.evaluate(disco, s2s).kind == VerdictKind::NoOpinion);
    auto loaded = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' type='result' id='v1'>"
                        "<vCard xmlns='vcard-temp'><FN>x</FN></vCard></iq>");
    CHECK(rooms.evaluate(loaded, s2s).kind == VerdictKind::NoOpinion);
    auto ping_plus = parse("<iq xmlns='jabber:server' from='ops@rooms.low.test' to='ops@rooms.high.test' type='get' id='p2'>"
                           "<ping xmlns='urn:xmpp:ping'/><query xmlns='jabber:iq:version'/></iq>");
    CHECK(rooms.evaluate(ping_plus, s2s).kind == VerdictKind::NoOpinion);
  }
  SECTION("a shadow rule does not pass upkeep either") {
    auto s = parse("<iq xmlns='jabber:server' from='lobby@rooms.low.test' to='lobby@rooms.high.test' type='get' id='p1'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>");
    CHECK(rooms.evaluate(s, s2s).kind == VerdictKind::NoOpinion);
  }
}

TEST_CASE("room-federation: upkeep is only upkeep: errors, results and pings that carry anything else do not pass",
          "[policyfile][rooms][fmuc][hostile]") {
  // Review finding: label filters do not judge errors and room-federation's
  // accept ends the pipeline, so anything it passes as upkeep must say nothing.
  FmucDir d;
  d.write("pseudonym.key", kKey);
  const LoadedPolicy p = load(d.write("policy.xml", fmuc_policy(), fs::perms(0644)));
  const policy::Filter& rooms = stage(p.pipelines.low_to_high, "rooms");
  const auto s2s = ctx(ipc::Direction::LowToHigh, "rooms.low.test", ipc::AuthMethod::SaslExternal);
  const std::string hdr = "from='ops@rooms.low.test/alice' to='ops@rooms.high.test/x'";
  const std::string cond = "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
  const std::string irc_cond = "<recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>";
  for (const std::string& xml : {
           // an error-typed message with a body: a message by another name
           "<message xmlns='jabber:server' type='error' " + hdr + "><body>SECRET</body>" + cond + "</message>",
           // an error with no <error/> at all
           "<message xmlns='jabber:server' type='error' " + hdr + "><body>SECRET</body></message>",
           // a presence error carrying a real JID
           "<presence xmlns='jabber:server' type='error' " + hdr +
               "><x xmlns='http://jabber.org/protocol/muc#user'><item jid='alice@a.test/laptop'/></x>" + cond +
               "</presence>",
           // addresses beside the error
           "<message xmlns='jabber:server' type='error' " + hdr +
               "><addresses xmlns='http://jabber.org/protocol/address'><address type='ofrom' jid='alice@a.test'/>"
               "</addresses>" + cond + "</message>",
           // text in the error, or an application condition
           "<message xmlns='jabber:server' type='error' " + hdr +
               "><error type='cancel'>SECRET<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr +
               "><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>SECRET</item-not-found>"
               "</error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr +
               "><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "<secret xmlns='urn:example:app'>SECRET</secret></error></message>",
           // two conditions
           "<message xmlns='jabber:server' type='error' " + hdr +
               "><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
               "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
           // an iq result with text, a ping with content
           "<iq xmlns='jabber:server' type='result' id='r1' " + hdr + ">SECRET TEXT</iq>",
           "<iq xmlns='jabber:server' type='get' id='p1' " + hdr +
               "><ping xmlns='urn:xmpp:ping'><body>SECRET</body></ping></iq>",
           "<iq xmlns='jabber:server' type='get' id='p1' " + hdr + "><ping xmlns='urn:xmpp:ping'>SECRET</ping></iq>",
           // an IRC link note out of its closed words: free text, a child, an
           // unknown reason or attribute, lines that are not a small number, two notes
           "<message xmlns='jabber:server' type='error' " + hdr + "><error type='wait'>" + irc_cond +
               "<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'>SECRET</irc></error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr + "><error type='wait'>" + irc_cond +
               "<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'><x>SECRET</x></irc></error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr + "><error type='wait'>" + irc_cond +
               "<irc xmlns='urn:portcullis:rooms:irc:1' reason='SECRET'/></error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr + "><error type='wait'>" + irc_cond +
               "<irc xmlns='urn:portcullis:rooms:irc:1' reason='label' data='SECRET'/></error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr + "><error type='continue'>" + irc_cond +
               "<irc xmlns='urn:portcullis:rooms:irc:1' reason='line-cap' lines='123456'/></error></message>",
           "<message xmlns='jabber:server' type='error' " + hdr + "><error type='wait'>" + irc_cond +
               "<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'/><irc xmlns='urn:portcullis:rooms:irc:1' "
               "reason='away'/></error></message>",
       }) {
    INFO(xml);
    auto s = parse(xml);
    const Verdict v = rooms.evaluate(s, s2s);
    CHECK(v.kind == VerdictKind::NoOpinion);
    // And the whole direction's pipeline does not release it either.
    auto again = parse(xml);
    CHECK_FALSE(p.pipelines.low_to_high.run(again, s2s).release);
  }
  SECTION("a plain error with an IRC link's note in its closed words is upkeep") {
    for (const std::string& n : {std::string("<irc xmlns='urn:portcullis:rooms:irc:1' reason='label'/>"),
                                 std::string("<irc xmlns='urn:portcullis:rooms:irc:1' reason='line-cap' lines='8'/>")}) {
      auto s = parse("<message xmlns='jabber:server' type='error' " + hdr + "><error type='wait' by='ops@irc.rooms.low.test'>" +
                     irc_cond + n + "</error></message>");
      CHECK(rooms.evaluate(s, s2s).kind == VerdictKind::Accept);
    }
  }
  SECTION("a plain error with a <text/> is upkeep") {
    auto s = parse("<message xmlns='jabber:server' type='error' " + hdr +
                   "><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                   "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such occupant</text></error></message>");
    CHECK(rooms.evaluate(s, s2s).kind == VerdictKind::Accept);
  }
  SECTION("an FMUC error that carries more than its error is refused") {
    auto s = parse("<message xmlns='jabber:server' type='error' " + hdr + "><body>SECRET</body>" + cond +
                   "<fmuc xmlns='http://isode.com/protocol/fmuc' from='alice@a.test/r'/></message>");
    const Verdict v = rooms.evaluate(s, s2s);
    CHECK(v.kind == VerdictKind::Reject);
    CHECK(v.rule_id == "room-error-not-plain");
  }
  SECTION("a shadow rule leaves a note on upkeep it would have passed") {
    auto s = parse("<iq xmlns='jabber:server' from='lobby@rooms.low.test' to='lobby@rooms.high.test' type='get' id='p1'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>");
    const Verdict v = rooms.evaluate(s, s2s);
    CHECK(v.kind == VerdictKind::NoOpinion);
    CHECK(note(v, "shadow-match") == "lobby-trial");
  }
}
