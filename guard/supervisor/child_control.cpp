#include "guard/supervisor/child_control.h"

#include <sys/socket.h>

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "guard/ipc/fd_passing.h"

namespace portcullis::supervisor {

ChildControl::ChildControl(net::EventLoop& loop, int control_fd, Callbacks cb)
    : loop_(loop), fd_(control_fd), cb_(std::move(cb)) {
  const int fl = ::fcntl(control_fd, F_GETFL);
  if (fl >= 0) ::fcntl(control_fd, F_SETFL, fl | O_NONBLOCK);
  const int fdfl = ::fcntl(control_fd, F_GETFD);
  if (fdfl >= 0) ::fcntl(control_fd, F_SETFD, fdfl | FD_CLOEXEC);
}

ChildControl::~ChildControl() {
  if (watching_) loop_.unwatch(fd_.get());
  if (heartbeat_timer_) loop_.cancel_timer(heartbeat_timer_);
}

void ChildControl::heartbeat() {
  heartbeat_timer_ = 0;
  if (!fd_) return;
  // Best effort: a full socket means the supervisor is not reading, which its
  // own watchdog handles; EOF is seen by the read side.
  const char beat = 'h';
  (void)::send(fd_.get(), &beat, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  heartbeat_timer_ = loop_.add_timer(kHeartbeatEvery, [this] { heartbeat(); });
}

void ChildControl::start() {
  if (watching_ || !fd_) return;
  watching_ = true;
  loop_.watch(fd_.get(), net::kReadable, [this](std::uint32_t) { on_readable(); });
  heartbeat();
}

void ChildControl::gone(const std::string& reason) {
  if (watching_) loop_.unwatch(fd_.get());
  watching_ = false;
  fd_.reset();
  if (cb_.on_supervisor_gone) {
    auto cb = cb_.on_supervisor_gone;
    cb(reason);
    return;
  }
  // No owner policy: an orphaned child must not keep running on its own.
  std::fprintf(stderr, "portcullis child: %s; exiting\n", reason.c_str());
  std::_Exit(1);
}

bool ChildControl::parse_request(std::string_view text, Request& out) {
  const auto sp = text.find(' ');
  if (sp == std::string_view::npos) return false;
  const std::string_view verb = text.substr(0, sp);
  std::string_view rest = text.substr(sp + 1);
  if (verb == "status") out.kind = 'S';
  else if (verb == "reload") out.kind = 'R';
  else return false;
  const auto sp2 = rest.find(' ');
  const std::string_view num = rest.substr(0, sp2);
  out.who = sp2 == std::string_view::npos ? std::string() : std::string(rest.substr(sp2 + 1));
  const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), out.round);
  return ec == std::errc() && end == num.data() + num.size() && !num.empty();
}

void ChildControl::answer(const Request& req) {
  std::string body;
  if (req.kind == 'S') {
    body = cb_.on_status ? cb_.on_status() : std::string("{\"error\":\"no status\"}");
  } else {
    body = cb_.on_reload ? cb_.on_reload(req.who) : std::string("{\"ok\":true,\"reloaded\":\"nothing\"}");
  }
  if (body.empty()) return;   // the owner chose not to answer
  if (body.size() > kMaxReply) {
    body = "{\"error\":\"report too large (" + std::to_string(body.size()) + " bytes)\"}";
  }
  std::string msg(1, req.kind);
  msg += std::to_string(req.round);
  msg += '\n';
  msg += body;
  // One message; a full socket drops it and the supervisor reports no answer.
  if (fd_) (void)::send(fd_.get(), msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void ChildControl::on_readable() {
  std::weak_ptr<bool> token = alive_;
  // Bounded: a flood of messages cannot starve the rest of the loop.
  for (int i = 0; i < 16 && fd_; ++i) {
    ipc::FdReceiveResult r = ipc::receive_fd(fd_.get());
    switch (r.status) {
      case ipc::FdPassStatus::WouldBlock:
        return;
      case ipc::FdPassStatus::Closed:
        return gone("supervisor closed the control socket");
      case ipc::FdPassStatus::Error:
        return gone("control socket failed: " + r.error);
      case ipc::FdPassStatus::Invalid:
        if (cb_.on_bad_message) {
          auto cb = cb_.on_bad_message;
          cb(r.error);
          if (token.expired()) return;
        }
        break;
      case ipc::FdPassStatus::Message: {
        Request req;
        if (!parse_request(r.tag, req)) {
          if (cb_.on_bad_message) {
            auto cb = cb_.on_bad_message;
            cb("unknown request on the control socket");
            if (token.expired()) return;
          }
          break;
        }
        answer(req);
        if (token.expired()) return;
        break;
      }
      case ipc::FdPassStatus::Ok:
        if (cb_.on_fd) {
          auto cb = cb_.on_fd;
          cb(r.tag, std::move(r.fd));
          if (token.expired()) return;
        }
        break;
    }
  }
}

}  // namespace portcullis::supervisor
