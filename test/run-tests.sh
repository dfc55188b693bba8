#!/usr/bin/env bash
# Runs every test of Portcullis on a fresh Debian 12 machine: installs the Debian
# packages it needs (deploy/install-deps.sh), builds with warnings as errors, and
# runs the whole CTest suite: unit tests and the `interop` tests with real Prosody
# servers and slixmpp clients on loopback. Then (full runs only, not with ctest
# arguments) test/run-sanitized.sh: the unit suite under ASan and UBSan, and each
# libFuzzer target for a bounded time.
#
# Usage: test/run-tests.sh [ctest arguments...]     e.g.  test/run-tests.sh -L unit
# Env:   BUILD_DIR (default: build), PORTCULLIS_SANITIZE=ON for an ASan/UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
BUILD_DIR=${BUILD_DIR:-build}

deploy/install-deps.sh
start=$(date +%s)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_WERROR=ON \
      -DPORTCULLIS_SANITIZE="${PORTCULLIS_SANITIZE:-OFF}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
built=$(date +%s)
echo "run-tests: build took $((built - start)) s"
cd "$BUILD_DIR"
status=0
ctest --output-on-failure --timeout 600 -j2 "$@" || status=$?
echo "run-tests: tests took $(( $(date +%s) - built )) s"
cd "$root"
if [ $# -eq 0 ]; then
  test/run-sanitized.sh || status=1
fi
exit $status
