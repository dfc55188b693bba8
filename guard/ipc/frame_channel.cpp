#include "guard/ipc/frame_channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis::ipc {

struct FrameChannel::Impl {
  net::EventLoop& loop;
  int fd;
  Options options;
  Callbacks cb;
  FrameDecoder decoder;
  std::string out;
  std::size_t out_pos = 0;
  bool open = true;
  bool started = false;
  bool want_write = false;
  bool reading = true;
  bool drain_armed = false;
  bool flush_posted = false;
  Counters counters;
  // Shared liveness token: callbacks may destroy the channel, so code that runs
  // after a callback checks this before touching `this` again.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  bool send(const Frame& f, std::size_t limit);
  void flush_and_watch(bool in_loop);
  static constexpr std::size_t kBatchBytes = 256 * 1024;

  Impl(net::EventLoop& l, int f, Options o)
      : loop(l), fd(f), options(o), decoder(o.limits) {}

  std::size_t pending() const { return out.size() - out_pos; }

  void update_watch() {
    if (!open || !started) return;
    const bool need = pending() > 0;
    if (need == want_write && reading == want_read) return;
    want_write = need;
    want_read = reading;
    loop.modify(fd, (reading ? net::kReadable : 0u) | (need ? net::kWritable : 0u));
  }
  bool want_read = true;

  void check_drain() {
    if (!drain_armed || pending() > options.high_water / 4) return;
    drain_armed = false;
    if (cb.on_drained) {
      auto f = cb.on_drained;
      f();
    }
  }

  void shutdown_fd() {
    if (!open) return;
    // Frames batched for this loop turn still go out if the socket takes them
    // (a channel closed right after a send keeps what send() accepted).
    if (started && pending() > 0) (void)flush();
    open = false;
    if (started) loop.unwatch(fd);
    ::close(fd);
    out.clear();
    out_pos = 0;
  }

  // Ends the channel and tells the owner, who may destroy us inside on_closed:
  // nothing touches `this` afterwards.
  void fail(const std::string& reason) {
    if (!open) return;
    shutdown_fd();
    if (cb.on_closed) {
      auto on_closed = cb.on_closed;  // the owner may destroy us inside
      on_closed(reason);
    }
  }

  // Writes as much as the socket takes. Returns an error text, or empty.
  std::string flush() {
    while (pending() > 0) {
      const ssize_t n = ::send(fd, out.data() + out_pos, pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        out_pos += static_cast<std::size_t>(n);
        counters.bytes_out += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return std::string("write failed: ") + (n < 0 ? std::strerror(errno) : "no progress");
    }
    if (out_pos == out.size()) {
      out.clear();
      out_pos = 0;
    } else if (out_pos > 64 * 1024 && out_pos * 2 > out.size()) {
      out.erase(0, out_pos);
      out_pos = 0;
    }
    return {};
  }

  void on_events(std::uint32_t events) {
    if (events & net::kWritable) {
      const std::string err = flush();
      if (!err.empty()) return fail(err);
      update_watch();
      std::weak_ptr<bool> token = alive;
      check_drain();
      if (token.expired() || !open) return;
    }
    // A hangup still goes through read(), which finds the EOF or the error and
    // delivers whatever complete frames arrived before it.
    if ((events & net::kHangup) || (reading && (events & net::kReadable))) read_and_deliver();
  }

  void read_and_deliver() {
    bool eof = false;
    std::string read_error;
    char buf[64 * 1024];
    // Bounded number of reads per wakeup so one busy peer cannot starve the loop;
    // level-triggered readiness brings us back for the rest.
    for (int i = 0; i < 16; ++i) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        counters.bytes_in += static_cast<std::uint64_t>(n);
        decoder.append(std::string_view(buf, static_cast<std::size_t>(n)));
        if (static_cast<std::size_t>(n) < sizeof buf) break;
        continue;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      read_error = std::string("read failed: ") + std::strerror(errno);
      break;
    }

    // Deliver every complete frame before reporting the end, so nothing the peer
    // sent before closing is lost.
    std::weak_ptr<bool> token = alive;
    // Paused by the owner from inside on_frame: the rest waits in the decoder
    // (delivered by set_reading(true)), unless the peer is gone.
    while (open && (reading || eof || !read_error.empty())) {
      std::optional<Frame> f = decoder.next();
      if (!f) break;
      ++counters.frames_in;
      if (cb.on_frame) {
        auto on_frame = cb.on_frame;  // keep the callable alive if the owner replaces it
        on_frame(std::move(*f));
        if (token.expired()) return;
      }
    }
    if (!open) return;
    if (!reading && !eof && read_error.empty()) return;
    if (decoder.failed()) return fail("malformed frame from peer: " + decoder.error());
    if (!read_error.empty()) return fail(read_error);
    if (eof) {
      if (decoder.buffered() > 0) {
        return fail("peer closed the channel in the middle of a frame (" +
                    std::to_string(decoder.buffered()) + " bytes pending)");
      }
      return fail("peer closed the channel");
    }
  }
};

FrameChannel::FrameChannel(net::EventLoop& loop, int fd, Options options)
    : impl_(std::make_unique<Impl>(loop, fd, options)) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  const int fdfl = ::fcntl(fd, F_GETFD);
  if (fdfl >= 0) ::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
}

FrameChannel::~FrameChannel() {
  *impl_->alive = false;
  impl_->shutdown_fd();
}

void FrameChannel::set_callbacks(Callbacks cb) { impl_->cb = std::move(cb); }

void FrameChannel::start() {
  Impl& i = *impl_;
  if (!i.open || i.started) return;
  i.started = true;
  i.want_write = i.pending() > 0;
  Impl* self = &i;
  i.want_read = i.reading;
  i.loop.watch(i.fd, (i.reading ? net::kReadable : 0u) | (i.want_write ? net::kWritable : 0u),
               [self](std::uint32_t ev) { self->on_events(ev); });
}

bool FrameChannel::send(const Frame& f) { return impl_->send(f, impl_->options.max_output); }
bool FrameChannel::send_control(const Frame& f) { return impl_->send(f, 2 * impl_->options.max_output); }
bool FrameChannel::congested() const { return impl_->pending() > impl_->options.high_water; }

void FrameChannel::set_reading(bool on) {
  Impl& i = *impl_;
  if (i.reading == on) return;
  i.reading = on;
  i.update_watch();
  if (on && i.open && i.started) {
    // Frames already decoded but held back by the pause: epoll will not report them.
    std::weak_ptr<bool> token = i.alive;
    Impl* self = &i;
    i.loop.post([token, self] {
      if (!token.expired() && self->open && self->reading) self->read_and_deliver();
    });
  }
}

bool FrameChannel::Impl::send(const Frame& f, std::size_t limit) {
  Impl& i = *this;
  if (!i.open || !fits(f, i.options.limits)) {
    ++i.counters.send_refused;
    return false;
  }
  std::string bytes = encode(f);
  if (i.pending() + bytes.size() > limit) {
    ++i.counters.send_refused;
    return false;
  }
  i.out.append(bytes);
  ++i.counters.frames_out;
  if (!i.started) return true;  // flushed once start() watches the socket
  // Frames sent during one turn of the loop go out together, in one write at
  // the turn's end (a write per frame was the filter's top syscall cost); past
  // kBatchBytes they go at once, so a burst never piles up unwritten.
  if (i.pending() > i.options.high_water) i.drain_armed = true;
  // The socket is full: its writable event writes the rest.
  if (i.want_write) return true;
  if (i.pending() < kBatchBytes) {
    if (!i.flush_posted) {
      i.flush_posted = true;
      std::weak_ptr<bool> token = i.alive;
      Impl* self = &i;
      i.loop.at_end_of_turn([token, self] {
        if (token.expired()) return;
        self->flush_posted = false;
        if (self->open) self->flush_and_watch(true);
      });
    }
    return true;
  }
  i.flush_and_watch(false);
  return true;
}

void FrameChannel::Impl::flush_and_watch(bool in_loop) {
  Impl& i = *this;
  const std::string err = i.flush();
  if (!err.empty()) {
    if (in_loop) return i.fail(err);
    // Report from the loop, never from inside the caller's send().
    std::weak_ptr<bool> token = i.alive;
    Impl* self = &i;
    i.loop.post([token, self, err] {
      if (!token.expired()) self->fail(err);
    });
    // Stop writing now; the close itself happens in the posted callback.
    i.out.clear();
    i.out_pos = 0;
    return;
  }
  i.update_watch();
  if (i.pending() > i.options.high_water) i.drain_armed = true;
  if (i.drain_armed && i.pending() <= i.options.high_water / 4) {
    // Drained by this very flush: no writable event will report it.
    if (in_loop) return i.check_drain();
    std::weak_ptr<bool> token = i.alive;
    Impl* self = &i;
    i.loop.post([token, self] {
      if (!token.expired() && self->open) self->check_drain();
    });
  }
}

void FrameChannel::close() { impl_->shutdown_fd(); }
bool FrameChannel::is_open() const { return impl_->open; }
std::size_t FrameChannel::pending_output() const { return impl_->pending(); }
const FrameChannel::Counters& FrameChannel::counters() const { return impl_->counters; }
int FrameChannel::fd() const { return impl_->open ? impl_->fd : -1; }

}  // namespace portcullis::ipc
