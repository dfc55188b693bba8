// The token bucket that paces what a client sends (guard/irc/pacing).
#include <catch2/catch.hpp>

#include "guard/irc/pacing.h"

using namespace portcullis::irc;

TEST_CASE("a full bucket gives the burst at once, then one per interval", "[irc][pacing]") {
  TokenBucket b(PacingRules{4, 2000});
  for (int i = 0; i < 4; ++i) CHECK(b.take(1000));
  CHECK_FALSE(b.take(1000));
  CHECK(b.next_token_ms(1000) == 3000);
  CHECK_FALSE(b.take(2999));
  CHECK(b.take(3000));
  CHECK_FALSE(b.take(3000));
  CHECK(b.next_token_ms(3500) == 5000);
  // The part of an interval already waited counts: 5000 and 7000, not 5500.
  CHECK_FALSE(b.take(4999));
  CHECK(b.take(5500));
  CHECK(b.next_token_ms(5500) == 7000);
}

TEST_CASE("a quiet spell refills up to the burst, not beyond", "[irc][pacing]") {
  TokenBucket b(PacingRules{4, 2000});
  for (int i = 0; i < 4; ++i) CHECK(b.take(0));
  CHECK(b.tokens(5000) == 2);
  CHECK(b.tokens(1000000) == 4);
  for (int i = 0; i < 4; ++i) CHECK(b.take(1000000));
  CHECK_FALSE(b.take(1000000));
}

TEST_CASE("a clock going back counts as no time", "[irc][pacing]") {
  TokenBucket b(PacingRules{1, 1000});
  CHECK(b.take(10000));
  CHECK_FALSE(b.take(5000));
  CHECK_FALSE(b.take(10999));
  CHECK(b.take(11000));
}

TEST_CASE("interval 0 does not pace; a burst of 0 counts as 1", "[irc][pacing]") {
  TokenBucket free(PacingRules{2, 0});
  for (int i = 0; i < 100; ++i) CHECK(free.take(7));
  TokenBucket one(PacingRules{0, 1000});
  CHECK(one.take(0));
  CHECK_FALSE(one.take(0));
  CHECK(one.take(1000));
}
