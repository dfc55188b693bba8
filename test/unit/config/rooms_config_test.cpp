// Tests for the <rooms> services of a side (guard/config: build_rooms,
// check_rooms; schemas/portcullis-config.xsd types Rooms, Room, BareJid,
// RoomName): a valid low/high FMUC pair loads with every field, and each
// meaning error is refused at the exact line:column of the element concerned
// with a readable message.
//
// Each config is the corpus's valid-minimal.xml shape written inline, with the
// <rooms> of each side spliced in; positions are computed from the text (the
// '<' of the offending element), so they stay exact whatever the layout.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>

#include "guard/config/config.h"
#include "guard/config/xml_tree.h"
#include "guard/config/xml_tree.h"

namespace fs = std::filesystem;
using portcullis::config::Config;
using portcullis::config::ConfigError;
using portcullis::config::load_config;
using portcullis::config::RoomServiceSpec;
using portcullis::config::RoomSpec;

namespace {

const std::string kSchemaDir = PORTCULLIS_SOURCE_DIR "/schemas";

void write(const fs::path& path, const std::string& text, fs::perms perms = fs::perms(0644)) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  fs::permissions(path, perms);
}

// A temporary runtime directory with the files valid-minimal.xml names (the
// loader only checks that they exist and are readable).
class RoomsConfigDir {
 public:
  RoomsConfigDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("portcullis-rooms-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_ / "pki");
    for (const char* f : {"guard-low.pem", "guard-low.key", "ca-low.pem", "guard-high.pem", "guard-high.key",
                          "ca-high.pem"}) {
      write(dir_ / "pki" / f, "dummy\n");
    }
    write(dir_ / "policy.xml", "dummy\n");
    fs::create_directories(dir_ / "keys");
    write(dir_ / "keys" / "audit.key", "dummy\n");
    fs::permissions(dir_ / "keys" / "audit.key", fs::perms::owner_read | fs::perms::owner_write);
    write(dir_ / "keys" / "audit.pub", "dummy\n");
  }
  ~RoomsConfigDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  RoomsConfigDir(const RoomsConfigDir&) = delete;
  RoomsConfigDir& operator=(const RoomsConfigDir&) = delete;

  std::string config(const std::string& text) const {
    write(dir_ / "config.xml", text);
    return (dir_ / "config.xml").string();
  }

 private:
  fs::path dir_;
};

// valid-minimal.xml with `low_rooms` and `high_rooms` after each side's peers
// (and `low_extra_peers` after low's own <peer>).
std::string rooms_config(const std::string& low_rooms, const std::string& high_rooms,
                         const std::string& low_extra_peers = "") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<portcullis xmlns=\"urn:portcullis:config:1\"><supervision mode=\"single-user-development\"/>\n"
         "  <side name=\"low\">\n"
         "    <listen address=\"127.0.0.4\" port=\"5269\"/>\n"
         "    <fronts domain=\"b.test\"/>\n"
         "    <tls certificate=\"pki/guard-low.pem\" key=\"pki/guard-low.key\" ca=\"pki/ca-low.pem\"/>\n"
         "    <peer domain=\"a.test\" host=\"127.0.0.2\"/>\n" +
         low_extra_peers + low_rooms +
         "  </side>\n"
         "  <side name=\"high\">\n"
         "    <listen address=\"127.0.0.6\" port=\"5269\"/>\n"
         "    <fronts domain=\"a.test\"/>\n"
         "    <tls certificate=\"pki/guard-high.pem\" key=\"pki/guard-high.key\" ca=\"pki/ca-high.pem\"/>\n"
         "    <peer domain=\"b.test\" host=\"127.0.0.3\"/>\n" +
         high_rooms +
         "  </side>\n"
         "  <policy file=\"policy.xml\"/>\n"
         "  <audit dir=\"audit\" signing-key=\"keys/audit.key\" public-key=\"keys/audit.pub\"/>\n"
         "<waivers><waiver of=\"no-guard-stage\" direction=\"low-to-high\" reason=\"rooms config test\"/>"
         "<waiver of=\"no-guard-stage\" direction=\"high-to-low\" reason=\"rooms config test\"/></waivers>"
         "</portcullis>\n";
}

// The low half of the ops pair: ops@rooms.low.test federates with ops@rooms.high.test.
const std::string kLowOps =
    "    <rooms domain=\"rooms.low.test\">\n"
    "      <room name=\"ops\">\n"
    "        <federate with=\"ops@rooms.high.test\"/>\n"
    "      </room>\n"
    "    </rooms>\n";
// The high half: ops@rooms.high.test accepts it.
const std::string kHighOps =
    "    <rooms domain=\"rooms.high.test\">\n"
    "      <room name=\"ops\">\n"
    "        <accept from=\"ops@rooms.low.test\"/>\n"
    "      </room>\n"
    "    </rooms>\n";

// 1-based (line, column) of the `nth` (0-based) occurrence of `needle` in `text`.
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

ConfigError load_error(const std::string& path) {
  try {
    load_config(path, kSchemaDir);
  } catch (const ConfigError& e) {
    return e;
  }
  FAIL("expected a ConfigError from " << path);
  throw std::logic_error("unreachable");
}

// Loads `text`, requires a ConfigError at the '<' of the `nth` `element` (its
// start, e.g. "<federate with=\"x\"") and a message containing every part.
void expect_refused_at(const std::string& text, const std::string& element, int nth,
                       std::initializer_list<std::string> message_parts) {
  RoomsConfigDir d;
  const std::string path = d.config(text);
  const ConfigError e = load_error(path);
  INFO(e.what());
  const auto [line, column] = position_of(text, element, nth);
  CHECK(e.file() == path);
  CHECK(e.line() == line);
  CHECK(e.column() == column);
  for (const std::string& part : message_parts) CHECK_THAT(e.message(), Catch::Contains(part));
  CHECK(std::string(e.what()).rfind(path + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ", 0) == 0);
}

}  // namespace

TEST_CASE("rooms: a federated low/high pair loads with every field filled", "[config][rooms][fmuc]") {
  const std::string low =
      "    <rooms domain=\"rooms.low.test\" ping-interval-ms=\"1000\" retry-ms=\"700\">\n"
      "      <room name=\"ops\" title=\"Operations\" subject=\"Daily ops\" history=\"20\" members-only=\"true\""
      " label=\"restricted\">\n"
      "        <federate with=\"ops@rooms.high.test\"/>\n"
      "        <accept from=\"ops@a.test\"/>\n"
      "        <owner jid=\"boss@a.test\"/>\n"
      "        <member jid=\"dave@A.TEST\"/>\n"
      "        <member jid=\"carol@a.test\"/>\n"
      "      </room>\n"
      "      <room name=\"lobby\"/>\n"
      "    </rooms>\n";
  const std::string text = rooms_config(low, kHighOps);
  RoomsConfigDir d;
  const Config c = load_config(d.config(text), kSchemaDir);

  REQUIRE(c.low.rooms.size() == 1);
  const RoomServiceSpec& ls = c.low.rooms[0];
  CHECK(ls.domain == "rooms.low.test");
  CHECK(ls.ping_interval_ms == 1000);
  CHECK(ls.retry_ms == 700);
  CHECK(ls.line == position_of(text, "<rooms domain=\"rooms.low.test\"").first);
  CHECK(ls.column == 5);
  REQUIRE(ls.rooms.size() == 2);
  const RoomSpec& ops = ls.rooms[0];
  CHECK(ops.name == "ops");
  CHECK(ops.title == "Operations");
  CHECK(ops.subject == "Daily ops");
  CHECK(ops.label == "restricted");
  CHECK(ops.history == 20);
  CHECK(ops.members_only);
  CHECK(ops.federate_with == "ops@rooms.high.test");
  CHECK(ops.accept_from == std::vector<std::string>{"ops@a.test"});   // a node beyond, routed by <peer>
  CHECK(ops.owners == std::vector<std::string>{"boss@a.test"});
  CHECK(ops.members == std::vector<std::string>{"dave@a.test", "carol@a.test"});   // domain normalized
  const auto [room_line, room_column] = position_of(text, "<room name=\"ops\" title");
  CHECK(ops.line == room_line);
  CHECK(ops.column == room_column);
  const auto [fed_line, fed_column] = position_of(text, "<federate with=\"ops@rooms.high.test\"");
  CHECK(ops.federate_line == fed_line);
  CHECK(ops.federate_column == fed_column);
  // The schema's defaults agree with config.h's.
  const RoomSpec& lobby = ls.rooms[1];
  const RoomSpec room_defaults;
  CHECK(lobby.name == "lobby");
  CHECK(lobby.title.empty());
  CHECK(lobby.subject.empty());
  CHECK(lobby.label.empty());
  CHECK(lobby.history == room_defaults.history);
  CHECK(lobby.members_only == room_defaults.members_only);
  CHECK(lobby.federate_with.empty());
  CHECK(lobby.accept_from.empty());

  REQUIRE(c.high.rooms.size() == 1);
  const RoomServiceSpec& hs = c.high.rooms[0];
  const RoomServiceSpec service_defaults;
  CHECK(hs.domain == "rooms.high.test");
  CHECK(hs.ping_interval_ms == service_defaults.ping_interval_ms);
  CHECK(hs.retry_ms == service_defaults.retry_ms);
  REQUIRE(hs.rooms.size() == 1);
  CHECK(hs.rooms[0].name == "ops");
  CHECK(hs.rooms[0].federate_with.empty());
  CHECK(hs.rooms[0].accept_from == std::vector<std::string>{"ops@rooms.low.test"});

  // hosted_service finds a side's own services only.
  CHECK(portcullis::config::hosted_service(c.low, "rooms.low.test") == &c.low.rooms[0]);
  CHECK(portcullis::config::hosted_service(c.low, "rooms.high.test") == nullptr);
  CHECK(portcullis::config::hosted_service(c.high, "rooms.high.test") == &c.high.rooms[0]);
  CHECK(portcullis::config::hosted_service(c.high, "b.test") == nullptr);
}

TEST_CASE("rooms: a service domain that is a fronted domain is refused", "[config][rooms][fmuc]") {
  const std::string low =
      "    <rooms domain=\"b.test\">\n"
      "      <room name=\"ops\"/>\n"
      "    </rooms>\n";
  expect_refused_at(rooms_config(low, ""), "<rooms domain=\"b.test\"", 0,
                    {"<rooms> domain: 'b.test' is a domain side 'low' fronts", "needs a domain of its own"});
}

TEST_CASE("rooms: a service domain the other side fronts is refused", "[config][rooms][fmuc]") {
  // b.test is fronted by side low: side high cannot host it either.
  const std::string high =
      "    <rooms domain=\"b.test\">\n"
      "      <room name=\"ops\"/>\n"
      "    </rooms>\n";
  expect_refused_at(rooms_config("", high), "<rooms domain=\"b.test\"", 0,
                    {"<rooms> domain: 'b.test' is a domain side 'low' fronts"});
}

TEST_CASE("rooms: a service domain matched by a <peer> pattern is refused", "[config][rooms][fmuc]") {
  const std::string extra = "    <peer domain=\"*.peers.test\" host=\"127.0.0.2\"/>\n";
  const std::string low =
      "    <rooms domain=\"rooms.peers.test\">\n"
      "      <room name=\"ops\"/>\n"
      "    </rooms>\n";
  const std::string text = rooms_config(low, "", extra);
  const int peer_line = position_of(text, "<peer domain=\"*.peers.test\"").first;
  expect_refused_at(text, "<rooms domain=\"rooms.peers.test\"", 0,
                    {"<rooms> domain: 'rooms.peers.test' matches side 'low' <peer domain='*.peers.test'> (line " +
                         std::to_string(peer_line) + ")",
                     "a hosted service needs a domain no peer claims"});
}

TEST_CASE("rooms: <federate with> a room the twin service does not have is refused", "[config][rooms][fmuc]") {
  const std::string low =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"ops\">\n"
      "        <federate with=\"nope@rooms.high.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  const std::string high =
      "    <rooms domain=\"rooms.high.test\">\n"
      "      <room name=\"ops\"/>\n"
      "    </rooms>\n";
  expect_refused_at(rooms_config(low, high), "<federate with=\"nope@rooms.high.test\"", 0,
                    {"<federate>: expected a room of rooms.high.test, got 'nope@rooms.high.test', which that service "
                     "does not have"});
}

TEST_CASE("rooms: a twin that does not name the room back is refused", "[config][rooms][fmuc]") {
  SECTION("federate without the twin's accept") {
    const std::string high =
        "    <rooms domain=\"rooms.high.test\">\n"
        "      <room name=\"ops\"/>\n"
        "    </rooms>\n";
    const std::string text = rooms_config(kLowOps, high);
    const int twin_line = position_of(text, "<room name=\"ops\"", 1).first;
    expect_refused_at(text, "<federate with=\"ops@rooms.high.test\"", 0,
                      {"<federate>: 'ops@rooms.high.test' (line " + std::to_string(twin_line) +
                           ") does not <accept from='ops@rooms.low.test'/>",
                       "both halves of a federated pair must name each other"});
  }
  SECTION("accept without the twin's federate") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\"/>\n"
        "    </rooms>\n";
    const std::string text = rooms_config(low, kHighOps);
    const int twin_line = position_of(text, "<room name=\"ops\"", 0).first;
    expect_refused_at(text, "<accept from=\"ops@rooms.low.test\"", 0,
                      {"<accept>: 'ops@rooms.low.test' (line " + std::to_string(twin_line) +
                           ") does not <federate with='ops@rooms.high.test'/>",
                       "both halves of a federated pair must name each other"});
  }
  SECTION("the twin federates with a different room") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <federate with=\"ops@rooms.high.test\"/>\n"
        "      </room>\n"
        "      <room name=\"other\"/>\n"
        "    </rooms>\n";
    const std::string high =
        "    <rooms domain=\"rooms.high.test\">\n"
        "      <room name=\"ops\">\n"
        "        <accept from=\"other@rooms.low.test\"/>\n"
        "      </room>\n"
        "    </rooms>\n";
    // ops@rooms.high.test sorts first: its accept names a room that does not federate with it.
    expect_refused_at(rooms_config(low, high), "<accept from=\"other@rooms.low.test\"", 0,
                      {"does not <federate with='ops@rooms.high.test'/>"});
  }
}

TEST_CASE("rooms: federation with a room of the same side is refused", "[config][rooms][fmuc]") {
  SECTION("the same service") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <federate with=\"team@rooms.low.test\"/>\n"
        "      </room>\n"
        "      <room name=\"team\">\n"
        "        <accept from=\"ops@rooms.low.test\"/>\n"
        "      </room>\n"
        "    </rooms>\n";
    expect_refused_at(rooms_config(low, ""), "<federate with=\"team@rooms.low.test\"", 0,
                      {"<federate>: 'team@rooms.low.test' is a room of this side's own service rooms.low.test",
                       "federation links cross the boundary"});
  }
  SECTION("another service of the same side") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <federate with=\"ops@more.low.test\"/>\n"
        "      </room>\n"
        "    </rooms>\n"
        "    <rooms domain=\"more.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <accept from=\"ops@rooms.low.test\"/>\n"
        "      </room>\n"
        "    </rooms>\n";
    // ops@more.low.test sorts first: its <accept> is checked first.
    expect_refused_at(rooms_config(low, ""), "<accept from=\"ops@rooms.low.test\"", 0,
                      {"<accept>: 'ops@rooms.low.test' is a room of this side's own service rooms.low.test"});
  }
}

TEST_CASE("rooms: a federation cycle across the boundary is refused", "[config][rooms][fmuc]") {
  // a (low) -> b (high) -> c (low) -> d (high) -> a: every link crosses and is
  // named back, so only the cycle is wrong.
  const std::string low =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"a\">\n"
      "        <federate with=\"b@rooms.high.test\"/>\n"
      "        <accept from=\"d@rooms.high.test\"/>\n"
      "      </room>\n"
      "      <room name=\"c\">\n"
      "        <federate with=\"d@rooms.high.test\"/>\n"
      "        <accept from=\"b@rooms.high.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  const std::string high =
      "    <rooms domain=\"rooms.high.test\">\n"
      "      <room name=\"b\">\n"
      "        <federate with=\"c@rooms.low.test\"/>\n"
      "        <accept from=\"a@rooms.low.test\"/>\n"
      "      </room>\n"
      "      <room name=\"d\">\n"
      "        <federate with=\"a@rooms.low.test\"/>\n"
      "        <accept from=\"c@rooms.low.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  // Reported at the <federate> of the first room in order (a@rooms.low.test).
  expect_refused_at(rooms_config(low, high), "<federate with=\"b@rooms.high.test\"", 0,
                    {"<federate>: the federation links from a@rooms.low.test come back to a@rooms.low.test",
                     "(a cycle)", "must form a tree"});

  SECTION("the same chain without the closing link loads") {
    std::string open_high = high;
    const std::string closing = "        <federate with=\"a@rooms.low.test\"/>\n";
    open_high.erase(open_high.find(closing), closing.size());
    std::string open_low = low;
    const std::string closing_accept = "        <accept from=\"d@rooms.high.test\"/>\n";
    open_low.erase(open_low.find(closing_accept), closing_accept.size());
    RoomsConfigDir d;
    const Config c = load_config(d.config(rooms_config(open_low, open_high)), kSchemaDir);
    REQUIRE(c.low.rooms.size() == 1);
    CHECK(c.low.rooms[0].rooms.size() == 2);
  }
}

TEST_CASE("rooms: <accept from> the room it federates with is refused", "[config][rooms][fmuc]") {
  const std::string low =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"ops\">\n"
      "        <federate with=\"ops@rooms.high.test\"/>\n"
      "        <accept from=\"ops@rooms.high.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  const std::string text = rooms_config(low, kHighOps);
  const int fed_line = position_of(text, "<federate with=\"ops@rooms.high.test\"").first;
  expect_refused_at(text, "<accept from=\"ops@rooms.high.test\"", 0,
                    {"<accept> from: 'ops@rooms.high.test' is the room this one federates with (line " +
                         std::to_string(fed_line) + ")"});
}

TEST_CASE("rooms: a room named twice in one service is refused", "[config][rooms][fmuc]") {
  const std::string low =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"ops\"/>\n"
      "      <room name=\"ops\" title=\"again\"/>\n"
      "    </rooms>\n";
  const std::string text = rooms_config(low, "");
  const int first_line = position_of(text, "<room name=\"ops\"/>").first;
  expect_refused_at(text, "<room name=\"ops\" title=\"again\"", 0,
                    {"<room> name: expected each room of rooms.low.test once, got 'ops' again (first at line " +
                         std::to_string(first_line) + ")"});
}

TEST_CASE("rooms: a service domain hosted twice is refused", "[config][rooms][fmuc]") {
  SECTION("twice on one side") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\"/>\n"
        "    </rooms>\n"
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"team\"/>\n"
        "    </rooms>\n";
    const std::string text = rooms_config(low, "");
    const int first_line = position_of(text, "<rooms domain=\"rooms.low.test\"", 0).first;
    expect_refused_at(text, "<rooms domain=\"rooms.low.test\"", 1,
                      {"<rooms> domain: expected each room service once, got 'rooms.low.test' again (first at line " +
                           std::to_string(first_line) + ")"});
  }
  SECTION("once on each side") {
    const std::string low =
        "    <rooms domain=\"rooms.both.test\">\n"
        "      <room name=\"ops\"/>\n"
        "    </rooms>\n";
    const std::string high =
        "    <rooms domain=\"rooms.both.test\">\n"
        "      <room name=\"team\"/>\n"
        "    </rooms>\n";
    const std::string text = rooms_config(low, high);
    const int first_line = position_of(text, "<rooms domain=\"rooms.both.test\"", 0).first;
    expect_refused_at(text, "<rooms domain=\"rooms.both.test\"", 1,
                      {"<rooms> domain: expected each room service once, got 'rooms.both.test' again (first at line " +
                           std::to_string(first_line) + ")"});
  }
}

TEST_CASE("rooms: a malformed JID in <federate with> is refused", "[config][rooms][fmuc]") {
  SECTION("by the schema: two @") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <federate with=\"ops@@rooms.high.test\"/>\n"
        "      </room>\n"
        "    </rooms>\n";
    const std::string text = rooms_config(low, kHighOps);
    RoomsConfigDir d;
    const ConfigError e = load_error(d.config(text));
    INFO(e.what());
    // Xerces reports at the end of the offending start tag, on its line.
    const auto [line, column] = position_of(text, "<federate with=\"ops@@rooms.high.test\"/>");
    CHECK(e.line() == line);
    CHECK(e.column() >= column);
    CHECK_THAT(e.message(), Catch::Contains("ops@@rooms.high.test"));
    CHECK_THAT(e.message(), Catch::Contains("with"));
  }
  SECTION("by the schema: a full JID") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <federate with=\"ops@rooms.high.test/nick\"/>\n"
        "      </room>\n"
        "    </rooms>\n";
    const std::string text = rooms_config(low, kHighOps);
    RoomsConfigDir d;
    const ConfigError e = load_error(d.config(text));
    INFO(e.what());
    CHECK(e.line() == position_of(text, "<federate with=\"ops@rooms.high.test/nick\"").first);
    CHECK_THAT(e.message(), Catch::Contains("ops@rooms.high.test/nick"));
  }
  SECTION("by the loader: a domain the schema's pattern lets through") {
    const std::string low =
        "    <rooms domain=\"rooms.low.test\">\n"
        "      <room name=\"ops\">\n"
        "        <federate with=\"ops@rooms..high.test\"/>\n"
        "      </room>\n"
        "    </rooms>\n";
    expect_refused_at(rooms_config(low, kHighOps), "<federate with=\"ops@rooms..high.test\"", 0,
                      {"<federate> with: expected a bare JID (room@service), got 'ops@rooms..high.test'"});
  }
}

TEST_CASE("rooms: a link to a domain that is neither hosted nor routed is refused", "[config][rooms][fmuc]") {
  const std::string low =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"ops\">\n"
      "        <federate with=\"ops@nowhere.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  expect_refused_at(rooms_config(low, ""), "<federate with=\"ops@nowhere.test\"", 0,
                    {"<federate>: expected a room of a hosted service or of a domain side 'low' routes to (<peer>), "
                     "got 'ops@nowhere.test'"});
}

// ---- a standalone FMUC node (<node>) --------------------------------------------

namespace {

// A node hosting rooms.site-a.test, peering with a.test and the guard's rooms.low.test.
std::string node_config(const std::string& rooms, const std::string& supervision = "<supervision mode=\"single-user-development\"/>") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<node xmlns=\"urn:portcullis:config:1\">" + supervision + "\n"
         "  <server>\n"
         "    <listen address=\"127.0.0.8\" port=\"5269\"/>\n"
         "    <tls certificate=\"pki/guard-low.pem\" key=\"pki/guard-low.key\" ca=\"pki/ca-low.pem\"/>\n"
         "    <peer domain=\"a.test\" host=\"127.0.0.2\"/>\n"
         "    <peer domain=\"rooms.low.test\" host=\"127.0.0.4\"/>\n" +
         rooms +
         "  </server>\n"
         "</node>\n";
}

const std::string kNodeOps =
    "    <rooms domain=\"rooms.site-a.test\" ping-interval-ms=\"2000\">\n"
    "      <room name=\"ops\" subject=\"site A\">\n"
    "        <federate with=\"ops@rooms.low.test\"/>\n"
    "      </room>\n"
    "    </rooms>\n";

}  // namespace

TEST_CASE("node: a standalone FMUC node loads its one server and its rooms", "[config][rooms][fmuc][node]") {
  RoomsConfigDir d;
  const Config cfg = load_config(d.config(node_config(kNodeOps)), kSchemaDir);
  CHECK(cfg.kind == portcullis::config::ConfigKind::Node);
  CHECK(cfg.node.name == "node");
  REQUIRE(cfg.node.listen.size() == 1);
  CHECK(cfg.node.listen[0].address == "127.0.0.8");
  // A listener admits the node's peers by default.
  CHECK(cfg.node.listen[0].from == std::vector<std::string>{"127.0.0.2", "127.0.0.4"});
  CHECK(cfg.node.fronts.empty());
  REQUIRE(cfg.node.peers.size() == 2);
  REQUIRE(cfg.node.rooms.size() == 1);
  CHECK(cfg.node.rooms[0].domain == "rooms.site-a.test");
  CHECK(cfg.node.rooms[0].ping_interval_ms == 2000);
  REQUIRE(cfg.node.rooms[0].rooms.size() == 1);
  CHECK(cfg.node.rooms[0].rooms[0].federate_with == "ops@rooms.low.test");
  CHECK(cfg.node.rooms[0].rooms[0].subject == "site A");
  CHECK(cfg.supervision.mode == portcullis::config::SupervisionMode::SingleUserDevelopment);
  CHECK(cfg.supervision.node.name == "portcullis-node");
  // Nothing of the appliance is set: no sides, no policy, no audit.
  CHECK(cfg.low.listen.empty());
  CHECK(cfg.high.listen.empty());
  CHECK(cfg.policy_file.empty());
  CHECK_FALSE(cfg.audit.enabled);
  // Its server process loads it too; an edge or the filter does not.
  CHECK(load_config(d.config(node_config(kNodeOps)), kSchemaDir, portcullis::config::LoadFor::Node).kind ==
        portcullis::config::ConfigKind::Node);
  CHECK_THROWS_WITH(load_config(d.config(node_config(kNodeOps)), kSchemaDir, portcullis::config::LoadFor::Filter),
                    Catch::Contains("a standalone FMUC node has no filter"));
}

TEST_CASE("node: the node-user attribute names its server's user", "[config][rooms][fmuc][node]") {
  RoomsConfigDir d;
  const Config cfg = load_config(
      d.config(node_config(kNodeOps, "<supervision mode=\"single-user-development\" node-user=\"pc-site-a\"/>")),
      kSchemaDir);
  CHECK(cfg.supervision.node.name == "pc-site-a");
}

TEST_CASE("node: a node without rooms is refused at its <server>", "[config][rooms][fmuc][node]") {
  expect_refused_at(node_config(""), "<server>", 0, {"expected at least one <rooms domain=...>"});
}

TEST_CASE("node: fronted domains are not part of a node", "[config][rooms][fmuc][node]") {
  std::string text = node_config(kNodeOps);
  text.insert(text.find("    <tls "), "    <fronts domain=\"b.test\"/>\n");
  RoomsConfigDir d;
  const ConfigError e = load_error(d.config(text));
  INFO(e.what());
  CHECK(e.line() == position_of(text, "<fronts").first);
  CHECK_THAT(e.message(), Catch::Contains("fronts"));
}

TEST_CASE("node: a room federating with a domain the node does not route to is refused", "[config][rooms][fmuc][node]") {
  const std::string rooms =
      "    <rooms domain=\"rooms.site-a.test\">\n"
      "      <room name=\"ops\">\n"
      "        <federate with=\"ops@rooms.high.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  expect_refused_at(node_config(rooms), "<federate with=\"ops@rooms.high.test\"", 0,
                    {"<federate>: expected a room of a hosted service or of a domain the node routes to (<peer>), "
                     "got 'ops@rooms.high.test'"});
}

TEST_CASE("node: a room that both joins and accepts the same room (a cycle) is refused", "[config][rooms][fmuc][node]") {
  const std::string rooms =
      "    <rooms domain=\"rooms.site-a.test\">\n"
      "      <room name=\"ops\">\n"
      "        <federate with=\"ops@rooms.low.test\"/>\n"
      "        <accept from=\"ops@rooms.low.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  expect_refused_at(node_config(rooms), "<accept from=\"ops@rooms.low.test\"", 0,
                    {"is the room this one federates with", "cycle"});
}

TEST_CASE("node: a cycle between the node's own rooms is refused", "[config][rooms][fmuc][node]") {
  const std::string rooms =
      "    <rooms domain=\"rooms.site-a.test\">\n"
      "      <room name=\"one\">\n"
      "        <federate with=\"two@rooms.site-a.test\"/>\n"
      "      </room>\n"
      "      <room name=\"two\">\n"
      "        <federate with=\"one@rooms.site-a.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  RoomsConfigDir d;
  const ConfigError e = load_error(d.config(node_config(rooms)));
  INFO(e.what());
  CHECK_THAT(e.message(), Catch::Contains("cycle"));
}

TEST_CASE("node: a room federating with a room of the node's own service is refused", "[config][rooms][fmuc][node]") {
  const std::string rooms =
      "    <rooms domain=\"rooms.site-a.test\">\n"
      "      <room name=\"one\">\n"
      "        <federate with=\"two@rooms.site-a.test\"/>\n"
      "      </room>\n"
      "      <room name=\"two\">\n"
      "        <accept from=\"one@rooms.site-a.test\"/>\n"
      "      </room>\n"
      "    </rooms>\n";
  expect_refused_at(node_config(rooms), "<federate with=\"two@rooms.site-a.test\"", 0,
                    {"is a room of this node's own service rooms.site-a.test"});
}

TEST_CASE("node: a node's service domain claimed by one of its peers is refused", "[config][rooms][fmuc][node]") {
  const std::string rooms =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"ops\"/>\n"
      "    </rooms>\n";
  expect_refused_at(node_config(rooms), "<rooms domain=\"rooms.low.test\"", 0,
                    {"a hosted service needs a domain no peer claims"});
}

TEST_CASE("node: separated mode needs an existing node user other than root", "[config][rooms][fmuc][node]") {
  expect_refused_at(node_config(kNodeOps, "<supervision node-user=\"pc-no-such-user-xyz\"/>"), "<supervision", 0,
                    {"<supervision> node-user: expected an existing user, got 'pc-no-such-user-xyz'"});
  expect_refused_at(node_config(kNodeOps, "<supervision node-user=\"root\"/>"), "<supervision", 0,
                    {"<supervision> node-user: expected a user other than root, got 'root'"});
}

TEST_CASE("node: an appliance config is not a node's", "[config][rooms][fmuc][node]") {
  RoomsConfigDir d;
  CHECK_THROWS_WITH(load_config(d.config(rooms_config(kLowOps, kHighOps)), kSchemaDir,
                                portcullis::config::LoadFor::Node),
                    Catch::Contains("expected a <node> config"));
}

TEST_CASE("node: the same listener twice is refused at the second", "[config][rooms][fmuc][node]") {
  std::string text = node_config(kNodeOps);
  const std::string listen = "    <listen address=\"127.0.0.8\" port=\"5269\"/>\n";
  text.insert(text.find(listen) + listen.size(), listen);
  expect_refused_at(text, "<listen address=\"127.0.0.8\"", 1, {"expected each address and port once"});
}

// ---- a room <-> IRC channel link (<irc>) ------------------------------------------

namespace {

std::string irc_rooms(const std::string& irc) {
  return "    <rooms domain=\"rooms.site-a.test\">\n"
         "      <room name=\"ops\">\n"
         "        " + irc + "\n"
         "      </room>\n"
         "    </rooms>\n";
}

}  // namespace

TEST_CASE("irc: a room's IRC link loads with every field", "[config][rooms][irc]") {
  RoomsConfigDir d;
  const std::string path = d.config(node_config(irc_rooms(
      "<irc server=\"127.0.0.5\" port=\"6667\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\" "
      "nick=\"gw\" max-nick-length=\"16\" line-cap=\"3\" flood-burst=\"2\" flood-interval-ms=\"500\" retry-ms=\"200\" "
      "retry-max-ms=\"4000\"/>")));
  const Config cfg = load_config(path, kSchemaDir);
  const auto& irc = cfg.node.rooms.at(0).rooms.at(0).irc;
  REQUIRE(irc);
  CHECK(irc->server == "127.0.0.5");
  CHECK(irc->port == 6667);
  CHECK_FALSE(irc->tls);
  CHECK(irc->channel == "#ops");
  CHECK(irc->nick == "gw");
  CHECK(irc->max_nick_length == 16);
  CHECK(irc->line_cap == 3);
  CHECK(irc->flood_burst == 2);
  CHECK(irc->flood_interval_ms == 500);
  CHECK(irc->retry_ms == 200);
  CHECK(irc->retry_max_ms == 4000);
  CHECK(irc->password_file.empty());
}

TEST_CASE("irc: defaults are TLS on 6697, nick pcgate, 9-character nicks", "[config][rooms][irc]") {
  RoomsConfigDir d;
  const Config cfg = load_config(
      d.config(node_config(irc_rooms("<irc server=\"127.0.0.5\" server-name=\"irc.test\" ca=\"pki/ca-low.pem\" channel=\"#ops\"/>"))),
      kSchemaDir);
  const auto& irc = cfg.node.rooms.at(0).rooms.at(0).irc;
  REQUIRE(irc);
  CHECK(irc->tls);
  CHECK(irc->port == 6697);
  CHECK(irc->server_name == "irc.test");
  CHECK_THAT(irc->ca_file, Catch::EndsWith("pki/ca-low.pem"));
  CHECK(irc->nick == "pcgate");
  CHECK(irc->max_nick_length == 9);
}

TEST_CASE("irc: bad links are refused at the <irc> element", "[config][rooms][irc]") {
  SECTION("plaintext without allow-plaintext") {
    const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" channel=\"#ops\"";
    expect_refused_at(node_config(irc_rooms(e + "/>")), e, 0, {"plaintext IRC needs allow-plaintext='true'"});
  }
  SECTION("TLS without a CA or a server name") {
    const std::string e = "<irc server=\"127.0.0.5\" channel=\"#ops\"";
    expect_refused_at(node_config(irc_rooms(e + "/>")), e, 0, {"expected ca='...' and server-name='...'"});
  }
  SECTION("a host name instead of an address") {
    const std::string e = "<irc server=\"irc.example\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\"";
    RoomsConfigDir d;
    const ConfigError err = load_error(d.config(node_config(irc_rooms(e + "/>"))));
    CHECK_THAT(err.message(), Catch::Contains("irc.example"));
  }
  SECTION("SASL user without its password") {
    const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\" sasl-user=\"gw\"";
    expect_refused_at(node_config(irc_rooms(e + "/>")), e, 0, {"sasl-user and sasl-password-file together"});
  }
  SECTION("a nick longer than the nick length") {
    const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\" nick=\"averylongnick\"";
    expect_refused_at(node_config(irc_rooms(e + "/>")), e, 0, {"expected at most max-nick-length (9)"});
  }
  SECTION("a channel that is not one") {
    RoomsConfigDir d;
    const ConfigError err = load_error(d.config(node_config(
        irc_rooms("<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"ops\"/>"))));
    CHECK_THAT(err.message(), Catch::Contains("channel"));
  }
}

TEST_CASE("irc: a password file must not be world-readable and must hold a password", "[config][rooms][irc]") {
  RoomsConfigDir d;
  const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\" "
                        "password-file=\"irc.pass\"";
  const std::string text = node_config(irc_rooms(e + "/>"));
  const std::string path = d.config(text);
  const fs::path pass = fs::path(path).parent_path() / "irc.pass";
  write(pass, "hunter2\n", fs::perms(0644));
  ConfigError err = load_error(path);
  CHECK_THAT(err.message(), Catch::Contains("not world-readable"));
  write(pass, "\n", fs::perms(0600));
  err = load_error(path);
  CHECK_THAT(err.message(), Catch::Contains("expected a password on the first line"));
  write(pass, "hunter2\n", fs::perms(0600));
  const Config cfg = load_config(path, kSchemaDir);
  CHECK(cfg.node.rooms.at(0).rooms.at(0).irc->password_file == pass.lexically_normal().string());
}

TEST_CASE("irc: refused where IRC could read what it must not, or speak as the gateway", "[config][rooms][irc]") {
  const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\"";
  SECTION("a members-only room") {
    const std::string text = node_config(
        "    <rooms domain=\"rooms.site-a.test\">\n      <room name=\"ops\" members-only=\"true\">\n        " + e +
        "/>\n      </room>\n    </rooms>\n");
    expect_refused_at(text, e, 0, {"expected a room that is not members-only"});
  }
  SECTION("a room with a default label") {
    const std::string text = node_config(
        "    <rooms domain=\"rooms.site-a.test\">\n      <room name=\"ops\" label=\"secret\">\n        " + e +
        "/>\n      </room>\n    </rooms>\n");
    expect_refused_at(text, e, 0, {"expected spif='...' and an <unlabelled> label", "got no labels"});
  }
  SECTION("a peer that claims the gateways' domain") {
    std::string text = node_config(irc_rooms(e + "/>"));
    const std::string peer = "<peer domain=\"*.rooms.site-a.test\" host=\"127.0.0.9\"/>";
    text.insert(text.find("    <rooms"), "    " + peer + "\n");
    expect_refused_at(text, "<peer domain=\"*.rooms.site-a.test\"", 0,
                      {"the address of the IRC gateways of rooms.site-a.test"});
  }
}

TEST_CASE("irc: an IRC server that is a host of the other side is refused", "[config][rooms][irc]") {
  // 127.0.0.3 is the high side's server: low's room may not gateway an IRC server there.
  const std::string e = "<irc server=\"127.0.0.3\" port=\"6667\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\"";
  const std::string low =
      "    <rooms domain=\"rooms.low.test\">\n"
      "      <room name=\"ops\">\n"
      "        <federate with=\"ops@rooms.high.test\"/>\n"
      "        " + e + "/>\n"
      "      </room>\n"
      "    </rooms>\n";
  expect_refused_at(rooms_config(low, kHighOps), e, 0, {"is a host of side 'high'", "must be on that side only"});
  // The same server named by both sides' rooms.
  const std::string e2 = "<irc server=\"127.0.0.7\" port=\"6667\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\"";
  const std::string low2 =
      "    <rooms domain=\"rooms.low.test\">\n      <room name=\"ops\">\n        <federate with=\"ops@rooms.high.test\"/>\n"
      "        " + e2 + "/>\n      </room>\n    </rooms>\n";
  const std::string high2 =
      "    <rooms domain=\"rooms.high.test\">\n      <room name=\"ops\">\n        <accept from=\"ops@rooms.low.test\"/>\n"
      "        " + e2 + "/>\n      </room>\n    </rooms>\n";
  RoomsConfigDir d;
  const ConfigError err = load_error(d.config(rooms_config(low2, high2)));
  CHECK_THAT(err.message(), Catch::Contains("must be on that side only"));
}

TEST_CASE("irc: a password with a NUL is refused", "[config][rooms][irc]") {
  RoomsConfigDir d;
  const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\" "
                        "password-file=\"irc.pass\"";
  const std::string path = d.config(node_config(irc_rooms(e + "/>")));
  write(fs::path(path).parent_path() / "irc.pass", std::string("ab\0cd\n", 6), fs::perms(0600));
  CHECK_THAT(load_error(path).message(), Catch::Contains("without NUL or CR"));
}

// ---- the IRC link's labels (issue 10 item 4) ---------------------------------------

namespace {

const std::string kIrcSpif = std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/labels/spif-low-nation.xml";

}  // namespace

TEST_CASE("irc labels: spif with <label>, <clearance> and <unlabelled> loads, positions kept", "[config][rooms][irc]") {
  RoomsConfigDir d;
  const std::string path = d.config(node_config(
      "    <rooms domain=\"rooms.site-a.test\">\n      <room name=\"ops\" label=\"unclassified\">\n"
      "        <irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\" spif=\"" + kIrcSpif + "\">"
      "<label classification=\"UNCLASSIFIED\"/><clearance up-to=\"RESTRICTED\"/>"
      "<unlabelled classification=\"UNCLASSIFIED\"/></irc>\n      </room>\n    </rooms>\n"));
  const Config cfg = load_config(path, kSchemaDir);
  const auto& irc = cfg.node.rooms.at(0).rooms.at(0).irc;
  REQUIRE(irc);
  CHECK(irc->spif_file == kIrcSpif);
  REQUIRE(irc->label);
  REQUIRE(irc->clearance);
  REQUIRE(irc->unlabelled);
  CHECK(irc->label->at("classification") == "UNCLASSIFIED");
  CHECK(irc->clearance->at("up-to") == "RESTRICTED");
  CHECK(irc->clearance->at("id") == "irc-link");   // the schema's default
  CHECK(irc->label->file == path);
  CHECK(irc->label->line > 0);
}

TEST_CASE("irc labels: what goes together is refused apart", "[config][rooms][irc]") {
  const std::string e = "<irc server=\"127.0.0.5\" tls=\"forbidden\" allow-plaintext=\"true\" channel=\"#ops\"";
  SECTION("a spif without <clearance>") {
    const std::string text = node_config(irc_rooms(e + " spif=\"" + kIrcSpif + "\"><label classification=\"UNCLASSIFIED\"/></irc>"));
    expect_refused_at(text, e, 0, {"expected <label>", "got no <clearance>"});
  }
  SECTION("a <label> without spif") {
    const std::string text = node_config(irc_rooms(e + "><label classification=\"UNCLASSIFIED\"/></irc>"));
    expect_refused_at(text, "<label classification", 0, {"expected spif='...' on <irc>"});
  }
  SECTION("a labelled room whose link has no <unlabelled>") {
    const std::string text = node_config(
        "    <rooms domain=\"rooms.site-a.test\">\n      <room name=\"ops\" label=\"secret\">\n        " + e + " spif=\"" +
        kIrcSpif + "\"><label classification=\"UNCLASSIFIED\"/><clearance up-to=\"RESTRICTED\"/></irc>\n      </room>\n"
        "    </rooms>\n");
    expect_refused_at(text, e, 0, {"an <unlabelled> label", "got no <unlabelled>"});
  }
  SECTION("a spif that is not there") {
    const std::string text = node_config(irc_rooms(e + " spif=\"no-such-spif.xml\"><label classification=\"UNCLASSIFIED\"/>"
                                                   "<clearance up-to=\"RESTRICTED\"/></irc>"));
    expect_refused_at(text, e, 0, {"spif: expected a readable file"});
  }
}
