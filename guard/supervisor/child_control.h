// The child's side of the supervisor's control socket.
//
// An edge or the filter reads its control socket (--control-fd) with this. When
// the supervisor restarts a neighbour it sends the fresh socketpair end here,
// tagged with what it connects to:
//   in an edge:      tag "filter"                 -> the new link to the filter
//   in the filter:   tag "edge:low" / "edge:high" -> the new link to that edge
// on_fd then gets (tag, fd); the child replaces its FrameChannel for that link
// with one on the new fd (the old one has seen, or will see, EOF).
//
// The supervisor also asks questions here (portcullisctl, through its control
// socket): a message with no fd whose text is "status <round>" or
// "reload <round> <who>". The child answers with one message
//   'S' | 'R', the round in decimal, '\n', a JSON object (at most kMaxReply bytes)
// from on_status / on_reload. The supervisor treats what comes back as the
// child's own claim: it bounds it and passes it on as a string, never parses it.
//
// EOF on the control socket means the supervisor is gone; the child must not
// linger as an orphan. on_supervisor_gone is called once; if it is not set, the
// process exits at once (status 1).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "guard/ipc/unique_fd.h"
#include "guard/net/event_loop.h"

namespace portcullis::supervisor {

class ChildControl {
 public:
  struct Callbacks {
    // A new fd from the supervisor; the callee owns it (close-on-exec).
    std::function<void(std::string_view tag, ipc::UniqueFd fd)> on_fd;
    // The control socket reached EOF or failed: the supervisor is gone.
    std::function<void(const std::string& reason)> on_supervisor_gone;
    // A message that is not a valid tagged fd (logged by the owner; the
    // channel stays open and nothing is handed over).
    std::function<void(const std::string& error)> on_bad_message;
    // "status": this child's figures as a JSON object. Unset: {"error": ...};
    // an empty string: no answer at all (the supervisor times out).
    std::function<std::string()> on_status;
    // "reload": reload what this child can (the filter: its policy), as a JSON
    // object saying what happened; `who` is the requester as the supervisor
    // saw it ("uid=0 pid=1234"), for the record. Unset: nothing to reload.
    std::function<std::string(const std::string& who)> on_reload;
  };
  // Replies longer than this are replaced by a short error object.
  static constexpr std::size_t kMaxReply = 60 * 1024;
  // Parses a request text; false when it is not one.
  struct Request {
    char kind = 0;   // 'S' status, 'R' reload (the reply's first byte)
    std::uint32_t round = 0;
    std::string who;
  };
  static bool parse_request(std::string_view text, Request& out);

  // Takes ownership of the control socket (SOCK_SEQPACKET, as the supervisor
  // creates it); makes it non-blocking and close-on-exec.
  ChildControl(net::EventLoop& loop, int control_fd, Callbacks cb);
  ~ChildControl();
  ChildControl(const ChildControl&) = delete;
  ChildControl& operator=(const ChildControl&) = delete;

  // Starts reading the control socket and sending heartbeats: one short
  // message every kHeartbeatEvery from this event loop, so the supervisor's
  // watchdog sees a hung loop (SupervisorOptions::watchdog_timeout).
  void start();
  // The answers may be set after construction (they need what is built later).
  void set_on_status(std::function<std::string()> cb) { cb_.on_status = std::move(cb); }
  void set_on_reload(std::function<std::string(const std::string&)> cb) { cb_.on_reload = std::move(cb); }
  bool is_open() const { return fd_.valid(); }
  static constexpr net::Duration kHeartbeatEvery{1000};

 private:
  void on_readable();
  void gone(const std::string& reason);
  void heartbeat();
  void answer(const Request& req);

  net::EventLoop& loop_;
  ipc::UniqueFd fd_;
  Callbacks cb_;
  bool watching_ = false;
  net::TimerId heartbeat_timer_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis::supervisor
