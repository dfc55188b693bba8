#!/usr/bin/env bash
# The unit suite under AddressSanitizer and UndefinedBehaviorSanitizer, then every
# libFuzzer target for a bounded time over its corpus. One clang build with
# -DPORTCULLIS_FUZZ=ON serves both: it instruments every library with ASan, UBSan
# and coverage. Any sanitizer report fails the run (UBSan halts on its first), and
# so does a fuzzer crash (the input is kept under $BUILD_DIR/fuzz-artifacts).
# test/run-tests.sh runs this after the main suite; on its own it needs
# deploy/install-deps.sh first.
#
# Usage: test/run-sanitized.sh
# Env:   FUZZ_BUILD_DIR (default: build-fuzz), PORTCULLIS_FUZZ_SECONDS (default: 10 per target)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
SECONDS_EACH=${PORTCULLIS_FUZZ_SECONDS:-10}

die() { echo "run-sanitized: $*" >&2; exit 1; }
command -v clang++ >/dev/null || die "clang++ not found (deploy/install-deps.sh installs it)"

start=$(date +%s)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
# No -Werror here: libseccomp's macros draw clang-only warnings (C99 compound
# literals); the gcc build in run-tests.sh is the warnings gate.
# -O1 with line tables, as the sanitizers advise (reports keep file:line), and
# without NDEBUG: assertions are checked too. No benchmarks: nothing here runs them.
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DPORTCULLIS_FUZZ=ON -DPORTCULLIS_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" >"$BUILD_DIR/build.log" 2>&1 || { tail -n 30 "$BUILD_DIR/build.log" >&2; die "clang build failed"; }
echo "run-sanitized: clang build (ASan, UBSan, fuzzers) took $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
t=$(date +%s)
(cd "$BUILD_DIR" && ctest -L unit -j2 --output-on-failure --timeout 600) || status=1
echo "run-sanitized: unit suite under ASan+UBSan took $(( $(date +%s) - t )) s"

# Each target, its seeds (checked in; the fuzzer adds what it finds to a scratch copy).
declare -A SEEDS=(
  [fuzz_stream_parser]="test/corpus/xml"
  [fuzz_frame_decoder]=""
  [fuzz_room]="test/corpus/fmuc"
  [fuzz_irc_line]="test/corpus/irc"
  [fuzz_jid]="test/corpus/jid"
  [fuzz_policy]="test/corpus/policyfile test/corpus/labels test/fuzz/corpus/fuzz_policy"
  [fuzz_label]="test/corpus/labels"
)
artifacts="$BUILD_DIR/fuzz-artifacts"
mkdir -p "$artifacts"
for target in fuzz_stream_parser fuzz_frame_decoder fuzz_room fuzz_irc_line fuzz_jid fuzz_policy fuzz_label; do
  bin="$BUILD_DIR/test/fuzz/$target"
  [ -x "$bin" ] || die "$bin was not built"
  work=$(mktemp -d)
  dirs=("$work")
  for d in ${SEEDS[$target]}; do [ -d "$d" ] && dirs+=("$d"); done
  log="$artifacts/$target.log"
  if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$artifacts/$target-" "${dirs[@]}" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "run-sanitized: $target: ${runs:-?} runs in ${SECONDS_EACH} s, no crash"
  else
    echo "run-sanitized: $target FAILED (log $log):" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -n 5 >&2 || true
    status=1
  fi
  rm -rf "$work"
done
echo "run-sanitized: took $(( $(date +%s) - start )) s"
exit $status
