// Delivery accounting on an outbound link (XEP-0198 acknowledgements, or the
// TCP proof without stream management), against a scripted fake far server on
// loopback: a peer that acknowledges part of a batch and then drops the link,
// one that reports more than was written, one that refuses stream management,
// one that does not offer it. The link authenticates by dialback over plain
// TCP so the script stays readable; TLS and SASL are covered by the interop tests.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "guard/s2s/outbound_link.h"
#include "guard/xmpp/element.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

// What the link told its host about each released stanza, by ack.
struct Fate {
  bool taken = false;
  int taken_times = 0;
  std::string outcome;   // "delivered", "lost", "settled" (or "" while open)
  std::string text;
  int outcomes = 0;
  bool outcome_before_taken = false;   // the filter would count a late take as unknown
};

class FakeHost final : public s2s::SessionHost {
 public:
  FakeHost() : peering_({}) {
    side_.name = "high";
    side_.dialback_secret_file = "unused";
    side_.negotiation_timeout_ms = 5000;
  }
  const config::Side& side() const override { return side_; }
  const s2s::PeeringTable& peering() const override { return peering_; }
  bool fronts(std::string_view d) const override { return d == "near.test"; }
  const std::string& dialback_secret() const override { return secret_; }
  net::TlsContext& tls() override { throw std::logic_error("no TLS in this test"); }
  net::EventLoop& loop() override { return loop_; }
  Logger& log() override { return log_; }
  bool on_inbound_stanza(xmpp::Element, const s2s::InboundMeta&) override { return false; }
  void request_verify(const std::string&, const std::string&, const std::string&, const std::string&,
                      std::function<void(s2s::VerifyResult)> done) override {
    done(s2s::VerifyResult::Error);
  }
  void send_local(xmpp::Element) override {}
  void undeliverable(xmpp::Element, xmpp::StanzaError) override { ++undeliverable_; }
  void released_taken(std::uint64_t ack) override {
    fates[ack].taken = true;
    ++fates[ack].taken_times;
  }
  void released_delivered(std::uint64_t ack, std::string_view proof) override { outcome(ack, "delivered", proof); }
  void released_lost(std::uint64_t ack, std::string_view reason) override { outcome(ack, "lost", reason); }
  void released_settled(std::uint64_t ack, std::string_view why) override { outcome(ack, "settled", why); }
  void inbound_closed(s2s::InboundSession*) override {}
  void link_closed(s2s::OutboundLink*) override { closed = true; }
  void connection_event(std::string_view what, const s2s::InboundMeta&) override { events.emplace_back(what); }
  void refused_connection(std::string_view what, const s2s::InboundMeta& m, std::string_view) override {
    connection_event(what, m);
  }
  void edge_refusal(const xmpp::Element&, const s2s::InboundMeta&, xmpp::StanzaErrorCondition, std::string_view,
                    std::string_view) override {}

  template <class Pred>
  bool run_until(Pred pred, std::chrono::seconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > end) return false;
      loop_.run_once(10ms);
    }
    return true;
  }
  std::size_t count(const std::string& outcome) const {
    std::size_t n = 0;
    for (const auto& [ack, f] : fates) n += f.outcome == outcome;
    return n;
  }
  std::size_t settled_count() const {
    std::size_t n = 0;
    for (const auto& [ack, f] : fates) n += !f.outcome.empty();
    return n;
  }

  std::map<std::uint64_t, Fate> fates;
  std::vector<std::string> events;
  bool closed = false;
  int undeliverable_ = 0;

 private:
  void outcome(std::uint64_t ack, const char* what, std::string_view text) {
    Fate& f = fates[ack];
    f.outcome_before_taken = f.outcome_before_taken || !f.taken;
    f.outcome = what;
    f.text = std::string(text);
    ++f.outcomes;
  }
  config::Side side_;
  s2s::PeeringTable peering_;
  std::string secret_ = "a dialback secret for the test";
  net::SteadyClock clock_;
  net::EventLoop loop_{clock_};
  Logger log_{"edge-high", Logger::Target::Capture, LogLevel::Debug};
};

// A far server on 127.0.0.1 run by a script on its own thread, with blocking
// reads: it accepts one connection and speaks XMPP as text.
class FakePeer {
 public:
  FakePeer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 1) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~FakePeer() {
    if (thread_.joinable()) thread_.join();
    if (conn_ >= 0) ::close(conn_);
    ::close(fd_);
  }
  int port() const { return port_; }

  void run(std::function<void(FakePeer&)> script) {
    thread_ = std::thread([this, script] {
      conn_ = ::accept(fd_, nullptr, nullptr);
      timeval tv{5, 0};
      ::setsockopt(conn_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      script(*this);
    });
  }
  void join() { thread_.join(); }

  // Reads until `part` has been received `times` times in all (false on
  // timeout or close); returns with everything read so far in received().
  bool wait_for(const std::string& part, std::size_t times = 1) {
    while (occurrences(part) < times) {
      char buf[65536];
      const ssize_t n = ::recv(conn_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      std::lock_guard<std::mutex> g(m_);
      in_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  void send(const std::string& s) { (void)!::write(conn_, s.data(), s.size()); }
  // Drops the link without a stream close (as a crashed or cut-off server).
  void drop() {
    ::shutdown(conn_, SHUT_RDWR);
    ::close(conn_);
    conn_ = -1;
  }
  std::string received() {
    std::lock_guard<std::mutex> g(m_);
    return in_;
  }

  // Stream header, features (dialback, and sm when offered), dialback valid.
  bool authenticate(bool offer_sm) {
    if (!wait_for("version='1.0'")) return false;
    send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
         "xmlns:db='jabber:server:dialback' from='far.test' to='near.test' id='s1' version='1.0'><stream:features>"
         "<dialback xmlns='urn:xmpp:features:dialback'/>" +
         std::string(offer_sm ? "<sm xmlns='urn:xmpp:sm:3'><optional/></sm>" : "") + "</stream:features>");
    if (!wait_for("</db:result>")) return false;
    send("<db:result from='far.test' to='near.test' type='valid'/>");
    return true;
  }
  // Authenticated, stream management offered and enabled.
  bool enable_sm() {
    if (!authenticate(true) || !wait_for("<enable xmlns='urn:xmpp:sm:3'/>")) return false;
    send("<enabled xmlns='urn:xmpp:sm:3'/>");
    return true;
  }

 private:
  // Counted incrementally: megabytes arrive in the backlog test.
  std::size_t occurrences(const std::string& part) {
    std::lock_guard<std::mutex> g(m_);
    auto& [n, from] = seen_[part];
    for (auto p = in_.find(part, from); p != std::string::npos; p = in_.find(part, p + part.size())) {
      ++n;
      from = p + part.size();
    }
    if (in_.size() >= part.size()) from = std::max(from, in_.size() - part.size() + 1);
    return n;
  }
  std::map<std::string, std::pair<std::size_t, std::size_t>> seen_;   // part -> (count, scanned up to)
  int fd_ = -1, conn_ = -1, port_ = 0;
  std::thread thread_;
  std::mutex m_;
  std::string in_;
};

config::Peer dialback_peer(int port) {
  config::Peer p;
  p.domain_pattern = "far.test";
  p.host = "127.0.0.1";
  p.port = port;
  p.auth = config::PeerAuth::Dialback;
  p.tls = config::PeerTls::Forbidden;
  return p;
}

xmpp::Element message(int i) {
  xmpp::Element m("jabber:server", "message");
  m.set_attr("from", "alice@near.test");
  m.set_attr("to", "bob@far.test");
  m.set_attr("id", "m" + std::to_string(i));
  m.add_child("jabber:server", "body").add_text("hello " + std::to_string(i));
  return m;
}

// Over a link to `peer` running `script`: n messages (acks first_ack, +1, ...),
// then the loop runs until the link has closed.
void run_to_close(FakeHost& host, FakePeer& peer, int n, std::uint64_t first_ack,
                  std::function<void(FakePeer&)> script) {
  const config::Peer cfg = dialback_peer(peer.port());
  peer.run(std::move(script));
  s2s::OutboundLink link(host, "near.test", "far.test", cfg);
  for (int i = 0; i < n; ++i) link.send(message(i + 1), first_ack + static_cast<std::uint64_t>(i));
  REQUIRE(host.run_until([&] { return host.closed; }));
  peer.join();
}

// The peer has read n messages and a request for an acknowledgement.
bool batch_and_request(FakePeer& p, std::size_t n) {
  return p.wait_for("</message>", n) && p.wait_for("<r xmlns='urn:xmpp:sm:3'/>");
}

}  // namespace

TEST_CASE("a peer that acknowledges part of a batch and drops the link: acknowledged delivered, the rest lost",
          "[s2s][delivery]") {
  FakeHost host;
  FakePeer peer;
  std::atomic<bool> script_ok{false};
  run_to_close(host, peer, 5, 101, [&](FakePeer& p) {
    // All five written and a request for an acknowledgement: three counted, then gone.
    if (!p.enable_sm() || !batch_and_request(p, 5)) return;
    p.send("<a xmlns='urn:xmpp:sm:3' h='3'/>");
    std::this_thread::sleep_for(100ms);
    p.drop();
    script_ok = true;
  });
  REQUIRE(script_ok);
  REQUIRE(host.fates.size() == 5);
  for (int i = 1; i <= 5; ++i) {
    const Fate& f = host.fates[static_cast<std::uint64_t>(100 + i)];
    INFO("stanza " << i << ": " << f.outcome << " " << f.text);
    CHECK(f.taken_times == 1);    // one credit back per stanza, never two
    CHECK(f.outcomes == 1);       // exactly one outcome per stanza
    CHECK(f.outcome == (i <= 3 ? "delivered" : "lost"));
    if (i <= 3) CHECK(f.text == "XEP-0198 acknowledgement");
    else CHECK_THAT(f.text, Catch::Contains("link closed"));
  }
}

TEST_CASE("an acknowledgement that does not match what was written fails the link and loses the unproven",
          "[s2s][delivery]") {
  // More than written, negative, not a number, beyond 32 bits, empty.
  for (const std::string h : {"7", "-1", "x1", "4294967296", ""}) {
    DYNAMIC_SECTION("h='" << h << "'") {
      FakeHost host;
      FakePeer peer;
      std::atomic<bool> saw_error{false};
      run_to_close(host, peer, 2, 1, [&](FakePeer& p) {
        if (!p.enable_sm() || !batch_and_request(p, 2)) return;
        p.send("<a xmlns='urn:xmpp:sm:3' h='" + h + "'/>");
        saw_error = p.wait_for("<undefined-condition") && p.wait_for("</stream:stream>");
      });
      CHECK(saw_error);
      CHECK(host.count("lost") == 2);
      CHECK(host.count("delivered") == 0);
    }
  }
}

TEST_CASE("without stream management the peer's TCP acknowledgement proves delivery", "[s2s][delivery]") {
  for (const bool refuse : {false, true}) {
    DYNAMIC_SECTION((refuse ? "sm offered, then refused" : "sm not offered")) {
      FakeHost host;
      FakePeer peer;
      const config::Peer cfg = dialback_peer(peer.port());
      std::atomic<bool> done{false};
      std::atomic<bool> enable_seen{false};
      peer.run([&](FakePeer& p) {
        if (!p.authenticate(refuse)) return;
        if (refuse) {
          enable_seen = p.wait_for("<enable");
          p.send("<failed xmlns='urn:xmpp:sm:3'><service-unavailable "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
        }
        p.wait_for("</message>", 4);
        // Hold the link open until the test has seen the outcomes.
        while (!done) std::this_thread::sleep_for(10ms);
      });
      s2s::OutboundLink link(host, "near.test", "far.test", cfg);
      for (int i = 1; i <= 4; ++i) link.send(message(i), static_cast<std::uint64_t>(i));
      const bool all = host.run_until([&] { return host.count("delivered") == 4; });
      done = true;
      peer.join();
      REQUIRE(all);
      CHECK(enable_seen == refuse);
      for (const auto& [ack, f] : host.fates) {
        CHECK(f.taken_times == 1);
        CHECK(f.outcomes == 1);
        CHECK_THAT(f.text, Catch::Contains("TCP acknowledgement"));
      }
      // No <r/> is sent before stream management is on (nor after <failed/>).
      CHECK(peer.received().find("<r xmlns") == std::string::npos);
    }
  }
}

TEST_CASE("a stanza the peer never acknowledges is lost when the link is cut, not delivered", "[s2s][delivery]") {
  FakeHost host;
  FakePeer peer;
  run_to_close(host, peer, 3, 1, [&](FakePeer& p) {
    // Receives everything, answers no <r/>, and goes away.
    if (p.enable_sm() && batch_and_request(p, 3)) p.drop();
  });
  CHECK(host.count("lost") == 3);
  CHECK(host.count("delivered") == 0);
  CHECK(host.settled_count() == 3);
}

TEST_CASE("the peer's last <a/> after our close still proves what it counts", "[s2s][delivery]") {
  FakeHost host;
  FakePeer peer;
  const config::Peer cfg = dialback_peer(peer.port());
  std::atomic<bool> closing{false};
  peer.run([&](FakePeer& p) {
    if (!p.enable_sm() || !batch_and_request(p, 3)) return;
    // Our close arrives; the peer answers as Prosody does: a final <a/>, then its close.
    if (!p.wait_for("</stream:stream>")) return;
    closing = true;
    p.send("<a xmlns='urn:xmpp:sm:3' h='2'/></stream:stream>");
    std::this_thread::sleep_for(100ms);
    p.drop();
  });
  s2s::OutboundLink link(host, "near.test", "far.test", cfg);
  for (int i = 1; i <= 3; ++i) link.send(message(i), static_cast<std::uint64_t>(i));
  REQUIRE(host.run_until([&] { return peer.received().find("<r xmlns") != std::string::npos; }));
  link.close();
  REQUIRE(host.run_until([&] { return host.closed; }));
  peer.join();
  CHECK(closing);
  CHECK(host.fates[1].outcome == "delivered");
  CHECK(host.fates[2].outcome == "delivered");
  CHECK(host.fates[3].outcome == "lost");
}

TEST_CASE("a proof that comes while the backlog holds a stanza's credit gives the credit first, once",
          "[s2s][delivery]") {
  // Far more than kAckMark written while the peer does not read: the credits
  // of the later stanzas are held. The peer then reads half and acknowledges
  // it while our backlog is still megabytes (held credits among them), then
  // the rest: each stanza is taken before it is delivered, and taken once.
  FakeHost host;
  FakePeer peer;
  const config::Peer cfg = dialback_peer(peer.port());
  constexpr int kCount = 300;   // 19 MiB: more than loopback's socket buffers hold
  const std::string body(64 * 1024, 'x');
  std::atomic<bool> go{false};
  peer.run([&](FakePeer& p) {
    if (!p.enable_sm()) return;
    while (!go) std::this_thread::sleep_for(5ms);
    if (!p.wait_for("</message>", kCount / 2)) return;
    p.send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(kCount / 2) + "'/>");
    if (!p.wait_for("</message>", kCount)) return;
    p.send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(kCount) + "'/>");
    p.wait_for("never", 1);   // until the link closes
  });
  s2s::OutboundLink link(host, "near.test", "far.test", cfg);
  for (int i = 1; i <= kCount; ++i) {
    xmpp::Element m = message(i);
    m.add_child("jabber:server", "subject").add_text(body);
    link.send(std::move(m), static_cast<std::uint64_t>(i));
  }
  REQUIRE(host.run_until([&] { return link.ready() && link.pending_output() > s2s::OutboundLink::kAckMark; }));
  std::size_t taken_early = 0;
  for (const auto& [ack, f] : host.fates) taken_early += f.taken;
  CHECK(taken_early < static_cast<std::size_t>(kCount));   // some credits are held by the backlog
  go = true;
  REQUIRE(host.run_until([&] { return host.count("delivered") == kCount; }, 20s));
  for (const auto& [ack, f] : host.fates) {
    INFO("stanza " << ack);
    CHECK(f.taken_times == 1);
    CHECK(f.outcomes == 1);
    CHECK_FALSE(f.outcome_before_taken);
  }
  link.close();
  host.run_until([&] { return host.closed; });
  peer.join();
}
