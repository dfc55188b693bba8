// The portcullis-policy tool, run as the built binary: exit codes and the lines
// an officer reads.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace {

namespace fs = std::filesystem;

const std::string kTool = PORTCULLIS_BINARY_DIR "/tools/portcullis-policy";
const std::string kCorpus = PORTCULLIS_SOURCE_DIR "/test/corpus/policyfile/";
const std::string kDemoPolicySource = PORTCULLIS_SOURCE_DIR "/deploy/config/demo-policy.xml";

// The shipped demo policy, copied next to the pseudonym key it names
// (keys/pseudonym.key: a secret made per installation, never shipped).
const std::string& demo_policy() {
  static const std::string path = [] {
    const fs::path dir = fs::temp_directory_path() / ("portcullis-tool-test-" + std::to_string(::getpid()));
    fs::create_directories(dir / "keys");
    fs::copy_file(kDemoPolicySource, dir / "demo-policy.xml", fs::copy_options::overwrite_existing);
    { std::ofstream(dir / "keys" / "pseudonym.key") << "0123456789abcdef0123456789abcdef\n"; }
    fs::permissions(dir / "keys" / "pseudonym.key", fs::perms::owner_read | fs::perms::owner_write);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("portcullis-tool-test-" + std::to_string(::getpid())), ec);
    });
    return (dir / "demo-policy.xml").string();
  }();
  return path;
}

struct Run {
  int status = -1;
  std::string out;   // stdout and stderr together
};

// The built tool's default schema directory is the installed one
// (/usr/share/portcullis/schemas); run from the build tree, it is given this
// tree's, unless the case is about --schema-dir itself.
Run run(const std::string& args) {
  Run r;
  const bool takes_schemas = args.rfind("check ", 0) == 0 || args.rfind("explain ", 0) == 0;
  const std::string schemas = takes_schemas && args.find("--schema-dir") == std::string::npos
                                  ? " --schema-dir " PORTCULLIS_SOURCE_DIR "/schemas"
                                  : "";
  const std::string cmd = kTool + " " + args + schemas + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string count_lines(const std::string& s) { return std::to_string(std::count(s.begin(), s.end(), '\n')); }

class StanzaFile {
 public:
  explicit StanzaFile(const std::string& text) {
    std::random_device rd;
    path_ = (fs::temp_directory_path() /
             ("portcullis-tool-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()) + ".xml"))
                .string();
    std::ofstream(path_) << text;
  }
  ~StanzaFile() { std::remove(path_.c_str()); }
  StanzaFile(const StanzaFile&) = delete;
  StanzaFile& operator=(const StanzaFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST_CASE("check: a good policy prints OK with version, hash and filter counts", "[tool]") {
  const Run r = run("check " + kCorpus + "valid-full.xml");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Matches(kCorpus + "valid-full\\.xml: OK \\(version test-7, sha256 [0-9a-f]{64}, "
                                             "low->high: 3 filters, high->low: 1 filters\\)\n"));
}

TEST_CASE("check: the shipped example policies are good", "[tool]") {
  for (const std::string& f : {demo_policy(), std::string(PORTCULLIS_SOURCE_DIR "/deploy/policies/strict-nato.xml"),
                              std::string(PORTCULLIS_SOURCE_DIR "/deploy/policies/coalition-permissive.xml")}) {
    INFO(f);
    const Run r = run("check " + f);
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Catch::Contains(": OK (version "));
  }
}

TEST_CASE("check: a bad policy prints its error with the position and exits 1", "[tool]") {
  const Run r = run("check " + kCorpus + "duplicate-name.xml");
  CHECK(r.status == 1);
  CHECK(r.out == kCorpus +
                     "duplicate-name.xml:6:5: <domain-pair-allow> name: expected a filter name unique in "
                     "this direction, got 'check' a second time (first at line 5)\n");
}

TEST_CASE("check: --schema-dir is honoured", "[tool]") {
  const Run r = run("check " + kCorpus + "valid-full.xml --schema-dir /nonexistent");
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::StartsWith("/nonexistent/policy/policy.xsd:0:0: schema file is missing"));
}

TEST_CASE("explain: a released stanza, each filter's verdict in order", "[tool]") {
  StanzaFile s("<message from='alice@a.test/r' to='room@conference.b.test' type='groupchat'>"
               "<body>hi</body></message>\n");
  const Run r = run("explain " + demo_policy() + " " + s.path() + " --direction low-to-high");
  INFO(r.out);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Catch::Contains("direction low-to-high, peer a.test, auth sasl-external, tls yes, 5 filters\n"));
  CHECK_THAT(r.out, Catch::Contains("  1. size (size_limit): no-opinion\n"
                                    "  2. pseudonyms (fmuc-pseudonyms): no-opinion\n"
                                     "  3. presence (presence-scrub): no-opinion\n"
                                     "  4. rooms (room-federation): no-opinion\n"
                                     "  5. pairs (domain_pair_allow): accept, rule low-high-2\n"
                                    "outcome: RELEASED by pairs, rule low-high-2\n"));
  CHECK_THAT(r.out, Catch::Contains("released stanza (unchanged):\n<message xmlns='jabber:server' "
                                    "from='alice@a.test/r' to='room@conference.b.test' type='groupchat'>"
                                    "<body>hi</body></message>\n"));
}

TEST_CASE("explain: a rejected stanza shows the error the sender would get", "[tool]") {
  StanzaFile s("<message xmlns='jabber:server' from='eve@b.test/r' to='alice@a.test'><body>x</body></message>");
  const Run r = run("explain " + demo_policy() + " " + s.path() + " --direction low-to-high --peer a.test "
                    "--auth dialback --tls no");
  INFO(r.out);
  CHECK(r.status == 3);
  CHECK_THAT(r.out, Catch::Contains("peer a.test, auth dialback, tls no"));
  CHECK_THAT(r.out, Catch::Contains("  5. pairs (domain_pair_allow): reject, rule peer-mismatch\n"));
  CHECK_THAT(r.out, Catch::Contains("outcome: REJECTED by pairs, rule peer-mismatch\n"
                                    "error to the sender: forbidden (type auth)"));
}

TEST_CASE("bad usage: one readable line and a non-zero exit", "[tool]") {
  StanzaFile s("<message from='a@a.test' to='b@b.test'/>");
  for (const std::string& args :
       {std::string(""), std::string("frobnicate"), std::string("check"),
        "check " + demo_policy() + " --bogus x", "explain " + demo_policy() + " " + s.path(),
        "explain " + demo_policy() + " " + s.path() + " --direction sideways",
        "explain " + demo_policy() + " " + s.path() + " --direction low-to-high --auth password",
        "explain " + demo_policy() + " " + s.path() + " --direction low-to-high --tls maybe"}) {
    INFO(args);
    const Run r = run(args);
    INFO(r.out);
    CHECK(r.status == 2);
    CHECK(count_lines(r.out) == "1");
    CHECK_THAT(r.out, Catch::StartsWith("portcullis-policy: "));
  }
}

TEST_CASE("explain: a stanza file that is not a stanza is an error, not a crash", "[tool]") {
  StanzaFile s("<message from='a@a.test'");
  const Run r = run("explain " + demo_policy() + " " + s.path() + " --direction low-to-high");
  CHECK(r.status == 1);
  CHECK_THAT(r.out, Catch::StartsWith(s.path() + ": not a stanza: "));
  CHECK(count_lines(r.out) == "1");
}

TEST_CASE("explain: under the strict example policy a label inside <body> is refused, not defaulted", "[tool]") {
  StanzaFile s("<message xmlns='jabber:server' from='anna@nato.example/laptop' to='liaison@mod.example' type='chat'>"
               "<body>hidden<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>NATO SECRET</displaymarking>"
               "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQkCAQ4GBCoDBAI=</esssecuritylabel></label>"
               "</securitylabel></body></message>\n");
  const Run r = run("explain " + std::string(PORTCULLIS_SOURCE_DIR "/deploy/policies/strict-nato.xml") + " " + s.path() +
                    " --direction low-to-high --peer nato.example");
  INFO(r.out);
  CHECK_THAT(r.out, Catch::Contains("rule misplaced-label"));
  CHECK_THAT(r.out, Catch::Contains("outcome: REJECTED"));
}

namespace {

// explain under the shipped strict example policy, coalition -> national.
Run strict_explain(const std::string& stanza) {
  StanzaFile s(stanza + "\n");
  return run("explain " + std::string(PORTCULLIS_SOURCE_DIR "/deploy/policies/strict-nato.xml") + " " + s.path() +
             " --direction low-to-high --peer nato.example");
}

std::string nato_restricted_rel_gbr(const std::string& marking) {
  return "<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>" + marking + "</displaymarking><label>"
         "<originatorConfidentialityLabel xmlns='urn:nato:stanag:4774:confidentialitymetadatalabel:1:0'>"
         "<ConfidentialityInformation><PolicyIdentifier URI='urn:oid:1.2.3.4.2'>NATO</PolicyIdentifier>"
         "<Classification>RESTRICTED</Classification><Category TagName='Releasable To' Type='PERMISSIVE' "
         "URI='urn:oid:1.2.3.4.2.2'><GenericValue>GBR</GenericValue></Category></ConfidentialityInformation>"
         "<CreationDateTime>2024-05-01T12:00:00Z</CreationDateTime></originatorConfidentialityLabel></label>"
         "</securitylabel>";
}

}  // namespace

// Rule 4 of the strict policy: "the liaison desk, the watchkeeper and the
// operations room. Anyone else: forbidden." (4e lets the server itself through.)
TEST_CASE("strict example policy: only the listed national users, the room and the servers may be reached",
          "[tool][example-policy]") {
  auto chat_to = [](const std::string& to, const std::string& type = "chat") {
    return "<message xmlns='jabber:server' from='anna@nato.example/l' to='" + to + "' type='" + type +
           "'><body>x</body></message>";
  };
  for (const std::string& stranger : {std::string("stranger@mod.example"), std::string("other@rooms.mod.example")}) {
    const Run r = strict_explain(chat_to(stranger, stranger.find("rooms") != std::string::npos ? "groupchat" : "chat"));
    INFO(r.out);
    CHECK_THAT(r.out, Catch::Contains("outcome: REJECTED by reachable, rule coalition-contacts"));
  }
  const Run liaison = strict_explain(chat_to("liaison@mod.example"));
  INFO(liaison.out);
  CHECK_THAT(liaison.out, Catch::Contains("note allow-recipient = liaison"));
  CHECK_THAT(liaison.out, Catch::Contains("outcome: RELEASED"));
  const Run server = strict_explain("<iq xmlns='jabber:server' from='nato.example' to='mod.example' type='get' "
                                    "id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
  INFO(server.out);
  CHECK_THAT(server.out, Catch::Contains("note allow-recipient = national-server"));
  CHECK_THAT(server.out, Catch::Contains("outcome: RELEASED"));
}

// Rules 5/6 of the strict policy: marking="check" refuses a display marking
// that is not the SPIF's marking of the label, though the mapping writes a
// new marking before label access runs.
TEST_CASE("strict example policy: a false display marking on a coalition label is refused", "[tool][example-policy]") {
  const std::string head = "<message xmlns='jabber:server' from='anna@nato.example/l' to='liaison@mod.example' "
                           "type='chat'><body>x</body>";
  const Run forged = strict_explain(head + nato_restricted_rel_gbr("NATO UNCLASSIFIED") + "</message>");
  INFO(forged.out);
  CHECK_THAT(forged.out, Catch::Contains("outcome: REJECTED by map-to-national, rule marking-mismatch"));
  CHECK_THAT(forged.out, Catch::Contains("note marking.expected = NATO RESTRICTED REL GBR"));
  const Run honest = strict_explain(head + nato_restricted_rel_gbr("NATO RESTRICTED REL GBR") + "</message>");
  INFO(honest.out);
  CHECK_THAT(honest.out, Catch::Contains("outcome: RELEASED"));
  CHECK_THAT(honest.out, Catch::Contains("NATIONAL RESTRICTED REL GBR</displaymarking>"));
}
