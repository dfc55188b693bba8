// Policy reload at the filter process: replace_pipelines() swaps both
// directions between stanzas, the decision log names the policy, a broken
// policy never reaches the process (load_policy throws first, the running one
// keeps deciding), and the policy tree lives exactly as long as its pipelines.
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "guard/audit/keys.h"
#include "guard/filterproc/filter_process.h"
#include "guard/ipc/frame_channel.h"
#include "policy/policy_file.h"

using namespace portcullis;

namespace {

namespace fs = std::filesystem;

const std::string kSchemaDir = PORTCULLIS_SOURCE_DIR "/schemas";

// The sides the frames are checked against: a.test on low, b.test on high.
filterproc::Boundary boundary() {
  auto peer = [](std::string d) {
    config::Peer p;
    p.domain_pattern = std::move(d);
    return p;
  };
  filterproc::Boundary b;
  b.low = {"low", {peer("a.test")}, {"b.test"}, {}};
  b.high = {"high", {peer("b.test")}, {"a.test"}, {}};
  return b;
}

std::string policy_text(const std::string& version, const std::string& allow_to) {
  return "<policy xmlns='urn:portcullis:policy:1' version='" + version +
         "'>\n"
         "  <direction from='low' to='high'>\n"
         "    <size-limit name='size' max-bytes='65536'/>\n"
         "    <domain-pair-allow name='pairs'>\n"
         "      <allow id='to-" + allow_to + "' from='a.test' to='" + allow_to + "'/>\n"
         "    </domain-pair-allow>\n"
         "  </direction>\n"
         "  <direction from='high' to='low'/>\n"
         "</policy>\n";
}

struct Edge {
  std::unique_ptr<ipc::FrameChannel> channel;
  std::vector<ipc::Frame> received;
  bool confirm = true;   // confirms released stanzas (ipc::taken_ack), as an edge does
};

struct ReloadFixture {
  fs::path dir;
  net::SteadyClock clock;
  net::EventLoop loop{clock};
  Logger log{"filter", Logger::Target::Capture, LogLevel::Debug};
  std::vector<std::string> lines;
  policy::FilterRegistry registry = policy::builtin_filters();
  config::AuditConfig audit_cfg;
  std::unique_ptr<audit::AuditArchive> archive;
  std::unique_ptr<filterproc::FilterProcess> filter;
  Edge low, high;
  std::uint64_t seq = 1;

  ReloadFixture() {
    std::random_device rd;
    dir = fs::temp_directory_path() /
          ("portcullis-reload-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir);
    log.set_capture([this](LogLevel, const std::string& l) { lines.push_back(l); });
    audit_cfg.enabled = true;
    audit_cfg.dir = (dir / "audit").string();
    audit_cfg.signing_key_file = (dir / "audit.key").string();
    audit_cfg.public_key_file = (dir / "audit.pub").string();
    audit::generate_key_pair(audit_cfg.signing_key_file, audit_cfg.public_key_file);
    archive = std::make_unique<audit::AuditArchive>(loop, audit_cfg, log);
    filter = std::make_unique<filterproc::FilterProcess>(loop, *archive, 65536, log, boundary());
    connect(true);
    connect(false);
  }
  ~ReloadFixture() {
    filter.reset();
    archive.reset();
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  ReloadFixture(const ReloadFixture&) = delete;
  ReloadFixture& operator=(const ReloadFixture&) = delete;

  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  }

  void install(policy::LoadedPolicy&& p) {
    filterproc::PolicyIdentity id{p.version, p.sha256};
    filter->replace_pipelines(std::move(p.pipelines.low_to_high), std::move(p.pipelines.high_to_low),
                              std::move(id), std::move(p.tree));
  }

  void connect(bool is_low) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    Edge& e = is_low ? low : high;
    e.channel = std::make_unique<ipc::FrameChannel>(loop, sv[0]);
    ipc::FrameChannel::Callbacks cb;
    cb.on_frame = [&e](ipc::Frame&& f) {
      // As a real edge does once a link has taken what was released to it.
      if (e.confirm && f.header.kind == ipc::FrameKind::Stanza && f.header.direction != ipc::Direction::Local)
        e.channel->send_control(ipc::taken_ack(f.header.direction, f.header.seq));
      e.received.push_back(std::move(f));
    };
    cb.on_closed = [](const std::string&) {};
    e.channel->set_callbacks(std::move(cb));
    e.channel->start();
    if (is_low) filter->attach_low(sv[1]);
    else filter->attach_high(sv[1]);
  }

  // Sends a->b chat from edge(low), waits for its Ack; returns true if it was
  // released to edge(high).
  bool send_a_to_b() {
    const std::uint64_t s = seq++;
    ipc::Frame f;
    f.header.kind = ipc::FrameKind::Stanza;
    f.header.direction = ipc::Direction::LowToHigh;
    f.header.auth = ipc::AuthMethod::SaslExternal;
    f.header.flags = ipc::kFlagTls;
    f.header.seq = s;
    f.header.peer_domain = "a.test";
    f.body = "<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='chat' id='m" +
             std::to_string(s) + "'><body>hi</body></message>";
    const std::size_t high_before = high.received.size();
    REQUIRE(low.channel->send(f));
    pump_until([&] {
      for (const auto& r : low.received)
        if (r.header.kind == ipc::FrameKind::Ack && r.header.seq == s) return true;
      return false;
    });
    return high.received.size() > high_before;
  }

  void pump_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) loop.run_once(net::Duration(10));
    REQUIRE(done());
  }

  bool logged(const std::string& part) const {
    for (const auto& l : lines)
      if (l.find(part) != std::string::npos) return true;
    return false;
  }
};

}  // namespace

TEST_CASE_METHOD(ReloadFixture, "replace_pipelines: the new policy decides the next stanza",
                 "[policyfile][reload]") {
  policy::LoadedPolicy v1 = policy::load_policy(write("p.xml", policy_text("v1", "c.test")), kSchemaDir, registry);
  const std::string v1_id = v1.id();
  install(std::move(v1));
  CHECK(filter->policy().short_id() == v1_id);
  CHECK_FALSE(send_a_to_b());   // v1 allows a.test -> c.test only
  CHECK(logged("policy=" + v1_id + " "));
  CHECK(logged("rejected by default-deny"));

  policy::LoadedPolicy v2 = policy::load_policy(write("p.xml", policy_text("v2", "b.test")), kSchemaDir, registry);
  const std::string v2_id = v2.id();
  CHECK(v2_id.rfind("v2/", 0) == 0);
  CHECK(v2_id.size() == 3 + 12);
  install(std::move(v2));
  CHECK(send_a_to_b());
  CHECK(logged("released by to-b.test policy=" + v2_id + " "));
  CHECK(filter->counters().released == 1);
  CHECK(filter->counters().rejected == 1);
}

TEST_CASE_METHOD(ReloadFixture, "a broken policy never reaches the process: the running one keeps deciding",
                 "[policyfile][reload]") {
  const std::string path = write("p.xml", policy_text("good", "b.test"));
  install(policy::load_policy(path, kSchemaDir, registry));
  const std::string running = filter->policy().short_id();

  // The officer breaks the file (not well-formed), then makes a meaning error.
  write("p.xml", "<policy xmlns='urn:portcullis:policy:1' version='bad'>\n  <direction from='low'\n");
  CHECK_THROWS_AS(policy::load_policy(path, kSchemaDir, registry), config::ConfigError);
  std::string broken = policy_text("bad2", "b.test");
  broken.replace(broken.find("a.test"), 6, "a..test");
  write("p.xml", broken);
  try {
    policy::load_policy(path, kSchemaDir, registry);
    FAIL("expected ConfigError");
  } catch (const config::ConfigError& e) {
    CHECK(e.line() == 5);
    CHECK(e.column() == 7);
  }

  CHECK(filter->policy().short_id() == running);
  CHECK(send_a_to_b());
  CHECK(send_a_to_b());
  CHECK(filter->counters().released == 2);
}

TEST_CASE_METHOD(ReloadFixture, "the policy tree lives as long as its pipelines, no longer",
                 "[policyfile][reload]") {
  std::weak_ptr<const policy::PolicyNode> first_tree;
  {
    policy::LoadedPolicy p = policy::load_policy(write("p.xml", policy_text("v1", "b.test")), kSchemaDir, registry);
    first_tree = p.tree;
    install(std::move(p));
  }
  CHECK_FALSE(first_tree.expired());   // held by the filter process
  CHECK(send_a_to_b());
  install(policy::load_policy(write("p.xml", policy_text("v2", "c.test")), kSchemaDir, registry));
  CHECK(first_tree.expired());         // released with the old pipelines
  CHECK_FALSE(send_a_to_b());
}
