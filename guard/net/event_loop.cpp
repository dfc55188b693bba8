#include "guard/net/event_loop.h"

#include <malloc.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <string>
#include <vector>

namespace portcullis::net {

namespace {

// Each watch gets a fresh token that goes into epoll's data field. An event
// whose token is no longer registered is stale (the fd was unwatched, maybe
// closed and its number reused by a new watch during this same iteration) and
// is dropped instead of being delivered to the wrong owner.
struct Watch {
  int fd = -1;
  std::uint32_t events = 0;
  std::uint64_t token = 0;
  // Shared so that a callback which unwatches (or replaces) its own fd keeps
  // the std::function alive until it returns.
  std::shared_ptr<std::function<void(std::uint32_t)>> callback;
};

struct TimerEntry {
  TimePoint deadline;
  std::uint64_t seq;  // tie-break: equal deadlines fire in creation order
  TimerId id;
  bool operator>(const TimerEntry& o) const {
    return deadline != o.deadline ? deadline > o.deadline : seq > o.seq;
  }
};

std::uint32_t to_epoll(std::uint32_t events) {
  std::uint32_t e = 0;
  if (events & kReadable) e |= EPOLLIN | EPOLLRDHUP;
  if (events & kWritable) e |= EPOLLOUT;
  return e;
}

std::uint32_t from_epoll(std::uint32_t e) {
  std::uint32_t r = 0;
  if (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) r |= kReadable;
  if (e & EPOLLOUT) r |= kWritable;
  if (e & (EPOLLHUP | EPOLLERR)) r |= kHangup;
  return r;
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

}  // namespace

struct EventLoop::Impl {
  int epfd = -1;
  int wakefd = -1;  // eventfd: post()/stop() from another thread wake epoll_wait
  std::uint64_t next_token = 1;
  std::unordered_map<int, Watch> by_fd;
  std::unordered_map<std::uint64_t, int> token_fd;

  TimerId next_timer = 1;
  std::uint64_t next_seq = 0;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> heap;
  // Live timers only; cancelled ones are erased here and skipped lazily in the heap.
  std::unordered_map<TimerId, std::function<void()>> timers;

  std::mutex post_mu;
  std::vector<std::function<void()>> posted;
  std::vector<std::function<void()>> end_of_turn;   // loop thread only
  std::atomic<bool> stopped{false};
  TimerId trim_timer = 0;   // armed by return_free_memory_soon()

  void wake() {
    std::uint64_t one = 1;
    // A full counter still wakes the loop, so a failed write is harmless.
    [[maybe_unused]] auto n = ::write(wakefd, &one, sizeof one);
  }

  void drain_wake() {
    std::uint64_t v = 0;
    [[maybe_unused]] auto n = ::read(wakefd, &v, sizeof v);
  }

  bool has_posted() {
    std::lock_guard<std::mutex> lk(post_mu);
    return !posted.empty();
  }
};

EventLoop::EventLoop(const ClockSource& clock) : clock_(clock), impl_(std::make_unique<Impl>()) {
  impl_->epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (impl_->epfd < 0) throw std::runtime_error(errno_text("epoll_create1"));
  impl_->wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->wakefd < 0) {
    ::close(impl_->epfd);
    throw std::runtime_error(errno_text("eventfd"));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // token 0 is reserved for the wake fd
  if (::epoll_ctl(impl_->epfd, EPOLL_CTL_ADD, impl_->wakefd, &ev) < 0) {
    ::close(impl_->wakefd);
    ::close(impl_->epfd);
    throw std::runtime_error(errno_text("epoll_ctl(eventfd)"));
  }
}

EventLoop::~EventLoop() {
  // Destroy callbacks first (they may own fds), then the kernel objects. Move
  // them out first: their destructors may call unwatch()/cancel_timer() on us.
  {
    auto watches = std::move(impl_->by_fd);
    auto timers = std::move(impl_->timers);
    auto posted = std::move(impl_->posted);
    impl_->by_fd.clear();
    impl_->token_fd.clear();
    impl_->timers.clear();
    impl_->posted.clear();
  }
  ::close(impl_->wakefd);
  ::close(impl_->epfd);
}

void EventLoop::watch(int fd, std::uint32_t events, std::function<void(std::uint32_t)> callback) {
  auto& im = *impl_;
  Watch w;
  w.fd = fd;
  w.events = events;
  w.token = im.next_token++;
  w.callback = std::make_shared<std::function<void(std::uint32_t)>>(std::move(callback));
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = w.token;
  auto it = im.by_fd.find(fd);
  if (it != im.by_fd.end()) {
    im.token_fd.erase(it->second.token);
    if (::epoll_ctl(im.epfd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
        ::epoll_ctl(im.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      // The fd was closed and reused without unwatch; nothing sane to watch.
      im.by_fd.erase(it);
      throw std::runtime_error(errno_text("epoll_ctl(watch)"));
    }
    it->second = std::move(w);
  } else {
    if (::epoll_ctl(im.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      throw std::runtime_error(errno_text("epoll_ctl(watch)"));
    }
    im.by_fd.emplace(fd, std::move(w));
  }
  im.token_fd[im.by_fd[fd].token] = fd;
}

void EventLoop::modify(int fd, std::uint32_t events) {
  auto& im = *impl_;
  auto it = im.by_fd.find(fd);
  if (it == im.by_fd.end() || it->second.events == events) return;
  it->second.events = events;
  epoll_event ev{};
  ev.events = to_epoll(events);
  ev.data.u64 = it->second.token;
  ::epoll_ctl(im.epfd, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::unwatch(int fd) {
  auto& im = *impl_;
  auto it = im.by_fd.find(fd);
  if (it == im.by_fd.end()) return;
  // May fail with EBADF if the owner already closed the fd; epoll then dropped it itself.
  ::epoll_ctl(im.epfd, EPOLL_CTL_DEL, fd, nullptr);
  im.token_fd.erase(it->second.token);
  im.by_fd.erase(it);
}

TimerId EventLoop::add_timer(Duration after, std::function<void()> callback) {
  auto& im = *impl_;
  TimerId id = im.next_timer++;
  im.heap.push(TimerEntry{clock_.now() + after, im.next_seq++, id});
  im.timers.emplace(id, std::move(callback));
  return id;
}

void EventLoop::cancel_timer(TimerId id) { impl_->timers.erase(id); }

void EventLoop::return_free_memory_soon() {
  if (impl_->trim_timer != 0) return;
  impl_->trim_timer = add_timer(std::chrono::seconds(1), [this] {
    impl_->trim_timer = 0;
    ::malloc_trim(0);
  });
}

void EventLoop::post(std::function<void()> callback) {
  {
    std::lock_guard<std::mutex> lk(impl_->post_mu);
    impl_->posted.push_back(std::move(callback));
  }
  impl_->wake();
}

void EventLoop::at_end_of_turn(std::function<void()> callback) { impl_->end_of_turn.push_back(std::move(callback)); }

void EventLoop::run() {
  impl_->stopped = false;
  while (!impl_->stopped) run_once(Duration(60000));
}

void EventLoop::stop() {
  impl_->stopped = true;
  impl_->wake();
}

void EventLoop::run_once(Duration max_wait) {
  auto& im = *impl_;

  // Drop cancelled timers from the top so they do not shorten the wait.
  while (!im.heap.empty() && !im.timers.count(im.heap.top().id)) im.heap.pop();

  long long wait_ms = std::max<long long>(0, max_wait.count());
  if (im.has_posted()) {
    wait_ms = 0;
  } else if (!im.heap.empty()) {
    auto until = im.heap.top().deadline - clock_.now();
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(until).count();
    wait_ms = std::clamp<long long>(ms, 0, wait_ms);
  }
  wait_ms = std::min<long long>(wait_ms, 1 << 30);

  epoll_event events[64];
  int n = ::epoll_wait(im.epfd, events, 64, static_cast<int>(wait_ms));
  if (n < 0) n = 0;  // EINTR (a signal): just carry on with timers and posts

  for (int i = 0; i < n; ++i) {
    std::uint64_t token = events[i].data.u64;
    if (token == 0) {
      im.drain_wake();
      continue;
    }
    auto tf = im.token_fd.find(token);
    if (tf == im.token_fd.end()) continue;  // unwatched earlier in this iteration
    auto wit = im.by_fd.find(tf->second);
    if (wit == im.by_fd.end()) continue;
    std::uint32_t mask = from_epoll(events[i].events);
    // Report only what was asked for, plus hangups (always relevant).
    mask &= wit->second.events | kHangup;
    if (mask == 0) continue;
    auto cb = wit->second.callback;  // keep alive across a self-unwatch
    (*cb)(mask);
  }

  // Collect due timers first so a timer that re-arms itself with zero delay
  // runs on the next iteration, not in an endless loop here.
  TimePoint now = clock_.now();
  std::vector<TimerId> due;
  while (!im.heap.empty() && im.heap.top().deadline <= now) {
    due.push_back(im.heap.top().id);
    im.heap.pop();
  }
  for (TimerId id : due) {
    auto it = im.timers.find(id);
    if (it == im.timers.end()) continue;  // cancelled, possibly by an earlier timer
    auto cb = std::move(it->second);
    im.timers.erase(it);
    cb();
  }

  // Only the batch present now; posts made by these callbacks run next time.
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lk(im.post_mu);
    batch.swap(im.posted);
  }
  for (auto& cb : batch) cb();

  // Last, what this turn's callbacks deferred to its end (batched writes),
  // including what those add; on the loop thread only.
  while (!im.end_of_turn.empty()) {
    std::vector<std::function<void()>> tail;
    tail.swap(im.end_of_turn);
    for (auto& cb : tail) cb();
  }
}

}  // namespace portcullis::net
