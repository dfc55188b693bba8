#include "guard/audit/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "guard/audit/verify.h"

namespace portcullis::audit {

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

std::optional<double> statvfs_free_percent(const std::string& dir) {
  struct statvfs s{};
  if (::statvfs(dir.c_str(), &s) != 0 || s.f_blocks == 0) return std::nullopt;
  return 100.0 * static_cast<double>(s.f_bavail) / static_cast<double>(s.f_blocks);
}

// RFC 5424 SD-PARAM value escaping: '"', '\' and ']' are escaped.
std::string sd_escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\' || c == ']') out += '\\';
    out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  return out;
}

AdminEvent admin(std::string kind, std::string text, Notes fields = {}) {
  AdminEvent a;
  a.kind = std::move(kind);
  a.text = std::move(text);
  a.fields = std::move(fields);
  return a;
}

}  // namespace

AuditArchive::AuditArchive(net::EventLoop& loop, const config::AuditConfig& cfg, Logger& log, ArchiveHooks hooks)
    : loop_(loop), cfg_(cfg), log_(log), hooks_(std::move(hooks)) {
  if (sodium_init() < 0) throw AuditError("libsodium initialisation failed");
  if (!hooks_.write) hooks_.write = [](int fd, const void* b, std::size_t n) { return ::write(fd, b, n); };
  if (!hooks_.fdatasync) hooks_.fdatasync = [](int fd) { return ::fdatasync(fd); };
  if (!hooks_.free_percent) hooks_.free_percent = statvfs_free_percent;
  if (!hooks_.wall_clock_us) hooks_.wall_clock_us = wall_clock_us;
  if (!hooks_.syslog)
    hooks_.syslog = [](const std::string& line) { ::syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line.c_str()); };
  if (cfg_.dir.empty()) throw AuditError("audit: no archive directory configured");
  if (cfg_.signing_key_file.empty()) throw AuditError("audit: no signing key file configured");
  if (cfg_.checkpoint_every_records == 0) cfg_.checkpoint_every_records = 1;

  key_ = load_signing_key(cfg_.signing_key_file);
  key_id_ = key_id(key_.public_key);
  if (!cfg_.public_key_file.empty() && load_public_key(cfg_.public_key_file) != key_.public_key)
    throw AuditKeyError(cfg_.public_key_file + ": public key does not match the signing key " + cfg_.signing_key_file);

  if (::mkdir(cfg_.dir.c_str(), 0750) != 0 && errno != EEXIST) throw AuditError(errno_text("audit: cannot create " + cfg_.dir));
  dir_fd_ = ::open(cfg_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) throw AuditError(errno_text("audit: cannot open " + cfg_.dir));

  try {
    recover_from_existing();
  } catch (...) {
    ::close(dir_fd_);
    throw;
  }
  open_notes_.push_back(admin("start", "audit archive opened",
                              {{"key_id", key_id_}, {"pid", std::to_string(::getpid())}, {"format", "1"}}));
  last_cp_time_ = std::chrono::steady_clock::now();
  next_free_check_ = last_cp_time_ + hooks_.free_check_interval;
  std::string err;
  const Space sp = check_space(true);
  if (sp == Space::Stop) {
    enter_failed("free space below " + std::to_string(cfg_.stop_free_percent) + "% on " + cfg_.dir, false);
  } else if (!open_segment(err)) {
    enter_failed(err, false);
  } else {
    healthy_ = true;
    apply_retention();
  }
  thread_ = std::thread([this] { run(); });
}

AuditArchive::~AuditArchive() {
  close();
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

void AuditArchive::close() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (closed_) return;
    closed_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AuditArchive::append(Record r, std::function<void(AppendResult)> on_durable) {
  {
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_.appended++;
  }
  if (r.type() == RecordType::Checkpoint) {
    loop_.post([cb = std::move(on_durable)] { cb(AppendResult{false, 0, 0, 0, 0, "checkpoints are written by the archive"}); });
    return;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stop_) {
      queue_.push_back(Pending{std::move(r), std::move(on_durable)});
      cv_.notify_one();
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_.failed++;
  }
  loop_.post([cb = std::move(on_durable)] { cb(AppendResult{false, 0, 0, 0, 0, "audit archive closed"}); });
}

ArchiveStats AuditArchive::stats() const {
  std::lock_guard<std::mutex> lk(stats_mu_);
  ArchiveStats s = stats_;
  s.healthy = healthy_.load();
  return s;
}

void AuditArchive::retry_now() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    retry_requested_ = true;
  }
  cv_.notify_one();
}

void AuditArchive::rotate_now() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    rotate_requested_ = true;
  }
  cv_.notify_one();
}

std::uint64_t AuditArchive::now_us() const { return hooks_.wall_clock_us(); }

void AuditArchive::post_log(LogLevel l, std::string line) {
  // The Logger belongs to the event loop's thread.
  loop_.post([&log = log_, l, line = std::move(line)] { log.log(l, line); });
}

// ---------------------------------------------------------------------------
// Writer thread

void AuditArchive::run() {
  while (true) {
    std::vector<Pending> batch;
    bool stopping = false, retry = false, rotate = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      auto deadline = next_free_check_;
      if (!healthy_) deadline = std::min(deadline, next_retry_);
      if (healthy_ && records_since_cp_ > 0)
        deadline = std::min(deadline, last_cp_time_ + std::chrono::milliseconds(cfg_.checkpoint_every_ms));
      cv_.wait_until(lk, deadline, [&] { return !queue_.empty() || stop_ || retry_requested_ || rotate_requested_; });
      batch.swap(queue_);
      stopping = stop_;
      retry = std::exchange(retry_requested_, false);
      rotate = std::exchange(rotate_requested_, false);
    }
    const auto now = std::chrono::steady_clock::now();
    if (!healthy_ && (retry || now >= next_retry_)) try_recover();
    if (healthy_) {
      if (rotate) {
        std::string err;
        if (!close_segment(err) || !open_segment(err)) enter_failed(err, true);
        else apply_retention();
      }
      maybe_housekeeping();
    }
    if (!batch.empty()) process(batch);
    if (stopping) break;
  }
  if (healthy_) {
    // Everything queued before close() has been written by the last pass.
    std::string err;
    Record stop{now_us(), admin("stop", "audit archive closed")};
    std::uint64_t seq = 0;
    std::string buf = frame_for(stop, seq);
    records_since_cp_++;
    if (!write_and_sync(buf, err) || !close_segment(err)) post_log(LogLevel::Error, "audit: closing the archive failed: " + err);
  } else if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

// Checkpoint by time, free-space check and rotation by size/age, between batches.
void AuditArchive::maybe_housekeeping() {
  const auto now = std::chrono::steady_clock::now();
  std::string err;
  if (now >= next_free_check_) {
    next_free_check_ = now + hooks_.free_check_interval;
    if (check_space(true) == Space::Stop) {
      enter_failed("free space below " + std::to_string(cfg_.stop_free_percent) + "% on " + cfg_.dir, true);
      return;
    }
  }
  if (records_since_cp_ > 0 && now - last_cp_time_ >= std::chrono::milliseconds(cfg_.checkpoint_every_ms)) {
    if (!write_checkpoint(err)) {
      enter_failed(err, true);
      return;
    }
  }
  const bool too_big = cfg_.segment_max_bytes && cur_offset_ >= cfg_.segment_max_bytes;
  const bool too_old = cfg_.segment_max_age_s &&
                       now_us() >= cur_.created_us + static_cast<std::uint64_t>(cfg_.segment_max_age_s) * 1000000u;
  if (too_big || too_old) {
    if (!close_segment(err) || !open_segment(err)) enter_failed(err, true);
    else apply_retention();
  }
}

std::string AuditArchive::frame_for(Record& r, std::uint64_t& seq_out) {
  if (r.time_us == 0) r.time_us = now_us();
  const std::string payload = encode_payload(r);
  std::string h;
  std::string f = encode_frame(r.type(), next_seq_, r.time_us, payload, last_hash_, h);
  seq_out = next_seq_++;
  last_hash_ = std::move(h);
  last_is_checkpoint_ = r.type() == RecordType::Checkpoint;
  return f;
}

std::string AuditArchive::checkpoint_frame() {
  CheckpointRecord c;
  c.segment_no = cur_.segment_no;
  c.covered_seq = next_seq_ - 1;
  c.covered_hash = last_hash_;
  c.key_id = key_id_;
  c.signature = sign_detached(key_, checkpoint_message(c.segment_no, c.covered_seq, c.covered_hash));
  Record r{now_us(), std::move(c)};
  std::uint64_t seq = 0;
  return frame_for(r, seq);
}

bool AuditArchive::write_and_sync(const std::string& buf, std::string& error) {
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = hooks_.write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = errno_text("audit: write to " + cur_file_ + " failed");
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  if (hooks_.fdatasync(fd_) != 0) {
    error = errno_text("audit: fdatasync of " + cur_file_ + " failed");
    return false;
  }
  cur_offset_ += buf.size();
  std::lock_guard<std::mutex> lk(stats_mu_);
  stats_.syncs++;
  return true;
}

void AuditArchive::process(std::vector<Pending>& batch) {
  if (!healthy_) {
    fail_batch(batch, "audit store unavailable: " + fail_reason_);
    return;
  }
  const std::uint64_t saved_seq = next_seq_, saved_since = records_since_cp_, saved_offset = cur_offset_;
  const std::string saved_hash = last_hash_;
  const bool saved_last_cp = last_is_checkpoint_;
  std::string buf;
  std::uint64_t cps = 0;
  std::vector<AppendResult> results;
  results.reserve(batch.size());
  for (auto& p : batch) {
    AppendResult res;
    res.ok = true;
    res.segment_no = cur_.segment_no;
    res.offset = cur_offset_ + buf.size();
    buf += frame_for(p.record, res.seq);
    res.length = cur_offset_ + buf.size() - res.offset;
    results.push_back(res);
    // A checkpoint every N records, also inside a large batch.
    if (++records_since_cp_ >= cfg_.checkpoint_every_records) {
      buf += checkpoint_frame();
      records_since_cp_ = 0;
      cps++;
    }
  }
  std::string err;
  if (!write_and_sync(buf, err)) {
    next_seq_ = saved_seq;
    last_hash_ = saved_hash;
    records_since_cp_ = saved_since;
    cur_offset_ = saved_offset;
    last_is_checkpoint_ = saved_last_cp;
    enter_failed(err, true);
    fail_batch(batch, err);
    return;
  }
  if (cps) last_cp_time_ = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_.batches++;
    stats_.durable += batch.size();
    stats_.checkpoints += cps;
    stats_.last_seq = next_seq_ - 1;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (cfg_.syslog_summary) syslog_summary(batch[i].record, results[i].seq);
    loop_.post([cb = std::move(batch[i].on_durable), res = std::move(results[i])] { cb(res); });
  }
}

void AuditArchive::fail_batch(std::vector<Pending>& batch, const std::string& why) {
  {
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_.failed += batch.size();
  }
  if (!batch.empty() && failed_count_ == 0) failed_since_us_ = now_us();
  failed_count_ += batch.size();
  for (auto& p : batch)
    loop_.post([cb = std::move(p.on_durable), why] { cb(AppendResult{false, 0, 0, 0, 0, why}); });
}

bool AuditArchive::write_checkpoint(std::string& error) {
  const auto saved_hash = last_hash_;
  const auto saved_seq = next_seq_;
  std::string buf = checkpoint_frame();
  if (!write_and_sync(buf, error)) {
    last_hash_ = saved_hash;
    next_seq_ = saved_seq;
    return false;
  }
  records_since_cp_ = 0;
  last_cp_time_ = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lk(stats_mu_);
  stats_.checkpoints++;
  stats_.last_seq = next_seq_ - 1;
  return true;
}

bool AuditArchive::close_segment(std::string& error) {
  if (fd_ < 0) return true;
  if (!last_is_checkpoint_ && !write_checkpoint(error)) return false;
  ::close(fd_);
  fd_ = -1;
  prev_end_offset_ = cur_offset_;
  return true;
}

// Creates the next segment as <name>.tmp with its header and first records,
// syncs it and renames it into place, so a segment file under its final name
// always has a complete header.
bool AuditArchive::open_segment(std::string& error) {
  const std::uint64_t created = now_us();
  SegmentHeader h;
  h.segment_no = last_segment_no_ + 1;
  h.first_seq = next_seq_;
  h.created_us = created;
  h.prev_segment_no = last_segment_no_;
  h.prev_end_offset = prev_end_offset_;
  h.prev_hash = last_hash_;
  const std::string name = segment_file_name(h.segment_no, h.first_seq, created);
  const std::string path = cfg_.dir + "/" + name;
  const std::string tmp = path + ".tmp";

  const std::uint64_t saved_seq = next_seq_;
  const std::string saved_hash = last_hash_;
  std::string buf = encode_segment_header(h);
  std::vector<AdminEvent> events;
  events.push_back(admin("segment-open", "segment " + std::to_string(h.segment_no) + " opened",
                         {{"segment", std::to_string(h.segment_no)},
                          {"file", name},
                          {"first_seq", std::to_string(h.first_seq)},
                          {"created_us", std::to_string(h.created_us)},
                          {"prev_segment", std::to_string(h.prev_segment_no)},
                          {"prev_end_offset", std::to_string(h.prev_end_offset)},
                          {"prev_hash", to_hex(h.prev_hash)}}));
  for (auto& e : open_notes_) events.push_back(e);
  for (auto& e : events) {
    Record r{created, std::move(e)};
    std::uint64_t seq = 0;
    buf += frame_for(r, seq);
  }
  auto undo = [&](const std::string& why) {
    error = why;
    next_seq_ = saved_seq;
    last_hash_ = saved_hash;
    return false;
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) return undo(errno_text("audit: cannot create " + tmp));
  const int old_fd = fd_;
  fd_ = fd;
  const std::string old_file = cur_file_;
  const std::uint64_t old_offset = cur_offset_;
  cur_file_ = name;
  cur_offset_ = 0;
  std::string err;
  if (!write_and_sync(buf, err) || ::rename(tmp.c_str(), path.c_str()) != 0 || ::fsync(dir_fd_) != 0) {
    if (err.empty()) err = errno_text("audit: cannot install " + path);
    ::close(fd);
    ::unlink(tmp.c_str());
    fd_ = old_fd;
    cur_file_ = old_file;
    cur_offset_ = old_offset;
    return undo(err);
  }
  cur_ = h;
  last_segment_no_ = h.segment_no;
  records_since_cp_ += events.size();
  open_notes_.clear();
  {
    std::lock_guard<std::mutex> lk(stats_mu_);
    stats_.segments_opened++;
    stats_.last_seq = next_seq_ - 1;
  }
  check_space(true);
  return true;
}

void AuditArchive::enter_failed(const std::string& why, bool abandon_segment) {
  const bool was_healthy = healthy_.exchange(false);
  fail_reason_ = why;
  next_retry_ = std::chrono::steady_clock::now() + hooks_.retry_interval;
  if (abandon_segment && fd_ >= 0) {
    // Drop whatever part of the failed batch reached the file, best effort;
    // the next segment records where this one's chain ended in any case.
    if (::ftruncate(fd_, static_cast<off_t>(cur_offset_)) != 0) {
    }
    ::close(fd_);
    fd_ = -1;
    prev_end_offset_ = cur_offset_;
    open_notes_.push_back(admin("segment-abandoned", "segment " + cur_file_ + " abandoned after a store failure",
                                {{"file", cur_file_}, {"end_offset", std::to_string(cur_offset_)}, {"reason", why}}));
  }
  if (was_healthy || failed_count_ == 0)
    post_log(LogLevel::Error, "ALARM audit: archive store failed, releases stop (fail closed): " + why);
}

void AuditArchive::try_recover() {
  next_retry_ = std::chrono::steady_clock::now() + hooks_.retry_interval;
  if (check_space(false) == Space::Stop) {
    fail_reason_ = "free space below " + std::to_string(cfg_.stop_free_percent) + "% on " + cfg_.dir;
    return;
  }
  if (fd_ >= 0) {
    std::string err;
    close_segment(err);
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      prev_end_offset_ = cur_offset_;
    }
  }
  open_notes_.push_back(admin("store-recovered",
                              "audit store recovered; " + std::to_string(failed_count_) +
                                  " append(s) failed while it was unavailable and are not in the archive",
                              {{"failed_appends", std::to_string(failed_count_)},
                               {"failed_since_us", std::to_string(failed_since_us_)},
                               {"reason", fail_reason_}}));
  std::string err;
  if (!open_segment(err)) {
    open_notes_.pop_back();
    fail_reason_ = err;
    return;
  }
  healthy_ = true;
  post_log(LogLevel::Warning, "audit: archive store recovered after " + std::to_string(failed_count_) +
                                  " failed append(s); releases resume");
  failed_count_ = 0;
  failed_since_us_ = 0;
  apply_retention();
}

AuditArchive::Space AuditArchive::check_space(bool log_transitions) {
  const auto pct = hooks_.free_percent(cfg_.dir);
  Space s = Space::Unknown;
  if (pct) s = *pct < cfg_.stop_free_percent ? Space::Stop : *pct < cfg_.warn_free_percent ? Space::Warn : Space::Ok;
  if (log_transitions && s != space_state_ && pct) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%.1f%% free on %s", *pct, cfg_.dir.c_str());
    if (s == Space::Warn)
      post_log(LogLevel::Warning, std::string("audit: low space on the archive filesystem: ") + buf +
                                      " (warning below " + std::to_string(cfg_.warn_free_percent) + "%)");
    else if (s == Space::Stop)
      post_log(LogLevel::Error, std::string("audit: archive filesystem nearly full: ") + buf + " (stop below " +
                                    std::to_string(cfg_.stop_free_percent) + "%)");
    else if (s == Space::Ok && space_state_ != Space::Unknown)
      post_log(LogLevel::Info, std::string("audit: archive filesystem space back to normal: ") + buf);
  }
  if (log_transitions) space_state_ = s;
  return s;
}

// Deletes the oldest segments whose records are all older than retention_days,
// one at a time and only if the segment verifies (chain and signatures, with
// the next segment to prove its end). Each deletion is first recorded (durably)
// in the current segment, then the file is removed.
void AuditArchive::apply_retention() {
  if (cfg_.retention_days == 0 || fd_ < 0) return;
  const std::uint64_t cutoff_us = now_us() - std::min<std::uint64_t>(now_us(), std::uint64_t(cfg_.retention_days) * 86400ull * 1000000ull);
  std::vector<SegmentFile> segs;
  try {
    segs = list_segments(cfg_.dir);
  } catch (const std::exception& e) {
    post_log(LogLevel::Error, std::string("audit retention: ") + e.what());
    return;
  }
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    if (segs[i].segment_no >= cur_.segment_no) break;
    VerifyOptions vo;
    vo.public_keys = {key_.public_key};
    vo.anchor_first_segment = true;
    const VerifyReport rep = verify_segments({segs[i], segs[i + 1]}, vo);
    const auto& s0 = rep.segment_summaries.front();
    if (s0.records == 0 || s0.last_time_us >= cutoff_us) break;   // not old enough: nothing later is
    // Only faults of this segment and of the link into the next one matter
    // here; the next segment is judged on its own turn.
    bool bad = rep.covered_through_seq < s0.last_seq;
    for (const auto& f : rep.faults)
      bad = bad || f.file == segs[i].name || f.offset <= kSegmentHeaderBytes;
    if (bad) {
      post_log(LogLevel::Error, "audit retention: NOT deleting " + segs[i].name + ": it does not verify (" +
                                    rep.summary_line() + ")");
      break;
    }
    std::string data, err;
    std::optional<SegmentHeader> next;
    if (read_whole_file(segs[i + 1].path, data, &err)) next = decode_segment_header(data, &err);
    if (!next) break;
    Record r{now_us(), admin("retention-delete", "segment " + segs[i].name + " deleted by retention (" +
                                                    std::to_string(cfg_.retention_days) + " days)",
                             {{"file", segs[i].name},
                              {"segment", std::to_string(segs[i].segment_no)},
                              {"first_seq", std::to_string(segs[i].first_seq)},
                              {"last_seq", std::to_string(next->first_seq - 1)},
                              {"last_hash", to_hex(next->prev_hash)},
                              {"last_time_us", std::to_string(s0.last_time_us)}})};
    const auto saved_hash = last_hash_;
    const auto saved_seq = next_seq_;
    std::uint64_t seq = 0;
    const std::string buf = frame_for(r, seq);
    if (!write_and_sync(buf, err)) {
      last_hash_ = saved_hash;
      next_seq_ = saved_seq;
      enter_failed(err, true);
      return;
    }
    records_since_cp_++;
    if (::unlink(segs[i].path.c_str()) != 0) {
      post_log(LogLevel::Error, errno_text("audit retention: cannot delete " + segs[i].path));
      break;
    }
    ::fsync(dir_fd_);
    {
      std::lock_guard<std::mutex> lk(stats_mu_);
      stats_.segments_deleted++;
      stats_.last_seq = next_seq_ - 1;
    }
    post_log(LogLevel::Info, "audit retention: deleted " + segs[i].name + " (verified, recorded as seq " +
                                 std::to_string(seq) + ")");
  }
}

// Finds where the chain ends: the last complete record of the last segment.
void AuditArchive::recover_from_existing() {
  // Leftovers of a crash while creating a segment: never acknowledged.
  if (DIR* d = ::opendir(cfg_.dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 8 && n.compare(0, 4, "seg-") == 0 && n.compare(n.size() - 8, 8, ".pca.tmp") == 0)
        ::unlinkat(dir_fd_, n.c_str(), 0);
    }
    ::closedir(d);
  }
  std::vector<SegmentFile> segs = list_segments(cfg_.dir);
  last_hash_ = std::string(kHashBytes, '\0');
  if (segs.empty()) return;
  const SegmentFile& last = segs.back();
  std::string data, err;
  if (!read_whole_file(last.path, data, &err)) throw AuditError("audit: " + err);
  auto h = decode_segment_header(data, &err);
  if (!h) throw AuditError("audit: archive damaged: " + last.name + ": " + err + " (run portcullis-audit verify)");
  std::uint64_t seq = h->first_seq - 1;
  std::string hash = h->prev_hash;
  std::uint64_t off = kSegmentHeaderBytes;
  std::string last_key;
  FrameStatus st;
  while (true) {
    FrameView f;
    st = read_frame(data, off, f);
    if (st != FrameStatus::Ok) break;
    if (f.seq != seq + 1 || f.prev_hash != hash || chain_hash(f.prev_hash, f.hashed) != f.hash)
      throw AuditError("audit: archive damaged: " + last.name + " offset " + std::to_string(off) + " seq " +
                       std::to_string(f.seq) + " does not chain (run portcullis-audit verify)");
    if (f.type == RecordType::Checkpoint) {
      RecordBody b;
      std::string meta;
      if (decode_payload(f.type, f.payload, b, meta, nullptr)) last_key = std::get<CheckpointRecord>(b).key_id;
    }
    seq = f.seq;
    hash = std::string(f.hash);
    off += f.length;
  }
  if (st == FrameStatus::BadMagic || st == FrameStatus::BadHeader)
    throw AuditError("audit: archive damaged: " + last.name + " offset " + std::to_string(off) + ": " +
                     std::string(to_string(st)) + " (run portcullis-audit verify)");
  if (st == FrameStatus::Truncated) {
    open_notes_.push_back(admin("recovery",
                                "previous segment " + last.name + " truncated at offset " + std::to_string(off) + " (" +
                                    std::to_string(data.size() - off) + " bytes of an incomplete record after seq " +
                                    std::to_string(seq) + " discarded)",
                                {{"file", last.name},
                                 {"offset", std::to_string(off)},
                                 {"discarded_bytes", std::to_string(data.size() - off)},
                                 {"last_seq", std::to_string(seq)}}));
  }
  if (!last_key.empty() && last_key != key_id_)
    open_notes_.push_back(admin("key-change", "checkpoint signing key changed",
                                {{"old_key_id", last_key}, {"new_key_id", key_id_}}));
  next_seq_ = seq + 1;
  last_hash_ = hash;
  last_segment_no_ = h->segment_no;
  prev_end_offset_ = off;
}

void AuditArchive::syslog_summary(const Record& r, std::uint64_t seq) {
  std::string sd = "[portcullis-audit@32473 seq=\"" + std::to_string(seq) + "\" type=\"" +
                   std::string(to_string(r.type())) + "\"";
  std::string msg;
  auto param = [&sd](const char* k, std::string_view v) {
    if (!v.empty()) sd += std::string(" ") + k + "=\"" + sd_escape(v) + "\"";
  };
  if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
    param("outcome", to_string(d->outcome));
    param("dir", to_string(d->direction));
    param("peer", d->peer.domain);
    param("from", d->from);
    param("to", d->to);
    param("kind", d->stanza_kind);
    param("id", d->stanza_id);
    std::string rule;
    for (const auto& f : d->filters)
      if (f.verdict != "no-opinion" && !f.rule_id.empty()) rule = f.rule_id;
    param("rule", rule);
    param("label", d->label_effective);
    param("sha256", to_hex(sha256(d->original)));
    msg = std::string(to_string(d->outcome)) + " " + d->stanza_kind + " " + d->from + " -> " + d->to;
  } else if (const auto* c = std::get_if<ConnectionEvent>(&r.body)) {
    param("event", c->kind);
    param("peer", c->peer.domain);
    msg = c->kind + ": " + c->text;
  } else if (const auto* a = std::get_if<AdminEvent>(&r.body)) {
    param("event", a->kind);
    msg = a->kind + ": " + a->text;
  }
  hooks_.syslog(sd + "] " + msg);
}

}  // namespace portcullis::audit
