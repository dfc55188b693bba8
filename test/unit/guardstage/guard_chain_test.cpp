// GuardChain: order, first block stops the chain, every result recorded,
// synchronous and asynchronous guards, throwing guards, and destruction while
// a check is pending (fake async guards and a real external guard).
#include <signal.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy/guard/external_guard.h"
#include "policy/guard/guard.h"
#include "policy/guard/schema_guard.h"

using namespace std::chrono_literals;
using portcullis::policy::Guard;
using portcullis::policy::GuardChain;
using portcullis::policy::GuardResult;
using portcullis::policy::StanzaContext;

namespace {

using Callback = std::function<void(GuardResult)>;

// Answers at once; records that it ran.
class SyncGuard final : public Guard {
 public:
  SyncGuard(std::string name, bool pass, std::vector<std::string>& ran) : name_(std::move(name)), pass_(pass), ran_(ran) {}
  void check(const std::string&, const StanzaContext&, Callback done) override {
    ran_.push_back(name_);
    done(GuardResult{pass_, {}, pass_ ? "" : "no"});  // guard name left empty: the chain fills it in
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  bool pass_;
  std::vector<std::string>& ran_;
};

// Keeps the callback for the test to complete later.
class AsyncGuard final : public Guard {
 public:
  AsyncGuard(std::string name, std::vector<Callback>& pending) : name_(std::move(name)), pending_(pending) {}
  void check(const std::string&, const StanzaContext&, Callback done) override { pending_.push_back(std::move(done)); }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  std::vector<Callback>& pending_;
};

class ThrowingGuard final : public Guard {
 public:
  void check(const std::string&, const StanzaContext&, Callback) override { throw std::runtime_error("oops"); }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "thrower";
};

class TwiceGuard final : public Guard {
 public:
  void check(const std::string&, const StanzaContext&, Callback done) override {
    done(GuardResult{true, name_, ""});
    done(GuardResult{false, name_, "second answer"});
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "twice";
};

struct Outcome {
  bool called = false;
  int calls = 0;
  bool pass = false;
  std::vector<GuardResult> results;
  auto sink() {
    return [this](bool p, std::vector<GuardResult> r) {
      called = true;
      ++calls;
      pass = p;
      results = std::move(r);
    };
  }
};

}  // namespace

TEST_CASE("all guards must pass; every result is reported in order", "[guard_chain]") {
  std::vector<std::string> ran;
  GuardChain chain;
  chain.add(std::make_unique<SyncGuard>("a", true, ran));
  chain.add(std::make_unique<SyncGuard>("b", true, ran));
  chain.add(std::make_unique<SyncGuard>("c", true, ran));
  Outcome o;
  chain.check("<x/>", StanzaContext{}, o.sink());
  REQUIRE(o.called);
  CHECK(o.pass);
  REQUIRE(o.results.size() == 3);
  CHECK(o.results[0].guard == "a");
  CHECK(o.results[2].guard == "c");
  CHECK(ran == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("the first block stops the chain", "[guard_chain]") {
  std::vector<std::string> ran;
  GuardChain chain;
  chain.add(std::make_unique<SyncGuard>("a", true, ran));
  chain.add(std::make_unique<SyncGuard>("b", false, ran));
  chain.add(std::make_unique<SyncGuard>("c", true, ran));
  Outcome o;
  chain.check("<x/>", StanzaContext{}, o.sink());
  REQUIRE(o.called);
  CHECK_FALSE(o.pass);
  REQUIRE(o.results.size() == 2);
  CHECK(o.results[1].guard == "b");
  CHECK(o.results[1].reason == "no");
  CHECK(ran == std::vector<std::string>{"a", "b"});
}

TEST_CASE("an empty chain passes with no results", "[guard_chain]") {
  GuardChain chain;
  Outcome o;
  chain.check("<x/>", StanzaContext{}, o.sink());
  CHECK(o.called);
  CHECK(o.pass);
  CHECK(o.results.empty());
}

TEST_CASE("asynchronous guards continue the chain when they answer", "[guard_chain]") {
  std::vector<std::string> ran;
  std::vector<Callback> pending;
  GuardChain chain;
  chain.add(std::make_unique<AsyncGuard>("async", pending));
  chain.add(std::make_unique<SyncGuard>("sync", true, ran));
  Outcome o;
  chain.check("<x/>", StanzaContext{}, o.sink());
  CHECK_FALSE(o.called);
  CHECK(ran.empty());
  REQUIRE(pending.size() == 1);
  pending[0](GuardResult{true, "async", ""});
  REQUIRE(o.called);
  CHECK(o.pass);
  CHECK(o.results.size() == 2);
  CHECK(ran == std::vector<std::string>{"sync"});
}

TEST_CASE("a throwing guard blocks; a second answer is ignored", "[guard_chain]") {
  {
    GuardChain chain;
    chain.add(std::make_unique<ThrowingGuard>());
    Outcome o;
    chain.check("<x/>", StanzaContext{}, o.sink());
    REQUIRE(o.called);
    CHECK_FALSE(o.pass);
    CHECK(o.results.at(0).reason == "guard threw: oops");
  }
  {
    GuardChain chain;
    chain.add(std::make_unique<TwiceGuard>());
    Outcome o;
    chain.check("<x/>", StanzaContext{}, o.sink());
    CHECK(o.calls == 1);
    CHECK(o.pass);
  }
}

TEST_CASE("destroying the chain while a guard is pending is safe", "[guard_chain]") {
  std::vector<Callback> pending;
  Outcome o;
  {
    GuardChain chain;
    chain.add(std::make_unique<AsyncGuard>("async", pending));
    chain.check("<x/>", StanzaContext{}, o.sink());
  }
  REQUIRE(pending.size() == 1);
  pending[0](GuardResult{true, "async", ""});  // reaches a chain that no longer exists
  CHECK_FALSE(o.called);
}

TEST_CASE("the owner may destroy the chain from its done callback", "[guard_chain]") {
  std::vector<std::string> ran;
  auto chain = std::make_unique<GuardChain>();
  chain->add(std::make_unique<SyncGuard>("a", false, ran));
  bool called = false;
  chain->check("<x/>", StanzaContext{}, [&](bool pass, std::vector<GuardResult>) {
    called = true;
    CHECK_FALSE(pass);
    chain.reset();
  });
  CHECK(called);
  CHECK(chain == nullptr);
}

TEST_CASE("a moved chain finishes the checks started before the move", "[guard_chain]") {
  std::vector<std::string> ran;
  std::vector<Callback> pending;
  GuardChain first;
  first.add(std::make_unique<AsyncGuard>("async", pending));
  first.add(std::make_unique<SyncGuard>("sync", true, ran));
  Outcome o;
  first.check("<x/>", StanzaContext{}, o.sink());
  GuardChain second(std::move(first));
  pending.at(0)(GuardResult{true, "async", ""});
  REQUIRE(o.called);
  CHECK(o.pass);
  CHECK(ran == std::vector<std::string>{"sync"});
}

TEST_CASE("schema then external guard, and destruction with the external check pending", "[guard_chain]") {
  portcullis::net::SteadyClock clock;
  portcullis::net::EventLoop loop(clock);
  portcullis::Logger log("test", portcullis::Logger::Target::Capture, portcullis::LogLevel::Debug);
  log.set_capture([](portcullis::LogLevel, const std::string&) {});
  const std::string schemas = std::string(PORTCULLIS_SOURCE_DIR) + "/schemas/xmpp/";
  const std::string good =
      "<message xmlns='jabber:server' from='a@low.example' to='b@high.example' type='chat'><body>hi</body></message>";
  auto run_until = [&](auto pred) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!pred() && std::chrono::steady_clock::now() < deadline) loop.run_once(10ms);
    return pred();
  };

  SECTION("both pass") {
    GuardChain chain;
    chain.add(std::make_unique<portcullis::policy::SchemaGuard>("xsd", schemas + "strict.xsd"));
    portcullis::policy::ExternalGuardOptions o;
    o.program = PORTCULLIS_EXAMPLE_GUARD;
    chain.add(std::make_unique<portcullis::policy::ExternalGuard>("ext", o, loop, log));
    Outcome out;
    chain.check(good, StanzaContext{}, out.sink());
    REQUIRE(run_until([&] { return out.called; }));
    CHECK(out.pass);
    REQUIRE(out.results.size() == 2);
    CHECK(out.results[0].guard == "xsd");
    CHECK(out.results[1].guard == "ext");
  }
  SECTION("the schema block keeps the stanza from the external guard") {
    GuardChain chain;
    chain.add(std::make_unique<portcullis::policy::SchemaGuard>("xsd", schemas + "strict.xsd"));
    portcullis::policy::ExternalGuardOptions o;
    o.program = PORTCULLIS_EXAMPLE_GUARD;
    o.args = {"--crash-after", "0"};  // would fail if it were asked
    chain.add(std::make_unique<portcullis::policy::ExternalGuard>("ext", o, loop, log));
    Outcome out;
    chain.check("<message xmlns='jabber:server' from='a@b' to='c@d'><blink/></message>", StanzaContext{},
                out.sink());
    REQUIRE(out.called);  // synchronously, by the schema guard
    CHECK_FALSE(out.pass);
    CHECK(out.results.size() == 1);
  }
  SECTION("destroyed while the external guard is pending") {
    Outcome out;
    pid_t pid = -1;
    {
      GuardChain chain;
      chain.add(std::make_unique<portcullis::policy::SchemaGuard>("xsd", schemas + "strict.xsd"));
      portcullis::policy::ExternalGuardOptions o;
      o.program = PORTCULLIS_EXAMPLE_GUARD;
      o.args = {"--hang"};
      auto ext = std::make_unique<portcullis::policy::ExternalGuard>("ext", o, loop, log);
      pid = ext->pid();
      chain.add(std::move(ext));
      chain.check(good, StanzaContext{}, out.sink());
      loop.run_once(10ms);
      CHECK_FALSE(out.called);
    }
    for (int i = 0; i < 5; ++i) loop.run_once(5ms);
    CHECK_FALSE(out.called);
    CHECK(::kill(pid, 0) != 0);
  }
}
