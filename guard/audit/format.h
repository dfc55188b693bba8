// The on-disk format of the audit archive (full description with examples in
// docs/audit-format.md). All integers are big-endian.
//
// Segment file  <dir>/seg-<segment_no:08>-<first_seq:012>-<YYYYMMDDTHHMMSSZ>.pca
//   header (80 bytes): "PCAS" | u8 version=1 | 3 x u8 0 | u64 segment_no
//     | u64 first_seq | u64 created_us | u64 prev_segment_no | u64 prev_end_offset
//     | prev_hash[32]
//   then frames, back to back.
// Frame (92 + n bytes): "PCAR" | u8 version=1 | u8 type | u16 0 | u64 seq
//     | u64 time_us | u32 n | payload[n] | prev_hash[32] | hash[32]
//   hash = SHA-256(prev_hash || the first 28 + n bytes of the frame)
// Checkpoint signature (Ed25519) over:
//   "portcullis-audit-checkpoint-v1" | u64 segment_no | u64 covered_seq | covered_hash[32]
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guard/audit/record.h"

namespace portcullis::audit {

inline constexpr std::size_t kHashBytes = 32;
inline constexpr std::size_t kSegmentHeaderBytes = 80;
inline constexpr std::size_t kFrameHeaderBytes = 28;
inline constexpr std::size_t kFrameOverheadBytes = kFrameHeaderBytes + 2 * kHashBytes;
inline constexpr std::uint32_t kMaxPayloadBytes = 64u * 1024 * 1024;
inline constexpr std::uint8_t kFormatVersion = 1;
inline constexpr std::string_view kSegmentSuffix = ".pca";

struct SegmentHeader {
  std::uint64_t segment_no = 0;
  std::uint64_t first_seq = 0;
  std::uint64_t created_us = 0;
  std::uint64_t prev_segment_no = 0;     // 0: this is the archive's first segment
  std::uint64_t prev_end_offset = 0;     // where the chain ended in the previous segment
  std::string prev_hash = std::string(kHashBytes, '\0');  // hash the first record chains to
};

std::string encode_segment_header(const SegmentHeader& h);
// Returns nullopt (with `error`) if `data` is shorter than a header, has a bad
// magic or an unknown version.
std::optional<SegmentHeader> decode_segment_header(std::string_view data, std::string* error);

// A frame as found in a segment; views point into the segment's bytes.
struct FrameView {
  std::uint64_t offset = 0;      // of the frame in the file
  std::uint64_t length = 0;      // total frame bytes
  RecordType type = RecordType::Admin;
  std::uint8_t raw_type = 0;
  std::uint64_t seq = 0;
  std::uint64_t time_us = 0;
  std::string_view payload;
  std::string_view prev_hash;
  std::string_view hash;
  std::string_view hashed;       // the first 28 + n bytes (what the hash covers after prev_hash)
};

enum class FrameStatus {
  Ok,          // a complete frame (its hash is NOT checked here)
  End,         // offset is exactly the end of the data
  Truncated,   // fewer bytes than the frame needs (crash mid-write, or cut)
  BadMagic,    // not a frame start (corruption)
  BadHeader,   // unknown version/type or payload over kMaxPayloadBytes
};

FrameStatus read_frame(std::string_view data, std::uint64_t offset, FrameView& out);
std::string_view to_string(FrameStatus s);

// SHA-256(prev_hash || hashed).
std::string chain_hash(std::string_view prev_hash, std::string_view hashed);

// Builds a complete frame; `hash_out` receives its hash.
std::string encode_frame(RecordType type, std::uint64_t seq, std::uint64_t time_us, std::string_view payload,
                         std::string_view prev_hash, std::string& hash_out);

// The message an Ed25519 checkpoint signature covers.
std::string checkpoint_message(std::uint64_t segment_no, std::uint64_t covered_seq, std::string_view covered_hash);

struct SegmentFile {
  std::string path;
  std::string name;
  std::uint64_t segment_no = 0;
  std::uint64_t first_seq = 0;
};

std::string segment_file_name(std::uint64_t segment_no, std::uint64_t first_seq, std::uint64_t created_us);
bool parse_segment_file_name(std::string_view name, std::uint64_t& segment_no, std::uint64_t& first_seq);

// The segment files of `dir` in segment order (files that do not match the
// name pattern, e.g. *.tmp, are ignored). Throws std::runtime_error when the
// directory cannot be read.
std::vector<SegmentFile> list_segments(const std::string& dir);

// Reads a whole file. Returns false with `error` on failure.
bool read_whole_file(const std::string& path, std::string& out, std::string* error);

// UTC "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" for microseconds since the epoch.
std::string format_time_us(std::uint64_t us);
// Wall clock now, in microseconds since the epoch.
std::uint64_t wall_clock_us();

}  // namespace portcullis::audit
