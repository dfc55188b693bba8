// Runs an event loop until a condition holds, bounded by real time so a broken
// implementation fails the test instead of hanging it.
#pragma once

#include <chrono>
#include <functional>

#include "guard/net/event_loop.h"

namespace portcullis::ipc::testing {

inline bool run_until(net::EventLoop& loop, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    loop.run_once(net::Duration(20));
  }
  return true;
}

}  // namespace portcullis::ipc::testing
