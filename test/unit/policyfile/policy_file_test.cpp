// Tests for policy/policy_file: a good policy loads with its version and hash
// and builds the pipelines in the written order; every bad policy in
// test/corpus/policyfile/ fails at its exact line:column; the core filters read
// their settings (and rule-level shadow) from the policy file.
#include <openssl/evp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "guard/xmpp/element.h"
#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"
#include "policy/policy_explain.h"
#include "policy/policy_file.h"

using namespace portcullis;
using policy::Decision;
using policy::LoadedPolicy;
using policy::VerdictKind;

namespace {

namespace fs = std::filesystem;

const std::string kSchemaDir = PORTCULLIS_SOURCE_DIR "/schemas";
const std::string kCorpus = PORTCULLIS_SOURCE_DIR "/test/corpus/policyfile/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string sha256_of(const std::string& bytes) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  REQUIRE(EVP_Digest(bytes.data(), bytes.size(), d, &n, EVP_sha256(), nullptr) == 1);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", d[i]);
    hex += buf;
  }
  return hex;
}

LoadedPolicy load(const std::string& path) {
  return policy::load_policy(path, kSchemaDir, policy::builtin_filters());
}

config::ConfigError load_error(const std::string& path,
                               const policy::FilterRegistry& registry = policy::builtin_filters()) {
  try {
    policy::load_policy(path, kSchemaDir, registry);
  } catch (const config::ConfigError& e) {
    return e;
  }
  FAIL("expected a ConfigError from " << path);
  throw std::logic_error("unreachable");
}

xmpp::Element message(const char* from, const char* to) {
  xmpp::Element m("jabber:server", "message");
  m.set_attr("from", from);
  m.set_attr("to", to);
  m.set_attr("type", "chat");
  m.add_child("jabber:server", "body").add_text("hello");
  return m;
}

policy::StanzaContext from_peer(const char* peer, ipc::Direction dir = ipc::Direction::LowToHigh,
                                std::size_t wire_bytes = 200) {
  policy::StanzaContext ctx;
  ctx.direction = dir;
  ctx.peer_domain = peer;
  ctx.auth = ipc::AuthMethod::SaslExternal;
  ctx.peer_tls = true;
  ctx.wire_bytes = wire_bytes;
  return ctx;
}

// A temporary directory for policies written by a test.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() /
           ("portcullis-policyfile-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }

 private:
  fs::path dir_;
};

}  // namespace

TEST_CASE("a good policy loads with its version, hash and pipelines in order", "[policyfile]") {
  const std::string path = kCorpus + "valid-full.xml";
  const LoadedPolicy p = load(path);
  CHECK(p.file == path);
  CHECK(p.version == "test-7");
  CHECK(p.sha256 == sha256_of(slurp(path)));
  CHECK(p.sha256.size() == 64);
  CHECK(p.id() == "test-7/" + p.sha256.substr(0, 12));
  REQUIRE(p.tree);
  CHECK(p.tree->name == "policy");

  const auto& l2h = p.pipelines.low_to_high.stages();
  REQUIRE(l2h.size() == 3);
  CHECK(l2h[0].filter->name() == "size");
  CHECK(l2h[0].filter->type() == policy::kTypeSizeLimit);
  CHECK_FALSE(l2h[0].shadow);
  CHECK(l2h[1].filter->name() == "size-trial");
  CHECK(l2h[1].shadow);
  CHECK(l2h[2].filter->name() == "pairs");
  CHECK(l2h[2].filter->type() == policy::kTypeDomainPairAllow);
  CHECK(dynamic_cast<const policy::SizeLimitFilter&>(*l2h[0].filter).max_bytes() == 4096);
  CHECK(dynamic_cast<const policy::SizeLimitFilter&>(*l2h[1].filter).max_bytes() == 1024);

  const auto& rules = dynamic_cast<const policy::DomainPairAllowFilter&>(*l2h[2].filter).rules();
  REQUIRE(rules.size() == 3);
  CHECK(rules[0].id == "trial-c");
  CHECK(rules[0].from_pattern == "a.test");   // normalized to lower case
  CHECK(rules[0].shadow);
  CHECK(rules[1].id == "a-b");
  CHECK_FALSE(rules[1].shadow);
  CHECK(rules[2].to_pattern == "*.b.test");

  REQUIRE(p.pipelines.high_to_low.size() == 1);
}

TEST_CASE("the hash changes with any byte of the file, the version is the officer's", "[policyfile]") {
  TempDir d;
  std::string text = slurp(kCorpus + "valid-full.xml");
  const LoadedPolicy a = load(d.write("a.xml", text));
  const LoadedPolicy b = load(d.write("b.xml", text + "\n"));
  CHECK(a.version == b.version);
  CHECK(a.sha256 != b.sha256);
  CHECK(b.sha256 == sha256_of(text + "\n"));
}

TEST_CASE("policy pipelines decide: allowed pair released, others default-denied", "[policyfile]") {
  const LoadedPolicy p = load(kCorpus + "valid-full.xml");

  SECTION("allowed pair: accepted by its rule; the shadow size limit is recorded, not enforced") {
    auto m = message("alice@a.test/r", "bob@b.test");
    const Decision d = p.pipelines.low_to_high.run(m, from_peer("a.test", ipc::Direction::LowToHigh, 2000));
    CHECK(d.release);
    CHECK(d.final_verdict.rule_id == "a-b");
    REQUIRE(d.trail.size() == 3);
    CHECK(d.trail[0].verdict.kind == VerdictKind::NoOpinion);
    CHECK(d.trail[1].shadow);
    CHECK(d.trail[1].verdict.kind == VerdictKind::Reject);   // would have refused 2000 > 1024
    CHECK(d.trail[2].verdict.kind == VerdictKind::Accept);
  }
  SECTION("a shadow rule that matches records a note and does not accept") {
    auto m = message("alice@a.test/r", "carol@c.test");
    const Decision d = p.pipelines.low_to_high.run(m, from_peer("a.test"));
    CHECK_FALSE(d.release);
    CHECK(d.final_verdict.rule_id == "default-deny");
    REQUIRE(d.trail.size() == 3);
    CHECK(d.trail[2].verdict.kind == VerdictKind::NoOpinion);
    REQUIRE(d.trail[2].verdict.notes.size() == 1);
    CHECK(d.trail[2].verdict.notes[0].first == "shadow-match");
    CHECK(d.trail[2].verdict.notes[0].second == "trial-c");
  }
  SECTION("oversized: the enforced size limit refuses first") {
    auto m = message("alice@a.test/r", "bob@b.test");
    const Decision d = p.pipelines.low_to_high.run(m, from_peer("a.test", ipc::Direction::LowToHigh, 5000));
    CHECK_FALSE(d.release);
    CHECK(d.final_verdict.rule_id == "max-stanza-bytes");
    CHECK(d.trail.size() == 1);
  }
  SECTION("the other direction has its own rules") {
    auto m = message("bob@b.test/r", "alice@a.test");
    CHECK(p.pipelines.high_to_low.run(m, from_peer("b.test", ipc::Direction::HighToLow)).release);
  }
}

TEST_CASE("a policy with empty directions denies everything", "[policyfile]") {
  const LoadedPolicy p = load(kCorpus + "valid-empty-directions.xml");
  CHECK(p.pipelines.low_to_high.size() == 0);
  CHECK(p.pipelines.high_to_low.size() == 0);
  auto m = message("alice@a.test/r", "bob@b.test");
  const Decision d = p.pipelines.low_to_high.run(m, from_peer("a.test"));
  CHECK_FALSE(d.release);
  CHECK(d.final_verdict.rule_id == "default-deny");
}

TEST_CASE("schema location hints in a policy are ignored: nothing is fetched", "[policyfile][hostile]") {
  const LoadedPolicy p = load(kCorpus + "ignored-schema-hint.xml");
  CHECK(p.version == "hint");
  CHECK(p.pipelines.low_to_high.size() == 1);
}

namespace {

struct BadPolicy {
  const char* file;
  int line, column;
  const char* message_part;
};

// Schema and well-formedness errors carry Xerces's position (the offending
// character, or the end of the offending start tag); meaning errors point at
// the '<' of the element concerned.
const BadPolicy kBadPolicies[] = {
    {"not-well-formed.xml", 6, 5, "expected end of tag 'direction'"},
    {"unknown-filter.xml", 6, 33,
     "<regex-filter>: no declaration found for element 'regex-filter' (a filter is one of: "},
    {"missing-name.xml", 5, 36, "<size-limit>: missing required attribute 'name'"},
    {"duplicate-name.xml", 6, 5,
     "<domain-pair-allow> name: expected a filter name unique in this direction, got 'check' a "
     "second time (first at line 5)"},
    {"bad-attribute.xml", 5, 47, "<size-limit> max-bytes: value 'lots' does not match"},
    {"unknown-attribute.xml", 5, 67,
     "<size-limit>: attribute 'max-kilobytes' is not declared for element 'size-limit'"},
    {"doctype.xml", 3, 1,
     "expected the <policy> element, got a DOCTYPE declaration (DTDs are not allowed)"},
    {"same-direction-twice.xml", 7, 3,
     "<direction>: expected each direction once, got 'low' -> 'high' a second time (first at line "
     "4)"},
    {"direction-to-itself.xml", 5, 3,
     "<direction>: expected from and to to name different sides, got 'high' -> 'high'"},
    {"bad-domain-pattern.xml", 7, 7,
     "<allow> from: expected a domain pattern ('example.org' or '*.example.org'), got 'a..test'"},
    {"duplicate-rule-id.xml", 7, 7,
     "<allow> id: expected a rule id unique in <domain-pair-allow name='pairs'>, got 'r1' a second "
     "time"},
    {"missing-version.xml", 3, 41, "<policy>: missing required attribute 'version'"},
    {"wrong-root.xml", 3, 1, "expected the <policy> element, got <size-limit>"},
    {"wrong-namespace.xml", 3, 54, "grammar not found for namespace 'urn:portcullis:config:1'"},
    // The 60 lone CRs in the comment on line 2 are 60 line ends (XML 1.0 §2.11), so the
    // stray text that starts the fourth LF-terminated line ends at <size-limit> on line 65.
    {"lone-carriage-returns.xml", 65, 5, "no character data is allowed by content model"},
};

}  // namespace

TEST_CASE("every bad policy fails at its exact position", "[policyfile][corpus]") {
  for (const BadPolicy& bad : kBadPolicies) {
    SECTION(bad.file) {
      const std::string path = kCorpus + bad.file;
      const config::ConfigError e = load_error(path);
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

TEST_CASE("the policy corpus has an expectation for every bad policy", "[policyfile][corpus]") {
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("valid-", 0) == 0 || name.rfind("ignored-", 0) == 0) continue;
    bool listed = false;
    for (const BadPolicy& bad : kBadPolicies) listed = listed || name == bad.file;
    INFO(name);
    CHECK(listed);
  }
}

TEST_CASE("a filter element the schema knows but the registry does not fails at the element",
          "[policyfile]") {
  // A registry without domain_pair_allow: as if a fragment declared an
  // element whose factory was never registered.
  policy::FilterRegistry partial;
  partial.add(std::string(policy::kTypeSizeLimit), policy::make_size_limit_filter);
  const config::ConfigError e = load_error(kCorpus + "valid-full.xml", partial);
  CHECK(e.line() == 7);
  CHECK(e.column() == 5);
  CHECK_THAT(e.message(), Catch::Contains("expected a known filter type, got 'domain_pair_allow'"));
}

TEST_CASE("a factory that throws something else still stops the load at its element",
          "[policyfile]") {
  policy::FilterRegistry r = policy::builtin_filters();
  r.replace(std::string(policy::kTypeSizeLimit),
            [](const policy::FilterSpec&) -> std::shared_ptr<const policy::Filter> {
              throw std::runtime_error("out of cheese");
            });
  const config::ConfigError e = load_error(kCorpus + "valid-full.xml", r);
  CHECK(e.line() == 5);
  CHECK(e.column() == 5);
  CHECK_THAT(e.message(), Catch::Contains("<size-limit name='size'>: cannot build the filter: out of cheese"));
}

TEST_CASE("factories get the element, direction and position", "[policyfile]") {
  policy::FilterRegistry r = policy::builtin_filters();
  std::vector<policy::FilterSpec> seen;
  r.replace(std::string(policy::kTypeSizeLimit), [&seen](const policy::FilterSpec& spec) {
    seen.push_back(spec);
    return policy::make_size_limit_filter(spec);
  });
  const LoadedPolicy p = policy::load_policy(kCorpus + "valid-full.xml", kSchemaDir, r);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].name == "size");
  CHECK(seen[0].type == "size_limit");
  CHECK(seen[0].direction == ipc::Direction::LowToHigh);
  CHECK(seen[0].file == kCorpus + "valid-full.xml");
  CHECK(seen[0].line == 5);
  CHECK(seen[0].column == 5);
  REQUIRE(seen[0].node != nullptr);
  CHECK(seen[0].node->at("max-bytes") == "4096");
  CHECK_FALSE(seen[0].shadow);
  CHECK(seen[1].shadow);
}

TEST_CASE("environment errors: missing policy file, missing schema", "[policyfile]") {
  TempDir d;
  SECTION("missing file") {
    const config::ConfigError e = load_error(PORTCULLIS_SOURCE_DIR "/test/corpus/policyfile/nope.xml");
    CHECK_THAT(e.message(), Catch::Contains("cannot read policy file"));
  }
  SECTION("schema dir without the policy schema") {
    try {
      policy::load_policy(kCorpus + "valid-full.xml", "/nonexistent", policy::builtin_filters());
      FAIL("expected ConfigError");
    } catch (const config::ConfigError& e) {
      CHECK(e.file() == "/nonexistent/policy/policy.xsd");
      CHECK_THAT(e.message(), Catch::Contains("schema file is missing"));
    }
  }
  SECTION("relative path: made absolute") {
    const std::string path = d.write("p.xml", slurp(kCorpus + "valid-empty-directions.xml"));
    const auto cwd = fs::current_path();
    fs::current_path(fs::path(path).parent_path());
    const LoadedPolicy p = load("p.xml");
    fs::current_path(cwd);
    CHECK(p.file == path);
    CHECK(p.tree->file == path);
  }
}

TEST_CASE("explain: the report names every filter, the outcome and the released stanza",
          "[policyfile][explain]") {
  const LoadedPolicy p = load(kCorpus + "valid-full.xml");
  SECTION("released") {
    xmpp::Element m = policy::parse_stanza_text(
        "<?xml version='1.0'?>\n<message from='alice@a.test/r' to='bob@b.test' type='chat'>"
        "<body>hi</body></message>\n");
    CHECK(m.ns() == "jabber:server");
    std::ostringstream out;
    const Decision d = policy::explain_stanza(p, m, from_peer("a.test"), out);
    CHECK(d.release);
    const std::string r = out.str();
    INFO(r);
    CHECK_THAT(r, Catch::Contains("policy test-7 sha256 " + p.sha256));
    CHECK_THAT(r, Catch::Contains("  1. size (size_limit): no-opinion\n"));
    CHECK_THAT(r, Catch::Contains("  2. size-trial (size_limit): no-opinion, SHADOW (recorded, not enforced)\n"));
    CHECK_THAT(r, Catch::Contains("  3. pairs (domain_pair_allow): accept, rule a-b\n"));
    CHECK_THAT(r, Catch::Contains("outcome: RELEASED by pairs, rule a-b\n"));
    CHECK_THAT(r, Catch::Contains("<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test'"));
  }
  SECTION("rejected with the error and the shadow note") {
    xmpp::Element m = policy::parse_stanza_text(
        "<message xmlns='jabber:server' from='alice@a.test/r' to='carol@c.test'/>");
    std::ostringstream out;
    CHECK_FALSE(policy::explain_stanza(p, m, from_peer("a.test"), out).release);
    const std::string r = out.str();
    INFO(r);
    CHECK_THAT(r, Catch::Contains("       note shadow-match = trial-c\n"));
    CHECK_THAT(r, Catch::Contains("outcome: REJECTED by the default deny (no filter accepted the stanza)\n"));
    CHECK_THAT(r, Catch::Contains("error to the sender: policy-violation"));
  }
  SECTION("not a stanza") {
    CHECK_THROWS_AS(policy::parse_stanza_text("<message"), std::runtime_error);
    CHECK_THROWS_AS(policy::parse_stanza_text(""), std::runtime_error);
  }
}
