// The appliance's control socket: a Unix stream socket that portcullisctl
// talks to (status, reload). It lives in the supervisor, which holds no stanza
// and no peer connection; what it answers comes from the children over their
// control socketpairs (Supervisor::query).
//
// The socket file is owned by root (the supervisor's user) and the operator
// group, mode 0660: whoever may connect may see the figures and reload the
// policy, nobody else; the edges and the filter run as users outside that
// group (no supplementary groups) and cannot reach it. Each request is one
// line (at most kMaxLine bytes) answered by one JSON text, then the server
// closes. The connecting process (SO_PEERCRED) is passed to the handler, which
// logs and records who asked for what.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "guard/ipc/unique_fd.h"
#include "guard/net/connection.h"
#include "guard/net/event_loop.h"

namespace portcullis::supervisor {

struct ControlPeer {
  pid_t pid = -1;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::string describe() const;   // "uid=0 pid=1234"
};

class ControlServer {
 public:
  // Sends `reply` (a JSON text; a newline is added) and closes. A no-op once
  // the client is gone (timed out, hung up) or the server destroyed.
  using Respond = std::function<void(std::string reply)>;
  // True once the client is gone: work queued for it can be dropped.
  using Gone = std::function<bool()>;
  using Handler = std::function<void(std::string_view command, const ControlPeer& who, Respond respond, Gone gone)>;

  struct Options {
    std::string path;
    bool set_group = false;     // chown the socket to `group` (else the creator's)
    gid_t group = 0;
    std::size_t max_clients = 16;
    net::Duration timeout{5000};   // per client, from accept to the end of the reply
  };

  // Binds and listens; throws std::runtime_error naming the path when it
  // cannot (a stale socket from a crashed run is replaced; a live one, or a
  // file that is not a socket, is an error).
  ControlServer(net::EventLoop& loop, Options options, Handler handler,
                std::function<void(std::string_view)> log);
  ~ControlServer();   // closes every client and removes the socket file
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return options_.path; }
  static constexpr std::size_t kMaxLine = 256;

 private:
  struct Client {
    std::unique_ptr<net::Connection> conn;
    ControlPeer peer;
    std::string line;
    bool asked = false;
    net::TimerId timer = 0;
  };
  void on_acceptable();
  void on_data(std::uint64_t id, std::string_view bytes);
  void respond(std::uint64_t id, std::string reply);
  void drop(std::uint64_t id);

  net::EventLoop& loop_;
  Options options_;
  Handler handler_;
  std::function<void(std::string_view)> log_;
  ipc::UniqueFd fd_;
  std::map<std::uint64_t, Client> clients_;
  std::uint64_t next_id_ = 1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis::supervisor
