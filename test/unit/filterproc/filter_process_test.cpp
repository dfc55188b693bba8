// The filter process over real socketpairs, in one process: what it releases,
// what it refuses, and that every stanza frame is answered (fail closed).
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <random>
#include <memory>
#include <stdexcept>
#include <vector>

#include "guard/audit/keys.h"
#include "guard/audit/reader.h"
#include "guard/filterproc/filter_process.h"
#include "guard/ipc/frame_channel.h"
#include "guard/xmpp/stream_parser.h"
#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"

using namespace portcullis;

namespace {

// A filter whose evaluate() throws: the runner must reject, never release.
class ThrowingFilter : public policy::Filter {
 public:
  policy::Verdict evaluate(xmpp::Element&, const policy::StanzaContext&) const override {
    throw std::runtime_error("boom");
  }
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return "throwing"; }

 private:
  std::string name_ = "throwing";
};

struct Edge {
  std::unique_ptr<ipc::FrameChannel> channel;
  std::vector<ipc::Frame> received;
};

// A fresh archive directory and key pair per fixture.
struct AuditDir {
  std::filesystem::path dir;
  config::AuditConfig cfg;
  AuditDir() {
    std::random_device rd;
    dir = std::filesystem::temp_directory_path() / ("pc-filterproc-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    cfg.enabled = true;
    cfg.dir = (dir / "audit").string();
    cfg.signing_key_file = (dir / "audit.key").string();
    cfg.public_key_file = (dir / "audit.pub").string();
    audit::generate_key_pair(cfg.signing_key_file, cfg.public_key_file);
  }
  ~AuditDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

struct Fixture {
  net::SteadyClock clock;
  net::EventLoop loop{clock};
  Logger log{"filter", Logger::Target::Capture, LogLevel::Debug};
  std::vector<std::string> lines;
  AuditDir audit_dir;
  std::unique_ptr<audit::AuditArchive> archive;
  std::unique_ptr<filterproc::FilterProcess> filter;
  Edge low, high;

  explicit Fixture(bool throwing_low_to_high = false, audit::ArchiveHooks hooks = {}) {
    log.set_capture([this](LogLevel, const std::string& l) { lines.push_back(l); });
    archive = std::make_unique<audit::AuditArchive>(loop, audit_dir.cfg, log, std::move(hooks));
    policy::Pipeline l2h, h2l;
    if (throwing_low_to_high) l2h.add(std::make_shared<ThrowingFilter>());
    l2h.add(std::make_shared<policy::SizeLimitFilter>("size-limit", 4096));
    l2h.add(std::make_shared<policy::DomainPairAllowFilter>(
        "domain-pair-allow", std::vector<config::DomainPairRule>{{"r1", "a.test", "b.test"}}));
    h2l.add(std::make_shared<policy::DomainPairAllowFilter>(
        "domain-pair-allow", std::vector<config::DomainPairRule>{{"r2", "b.test", "a.test"}}));
    filter = std::make_unique<filterproc::FilterProcess>(loop, *archive, 65536, log);
    filter->replace_pipelines(std::move(l2h), std::move(h2l), {"test-1", "0123456789abcdef0123"});
    connect(true);
    connect(false);
  }

  void connect(bool is_low) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    Edge& e = is_low ? low : high;
    e.received.clear();
    e.channel = std::make_unique<ipc::FrameChannel>(loop, sv[0]);
    ipc::FrameChannel::Callbacks cb;
    cb.on_frame = [&e](ipc::Frame&& f) { e.received.push_back(std::move(f)); };
    cb.on_closed = [](const std::string&) {};
    e.channel->set_callbacks(std::move(cb));
    e.channel->start();
    if (is_low) filter->attach_low(sv[1]);
    else filter->attach_high(sv[1]);
  }

  static ipc::Frame stanza_frame(std::string body, ipc::Direction dir = ipc::Direction::LowToHigh,
                                 std::uint64_t seq = 7, std::string peer = "a.test") {
    ipc::Frame f;
    f.header.kind = ipc::FrameKind::Stanza;
    f.header.direction = dir;
    f.header.auth = ipc::AuthMethod::SaslExternal;
    f.header.flags = ipc::kFlagTls;
    f.header.seq = seq;
    f.header.peer_domain = std::move(peer);
    f.body = std::move(body);
    return f;
  }

  void pump_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) loop.run_once(net::Duration(10));
    REQUIRE(done());
  }
  // Runs the loop a little longer to show nothing else arrives.
  void settle() {
    for (int i = 0; i < 20; ++i) loop.run_once(net::Duration(5));
  }
};

const std::string kChat =
    "<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='chat' id='m1'>"
    "<body>hello</body></message>";

bool has_ack(const Edge& e, std::uint64_t seq) {
  for (const auto& f : e.received)
    if (f.header.kind == ipc::FrameKind::Ack && f.header.seq == seq) return true;
  return false;
}

const ipc::Frame* first_stanza(const Edge& e) {
  for (const auto& f : e.received)
    if (f.header.kind == ipc::FrameKind::Stanza) return &f;
  return nullptr;
}

std::string error_condition(const ipc::Frame& f) {
  auto el = xmpp::parse_element(f.body);
  REQUIRE(el);
  CHECK(el->attr_or("type") == "error");
  const auto* err = el->find_child("error");
  REQUIRE(err != nullptr);
  for (const auto* c : err->child_elements())
    if (c->ns() == xmpp::kNsStanzas && c->name() != "text") return c->name();
  return {};
}

}  // namespace

TEST_CASE("an allowed stanza is released byte for byte to the far edge and acknowledged", "[filterproc]") {
  Fixture fx;
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.high) && has_ack(fx.low, 7); });
  const ipc::Frame* out = first_stanza(fx.high);
  CHECK(out->body == kChat);   // lossless: exactly the bytes received
  CHECK(out->header.direction == ipc::Direction::LowToHigh);
  CHECK(out->header.peer_domain == "a.test");
  CHECK(out->header.auth == ipc::AuthMethod::SaslExternal);
  CHECK(first_stanza(fx.low) == nullptr);   // no error back
  CHECK(fx.filter->counters().released == 1);
  CHECK(fx.filter->counters().rejected == 0);
}

TEST_CASE("a refused pair gets an error to its sender, nothing to the far edge", "[filterproc]") {
  Fixture fx;
  const std::string body =
      "<message xmlns='jabber:server' from='alice@a.test/r' to='eve@c.test' type='chat' id='m2'>"
      "<body>secret words</body></message>";
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(body)));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.low, 7); });
  fx.settle();
  CHECK(first_stanza(fx.high) == nullptr);
  const ipc::Frame* err = first_stanza(fx.low);
  CHECK(err->header.direction == ipc::Direction::Local);
  CHECK(error_condition(*err) == "policy-violation");
  CHECK(err->body.find("secret words") == std::string::npos);   // never echo the content
  auto reply = xmpp::parse_element(err->body);
  CHECK(reply->attr_or("to") == "alice@a.test/r");
  CHECK(reply->attr_or("from") == "eve@c.test");
  CHECK(reply->attr_or("id") == "m2");
  CHECK(fx.filter->counters().rejected == 1);
}

TEST_CASE("an error stanza that is refused is not answered with another error", "[filterproc]") {
  Fixture fx;
  const std::string body =
      "<message xmlns='jabber:server' from='alice@a.test/r' to='eve@c.test' type='error' id='m3'>"
      "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(body)));
  fx.pump_until([&] { return has_ack(fx.low, 7); });
  fx.settle();
  CHECK(first_stanza(fx.low) == nullptr);
  CHECK(first_stanza(fx.high) == nullptr);
  CHECK(fx.filter->counters().rejected == 1);
}

TEST_CASE("a filter that throws rejects: fail closed", "[filterproc]") {
  Fixture fx(/*throwing_low_to_high=*/true);
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.low, 7); });
  fx.settle();
  CHECK(first_stanza(fx.high) == nullptr);
  CHECK(error_condition(*first_stanza(fx.low)) == "internal-server-error");
}

TEST_CASE("a far edge that is down means reject with a wait-type error", "[filterproc]") {
  Fixture fx;
  fx.high.channel.reset();   // edge(high) gone
  fx.settle();
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.low, 7); });
  const ipc::Frame* err = first_stanza(fx.low);
  CHECK(error_condition(*err) == "remote-server-timeout");
  auto reply = xmpp::parse_element(err->body);
  CHECK(reply->find_child("error")->attr_or("type") == "wait");
  CHECK(fx.filter->counters().released == 0);
}

TEST_CASE("frames the filter cannot trust are refused, never released", "[filterproc]") {
  Fixture fx;
  SECTION("wrong direction for the channel") {
    REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat, ipc::Direction::HighToLow)));
  }
  SECTION("an unauthenticated frame") {
    auto f = Fixture::stanza_frame(kChat);
    f.header.auth = ipc::AuthMethod::None;
    REQUIRE(fx.low.channel->send(f));
  }
  SECTION("an unparseable body") {
    REQUIRE(fx.low.channel->send(Fixture::stanza_frame("<message xmlns='jabber:server'><body>")));
  }
  SECTION("restricted XML in the body") {
    REQUIRE(fx.low.channel->send(Fixture::stanza_frame(
        "<message xmlns='jabber:server' from='alice@a.test' to='bob@b.test'><!-- c --></message>")));
  }
  fx.pump_until([&] { return has_ack(fx.low, 7); });
  fx.settle();
  CHECK(first_stanza(fx.high) == nullptr);
  CHECK(fx.filter->counters().refused_frames == 1);
  CHECK(fx.filter->counters().released == 0);
}

TEST_CASE("a new edge channel replaces the old one", "[filterproc]") {
  Fixture fx;
  fx.connect(false);   // edge(high) restarted: fresh socketpair
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat, ipc::Direction::LowToHigh, 9)));
  fx.pump_until([&] { return first_stanza(fx.high) && has_ack(fx.low, 9); });
  CHECK(first_stanza(fx.high)->body == kChat);
}

TEST_CASE("decisions are logged with the trail", "[filterproc]") {
  Fixture fx;
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return has_ack(fx.low, 7); });
  bool found = false;
  for (const auto& l : fx.lines) {
    if (l.find("decision seq=7 low-to-high peer=a.test") != std::string::npos &&
        l.find("released by r1") != std::string::npos &&
        l.find("size-limit=no-opinion domain-pair-allow=accept(r1)") != std::string::npos)
      found = true;
  }
  CHECK(found);
}

namespace {

std::vector<audit::DecisionRecord> decisions(const std::string& dir) {
  std::vector<audit::DecisionRecord> out;
  std::string err;
  audit::read_archive(
      dir,
      [&](const audit::StoredRecord& r, const audit::RecordLocation&) {
        if (const auto* d = std::get_if<audit::DecisionRecord>(&r.body)) out.push_back(*d);
        return true;
      },
      [](const std::string&) {}, &err);
  return out;
}

// A guard that blocks everything, synchronously.
class BlockingGuard : public policy::Guard {
 public:
  void check(const std::string&, const policy::StanzaContext&, std::function<void(policy::GuardResult)> done) override {
    done({false, name_, "test guard blocks"});
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "blocker";
};

}  // namespace

TEST_CASE("the decision record, bytes included, is durable before the release", "[filterproc][audit]") {
  Fixture fx;
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.high) && has_ack(fx.low, 7); });
  // The release happened, so the record must already be on disk.
  const auto ds = decisions(fx.audit_dir.cfg.dir);
  REQUIRE(ds.size() == 1);
  const auto& d = ds[0];
  CHECK(d.outcome == audit::Outcome::Released);
  CHECK(d.direction == audit::Direction::LowToHigh);
  CHECK(d.original == kChat);
  CHECK_FALSE(d.released.has_value());
  CHECK(d.from == "alice@a.test/r");
  CHECK(d.to == "bob@b.test");
  CHECK(d.stanza_kind == "message");
  CHECK(d.peer.domain == "a.test");
  CHECK(d.peer.auth == "sasl-external");
  CHECK(d.peer.tls);
  CHECK(d.policy_version == "test-1");
  REQUIRE(d.filters.size() == 2);
  CHECK(d.filters[0].filter == "size-limit");
  CHECK(d.filters[1].verdict == "accept");
  CHECK(d.filters[1].rule_id == "r1");
}

TEST_CASE("a rejection is recorded with the error sent", "[filterproc][audit]") {
  Fixture fx;
  const std::string body =
      "<message xmlns='jabber:server' from='alice@a.test/r' to='eve@c.test' type='chat' id='m2'><body>x</body></message>";
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(body)));
  fx.pump_until([&] { return has_ack(fx.low, 7); });
  const auto ds = decisions(fx.audit_dir.cfg.dir);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].outcome == audit::Outcome::Rejected);
  CHECK(ds[0].error_condition == "policy-violation");
  CHECK(ds[0].original == body);
}

TEST_CASE("a store that cannot sync releases nothing: the sender gets a wait error", "[filterproc][audit]") {
  audit::ArchiveHooks hooks;
  hooks.fdatasync = [](int) {
    errno = EIO;
    return -1;
  };
  hooks.retry_interval = std::chrono::milliseconds(60000);
  Fixture fx(false, std::move(hooks));
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.low, 7); });
  fx.settle();
  CHECK(first_stanza(fx.high) == nullptr);   // nothing unaudited crosses
  const ipc::Frame* err = first_stanza(fx.low);
  CHECK(error_condition(*err) == "remote-server-timeout");
  CHECK(xmpp::parse_element(err->body)->find_child("error")->attr_or("type") == "wait");
  CHECK(fx.filter->counters().audit_failures == 1);
  CHECK(fx.filter->counters().released == 0);
}

TEST_CASE("a guard that blocks stops a stanza the policy released, and the record says which", "[filterproc][guard]") {
  Fixture fx;
  policy::GuardChain up;
  up.add(std::make_unique<BlockingGuard>());
  fx.filter->set_guards(std::move(up), policy::GuardChain{});
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.low, 7); });
  fx.settle();
  CHECK(first_stanza(fx.high) == nullptr);
  CHECK(error_condition(*first_stanza(fx.low)) == "policy-violation");
  CHECK(fx.filter->counters().guard_blocks == 1);
  const auto ds = decisions(fx.audit_dir.cfg.dir);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].outcome == audit::Outcome::Rejected);
  REQUIRE(ds[0].guards.size() == 1);
  CHECK(ds[0].guards[0].name == "blocker");
  CHECK_FALSE(ds[0].guards[0].pass);
  CHECK(ds[0].guards[0].reason == "test guard blocks");
}
