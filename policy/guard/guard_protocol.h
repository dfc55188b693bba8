// The external guard pipe protocol, version PCG1 (docs/guard-protocol.md).
//
// Request (Portcullis -> guard program, on its stdin):
//   "PCG1" | u32 header_len | header | u32 body_len | body
//   header: "key=value\n" lines: seq, direction, peer, auth, tls, cert, size, sha256
// Answer (guard program -> Portcullis, on its stdout):
//   "PCG1" | u8 verdict (0 pass, 1 block) | u32 reason_len | reason |
//   u32 body_len | body (byte-identical echo of the request body)
// All integers are big-endian. One request is answered before the next is sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/filter.h"

namespace portcullis::policy::guardproto {

inline constexpr std::string_view kMagic = "PCG1";
inline constexpr std::size_t kMaxHeader = 64 * 1024;
inline constexpr std::size_t kMaxBody = 16 * 1024 * 1024;
inline constexpr std::size_t kMaxReason = 1024;

// Builds one request frame for `body` with the metadata of `ctx`. Header
// values are sanitised (control characters become '?') so a value can never
// start a new line.
std::string encode_request(std::string_view body, const StanzaContext& ctx);

// Hex SHA-256 of `bytes` (lowercase).
std::string sha256_hex(std::string_view bytes);

struct Answer {
  bool pass = false;
  std::string reason;
  std::string body;
};

// Incremental answer parser for one outstanding request whose body was
// `expected_body_len` bytes. feed() appends bytes; state() says whether an
// answer is complete, more bytes are needed, or the stream is garbage.
class AnswerParser {
 public:
  enum class State { NeedMore, Complete, Garbage, LengthMismatch };

  explicit AnswerParser(std::size_t expected_body_len) : expected_(expected_body_len) {}
  // Consumes bytes; returns the new state. After Complete, any further byte
  // makes the state Garbage (no request is outstanding).
  State feed(std::string_view bytes);
  State state() const { return state_; }
  // Valid when Complete.
  const Answer& answer() const { return answer_; }
  // Why the stream is Garbage, for the block reason.
  const std::string& problem() const { return problem_; }

 private:
  State parse();

  std::size_t expected_;
  std::string buf_;
  State state_ = State::NeedMore;
  Answer answer_;
  std::string problem_;
};

}  // namespace portcullis::policy::guardproto
