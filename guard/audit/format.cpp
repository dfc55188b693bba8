#include "guard/audit/format.h"

#include "guard/audit/record.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace portcullis::audit {

namespace {

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}
std::uint64_t get_u64(std::string_view d, std::size_t p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(d[p + i]);
  return v;
}
std::uint32_t get_u32(std::string_view d, std::size_t p) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(d[p + i]);
  return v;
}

}  // namespace

std::string encode_segment_header(const SegmentHeader& h) {
  std::string out = "PCAS";
  out += static_cast<char>(kFormatVersion);
  out.append(3, '\0');
  put_u64(out, h.segment_no);
  put_u64(out, h.first_seq);
  put_u64(out, h.created_us);
  put_u64(out, h.prev_segment_no);
  put_u64(out, h.prev_end_offset);
  out += h.prev_hash;
  return out;
}

std::optional<SegmentHeader> decode_segment_header(std::string_view d, std::string* error) {
  auto fail = [&](const char* m) -> std::optional<SegmentHeader> {
    if (error) *error = m;
    return std::nullopt;
  };
  if (d.size() < kSegmentHeaderBytes) return fail("segment header truncated");
  if (d.substr(0, 4) != "PCAS") return fail("bad segment magic");
  if (static_cast<std::uint8_t>(d[4]) != kFormatVersion) return fail("unknown segment format version");
  SegmentHeader h;
  h.segment_no = get_u64(d, 8);
  h.first_seq = get_u64(d, 16);
  h.created_us = get_u64(d, 24);
  h.prev_segment_no = get_u64(d, 32);
  h.prev_end_offset = get_u64(d, 40);
  h.prev_hash = std::string(d.substr(48, kHashBytes));
  return h;
}

FrameStatus read_frame(std::string_view data, std::uint64_t offset, FrameView& out) {
  if (offset == data.size()) return FrameStatus::End;
  if (offset > data.size()) return FrameStatus::Truncated;
  const std::string_view d = data.substr(static_cast<std::size_t>(offset));
  // A partial magic at the end is a cut frame, not corruption.
  const std::size_t m = std::min<std::size_t>(4, d.size());
  if (d.substr(0, m) != std::string_view("PCAR").substr(0, m)) return FrameStatus::BadMagic;
  if (d.size() < kFrameHeaderBytes) return FrameStatus::Truncated;
  const auto version = static_cast<std::uint8_t>(d[4]);
  const auto type = static_cast<std::uint8_t>(d[5]);
  if (version != kFormatVersion || type < 1 || type > 4) return FrameStatus::BadHeader;
  const std::uint32_t n = get_u32(d, 24);
  if (n > kMaxPayloadBytes) return FrameStatus::BadHeader;
  const std::size_t total = kFrameOverheadBytes + n;
  if (d.size() < total) return FrameStatus::Truncated;
  out.offset = offset;
  out.length = total;
  out.raw_type = type;
  out.type = static_cast<RecordType>(type);
  out.seq = get_u64(d, 8);
  out.time_us = get_u64(d, 16);
  out.payload = d.substr(kFrameHeaderBytes, n);
  out.hashed = d.substr(0, kFrameHeaderBytes + n);
  out.prev_hash = d.substr(kFrameHeaderBytes + n, kHashBytes);
  out.hash = d.substr(kFrameHeaderBytes + n + kHashBytes, kHashBytes);
  return FrameStatus::Ok;
}

std::string_view to_string(FrameStatus s) {
  switch (s) {
    case FrameStatus::Ok: return "ok";
    case FrameStatus::End: return "end";
    case FrameStatus::Truncated: return "truncated";
    case FrameStatus::BadMagic: return "bad frame magic";
    case FrameStatus::BadHeader: return "bad frame header";
  }
  return "?";
}

std::string chain_hash(std::string_view prev_hash, std::string_view hashed) { return sha256(prev_hash, hashed); }

std::string encode_frame(RecordType type, std::uint64_t seq, std::uint64_t time_us, std::string_view payload,
                         std::string_view prev_hash, std::string& hash_out) {
  std::string f;
  f.reserve(kFrameOverheadBytes + payload.size());
  f += "PCAR";
  f += static_cast<char>(kFormatVersion);
  f += static_cast<char>(static_cast<std::uint8_t>(type));
  f.append(2, '\0');
  put_u64(f, seq);
  put_u64(f, time_us);
  put_u32(f, static_cast<std::uint32_t>(payload.size()));
  f += payload;
  hash_out = chain_hash(prev_hash, f);
  f += prev_hash;
  f += hash_out;
  return f;
}

std::string checkpoint_message(std::uint64_t segment_no, std::uint64_t covered_seq, std::string_view covered_hash) {
  std::string m = "portcullis-audit-checkpoint-v1";
  put_u64(m, segment_no);
  put_u64(m, covered_seq);
  m += covered_hash;
  return m;
}

std::string segment_file_name(std::uint64_t segment_no, std::uint64_t first_seq, std::uint64_t created_us) {
  const std::time_t t = static_cast<std::time_t>(created_us / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "seg-%08llu-%012llu-%s", static_cast<unsigned long long>(segment_no),
                static_cast<unsigned long long>(first_seq), ts);
  return std::string(buf) + std::string(kSegmentSuffix);
}

bool parse_segment_file_name(std::string_view name, std::uint64_t& segment_no, std::uint64_t& first_seq) {
  // seg-NNNNNNNN-NNNNNNNNNNNN-YYYYMMDDTHHMMSSZ.pca
  if (name.size() < 4 + kSegmentSuffix.size() || name.substr(0, 4) != "seg-") return false;
  if (name.substr(name.size() - kSegmentSuffix.size()) != kSegmentSuffix) return false;
  std::string_view rest = name.substr(4, name.size() - 4 - kSegmentSuffix.size());
  auto num = [](std::string_view s, std::uint64_t& v) {
    if (s.empty() || s.size() > 19) return false;
    v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  };
  const auto d1 = rest.find('-');
  if (d1 == std::string_view::npos) return false;
  const auto d2 = rest.find('-', d1 + 1);
  if (d2 == std::string_view::npos) return false;
  return num(rest.substr(0, d1), segment_no) && num(rest.substr(d1 + 1, d2 - d1 - 1), first_seq) &&
         rest.size() - d2 - 1 == 16;
}

std::vector<SegmentFile> list_segments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw std::runtime_error("cannot read archive directory " + dir + ": " + std::strerror(errno));
  std::vector<SegmentFile> out;
  while (dirent* e = ::readdir(d)) {
    SegmentFile f;
    f.name = e->d_name;
    if (!parse_segment_file_name(f.name, f.segment_no, f.first_seq)) continue;
    f.path = dir + "/" + f.name;
    out.push_back(std::move(f));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const SegmentFile& a, const SegmentFile& b) {
    return a.segment_no != b.segment_no ? a.segment_no < b.segment_no : a.name < b.name;
  });
  return out;
}

bool read_whole_file(const std::string& path, std::string& out, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
  out.clear();
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (error) *error = path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

std::string format_time_us(std::uint64_t us) {
  const std::time_t t = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s.%06lluZ", ts, static_cast<unsigned long long>(us % 1000000));
  return buf;
}

std::uint64_t wall_clock_us() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace portcullis::audit
