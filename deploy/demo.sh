#!/usr/bin/env bash
# Portcullis demo on the shipped default config (deploy/config/demo.xml): two real
# Prosody servers, a.test (low side) and b.test (high side), with Portcullis
# between them on loopback. Installs the Debian packages, builds, creates a test
# PKI, starts everything, shows messages crossing both ways and one being refused,
# prints the filter's decisions, then keeps running until Ctrl-C.
#
# Usage: deploy/demo.sh [--once]      (--once: stop after the demonstration)
# Env:   BUILD_DIR (default: build), DEMO_DIR (default: /tmp/portcullis-demo: the service users must reach it)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
deploy/install-deps.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# Every program the demo runs: the daemon, and the audit tool that makes the archive's
# key pair (deploy/demo.py, test/integration/harness/topology.py).
cmake --build "$BUILD_DIR" -j "$(nproc)" --target portcullisd portcullis-audit portcullisctl
exec /usr/bin/python3 deploy/demo.py --build-dir "$BUILD_DIR" --run-dir "${DEMO_DIR:-/tmp/portcullis-demo}" "$@"
