// Preflight (guard/daemon/preflight): the files a config names are checked as
// the edges and the filter would use them, before any child starts.
#include <catch2/catch.hpp>
#include <ctime>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "guard/audit/keys.h"
#include "guard/daemon/preflight.h"
#include "test/unit/needs_root.h"
#include "test_pki.h"

using portcullis::config::Config;
using portcullis::config::ConfigError;
using portcullis::config::Side;
using portcullis::daemon::preflight;
using portcullis::net::test::pki;

namespace {

// The test PKI is made per build tree, valid for 10 years from then.
const std::time_t kNow = std::time(nullptr);
constexpr std::time_t kDay = 86400;

Side side(const std::string& name, const std::string& leaf, const std::string& ca, const std::string& front) {
  Side s;
  s.name = name;
  s.cert_file = pki(leaf + ".pem");
  s.key_file = pki(leaf + ".key");
  s.ca_file = pki(ca + ".pem");
  s.fronts = {front};
  s.tls_line = name == "low" ? 7 : 13;
  s.tls_column = 5;
  return s;
}

Config good() {
  Config c;
  c.file = "portcullis.xml";
  c.low = side("low", "guard-low", "ca-low", "b.test");
  c.high = side("high", "guard-high", "ca-high", "a.test");
  return c;
}

std::string refusal(const Config& c, std::time_t now = kNow, int* line = nullptr) {
  try {
    preflight(c, now);
  } catch (const ConfigError& e) {
    if (line != nullptr) *line = e.line();
    return e.what();
  }
  return "";
}

std::string refusal_with(const Config& c, const std::string& schema_dir) {
  try {
    preflight(c, kNow, schema_dir);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Days from kNow to the end of guard-low's validity, from the summary.
long days_left_low() {
  const auto r = preflight(good(), kNow);
  const std::string& s = r.summary.at(0);
  const auto at = s.find(" (");
  return std::stol(s.substr(at + 2));
}

}  // namespace

TEST_CASE("preflight: a good layout passes and says what it checked", "[preflight]") {
  const auto r = preflight(good(), kNow);
  REQUIRE(r.summary.size() == 2);
  CHECK_THAT(r.summary[0], Catch::StartsWith("side low: certificate names b.test, conference.b.test, rooms.low.test, rooms.site-b.test, valid until 20"));
  CHECK_THAT(r.summary[0], Catch::Contains("key matches; CA file 1 certificate(s)"));
  CHECK(r.warnings.empty());
}

TEST_CASE("preflight: what would make an edge fail at start is a config error with the <tls> position",
          "[preflight]") {
  int line = 0;
  SECTION("a key that does not match the certificate") {
    Config c = good();
    c.low.key_file = pki("guard-high.key");
    CHECK_THAT(refusal(c, kNow, &line), Catch::Contains("portcullis.xml:7:5: <tls> of side low: key '"));
    CHECK_THAT(refusal(c), Catch::Contains("does not match certificate"));
    CHECK(line == 7);
  }
  SECTION("a CA file that is a private key") {
    Config c = good();
    c.high.ca_file = pki("ca-high.key");
    CHECK_THAT(refusal(c, kNow, &line), Catch::Contains("holds a PRIVATE KEY, expected certificates only"));
    CHECK(line == 13);
  }
  SECTION("a certificate that does not name a domain the side presents") {
    Config c = good();
    c.low.fronts.push_back("c.test");
    CHECK_THAT(refusal(c), Catch::Contains("does not name 'c.test', a domain this server presents"));
  }
  SECTION("a certificate file that is not a certificate") {
    Config c = good();
    c.low.cert_file = pki("ca-low.crl");
    CHECK_THAT(refusal(c), Catch::Contains("is not a PEM certificate"));
  }
  SECTION("a CRL file that does not load (what the edge's TLS context would refuse)") {
    Config c = good();
    c.low.crl_file = pki("ca-low.pem");
    CHECK_THAT(refusal(c, kNow, &line), Catch::Contains("<tls> of side low: cannot load CRL file"));
    CHECK(line == 7);
  }
  SECTION("an expired certificate") {
    const long left = days_left_low();
    CHECK_THAT(refusal(good(), kNow + (left + 2) * kDay), Catch::Contains("expired on"));
  }
  SECTION("a certificate not yet valid") {
    CHECK_THAT(refusal(good(), kNow - 400 * kDay), Catch::Contains("is not valid before"));
  }
}

TEST_CASE("preflight: a certificate expiring within 30 days is a warning, not an error", "[preflight]") {
  const long left = days_left_low();
  const auto r = preflight(good(), kNow + (left - 10) * kDay);
  REQUIRE_FALSE(r.warnings.empty());
  CHECK_THAT(r.warnings[0], Catch::Contains("side low: certificate '"));
  CHECK_THAT(r.warnings[0], Catch::Contains("expires on"));
}

TEST_CASE("preflight: the audit key pair must match", "[preflight]") {
  const auto dir = std::filesystem::temp_directory_path() / ("portcullis-preflight-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  portcullis::audit::generate_key_pair((dir / "a.key").string(), (dir / "a.pub").string());
  portcullis::audit::generate_key_pair((dir / "b.key").string(), (dir / "b.pub").string());
  Config c = good();
  c.audit.enabled = true;
  c.audit.dir = (dir / "audit").string();
  c.audit.signing_key_file = (dir / "a.key").string();
  c.audit.public_key_file = (dir / "a.pub").string();
  c.audit.line = 17;
  c.audit.column = 3;
  const auto r = preflight(c, kNow);
  CHECK_THAT(r.summary.back(), Catch::StartsWith("audit: signing key matches public key, key id "));
  c.audit.public_key_file = (dir / "b.pub").string();
  int line = 0;
  CHECK_THAT(refusal(c, kNow, &line), Catch::Contains("does not match the signing key"));
  CHECK(line == 17);
  std::filesystem::remove_all(dir);
}

TEST_CASE("preflight (separated): files the policy names are the filter's to read and no service user's to change",
          "[preflight][privsep]") {
  PORTCULLIS_NEEDS_ROOT();
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("portcullis-preflight-policy-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  fs::copy(PORTCULLIS_SOURCE_DIR "/deploy/policies/strict-nato.xml", dir / "policy.xml");
  fs::copy(PORTCULLIS_SOURCE_DIR "/deploy/policies/spif", dir / "spif", fs::copy_options::recursive);
  Config c = good();
  c.policy_file = (dir / "policy.xml").string();
  c.supervision.mode = portcullis::config::SupervisionMode::Separated;
  c.supervision.low_edge = {"daemon", 1, 1};
  c.supervision.high_edge = {"bin", 2, 2};
  c.supervision.filter = {"sys", 3, 3};
  const std::string schemas = PORTCULLIS_SOURCE_DIR "/schemas";
  const auto r = preflight(c, kNow, schemas);
  CHECK_THAT(r.summary.back(), Catch::Contains("file(s) the policy names"));
  CHECK_THAT(r.summary.back(), Catch::StartsWith("separated: 6 file(s)"));
  SECTION("a SPIF owned by the filter's user: a compromised filter could redefine the labels") {
    REQUIRE(::chown((dir / "spif/nato.xml").c_str(), 3, 3) == 0);
    const std::string why = refusal_with(c, schemas);
    // The line of the policy's first <label-transform>, the element naming the SPIF.
    std::ifstream in(dir / "policy.xml");
    int line = 0, at = 0;
    for (std::string l; std::getline(in, l) && at == 0;)
      if (++line, l.find("<label-transform") != std::string::npos) at = line;
    REQUIRE(at > 0);
    CHECK_THAT(why, Catch::Contains((dir / "policy.xml").string() + ":" + std::to_string(at) + ":"));
    CHECK_THAT(why, Catch::Contains("from-spif"));
    CHECK_THAT(why, Catch::Contains("expected filter (user sys) NOT to be able to change it"));
  }
  SECTION("a SPIF the filter cannot read") {
    REQUIRE(::chmod((dir / "spif/national.xml").c_str(), 0600) == 0);
    CHECK_THAT(refusal_with(c, schemas), Catch::Contains("expected filter (user sys) to be able to read it"));
  }
  SECTION("not checked without the schema directory (the children's own loads)") {
    REQUIRE(::chown((dir / "spif/nato.xml").c_str(), 3, 3) == 0);
    CHECK_NOTHROW(preflight(c, kNow));
  }
  fs::remove_all(dir);
}

TEST_CASE("preflight: a certificate must name the room services the server hosts", "[preflight][fmuc]") {
  Config c = good();
  c.low.rooms.push_back({});
  c.low.rooms.back().domain = "rooms.nowhere.test";
  try {
    preflight(c, kNow);
    FAIL("expected a ConfigError for a hosted domain the certificate does not name");
  } catch (const portcullis::config::ConfigError& e) {
    CHECK_THAT(e.message(), Catch::Contains("<tls> of side low"));
    CHECK_THAT(e.message(), Catch::Contains("rooms.nowhere.test"));
  }
}
