// Single-threaded event loop (epoll) with timers. Every process of the sandwich
// runs exactly one. The clock is injected so tests can drive deadlines without
// sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

namespace portcullis::net {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = std::chrono::milliseconds;

class ClockSource {
 public:
  virtual ~ClockSource() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public ClockSource {
 public:
  TimePoint now() const override { return Clock::now(); }
};

enum IoEvents : std::uint32_t { kReadable = 1, kWritable = 2, kHangup = 4 };

using TimerId = std::uint64_t;

class EventLoop {
 public:
  explicit EventLoop(const ClockSource& clock);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Watches `fd`; the callback gets a mask of IoEvents. `events` selects
  // kReadable and/or kWritable. Re-adding an fd replaces its watch. kHangup is
  // reported whenever the kernel signals hangup or error. watch/modify/unwatch
  // are safe from inside any callback, including unwatching the fd being
  // dispatched; events already fetched for an unwatched fd are dropped.
  // Unwatch an fd before closing it. watch() throws std::runtime_error only
  // when the kernel refuses (resource exhaustion).
  void watch(int fd, std::uint32_t events, std::function<void(std::uint32_t)> callback);
  void modify(int fd, std::uint32_t events);
  void unwatch(int fd);

  // One-shot timer; cancelled timers never fire. Safe to call from callbacks.
  TimerId add_timer(Duration after, std::function<void()> callback);
  void cancel_timer(TimerId id);

  // Runs callbacks on the next loop iteration (after the current callback returns).
  // post() and stop() may also be called from another thread (they wake the
  // loop); everything else must be called on the loop's own thread.
  void post(std::function<void()> callback);

  // Runs `callback` at the end of this turn of the loop: after its I/O, timers
  // and posts, before the next wait (a callback added by one of these runs in
  // the same turn too). Loop thread only. For work that gathers what a turn
  // produced, such as one write for all the frames sent during it.
  void at_end_of_turn(std::function<void()> callback);

  // Asks for the heap's free pages to go back to the kernel (malloc_trim) in
  // about a second, once for all the asks made meanwhile. For the moments
  // that free much at once (a TLS handshake's scratch, a closed stream), so
  // that idle streams cost their live state and not the holes left between
  // them. Loop thread only.
  void return_free_memory_soon();

  // Runs until stop(). Returns normally.
  void run();
  // Runs one iteration, waiting at most `max_wait` for events (less if a timer
  // is due sooner by clock(), none if posts are pending): dispatches I/O, then
  // timers due per clock().now(), then the posts queued before this phase.
  void run_once(Duration max_wait);
  void stop();

  const ClockSource& clock() const { return clock_; }
  TimePoint now() const { return clock_.now(); }

 private:
  struct Impl;
  const ClockSource& clock_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::net
