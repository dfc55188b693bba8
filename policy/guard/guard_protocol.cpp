// PCG1 framing (see guard_protocol.h and docs/guard-protocol.md).
#include "policy/guard/guard_protocol.h"

#include <openssl/evp.h>

#include <array>

namespace portcullis::policy::guardproto {

namespace {

void put_u32(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>((v >> 24) & 0xFF));
  out.push_back(static_cast<char>((v >> 16) & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}

std::uint32_t get_u32(std::string_view in, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(in[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(in[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(in[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(in[at + 3]));
}

// A header value never contains a line break or other control character.
std::string clean(std::string_view v) {
  std::string out(v);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0x0F]);
  }
  return out;
}

std::string encode_request(std::string_view body, const StanzaContext& ctx) {
  std::string header;
  header += "seq=" + std::to_string(ctx.seq) + "\n";
  header += "direction=" + std::string(ipc::to_string(ctx.direction)) + "\n";
  header += "peer=" + clean(ctx.peer_domain) + "\n";
  header += "auth=" + std::string(ipc::to_string(ctx.auth)) + "\n";
  header += std::string("tls=") + (ctx.peer_tls ? "yes" : "no") + "\n";
  header += "cert=" + clean(ctx.cert_identity) + "\n";
  header += "size=" + std::to_string(body.size()) + "\n";
  header += "sha256=" + sha256_hex(body) + "\n";
  if (header.size() > kMaxHeader) header.resize(kMaxHeader);  // unreachable with sane contexts

  std::string out;
  out.reserve(kMagic.size() + 8 + header.size() + body.size());
  out += kMagic;
  put_u32(out, static_cast<std::uint32_t>(header.size()));
  out += header;
  put_u32(out, static_cast<std::uint32_t>(body.size()));
  out += body;
  return out;
}

AnswerParser::State AnswerParser::feed(std::string_view bytes) {
  if (state_ == State::Garbage || state_ == State::LengthMismatch) return state_;
  if (state_ == State::Complete) {
    if (!bytes.empty()) {
      state_ = State::Garbage;
      problem_ = "bytes after a complete answer";
    }
    return state_;
  }
  buf_.append(bytes);
  return state_ = parse();
}

AnswerParser::State AnswerParser::parse() {
  // Check each field as soon as its bytes are here, so garbage is noticed at
  // once rather than at the timeout.
  const std::size_t have = buf_.size();
  const std::size_t magic = std::min(have, kMagic.size());
  if (std::string_view(buf_).substr(0, magic) != kMagic.substr(0, magic)) {
    problem_ = "answer does not start with PCG1";
    return State::Garbage;
  }
  if (have < 5) return State::NeedMore;
  const auto verdict = static_cast<unsigned char>(buf_[4]);
  if (verdict > 1) {
    problem_ = "unknown verdict byte " + std::to_string(verdict);
    return State::Garbage;
  }
  if (have < 9) return State::NeedMore;
  const std::uint32_t reason_len = get_u32(buf_, 5);
  if (reason_len > kMaxReason) {
    problem_ = "reason length " + std::to_string(reason_len) + " exceeds " + std::to_string(kMaxReason);
    return State::Garbage;
  }
  const std::size_t body_len_at = 9 + reason_len;
  if (have < body_len_at + 4) return State::NeedMore;
  const std::uint32_t body_len = get_u32(buf_, body_len_at);
  if (body_len != expected_) {
    problem_ = "echoed body is " + std::to_string(body_len) + " bytes, sent " + std::to_string(expected_);
    return State::LengthMismatch;
  }
  const std::size_t total = body_len_at + 4 + body_len;
  if (have < total) return State::NeedMore;
  if (have > total) {
    problem_ = "bytes after a complete answer";
    return State::Garbage;
  }
  answer_.pass = verdict == 0;
  answer_.reason = buf_.substr(9, reason_len);
  answer_.body = buf_.substr(body_len_at + 4, body_len);
  buf_.clear();
  return State::Complete;
}

}  // namespace portcullis::policy::guardproto
