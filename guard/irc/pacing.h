// Pacing of the lines a client sends, so the server's flood control never
// disconnects it (ngIRCd, like RFC 2813's "one message per 2 s" budget, drops a
// client that sends faster than it is allowed to). A token bucket on an
// explicit clock: no timer inside, the caller asks when the next token comes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace portcullis::irc {

struct PacingRules {
  std::size_t burst = 4;            // lines that may go at once after a quiet spell (at least 1)
  std::int64_t interval_ms = 2000;  // one more line per interval after the burst (0: no pacing)
};

class TokenBucket {
 public:
  explicit TokenBucket(PacingRules rules);

  // Takes one token at NOW_MS when there is one. The bucket is full at the
  // first call; a clock that goes back counts as no time passing.
  bool take(std::int64_t now_ms);
  // When take would next succeed: NOW_MS when a token is there, else the time
  // the next one arrives.
  std::int64_t next_token_ms(std::int64_t now_ms);
  std::size_t tokens(std::int64_t now_ms);

 private:
  void refill(std::int64_t now_ms);

  PacingRules rules_;
  bool started_ = false;
  std::size_t tokens_ = 0;
  std::int64_t stamp_ms_ = 0;  // when tokens_ was last topped up
};

}  // namespace portcullis::irc
