// Passing a file descriptor with a short tag over a control socket (SCM_RIGHTS).
//
// The supervisor keeps one control socketpair per child; when it restarts a
// child it hands the fresh socketpair end to each surviving neighbour this way,
// tagged with what the fd connects to ("filter", "edge:low", "edge:high").
//
// Control sockets are SOCK_SEQPACKET (see make_control_pair), so one message is
// exactly one tag plus its fd, never split or merged. Both functions are
// non-blocking friendly: "would block" is reported distinctly from errors.
#pragma once

#include <string>
#include <string_view>

#include "guard/ipc/unique_fd.h"

namespace portcullis::ipc {

// Tags longer than this are refused by send_fd and rejected by receive_fd.
inline constexpr std::size_t kMaxFdTag = 64;

enum class FdPassStatus {
  Ok,
  Message,     // receive: a message with no fd (1..kMaxFdTag bytes, in `tag`): a request
  WouldBlock,  // non-blocking socket: try again when readable/writable
  Closed,      // peer closed the control socket (receive: EOF; send: EPIPE)
  Invalid,     // receive: a message arrived but is not one tag plus one fd
  Error,       // the socket failed; `error` says how
};

std::string_view to_string(FdPassStatus s);

struct FdSendResult {
  FdPassStatus status = FdPassStatus::Error;
  std::string error;  // set when status is Error or Closed
};

struct FdReceiveResult {
  FdPassStatus status = FdPassStatus::Error;
  std::string tag;    // set when status is Ok or Message
  UniqueFd fd;        // set when status is Ok; close-on-exec
  std::string error;  // set when status is Invalid, Error or Closed
};

// Creates a connected SOCK_SEQPACKET pair, close-on-exec and non-blocking, for a
// supervisor <-> child control channel. Returns false (errno set) on failure.
bool make_control_pair(UniqueFd& a, UniqueFd& b);

// Sends `fd` with `tag` (1..kMaxFdTag bytes) as one message on `sock`. Does not
// close or otherwise touch `fd`: the kernel duplicates it into the message.
// Never raises SIGPIPE.
FdSendResult send_fd(int sock, int fd, std::string_view tag);

// Receives one message from `sock`. A message carries exactly one fd and a
// tag (Ok), or only a short text and no fd (Message); anything else (several
// fds, an empty or truncated tag, truncated control data) is Invalid, and any fds that did arrive are closed. Received fds are close-on-exec
// (MSG_CMSG_CLOEXEC).
FdReceiveResult receive_fd(int sock);

}  // namespace portcullis::ipc
