#include "guard/audit/verify.h"

#include <chrono>
#include <map>
#include <optional>

#include "guard/audit/keys.h"

namespace portcullis::audit {

namespace {

struct Boundary {
  std::uint64_t end_offset;
  std::uint64_t seq;
  std::string hash;
};

// What remains of the previous segment when the next one is opened.
struct PrevSegment {
  std::string file;
  std::uint64_t segment_no = 0;
  std::uint64_t file_size = 0;
  std::vector<Boundary> boundaries;     // after each good record, plus the header
  std::optional<Fault> tail_fault;      // truncated/corrupt end, pending recovery
  std::uint64_t good_end = 0;           // offset where scanning stopped
};

std::string seq_range(std::uint64_t a, std::uint64_t b) {
  if (a == 0 && b == 0) return "";
  if (a == b) return "seq " + std::to_string(a);
  return "seqs " + std::to_string(a) + ".." + std::to_string(b);
}

class Verifier {
 public:
  Verifier(const VerifyOptions& o) : opt_(o) {
    rep_.signatures_checked = !o.public_keys.empty();
    for (const auto& k : o.public_keys) keys_[key_id(k)] = k;
    last_progress_ = std::chrono::steady_clock::now();
  }

  VerifyReport run(const std::vector<SegmentFile>& segs) {
    total_ = segs.size();
    for (std::size_t i = 0; i < segs.size(); ++i) segment(segs[i], i == 0);
    finish();
    return std::move(rep_);
  }

 private:
  void fault(FaultKind k, const std::string& file, std::uint64_t off, std::uint64_t seq, std::uint64_t a,
             std::uint64_t b, std::string msg) {
    rep_.faults.push_back(Fault{k, file, off, seq, a, b, std::move(msg)});
    if (cur_summary_) cur_summary_->faulty = true;
  }

  void progress(const std::string& file) {
    if (!opt_.progress) return;
    const auto now = std::chrono::steady_clock::now();
    if (rep_.records % opt_.progress_every == 0 || now - last_progress_ >= std::chrono::seconds(1)) {
      last_progress_ = now;
      opt_.progress(VerifyProgress{rep_.records, segments_done_, total_, file});
    }
  }

  void segment(const SegmentFile& sf, bool first) {
    std::string data, err;
    rep_.segments++;
    rep_.segment_summaries.push_back(SegmentSummary{sf.name, sf.segment_no, sf.first_seq, 0, 0, 0, 0, false});
    cur_summary_ = &rep_.segment_summaries.back();
    if (!read_whole_file(sf.path, data, &err)) {
      fault(FaultKind::Unreadable, sf.name, 0, 0, 0, 0, err);
      chain_known_ = false;
      prev_.reset();
      return;
    }
    auto h = decode_segment_header(data, &err);
    if (!h) {
      fault(FaultKind::BadSegmentHeader, sf.name, 0, 0, 0, 0, err);
      chain_known_ = false;
      prev_.reset();
      return;
    }
    if (h->segment_no != sf.segment_no || h->first_seq != sf.first_seq)
      fault(FaultKind::BadSegmentHeader, sf.name, 0, 0, 0, 0,
            "file name does not match its header (segment " + std::to_string(h->segment_no) + ", first seq " +
                std::to_string(h->first_seq) + ")");
    link(sf, *h, first);

    PrevSegment cur;
    cur.file = sf.name;
    cur.segment_no = h->segment_no;
    cur.file_size = data.size();
    cur.boundaries.push_back(Boundary{kSegmentHeaderBytes, h->first_seq - 1, h->prev_hash});
    std::uint64_t off = kSegmentHeaderBytes;
    bool first_record = true;
    while (true) {
      FrameView f;
      const FrameStatus st = read_frame(data, off, f);
      if (st == FrameStatus::End) break;
      if (st != FrameStatus::Ok) {
        const bool trunc = st == FrameStatus::Truncated;
        cur.tail_fault = Fault{trunc ? FaultKind::Truncated : FaultKind::Corrupt, sf.name, off, 0,
                               prev_seq_ + 1, 0,
                               trunc ? "segment ends inside a record (" + std::to_string(data.size() - off) +
                                           " bytes after the last complete record, seq " + std::to_string(prev_seq_) +
                                           "): crash during a write, or the file was cut; earlier records are intact"
                                     : std::string(to_string(st)) + ": unreadable data where a record should start (after seq " +
                                           std::to_string(prev_seq_) + ")"};
        break;
      }
      record(sf, *h, f, first_record);
      first_record = false;
      cur.boundaries.push_back(Boundary{f.offset + f.length, f.seq, std::string(f.hash)});
      off += f.length;
    }
    if (first_record && !cur.tail_fault)
      rep_.notes.push_back(sf.name + ": segment holds no record");
    cur.good_end = off;
    if (opt_.progress) opt_.progress(VerifyProgress{rep_.records, segments_done_, total_, sf.name});
    segments_done_++;
    prev_ = std::move(cur);
  }

  // Checks that segment `h` continues the previous one (or starts the archive).
  void link(const SegmentFile& sf, const SegmentHeader& h, bool first) {
    const bool genesis = h.prev_segment_no == 0 && h.first_seq == 1 && h.prev_hash == std::string(kHashBytes, '\0');
    if (first) {
      if (!genesis && !opt_.anchor_first_segment) anchor_ = std::make_pair(h.first_seq - 1, h.prev_hash);
      chain_known_ = true;
      prev_seq_ = h.first_seq - 1;
      prev_hash_ = h.prev_hash;
      rep_.first_seq = h.first_seq;
      return;
    }
    if (prev_) {
      if (h.prev_segment_no != prev_->segment_no) {
        fault(FaultKind::SegmentLink, sf.name, 0, 0, 0, 0,
              "segment " + std::to_string(h.segment_no) + " says it follows segment " + std::to_string(h.prev_segment_no) +
                  " but the previous file is segment " + std::to_string(prev_->segment_no) + " (segment missing)");
      } else {
        const Boundary* b = nullptr;
        for (const auto& x : prev_->boundaries)
          if (x.end_offset == h.prev_end_offset) b = &x;
        if (!b) {
          fault(FaultKind::Truncated, prev_->file, prev_->good_end, prev_seq_ + 1, prev_seq_ + 1, h.first_seq - 1,
                "the next segment says this segment's chain ended at offset " + std::to_string(h.prev_end_offset) +
                    " but its readable records end at offset " + std::to_string(prev_->good_end) +
                    " (records cut or altered): " + seq_range(prev_seq_ + 1, h.first_seq - 1) + " missing");
        } else {
          if (b->hash != h.prev_hash || b->seq + 1 != h.first_seq)
            fault(FaultKind::ChainBreak, sf.name, 0, h.first_seq, b->seq + 1, h.first_seq,
                  "segment header does not continue the chain of " + prev_->file + " at offset " +
                      std::to_string(h.prev_end_offset));
          if (h.prev_end_offset < prev_->good_end) {
            // The writer restarted from this boundary after a crash or a write
            // failure: what follows it was never acknowledged as durable.
            std::uint64_t excluded = 0;
            for (const auto& x : prev_->boundaries)
              if (x.end_offset > h.prev_end_offset) excluded++;
            rep_.records -= excluded;
            rep_.notes.push_back(prev_->file + ": chain ended at offset " + std::to_string(h.prev_end_offset) +
                                 " (seq " + std::to_string(b->seq) + "); " + std::to_string(excluded) +
                                 " later record(s) were never acknowledged (write failure) and are excluded");
            prev_->tail_fault.reset();
          } else if (prev_->tail_fault && h.prev_end_offset == prev_->good_end) {
            rep_.notes.push_back(prev_->file + ": truncated at offset " + std::to_string(prev_->good_end) +
                                 " (crash during a write); recovered by " + sf.name);
            prev_->tail_fault.reset();
          }
        }
      }
      if (prev_->tail_fault) rep_.faults.push_back(*prev_->tail_fault);
    } else if (!chain_known_) {
      // The previous segment was unreadable: already a fault; restart from this header.
    }
    chain_known_ = true;
    prev_seq_ = h.first_seq - 1;
    prev_hash_ = h.prev_hash;
  }

  void record(const SegmentFile& sf, const SegmentHeader& h, const FrameView& f, bool first_record) {
    rep_.records++;
    if (cur_summary_->records == 0) cur_summary_->first_time_us = f.time_us;
    cur_summary_->records++;
    cur_summary_->last_seq = f.seq;
    cur_summary_->last_time_us = f.time_us;
    if (chain_hash(f.prev_hash, f.hashed) != f.hash)
      fault(FaultKind::HashMismatch, sf.name, f.offset, f.seq, f.seq, f.seq,
            "record bytes do not match their hash (content altered)");
    if (f.prev_hash != prev_hash_ || f.seq != prev_seq_ + 1) {
      std::string what;
      std::uint64_t a = f.seq, b = f.seq;
      if (f.seq > prev_seq_ + 1) {
        what = seq_range(prev_seq_ + 1, f.seq - 1) + " missing (deleted)";
        a = prev_seq_ + 1;
        b = f.seq - 1;
      } else if (f.seq <= prev_seq_) {
        what = "out of order after seq " + std::to_string(prev_seq_) + " (reordered or duplicated)";
      } else {
        what = "does not link to the hash of seq " + std::to_string(prev_seq_) + " (previous record replaced or reordered)";
      }
      fault(FaultKind::ChainBreak, sf.name, f.offset, f.seq, a, b, "chain break: record seq " + std::to_string(f.seq) + " " + what);
    }
    RecordBody body;
    std::string meta, err;
    const bool decoded = decode_payload(f.type, f.payload, body, meta, &err);
    if (!decoded) fault(FaultKind::BadPayload, sf.name, f.offset, f.seq, f.seq, f.seq, err);

    if (first_record) {
      const auto* a = decoded ? std::get_if<AdminEvent>(&body) : nullptr;
      if (!a || a->kind != "segment-open" || f.seq != h.first_seq || a->field("segment") != std::to_string(h.segment_no) ||
          a->field("prev_hash") != to_hex(h.prev_hash) || a->field("prev_end_offset") != std::to_string(h.prev_end_offset) ||
          a->field("prev_segment") != std::to_string(h.prev_segment_no) || a->field("created_us") != std::to_string(h.created_us))
        fault(FaultKind::BadSegmentHeader, sf.name, f.offset, f.seq, 0, 0,
              "first record is not a segment-open event matching the segment header");
    }
    if (decoded && f.type == RecordType::Checkpoint) checkpoint(sf, h, f, std::get<CheckpointRecord>(body));
    if (decoded && f.type == RecordType::Admin) {
      const auto& a = std::get<AdminEvent>(body);
      if (a.kind == "retention-delete") deletions_.emplace_back(a.field("last_seq"), a.field("last_hash"));
      if (a.kind == "stop") stop_seq_ = f.seq;
    }
    if (f.type != RecordType::Checkpoint && uncovered_first_ == 0) uncovered_first_ = f.seq;
    prev_hash_ = std::string(f.hash);
    prev_seq_ = f.seq;
    rep_.last_seq = f.seq;
    progress(sf.name);
  }

  void checkpoint(const SegmentFile& sf, const SegmentHeader& h, const FrameView& f, const CheckpointRecord& c) {
    rep_.checkpoints++;
    const std::uint64_t a = uncovered_first_ ? uncovered_first_ : c.covered_seq;
    if (c.covered_seq + 1 != f.seq || c.covered_hash != f.prev_hash || c.segment_no != h.segment_no) {
      fault(FaultKind::BadSignature, sf.name, f.offset, f.seq, a, c.covered_seq,
            "checkpoint does not cover its predecessor in this segment");
      return;
    }
    if (!rep_.signatures_checked) return;
    auto it = keys_.find(c.key_id);
    if (it == keys_.end()) {
      fault(FaultKind::UnknownKey, sf.name, f.offset, f.seq, a, c.covered_seq,
            "checkpoint signed by key " + c.key_id + ", which was not given: " + seq_range(a, c.covered_seq) +
                " not authenticated");
      return;
    }
    if (!verify_detached(it->second, checkpoint_message(c.segment_no, c.covered_seq, c.covered_hash), c.signature)) {
      fault(FaultKind::BadSignature, sf.name, f.offset, f.seq, a, c.covered_seq,
            "checkpoint signature invalid (records re-chained or checkpoint forged): " + seq_range(a, c.covered_seq) +
                " not authenticated");
      return;
    }
    rep_.checkpoints_verified++;
    rep_.covered_through_seq = f.seq;   // the checkpoint and everything before it
    uncovered_first_ = 0;
  }

  void finish() {
    if (prev_ && prev_->tail_fault) {
      cur_summary_->faulty = true;
      rep_.faults.push_back(*prev_->tail_fault);
    }
    if (anchor_) {
      bool explained = false;
      for (const auto& [seq, hash] : deletions_)
        if (seq == std::to_string(anchor_->first) && hash == to_hex(anchor_->second)) explained = true;
      if (!explained)
        rep_.faults.insert(rep_.faults.begin(),
                           Fault{FaultKind::MissingStart, rep_.segment_summaries.front().file, 0, 0, 1, anchor_->first,
                                 "archive starts after seq " + std::to_string(anchor_->first) +
                                     " and no retention record in the chain explains the missing segments"});
    }
    if (opt_.expect_seq != 0 && rep_.last_seq < opt_.expect_seq) {
      const std::string file = rep_.segment_summaries.empty() ? "" : rep_.segment_summaries.back().file;
      rep_.faults.push_back(Fault{FaultKind::MissingEnd, file, prev_ ? prev_->good_end : 0, 0, rep_.last_seq + 1,
                                  opt_.expect_seq,
                                  "archive ends at seq " + std::to_string(rep_.last_seq) + " but seq " +
                                      std::to_string(opt_.expect_seq) + " was expected: " +
                                      seq_range(rep_.last_seq + 1, opt_.expect_seq) + " missing (archive cut)"});
    }
    // The writer's clean close is a `stop` record and the checkpoint signed over it.
    rep_.closed = rep_.tail_signed() && stop_seq_ != 0 && stop_seq_ + 1 == rep_.last_seq;
    if (rep_.tail_signed() && !rep_.closed)
      rep_.notes.push_back("the archive ends at checkpoint seq " + std::to_string(rep_.last_seq) +
                           " without a stop record: the writer is running or did not close, or the archive was cut there");
    if (rep_.tail_signed() && opt_.expect_seq == 0)
      rep_.notes.push_back("an archive cut at a checkpoint or a clean close looks complete; --expect-seq N (the last seq "
                           "of the syslog summary) detects it");
    if (!rep_.signatures_checked) rep_.notes.push_back("checkpoint signatures NOT checked (no public key given)");
  }

  const VerifyOptions& opt_;
  VerifyReport rep_;
  std::map<std::string, std::string> keys_;
  std::size_t total_ = 0, segments_done_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
  SegmentSummary* cur_summary_ = nullptr;
  std::optional<PrevSegment> prev_;
  bool chain_known_ = false;
  std::uint64_t prev_seq_ = 0;
  std::string prev_hash_;
  std::uint64_t uncovered_first_ = 0;
  std::uint64_t stop_seq_ = 0;   // seq of the last `stop` admin record (0: none)
  std::optional<std::pair<std::uint64_t, std::string>> anchor_;
  std::vector<std::pair<std::string, std::string>> deletions_;
};

}  // namespace

std::string_view to_string(FaultKind k) {
  switch (k) {
    case FaultKind::HashMismatch: return "HASH-MISMATCH";
    case FaultKind::ChainBreak: return "CHAIN-BREAK";
    case FaultKind::BadSignature: return "BAD-SIGNATURE";
    case FaultKind::UnknownKey: return "UNKNOWN-KEY";
    case FaultKind::BadPayload: return "BAD-PAYLOAD";
    case FaultKind::BadSegmentHeader: return "BAD-SEGMENT-HEADER";
    case FaultKind::SegmentLink: return "SEGMENT-LINK";
    case FaultKind::Truncated: return "TRUNCATED";
    case FaultKind::Corrupt: return "CORRUPT";
    case FaultKind::MissingStart: return "MISSING-START";
    case FaultKind::MissingEnd: return "MISSING-END";
    case FaultKind::Unreadable: return "UNREADABLE";
  }
  return "?";
}

std::string Fault::describe() const {
  std::string s = std::string(to_string(kind)) + " " + file + " offset " + std::to_string(offset);
  if (seq) s += " seq " + std::to_string(seq);
  if (range_first || range_last) {
    s += " (affects ";
    s += range_last >= range_first && range_last ? seq_range(range_first, range_last)
                                                 : "seq " + std::to_string(range_first) + " onwards";
    s += ")";
  }
  return s + ": " + message;
}

std::string VerifyReport::summary_line() const {
  if (!ok()) {
    std::string s = "FAULT: " + faults.front().describe();
    if (faults.size() > 1) s += " (and " + std::to_string(faults.size() - 1) + " more)";
    return s;
  }
  const std::string counts = std::to_string(records) + " records in " + std::to_string(segments) +
                             " segments, last seq " + std::to_string(last_seq) + ", " +
                             std::to_string(checkpoints_verified) + " checkpoints verified";
  if (tail_signed()) return "OK: " + counts;
  if (!signatures_checked) return "UNVERIFIED: checkpoint signatures not checked (no public key): " + counts;
  if (records == 0) return "UNVERIFIED: the archive holds no record";
  const std::uint64_t from = covered_through_seq ? covered_through_seq + 1 : first_seq;
  return "UNVERIFIED: " + seq_range(from, last_seq) +
         " at the end are not covered by a signed checkpoint and no closing record ends the archive "
         "(writer running or crashed, or the archive was cut): " + counts;
}

VerifyReport verify_segments(const std::vector<SegmentFile>& segments, const VerifyOptions& options) {
  return Verifier(options).run(segments);
}

VerifyReport verify_archive(const std::string& dir, const VerifyOptions& options) {
  std::vector<SegmentFile> segs;
  try {
    segs = list_segments(dir);
  } catch (const std::exception& e) {
    VerifyReport r;
    r.faults.push_back(Fault{FaultKind::Unreadable, dir, 0, 0, 0, 0, e.what()});
    return r;
  }
  if (segs.empty()) {
    VerifyReport r;
    r.faults.push_back(Fault{FaultKind::Unreadable, dir, 0, 0, 0, 0, "no audit segments in this directory"});
    return r;
  }
  return verify_segments(segs, options);
}

}  // namespace portcullis::audit
