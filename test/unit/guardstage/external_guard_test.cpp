// ExternalGuard against the example guard program (tools/example-guard) on a
// real event loop, driven with bounded real time: each wait runs the loop until
// a condition holds or a generous deadline passes (no sleeps).
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "guard/config/config.h"
#include "policy/guard/external_guard.h"
#include "policy/guard/guard_factory.h"
#include "policy/guard/guard_protocol.h"

using namespace std::chrono_literals;
using portcullis::LogLevel;
using portcullis::Logger;
using portcullis::net::EventLoop;
using portcullis::net::SteadyClock;
using portcullis::policy::ExternalGuard;
using portcullis::policy::ExternalGuardOptions;
using portcullis::policy::GuardResult;
using portcullis::policy::StanzaContext;

namespace {

const std::string kChat =
    "<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat' id='m1'>"
    "<body>Hello there</body></message>";

std::string chat(const std::string& body) {
  return "<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat'><body>" + body +
         "</body></message>";
}

struct Fixture {
  SteadyClock clock;
  EventLoop loop{clock};
  Logger log{"test", Logger::Target::Capture, LogLevel::Debug};
  std::vector<std::string> lines;

  Fixture() {
    log.set_capture([this](LogLevel, const std::string& l) { lines.push_back(l); });
  }

  ExternalGuardOptions options(std::vector<std::string> args) {
    ExternalGuardOptions o;
    o.program = PORTCULLIS_EXAMPLE_GUARD;
    o.args = std::move(args);
    o.timeout = 5000ms;
    o.restart_backoff = 10ms;
    o.restart_backoff_max = 40ms;
    return o;
  }

  template <typename Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop.run_once(10ms);
    }
    return true;
  }

  // One check, waited for.
  GuardResult ask(ExternalGuard& g, const std::string& bytes) {
    std::optional<GuardResult> r;
    StanzaContext ctx;
    ctx.peer_domain = "low.example";
    ctx.seq = 7;
    g.check(bytes, ctx, [&](GuardResult res) { r = std::move(res); });
    REQUIRE(run_until([&] { return r.has_value(); }));
    return *r;
  }
};

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0; }

std::string net_namespace(const std::string& pid) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + pid + "/ns/net", ec).string();
}

// The "Uid:" line of /proc/PID/status: real, effective, saved, filesystem.
std::string uid_line(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) return line;
  }
  return {};
}

// A copy of the example guard that any user can reach and run: the build tree may sit
// under a directory only its owner can enter (root's home is 0700), and the guard
// dropped to `nobody` must still be able to exec it. The directory goes with the object.
class GuardCopyForAnyone {
 public:
  GuardCopyForAnyone() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "portcullis-guard-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir_ = tmpl;
    path_ = dir_ / "example-guard";
    std::filesystem::copy_file(PORTCULLIS_EXAMPLE_GUARD, path_);
    using std::filesystem::perms;
    const perms rwxr_xr_x = perms::owner_all | perms::group_read | perms::group_exec | perms::others_read |
                            perms::others_exec;
    std::filesystem::permissions(dir_, rwxr_xr_x);
    std::filesystem::permissions(path_, rwxr_xr_x);
  }
  ~GuardCopyForAnyone() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  GuardCopyForAnyone(const GuardCopyForAnyone&) = delete;
  GuardCopyForAnyone& operator=(const GuardCopyForAnyone&) = delete;

  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

}  // namespace

TEST_CASE("the example guard passes a clean stanza and echoes it unchanged", "[external_guard]") {
  Fixture f;
  ExternalGuard g("example", f.options({}), f.loop, f.log);
  CHECK(g.running());
  if (::geteuid() == 0) CHECK(g.isolation() == "netns+mountns+landlock");
  const GuardResult r = f.ask(g, kChat);
  CHECK(r.pass);
  CHECK(r.guard == "example");
  CHECK(r.reason.empty());
  CHECK(g.failures() == 0);
  // Its own (empty) network namespace, or at least a different one.
  if (g.isolation() != "none") {
    CHECK(net_namespace(std::to_string(g.pid())) != net_namespace("self"));
    CHECK_FALSE(net_namespace("self").empty());
  }
}

TEST_CASE("run_as_user drops the program to that user (root only)", "[external_guard]") {
  Fixture f;
  auto o = f.options({});
  o.run_as_user = "nobody";
  if (::geteuid() != 0) {
    CHECK_THROWS_AS(ExternalGuard("nobody", o, f.loop, f.log), portcullis::config::ConfigError);
    return;
  }
  const GuardCopyForAnyone copy;
  o.program = copy.path();
  ExternalGuard g("nobody", o, f.loop, f.log);
  CHECK(uid_line(g.pid()) == "Uid:\t65534\t65534\t65534\t65534");
  CHECK(f.ask(g, kChat).pass);
  o.run_as_user = "no-such-user-here";
  CHECK_THROWS_AS(ExternalGuard("x", o, f.loop, f.log), portcullis::config::ConfigError);
}

TEST_CASE("the example guard blocks a configured word with its reason", "[external_guard]") {
  Fixture f;
  ExternalGuard g("words", f.options({"--block-word", "secret"}), f.loop, f.log);
  const GuardResult r = f.ask(g, chat("the Top SECRET plans"));
  CHECK_FALSE(r.pass);
  CHECK(r.reason == "blocked by guard program: body contains a blocked word");
  // A block is a healthy answer: the program keeps running and answers again.
  CHECK(f.ask(g, chat("nothing to see")).pass);
  CHECK(g.failures() == 0);
  CHECK(g.starts() == 1);
}

TEST_CASE("a large stanza crosses the pipe in pieces and still passes", "[external_guard]") {
  Fixture f;
  ExternalGuard g("big", f.options({}), f.loop, f.log);
  const std::string big = chat(std::string(600 * 1024, 'x'));
  CHECK(f.ask(g, big).pass);
}

TEST_CASE("a crash blocks the stanza, the program restarts, and traffic resumes", "[external_guard]") {
  Fixture f;
  ExternalGuard g("crashy", f.options({"--crash-after", "1"}), f.loop, f.log);
  const pid_t first = g.pid();
  CHECK(f.ask(g, kChat).pass);
  const GuardResult r = f.ask(g, kChat);
  CHECK_FALSE(r.pass);
  CHECK(r.reason == "guard program died (killed by signal " + std::to_string(SIGABRT) + ")");
  CHECK(g.failures() == 1);
  REQUIRE(f.run_until([&] { return g.running() && g.starts() == 2; }));
  CHECK(g.pid() != first);
  CHECK(process_gone(first));
  CHECK(f.ask(g, kChat).pass);
}

TEST_CASE("a program that exits is a crash too", "[external_guard]") {
  Fixture f;
  ExternalGuard g("quitter", f.options({"--exit-after", "0"}), f.loop, f.log);
  const GuardResult r = f.ask(g, kChat);
  CHECK_FALSE(r.pass);
  CHECK(r.reason == "guard program died (exited with status 0)");
}

TEST_CASE("while the program is down every stanza is blocked at once", "[external_guard]") {
  Fixture f;
  auto o = f.options({"--crash-after", "0"});
  o.restart_backoff = 60s;  // stays down for the whole test
  o.restart_backoff_max = 60s;
  ExternalGuard g("down", o, f.loop, f.log);
  CHECK_FALSE(f.ask(g, kChat).pass);
  CHECK_FALSE(g.running());
  bool called = false;
  g.check(kChat, StanzaContext{}, [&](GuardResult r) {
    called = true;
    CHECK_FALSE(r.pass);
    CHECK(r.reason == "guard program not running (restart pending)");
  });
  CHECK(called);  // synchronously
}

TEST_CASE("a hung program times out: block, kill, restart", "[external_guard]") {
  Fixture f;
  auto o = f.options({"--hang"});
  o.timeout = 200ms;
  ExternalGuard g("hung", o, f.loop, f.log);
  const pid_t first = g.pid();
  const GuardResult r = f.ask(g, kChat);
  CHECK_FALSE(r.pass);
  CHECK(r.reason == "guard program did not answer within 200 ms");
  CHECK(process_gone(first));
  REQUIRE(f.run_until([&] { return g.running() && g.starts() == 2; }));
  bool warned = false;
  for (const auto& l : f.lines) warned = warned || l.find("did not answer") != std::string::npos;
  CHECK(warned);
}

TEST_CASE("stanzas queued behind a failure are blocked too", "[external_guard]") {
  Fixture f;
  auto o = f.options({"--hang"});
  o.timeout = 200ms;
  ExternalGuard g("hung", o, f.loop, f.log);
  std::vector<GuardResult> results;
  for (int i = 0; i < 3; ++i) g.check(kChat, StanzaContext{}, [&](GuardResult r) { results.push_back(r); });
  REQUIRE(f.run_until([&] { return results.size() == 3; }));
  CHECK(results[0].reason == "guard program did not answer within 200 ms");
  for (int i = 1; i < 3; ++i) {
    CHECK_FALSE(results[i].pass);
    CHECK(results[i].reason.rfind("guard program not running (restarting after:", 0) == 0);
  }
}

TEST_CASE("a garbage answer blocks and restarts", "[external_guard]") {
  Fixture f;
  ExternalGuard g("noisy", f.options({"--garbage"}), f.loop, f.log);
  const GuardResult r = f.ask(g, kChat);
  CHECK_FALSE(r.pass);
  CHECK(r.reason == "guard program sent a garbled answer: answer does not start with PCG1");
  CHECK(g.failures() == 1);
  REQUIRE(f.run_until([&] { return g.starts() == 2; }));
}

TEST_CASE("a changed stanza is a block", "[external_guard]") {
  Fixture f;
  ExternalGuard g("mutator", f.options({"--mutate"}), f.loop, f.log);
  const GuardResult r = f.ask(g, kChat);
  CHECK_FALSE(r.pass);
  CHECK(r.reason == "guard program changed the stanza: echoed body differs from the stanza sent");
}

TEST_CASE("the queue is bounded: over the bound is 'guard busy'", "[external_guard]") {
  Fixture f;
  auto o = f.options({"--hang"});
  o.max_queue = 2;
  ExternalGuard g("busy", o, f.loop, f.log);
  int later = 0;
  for (int i = 0; i < 3; ++i) g.check(kChat, StanzaContext{}, [&](GuardResult) { ++later; });  // 1 in flight + 2 queued
  std::optional<GuardResult> busy;
  g.check(kChat, StanzaContext{}, [&](GuardResult r) { busy = r; });
  REQUIRE(busy.has_value());
  CHECK_FALSE(busy->pass);
  CHECK(busy->reason == "guard busy");
  CHECK(later == 0);
}

TEST_CASE("destroying the guard with checks pending drops them and kills the program", "[external_guard]") {
  Fixture f;
  int called = 0;
  pid_t pid = -1;
  {
    ExternalGuard g("hung", f.options({"--hang"}), f.loop, f.log);
    pid = g.pid();
    g.check(kChat, StanzaContext{}, [&](GuardResult) { ++called; });
    g.check(kChat, StanzaContext{}, [&](GuardResult) { ++called; });
    f.loop.run_once(10ms);
  }
  for (int i = 0; i < 5; ++i) f.loop.run_once(5ms);
  CHECK(called == 0);
  CHECK(process_gone(pid));
}

TEST_CASE("a guard callback may destroy the guard", "[external_guard]") {
  Fixture f;
  auto g = std::make_unique<ExternalGuard>("self-destruct", f.options({}), f.loop, f.log);
  bool done = false;
  g->check(kChat, StanzaContext{}, [&](GuardResult r) {
    CHECK(r.pass);
    g.reset();
    done = true;
  });
  REQUIRE(f.run_until([&] { return done; }));
  CHECK(g == nullptr);
}

TEST_CASE("a missing program is a config error", "[external_guard]") {
  Fixture f;
  auto o = f.options({});
  o.program = "/nonexistent/guard";
  CHECK_THROWS_AS(ExternalGuard("x", o, f.loop, f.log), portcullis::config::ConfigError);
}

TEST_CASE("make_guard builds both kinds from a GuardSpec", "[external_guard]") {
  Fixture f;
  portcullis::config::GuardSpec schema;
  schema.kind = portcullis::config::GuardSpec::Kind::Schema;
  schema.name = "xsd";
  schema.profile = std::string(PORTCULLIS_SOURCE_DIR) + "/schemas/xmpp/strict.xsd";
  auto s = portcullis::policy::make_guard(schema, f.loop, f.log);
  CHECK(s->name() == "xsd");

  portcullis::config::GuardSpec ext;
  ext.kind = portcullis::config::GuardSpec::Kind::External;
  ext.name = "ext";
  ext.program = PORTCULLIS_EXAMPLE_GUARD;
  ext.args = {"--block-word", "boom"};
  ext.timeout_ms = 3000;
  auto e = portcullis::policy::make_guard(ext, f.loop, f.log);
  std::optional<GuardResult> r;
  e->check(chat("boom"), StanzaContext{}, [&](GuardResult res) { r = res; });
  REQUIRE(f.run_until([&] { return r.has_value(); }));
  CHECK_FALSE(r->pass);

  ext.program = "/nonexistent";
  ext.line = 12;
  ext.column = 5;
  try {
    portcullis::policy::make_guard(ext, f.loop, f.log);
    FAIL("built a guard for a missing program");
  } catch (const portcullis::config::ConfigError& err) {
    CHECK(err.line() == 12);
    CHECK(err.column() == 5);
  }
}

TEST_CASE("PCG1 framing: request header and answer parser", "[guard_protocol]") {
  namespace gp = portcullis::policy::guardproto;
  StanzaContext ctx;
  ctx.seq = 42;
  ctx.peer_domain = "low.example\nseq=1";  // a hostile value cannot add a line
  ctx.peer_tls = true;
  const std::string req = gp::encode_request("abc", ctx);
  CHECK(req.substr(0, 4) == "PCG1");
  const std::string header = req.substr(8, req.size() - 8 - 4 - 3);
  CHECK(header.find("seq=42\n") != std::string::npos);
  CHECK(header.find("peer=low.example?seq=1\n") != std::string::npos);
  CHECK(header.find("tls=yes\n") != std::string::npos);
  CHECK(header.find("sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n") !=
        std::string::npos);
  CHECK(req.substr(req.size() - 3) == "abc");

  auto answer = [](char verdict, const std::string& reason, const std::string& body) {
    std::string a = "PCG1";
    a.push_back(verdict);
    for (std::uint32_t v : {static_cast<std::uint32_t>(reason.size())}) {
      for (int s = 24; s >= 0; s -= 8) a.push_back(static_cast<char>((v >> s) & 0xFF));
    }
    a += reason;
    const auto bl = static_cast<std::uint32_t>(body.size());
    for (int s = 24; s >= 0; s -= 8) a.push_back(static_cast<char>((bl >> s) & 0xFF));
    return a + body;
  };
  using S = gp::AnswerParser::State;
  {
    gp::AnswerParser p(3);
    const std::string a = answer(1, "no", "abc");
    for (char c : a.substr(0, a.size() - 1)) CHECK(p.feed(std::string(1, c)) == S::NeedMore);
    CHECK(p.feed(a.substr(a.size() - 1)) == S::Complete);
    CHECK_FALSE(p.answer().pass);
    CHECK(p.answer().reason == "no");
    CHECK(p.feed("x") == S::Garbage);
  }
  CHECK(gp::AnswerParser(3).feed("PCX") == S::Garbage);
  CHECK(gp::AnswerParser(3).feed(answer(2, "", "abc")) == S::Garbage);
  CHECK(gp::AnswerParser(3).feed(answer(0, "", "abcd")) == S::LengthMismatch);
  CHECK(gp::AnswerParser(3).feed(answer(0, "", "abc") + "Z") == S::Garbage);
  CHECK(gp::AnswerParser(3).feed(answer(0, std::string(2000, 'r'), "abc")) == S::Garbage);
}

namespace {

// The mount points of `pid`'s mount namespace (field 5 of mountinfo).
std::vector<std::string> mount_points(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/mountinfo");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    out.push_back(point);
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST_CASE("an external guard cannot see the audit archive or the signing key", "[external_guard][isolation]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("portcullis-hide-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "audit");
  std::ofstream(dir / "audit" / "seg-0001") << "records\n";
  std::ofstream(dir / "audit.key") << "secret\n";
  Fixture f;
  auto o = f.options({});
  o.hide = {(dir / "audit").string(), (dir / "audit.key").string(), (dir / "absent").string()};
  {
    ExternalGuard g("hidden", o, f.loop, f.log);
    REQUIRE(g.isolation() != "none");
    const auto points = mount_points(g.pid());
    // Covered in the guard's mount namespace, and only there.
    CHECK(contains(points, (dir / "audit").string()));
    CHECK(contains(points, (dir / "audit.key").string()));
    CHECK_FALSE(contains(points, (dir / "absent").string()));
    CHECK_FALSE(contains(mount_points(::getpid()), (dir / "audit").string()));
    CHECK(f.ask(g, kChat).pass);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a guard whose namespaces cannot be made does not start, unless the config waives it",
          "[external_guard][isolation]") {
  // In a child process whose unshare() always fails (a seccomp rule), as on a
  // host that forbids namespaces.
  auto in_child = [](bool waived) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
      if (ctx == nullptr || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 0) != 0 ||
          seccomp_load(ctx) != 0) {
        ::_exit(10);
      }
      Fixture f;
      auto o = f.options({});
      o.isolation_waived = waived;
      try {
        ExternalGuard g("unisolated", o, f.loop, f.log);
        if (g.isolation() != "landlock") ::_exit(11);   // no namespaces; Landlock still holds
        if (!f.ask(g, kChat).pass) ::_exit(12);
        ::_exit(waived ? 0 : 13);
      } catch (const portcullis::config::ConfigError& e) {
        const std::string m = e.message();
        ::_exit(!waived && m.find("isolation") != std::string::npos ? 0 : 14);
      }
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  CHECK(in_child(false) == 0);   // refused, with a message about isolation
  CHECK(in_child(true) == 0);    // runs, with isolation "landlock"
}

TEST_CASE("an external guard can neither signal the filter, write a file nor open a socket, though it runs as the filter's user",
          "[external_guard][isolation]") {
  // The guard is a shell script that tries each before it becomes the example
  // guard; any succeeding makes it exit instead, and the stanza fails. (An
  // AF_UNIX socket could reach host services, a resolver say, around the empty
  // network namespace.)
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("portcullis-landlock-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path script = dir / "probe-guard.sh";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "if kill -0 \"$PPID\" 2>/dev/null; then echo signalled >&2; exit 21; fi\n"
                        << "if touch \"$1/written\" 2>/dev/null; then echo wrote >&2; exit 22; fi\n"
                        << "if /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX)' 2>/dev/null; then "
                           "echo unix socket >&2; exit 23; fi\n"
                        << "exec " << PORTCULLIS_EXAMPLE_GUARD << "\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                           std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                           std::filesystem::perms::others_exec);
  Fixture f;
  auto o = f.options({dir.string()});
  o.program = script.string();
  {
    ExternalGuard g("probe", o, f.loop, f.log);
    CHECK_THAT(g.isolation(), Catch::Contains("landlock"));
    const GuardResult r = f.ask(g, kChat);
    CAPTURE(r.reason, f.lines);
    CHECK(r.pass);
    CHECK(g.failures() == 0);
  }
  CHECK_FALSE(std::filesystem::exists(dir / "written"));
  std::filesystem::remove_all(dir);
}
