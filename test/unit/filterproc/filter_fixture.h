// Shared by the filterproc tests: the filter process over real socketpairs,
// in one process, with a fresh audit archive, and two fake edges.
#pragma once
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "guard/audit/archive.h"
#include "guard/audit/keys.h"
#include "guard/audit/reader.h"
#include "guard/filterproc/filter_process.h"
#include "guard/ipc/frame_channel.h"
#include "guard/xmpp/stream_parser.h"
#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"

namespace filterproc_test {

using namespace portcullis;

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
  bool confirm = true;   // confirms released stanzas (ipc::taken_ack), as an edge does
  std::function<void(const ipc::Frame&)> on_receive;   // called as each frame arrives
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

// The sides frames are checked against. Low: a.test, d.test (SASL EXTERNAL
// only) and k.test (no iq); it fronts b.test and c.test. High: b.test, c.test and
// *.hi.test; it fronts a.test and d.test.
inline filterproc::Boundary test_boundary() {
  auto peer = [](std::string d, config::PeerAuth auth = config::PeerAuth::Any) {
    config::Peer p;
    p.domain_pattern = std::move(d);
    p.auth = auth;
    p.line = 10;
    return p;
  };
  filterproc::Boundary b;
  config::Peer no_iq = peer("k.test");
  no_iq.kinds.iq = false;
  b.low = {"low", {peer("a.test"), peer("d.test", config::PeerAuth::SaslExternal), no_iq}, {"b.test", "c.test"}, {}};
  b.high = {"high", {peer("b.test"), peer("c.test"), peer("*.hi.test")}, {"a.test", "d.test"}, {}};
  return b;
}

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
    filter = std::make_unique<filterproc::FilterProcess>(loop, *archive, 65536, log, test_boundary());
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
    cb.on_frame = [&e](ipc::Frame&& f) {
      // As a real edge does once a link has taken what was released to it.
      if (e.confirm && f.header.kind == ipc::FrameKind::Stanza && f.header.direction != ipc::Direction::Local)
        e.channel->send_control(ipc::taken_ack(f.header.direction, f.header.seq));
      if (e.on_receive) e.on_receive(f);
      e.received.push_back(std::move(f));
    };
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

inline const std::string kChat =
    "<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='chat' id='m1'>"
    "<body>hello</body></message>";

inline bool has_ack(const Edge& e, std::uint64_t seq) {
  for (const auto& f : e.received)
    if (f.header.kind == ipc::FrameKind::Ack && f.header.seq == seq) return true;
  return false;
}

inline const ipc::Frame* first_stanza(const Edge& e) {
  for (const auto& f : e.received)
    if (f.header.kind == ipc::FrameKind::Stanza) return &f;
  return nullptr;
}

inline std::string error_condition(const ipc::Frame& f) {
  auto el = xmpp::parse_element(f.body);
  REQUIRE(el);
  CHECK(el->attr_or("type") == "error");
  const auto* err = el->find_child("error");
  REQUIRE(err != nullptr);
  for (const auto* c : err->child_elements())
    if (c->ns() == xmpp::kNsStanzas && c->name() != "text") return c->name();
  return {};
}

// The records of one kind in the archive at `dir`, in order.
template <typename Body>
std::vector<Body> records_of(const std::string& dir) {
  std::vector<Body> out;
  std::string err;
  audit::read_archive(
      dir,
      [&](const audit::StoredRecord& r, const audit::RecordLocation&) {
        if (const auto* b = std::get_if<Body>(&r.body)) out.push_back(*b);
        return true;
      },
      [](const std::string&) {}, &err);
  return out;
}

inline std::vector<audit::DecisionRecord> decisions(const std::string& dir) {
  return records_of<audit::DecisionRecord>(dir);
}

inline std::vector<audit::ConnectionEvent> events(const std::string& dir) {
  return records_of<audit::ConnectionEvent>(dir);
}

}  // namespace filterproc_test
