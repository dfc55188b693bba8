#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "guard/ipc/frame_channel.h"
#include "test/unit/ipc/loop_wait.h"

using namespace portcullis::ipc;
using portcullis::ipc::testing::run_until;
using portcullis::net::EventLoop;
using portcullis::net::SteadyClock;

namespace {

struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    a = fds[0];
    b = fds[1];
  }
};

struct Recorder {
  std::vector<Frame> frames;
  std::vector<std::string> closes;
  FrameChannel::Callbacks callbacks() {
    return {[this](Frame&& f) { frames.push_back(std::move(f)); },
            [this](const std::string& r) { closes.push_back(r); }, {}};
  }
};

Frame stanza(std::string body, std::uint64_t seq = 0) {
  Frame f;
  f.header.kind = FrameKind::Stanza;
  f.header.direction = Direction::LowToHigh;
  f.header.auth = AuthMethod::Dialback;
  f.header.seq = seq;
  f.header.peer_domain = "low.example";
  f.body = std::move(body);
  return f;
}

void write_all(int fd, const std::string& bytes) {
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
}

}  // namespace

TEST_CASE("frames flow both ways over a socketpair", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel left(loop, p.a), right(loop, p.b);
  Recorder l, r;
  left.set_callbacks(l.callbacks());
  right.set_callbacks(r.callbacks());
  left.start();
  right.start();

  for (int i = 0; i < 50; ++i) REQUIRE(left.send(stanza("to-right-" + std::to_string(i), i)));
  REQUIRE(right.send(stanza("to-left")));
  REQUIRE(run_until(loop, [&] { return r.frames.size() == 50 && l.frames.size() == 1; }));
  for (int i = 0; i < 50; ++i) {
    CHECK(r.frames[i].body == "to-right-" + std::to_string(i));
    CHECK(r.frames[i].header.seq == static_cast<std::uint64_t>(i));
    CHECK(r.frames[i].header.peer_domain == "low.example");
  }
  CHECK(l.frames[0].body == "to-left");
  CHECK(left.counters().frames_out == 50);
  CHECK(right.counters().frames_in == 50);
  CHECK(left.counters().bytes_out == right.counters().bytes_in);
  CHECK(right.counters().bytes_out == left.counters().bytes_in);
  CHECK(left.pending_output() == 0);
  CHECK(l.closes.empty());
  CHECK(r.closes.empty());
}

TEST_CASE("frames sent during one turn, from I/O or from posts, are written at that turn's end, together",
          "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel left(loop, p.a);
  left.start();
  loop.run_once(std::chrono::milliseconds(0));
  // Sent from a posted callback (the filter's releases come from the archive's
  // posts): on the socket when that turn ends, not a turn later.
  loop.post([&] {
    for (int i = 0; i < 20; ++i) REQUIRE(left.send(stanza("batched-" + std::to_string(i), i)));
    CHECK(left.pending_output() > 0);   // not written yet, inside the turn
  });
  loop.run_once(std::chrono::milliseconds(0));
  CHECK(left.pending_output() == 0);
  std::string got(64 * 1024, '\0');
  const ssize_t n = ::recv(p.b, got.data(), got.size(), MSG_DONTWAIT);
  REQUIRE(n > 0);
  got.resize(static_cast<std::size_t>(n));
  FrameDecoder dec;
  dec.append(got);
  int frames = 0;
  while (auto f = dec.next()) {
    CHECK(f->body == "batched-" + std::to_string(frames));
    ++frames;
  }
  CHECK(frames == 20);
  CHECK(left.counters().frames_out == 20);
}

TEST_CASE("a large frame crosses intact", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel left(loop, p.a), right(loop, p.b);
  Recorder r;
  right.set_callbacks(r.callbacks());
  left.start();
  right.start();
  std::string body(900 * 1024, 'x');
  for (std::size_t i = 0; i < body.size(); i += 7) body[i] = static_cast<char>('a' + i % 26);
  REQUIRE(left.send(stanza(body)));
  REQUIRE(run_until(loop, [&] { return r.frames.size() == 1; }));
  CHECK(r.frames[0].body == body);
}

TEST_CASE("peer close is reported once, after the frames it sent", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  auto left = std::make_unique<FrameChannel>(loop, p.a);
  FrameChannel right(loop, p.b);
  Recorder r;
  right.set_callbacks(r.callbacks());
  right.start();
  left->start();
  REQUIRE(left->send(stanza("last words")));
  REQUIRE(run_until(loop, [&] { return left->pending_output() == 0; }));
  left.reset();  // closes the fd
  REQUIRE(run_until(loop, [&] { return !r.closes.empty(); }));
  REQUIRE(r.frames.size() == 1);
  CHECK(r.frames[0].body == "last words");
  CHECK(r.closes == std::vector<std::string>{"peer closed the channel"});
  CHECK_FALSE(right.is_open());
  CHECK_FALSE(right.send(stanza("too late")));
  // More loop iterations never report again.
  loop.run_once(portcullis::net::Duration(0));
  CHECK(r.closes.size() == 1);
}

TEST_CASE("EOF in the middle of a frame is reported as such", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel right(loop, p.b);
  Recorder r;
  right.set_callbacks(r.callbacks());
  right.start();
  const std::string wire = encode(stanza("complete")) + encode(stanza("cut")).substr(0, 30);
  write_all(p.a, wire);
  ::close(p.a);
  REQUIRE(run_until(loop, [&] { return !r.closes.empty(); }));
  REQUIRE(r.frames.size() == 1);
  CHECK(r.frames[0].body == "complete");
  CHECK(r.closes[0].find("middle of a frame") != std::string::npos);
}

TEST_CASE("a malformed frame closes the channel", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel right(loop, p.b);
  Recorder r;
  right.set_callbacks(r.callbacks());
  right.start();

  SECTION("bad magic after a good frame") {
    write_all(p.a, encode(stanza("ok")) + "<stream:stream>");
    REQUIRE(run_until(loop, [&] { return !r.closes.empty(); }));
    REQUIRE(r.frames.size() == 1);
    CHECK(r.frames[0].body == "ok");
    CHECK(r.closes[0].find("malformed frame from peer: bad frame magic") != std::string::npos);
  }
  SECTION("oversize body announced") {
    std::string wire = encode(stanza(""));
    // Patch the body length (last 4 bytes) to 2 MiB, beyond the 1 MiB default.
    wire[wire.size() - 4] = 0;
    wire[wire.size() - 3] = 0x20;
    wire[wire.size() - 2] = 0;
    wire[wire.size() - 1] = 0;
    write_all(p.a, wire);
    REQUIRE(run_until(loop, [&] { return !r.closes.empty(); }));
    CHECK(r.frames.empty());
    CHECK(r.closes[0].find("body too large") != std::string::npos);
  }
  CHECK_FALSE(right.is_open());
  CHECK(r.closes.size() == 1);
  // Our end is closed: the peer sees EOF.
  char c;
  CHECK(::read(p.a, &c, 1) == 0);
  ::close(p.a);
}

TEST_CASE("send refuses frames over the limits", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel::Options o;
  o.limits.max_body = 10;
  FrameChannel left(loop, p.a, o);
  left.start();
  CHECK(left.send(stanza("0123456789")));
  CHECK_FALSE(left.send(stanza("0123456789a")));
  Frame f = stanza("x");
  f.header.peer_domain.assign(2000, 'd');
  CHECK_FALSE(left.send(f));
  CHECK(left.counters().frames_out == 1);
  CHECK(left.counters().send_refused == 2);
  ::close(p.b);
}

TEST_CASE("output buffer is bounded when the peer does not read", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel::Options o;
  o.max_output = 64 * 1024;
  FrameChannel left(loop, p.a, o);
  left.start();
  const Frame f = stanza(std::string(8 * 1024, 'z'));
  int accepted = 0;
  bool refused = false;
  // The kernel buffer fills first, then ours; then send() says no.
  for (int i = 0; i < 10000 && !refused; ++i) {
    if (left.send(f)) {
      ++accepted;
    } else {
      refused = true;
    }
  }
  REQUIRE(refused);
  CHECK(left.pending_output() <= o.max_output);
  CHECK(left.pending_output() > o.max_output - encode(f).size() - 1);
  CHECK(left.counters().send_refused == 1);
  CHECK(left.is_open());

  // Once the peer drains, sending works again and everything accepted arrives.
  FrameChannel right(loop, p.b);
  Recorder r;
  right.set_callbacks(r.callbacks());
  right.start();
  REQUIRE(run_until(loop, [&] { return static_cast<int>(r.frames.size()) == accepted; }));
  CHECK(left.send(f));
}

TEST_CASE("flow control: a paused channel delivers nothing, its sender becomes congested, then drains", "[ipc][channel][flow]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel::Options o;
  o.high_water = 256 * 1024;
  FrameChannel left(loop, p.a, o), right(loop, p.b);
  Recorder r;
  int drained = 0;
  auto lcb = Recorder{}.callbacks();
  lcb.on_drained = [&] { ++drained; };
  left.set_callbacks(lcb);
  right.set_callbacks(r.callbacks());
  left.start();
  right.start();
  right.set_reading(false);
  const std::string body(4000, 'x');
  int sent = 0;
  while (!left.congested()) {
    REQUIRE(left.send(stanza(body, sent)));
    ++sent;
    loop.run_once(portcullis::net::Duration(0));
    REQUIRE(sent < 100000);
  }
  for (int i = 0; i < 20; ++i) loop.run_once(portcullis::net::Duration(5));
  CHECK(r.frames.empty());
  CHECK(left.congested());
  CHECK(drained == 0);
  // A control frame still goes in beyond what send() would take.
  CHECK(left.send_control(stanza("ack", 1)));
  right.set_reading(true);
  REQUIRE(run_until(loop, [&] { return r.frames.size() == static_cast<std::size_t>(sent + 1); }));
  for (int i = 0; i < sent; ++i) CHECK(r.frames[i].header.seq == static_cast<std::uint64_t>(i));
  CHECK(drained == 1);
  CHECK_FALSE(left.congested());
}

TEST_CASE("the owner may destroy the channel from on_frame", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel left(loop, p.a);
  auto right = std::make_unique<FrameChannel>(loop, p.b);
  int seen = 0;
  right->set_callbacks({[&](Frame&&) {
                          ++seen;
                          right.reset();
                        },
                        [&](const std::string&) { FAIL("on_closed after destruction"); }, {}});
  right->start();
  left.start();
  REQUIRE(left.send(stanza("one")));
  REQUIRE(left.send(stanza("two")));
  REQUIRE(run_until(loop, [&] { return right == nullptr; }));
  CHECK(seen == 1);
  Recorder l;
  left.set_callbacks(l.callbacks());
  REQUIRE(run_until(loop, [&] { return !l.closes.empty(); }));
}

TEST_CASE("close() by the owner does not call on_closed", "[ipc][channel]") {
  SteadyClock clock;
  EventLoop loop(clock);
  Pair p;
  FrameChannel left(loop, p.a);
  Recorder l;
  left.set_callbacks(l.callbacks());
  left.start();
  left.close();
  CHECK_FALSE(left.is_open());
  CHECK(left.fd() == -1);
  CHECK_FALSE(left.send(stanza("x")));
  loop.run_once(portcullis::net::Duration(0));
  CHECK(l.closes.empty());
  ::close(p.b);
}
