// Separated mode's start checks: what each process's user can and cannot
// read (guard/config/access), and the fail-closed guard-stage rules with their
// waivers. The file-ownership cases need root (chown); CI runs as root.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "guard/config/access.h"
#include "guard/config/config.h"
#include "test/unit/needs_root.h"

namespace fs = std::filesystem;
using portcullis::config::access_denied;
using portcullis::config::ConfigError;
using portcullis::config::kRead;
using portcullis::config::kSearch;
using portcullis::config::kWrite;
using portcullis::config::load_config;
using portcullis::config::reach_denied;
using portcullis::config::tamper_possible;

namespace {

const std::string kSchemaDir = PORTCULLIS_SOURCE_DIR "/schemas";

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("portcullis-sep-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_);
    fs::permissions(dir_, fs::perms(0755));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path operator/(const std::string& p) const { return dir_ / p; }
  const fs::path& path() const { return dir_; }

 private:
  fs::path dir_;
};

void put(const fs::path& p, const std::string& text, unsigned mode, uid_t uid = 0, gid_t gid = 0) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  REQUIRE(::chmod(p.c_str(), mode) == 0);
  REQUIRE(::chown(p.c_str(), uid, gid) == 0);
}

// Debian's base system users (passwd entries on every Debian machine).
constexpr uid_t kLow = 1, kHigh = 2, kFilter = 3;   // daemon, bin, sys

// A separated config whose files are owned as an installed appliance's would be.
struct Appliance {
  TempDir d;
  std::string config;
  Appliance(const std::string& extra_top = "", const std::string& tail = "") {
    put(d / "pki/guard-low.pem", "cert\n", 0644);
    put(d / "pki/ca-low.pem", "ca\n", 0644);
    put(d / "pki/guard-low.key", "key\n", 0600, kLow, kLow);
    put(d / "pki/guard-high.pem", "cert\n", 0644);
    put(d / "pki/ca-high.pem", "ca\n", 0644);
    put(d / "pki/guard-high.key", "key\n", 0600, kHigh, kHigh);
    put(d / "keys/audit.key", "key\n", 0600, kFilter, kFilter);
    put(d / "keys/audit.pub", "pub\n", 0644);
    put(d / "policy.xml", "policy\n", 0644);
    put(d / "broad.xsd", "xsd\n", 0644);
    const std::string guards = tail.empty() ? R"(  <guards>
    <direction from="low" to="high"><schema name="profile" profile="broad.xsd"/></direction>
    <direction from="high" to="low"><schema name="profile" profile="broad.xsd"/></direction>
  </guards>
)" : tail;
    config = (d / "portcullis.xml").string();
    put(config, R"(<?xml version="1.0" encoding="UTF-8"?>
<portcullis xmlns="urn:portcullis:config:1">
  <supervision low-edge-user="daemon" high-edge-user="bin" filter-user="sys")" + extra_top + R"(/>
  <side name="low">
    <listen address="127.0.0.4" port="5269"/>
    <fronts domain="b.test"/>
    <tls certificate="pki/guard-low.pem" key="pki/guard-low.key" ca="pki/ca-low.pem"/>
    <peer domain="a.test" host="127.0.0.2"/>
  </side>
  <side name="high">
    <listen address="127.0.0.6" port="5269"/>
    <fronts domain="a.test"/>
    <tls certificate="pki/guard-high.pem" key="pki/guard-high.key" ca="pki/ca-high.pem"/>
    <peer domain="b.test" host="127.0.0.3"/>
  </side>
  <policy file="policy.xml"/>
  <audit dir="audit" signing-key="keys/audit.key" public-key="keys/audit.pub"/>
)" + guards + "</portcullis>\n",
        0644);
  }
  // Replaces `from` (which must be in the config) with `to`.
  void edit(const std::string& from, const std::string& to) const {
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    std::ofstream(config, std::ios::binary | std::ios::trunc) << text;
  }
  // Loading fails with ConfigError at `line`, its message holding each of `parts`.
  void expect_refused(int line, std::initializer_list<std::string> parts) const {
    const ConfigError e = error();
    CHECK(e.line() == line);
    for (const std::string& part : parts) CHECK_THAT(e.message(), Catch::Contains(part));
  }
  ConfigError error() const {
    try {
      load_config(config, kSchemaDir);
    } catch (const ConfigError& e) {
      return e;
    }
    FAIL("expected a ConfigError");
    throw std::logic_error("unreachable");
  }
};

}  // namespace

TEST_CASE("access_denied follows owner, group and other bits down the whole path", "[config][access]") {
  PORTCULLIS_NEEDS_ROOT();
  TempDir d;
  put(d / "open/file", "x\n", 0600, 61001, 61001);
  CHECK_FALSE(access_denied((d / "open/file").string(), 61001, 61001, kRead));
  const auto other = access_denied((d / "open/file").string(), 61002, 61002, kRead);
  REQUIRE(other);
  CHECK_THAT(*other, Catch::Contains("open/file: no read permission"));
  // Group bits count for the primary gid.
  put(d / "open/group", "x\n", 0640, 0, 61002);
  CHECK_FALSE(access_denied((d / "open/group").string(), 61002, 61002, kRead));
  CHECK(access_denied((d / "open/group").string(), 61002, 61002, kRead | kWrite));
  // A 0700 directory above the file stops everyone but its owner.
  fs::create_directories(d / "closed");
  REQUIRE(::chmod((d / "closed").c_str(), 0700) == 0);
  put(d / "closed/file", "x\n", 0644);
  const auto closed = access_denied((d / "closed/file").string(), 61001, 61001, kRead);
  REQUIRE(closed);
  CHECK_THAT(*closed, Catch::Contains("closed: no search permission"));
  // Symlinks are followed to what they name.
  fs::create_symlink(d / "closed/file", d / "link");
  CHECK(access_denied((d / "link").string(), 61001, 61001, kRead));
  CHECK(*access_denied((d / "missing").string(), 61001, 61001, kRead) == (d / "missing").string() + ": does not exist");
  // A directory that does not exist yet: reachable when its existing parents are searchable.
  CHECK_FALSE(reach_denied((d / "open/new/archive").string(), 61001, 61001));
  CHECK(reach_denied((d / "closed/new/archive").string(), 61001, 61001));
}

TEST_CASE("separated mode: each user can read what its process needs and nothing it must not",
          "[config][privsep][access]") {
  PORTCULLIS_NEEDS_ROOT();
  SECTION("an appliance laid out right loads") {
    Appliance a;
    const auto c = load_config(a.config, kSchemaDir);
    CHECK(c.supervision.mode == portcullis::config::SupervisionMode::Separated);
    CHECK(c.supervision.low_edge.uid == kLow);
    CHECK(c.supervision.high_edge.uid == kHigh);
    CHECK(c.supervision.filter.uid == kFilter);
  }
  SECTION("the high side's key readable by everyone: edge(low) could read it") {
    Appliance a;
    REQUIRE(::chmod((a.d / "pki/guard-high.key").c_str(), 0644) == 0);
    a.expect_refused(13, {"side high's key", "edge(low) (user daemon) NOT to be able to read"});
  }
  SECTION("the low side's key owned by the filter's user: edge(low) cannot read it") {
    Appliance a;
    REQUIRE(::chown((a.d / "pki/guard-low.key").c_str(), kFilter, kFilter) == 0);
    a.expect_refused(7, {"expected edge(low) (user daemon) to be able to read"});
  }
  SECTION("the signing key group-readable by an edge's group") {
    Appliance a;
    REQUIRE(::chown((a.d / "keys/audit.key").c_str(), kFilter, kHigh) == 0);
    // Owner-only modes are required first (that check is the loader's own).
    REQUIRE(::chmod((a.d / "keys/audit.key").c_str(), 0640) == 0);
    CHECK_THAT(a.error().message(), Catch::Contains("readable only by its owner"));
  }
  SECTION("the signing key owned by root: the filter cannot read it") {
    Appliance a;
    REQUIRE(::chown((a.d / "keys/audit.key").c_str(), 0, 0) == 0);
    a.expect_refused(17, {"the audit signing key", "filter (user sys) to be able to read"});
  }
  SECTION("an existing archive directory the filter cannot write") {
    Appliance a;
    fs::create_directories(a.d / "audit");
    REQUIRE(::chmod((a.d / "audit").c_str(), 0755) == 0);
    a.expect_refused(17, {"the archive directory", "filter (user sys) to be able to read, write and enter"});
  }
  SECTION("an archive directory the edges can enter") {
    Appliance a;
    fs::create_directories(a.d / "audit");
    REQUIRE(::chown((a.d / "audit").c_str(), kFilter, kFilter) == 0);
    REQUIRE(::chmod((a.d / "audit").c_str(), 0755) == 0);
    CHECK_THAT(a.error().message(), Catch::Contains("edge(low) (user daemon) NOT to be able to read"));
    REQUIRE(::chmod((a.d / "audit").c_str(), 0700) == 0);
    CHECK_NOTHROW(load_config(a.config, kSchemaDir));
  }
  SECTION("a config directory closed to the edges") {
    Appliance a;
    REQUIRE(::chmod(a.d.path().c_str(), 0700) == 0);
    a.expect_refused(2, {"the config file", "no search permission"});
  }
  SECTION("run-as-user cannot work in separated mode") {
    put(fs::temp_directory_path() / "portcullis-sep-guard.sh", "#!/bin/sh\n", 0755);
    Appliance a("", R"(  <guards>
    <direction from="low" to="high"><external name="ext" program="/tmp/portcullis-sep-guard.sh" run-as-user="nobody"/></direction>
    <direction from="high" to="low"><schema name="profile" profile="broad.xsd"/></direction>
  </guards>
)");
    a.expect_refused(19, {"run-as-user: expected none in separated mode"});
  }
}

TEST_CASE("fail closed at start: a direction without a guard stage needs a waiver", "[config][waivers]") {
  PORTCULLIS_NEEDS_ROOT();   // the fixture chowns its files
  const std::string single = " mode=\"single-user-development\"";
  SECTION("no guards, no waiver") {
    Appliance a(single, "");
    // No <guards> at all: the tail must be empty, not the default stages.
    std::string text;
    {
      std::ifstream in(a.config);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto from = text.find("  <guards>");
    text.erase(from, text.find("</portcullis>") - from);
    std::ofstream(a.config) << text;
    a.expect_refused(2, {"direction low-to-high has no guard stage", "<waiver of='no-guard-stage' direction='low-to-high'"});
  }
  SECTION("one direction guarded, the other waived") {
    Appliance a(single, R"(  <guards>
    <direction from="low" to="high"><schema name="profile" profile="broad.xsd"/></direction>
  </guards>
  <waivers><waiver of="no-guard-stage" direction="high-to-low" reason="trial: high to low carries only receipts"/></waivers>
)");
    const auto c = load_config(a.config, kSchemaDir);
    REQUIRE(c.waivers.size() == 1);
    CHECK(c.waivers[0].direction == "high-to-low");
    CHECK(c.waivers[0].reason == "trial: high to low carries only receipts");
    CHECK(c.waivers[0].line == 21);
  }
  SECTION("a waiver for a direction that has a guard stage is stale") {
    Appliance a(single, R"(  <guards>
    <direction from="low" to="high"><schema name="profile" profile="broad.xsd"/></direction>
  </guards>
  <waivers><waiver of="no-guard-stage" direction="low-to-high" reason="left over from a trial"/></waivers>
)");
    a.expect_refused(21, {"expected a direction without a guard stage"});
  }
  SECTION("an isolation waiver must name an external guard") {
    Appliance a(single, R"(  <guards>
    <direction from="low" to="high"><schema name="profile" profile="broad.xsd"/></direction>
    <direction from="high" to="low"><schema name="profile" profile="broad.xsd"/></direction>
  </guards>
  <waivers><waiver of="guard-isolation" guard="profile" reason="schema guards run in-process"/></waivers>
)");
    a.expect_refused(22, {"expected the name of an <external> guard"});
  }
  SECTION("a reason is required") {
    Appliance a(single, R"(  <guards>
    <direction from="low" to="high"><schema name="profile" profile="broad.xsd"/></direction>
  </guards>
  <waivers><waiver of="no-guard-stage" direction="high-to-low"/></waivers>
)");
    CHECK(a.error().line() == 21);
  }
}

TEST_CASE("separated mode: each listener names its address and admits its own side's hosts",
          "[config][privsep][listen]") {
  PORTCULLIS_NEEDS_ROOT();
  SECTION("by default a listener admits the side's peer hosts") {
    Appliance a;
    const auto c = load_config(a.config, kSchemaDir);
    REQUIRE(c.low.listen.size() == 1);
    CHECK(c.low.listen[0].from == std::vector<std::string>{"127.0.0.2"});
    CHECK(c.high.listen[0].from == std::vector<std::string>{"127.0.0.3"});
    CHECK(c.low.listen[0].interface.empty());
  }
  SECTION("from and interface as written") {
    Appliance a;
    a.edit(R"(<listen address="127.0.0.4" port="5269"/>)",
           R"(<listen address="127.0.0.4" port="5269" from="127.0.0.2 10.1.0.0/16 fd00::/8" interface="eth1"/>)");
    const auto c = load_config(a.config, kSchemaDir);
    CHECK(c.low.listen[0].from == std::vector<std::string>{"127.0.0.2", "10.1.0.0/16", "fd00::/8"});
    CHECK(c.low.listen[0].interface == "eth1");
  }
  SECTION("a wildcard listener (any spelling) would accept the other side's hosts too") {
    for (const std::string addr : {"0.0.0.0", "::", "0::0", "0:0:0:0:0:0:0:0", "::ffff:127.0.0.6"}) {
      Appliance a;
      a.edit(R"(<listen address="127.0.0.6" port="5269"/>)", R"(<listen address=")" + addr + R"(" port="5270"/>)");
      const ConfigError e = a.error();
      CHECK(e.line() == 11);
      CHECK(e.column() == 5);
      CHECK_THAT(e.message(), Catch::Contains("expected this side's own address in separated mode"));
      CHECK_THAT(e.message(), Catch::Contains("got the wildcard or IPv4-mapped '" + addr + "'"));
    }
  }
  SECTION("an IPv6 listener with only IPv4 hosts to admit admits no one") {
    Appliance a;
    a.edit(R"(<listen address="127.0.0.4" port="5269"/>)", R"(<listen address="::1" port="5269"/>)");
    a.expect_refused(5, {"expected at least one IPv6 address or prefix allowed to connect to ::1"});
  }
  SECTION("a from entry that is a name, or a prefix too long, is refused with its position") {
    for (const std::string bad : {"a.test", "127.0.0.0/33", "127.0.0.1/", "::1/129", "127.0.0.1/x"}) {
      Appliance a;
      a.edit(R"(<listen address="127.0.0.4" port="5269"/>)",
             R"(<listen address="127.0.0.4" port="5269" from="127.0.0.2 )" + bad + R"("/>)");
      a.expect_refused(5, {"got '" + bad + "'"});
    }
  }
  SECTION("single-user-development mode keeps a wildcard listener working") {
    Appliance a(R"( mode="single-user-development")");
    a.edit(R"(<listen address="127.0.0.6" port="5269"/>)", R"(<listen address="0.0.0.0" port="5270"/>)");
    CHECK_NOTHROW(load_config(a.config, kSchemaDir));
  }
}

TEST_CASE("tamper_possible: owned, writable, or below a directory the user can write", "[config][access]") {
  PORTCULLIS_NEEDS_ROOT();
  TempDir d;
  put(d / "conf/file", "x\n", 0644);
  REQUIRE(::chmod((d / "conf").c_str(), 0755) == 0);
  CHECK_FALSE(tamper_possible((d / "conf/file").string(), kLow, kLow));
  SECTION("the file owned by the user") {
    REQUIRE(::chown((d / "conf/file").c_str(), kLow, kLow) == 0);
    CHECK_THAT(*tamper_possible((d / "conf/file").string(), kLow, kLow), Catch::Contains("owned by that user"));
    CHECK_FALSE(tamper_possible((d / "conf/file").string(), kHigh, kHigh));
  }
  SECTION("the file writable by the user's group") {
    REQUIRE(::chown((d / "conf/file").c_str(), 0, kHigh) == 0);
    REQUIRE(::chmod((d / "conf/file").c_str(), 0664) == 0);
    CHECK_THAT(*tamper_possible((d / "conf/file").string(), kHigh, kHigh), Catch::Contains("writable by that user"));
  }
  SECTION("a directory above it writable by others: the file could be replaced") {
    REQUIRE(::chmod((d / "conf").c_str(), 0757) == 0);
    CHECK_THAT(*tamper_possible((d / "conf/file").string(), kFilter, kFilter),
               Catch::Contains("conf: writable by that user (it could replace file)"));
  }
  SECTION("a sticky directory: only the user's own entries are at risk") {
    REQUIRE(::chmod((d / "conf").c_str(), 01777) == 0);
    CHECK_FALSE(tamper_possible((d / "conf/file").string(), kFilter, kFilter));
    REQUIRE(::chown((d / "conf/file").c_str(), kFilter, kFilter) == 0);
    CHECK(tamper_possible((d / "conf/file").string(), kFilter, kFilter));
  }
  SECTION("through a symlink into a directory the user owns") {
    fs::create_directories(d / "theirs");
    put(d / "theirs/real", "x\n", 0644);
    REQUIRE(::chown((d / "theirs").c_str(), kFilter, kFilter) == 0);
    fs::create_symlink(d / "theirs/real", d / "conf/link");
    CHECK_THAT(*tamper_possible((d / "conf/link").string(), kFilter, kFilter), Catch::Contains("theirs: owned by that user"));
  }
  SECTION("through a chain of symlinks whose middle link sits in a directory others can write") {
    // conf/link -> mid/link2 -> safe/real: the written path and the final one
    // are root's, but whoever can write mid can re-point link2.
    fs::create_directories(d / "mid");
    fs::create_directories(d / "safe");
    put(d / "safe/real", "x\n", 0644);
    fs::create_symlink(d / "safe/real", d / "mid/link2");
    fs::create_symlink(d / "mid/link2", d / "conf/link");
    CHECK_FALSE(tamper_possible((d / "conf/link").string(), kFilter, kFilter));
    REQUIRE(::chmod((d / "mid").c_str(), 0757) == 0);
    CHECK_THAT(*tamper_possible((d / "conf/link").string(), kFilter, kFilter),
               Catch::Contains("mid: writable by that user (it could replace link2)"));
  }
}

TEST_CASE("separated mode: no service user can change what decides what the processes do",
          "[config][privsep][access]") {
  PORTCULLIS_NEEDS_ROOT();
  SECTION("the policy file owned by the filter's user: a compromised filter could rewrite its rules") {
    Appliance a;
    REQUIRE(::chown((a.d / "policy.xml").c_str(), kFilter, kFilter) == 0);
    a.expect_refused(16, {"the policy file", "expected filter (user sys) NOT to be able to change it"});
  }
  SECTION("the CA file writable by edge(high)'s group") {
    Appliance a;
    REQUIRE(::chown((a.d / "pki/ca-low.pem").c_str(), 0, kHigh) == 0);
    REQUIRE(::chmod((a.d / "pki/ca-low.pem").c_str(), 0664) == 0);
    a.expect_refused(7, {"CA file", "edge(high) (user bin) NOT to be able to change it"});
  }
  SECTION("the config's directory writable by everyone") {
    Appliance a;
    REQUIRE(::chmod(a.d.path().c_str(), 0777) == 0);
    a.expect_refused(2, {"the config file", "NOT to be able to change it"});
  }
  SECTION("edge(low)'s key in a directory edge(high) owns") {
    Appliance a;
    REQUIRE(::chown((a.d / "pki").c_str(), kHigh, kHigh) == 0);
    CHECK_THAT(a.error().message(), Catch::Contains("edge(high) (user bin) NOT to be able to change it"));
  }
  SECTION("a guard profile the filter owns") {
    Appliance a;
    REQUIRE(::chown((a.d / "broad.xsd").c_str(), kFilter, kFilter) == 0);
    a.expect_refused(19, {"the guard profile"});
  }
  SECTION("each edge may own its own key, the filter its signing key") {
    Appliance a;
    CHECK_NOTHROW(load_config(a.config, kSchemaDir));
  }
}
