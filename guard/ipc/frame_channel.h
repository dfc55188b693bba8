// A frame channel: one end of a connected SOCK_STREAM socketpair between two
// processes of the sandwich (edge <-> filter), on an EventLoop.
//
// Outgoing frames are encoded and buffered, and written together at the end of
// the loop's turn (at once past 256 KiB; later when the socket is full); the
// buffer is bounded, so a stalled peer makes send() return false
// (the caller bounces the stanza with an error) instead of growing memory.
// Incoming bytes are decoded and delivered one frame at a time to on_frame.
//
// The channel ends exactly once, with on_closed(reason), when it sees EOF, a
// socket error, or a malformed frame (a peer that sends one is broken: the
// channel closes rather than trying to resynchronise). An owner's own close()
// does not call on_closed. The owner may destroy the channel from inside
// on_frame or on_closed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "guard/ipc/frame.h"
#include "guard/net/event_loop.h"

namespace portcullis::ipc {

class FrameChannel {
 public:
  struct Options {
    FrameLimits limits;                           // for decoding and for send()
    std::size_t max_output = 8 * 1024 * 1024;     // bytes buffered, not yet written
    // Flow control: above high_water the channel is congested() and the owner
    // holds its senders back; on_drained fires when the buffer is down to
    // high_water / 4 again.
    std::size_t high_water = 2 * 1024 * 1024;
  };

  struct Callbacks {
    // One decoded frame. May call send(), close(), or destroy the channel.
    std::function<void(Frame&&)> on_frame;
    // Called once when the channel ends by itself (EOF, error, malformed frame).
    std::function<void(const std::string& reason)> on_closed;
    // Called (from the loop) when a congested channel has drained to a quarter
    // of high_water. May call send() or set_reading().
    std::function<void()> on_drained;
  };

  struct Counters {
    std::uint64_t frames_in = 0;
    std::uint64_t frames_out = 0;   // frames accepted by send()
    std::uint64_t bytes_in = 0;     // read from the socket
    std::uint64_t bytes_out = 0;    // written to the socket
    std::uint64_t send_refused = 0; // send() calls that returned false
  };

  // Takes ownership of `fd` (a connected stream socket). Makes it non-blocking
  // and close-on-exec (a child may later exec helper programs that must not
  // inherit it). Nothing is read until start().
  FrameChannel(net::EventLoop& loop, int fd, Options options);
  FrameChannel(net::EventLoop& loop, int fd) : FrameChannel(loop, fd, Options{}) {}
  ~FrameChannel();
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;

  void set_callbacks(Callbacks cb);
  // Starts watching the socket.
  void start();

  // Queues `f` for sending. Returns false, and queues nothing, if the channel is
  // closed, the frame is over the limits, or the output buffer would exceed
  // max_output. Never calls a callback synchronously: a write error found here
  // is reported through on_closed from the loop.
  bool send(const Frame& f);
  // A control frame (ack, event, error reply, pong): it answers traffic the
  // peer already holds back for, so it may use up to twice max_output rather
  // than be refused while stanzas are.
  bool send_control(const Frame& f);
  // Above high_water: the owner should stop feeding the channel until on_drained.
  bool congested() const;
  // Flow control on the receiving side: false stops reading frames (the
  // socketpair fills, and the peer's channel becomes congested).
  void set_reading(bool on);

  // Closes now, after one non-blocking try to write what is still unsent (the
  // rest is dropped); on_closed is not called.
  void close();

  bool is_open() const;
  std::size_t pending_output() const;
  const Counters& counters() const;
  int fd() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::ipc
