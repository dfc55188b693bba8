// For tests that can only run as root (chown, setuid, namespaces). Under CI
// (.ci/run sets PORTCULLIS_REQUIRE_ROOT=1, and CI runs as root) not being root
// fails the test; elsewhere it warns and skips, so a developer's unprivileged
// run still passes the rest.
#pragma once

#include <unistd.h>

#include <cstdlib>

#define PORTCULLIS_NEEDS_ROOT()                                                  \
  do {                                                                           \
    if (::geteuid() != 0) {                                                      \
      if (std::getenv("PORTCULLIS_REQUIRE_ROOT") != nullptr) {                   \
        FAIL("this test needs root and PORTCULLIS_REQUIRE_ROOT is set");         \
      }                                                                          \
      WARN("not root: skipped");                                                 \
      return;                                                                    \
    }                                                                            \
  } while (0)
