// The filter process over real socketpairs, in one process: what it releases,
// what it refuses, and that every stanza frame is answered (fail closed).
#include <sys/stat.h>

#include <mutex>
#include <thread>

#include "test/unit/filterproc/filter_fixture.h"

using namespace portcullis;
using namespace filterproc_test;

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

TEST_CASE("the sender's Ack waits until the far edge confirms it took the stanza", "[filterproc][flow]") {
  // Flow control end to end: the near edge's stream credit comes back only
  // once the far edge has the stanza off its hands.
  Fixture fx;
  fx.high.confirm = false;
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.high) != nullptr; });
  fx.settle();
  CHECK_FALSE(has_ack(fx.low, 7));
  CHECK(fx.filter->awaiting_far() == 1);
  // A confirmation from the wrong edge, or with the wrong direction, names nothing.
  ipc::Frame wrong = ipc::taken_ack(first_stanza(fx.high)->header.direction, first_stanza(fx.high)->header.seq);
  REQUIRE(fx.low.channel->send_control(wrong));
  wrong.header.direction = ipc::Direction::HighToLow;
  REQUIRE(fx.high.channel->send_control(wrong));
  fx.settle();
  CHECK_FALSE(has_ack(fx.low, 7));
  CHECK(fx.filter->counters().unknown_acks == 2);
  REQUIRE(fx.high.channel->send_control(
      ipc::taken_ack(first_stanza(fx.high)->header.direction, first_stanza(fx.high)->header.seq)));
  fx.pump_until([&] { return has_ack(fx.low, 7); });
  CHECK(fx.filter->awaiting_far() == 0);
  CHECK(fx.filter->counters().far_confirmed == 1);
  CHECK(first_stanza(fx.low) == nullptr);   // no error: it crossed
}

TEST_CASE("a far edge that goes before confirming: in doubt in the archive, the sender told", "[filterproc][flow]") {
  Fixture fx;
  fx.high.confirm = false;
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.high) != nullptr; });
  fx.high.channel.reset();   // edge(high) dies
  fx.pump_until([&] { return has_ack(fx.low, 7) && first_stanza(fx.low) != nullptr; });
  CHECK(error_condition(*first_stanza(fx.low)) == "remote-server-timeout");
  CHECK(fx.filter->awaiting_far() == 0);
  CHECK(fx.filter->counters().far_in_doubt == 1);
  fx.pump_until([&] {
    for (const auto& e : events(fx.audit_dir.cfg.dir))
      if (e.kind == "in-doubt" && e.text.find("seq=7 message id=m1") != std::string::npos) return true;
    return false;
  });
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

TEST_CASE("a stanza is released only after an fdatasync that covers its record has returned", "[filterproc][audit]") {
  // The injected sync notes how many bytes of the segment it covered, and only
  // after the real fdatasync returned (taking a while, as a real disk does). The
  // far edge notes which syncs had returned when the stanza reached it. A filter
  // that released before syncing, or synced after releasing, fails this.
  std::mutex m;
  std::vector<std::pair<int, off_t>> synced;   // (fd, bytes covered), in order of completion
  audit::ArchiveHooks hooks;
  hooks.fdatasync = [&](int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) st.st_size = 0;   // (the writer's thread: no REQUIRE here)
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    const int rc = ::fdatasync(fd);
    std::lock_guard<std::mutex> g(m);
    if (rc == 0) synced.emplace_back(fd, st.st_size);
    return rc;
  };
  Fixture fx(false, std::move(hooks));
  std::vector<std::pair<int, off_t>> at_release;
  bool released = false;
  fx.high.on_receive = [&](const ipc::Frame& f) {
    if (f.header.kind != ipc::FrameKind::Stanza || released) return;
    released = true;
    std::lock_guard<std::mutex> g(m);
    at_release = synced;
  };
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(kChat)));
  fx.pump_until([&] { return first_stanza(fx.high) && has_ack(fx.low, 7); });
  fx.pump_until([&] { return decisions(fx.audit_dir.cfg.dir).size() == 1; });
  // Where the decision record ends in its segment file.
  std::uint64_t record_end = 0;
  std::string segment;
  std::string err;
  audit::read_archive(
      fx.audit_dir.cfg.dir,
      [&](const audit::StoredRecord& r, const audit::RecordLocation& loc) {
        if (std::holds_alternative<audit::DecisionRecord>(r.body)) {
          record_end = loc.offset + loc.length;
          segment = loc.segment->path;
        }
        return true;
      },
      [](const std::string&) {}, &err);
  REQUIRE(record_end > 0);
  // A sync of that segment (the file the fd refers to) covering the record had returned.
  struct stat seg {};
  REQUIRE(::stat(segment.c_str(), &seg) == 0);
  bool covered = false;
  for (const auto& [fd, bytes] : at_release) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_ino == seg.st_ino && static_cast<std::uint64_t>(bytes) >= record_end) covered = true;
  }
  CHECK(covered);
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

TEST_CASE("an edge's own refusal is archived as its rejected decision and never forwarded or answered",
          "[filterproc]") {
  Fixture fx;
  auto f = Fixture::stanza_frame(kChat, ipc::Direction::HighToLow, 41);   // it lies about its direction
  f.header.kind = ipc::FrameKind::Refusal;
  SECTION("as an edge sends it") {
    f.body = "policy-violation\tkind\tstanza kind iq not permitted for this peer\n" + kChat;
    REQUIRE(fx.low.channel->send_control(f));
    fx.pump_until([&] { return fx.filter->counters().edge_refusals == 1; });
    fx.pump_until([&] { return !decisions(fx.audit_dir.cfg.dir).empty(); });
    const auto d = decisions(fx.audit_dir.cfg.dir).back();
    CHECK(d.outcome == audit::Outcome::Rejected);
    CHECK(d.direction == audit::Direction::LowToHigh);   // the channel's side, not the frame's word
    CHECK(d.error_condition == "policy-violation");
    CHECK(d.from == "alice@a.test/r");
    CHECK(d.stanza_id == "m1");
    CHECK(d.original == kChat);
    CHECK(d.peer.domain == "a.test");
    REQUIRE(d.filters.size() == 1);
    CHECK(d.filters[0].filter == "edge(low)");
    CHECK(d.filters[0].rule_id == "edge:kind");
    CHECK(std::find(d.notes.begin(), d.notes.end(), std::pair<std::string, std::string>{"refused.check", "kind"}) !=
          d.notes.end());
  }
  SECTION("a hostile one: no valid condition, control characters, no stanza") {
    f.body = "not-a-condition\tk\x01nd\tline\x1b[2Jbreak";
    REQUIRE(fx.high.channel->send_control(f));
    fx.pump_until([&] { return !decisions(fx.audit_dir.cfg.dir).empty(); });
    const auto d = decisions(fx.audit_dir.cfg.dir).back();
    CHECK(d.outcome == audit::Outcome::Rejected);
    CHECK(d.direction == audit::Direction::HighToLow);
    CHECK(d.error_condition.empty());
    CHECK(d.filters.at(0).filter == "edge(high)");
    CHECK(d.filters.at(0).rule_id == "edge:k?nd");
    for (const auto& [k, v] : d.notes) {
      INFO(k << "=" << v);
      CHECK(v.find('\x1b') == std::string::npos);
    }
    CHECK(d.original.empty());
  }
  fx.settle();
  // Nothing crossed and nobody was answered: the edge answered its sender itself.
  CHECK(first_stanza(fx.high) == nullptr);
  CHECK(first_stanza(fx.low) == nullptr);
  CHECK(fx.filter->counters().released == 0);
}

TEST_CASE("an event's kind is read from the edge's own words, not from names a peer chose", "[filterproc]") {
  Fixture fx;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"inbound authenticated.example->b.test from 127.0.0.1:4000: stream error not-authorized: stanza before "
       "authentication", "stream-error"},
      {"inbound refused.example->b.test from 127.0.0.1:4001: authenticated by SASL EXTERNAL (CN=x)", "auth-success"},
      {"inbound a.test->b.test from 127.0.0.1:4002: SASL failure: not-authorized", "auth-failure"},
      {"inbound a.test->b.test from 127.0.0.1:4003: dialback verification failed for a.test->b.test", "auth-failure"},
      {"outbound b.test->a.test (127.0.0.1:5269): failed: closed before it was ready: reset", "link-failure"},
      {"inbound ?->? from 127.0.0.1:4004: TLS handshake failed: no application protocol", "tls-failure"},
      {"inbound tls.example->b.test from 127.0.0.1:4005: stream error policy-violation: TLS handshake failed",
       "stream-error"},
  };
  std::uint64_t seq = 100;
  for (const auto& [text, kind] : cases) {
    ipc::Frame f;
    f.header.kind = ipc::FrameKind::Event;
    f.header.direction = ipc::Direction::LowToHigh;
    f.header.auth = ipc::AuthMethod::Internal;
    f.header.seq = seq++;
    f.body = text;
    REQUIRE(fx.low.channel->send_control(f));
  }
  fx.pump_until([&] { return records_of<audit::ConnectionEvent>(fx.audit_dir.cfg.dir).size() >= cases.size(); });
  const auto evs = records_of<audit::ConnectionEvent>(fx.audit_dir.cfg.dir);
  for (const auto& c : cases) {
    INFO(c.first);
    const auto it = std::find_if(evs.begin(), evs.end(), [&](const audit::ConnectionEvent& e) { return e.text == c.first; });
    REQUIRE(it != evs.end());
    CHECK(it->kind == c.second);
  }
}

namespace {

std::size_t acks_for(const Edge& e, std::uint64_t seq) {
  std::size_t n = 0;
  for (const auto& f : e.received) n += f.header.kind == ipc::FrameKind::Ack && f.header.seq == seq;
  return n;
}

std::string note(const audit::ConnectionEvent& e, const std::string& key) {
  for (const auto& [k, v] : e.notes)
    if (k == key) return v;
  return {};
}

std::string chat(int i) {
  return "<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='chat' id='m" +
         std::to_string(i) + "'><body>hello</body></message>";
}

// Released from low to high with these seqs; edge(high) takes each, as a link does.
void release_and_take(Fixture& fx, const std::vector<std::uint64_t>& seqs) {
  fx.high.confirm = false;
  for (std::uint64_t s : seqs)
    REQUIRE(fx.low.channel->send(Fixture::stanza_frame(chat(static_cast<int>(s)), ipc::Direction::LowToHigh, s)));
  fx.pump_until([&] {
    std::size_t n = 0;
    for (const auto& f : fx.high.received) n += f.header.kind == ipc::FrameKind::Stanza;
    return n == seqs.size();
  });
  for (std::uint64_t s : seqs) REQUIRE(fx.high.channel->send_control(ipc::taken_ack(ipc::Direction::LowToHigh, s)));
  fx.pump_until([&] {
    for (std::uint64_t s : seqs)
      if (!has_ack(fx.low, s)) return false;
    return true;
  });
}

}  // namespace

TEST_CASE("delivery accounting: a taken stanza gives its credit back and waits for its outcome", "[filterproc][delivery]") {
  Fixture fx;
  release_and_take(fx, {7});
  CHECK(fx.filter->awaiting_far() == 0);        // the sender's stream may go on
  CHECK(fx.filter->awaiting_delivery() == 1);   // but the stanza's fate is open
  CHECK(fx.filter->counters().far_confirmed == 1);
}

TEST_CASE("delivered stanzas make one record per far domain with their frame seqs as ranges", "[filterproc][delivery]") {
  Fixture fx;
  const std::vector<std::uint64_t> seqs{7, 8, 9, 11};
  release_and_take(fx, seqs);
  for (std::uint64_t s : seqs)
    REQUIRE(fx.high.channel->send_control(
        ipc::accounting_ack(ipc::Direction::LowToHigh, s, ipc::kAckDelivered, "XEP-0198 acknowledgement")));
  fx.pump_until([&] { return fx.filter->counters().far_delivered == 4; });
  CHECK(fx.filter->awaiting_delivery() == 0);
  std::vector<audit::ConnectionEvent> delivered;
  fx.pump_until([&] {
    delivered.clear();
    for (const auto& e : events(fx.audit_dir.cfg.dir))
      if (e.kind == "delivered") delivered.push_back(e);
    return !delivered.empty();
  });
  REQUIRE(delivered.size() == 1);
  const auto& d = delivered[0];
  CHECK(d.side == "high");
  CHECK(d.peer.domain == "b.test");
  CHECK(note(d, "count") == "4");
  CHECK(note(d, "seqs") == "7-9,11");
  CHECK(note(d, "proof") == "XEP-0198 acknowledgement");
  CHECK(note(d, "from-edge") == "low");
  for (std::uint64_t s : seqs) CHECK(acks_for(fx.low, s) == 1);
  CHECK(first_stanza(fx.low) == nullptr);   // nobody was told of an error
}

TEST_CASE("a stanza lost with the far link is bounced and recorded in doubt, its credit given once",
          "[filterproc][delivery]") {
  Fixture fx;
  release_and_take(fx, {7});
  REQUIRE(fx.high.channel->send_control(
      ipc::accounting_ack(ipc::Direction::LowToHigh, 7, ipc::kAckLost, "link closed: connection reset")));
  fx.pump_until([&] { return first_stanza(fx.low) != nullptr; });
  CHECK(error_condition(*first_stanza(fx.low)) == "remote-server-timeout");
  CHECK(fx.filter->counters().far_lost == 1);
  CHECK(fx.filter->awaiting_delivery() == 0);
  fx.pump_until([&] {
    for (const auto& e : events(fx.audit_dir.cfg.dir))
      if (e.kind == "in-doubt" && e.text.find("seq=7 message id=m7") != std::string::npos &&
          e.text.find("connection reset") != std::string::npos)
        return true;
    return false;
  });
  fx.settle();
  CHECK(acks_for(fx.low, 7) == 1);
  for (const auto& e : events(fx.audit_dir.cfg.dir)) CHECK(e.kind != "delivered");
}

TEST_CASE("a stanza the far edge answered itself is recorded as undelivered, not bounced twice",
          "[filterproc][delivery]") {
  Fixture fx;
  release_and_take(fx, {7});
  REQUIRE(fx.high.channel->send_control(ipc::accounting_ack(
      ipc::Direction::LowToHigh, 7, ipc::kAckSettled, "could not deliver it (no route): answered with an error")));
  fx.pump_until([&] {
    for (const auto& e : events(fx.audit_dir.cfg.dir))
      if (e.kind == "undelivered" && e.side == "high" && e.text.find("id=m7") != std::string::npos &&
          e.text.find("no route") != std::string::npos)
        return true;
    return false;
  });
  fx.settle();
  CHECK(fx.filter->awaiting_delivery() == 0);
  CHECK(first_stanza(fx.low) == nullptr);   // the far edge's own error reply crosses as a stanza
  CHECK(acks_for(fx.low, 7) == 1);
}

TEST_CASE("a far edge that goes after taking a stanza: bounced and in doubt, no second credit", "[filterproc][delivery]") {
  Fixture fx;
  release_and_take(fx, {7});
  fx.high.channel.reset();   // edge(high) dies before it could say delivered or lost
  fx.pump_until([&] { return first_stanza(fx.low) != nullptr; });
  CHECK(error_condition(*first_stanza(fx.low)) == "remote-server-timeout");
  CHECK(fx.filter->awaiting_delivery() == 0);
  fx.pump_until([&] {
    for (const auto& e : events(fx.audit_dir.cfg.dir))
      if (e.kind == "in-doubt" && e.text.find("before the far server acknowledged it") != std::string::npos) return true;
    return false;
  });
  fx.settle();
  CHECK(acks_for(fx.low, 7) == 1);
}

TEST_CASE("an outcome without a take gives the credit once; a late take names nothing", "[filterproc][delivery]") {
  Fixture fx;
  fx.high.confirm = false;
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(chat(7), ipc::Direction::LowToHigh, 7)));
  fx.pump_until([&] { return first_stanza(fx.high) != nullptr; });
  REQUIRE(fx.high.channel->send_control(
      ipc::accounting_ack(ipc::Direction::LowToHigh, 7, ipc::kAckDelivered, "TCP acknowledgement")));
  fx.pump_until([&] { return has_ack(fx.low, 7); });
  REQUIRE(fx.high.channel->send_control(ipc::taken_ack(ipc::Direction::LowToHigh, 7)));
  fx.pump_until([&] { return fx.filter->counters().unknown_acks == 1; });
  fx.settle();
  CHECK(acks_for(fx.low, 7) == 1);
  CHECK(fx.filter->counters().far_delivered == 1);
}

TEST_CASE("a frame seq reused while its stanza awaits an outcome is refused; the first keeps its fate",
          "[filterproc][delivery]") {
  Fixture fx;
  release_and_take(fx, {7});
  // The same seq again from edge(low) (a compromised edge): refused, not released.
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(chat(70), ipc::Direction::LowToHigh, 7)));
  fx.pump_until([&] { return first_stanza(fx.low) != nullptr; });
  CHECK(error_condition(*first_stanza(fx.low)) == "internal-server-error");
  CHECK(fx.filter->counters().refused_frames == 1);
  std::size_t to_high = 0;
  for (const auto& f : fx.high.received) to_high += f.header.kind == ipc::FrameKind::Stanza;
  CHECK(to_high == 1);
  CHECK(fx.filter->awaiting_delivery() == 1);
  // The far edge's word about seq 7 is about the first stanza.
  REQUIRE(fx.high.channel->send_control(
      ipc::accounting_ack(ipc::Direction::LowToHigh, 7, ipc::kAckDelivered, "XEP-0198 acknowledgement")));
  fx.pump_until([&] { return fx.filter->counters().far_delivered == 1; });
  CHECK(fx.filter->awaiting_delivery() == 0);
}

TEST_CASE("a stanza at the edge's attribute limit is not refused for the namespace its serialization declares",
          "[filterproc]") {
  // 64 attributes (an edge's default max-attributes) plus the xmlns the edge's
  // serializer writes: the filter must not count the declaration against it.
  Fixture fx;
  std::string many;
  for (int i = 0; i < 60; ++i) many += " a" + std::to_string(i) + "='" + std::to_string(i) + "'";
  const std::string body = "<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='chat' id='m64'" +
                           many + "><body>hello</body></message>";
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(body)));
  fx.pump_until([&] { return first_stanza(fx.high) != nullptr || first_stanza(fx.low) != nullptr; });
  CHECK(first_stanza(fx.low) == nullptr);
  REQUIRE(first_stanza(fx.high) != nullptr);
  CHECK(fx.filter->counters().refused_frames == 0);
}
