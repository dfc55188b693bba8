#include "guard/ipc/fd_passing.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace portcullis::ipc {

std::string_view to_string(FdPassStatus s) {
  switch (s) {
    case FdPassStatus::Ok: return "ok";
    case FdPassStatus::Message: return "message";
    case FdPassStatus::WouldBlock: return "would block";
    case FdPassStatus::Closed: return "closed";
    case FdPassStatus::Invalid: return "invalid message";
    case FdPassStatus::Error: return "error";
  }
  return "unknown";
}

bool make_control_pair(UniqueFd& a, UniqueFd& b) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
    return false;
  }
  a.reset(fds[0]);
  b.reset(fds[1]);
  return true;
}

FdSendResult send_fd(int sock, int fd, std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxFdTag) {
    return {FdPassStatus::Error, "fd tag must be 1.." + std::to_string(kMaxFdTag) + " bytes"};
  }
  if (fd < 0) return {FdPassStatus::Error, "no fd to send"};

  iovec iov{};
  iov.iov_base = const_cast<char*>(tag.data());
  iov.iov_len = tag.size();
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  std::memset(control, 0, sizeof control);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));

  for (;;) {
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      // SEQPACKET is atomic: a short send cannot happen, but never trust it silently.
      if (static_cast<std::size_t>(n) != tag.size()) return {FdPassStatus::Error, "short send of fd message"};
      return {FdPassStatus::Ok, {}};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {FdPassStatus::WouldBlock, {}};
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
      return {FdPassStatus::Closed, std::string("control socket closed: ") + std::strerror(errno)};
    }
    return {FdPassStatus::Error, std::string("sendmsg: ") + std::strerror(errno)};
  }
}

FdReceiveResult receive_fd(int sock) {
  FdReceiveResult r;
  char tag[kMaxFdTag + 1];
  iovec iov{};
  iov.iov_base = tag;
  iov.iov_len = sizeof tag;
  // Room for a few fds, so a peer sending several is detected (and each closed)
  // rather than leaking the extras into our table with MSG_CTRUNC.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  ssize_t n;
  for (;;) {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      r.status = FdPassStatus::WouldBlock;
      return r;
    }
    if (errno == ECONNRESET) {
      r.status = FdPassStatus::Closed;
      r.error = "control socket reset";
      return r;
    }
    r.status = FdPassStatus::Error;
    r.error = std::string("recvmsg: ") + std::strerror(errno);
    return r;
  }

  std::vector<UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }

  if (n == 0 && fds.empty()) {
    // SEQPACKET: a zero-length read without ancillary data is the peer's EOF.
    r.status = FdPassStatus::Closed;
    r.error = "control socket closed by peer";
    return r;
  }
  r.status = FdPassStatus::Invalid;
  if (msg.msg_flags & MSG_CTRUNC) {
    r.error = "fd message control data truncated";
  } else if (msg.msg_flags & MSG_TRUNC || static_cast<std::size_t>(n) > kMaxFdTag) {
    r.error = "fd message tag too long";
  } else if (n == 0) {
    r.error = "fd message without tag";
  } else if (fds.empty()) {
    // A request from the supervisor (status, reload): its text is the tag.
    r.status = FdPassStatus::Message;
    r.tag.assign(tag, static_cast<std::size_t>(n));
  } else if (fds.size() != 1) {
    r.error = "fd message carries " + std::to_string(fds.size()) + " fds (expected 1)";
  } else {
    r.status = FdPassStatus::Ok;
    r.tag.assign(tag, static_cast<std::size_t>(n));
    r.fd = std::move(fds.front());
  }
  return r;  // on Invalid, `fds` closes whatever arrived
}

}  // namespace portcullis::ipc
