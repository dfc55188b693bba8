#include "guard/ipc/frame.h"

#include <algorithm>
#include <limits>

namespace portcullis::ipc {

namespace {

constexpr char kMagic[4] = {'P', 'C', 'F', '1'};
// magic + kind + direction + auth + flags + seq + arrival
constexpr std::size_t kFixedHeader = 4 + 4 + 8 + 8;

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

// Strings longer than the u16 field can say are cut, so the byte stream never
// loses framing; any such frame is far beyond the decoder's limits anyway and
// FrameChannel refuses to send it (see fits()).
void put_string16(std::string& out, std::string_view s) {
  const std::size_t n = std::min<std::size_t>(s.size(), std::numeric_limits<std::uint16_t>::max());
  put_be(out, n, 2);
  out.append(s.substr(0, n));
}

std::uint64_t get_be(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v = (v << 8) | static_cast<std::uint8_t>(in[at + static_cast<std::size_t>(i)]);
  }
  return v;
}

bool valid_kind(std::uint8_t v) { return v >= 1 && v <= 7; }
bool valid_direction(std::uint8_t v) { return v >= 1 && v <= 3; }
bool valid_auth(std::uint8_t v) { return v <= 4; }
// An Ack carries at most one delivery-accounting flag and nothing else; every
// other kind only kFlagTls.
bool valid_flags(std::uint8_t kind, std::uint8_t flags) {
  if (kind == static_cast<std::uint8_t>(FrameKind::Ack))
    return flags == 0 || flags == kAckDelivered || flags == kAckLost || flags == kAckSettled;
  return (flags & ~kFlagTls) == 0;
}

}  // namespace

std::string_view to_string(FrameKind k) {
  switch (k) {
    case FrameKind::Stanza: return "stanza";
    case FrameKind::Hello: return "hello";
    case FrameKind::Ping: return "ping";
    case FrameKind::Pong: return "pong";
    case FrameKind::Ack: return "ack";
    case FrameKind::Event: return "event";
    case FrameKind::Refusal: return "refusal";
  }
  return "unknown";
}

std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::LowToHigh: return "low-to-high";
    case Direction::HighToLow: return "high-to-low";
    case Direction::Local: return "local";
  }
  return "unknown";
}

std::string_view to_string(AuthMethod a) {
  switch (a) {
    case AuthMethod::None: return "none";
    case AuthMethod::SaslExternal: return "sasl-external";
    case AuthMethod::Dialback: return "dialback";
    case AuthMethod::Internal: return "internal";
    case AuthMethod::Hosted: return "hosted";
  }
  return "unknown";
}

bool fits(const Frame& f, const FrameLimits& limits) {
  const auto& h = f.header;
  return f.body.size() <= limits.max_body &&
         f.body.size() <= std::numeric_limits<std::uint32_t>::max() &&
         h.peer_domain.size() <= limits.max_string && h.cert_identity.size() <= limits.max_string &&
         h.stream_id.size() <= limits.max_string &&
         std::max({h.peer_domain.size(), h.cert_identity.size(), h.stream_id.size()}) <=
             std::numeric_limits<std::uint16_t>::max();
}

std::string encode(const Frame& f) {
  const auto& h = f.header;
  std::string out;
  out.reserve(kFixedHeader + 2 * 3 + h.peer_domain.size() + h.cert_identity.size() +
              h.stream_id.size() + 4 + f.body.size());
  out.append(kMagic, sizeof kMagic);
  put_u8(out, static_cast<std::uint8_t>(h.kind));
  put_u8(out, static_cast<std::uint8_t>(h.direction));
  put_u8(out, static_cast<std::uint8_t>(h.auth));
  put_u8(out, h.flags);
  put_be(out, h.seq, 8);
  put_be(out, h.arrival_unix_us, 8);
  put_string16(out, h.peer_domain);
  put_string16(out, h.cert_identity);
  put_string16(out, h.stream_id);
  const std::size_t body = std::min<std::size_t>(f.body.size(), std::numeric_limits<std::uint32_t>::max());
  put_be(out, body, 4);
  out.append(f.body, 0, body);
  return out;
}

std::optional<Frame> FrameDecoder::next() {
  if (failed_) return std::nullopt;
  const std::string_view in = std::string_view(buf_).substr(pos_);
  auto fail = [this](std::string message) -> std::optional<Frame> {
    failed_ = true;
    error_ = std::move(message);
    return std::nullopt;
  };

  // Validate every field as soon as its bytes are present, so a hostile peer
  // cannot make us wait for (or buffer) a frame that is already known bad.
  const std::size_t magic_avail = std::min(in.size(), sizeof kMagic);
  if (in.substr(0, magic_avail) != std::string_view(kMagic, magic_avail)) {
    return fail("bad frame magic (expected \"PCF1\")");
  }
  if (in.size() > 4 && !valid_kind(static_cast<std::uint8_t>(in[4]))) {
    return fail("unknown frame kind " + std::to_string(static_cast<std::uint8_t>(in[4])));
  }
  if (in.size() > 5 && !valid_direction(static_cast<std::uint8_t>(in[5]))) {
    return fail("unknown frame direction " + std::to_string(static_cast<std::uint8_t>(in[5])));
  }
  if (in.size() > 6 && !valid_auth(static_cast<std::uint8_t>(in[6]))) {
    return fail("unknown frame auth method " + std::to_string(static_cast<std::uint8_t>(in[6])));
  }
  if (in.size() > 7 && !valid_flags(static_cast<std::uint8_t>(in[4]), static_cast<std::uint8_t>(in[7]))) {
    return fail("unknown frame flags " + std::to_string(static_cast<std::uint8_t>(in[7])));
  }
  if (in.size() < kFixedHeader) return std::nullopt;

  std::size_t at = kFixedHeader;
  std::string_view strings[3];
  static constexpr const char* kStringNames[3] = {"peer_domain", "cert_identity", "stream_id"};
  for (int i = 0; i < 3; ++i) {
    if (in.size() < at + 2) return std::nullopt;
    const std::size_t len = get_be(in, at, 2);
    if (len > limits_.max_string) {
      return fail(std::string("frame ") + kStringNames[i] + " too long (" + std::to_string(len) +
                  " bytes, limit " + std::to_string(limits_.max_string) + ")");
    }
    at += 2;
    if (in.size() < at + len) return std::nullopt;
    strings[i] = in.substr(at, len);
    at += len;
  }
  if (in.size() < at + 4) return std::nullopt;
  const std::size_t body_len = get_be(in, at, 4);
  if (body_len > limits_.max_body) {
    return fail("frame body too large (" + std::to_string(body_len) + " bytes, limit " +
                std::to_string(limits_.max_body) + ")");
  }
  at += 4;
  if (in.size() < at + body_len) return std::nullopt;

  Frame f;
  f.header.kind = static_cast<FrameKind>(in[4]);
  f.header.direction = static_cast<Direction>(in[5]);
  f.header.auth = static_cast<AuthMethod>(in[6]);
  f.header.flags = static_cast<std::uint8_t>(in[7]);
  f.header.seq = get_be(in, 8, 8);
  f.header.arrival_unix_us = get_be(in, 16, 8);
  f.header.peer_domain.assign(strings[0]);
  f.header.cert_identity.assign(strings[1]);
  f.header.stream_id.assign(strings[2]);
  f.body.assign(in.substr(at, body_len));
  pos_ += at + body_len;

  // Compact once the consumed prefix dominates, keeping append() amortised O(1).
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > 64 * 1024 && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return f;
}

Frame taken_ack(Direction released_direction, std::uint64_t released_seq) {
  Frame f;
  f.header.kind = FrameKind::Ack;
  f.header.direction = released_direction;
  f.header.seq = released_seq;
  return f;
}

Frame accounting_ack(Direction released_direction, std::uint64_t released_seq, std::uint8_t flags, std::string text) {
  Frame f = taken_ack(released_direction, released_seq);
  f.header.flags = flags;
  f.body = std::move(text);
  return f;
}

}  // namespace portcullis::ipc
