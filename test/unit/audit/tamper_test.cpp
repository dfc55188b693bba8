// Tampering with a written archive: each kind of change is detected by the
// verifier, which names the segment file, offset and seq and the range affected.
#include <algorithm>

#include "test/unit/audit/audit_test_support.h"

using namespace audit_test;

namespace {

struct Written {
  std::vector<SegmentFile> segs;
};

Written write_archive(Harness& h, int n, bool two_segments = false) {
  AuditArchive a(h.loop, h.cfg, h.log);
  for (int i = 0; i < n; ++i) {
    REQUIRE(h.append_one(a, decision(i)).ok);
    if (two_segments && i == n / 2) a.rotate_now();
  }
  a.close();
  Written w;
  w.segs = list_segments(h.cfg.dir);
  REQUIRE(h.verify().ok());
  return w;
}

// The index of the n-th decision frame.
std::size_t nth_decision(const std::vector<FrameView>& fr, int n) {
  for (std::size_t i = 0; i < fr.size(); ++i)
    if (fr[i].type == RecordType::Decision && n-- == 0) return i;
  FAIL("no such decision");
  return 0;
}

// The index of the first checkpoint frame after frame `from`.
std::size_t next_checkpoint(const std::vector<FrameView>& fr, std::size_t from) {
  for (std::size_t i = from + 1; i < fr.size(); ++i)
    if (fr[i].type == RecordType::Checkpoint) return i;
  FAIL("no checkpoint after frame " << from);
  return 0;
}

VerifyReport verify_expecting(Harness& h, std::uint64_t expect_seq) {
  VerifyOptions o;
  o.public_keys = {h.pubkey()};
  o.expect_seq = expect_seq;
  return verify_archive(h.cfg.dir, o);
}

}  // namespace

TEST_CASE("tamper: a flipped byte is a hash mismatch at that record", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 40);
  std::string d = slurp(w.segs[0].path);
  const auto fr = frames_of(d);
  const auto& victim = fr[nth_decision(fr, 15)];
  d[victim.offset + kFrameHeaderBytes + 20] ^= 0x20;
  spit(w.segs[0].path, d);
  const VerifyReport r = h.verify();
  REQUIRE_FALSE(r.ok());
  CHECK(r.faults[0].kind == FaultKind::HashMismatch);
  CHECK(r.faults[0].file == w.segs[0].name);
  CHECK(r.faults[0].offset == victim.offset);
  CHECK(r.faults[0].seq == victim.seq);
  CHECK(r.faults[0].range_first == victim.seq);
  CHECK(r.faults[0].range_last == victim.seq);
  CHECK(r.summary_line().find("FAULT: HASH-MISMATCH " + w.segs[0].name + " offset " + std::to_string(victim.offset)) == 0);
}

TEST_CASE("tamper: a deleted record is a chain break naming the missing seq", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 40);
  std::string d = slurp(w.segs[0].path);
  const auto fr = frames_of(d);
  const auto& victim = fr[nth_decision(fr, 15)];
  d.erase(victim.offset, victim.length);
  spit(w.segs[0].path, d);
  const VerifyReport r = h.verify();
  REQUIRE_FALSE(r.ok());
  CHECK(r.faults[0].kind == FaultKind::ChainBreak);
  CHECK(r.faults[0].offset == victim.offset);        // where the next record now is
  CHECK(r.faults[0].seq == victim.seq + 1);
  CHECK(r.faults[0].range_first == victim.seq);
  CHECK(r.faults[0].range_last == victim.seq);
  CHECK(r.faults[0].message.find("missing") != std::string::npos);
}

TEST_CASE("tamper: reordered records are a chain break at the first moved one", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 40);
  std::string d = slurp(w.segs[0].path);
  const auto fr = frames_of(d);
  const std::size_t k = nth_decision(fr, 15);
  REQUIRE(fr[k + 1].type == RecordType::Decision);
  const std::string a = d.substr(fr[k].offset, fr[k].length), b = d.substr(fr[k + 1].offset, fr[k + 1].length);
  d.replace(fr[k].offset, a.size() + b.size(), b + a);
  spit(w.segs[0].path, d);
  const VerifyReport r = h.verify();
  REQUIRE_FALSE(r.ok());
  CHECK(r.faults[0].kind == FaultKind::ChainBreak);
  CHECK(r.faults[0].offset == fr[k].offset);
  CHECK(r.faults[0].seq == fr[k + 1].seq);
  CHECK(find_fault(r, FaultKind::HashMismatch) == nullptr);   // each record intact, only the order changed
}

TEST_CASE("tamper: a closed segment cut short is reported as truncated with its position", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 40, true);
  REQUIRE(w.segs.size() == 2);
  std::string d = slurp(w.segs[0].path);
  const auto fr = frames_of(d);
  const auto& cut_at = fr[nth_decision(fr, 10)];
  spit(w.segs[0].path, d.substr(0, cut_at.offset + 7));
  const VerifyReport r = h.verify();
  REQUIRE_FALSE(r.ok());
  const Fault* t = find_fault(r, FaultKind::Truncated);
  REQUIRE(t != nullptr);
  CHECK(t->file == w.segs[0].name);
  CHECK(t->offset == cut_at.offset);
  CHECK(t->range_first == cut_at.seq);
  // Records before the cut are not reported as altered.
  for (const auto& f : r.faults) CHECK(f.kind != FaultKind::HashMismatch);
}

TEST_CASE("tamper: a segment re-chained without the key fails its checkpoint signature", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 40);
  std::string d = slurp(w.segs[0].path);
  auto fr = frames_of(d);
  const std::size_t k = nth_decision(fr, 15);
  const std::uint64_t victim_seq = fr[k].seq;
  // Change the stanza id in the metadata (same length), then recompute every
  // hash from there on, like an attacker without the signing key would,
  // including the covered hash written in later checkpoints.
  {
    const std::size_t pos = d.find("\"id\":\"m15\"", fr[k].offset);
    REQUIRE(pos != std::string::npos);
    d.replace(pos, 10, "\"id\":\"m99\"");
  }
  std::string prev(fr[k].prev_hash);
  for (std::size_t i = k; i < fr.size(); ++i) {
    fr = frames_of(d);
    const auto& f = fr[i];
    if (f.type == RecordType::Checkpoint) {
      const std::string old_hex = to_hex(f.prev_hash);
      const std::size_t pos = d.find(old_hex, f.offset);
      REQUIRE(pos != std::string::npos);
      d.replace(pos, old_hex.size(), to_hex(prev));
      fr = frames_of(d);
    }
    const auto& g = fr[i];
    const std::string h2 = chain_hash(prev, g.hashed);
    d.replace(g.offset + kFrameHeaderBytes + g.payload.size(), kHashBytes, prev);
    d.replace(g.offset + kFrameHeaderBytes + g.payload.size() + kHashBytes, kHashBytes, h2);
    prev = h2;
  }
  spit(w.segs[0].path, d);
  const VerifyReport r = h.verify();
  REQUIRE_FALSE(r.ok());
  CHECK(find_fault(r, FaultKind::HashMismatch) == nullptr);
  CHECK(find_fault(r, FaultKind::ChainBreak) == nullptr);
  const Fault& f = r.faults[0];
  CHECK(f.kind == FaultKind::BadSignature);
  CHECK(f.file == w.segs[0].name);
  CHECK(f.range_first <= victim_seq);
  CHECK(f.range_last >= victim_seq);
  CHECK(f.seq > victim_seq);
  // Without signatures the chain alone looks fine: that is why checkpoints exist.
  CHECK(verify_archive(h.cfg.dir, VerifyOptions{}).ok());
}

TEST_CASE("tamper: a missing middle segment breaks the link between segments", "[audit][tamper]") {
  Harness h;
  {
    AuditArchive a(h.loop, h.cfg, h.log);
    for (int i = 0; i < 9; ++i) {
      REQUIRE(h.append_one(a, decision(i)).ok);
      if (i % 3 == 2) a.rotate_now();
    }
  }
  auto segs = list_segments(h.cfg.dir);
  REQUIRE(segs.size() >= 3);
  REQUIRE(::unlink(segs[1].path.c_str()) == 0);
  const VerifyReport r = h.verify();
  REQUIRE_FALSE(r.ok());
  CHECK(r.faults[0].kind == FaultKind::SegmentLink);
  CHECK(r.faults[0].file == segs[2].name);
}

TEST_CASE("tamper: an archive cut at a record boundary is UNVERIFIED at its tail", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 25);
  const VerifyReport whole = h.verify();
  REQUIRE(whole.verified());
  CHECK(whole.closed);   // stop record, then the checkpoint over it
  std::string d = slurp(w.segs[0].path);
  const auto fr = frames_of(d);
  // Cut after the 20th decision: it and the records since the last checkpoint are only chained.
  const auto& last_kept = fr[nth_decision(fr, 20)];
  spit(w.segs[0].path, d.substr(0, last_kept.offset + last_kept.length));
  const VerifyReport r = h.verify();
  INFO(r.summary_line());
  CHECK(r.ok());   // a cut at a boundary alters nothing that the chain could show
  CHECK(r.last_seq == last_kept.seq);
  CHECK(r.checkpoints_verified > 0);
  CHECK(r.covered_through_seq < last_kept.seq);
  CHECK_FALSE(r.tail_signed());
  CHECK_FALSE(r.verified());
  CHECK_FALSE(r.closed);
  CHECK(r.summary_line().rfind("UNVERIFIED: seqs " + std::to_string(r.covered_through_seq + 1) + ".." +
                                   std::to_string(last_kept.seq) + " at the end are not covered by a signed checkpoint",
                               0) == 0);
}

TEST_CASE("tamper: a cut just after a checkpoint looks complete; --expect-seq finds it", "[audit][tamper]") {
  Harness h;
  auto w = write_archive(h, 25);
  const std::uint64_t last_seq = h.verify().last_seq;
  std::string d = slurp(w.segs[0].path);
  const auto fr = frames_of(d);
  const auto& cp = fr[next_checkpoint(fr, nth_decision(fr, 10))];
  spit(w.segs[0].path, d.substr(0, cp.offset + cp.length));

  const VerifyReport r = h.verify();
  INFO(r.summary_line());
  CHECK(r.verified());   // every record left is signed: the archive alone cannot show the cut
  CHECK_FALSE(r.closed);
  CHECK(std::find_if(r.notes.begin(), r.notes.end(), [](const std::string& n) {
          return n.find("without a stop record") != std::string::npos;
        }) != r.notes.end());

  const VerifyReport e = verify_expecting(h, last_seq);
  INFO(e.summary_line());
  REQUIRE_FALSE(e.ok());
  const Fault* f = find_fault(e, FaultKind::MissingEnd);
  REQUIRE(f != nullptr);
  CHECK(f->file == w.segs[0].name);
  CHECK(f->range_first == cp.seq + 1);
  CHECK(f->range_last == last_seq);
  CHECK(e.summary_line().rfind("FAULT: MISSING-END " + w.segs[0].name, 0) == 0);
  // Expecting no more than is there is satisfied.
  CHECK(verify_expecting(h, cp.seq).verified());
}
