// The audit archive writer: round trip, group commit, crash recovery, store
// failure (fail closed, alarm, recovery), rotation and retention, key files.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "test/unit/audit/audit_test_support.h"

using namespace audit_test;

TEST_CASE("json: deterministic dump and strict parse round trip", "[audit][json]") {
  json::Object o;
  o["b"] = "x\"y\n\x01";
  o["a"] = std::uint64_t{18446744073709551615ull} / 2;
  o["c"] = json::Array{true, nullptr, -5};
  const std::string s = json::dump(o);
  CHECK(s == "{\"a\":9223372036854775807,\"b\":\"x\\\"y\\n\\u0001\",\"c\":[true,null,-5]}");
  auto back = json::parse(s);
  REQUIRE(back);
  CHECK(json::dump(*back) == s);
  CHECK_FALSE(json::parse("{\"a\":1,\"a\":2}"));   // duplicate key
  CHECK_FALSE(json::parse("[1,]"));
  CHECK_FALSE(json::parse("1.5"));
  CHECK_FALSE(json::parse("\"\xff\""));
  CHECK(json::dump(json::Value(std::string("a\xff"))) == "\"a\xEF\xBF\xBD\"");
}

TEST_CASE("sha256: FIPS 180-2 vectors, and two parts hash as their concatenation", "[audit][sha256]") {
  using portcullis::audit::sha256;
  using portcullis::audit::to_hex;
  CHECK(to_hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(to_hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(to_hex(sha256(two)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  for (std::size_t cut = 0; cut <= two.size(); cut += 7) {
    CHECK(sha256(std::string_view(two).substr(0, cut), std::string_view(two).substr(cut)) == sha256(two));
  }
  const std::string million(1000000, 'a');
  CHECK(to_hex(sha256(million)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("decision meta: the direct writer's bytes equal the Value tree's, for every shape", "[audit][json]") {
  using namespace portcullis::audit;
  std::uint32_t rng = 12345;
  auto next = [&rng] { return rng = rng * 1103515245u + 12345u; };
  const std::vector<std::string> texts = {"", "plain", "with \"quotes\" and \\", "ctl\x01\n\t", "caf\xc3\xa9",
                                          "bad utf8 \xff\xfe", "\xe2\x80\xae rtl", std::string(300, 'x')};
  auto text = [&] { return texts[next() % texts.size()]; };
  auto notes = [&] {
    Notes n;
    for (std::uint32_t i = next() % 3; i > 0; --i) n.emplace_back(text(), text());
    return n;
  };
  for (int round = 0; round < 400; ++round) {
    DecisionRecord d;
    d.outcome = static_cast<Outcome>(next() % 4);
    d.direction = static_cast<Direction>(next() % 4);
    d.peer = {text(), text(), next() % 2 == 0, text(), next() % 2 == 0 ? "" : text()};
    d.frame_seq = next() % 3 == 0 ? ~std::uint64_t{0} - next() : next();   // beyond int64 too
    d.stream_id = text(); d.from = text(); d.to = text();
    d.stanza_kind = text(); d.stanza_type = text(); d.stanza_id = text();
    d.label_original = text(); d.label_effective = text(); d.label_mapped = text();
    for (std::uint32_t i = next() % 4; i > 0; --i) {
      d.filters.push_back({text(), text(), text(), text(), next() % 2 == 0, next() % 2 == 0 ? "" : text(), notes()});
    }
    for (std::uint32_t i = next() % 3; i > 0; --i) d.guards.push_back({text(), next() % 2 == 0, text()});
    d.error_condition = next() % 2 == 0 ? "" : text();
    d.policy_version = text(); d.policy_hash = text();
    d.notes = notes();
    d.original = text() + "<message/>";
    if (next() % 2 == 0) d.released = text() + "<message type='chat'/>";
    const std::string ref = decision_meta_reference(d);
    Record r;
    r.body = d;
    const std::string payload = encode_payload(r);
    INFO("round " << round << ": " << ref);
    REQUIRE(payload.size() >= 4 + ref.size());
    const std::uint32_t len = (std::uint32_t(std::uint8_t(payload[0])) << 24) | (std::uint32_t(std::uint8_t(payload[1])) << 16) |
                              (std::uint32_t(std::uint8_t(payload[2])) << 8) | std::uint32_t(std::uint8_t(payload[3]));
    CHECK(len == ref.size());
    CHECK(payload.substr(4, len) == ref);
  }
}

TEST_CASE("archive: append then verify round trip with every record kind", "[audit]") {
  Harness h;
  std::vector<AppendResult> res;
  {
    AuditArchive a(h.loop, h.cfg, h.log);
    CHECK(a.healthy());
    std::vector<Record> recs;
    for (int i = 0; i < 50; ++i) recs.push_back(decision(i));
    recs.push_back(connection_event("auth-failure"));
    recs.push_back(admin_event("policy-load", "policy v7 loaded"));
    res = h.append_all(a, std::move(recs));
  }
  for (std::size_t i = 0; i < res.size(); ++i) {
    INFO(i << ": " << res[i].error);
    REQUIRE(res[i].ok);
    if (i) CHECK(res[i].seq > res[i - 1].seq);
  }
  const VerifyReport rep = h.verify();
  INFO(rep.summary_line());
  REQUIRE(rep.ok());
  CHECK(rep.checkpoints_verified >= 5);
  CHECK(rep.summary_line().rfind("OK: ", 0) == 0);
  CHECK(rep.covered_through_seq == rep.last_seq);   // closed with a checkpoint

  const auto recs = h.records();
  std::map<std::uint64_t, const StoredRecord*> by_seq;
  for (const auto& r : recs) by_seq[r.seq] = &r;
  for (int i = 0; i < 50; ++i) {
    const auto* s = by_seq.at(res[static_cast<std::size_t>(i)].seq);
    REQUIRE(s->type == RecordType::Decision);
    const auto& d = std::get<DecisionRecord>(s->body);
    const auto want = std::get<DecisionRecord>(decision(i).body);
    CHECK(d.outcome == want.outcome);
    CHECK(d.from == want.from);
    CHECK(d.original == want.original);
    CHECK(d.released == want.released);
    CHECK(d.filters.size() == 2);
    CHECK(d.filters[1].rule_id == want.filters[1].rule_id);
    CHECK(d.filters[1].notes == want.filters[1].notes);
    CHECK(d.original_sha256 == to_hex(sha256(want.original)));
    if (want.outcome == Outcome::Rejected) CHECK(d.released_sha256.empty());
    else CHECK(d.released_sha256 == to_hex(sha256(want.released ? *want.released : want.original)));
    CHECK(d.label_mapped == want.label_mapped);
    CHECK(d.peer.cert_identity == "CN=peer");
  }
  const auto* c = by_seq.at(res[50].seq);
  CHECK(std::get<ConnectionEvent>(c->body).kind == "auth-failure");
  const auto* ad = by_seq.at(res[51].seq);
  CHECK(std::get<AdminEvent>(ad->body).field("hash") == "deadbeef");
  // The writer's own admin events: segment-open, start, stop.
  std::set<std::string> kinds;
  for (const auto& r : recs)
    if (r.type == RecordType::Admin) kinds.insert(std::get<AdminEvent>(r.body).kind);
  CHECK(kinds.count("segment-open"));
  CHECK(kinds.count("start"));
  CHECK(kinds.count("stop"));
}

TEST_CASE("archive: callbacks run only after fdatasync, and appends during a sync share the next one", "[audit][groupcommit]") {
  Harness h;
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false, in_sync = false;
  std::atomic<std::uint64_t> synced_size{0}, sync_calls{0};
  ArchiveHooks hooks;
  hooks.fdatasync = [&](int fd) {
    {
      std::unique_lock<std::mutex> lk(mu);
      in_sync = true;
      cv.notify_all();
      cv.wait(lk, [&] { return !hold; });
      in_sync = false;
    }
    const int rc = ::fdatasync(fd);
    struct stat st{};
    ::fstat(fd, &st);
    synced_size = static_cast<std::uint64_t>(st.st_size);
    sync_calls++;
    return rc;
  };
  AuditArchive a(h.loop, h.cfg, h.log, hooks);

  // 1. Under load: many appends, far fewer syncs; every callback's record is
  //    inside what was synced when the callback ran.
  const std::uint64_t syncs_before = sync_calls;
  constexpr int kN = 3000;
  int done = 0;
  bool all_durable = true;
  for (int i = 0; i < kN; ++i)
    a.append(decision(i), [&](AppendResult r) {
      done++;
      if (!r.ok || r.offset + r.length > synced_size.load()) all_durable = false;
    });
  h.run_until([&] { return done == kN; });
  CHECK(all_durable);
  const std::uint64_t syncs = sync_calls - syncs_before;
  INFO("fdatasync calls for " << kN << " appends: " << syncs);
  CHECK(syncs < static_cast<std::uint64_t>(kN) / 10);

  // 2. Deterministic grouping: hold the writer inside a sync, append 100
  //    more, release: they are written by exactly one more fdatasync.
  {
    std::lock_guard<std::mutex> lk(mu);
    hold = true;
  }
  int first_done = 0;
  a.append(decision(1), [&](AppendResult r) { first_done += r.ok; });
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return in_sync; });
  }
  const std::uint64_t calls_at_hold = sync_calls;
  const ArchiveStats before = a.stats();
  int more_done = 0;
  for (int i = 0; i < 100; ++i) a.append(decision(i), [&](AppendResult r) { more_done += r.ok; });
  h.loop.run_once(net::Duration(0));
  CHECK(first_done == 0);     // its sync has not returned: no callback yet
  CHECK(more_done == 0);
  {
    std::lock_guard<std::mutex> lk(mu);
    hold = false;
  }
  cv.notify_all();
  h.run_until([&] { return first_done == 1 && more_done == 100; });
  CHECK(sync_calls - calls_at_hold == 2);           // the held one + one for all 100
  CHECK(a.stats().batches - before.batches == 2);
}

TEST_CASE("archive: kill -9 of a writer under load loses no acknowledged record", "[audit][crash]") {
  Harness h;
  int pfd[2];
  REQUIRE(::pipe(pfd) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pfd[0]);
    net::SteadyClock clock;
    net::EventLoop loop(clock);
    Logger log("child", Logger::Target::Capture, LogLevel::Error);
    AuditArchive a(loop, h.cfg, log);
    int outstanding = 0;
    for (int i = 0;; ++i) {
      outstanding++;
      a.append(decision(i), [fd = pfd[1], &outstanding](AppendResult r) {
        outstanding--;
        if (r.ok && ::write(fd, &r.seq, sizeof r.seq) != sizeof r.seq) ::_exit(3);
      });
      while (outstanding > 200) loop.run_once(net::Duration(10));
    }
  }
  ::close(pfd[1]);
  std::vector<std::uint64_t> acked;
  std::uint64_t seq;
  while (acked.size() < 500 && ::read(pfd[0], &seq, sizeof seq) == sizeof seq) acked.push_back(seq);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  while (::read(pfd[0], &seq, sizeof seq) == sizeof seq) acked.push_back(seq);
  ::close(pfd[0]);
  REQUIRE(acked.size() >= 500);

  // Restart: the writer recovers and continues the chain.
  {
    AuditArchive a(h.loop, h.cfg, h.log);
    CHECK(h.append_one(a, admin_event("policy-load", "after crash")).ok);
  }
  const VerifyReport rep = h.verify();
  INFO(rep.summary_line());
  REQUIRE(rep.ok());
  std::set<std::uint64_t> present;
  for (const auto& r : h.records()) present.insert(r.seq);
  for (auto s : acked) REQUIRE(present.count(s));
}

TEST_CASE("archive: a record cut by a crash is detected, reported and recovered", "[audit][crash]") {
  Harness h;
  {
    AuditArchive a(h.loop, h.cfg, h.log);
    std::vector<Record> recs;
    for (int i = 0; i < 5; ++i) recs.push_back(decision(i));
    h.append_all(a, std::move(recs));
  }
  auto segs = list_segments(h.cfg.dir);
  REQUIRE(segs.size() == 1);
  std::string data = slurp(segs[0].path);
  const auto fr = frames_of(data);
  const auto& last = fr.back();
  const std::uint64_t cut = last.offset;
  spit(segs[0].path, data.substr(0, cut + last.length / 2));   // half of the last record

  // Before the writer restarts, the verifier names the truncation.
  const VerifyReport before = h.verify();
  const Fault* t = find_fault(before, FaultKind::Truncated);
  REQUIRE(t != nullptr);
  CHECK(t->file == segs[0].name);
  CHECK(t->offset == cut);
  CHECK(find_fault(before, FaultKind::HashMismatch) == nullptr);
  CHECK(find_fault(before, FaultKind::ChainBreak) == nullptr);

  {
    AuditArchive a(h.loop, h.cfg, h.log);
    CHECK(h.append_one(a, decision(7)).ok);
  }
  const VerifyReport after = h.verify();
  INFO(after.summary_line());
  REQUIRE(after.ok());
  bool noted = false;
  for (const auto& n : after.notes) noted = noted || n.find("truncated at offset " + std::to_string(cut)) != std::string::npos;
  CHECK(noted);
  bool recorded = false;
  for (const auto& r : h.records())
    if (const auto* ad = std::get_if<AdminEvent>(&r.body))
      recorded = recorded || (ad->kind == "recovery" && ad->field("offset") == std::to_string(cut) &&
                              ad->text.find("truncated at offset " + std::to_string(cut)) != std::string::npos);
  CHECK(recorded);
}

TEST_CASE("archive: a failing store fails appends closed, raises an alarm and recovers", "[audit][failure]") {
  Harness h;
  std::atomic<bool> broken{false};
  ArchiveHooks hooks;
  hooks.write = [&](int fd, const void* b, std::size_t n) -> ssize_t {
    if (broken) {
      errno = EIO;
      return -1;
    }
    return ::write(fd, b, n);
  };
  hooks.retry_interval = std::chrono::hours(1);   // recovery only when the test asks
  AuditArchive a(h.loop, h.cfg, h.log, hooks);
  REQUIRE(h.append_one(a, decision(0)).ok);

  broken = true;
  const auto failed = h.append_one(a, decision(1));
  CHECK_FALSE(failed.ok);
  CHECK(failed.error.find("write") != std::string::npos);
  CHECK_FALSE(a.healthy());
  h.run_until([&] { return h.logged("ALARM audit"); });
  // New appends fail immediately while the store is down.
  CHECK_FALSE(h.append_one(a, decision(2)).ok);
  // Still down: a retry fails too.
  a.retry_now();
  CHECK_FALSE(h.append_one(a, decision(3)).ok);

  broken = false;
  a.retry_now();
  const auto ok = h.append_one(a, decision(4));
  REQUIRE(ok.ok);
  CHECK(a.healthy());
  h.run_until([&] { return h.logged("recovered"); });
  a.close();

  const VerifyReport rep = h.verify();
  INFO(rep.summary_line());
  REQUIRE(rep.ok());
  // The failed records are not in the chain; the recovery is.
  std::set<std::string> ids;
  bool recovered_event = false;
  for (const auto& r : h.records()) {
    if (const auto* d = std::get_if<DecisionRecord>(&r.body)) ids.insert(d->stanza_id);
    if (const auto* ad = std::get_if<AdminEvent>(&r.body))
      recovered_event = recovered_event || (ad->kind == "store-recovered" && ad->field("failed_appends") == "3");
  }
  CHECK(ids == std::set<std::string>{"m0", "m4"});
  CHECK(recovered_event);
  CHECK(a.stats().failed == 3);
}

TEST_CASE("archive: free space below the stop threshold fails closed until space returns", "[audit][failure]") {
  Harness h;
  h.cfg.warn_free_percent = 20;
  h.cfg.stop_free_percent = 5;
  std::atomic<int> free_pct{50};
  ArchiveHooks hooks;
  hooks.free_percent = [&](const std::string&) { return std::optional<double>(free_pct.load()); };
  hooks.free_check_interval = std::chrono::milliseconds(0);   // check before every batch
  hooks.retry_interval = std::chrono::hours(1);
  AuditArchive a(h.loop, h.cfg, h.log, hooks);
  REQUIRE(h.append_one(a, decision(0)).ok);
  free_pct = 10;
  CHECK(h.append_one(a, decision(1)).ok);          // warning only
  h.run_until([&] { return h.logged("low space"); });
  free_pct = 3;
  CHECK_FALSE(h.append_one(a, decision(2)).ok);    // fail closed
  h.run_until([&] { return h.logged("ALARM audit"); });
  a.retry_now();
  CHECK_FALSE(h.append_one(a, decision(3)).ok);
  free_pct = 40;
  a.retry_now();
  CHECK(h.append_one(a, decision(4)).ok);
  a.close();
  const VerifyReport rep = h.verify();
  INFO(rep.summary_line());
  CHECK(rep.ok());
}

TEST_CASE("archive: a full tmpfs stops appends and they resume when space returns", "[audit][failure][tmpfs]") {
  Harness h;
  const std::string mnt = h.root + "/small";
  REQUIRE(::mkdir(mnt.c_str(), 0700) == 0);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0) {
    WARN("cannot mount a tmpfs here (" << std::strerror(errno) << "); covered by the injected-failure test");
    return;
  }
  struct Unmount {
    std::string m;
    ~Unmount() { ::umount2(m.c_str(), MNT_DETACH); }
  } unmount{mnt};
  h.cfg.dir = mnt + "/archive";
  const std::string filler = mnt + "/filler";
  spit(filler, std::string(64 * 1024, 'x'));
  ArchiveHooks hooks;
  hooks.retry_interval = std::chrono::hours(1);
  AuditArchive a(h.loop, h.cfg, h.log, hooks);
  // Big records until the filesystem is full.
  int ok = 0;
  bool failed = false;
  for (int i = 0; i < 200 && !failed; ++i) {
    Record r = decision(i);
    std::get<DecisionRecord>(r.body).original.append(4000, ' ');
    if (h.append_one(a, std::move(r)).ok) ok++;
    else failed = true;
  }
  REQUIRE(failed);
  CHECK(ok > 0);
  h.run_until([&] { return h.logged("ALARM audit"); });
  CHECK_FALSE(h.append_one(a, decision(500)).ok);
  REQUIRE(::unlink(filler.c_str()) == 0);       // space returns
  a.retry_now();
  CHECK(h.append_one(a, decision(501)).ok);
  a.close();
  const VerifyReport rep = h.verify(h.cfg.dir);
  INFO(rep.summary_line());
  CHECK(rep.ok());
}

TEST_CASE("archive: rotation by size and age keeps one chain across segments", "[audit][rotation]") {
  Harness h;
  h.cfg.segment_max_bytes = 4096;
  h.cfg.segment_max_age_s = 60;
  std::atomic<std::uint64_t> now_us{1700000000ull * 1000000};
  ArchiveHooks hooks;
  hooks.wall_clock_us = [&] { return now_us.load(); };
  {
    AuditArchive a(h.loop, h.cfg, h.log, hooks);
    for (int i = 0; i < 40; ++i) REQUIRE(h.append_one(a, decision(i)).ok);
    const auto n_size = list_segments(h.cfg.dir).size();
    CHECK(n_size >= 5);
    // Age: a quiet segment older than 60 s is closed at the next batch.
    h.append_one(a, decision(100));
    now_us += 61ull * 1000000;
    h.append_one(a, decision(101));
    h.append_one(a, decision(102));
    CHECK(list_segments(h.cfg.dir).size() > n_size);
  }
  const VerifyReport rep = h.verify();
  INFO(rep.summary_line());
  REQUIRE(rep.ok());
  CHECK(rep.segments == list_segments(h.cfg.dir).size());
  // Every closed segment ends with a checkpoint.
  for (const auto& s : list_segments(h.cfg.dir)) {
    const auto fr = frames_of(slurp(s.path));
    REQUIRE_FALSE(fr.empty());
    CHECK(fr.back().type == RecordType::Checkpoint);
  }
}

TEST_CASE("archive: retention deletes only old segments that verify, and records it", "[audit][retention]") {
  Harness h;
  h.cfg.segment_max_bytes = 4096;
  h.cfg.retention_days = 30;
  const std::uint64_t day = 86400ull * 1000000;
  std::atomic<std::uint64_t> now_us{1700000000ull * 1000000};
  ArchiveHooks hooks;
  hooks.wall_clock_us = [&] { return now_us.load(); };
  std::vector<SegmentFile> old_segs;
  {
    AuditArchive a(h.loop, h.cfg, h.log, hooks);
    for (int i = 0; i < 30; ++i) REQUIRE(h.append_one(a, decision(i)).ok);
    a.rotate_now();
    CHECK(h.append_one(a, decision(99)).ok);
    old_segs = list_segments(h.cfg.dir);
    REQUIRE(old_segs.size() >= 4);
  }
  // Tamper with the second-oldest segment: retention must stop before it.
  {
    std::string d = slurp(old_segs[1].path);
    const auto fr = frames_of(d);
    d[fr[1].offset + kFrameHeaderBytes + 5] ^= 0x01;
    spit(old_segs[1].path, d);
  }
  now_us += 31 * day;
  {
    AuditArchive a(h.loop, h.cfg, h.log, hooks);   // retention runs at start
    CHECK(h.append_one(a, decision(200)).ok);
  }
  auto now_segs = list_segments(h.cfg.dir);
  CHECK(now_segs.front().name == old_segs[1].name);     // only the first was deleted
  CHECK(h.logged("NOT deleting " + old_segs[1].name));
  bool recorded = false;
  for (const auto& r : h.records())
    if (const auto* ad = std::get_if<AdminEvent>(&r.body))
      recorded = recorded || (ad->kind == "retention-delete" && ad->field("file") == old_segs[0].name);
  CHECK(recorded);

  // Repair the tampered byte: now retention deletes everything old enough.
  {
    std::string d = slurp(old_segs[1].path);
    const auto fr = frames_of(d);
    d[fr[1].offset + kFrameHeaderBytes + 5] ^= 0x01;
    spit(old_segs[1].path, d);
  }
  {
    AuditArchive a(h.loop, h.cfg, h.log, hooks);
    CHECK(h.append_one(a, decision(201)).ok);
  }
  now_segs = list_segments(h.cfg.dir);
  CHECK(now_segs.size() <= 3);
  CHECK(now_segs.front().first_seq > 1);
  const VerifyReport rep = h.verify();
  INFO(rep.summary_line());
  REQUIRE(rep.ok());   // the missing start is explained by retention records

  // Deleting the oldest remaining segment by hand is not explained by any record.
  REQUIRE(::unlink(now_segs.front().path.c_str()) == 0);
  const VerifyReport bad = h.verify();
  REQUIRE_FALSE(bad.ok());
  CHECK(find_fault(bad, FaultKind::MissingStart) != nullptr);
}

TEST_CASE("archive: signing key must be private and match the public key", "[audit][keys]") {
  Harness h;
  REQUIRE(::chmod(h.cfg.signing_key_file.c_str(), 0640) == 0);
  CHECK_THROWS_AS(AuditArchive(h.loop, h.cfg, h.log), AuditKeyError);
  REQUIRE(::chmod(h.cfg.signing_key_file.c_str(), 0600) == 0);
  generate_key_pair(h.root + "/other.key", h.root + "/other.pub");
  h.cfg.public_key_file = h.root + "/other.pub";
  CHECK_THROWS_AS(AuditArchive(h.loop, h.cfg, h.log), AuditKeyError);
  // keygen refuses to overwrite.
  CHECK_THROWS_AS(generate_key_pair(h.root + "/other.key", h.root + "/x.pub"), AuditKeyError);
  struct stat st{};
  REQUIRE(::stat((h.root + "/other.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // A key change is recorded at the next start.
  h.cfg.public_key_file.clear();
  { AuditArchive a(h.loop, h.cfg, h.log); }
  h.cfg.signing_key_file = h.root + "/other.key";
  { AuditArchive a(h.loop, h.cfg, h.log); }
  bool changed = false;
  for (const auto& r : h.records())
    if (const auto* ad = std::get_if<AdminEvent>(&r.body)) changed = changed || ad->kind == "key-change";
  CHECK(changed);
  VerifyOptions o;
  o.public_keys = {h.pubkey(), load_public_key(h.root + "/other.pub")};
  CHECK(verify_archive(h.cfg.dir, o).ok());
  o.public_keys = {h.pubkey()};
  CHECK(find_fault(verify_archive(h.cfg.dir, o), FaultKind::UnknownKey) != nullptr);
}

TEST_CASE("archive: syslog summary is one RFC 5424 structured-data line per record", "[audit][syslog]") {
  Harness h;
  h.cfg.syslog_summary = true;
  std::mutex mu;
  std::vector<std::string> lines;
  ArchiveHooks hooks;
  hooks.syslog = [&](const std::string& l) {
    std::lock_guard<std::mutex> lk(mu);
    lines.push_back(l);
  };
  AuditArchive a(h.loop, h.cfg, h.log, hooks);
  const auto r = h.append_one(a, decision(1));
  REQUIRE(r.ok);
  a.close();
  std::lock_guard<std::mutex> lk(mu);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("[portcullis-audit@32473 seq=\"" + std::to_string(r.seq) + "\" type=\"decision\" outcome=\"rejected\"", 0) == 0);
  CHECK(lines[0].find("rule=\"rule-1\"") != std::string::npos);
  CHECK(lines[0].find("] rejected message carol@high.example/desk -> alice@low.example") != std::string::npos);
}
