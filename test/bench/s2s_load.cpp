// s2s_load: an S2S load generator and counting receiver for the guard-alone
// benchmark (bench_guard.py) and the flow-control interop test.
//
// One process plays one XMPP server domain with Portcullis's own S2S code
// (guard/s2s: OutboundLink, InboundSession), so every stream is real S2S with
// STARTTLS, certificate checks and SASL EXTERNAL:
//  - it listens (--listen) and counts every stanza it receives: messages by
//    recipient domain, latency from the send time the generator wrote into
//    the body (CLOCK_MONOTONIC, same machine), error stanzas by condition;
//  - with --send-to it opens --streams outbound streams (one TCP connection
//    each) to the domain of that JID, through the --peer row for it, and sends
//    --count messages in all, as fast as the streams take them (flood) or at
//    --rate per second; a stream is fed only while it holds less than 256 KiB
//    unwritten (TCP flow control does the rest).
// It stops when it has sent everything and heard nothing for --quiet-ms, when
// --expect messages arrived, after --duration-ms, or on SIGTERM/SIGINT, and
// writes its figures as one JSON object to --out (or stdout).
//
// --domain may be given again: further domains served (the first is the one
// it sends as); --send-to may be given again: --count messages to each.
// --stall-domain D --stall-ms M: the first stream that delivers a message for
// domain D stops being read for M ms (a slow far server). --expect N: stop at
// N messages received; --stay: after writing the figures keep every stream
// open until SIGTERM (memory per idle stream).
//
//   s2s_load --domain b.test --listen 127.0.0.3:5269 --cert b.pem --key b.key
//            --ca ca.pem --peer a.test=127.0.0.2:5269 --out recv.json
//   s2s_load --domain a.test --listen 127.0.0.2:5269 --cert a.pem --key a.key
//            --ca ca.pem --peer b.test=127.0.0.4:5269 --send-to bob@b.test
//            --count 100000 --streams 4 --out send.json
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "guard/net/connection.h"
#include "guard/net/event_loop.h"
#include "guard/net/tls.h"
#include "guard/s2s/inbound_session.h"
#include "guard/s2s/outbound_link.h"
#include "guard/s2s/peering.h"
#include "guard/s2s/session_host.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_error.h"

using namespace portcullis;

namespace {

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const double k = (static_cast<double>(v.size()) - 1) * p / 100.0;
  const auto lo = static_cast<std::size_t>(k);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (k - static_cast<double>(lo));
}

struct Options {
  std::string domain, listen_host, cert, key, ca, out, stall_domain;
  std::vector<std::string> also_domains;   // served too (--domain given again)
  std::vector<std::string> send_to;        // one or more recipients, --count each
  int listen_port = 5269;
  std::vector<config::Peer> peers;
  std::uint64_t count = 0, expect = 0;
  int streams = 1;
  double rate = 0;            // messages per second in all; 0: flood
  std::size_t size = 100;     // body filler bytes
  std::uint32_t quiet_ms = 3000, duration_ms = 0, stall_ms = 0, start_delay_ms = 0;
  bool stay = false;          // after writing the figures, keep every stream open until SIGTERM
};

bool parse_endpoint(const std::string& s, std::string& host, int& port) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  host = s.substr(0, colon);
  port = std::atoi(s.c_str() + colon + 1);
  return port > 0 && port < 65536;
}

[[noreturn]] void usage_error(const std::string& what) {
  std::cerr << "s2s_load: " << what << "\n";
  std::exit(64);
}

Options parse(int argc, char** argv) {
  Options o;
  static const option longopts[] = {
      {"domain", required_argument, nullptr, 'd'},   {"listen", required_argument, nullptr, 'l'},
      {"cert", required_argument, nullptr, 'c'},     {"key", required_argument, nullptr, 'k'},
      {"ca", required_argument, nullptr, 'a'},       {"peer", required_argument, nullptr, 'p'},
      {"send-to", required_argument, nullptr, 's'},  {"count", required_argument, nullptr, 'n'},
      {"streams", required_argument, nullptr, 'S'},  {"rate", required_argument, nullptr, 'r'},
      {"size", required_argument, nullptr, 'z'},     {"quiet-ms", required_argument, nullptr, 'q'},
      {"duration-ms", required_argument, nullptr, 'D'}, {"expect", required_argument, nullptr, 'e'},
      {"stall-domain", required_argument, nullptr, 'x'}, {"stall-ms", required_argument, nullptr, 'X'},
      {"start-delay-ms", required_argument, nullptr, 'w'}, {"out", required_argument, nullptr, 'o'},
      {"stay", no_argument, nullptr, 'y'},
      {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
    const std::string v = optarg ? optarg : "";
    switch (c) {
      case 'd':
        if (o.domain.empty()) o.domain = v;
        else o.also_domains.push_back(v);
        break;
      case 'l':
        if (!parse_endpoint(v, o.listen_host, o.listen_port)) usage_error("--listen: expected IP:PORT, got " + v);
        break;
      case 'c': o.cert = v; break;
      case 'k': o.key = v; break;
      case 'a': o.ca = v; break;
      case 'p': {
        const auto eq = v.find('=');
        config::Peer p;
        if (eq == std::string::npos || !parse_endpoint(v.substr(eq + 1), p.host, p.port))
          usage_error("--peer: expected DOMAIN=IP:PORT, got " + v);
        p.domain_pattern = v.substr(0, eq);
        o.peers.push_back(p);
        break;
      }
      case 's': o.send_to.push_back(v); break;
      case 'n': o.count = std::strtoull(v.c_str(), nullptr, 10); break;
      case 'S': o.streams = std::max(1, std::atoi(v.c_str())); break;
      case 'r': o.rate = std::atof(v.c_str()); break;
      case 'z': o.size = std::strtoull(v.c_str(), nullptr, 10); break;
      case 'q': o.quiet_ms = static_cast<std::uint32_t>(std::atoi(v.c_str())); break;
      case 'D': o.duration_ms = static_cast<std::uint32_t>(std::atoi(v.c_str())); break;
      case 'e': o.expect = std::strtoull(v.c_str(), nullptr, 10); break;
      case 'x': o.stall_domain = v; break;
      case 'X': o.stall_ms = static_cast<std::uint32_t>(std::atoi(v.c_str())); break;
      case 'w': o.start_delay_ms = static_cast<std::uint32_t>(std::atoi(v.c_str())); break;
      case 'o': o.out = v; break;
      case 'y': o.stay = true; break;
      default: usage_error("unknown option (see the comment at the top of test/bench/s2s_load.cpp)");
    }
  }
  if (o.domain.empty() || o.cert.empty() || o.key.empty() || o.ca.empty())
    usage_error("--domain, --cert, --key and --ca are required");
  if (o.listen_host.empty()) usage_error("--listen is required (errors come back over S2S)");
  if (!o.send_to.empty() && o.count == 0) usage_error("--send-to needs --count");
  return o;
}

class LoadServer final : public s2s::SessionHost {
 public:
  LoadServer(net::EventLoop& loop, const Options& o, Logger& log)
      : loop_(loop), o_(o), log_(log), peering_(o.peers) {
    side_.name = "load";
    side_.fronts = {o.domain};
    side_.cert_file = o.cert;
    side_.key_file = o.key;
    side_.ca_file = o.ca;
    side_.peers = o.peers;
    side_.max_queue = 100000;
    side_.idle_timeout_ms = 3600000;
    side_.keepalive_interval_ms = 600000;
    net::TlsConfig tc;
    tc.cert_file = o.cert;
    tc.key_file = o.key;
    tc.ca_file = o.ca;
    tls_ = std::make_unique<net::TlsContext>(tc);
    listener_ = std::make_unique<net::Listener>(loop_, net::Endpoint{o.listen_host, o.listen_port},
                                                [this](int fd, net::Endpoint peer) { accept(fd, std::move(peer)); });
  }

  // SessionHost
  const config::Side& side() const override { return side_; }
  const s2s::PeeringTable& peering() const override { return peering_; }
  bool fronts(std::string_view d) const override {
    return d == o_.domain || std::find(o_.also_domains.begin(), o_.also_domains.end(), d) != o_.also_domains.end();
  }
  const std::string& dialback_secret() const override { return no_secret_; }
  net::TlsContext& tls() override { return *tls_; }
  net::EventLoop& loop() override { return loop_; }
  Logger& log() override { return log_; }
  void request_verify(const std::string&, const std::string&, const std::string&, const std::string&,
                      std::function<void(s2s::VerifyResult)> done) override {
    done(s2s::VerifyResult::Error);
  }
  void send_local(xmpp::Element) override {}
  void undeliverable(xmpp::Element, xmpp::StanzaError) override { ++local_bounces_; }
  void inbound_closed(s2s::InboundSession* s) override {
    sessions_by_flow_.erase(s->flow_id);
    loop_.post([this, s] { inbound_.erase(s); });
  }
  void link_closed(s2s::OutboundLink* l) override {
    for (auto& link : links_)
      if (link.get() == l) ++links_closed_;
  }
  void connection_event(std::string_view what, const s2s::InboundMeta&) override { LogLine(log_, LogLevel::Debug) << what; }
  void refused_connection(std::string_view what, const s2s::InboundMeta&, std::string_view) override {
    LogLine(log_, LogLevel::Debug) << what;
  }
  void edge_refusal(const xmpp::Element&, const s2s::InboundMeta&, xmpp::StanzaErrorCondition, std::string_view,
                    std::string_view reason) override {
    LogLine(log_, LogLevel::Debug) << "refused: " << reason;
  }

  bool on_inbound_stanza(xmpp::Element stanza, const s2s::InboundMeta& meta) override {
    last_rx_ns_ = mono_ns();
    if (stanza.attr_or("type") == "error") {
      auto err = xmpp::read_stanza_error(stanza);
      ++errors_[err ? std::string(xmpp::to_string(err->condition)) : std::string("?")];
      return false;
    }
    if (stanza.name() != "message") return false;
    auto to = xmpp::parse_jid(stanza.attr_or("to"));
    const std::string dom = to ? to->domain : "?";
    ++received_[dom];
    last_rx_by_domain_[dom] = last_rx_ns_;
    ++received_total_;
    if (first_rx_ns_ == 0) first_rx_ns_ = last_rx_ns_;
    const xmpp::Element* b = stanza.find_child("body");
    const std::string body = b ? b->text() : std::string{};
    if (body.rfind("t=", 0) == 0) {
      const std::int64_t sent = std::strtoll(body.c_str() + 2, nullptr, 10);
      if (latencies_ms_.size() < 2000000) latencies_ms_.push_back(static_cast<double>(last_rx_ns_ - sent) / 1e6);
    }
    if (!o_.stall_domain.empty() && dom == o_.stall_domain && !stalled_) {
      auto it = sessions_by_flow_.find(meta.flow_id);
      if (it != sessions_by_flow_.end()) {
        stalled_ = true;
        s2s::InboundSession* s = it->second;
        const std::uint64_t id = meta.flow_id;
        s->set_reading(false);
        stall_started_ns_ = mono_ns();
        loop_.add_timer(net::Duration(o_.stall_ms), [this, id] {
          auto again = sessions_by_flow_.find(id);
          if (again != sessions_by_flow_.end()) again->second->set_reading(true);
          stall_ended_ns_ = mono_ns();
        });
      }
    }
    if (o_.expect > 0 && received_total_ >= o_.expect) finish();
    return false;
  }

  void start_sending() {
    for (std::size_t t = 0; t < o_.send_to.size(); ++t) {
      auto to = xmpp::parse_jid(o_.send_to[t]);
      if (!to) usage_error("--send-to: not a JID: " + o_.send_to[t]);
      const config::Peer* row = peering_.find(to->domain);
      if (row == nullptr) usage_error("--send-to: no --peer row for " + to->domain);
      for (int i = 0; i < o_.streams; ++i) {
        links_.push_back(std::make_unique<s2s::OutboundLink>(*this, o_.domain, to->domain, *row));
        link_target_.push_back(t);
      }
    }
    sent_by_target_.assign(o_.send_to.size(), 0);
    last_sent_by_target_.assign(o_.send_to.size(), 0);
    total_ = o_.count * o_.send_to.size();
    filler_.assign(o_.size, 'x');
    send_start_ns_ = mono_ns();
    cpu_at_start_ = cpu_seconds();
    pump();
  }

  void pump() {
    pump_timer_ = 0;
    const std::int64_t now = mono_ns();
    std::uint64_t allowed = total_;
    if (o_.rate > 0) {
      allowed = std::min<std::uint64_t>(
          total_, static_cast<std::uint64_t>(static_cast<double>(now - send_start_ns_) / 1e9 * o_.rate) + 1);
    }
    bool progress = true;
    while (sent_ < allowed && progress) {
      progress = false;
      for (std::size_t i = 0; i < links_.size(); ++i) {
        if (sent_ >= allowed) break;
        auto& link = links_[i];
        const std::size_t t = link_target_[i];
        if (link->closed() || sent_by_target_[t] >= o_.count) continue;
        // Until the stream is up, a bounded head start; then while it holds little.
        if (!link->ready() ? link->queued() >= 64 : link->pending_output() >= 256 * 1024) continue;
        send_one(*link, static_cast<int>(i), t);
        progress = true;
      }
    }
    if (sent_ >= total_) {
      send_end_ns_ = mono_ns();
      return;
    }
    bool all_closed = true;
    for (auto& link : links_) all_closed = all_closed && link->closed();
    if (all_closed) {
      send_end_ns_ = mono_ns();
      LogLine(log_, LogLevel::Error) << "every stream closed after " << sent_ << " message(s)";
      finish();
      return;
    }
    pump_timer_ = loop_.add_timer(net::Duration(1), [this] { pump(); });
  }

  void send_one(s2s::OutboundLink& link, int stream, std::size_t target) {
    xmpp::Element m(std::string(xmpp::kNsServer), "message");
    m.set_attr("from", "load" + std::to_string(stream) + "@" + o_.domain + "/r");
    m.set_attr("to", o_.send_to[target]);
    m.set_attr("type", "chat");
    m.set_attr("id", "s" + std::to_string(stream) + "-" + std::to_string(sent_));
    m.add_child(std::string(xmpp::kNsServer), "body").add_text("t=" + std::to_string(mono_ns()) + " " + filler_);
    link.send(std::move(m));
    ++sent_;
    ++sent_by_target_[target];
    last_sent_by_target_[target] = mono_ns();
  }

  void tick() {
    const std::int64_t now = mono_ns();
    const bool sending = !o_.send_to.empty();
    if (sending && sent_ >= total_ && send_end_ns_ != 0) {
      const std::int64_t last = std::max(send_end_ns_, last_rx_ns_);
      if (now - last >= static_cast<std::int64_t>(o_.quiet_ms) * 1000000) return finish();
    }
    if (o_.duration_ms > 0 && now - started_ns_ >= static_cast<std::int64_t>(o_.duration_ms) * 1000000) return finish();
    loop_.add_timer(net::Duration(50), [this] { tick(); });
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    std::ostringstream j;
    j.setf(std::ios::fixed);
    j.precision(3);
    const double send_s = send_end_ns_ > send_start_ns_ ? static_cast<double>(send_end_ns_ - send_start_ns_) / 1e9 : 0;
    const double rx_s = last_rx_ns_ > first_rx_ns_ ? static_cast<double>(last_rx_ns_ - first_rx_ns_) / 1e9 : 0;
    j << "{\"domain\":\"" << o_.domain << "\",\"sent\":" << sent_ << ",\"send_seconds\":" << send_s
      << ",\"received\":" << received_total_ << ",\"receive_seconds\":" << rx_s
      << ",\"received_per_second\":" << (rx_s > 0 ? static_cast<double>(received_total_) / rx_s : 0.0)
      << ",\"received_by_domain\":{";
    bool first = true;
    for (const auto& [d, n] : received_) {
      j << (first ? "" : ",") << "\"" << d << "\":" << n;
      first = false;
    }
    j << "},\"errors\":{";
    first = true;
    std::uint64_t errs = 0;
    for (const auto& [c, n] : errors_) {
      j << (first ? "" : ",") << "\"" << c << "\":" << n;
      errs += n;
      first = false;
    }
    j << "},\"errors_total\":" << errs << ",\"local_bounces\":" << local_bounces_
      << ",\"links_closed\":" << links_closed_ << ",\"latency_ms_p50\":" << pct(latencies_ms_, 50)
      << ",\"latency_ms_p99\":" << pct(latencies_ms_, 99) << ",\"cpu_seconds\":" << cpu_seconds()
      << ",\"cpu_seconds_sending\":" << (cpu_at_start_ >= 0 ? cpu_seconds() - cpu_at_start_ : 0.0)
      << ",\"stall_started_ns\":" << stall_started_ns_ << ",\"stall_ended_ns\":" << stall_ended_ns_
      << ",\"last_rx_ns_by_domain\":{";
    first = true;
    for (const auto& [d, t] : last_rx_by_domain_) {
      j << (first ? "" : ",") << "\"" << d << "\":" << t;
      first = false;
    }
    j << "},\"sent_by_target\":{";
    for (std::size_t t = 0; t < sent_by_target_.size(); ++t)
      j << (t ? "," : "") << "\"" << o_.send_to[t] << "\":" << sent_by_target_[t];
    j << "},\"last_sent_ns_by_target\":{";
    for (std::size_t t = 0; t < last_sent_by_target_.size(); ++t)
      j << (t ? "," : "") << "\"" << o_.send_to[t] << "\":" << last_sent_by_target_[t];
    j << "}}";
    if (o_.out.empty()) {
      std::cout << j.str() << std::endl;
    } else {
      std::ofstream(o_.out) << j.str() << "\n";
    }
    if (o_.stay && !stop_requested_) return;
    for (auto& l : links_) l->close();
    loop_.add_timer(net::Duration(200), [this] { loop_.stop(); });
  }

  void run() {
    started_ns_ = mono_ns();
    tick();
    if (!o_.send_to.empty()) {
      loop_.add_timer(net::Duration(o_.start_delay_ms), [this] { start_sending(); });
    }
  }
  void stop_now() {
    stop_requested_ = true;
    if (finished_) {
      for (auto& l : links_) l->close();
      loop_.add_timer(net::Duration(200), [this] { loop_.stop(); });
      return;
    }
    finish();
  }

 private:
  void accept(int fd, net::Endpoint peer) {
    auto conn = std::make_unique<net::Connection>(loop_, fd, peer);
    auto s = std::make_unique<s2s::InboundSession>(*this, std::move(conn));
    s2s::InboundSession* raw = s.get();
    raw->flow_id = next_flow_++;
    sessions_by_flow_[raw->flow_id] = raw;
    inbound_.emplace(raw, std::move(s));
    raw->start();
  }

  net::EventLoop& loop_;
  const Options& o_;
  Logger& log_;
  config::Side side_;
  s2s::PeeringTable peering_;
  std::string no_secret_;
  std::unique_ptr<net::TlsContext> tls_;
  std::unique_ptr<net::Listener> listener_;
  std::unordered_map<s2s::InboundSession*, std::unique_ptr<s2s::InboundSession>> inbound_;
  std::unordered_map<std::uint64_t, s2s::InboundSession*> sessions_by_flow_;
  std::uint64_t next_flow_ = 1;
  std::vector<std::unique_ptr<s2s::OutboundLink>> links_;
  std::vector<std::size_t> link_target_;   // index into --send-to, per link
  std::vector<std::uint64_t> sent_by_target_;
  std::vector<std::int64_t> last_sent_by_target_;
  std::map<std::string, std::int64_t> last_rx_by_domain_;
  std::uint64_t total_ = 0;
  std::string filler_;
  std::uint64_t sent_ = 0, received_total_ = 0, local_bounces_ = 0, links_closed_ = 0;
  std::map<std::string, std::uint64_t> received_, errors_;
  std::vector<double> latencies_ms_;
  std::int64_t started_ns_ = 0, send_start_ns_ = 0, send_end_ns_ = 0, first_rx_ns_ = 0, last_rx_ns_ = 0;
  std::int64_t stall_started_ns_ = 0, stall_ended_ns_ = 0;
  double cpu_at_start_ = -1;
  bool stalled_ = false, finished_ = false, stop_requested_ = false;
  net::TimerId pump_timer_ = 0;
};

LoadServer* g_server = nullptr;
net::EventLoop* g_loop = nullptr;

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Options o = parse(argc, argv);
  Logger log("s2s_load", Logger::Target::Stderr, std::getenv("S2S_LOAD_DEBUG") ? LogLevel::Debug : LogLevel::Warning);
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  g_loop = &loop;
  std::unique_ptr<LoadServer> server;
  try {
    server = std::make_unique<LoadServer>(loop, o, log);
  } catch (const std::exception& e) {
    std::cerr << "s2s_load: " << e.what() << "\n";
    return 1;
  }
  g_server = server.get();
  // SIGTERM/SIGINT: write the figures and stop (from the loop, via a poll).
  static volatile sig_atomic_t stop_requested = 0;
  struct sigaction sa {};
  sa.sa_handler = [](int) { stop_requested = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::function<void()> poll_stop = [&] {
    if (stop_requested) {
      server->stop_now();
      return;
    }
    loop.add_timer(net::Duration(100), poll_stop);
  };
  poll_stop();
  server->run();
  loop.run();
  return 0;
}
