// Termination signals for the child processes, read through a signalfd on the
// event loop (no async signal handlers touching process state).
#pragma once

#include <functional>

#include "guard/net/event_loop.h"

namespace portcullis::daemon {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread; call it before
// starting threads so every thread inherits the mask.
void block_termination_signals();

class TerminationSignals {
 public:
  // Blocks SIGTERM, SIGINT and SIGHUP and watches them; `on_signal` gets the number.
  TerminationSignals(net::EventLoop& loop, std::function<void(int)> on_signal);
  ~TerminationSignals();
  TerminationSignals(const TerminationSignals&) = delete;
  TerminationSignals& operator=(const TerminationSignals&) = delete;

 private:
  net::EventLoop& loop_;
  int fd_ = -1;
  std::function<void(int)> on_signal_;
};

}  // namespace portcullis::daemon
