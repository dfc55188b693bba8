#include "guard/supervisor/control_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace portcullis::supervisor {

std::string ControlPeer::describe() const {
  return "uid=" + std::to_string(uid) + " pid=" + std::to_string(pid);
}

namespace {

std::runtime_error failure(const std::string& path, const std::string& what) {
  return std::runtime_error("control socket " + path + ": " + what);
}

sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) throw failure(path, "path empty or too long");
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

// A socket file left by a run that crashed is replaced; one that a live
// process still listens on is not (two appliances on one socket would answer
// for each other).
// Only a refused connection means nobody listens: a full backlog (EAGAIN)
// or any other error leaves the socket alone.
void clear_stale(const std::string& path, const sockaddr_un& a, int dir, const std::string& name) {
  struct stat st{};
  if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throw failure(path, std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) throw failure(path, "exists and is not a socket");
  ipc::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) throw failure(path, std::string("socket: ") + std::strerror(errno));
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
    throw failure(path, "another process is listening on it");
  }
  const int e = errno;
  if (e != ECONNREFUSED && e != ENOENT) {
    throw failure(path, std::string("cannot tell whether another process listens on it: ") + std::strerror(e));
  }
  if (::unlinkat(dir, name.c_str(), 0) != 0 && errno != ENOENT) {
    throw failure(path, std::string("cannot remove the stale socket: ") + std::strerror(errno));
  }
}

// The socket's directory: not a symlink, ours, and writable by nobody else,
// so no other user can swap the socket's name for a link between our bind
// and the chown/chmod that follow (they then go through this directory).
ipc::UniqueFd open_parent(const std::string& path, const std::filesystem::path& parent) {
  const std::string dir = parent.empty() ? "." : parent.string();
  ipc::UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw failure(path, "cannot open its directory " + dir + ": " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) throw failure(path, "cannot stat " + dir + ": " + std::strerror(errno));
  if (st.st_uid != ::geteuid()) {
    throw failure(path, "its directory " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                            ", not to this process (uid " + std::to_string(::geteuid()) + ")");
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw failure(path, "its directory " + dir + " is writable by others (mode " + mode + ")");
  }
  return fd;
}

}  // namespace

ControlServer::ControlServer(net::EventLoop& loop, Options options, Handler handler,
                             std::function<void(std::string_view)> log)
    : loop_(loop), options_(std::move(options)), handler_(std::move(handler)), log_(std::move(log)) {
  const std::string& path = options_.path;
  const sockaddr_un a = address_of(path);
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) throw failure(path, "cannot create " + parent.string() + ": " + ec.message());
    ::chmod(parent.c_str(), 0755);
  }
  const ipc::UniqueFd dir = open_parent(path, parent);
  const std::string name = std::filesystem::path(path).filename().string();
  clear_stale(path, a, dir.get(), name);
  fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd_) throw failure(path, std::string("socket: ") + std::strerror(errno));
  // Nobody but the owner may connect before the mode and group are set.
  const mode_t old = ::umask(0177);
  const int bound = ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
  const int bind_errno = errno;
  ::umask(old);
  if (bound != 0) throw failure(path, std::string("bind: ") + std::strerror(bind_errno));
  struct stat st{};
  if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode)) {
    throw failure(path, "it is not the socket just bound");
  }
  if (options_.set_group && ::fchownat(dir.get(), name.c_str(), ::geteuid(), options_.group, AT_SYMLINK_NOFOLLOW) != 0) {
    const int e = errno;
    ::unlinkat(dir.get(), name.c_str(), 0);
    throw failure(path, "cannot give it to group " + std::to_string(options_.group) + ": " + std::strerror(e));
  }
  if (::fchmodat(dir.get(), name.c_str(), 0660, 0) != 0 || ::listen(fd_.get(), 16) != 0) {
    const int e = errno;
    ::unlinkat(dir.get(), name.c_str(), 0);
    throw failure(path, std::strerror(e));
  }
  loop_.watch(fd_.get(), net::kReadable, [this](std::uint32_t) { on_acceptable(); });
}

ControlServer::~ControlServer() {
  for (auto& [id, c] : clients_) {
    if (c.timer) loop_.cancel_timer(c.timer);
  }
  clients_.clear();
  if (fd_) {
    loop_.unwatch(fd_.get());
    ::unlink(options_.path.c_str());
  }
}

void ControlServer::on_acceptable() {
  for (int i = 0; i < 16; ++i) {
    const int cfd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && log_) {
        log_(std::string("control socket: accept: ") + std::strerror(errno));
      }
      return;
    }
    if (clients_.size() >= options_.max_clients) {
      static constexpr char kBusy[] = "{\"error\":\"busy: too many control clients\"}\n";
      (void)::send(cfd, kBusy, sizeof kBusy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      ::close(cfd);
      continue;
    }
    ControlPeer peer;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      peer.pid = cred.pid;
      peer.uid = cred.uid;
      peer.gid = cred.gid;
    }
    const std::uint64_t id = next_id_++;
    Client& c = clients_[id];
    c.peer = peer;
    c.conn = std::make_unique<net::Connection>(loop_, cfd, net::Endpoint{"control", 0});
    net::Connection::Callbacks cb;
    cb.on_data = [this, id](std::string_view bytes) { on_data(id, bytes); };
    cb.on_closed = [this, id](const std::string&) {
      std::weak_ptr<bool> token = alive_;
      loop_.post([this, token, id] {
        if (!token.expired()) drop(id);
      });
    };
    c.conn->set_callbacks(std::move(cb));
    c.timer = loop_.add_timer(options_.timeout, [this, id] {
      auto it = clients_.find(id);
      if (it == clients_.end()) return;
      it->second.timer = 0;
      it->second.conn->close_now("timed out");
    });
    c.conn->start();
  }
}

void ControlServer::on_data(std::uint64_t id, std::string_view bytes) {
  auto it = clients_.find(id);
  if (it == clients_.end() || it->second.asked) return;
  Client& c = it->second;
  c.line.append(bytes.substr(0, kMaxLine + 1 - std::min(c.line.size(), kMaxLine + 1)));
  const auto nl = c.line.find('\n');
  if (nl == std::string::npos) {
    if (c.line.size() > kMaxLine) {
      c.asked = true;
      respond(id, "{\"error\":\"request longer than " + std::to_string(kMaxLine) + " bytes\"}");
    }
    return;
  }
  c.asked = true;
  c.conn->set_reading(false);
  std::string command = c.line.substr(0, nl);
  if (!command.empty() && command.back() == '\r') command.pop_back();
  std::weak_ptr<bool> token = alive_;
  Respond reply = [this, token, id](std::string text) {
    if (!token.expired()) respond(id, std::move(text));
  };
  Gone gone = [this, token, id] {
    if (token.expired()) return true;
    auto found = clients_.find(id);
    return found == clients_.end() || !found->second.conn->is_open();
  };
  handler_(command, c.peer, std::move(reply), std::move(gone));
}

void ControlServer::respond(std::uint64_t id, std::string reply) {
  auto it = clients_.find(id);
  if (it == clients_.end() || !it->second.conn->is_open()) return;
  reply += '\n';
  it->second.conn->send(reply);
  it->second.conn->close_after_flush();
}

void ControlServer::drop(std::uint64_t id) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  if (it->second.timer) loop_.cancel_timer(it->second.timer);
  clients_.erase(it);
}

}  // namespace portcullis::supervisor
