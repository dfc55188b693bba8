// Tests for guard/config: the demo config loads, schema defaults agree with
// config.h, and every bad config in test/corpus/config/ fails at the exact
// line:column with a readable message.
//
// Each test works in its own temporary directory: the config file is copied
// there next to dummy pki/ files (the loader only checks that they exist and are
// readable) so relative paths resolve as they would on the appliance.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "guard/config/config.h"

namespace fs = std::filesystem;
using portcullis::config::Config;
using portcullis::config::ConfigError;
using portcullis::config::load_config;
using portcullis::config::PeerAuth;
using portcullis::config::PeerTls;
using portcullis::config::Side;

namespace {

const std::string kSchemaDir = PORTCULLIS_SOURCE_DIR "/schemas";
const std::string kCorpus = PORTCULLIS_SOURCE_DIR "/test/corpus/config/";
const std::string kDemo = PORTCULLIS_SOURCE_DIR "/deploy/config/demo.xml";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& path, const std::string& text, fs::perms perms = fs::perms(0644)) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  fs::permissions(path, perms);
}

// A temporary runtime directory with the demo's pki/ files.
class ConfigDir {
 public:
  ConfigDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("portcullis-config-test-" + std::to_string(::getpid()) +
                                        "-" + std::to_string(rd()));
    fs::create_directories(dir_ / "pki");
    for (const char* f : {"guard-low.pem", "guard-low.key", "ca-low.pem", "guard-high.pem",
                          "guard-high.key", "ca-high.pem", "ca-low.crl", "ca-high.crl"}) {
      write(dir_ / "pki" / f, "dummy\n");
    }
    // The config loader only checks that the policy file exists and is readable.
    write(dir_ / "policy.xml", "dummy\n");
    write(dir_ / "demo-policy.xml", "dummy\n");
    // Audit keys: the signing key must be readable by its owner only.
    fs::create_directories(dir_ / "keys");
    write(dir_ / "keys" / "audit.key", "dummy\n");
    fs::permissions(dir_ / "keys" / "audit.key", fs::perms::owner_read | fs::perms::owner_write);
    write(dir_ / "keys" / "audit.pub", "dummy\n");
    // The demo's guard stage names the broad XMPP profile next to the config.
    fs::create_directories(dir_ / "schemas" / "xmpp");
    write(dir_ / "schemas" / "xmpp" / "broad.xsd", "dummy\n");
  }
  ~ConfigDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  ConfigDir(const ConfigDir&) = delete;
  ConfigDir& operator=(const ConfigDir&) = delete;

  const fs::path& dir() const { return dir_; }

  // Writes `text` as config.xml in the directory; returns its path.
  std::string config(const std::string& text, const std::string& name = "config.xml") const {
    write(dir_ / name, text);
    return (dir_ / name).string();
  }
  std::string copy_of(const std::string& source) const {
    return config(slurp(source), fs::path(source).filename().string());
  }

 private:
  fs::path dir_;
};

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  return s.replace(pos, from.size(), to);
}

// Loads `path`, requires a ConfigError, returns it.
ConfigError load_error(const std::string& path) {
  try {
    load_config(path, kSchemaDir);
  } catch (const ConfigError& e) {
    return e;
  }
  FAIL("expected a ConfigError from " << path);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("the demo config loads with every value as written", "[config]") {
  ConfigDir d;
  // Separated mode needs the service users and file owners of an installed
  // appliance (the interop tests and the demo have them); here the values.
  const std::string path = d.config(replace_once(slurp(kDemo), "mode=\"separated\"", "mode=\"single-user-development\""),
                                    "demo.xml");
  const Config c = load_config(path, kSchemaDir);

  CHECK(c.file == path);
  CHECK(c.log_target == "stderr");
  REQUIRE(c.guards.low_to_high.size() == 1);
  REQUIRE(c.guards.high_to_low.size() == 1);
  CHECK(c.guards.low_to_high[0].kind == portcullis::config::GuardSpec::Kind::Schema);
  CHECK(c.guards.low_to_high[0].profile == (d.dir() / "schemas/xmpp/broad.xsd").string());
  CHECK(c.audit.enabled);
  CHECK(c.audit.syslog_summary);   // the accreditor's anchor outside the box
  CHECK(c.log_level == "info");
  CHECK(c.supervision.restart_backoff_ms == 500);
  CHECK(c.supervision.restart_backoff_max_ms == 10000);

  CHECK(c.low.name == "low");
  REQUIRE(c.low.listen.size() == 1);
  CHECK(c.low.listen[0].address == "127.0.0.4");
  CHECK(c.low.listen[0].port == 5269);
  CHECK(c.low.fronts == std::vector<std::string>{"b.test", "conference.b.test"});
  CHECK(c.low.cert_file == (d.dir() / "pki/guard-low.pem").string());
  CHECK(c.low.key_file == (d.dir() / "pki/guard-low.key").string());
  CHECK(c.low.ca_file == (d.dir() / "pki/ca-low.pem").string());
  CHECK(c.low.dialback_secret_file.empty());
  REQUIRE(c.low.peers.size() == 2);
  CHECK(c.low.peers[0].domain_pattern == "a.test");
  CHECK(c.low.peers[0].host == "127.0.0.2");
  CHECK(c.low.peers[0].port == 5269);
  CHECK(c.low.peers[0].auth == PeerAuth::SaslExternal);
  CHECK(c.low.peers[0].tls == PeerTls::Required);
  CHECK(c.low.peers[0].kinds.message);
  CHECK(c.low.peers[0].kinds.presence);
  CHECK(c.low.peers[0].kinds.iq);
  CHECK(c.low.peers[1].domain_pattern == "conference.a.test");

  CHECK(c.high.name == "high");
  REQUIRE(c.high.listen.size() == 1);
  CHECK(c.high.listen[0].address == "127.0.0.6");
  CHECK(c.high.fronts == std::vector<std::string>{"a.test", "conference.a.test"});
  CHECK(c.high.cert_file == (d.dir() / "pki/guard-high.pem").string());
  REQUIRE(c.high.peers.size() == 2);
  CHECK(c.high.peers[0].domain_pattern == "b.test");
  CHECK(c.high.peers[0].host == "127.0.0.3");
  CHECK(c.high.peers[1].domain_pattern == "conference.b.test");

  CHECK(c.policy_file == (d.dir() / "demo-policy.xml").string());
  // The legacy first-version policy is never filled from the config any more.
  CHECK(c.low_to_high.allow.empty());
  CHECK(c.high_to_low.allow.empty());
}

TEST_CASE("schema defaults agree with the defaults in config.h", "[config]") {
  // Every optional element present but empty: the XSD fills in its defaults.
  ConfigDir d;
  std::string text = slurp(kCorpus + "valid-minimal.xml");
  text = replace_once(text, "<supervision mode=\"single-user-development\"/>", "<logging/><supervision/>");
  text = replace_once(text, "ca=\"pki/ca-low.pem\"/>", "ca=\"pki/ca-low.pem\"/><timeouts/><limits/>");
  text = replace_once(text, "<listen address=\"127.0.0.6\" port=\"5269\"/>",
                      "<listen address=\"127.0.0.6\"/>");
  // As the filter loads it: separated mode's users need not exist for that.
  const Config with_empty = load_config(d.config(text), kSchemaDir, portcullis::config::LoadFor::Filter);
  CHECK(with_empty.supervision.mode == Config{}.supervision.mode);
  CHECK(with_empty.supervision.low_edge.name == Config{}.supervision.low_edge.name);
  CHECK(with_empty.supervision.high_edge.name == Config{}.supervision.high_edge.name);
  CHECK(with_empty.supervision.filter.name == Config{}.supervision.filter.name);
  // The same file with the optional elements left out: config.h's defaults.
  const Config without = load_config(d.copy_of(kCorpus + "valid-minimal.xml"), kSchemaDir);
  const Config defaults;
  const Side side_defaults;
  const portcullis::config::Peer peer_defaults;
  const portcullis::config::Listen listen_defaults;

  for (const Config* c : {&with_empty, &without}) {
    CHECK(c->log_target == defaults.log_target);
    CHECK(c->log_level == defaults.log_level);
    CHECK(c->supervision.restart_backoff_ms == defaults.supervision.restart_backoff_ms);
    CHECK(c->supervision.restart_backoff_max_ms == defaults.supervision.restart_backoff_max_ms);
    CHECK(c->supervision.watchdog_ms == defaults.supervision.watchdog_ms);
    const Side& s = c->low;
    CHECK(s.connect_timeout_ms == side_defaults.connect_timeout_ms);
    CHECK(s.negotiation_timeout_ms == side_defaults.negotiation_timeout_ms);
    CHECK(s.keepalive_interval_ms == side_defaults.keepalive_interval_ms);
    CHECK(s.idle_timeout_ms == side_defaults.idle_timeout_ms);
    CHECK(s.queue_timeout_ms == side_defaults.queue_timeout_ms);
    CHECK(s.max_queue == side_defaults.max_queue);
    CHECK(s.max_inbound == side_defaults.max_inbound);
    CHECK(s.max_stanza_bytes == side_defaults.max_stanza_bytes);
    CHECK(s.max_depth == side_defaults.max_depth);
    CHECK(s.max_attributes == side_defaults.max_attributes);
    REQUIRE(s.peers.size() == 1);
    CHECK(s.peers[0].port == peer_defaults.port);
    CHECK(s.peers[0].auth == peer_defaults.auth);
    CHECK(s.peers[0].tls == peer_defaults.tls);
    CHECK(s.peers[0].direct_tls == peer_defaults.direct_tls);
    CHECK(s.domain_certs.empty());
    CHECK(c->high.listen.at(0).direct_tls == listen_defaults.direct_tls);
    CHECK(s.peers[0].kinds.message == peer_defaults.kinds.message);
    CHECK(s.peers[0].kinds.presence == peer_defaults.kinds.presence);
    CHECK(s.peers[0].kinds.iq == peer_defaults.kinds.iq);
    CHECK(c->high.listen.at(0).port == listen_defaults.port);
  }
}

TEST_CASE("peer options: dialback with a secret, plaintext when allowed, kinds", "[config]") {
  ConfigDir d;
  write(d.dir() / "dialback.secret", "0123456789abcdef0123\n", fs::perms(0600));
  std::string text = slurp(kCorpus + "valid-minimal.xml");
  text = replace_once(text, "ca=\"pki/ca-high.pem\"/>",
                      "ca=\"pki/ca-high.pem\"/>\n    <dialback secret-file=\"dialback.secret\"/>");
  text = replace_once(text, "<peer domain=\"b.test\" host=\"127.0.0.3\"/>",
                      "<peer domain=\"*.B.Test\" host=\"::1\" port=\"5270\" auth=\"any\" "
                      "tls=\"optional\" allow-plaintext=\"true\" kinds=\"message iq\"/>\n"
                      "    <peer domain=\"b.test\" host=\"127.0.0.3\" auth=\"dialback\"/>");
  const Config c = load_config(d.config(text), kSchemaDir);
  CHECK(c.high.dialback_secret_file == (d.dir() / "dialback.secret").string());
  REQUIRE(c.high.peers.size() == 2);
  const auto& p = c.high.peers[0];
  CHECK(p.domain_pattern == "*.b.test");   // normalized to lower case
  CHECK(p.host == "::1");
  CHECK(p.port == 5270);
  CHECK(p.auth == PeerAuth::Any);
  CHECK(p.tls == PeerTls::Optional);
  CHECK(p.kinds.message);
  CHECK_FALSE(p.kinds.presence);
  CHECK(p.kinds.iq);
  CHECK(p.line == 15);
  CHECK(p.column == 5);
  CHECK(c.high.peers[1].auth == PeerAuth::Dialback);
}

TEST_CASE("schema location hints are ignored: nothing is fetched", "[config][hostile]") {
  ConfigDir d;
  const Config c = load_config(d.copy_of(kCorpus + "ignored-schema-hint.xml"), kSchemaDir);
  CHECK(c.policy_file == (d.dir() / "policy.xml").string());
}

TEST_CASE("ConfigError formats file:line:column: message", "[config]") {
  ConfigError e("/etc/portcullis.xml", 12, 5, "expected x, got y");
  CHECK(std::string(e.what()) == "/etc/portcullis.xml:12:5: expected x, got y");
  CHECK(e.file() == "/etc/portcullis.xml");
  CHECK(e.line() == 12);
  CHECK(e.column() == 5);
  CHECK(e.message() == "expected x, got y");
}

namespace {

struct BadConfig {
  const char* file;
  int line, column;
  const char* message_part;
};

// Schema/well-formedness errors carry Xerces's position (the offending
// character, or the end of the offending start tag); semantic errors point at
// the '<' of the element concerned.
const BadConfig kBadConfigs[] = {
    {"not-well-formed.xml", 9, 9, "unterminated end tag 'side'"},
    {"unknown-element.xml", 9, 30, "<proxy>: no declaration found for element 'proxy'"},
    {"missing-attribute.xml", 14, 40, "<peer>: missing required attribute 'host'"},
    {"bad-enum.xml", 8, 61, "<peer> auth: value 'password' not in enumeration"},
    {"bad-port.xml", 11, 47,
     "<listen> port: value '70000' must be less than or equal to maxInclusive facet value "
     "'65535'"},
    {"hostname-peer.xml", 14, 5,
     "<peer> host: expected a numeric IPv4 or IPv6 address (no DNS names), got 'xmpp.b.test'"},
    {"duplicate-side.xml", 10, 3,
     "<side> name: expected one side 'low' and one side 'high', got a second side 'low' (first "
     "at line 4)"},
    {"fronts-not-routable.xml", 7, 5,
     "<fronts domain='c.test'>: expected a <peer> on side 'high' whose domain matches 'c.test', "
     "got none"},
    {"fronts-not-routable-utf8.xml", 6, 42,
     "<fronts domain='c.test'>: expected a <peer> on side 'high' whose domain matches 'c.test'"},
    {"duplicate-listen.xml", 11, 5,
     "<listen>: expected each address and port once, got 127.0.0.4 port 5269 again (first at "
     "line 5)"},
    {"fronts-loops-back.xml", 13, 5, "<fronts domain='b.test'>: expected a domain of the other side, got one that side 'high' "
     "routes to its own <peer domain='b.test'> (line 15)"},
    {"plaintext-without-allow.xml", 8, 5,
     "<peer domain='a.test'> tls: expected 'required', got 'optional' (plaintext needs "
     "allow-plaintext='true' on this peer)"},
    {"dialback-without-secret.xml", 14, 5,
     "<peer> auth: expected 'sasl-external', got 'dialback' but side 'high' has no <dialback"},
    {"doctype.xml", 3, 1, "got a DOCTYPE declaration (DTDs are not allowed)"},
    {"wrong-namespace.xml", 3, 45, "grammar not found for namespace 'urn:portcullis:config:2'"},
    {"missing-policy.xml", 16, 14, "missing elements in content model"},
    {"direct-tls-without-tls.xml", 8, 5,
     "<peer domain='a.test'> direct-tls: expected tls='required' with it, got tls='optional'"},
    {"domain-certificate-not-presented.xml", 8, 7,
     "<domain-certificate> domain: expected a domain side 'low' fronts or hosts, got 'c.test'"},
    {"domain-certificate-twice.xml", 9, 7,
     "<domain-certificate> domain: expected each domain once, got 'b.test' again (first at line 8)"},
};

TEST_CASE("direct TLS listeners and peers, and per-domain certificates, load", "[config]") {
  ConfigDir d;
  const Config c = load_config(d.copy_of(kCorpus + "valid-direct-tls.xml"), kSchemaDir);
  REQUIRE(c.low.listen.size() == 2);
  CHECK_FALSE(c.low.listen[0].direct_tls);
  CHECK(c.low.listen[1].direct_tls);
  CHECK(c.low.listen[1].port == 5270);
  REQUIRE(c.low.peers.size() == 1);
  CHECK(c.low.peers[0].direct_tls);
  CHECK(c.low.peers[0].port == 5270);
  REQUIRE(c.low.domain_certs.size() == 1);
  CHECK(c.low.domain_certs[0].domain == "b.test");
  CHECK(c.low.domain_certs[0].key_file == (d.dir() / "pki" / "guard-low.key").string());
  CHECK(c.low.domain_certs[0].line == 9);
  CHECK_FALSE(c.high.peers.at(0).direct_tls);
}

}  // namespace

TEST_CASE("every bad config fails at its exact position", "[config][corpus]") {
  for (const BadConfig& bad : kBadConfigs) {
    SECTION(bad.file) {
      ConfigDir d;
      const std::string path = d.copy_of(kCorpus + bad.file);
      const ConfigError e = load_error(path);
      INFO(e.what());
      CHECK(e.file() == path);
      CHECK(e.line() == bad.line);
      CHECK(e.column() == bad.column);
      CHECK_THAT(e.message(), Catch::Contains(bad.message_part));
      CHECK(std::string(e.what()).rfind(path + ":" + std::to_string(bad.line) + ":" +
                                            std::to_string(bad.column) + ": ",
                                        0) == 0);
    }
  }
}

TEST_CASE("the corpus has an expectation for every bad config", "[config][corpus]") {
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("valid-", 0) == 0 || name.rfind("ignored-", 0) == 0) continue;
    bool listed = false;
    for (const BadConfig& bad : kBadConfigs) listed = listed || name == bad.file;
    INFO(name);
    CHECK(listed);
  }
}

TEST_CASE("the policy file must exist and is resolved against the config's directory",
          "[config][files]") {
  ConfigDir d;
  fs::remove(d.dir() / "policy.xml");
  const ConfigError e = load_error(d.copy_of(kCorpus + "valid-minimal.xml"));
  CHECK(e.line() == 16);
  CHECK(e.column() == 3);
  CHECK_THAT(e.message(), Catch::StartsWith("<policy> file: expected a readable file, got '" +
                                            (d.dir() / "policy.xml").string() + "'"));
}

TEST_CASE("TLS files must exist and be readable", "[config][files]") {
  ConfigDir d;
  fs::remove(d.dir() / "pki" / "ca-high.pem");
  const ConfigError e = load_error(d.copy_of(kCorpus + "valid-minimal.xml"));
  CHECK(e.line() == 13);
  CHECK(e.column() == 5);
  CHECK_THAT(e.message(), Catch::StartsWith("<tls> ca: expected a readable file, got '" +
                                            (d.dir() / "pki" / "ca-high.pem").string() + "'"));
}

TEST_CASE("dialback secret: not world-readable, at least 16 bytes", "[config][files]") {
  ConfigDir d;
  std::string text = slurp(kCorpus + "valid-minimal.xml");
  text = replace_once(text, "ca=\"pki/ca-low.pem\"/>",
                      "ca=\"pki/ca-low.pem\"/>\n    <dialback secret-file=\"db.secret\"/>");
  const fs::path secret = d.dir() / "db.secret";

  SECTION("world-readable") {
    write(secret, "0123456789abcdef", fs::perms(0644));
    const ConfigError e = load_error(d.config(text));
    CHECK(e.line() == 8);
    CHECK(e.column() == 5);
    CHECK_THAT(e.message(), Catch::Contains("expected a file that is not world-readable"));
    CHECK_THAT(e.message(), Catch::Contains("mode 0644"));
  }
  SECTION("too short") {
    write(secret, "0123456789abcde", fs::perms(0600));
    const ConfigError e = load_error(d.config(text));
    CHECK(e.line() == 8);
    CHECK_THAT(e.message(), Catch::Contains("expected a secret of at least 16 bytes, got 15 bytes"));
  }
  SECTION("missing") {
    const ConfigError e = load_error(d.config(text));
    CHECK(e.line() == 8);
    CHECK_THAT(e.message(), Catch::Contains("secret-file: expected a readable file"));
  }
  SECTION("good") {
    write(secret, "0123456789abcdef", fs::perms(0600));
    CHECK(load_config(d.config(text), kSchemaDir).low.dialback_secret_file == secret.string());
  }
}

TEST_CASE("environment errors: missing file, missing schema, empty file", "[config]") {
  ConfigDir d;
  SECTION("missing config file") {
    const std::string path = (d.dir() / "nope.xml").string();
    const ConfigError e = load_error(path);
    CHECK(e.file() == path);
    CHECK_THAT(e.message(), Catch::Contains("cannot read config file"));
  }
  SECTION("schema dir without the schema") {
    try {
      load_config(d.copy_of(kCorpus + "valid-minimal.xml"), d.dir().string());
      FAIL("expected ConfigError");
    } catch (const ConfigError& e) {
      CHECK(e.file() == (d.dir() / "portcullis-config.xsd").string());
      CHECK_THAT(e.message(), Catch::Contains("schema file is missing"));
    }
  }
  SECTION("empty file") {
    const ConfigError e = load_error(d.config(""));
    CHECK(e.line() >= 1);
    CHECK_FALSE(e.message().empty());
  }
}

TEST_CASE("audit: settings, defaults and a private signing key", "[config][audit]") {
  ConfigDir d;
  const std::string text = slurp(kCorpus + "valid-minimal.xml");
  SECTION("defaults from the schema") {
    const Config c = load_config(d.config(text), kSchemaDir);
    CHECK(c.audit.enabled);
    CHECK(c.audit.dir == (d.dir() / "audit").string());
    CHECK(c.audit.signing_key_file == (d.dir() / "keys/audit.key").string());
    CHECK(c.audit.checkpoint_every_records == 1000);
    CHECK(c.audit.checkpoint_every_ms == 5000);
    CHECK(c.audit.stop_free_percent == 5);
    CHECK(c.audit.warn_free_percent == 20);
    CHECK_FALSE(c.audit.syslog_summary);
  }
  SECTION("a signing key readable by others is refused") {
    fs::permissions(d.dir() / "keys" / "audit.key", fs::perms(0640));
    const ConfigError e = load_error(d.config(text));
    CHECK(e.line() == 17);
    CHECK_THAT(e.message(), Catch::StartsWith("<audit> signing-key: expected a key readable only by its owner"));
    CHECK_THAT(e.message(), Catch::Contains("mode 0640"));
  }
  SECTION("stop threshold must be below the warning threshold") {
    const ConfigError e = load_error(d.config(replace_once(
        text, "public-key=\"keys/audit.pub\"", "public-key=\"keys/audit.pub\" warn-free-percent=\"5\" stop-free-percent=\"10\"")));
    CHECK(e.line() == 17);
    CHECK_THAT(e.message(), Catch::Contains("expected stop-free-percent below warn-free-percent, got 10 >= 5"));
  }
}

TEST_CASE("guards: per direction, in order, names unique, programs executable", "[config][guards]") {
  ConfigDir d;
  write(d.dir() / "strict.xsd", "dummy\n");
  write(d.dir() / "guard.sh", "#!/bin/sh\n", fs::perms(0755));
  write(d.dir() / "not-exec.sh", "#!/bin/sh\n", fs::perms(0644));
  const std::string base = slurp(kCorpus + "valid-minimal.xml");
  auto with_guards = [&](const std::string& guards) {
    // These stages all guard low->high: that direction needs no waiver.
    const std::string waiver =
        "<waiver of=\"no-guard-stage\" direction=\"low-to-high\" reason=\"config loader test: no guard stage\"/>";
    return replace_once(replace_once(base, waiver, ""), "public-key=\"keys/audit.pub\"/>",
                        "public-key=\"keys/audit.pub\"/>\n" + guards);
  };
  SECTION("a good guard stage") {
    const Config c = load_config(d.config(with_guards(
        "  <guards>\n    <direction from=\"low\" to=\"high\">\n      <schema name=\"profile\" profile=\"strict.xsd\"/>\n"
        "      <external name=\"ext\" program=\"guard.sh\" timeout-ms=\"500\"><arg>--strict</arg></external>\n"
        "    </direction>\n  </guards>")), kSchemaDir);
    REQUIRE(c.guards.low_to_high.size() == 2);
    CHECK(c.guards.high_to_low.empty());
    CHECK(c.guards.low_to_high[0].kind == portcullis::config::GuardSpec::Kind::Schema);
    CHECK(c.guards.low_to_high[0].profile == (d.dir() / "strict.xsd").string());
    CHECK(c.guards.low_to_high[1].kind == portcullis::config::GuardSpec::Kind::External);
    CHECK(c.guards.low_to_high[1].timeout_ms == 500);
    CHECK(c.guards.low_to_high[1].args == std::vector<std::string>{"--strict"});
  }
  SECTION("a program that is not executable") {
    const ConfigError e = load_error(d.config(with_guards(
        "  <guards>\n    <direction from=\"low\" to=\"high\">\n      <external name=\"ext\" program=\"not-exec.sh\"/>\n"
        "    </direction>\n  </guards>")));
    CHECK(e.line() == 20);
    CHECK_THAT(e.message(), Catch::StartsWith("<external> program: expected an executable file"));
  }
  SECTION("a duplicate name") {
    const ConfigError e = load_error(d.config(with_guards(
        "  <guards>\n    <direction from=\"low\" to=\"high\">\n      <schema name=\"g\" profile=\"strict.xsd\"/>\n"
        "      <schema name=\"g\" profile=\"strict.xsd\"/>\n    </direction>\n  </guards>")));
    CHECK(e.line() == 21);
    CHECK_THAT(e.message(), Catch::Contains("expected a name unique in its direction, got 'g' again"));
  }
  SECTION("a direction twice") {
    const ConfigError e = load_error(d.config(with_guards(
        "  <guards>\n    <direction from=\"high\" to=\"low\"/>\n    <direction from=\"high\" to=\"low\"/>\n  </guards>")));
    CHECK(e.line() == 20);
    CHECK_THAT(e.message(), Catch::Contains("expected each direction once"));
  }
}

TEST_CASE("supervision: separated by default, with three distinct existing users other than root",
          "[config][privsep]") {
  ConfigDir d;
  const std::string base = slurp(kCorpus + "valid-minimal.xml");
  auto with = [&](const std::string& attrs) {
    return replace_once(base, "<supervision mode=\"single-user-development\"/>", "<supervision " + attrs + "/>");
  };
  SECTION("single-user-development is what the corpus says") {
    const Config c = load_config(d.copy_of(kCorpus + "valid-minimal.xml"), kSchemaDir);
    CHECK(c.supervision.mode == portcullis::config::SupervisionMode::SingleUserDevelopment);
  }
  SECTION("no mode means separated, whose users must exist") {
    const ConfigError e = load_error(d.config(with("low-edge-user=\"pc-no-such-user\"")));
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("low-edge-user: expected an existing user, got 'pc-no-such-user'"));
  }
  SECTION("an edge does not resolve users (only the appliance does)") {
    const Config c = load_config(d.config(with("restart-backoff-ms=\"500\"")), kSchemaDir,
                                 portcullis::config::LoadFor::EdgeLow);
    CHECK(c.supervision.mode == portcullis::config::SupervisionMode::Separated);
    CHECK(c.supervision.low_edge.name == "portcullis-low");
    CHECK(c.supervision.filter.name == "portcullis-filter");
  }
  SECTION("root is refused") {
    const ConfigError e = load_error(d.config(with("low-edge-user=\"root\"")));
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("low-edge-user: expected a user other than root"));
  }
  SECTION("one user twice is refused") {
    const ConfigError e = load_error(
        d.config(with("low-edge-user=\"nobody\" high-edge-user=\"nobody\" filter-user=\"daemon\"")));
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("expected three distinct users"));
  }
  SECTION("an unknown mode is a schema error") {
    const ConfigError e = load_error(d.config(with("mode=\"trust-me\"")));
    CHECK(e.line() == 3);
  }
}

TEST_CASE("control: off unless configured; its socket path, group and who may not be in it", "[config][control]") {
  ConfigDir d;
  const std::string base = slurp(kCorpus + "valid-minimal.xml");
  const std::string sup = "<supervision mode=\"single-user-development\"/>";
  auto with = [&](const std::string& control) { return replace_once(base, sup, sup + control); };
  SECTION("absent: no control socket") {
    const Config c = load_config(d.copy_of(kCorpus + "valid-minimal.xml"), kSchemaDir);
    CHECK_FALSE(c.control.enabled);
  }
  SECTION("defaults, and a relative path resolved against the config's directory") {
    const Config c = load_config(d.config(with("<control/>")), kSchemaDir);
    CHECK(c.control.enabled);
    CHECK(c.control.socket == "/run/portcullis/control");
    CHECK(c.control.group.empty());
    const Config r = load_config(d.config(with("<control socket=\"run/ctl.sock\" group=\"root\"/>")), kSchemaDir);
    CHECK(r.control.socket == (d.dir() / "run/ctl.sock").string());
    CHECK(r.control.gid == 0);
  }
  SECTION("a group that does not exist is refused at its position") {
    const ConfigError e = load_error(d.config(with("<control group=\"pc-no-such-group\"/>")));
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("<control> group: expected an existing group, got 'pc-no-such-group'"));
  }
  SECTION("a path too long for a Unix socket is refused") {
    const ConfigError e = load_error(d.config(with("<control socket=\"/" + std::string(120, 'x') + "\"/>")));
    CHECK(e.line() == 3);
    CHECK_THAT(e.message(), Catch::Contains("shorter than 108 bytes"));
  }
  SECTION("in separated mode, the group of a child is refused") {
    const std::string sep = replace_once(base, sup,
        "<supervision low-edge-user=\"nobody\" high-edge-user=\"daemon\" filter-user=\"bin\"/>"
        "<control group=\"daemon\"/>");
    const ConfigError e = load_error(d.config(sep));
    CHECK_THAT(e.message(), Catch::Contains("expected a group that no child runs as, got 'daemon'"));
  }
  SECTION("after <supervision> only (the schema's order)") {
    const ConfigError e = load_error(d.config(replace_once(base, sup, "<control/>" + sup)));
    INFO(e.what());
    CHECK_THAT(e.message(), Catch::Contains("supervision"));
  }
}
