// The audit archive writer (filter process): append-only, hash-chained
// segments with Ed25519-signed checkpoints, and "audit before release".
//
// Threading: append() is called on the filter's event loop. A writer thread
// owned by the archive encodes, writes and fdatasyncs; records appended while
// a sync is in flight are written and synced together by the next fdatasync
// (group commit). Each on_durable callback is posted back to the event loop
// (EventLoop::post) only after the record's bytes are durable, or with a
// failure. The thread is an implementation detail of this module: the
// processes of the sandwich still share nothing.
//
// Fail closed: when a write or sync fails, or free space on the archive
// filesystem is below stop_free_percent, every pending and new append
// completes with ok=false (the filter must then not release: it answers with
// a wait-type error) and an alarm is logged. The writer retries on a timer and
// recovers by itself: it opens a new segment whose first records say what
// failed. Records that failed are not in the chain (their callbacks said so).
//
// Crash safety: at start the last segment is scanned; a record cut by a crash
// is detected, the writer starts a new segment after the last complete record
// and records "previous segment truncated at offset X".
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "guard/audit/format.h"
#include "guard/audit/keys.h"
#include "guard/audit/record.h"
#include "guard/config/config.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"

namespace portcullis::audit {

class AuditError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct AppendResult {
  bool ok = false;
  std::uint64_t seq = 0;          // archive sequence number (ok only)
  std::uint64_t segment_no = 0;   // where the record is (ok only)
  std::uint64_t offset = 0;       // byte offset of its frame in the segment file
  std::uint64_t length = 0;       // frame length
  std::string error;              // why it failed (!ok)
};

struct ArchiveStats {
  std::uint64_t appended = 0;     // append() calls
  std::uint64_t durable = 0;      // records acknowledged ok
  std::uint64_t failed = 0;       // records acknowledged with failure
  std::uint64_t syncs = 0;        // fdatasync calls that succeeded
  std::uint64_t batches = 0;      // group-commit batches written
  std::uint64_t checkpoints = 0;
  std::uint64_t segments_opened = 0;
  std::uint64_t segments_deleted = 0;   // by retention
  std::uint64_t last_seq = 0;
  bool healthy = false;
};

// Fault injection and clocks for tests; defaults are the real system calls.
struct ArchiveHooks {
  std::function<ssize_t(int fd, const void* buf, std::size_t n)> write;
  std::function<int(int fd)> fdatasync;
  // Free space on the archive filesystem in percent (nullopt: unknown).
  std::function<std::optional<double>(const std::string& dir)> free_percent;
  std::function<std::uint64_t()> wall_clock_us;          // UTC µs since the epoch
  std::function<void(const std::string& line)> syslog;   // default: syslog(3)
  std::chrono::milliseconds retry_interval{1000};
  std::chrono::milliseconds free_check_interval{5000};
};

class AuditArchive {
 public:
  // Control plane. Loads the signing key (refused if group/world accessible),
  // checks it against cfg.public_key_file when set, creates cfg.dir (0750) if
  // missing, scans the last segment (crash recovery), applies retention, opens
  // a new segment with a "start" event and starts the writer thread. Throws
  // AuditKeyError / AuditError on a bad key, an unusable directory or a
  // damaged archive (hash/link mismatch in the last segment). A store that
  // merely cannot be written now (full, I/O error) does not throw: the archive
  // starts unhealthy, fails appends and retries.
  // `loop` and `log` must outlive the archive; destroy the archive before the loop.
  AuditArchive(net::EventLoop& loop, const config::AuditConfig& cfg, Logger& log, ArchiveHooks hooks = {});
  ~AuditArchive();   // close()
  AuditArchive(const AuditArchive&) = delete;
  AuditArchive& operator=(const AuditArchive&) = delete;

  // Data path, event-loop thread. Queues `r` for the next group commit. Exactly
  // one call of `on_durable` follows, on the event loop: ok=true after the
  // record's bytes are fdatasync'ed, ok=false when it could not be made durable
  // (the record is then not in the archive). Never throws, never blocks on I/O.
  // r.time_us == 0 is filled with the current UTC time. Checkpoint bodies are
  // refused (the archive writes them itself).
  void append(Record r, std::function<void(AppendResult)> on_durable);

  // Writes what is queued, a "stop" event and a closing checkpoint, and stops
  // the writer thread. Appends after close() fail. Idempotent.
  void close();

  bool healthy() const { return healthy_.load(); }
  ArchiveStats stats() const;
  // Asks the writer to retry a failed store now instead of at the next timer.
  void retry_now();
  // Asks the writer to close the current segment and open a new one (and run
  // retention) before the next batch.
  void rotate_now();
  const std::string& public_key() const { return key_.public_key; }

 private:
  struct Pending {
    Record record;
    std::function<void(AppendResult)> on_durable;
  };
  enum class Space { Ok, Warn, Stop, Unknown };

  void run();
  void process(std::vector<Pending>& batch);
  void fail_batch(std::vector<Pending>& batch, const std::string& why);
  bool open_segment(std::string& error);
  bool close_segment(std::string& error);
  bool write_checkpoint(std::string& error);
  bool write_and_sync(const std::string& buf, std::string& error);
  void enter_failed(const std::string& why, bool abandon_segment);
  void try_recover();
  void apply_retention();
  void recover_from_existing();
  Space check_space(bool log_transitions);
  void maybe_housekeeping();
  std::string frame_for(Record& r, std::uint64_t& seq_out);
  std::string checkpoint_frame();
  void syslog_summary(const Record& r, std::uint64_t seq);
  void post_log(LogLevel l, std::string line);
  std::uint64_t now_us() const;

  net::EventLoop& loop_;
  config::AuditConfig cfg_;
  Logger& log_;
  ArchiveHooks hooks_;
  SigningKey key_;
  std::string key_id_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;
  bool stop_ = false, closed_ = false, retry_requested_ = false, rotate_requested_ = false;
  std::thread thread_;
  std::atomic<bool> healthy_{false};

  mutable std::mutex stats_mu_;
  ArchiveStats stats_;

  // Writer-thread state (also used by the constructor before the thread starts).
  int fd_ = -1;
  int dir_fd_ = -1;
  SegmentHeader cur_;
  std::string cur_file_;
  std::uint64_t cur_offset_ = 0;          // end of the durable chain in the current segment
  std::uint64_t next_seq_ = 1;
  std::string last_hash_;
  std::uint64_t last_segment_no_ = 0;
  std::uint64_t prev_end_offset_ = 0;
  std::uint64_t records_since_cp_ = 0;
  bool last_is_checkpoint_ = false;
  std::chrono::steady_clock::time_point last_cp_time_;
  std::chrono::steady_clock::time_point next_retry_, next_free_check_;
  std::vector<AdminEvent> open_notes_;    // written at the next segment open
  std::string fail_reason_;
  std::uint64_t failed_since_us_ = 0, failed_count_ = 0;
  Space space_state_ = Space::Ok;
};

}  // namespace portcullis::audit
