// Verification of an audit archive: every chain link (each record's hash and
// its link to the previous record, across segments), every sequence number,
// every checkpoint signature, the segment headers and the links between
// segments. Read-only; used by `portcullis-audit verify`, the report and the
// archive's retention (which deletes only segments that verify).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "guard/audit/format.h"

namespace portcullis::audit {

enum class FaultKind {
  HashMismatch,     // a record's bytes do not match its hash: content altered
  ChainBreak,       // a record does not link to its predecessor or its seq is wrong:
                    // records deleted, inserted or reordered
  BadSignature,     // a checkpoint's signature (or its covered seq/hash) is invalid
  UnknownKey,       // a checkpoint signed by a key that was not given
  BadPayload,       // a record's payload cannot be decoded or its byte hashes mismatch
  BadSegmentHeader, // a segment header unreadable or not matching its segment-open record
  SegmentLink,      // a segment does not continue the previous one (segment missing/cut)
  Truncated,        // a segment ends inside a record and no later segment recovered it
  Corrupt,          // unreadable bytes where a record should start
  MissingStart,     // the archive does not start at seq 1 and no retention record explains it
  MissingEnd,       // the archive ends before the seq the verifier was told to expect (cut)
  Unreadable,       // a file that cannot be read
};

std::string_view to_string(FaultKind k);

struct Fault {
  FaultKind kind;
  std::string file;                // segment file name
  std::uint64_t offset = 0;        // byte offset in the file
  std::uint64_t seq = 0;           // seq of the record at fault (0 if none)
  std::uint64_t range_first = 0;   // seqs affected (0, 0: unknown)
  std::uint64_t range_last = 0;
  std::string message;
  std::string describe() const;    // one line: "KIND file@offset seq S (affects A..B): message"
};

struct SegmentSummary {
  std::string file;
  std::uint64_t segment_no = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;      // 0 if the segment holds no record
  std::uint64_t records = 0;
  std::uint64_t first_time_us = 0;
  std::uint64_t last_time_us = 0;
  bool faulty = false;
};

struct VerifyProgress {
  std::uint64_t records = 0;
  std::uint64_t segments_done = 0;
  std::uint64_t segments_total = 0;
  std::string current_file;
};

struct VerifyOptions {
  // Public keys (32 raw bytes each). Empty: signatures are not checked (the
  // report says so and verification of signatures does not count as done).
  std::vector<std::string> public_keys;
  // Trust the first segment's header as the chain's start (used by retention
  // to check one segment without its predecessors).
  bool anchor_first_segment = false;
  // Progress: called after every `progress_every` records, at least once a
  // second while verifying, and after each segment.
  std::function<void(const VerifyProgress&)> progress;
  std::uint64_t progress_every = 100000;
  // The archive must reach at least this seq (an anchor kept off the archive,
  // e.g. the last seq of the syslog summary): a shorter archive is a
  // MissingEnd fault. 0: no expectation, and a cut at a checkpoint or a clean
  // close cannot be seen.
  std::uint64_t expect_seq = 0;
};

struct VerifyReport {
  std::uint64_t records = 0;
  std::uint64_t segments = 0;
  std::uint64_t checkpoints = 0;            // checkpoint records seen
  std::uint64_t checkpoints_verified = 0;   // with a valid signature
  std::uint64_t first_seq = 0, last_seq = 0;
  std::uint64_t covered_through_seq = 0;    // seq of the last valid checkpoint (it covers all before it)
  bool signatures_checked = false;
  bool closed = false;                      // ends with the writer's `stop` record and the checkpoint over it
  std::vector<Fault> faults;                // in archive order; faults[0] is the first bad record
  std::vector<std::string> notes;           // non-fault observations (recovered crash, unsigned tail)
  std::vector<SegmentSummary> segment_summaries;

  // No fault: nothing found altered, missing or out of place.
  bool ok() const { return faults.empty(); }
  // The archive's last record is a checkpoint whose signature was verified, so
  // every record is authenticated. Otherwise the tail (or, with no public key,
  // all) is only hash-chained, which anyone can recompute after cutting it.
  bool tail_signed() const { return signatures_checked && records > 0 && covered_through_seq == last_seq; }
  // What a reader may trust: no fault and an authenticated end.
  bool verified() const { return ok() && tail_signed(); }
  // "OK: N records in M segments, last seq S, K checkpoints verified" when
  // verified(); "FAULT: <first fault>" (+ " (and F more)") when not ok();
  // otherwise "UNVERIFIED: <why the end is not authenticated>".
  std::string summary_line() const;
};

// Verifies the segments in `dir`. Never throws on archive content; an
// unreadable directory is reported as an Unreadable fault.
VerifyReport verify_archive(const std::string& dir, const VerifyOptions& options);
VerifyReport verify_segments(const std::vector<SegmentFile>& segments, const VerifyOptions& options);

}  // namespace portcullis::audit
