#include "guard/irc/pacing.h"

namespace portcullis::irc {

TokenBucket::TokenBucket(PacingRules rules) : rules_(rules) {
  if (rules_.burst == 0) rules_.burst = 1;
  if (rules_.interval_ms < 0) rules_.interval_ms = 0;
}

void TokenBucket::refill(std::int64_t now_ms) {
  if (!started_) {
    started_ = true;
    tokens_ = rules_.burst;
    stamp_ms_ = now_ms;
    return;
  }
  if (rules_.interval_ms == 0) {  // no pacing
    tokens_ = rules_.burst;
    return;
  }
  if (now_ms <= stamp_ms_) return;
  if (tokens_ >= rules_.burst) {
    tokens_ = rules_.burst;
    stamp_ms_ = now_ms;
    return;
  }
  const std::int64_t earned = (now_ms - stamp_ms_) / rules_.interval_ms;
  if (earned <= 0) return;
  if (static_cast<std::uint64_t>(earned) >= rules_.burst - tokens_) {
    tokens_ = rules_.burst;
    stamp_ms_ = now_ms;
  } else {
    tokens_ += static_cast<std::size_t>(earned);
    stamp_ms_ += earned * rules_.interval_ms;  // keep the fraction of an interval already served
  }
}

bool TokenBucket::take(std::int64_t now_ms) {
  refill(now_ms);
  if (tokens_ == 0) return false;
  --tokens_;
  return true;
}

std::int64_t TokenBucket::next_token_ms(std::int64_t now_ms) {
  refill(now_ms);
  if (tokens_ > 0) return now_ms;
  return stamp_ms_ + rules_.interval_ms;
}

std::size_t TokenBucket::tokens(std::int64_t now_ms) {
  refill(now_ms);
  return tokens_;
}

}  // namespace portcullis::irc
