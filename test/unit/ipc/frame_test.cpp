#include <catch2/catch.hpp>

#include <string>

#include "guard/ipc/frame.h"

using namespace portcullis::ipc;

namespace {

Frame sample_frame() {
  Frame f;
  f.header.kind = FrameKind::Stanza;
  f.header.direction = Direction::LowToHigh;
  f.header.auth = AuthMethod::SaslExternal;
  f.header.flags = kFlagTls;
  f.header.seq = 0x0102030405060708ULL;
  f.header.arrival_unix_us = 1700000000123456ULL;
  f.header.peer_domain = "low.example";
  f.header.cert_identity = "CN=low.example";
  f.header.stream_id = "s-42";
  f.body = "<message to='a@high.example'><body>hi \xC3\xA9</body></message>";
  return f;
}

void require_same(const Frame& a, const Frame& b) {
  CHECK(a.header.kind == b.header.kind);
  CHECK(a.header.direction == b.header.direction);
  CHECK(a.header.auth == b.header.auth);
  CHECK(a.header.flags == b.header.flags);
  CHECK(a.header.seq == b.header.seq);
  CHECK(a.header.arrival_unix_us == b.header.arrival_unix_us);
  CHECK(a.header.peer_domain == b.header.peer_domain);
  CHECK(a.header.cert_identity == b.header.cert_identity);
  CHECK(a.header.stream_id == b.header.stream_id);
  CHECK(a.body == b.body);
}

// Header bytes up to (not including) the strings: 24 bytes.
std::string fixed_header(std::uint8_t kind = 1, std::uint8_t dir = 1, std::uint8_t auth = 1,
                         std::uint8_t flags = 0) {
  std::string s = "PCF1";
  s.push_back(static_cast<char>(kind));
  s.push_back(static_cast<char>(dir));
  s.push_back(static_cast<char>(auth));
  s.push_back(static_cast<char>(flags));
  s.append(16, '\0');
  return s;
}

std::string be16(std::size_t v) {
  return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}
std::string be32(std::size_t v) {
  return {static_cast<char>((v >> 24) & 0xff), static_cast<char>((v >> 16) & 0xff),
          static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

}  // namespace

TEST_CASE("frame encoding is the documented big-endian layout", "[ipc][frame]") {
  Frame f;
  f.header.kind = FrameKind::Ping;
  f.header.direction = Direction::HighToLow;
  f.header.auth = AuthMethod::Dialback;
  f.header.flags = kFlagTls;
  f.header.seq = 0x0102030405060708ULL;
  f.header.arrival_unix_us = 0x1112131415161718ULL;
  f.header.peer_domain = "ab";
  f.body = "xyz";
  const std::string wire = encode(f);
  const std::string expected = std::string("PCF1\x03\x02\x02\x01", 8) +
                               "\x01\x02\x03\x04\x05\x06\x07\x08" +
                               "\x11\x12\x13\x14\x15\x16\x17\x18" + be16(2) + "ab" + be16(0) +
                               be16(0) + be32(3) + "xyz";
  CHECK(wire == expected);
}

TEST_CASE("frame round trip", "[ipc][frame]") {
  const Frame f = sample_frame();
  FrameDecoder d;
  d.append(encode(f));
  auto got = d.next();
  REQUIRE(got);
  require_same(*got, f);
  CHECK_FALSE(d.next());
  CHECK_FALSE(d.failed());
  CHECK(d.buffered() == 0);
}

TEST_CASE("empty strings and body round trip", "[ipc][frame]") {
  Frame f;
  f.header.kind = FrameKind::Pong;
  FrameDecoder d;
  d.append(encode(f));
  auto got = d.next();
  REQUIRE(got);
  require_same(*got, f);
}

TEST_CASE("frames split at every byte boundary decode the same", "[ipc][frame]") {
  Frame a = sample_frame();
  Frame b = sample_frame();
  b.header.kind = FrameKind::Hello;
  b.header.seq = 7;
  b.body = "low";
  const std::string wire = encode(a) + encode(b);
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    FrameDecoder d;
    std::vector<Frame> out;
    d.append(std::string_view(wire).substr(0, cut));
    while (auto f = d.next()) out.push_back(std::move(*f));
    REQUIRE_FALSE(d.failed());
    d.append(std::string_view(wire).substr(cut));
    while (auto f = d.next()) out.push_back(std::move(*f));
    REQUIRE_FALSE(d.failed());
    REQUIRE(out.size() == 2);
    require_same(out[0], a);
    require_same(out[1], b);
  }
}

TEST_CASE("frames fed one byte at a time", "[ipc][frame]") {
  const Frame f = sample_frame();
  const std::string wire = encode(f) + encode(f) + encode(f);
  FrameDecoder d;
  int frames = 0;
  for (char c : wire) {
    d.append(std::string_view(&c, 1));
    while (auto got = d.next()) {
      require_same(*got, f);
      ++frames;
    }
  }
  CHECK(frames == 3);
  CHECK_FALSE(d.failed());
}

TEST_CASE("truncated frames are 'need more', not failures", "[ipc][frame]") {
  const std::string wire = encode(sample_frame());
  for (std::size_t n = 0; n < wire.size(); ++n) {
    FrameDecoder d;
    d.append(std::string_view(wire).substr(0, n));
    CHECK_FALSE(d.next());
    CHECK_FALSE(d.failed());
    CHECK(d.buffered() == n);
  }
}

TEST_CASE("bad magic fails with a message", "[ipc][frame]") {
  FrameDecoder d;
  std::string wire = encode(sample_frame());
  wire[3] = '2';
  d.append(wire);
  CHECK_FALSE(d.next());
  REQUIRE(d.failed());
  CHECK(d.error().find("magic") != std::string::npos);
  // Once failed, stays failed even if good bytes follow.
  d.append(encode(sample_frame()));
  CHECK_FALSE(d.next());
  CHECK(d.failed());
}

TEST_CASE("bad magic is detected from the first wrong byte", "[ipc][frame]") {
  FrameDecoder d;
  d.append("<");  // e.g. a peer speaking raw XML at us
  CHECK_FALSE(d.next());
  REQUIRE(d.failed());
  CHECK(d.error().find("magic") != std::string::npos);
}

constexpr std::uint8_t kAckKind = static_cast<std::uint8_t>(FrameKind::Ack);

TEST_CASE("an accounting Ack keeps its flag and its text", "[ipc][frame]") {
  for (std::uint8_t flag : {kAckDelivered, kAckLost, kAckSettled}) {
    const Frame f = accounting_ack(Direction::LowToHigh, 41, flag, "why");
    FrameDecoder d;
    d.append(encode(f));
    auto got = d.next();
    REQUIRE(got);
    CHECK(got->header.kind == FrameKind::Ack);
    CHECK(got->header.flags == flag);
    CHECK(got->header.seq == 41);
    CHECK(got->body == "why");
  }
}

TEST_CASE("unknown kind, direction, auth and flags fail", "[ipc][frame]") {
  struct Case {
    std::string bytes;
    std::string word;
  };
  const Case cases[] = {
      {fixed_header(0), "kind 0"},
      {fixed_header(8), "kind 8"},
      {fixed_header(255), "kind 255"},
      {fixed_header(1, 0), "direction 0"},
      {fixed_header(1, 4), "direction 4"},
      {fixed_header(1, 1, 5), "auth method 5"},
      {fixed_header(1, 1, 1, 0x80), "flags 128"},
      // Delivery-accounting flags belong to Acks only, one at a time.
      {fixed_header(1, 1, 1, kAckDelivered), "flags 2"},
      {fixed_header(kAckKind, 1, 1, kAckDelivered | kAckLost), "flags 6"},
      {fixed_header(kAckKind, 1, 1, kFlagTls), "flags 1"},
  };
  for (const Case& c : cases) {
    FrameDecoder d;
    d.append(c.bytes);
    CHECK_FALSE(d.next());
    REQUIRE(d.failed());
    CHECK(d.error().find(c.word) != std::string::npos);
  }
}

TEST_CASE("oversize body fails as soon as its length is known", "[ipc][frame]") {
  FrameDecoder d(FrameLimits{100, 10});
  d.append(fixed_header() + be16(0) + be16(0) + be16(0) + be32(101));  // no body bytes yet
  CHECK_FALSE(d.next());
  REQUIRE(d.failed());
  CHECK(d.error().find("body too large") != std::string::npos);
  CHECK(d.error().find("101") != std::string::npos);
}

TEST_CASE("body exactly at the limit is accepted", "[ipc][frame]") {
  Frame f;
  f.body.assign(100, 'x');
  FrameDecoder d(FrameLimits{100, 10});
  d.append(encode(f));
  auto got = d.next();
  REQUIRE(got);
  CHECK(got->body == f.body);
  CHECK(fits(f, FrameLimits{100, 10}));
  f.body.push_back('y');
  CHECK_FALSE(fits(f, FrameLimits{100, 10}));
}

TEST_CASE("oversize strings fail, naming the field", "[ipc][frame]") {
  for (int field = 0; field < 3; ++field) {
    std::string wire = fixed_header();
    for (int i = 0; i < field; ++i) wire += be16(0);
    wire += be16(11);
    FrameDecoder d(FrameLimits{100, 10});
    d.append(wire);
    CHECK_FALSE(d.next());
    REQUIRE(d.failed());
    const char* names[] = {"peer_domain", "cert_identity", "stream_id"};
    CHECK(d.error().find(names[field]) != std::string::npos);
    CHECK(d.error().find("too long") != std::string::npos);
  }
  Frame f;
  f.header.stream_id.assign(11, 's');
  CHECK_FALSE(fits(f, FrameLimits{100, 10}));
}

TEST_CASE("to_string names", "[ipc][frame]") {
  CHECK(to_string(Direction::LowToHigh) == "low-to-high");
  CHECK(to_string(Direction::HighToLow) == "high-to-low");
  CHECK(to_string(Direction::Local) == "local");
  CHECK(to_string(AuthMethod::None) == "none");
  CHECK(to_string(AuthMethod::SaslExternal) == "sasl-external");
  CHECK(to_string(AuthMethod::Dialback) == "dialback");
  CHECK(to_string(AuthMethod::Internal) == "internal");
  CHECK(to_string(FrameKind::Stanza) == "stanza");
  CHECK(to_string(FrameKind::Ack) == "ack");
  CHECK(to_string(static_cast<Direction>(9)) == "unknown");
}
