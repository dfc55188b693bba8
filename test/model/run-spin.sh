#!/usr/bin/env bash
# Model-checks the FMUC relay / loss / rejoin / backfill rules (test/model/fmuc.pml)
# with spin: for each configuration below it generates the verifier (spin -a), compiles
# it (gcc), runs an exhaustive safety search and checks the verdict. The correct model
# must show no error on any topology; each deliberately broken variant must show the
# violation it is meant to show (so the checks are proven able to fail).
#
# Usage: run-spin.sh SRC_DIR WORK_DIR
#   SRC_DIR   directory holding fmuc.pml (test/model)
#   WORK_DIR  scratch directory; one subdirectory per configuration keeps pan's output,
#             and on a failure the trail and a readable counterexample (counterexample.txt)
#
# Prints one summary line per configuration; on failure one readable line per failing
# configuration on stderr, and exits non-zero.
set -uo pipefail

die() { echo "fmuc model: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: run-spin.sh SRC_DIR WORK_DIR"
SRC=$1
WORK=$2
MODEL=$SRC/fmuc.pml
[ -r "$MODEL" ] || die "model not found: $MODEL"
command -v spin >/dev/null 2>&1 || die "spin not found; run deploy/install-deps.sh (installs package spin)"
command -v gcc >/dev/null 2>&1 || die "gcc not found; run deploy/install-deps.sh"
mkdir -p "$WORK" || die "cannot create $WORK"
WORK=$(cd "$WORK" && pwd)

# Limits: pan stops at 2 GiB (MEMLIM, in MiB); a run that does not finish in
# PAN_TIMEOUT seconds fails. Depth: far beyond the deepest path (~130 steps).
MEMLIM=2048
DEPTH=1000000
PAN_TIMEOUT=300

# name | spin -D defines | extra gcc defines | expectation
#   expectation "pass": exhaustive search, errors: 0
#   expectation "P1"/"P2"/"P3": a violation whose text starts "FMUC VIOLATION <that>"
CONFIGS=(
  "chain2|-DCHAIN2||pass"
  "chain3|-DCHAIN3||pass"
  "chain4|-DCHAIN4|-DCOLLAPSE|pass"
  "star4|-DSTAR4|-DCOLLAPSE|pass"
  "chain3-4msgs|-DCHAIN3 -DM=4|-DCOLLAPSE|pass"
  "chain4-fullhistory|-DCHAIN4 -DBACKFILL_FULL|-DCOLLAPSE|pass"
  "chain2-ghosts|-DCHAIN2 -DFULL_GHOSTS||pass"
  "chain3-ghosts|-DCHAIN3 -DFULL_GHOSTS|-DCOLLAPSE|pass"
  "chain4-ghosts-2msgs|-DCHAIN4 -DFULL_GHOSTS -DM=2|-DCOLLAPSE|pass"
  "star4-ghosts-2msgs|-DSTAR4 -DFULL_GHOSTS -DM=2|-DCOLLAPSE|pass"
  "broken-no-dedupe|-DCHAIN3 -DBROKEN_NO_DEDUPE||P1"
  "broken-no-backfill|-DCHAIN3 -DBROKEN_NO_BACKFILL||P3"
  "broken-relay-back|-DCHAIN3 -DFULL_GHOSTS -DBROKEN_RELAY_BACK||P2"
  "broken-loss-point-local|-DCHAIN3 -DBROKEN_LOSS_POINT_LOCAL||P3"
)

failures=0
fail() { echo "fmuc model: $1: $2" >&2; failures=$((failures + 1)); }

# Replays the trail of configuration $1 (in $dir) and writes counterexample.txt;
# sets $violation to the first "FMUC ..." line of the replay (empty if none).
replay() {
  local defines=$2
  # shellcheck disable=SC2086
  (cd "$dir" && spin -t $defines fmuc.pml >replay.txt 2>&1)
  grep -E 'EVENT|FMUC|assertion violated|text of failed' "$dir/replay.txt" |
    sed 's/^[[:space:]]*//' >"$dir/counterexample.txt"
  violation=$(grep -m1 -o 'FMUC [A-Z]* [^:]*:.*' "$dir/replay.txt" || true)
}

for cfg in "${CONFIGS[@]}"; do
  IFS='|' read -r name defines ccdefs expect <<<"$cfg"
  dir=$WORK/$name
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$MODEL" "$dir/fmuc.pml"

  # shellcheck disable=SC2086
  if ! (cd "$dir" && spin -a $defines fmuc.pml >spin-a.log 2>&1); then
    fail "$name" "spin -a failed: $(grep -m1 -i error "$dir/spin-a.log" || head -n1 "$dir/spin-a.log")"
    continue
  fi
  # shellcheck disable=SC2086
  if ! (cd "$dir" && gcc -O2 -w -DSAFETY -DMEMLIM=$MEMLIM $ccdefs -o pan pan.c >gcc.log 2>&1); then
    fail "$name" "compiling pan.c failed: $(grep -m1 error "$dir/gcc.log")"
    continue
  fi

  start=$(date +%s.%N)
  (cd "$dir" && timeout "$PAN_TIMEOUT" ./pan -m$DEPTH >pan.out 2>&1)
  rc=$?
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  out=$dir/pan.out
  stored=$(awk '/states, stored/ { print $1; exit }' "$out")
  stored=${stored:-?}
  if [ "$rc" = 124 ]; then
    fail "$name" "pan did not finish within ${PAN_TIMEOUT}s (output in $out)"
    continue
  fi
  # Incomplete searches fail whatever the expectation.
  if grep -q 'max search depth too small' "$out"; then
    fail "$name" "search incomplete: max search depth too small (-m$DEPTH; output in $out)"
    continue
  fi
  if grep -qE 'out of memory|reached -DMEMLIM bound' "$out"; then
    fail "$name" "search incomplete: out of memory (MEMLIM ${MEMLIM} MiB; output in $out)"
    continue
  fi
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | head -n1)
  if [ -z "$errors" ]; then
    fail "$name" "pan gave no verdict (exit $rc; output in $out)"
    continue
  fi

  if [ "$expect" = pass ]; then
    if [ "$errors" = 0 ] &&
       ! grep -qE '^pan:[0-9]+: (assertion violated|invalid end state|acceptance cycle)|Search not completed' "$out"; then
      printf 'fmuc model: %-24s ok: %s states stored, %s s\n' "$name" "$stored" "$secs"
      continue
    fi
    violation=
    [ -f "$dir/fmuc.pml.trail" ] && replay "$name" "$defines"
    if [ -z "$violation" ]; then
      violation=$(grep -m1 -oE '^pan:[0-9]+: (assertion violated|acceptance cycle).*|Search not completed' "$out")
      grep -qE '^pan:[0-9]+: invalid end state' "$out" &&
        violation="invalid end state (a node or the environment blocked, e.g. on a full channel)"
    fi
    fail "$name" "${violation:-errors: $errors} (trail in $dir/fmuc.pml.trail, counterexample in $dir/counterexample.txt)"
  else
    if [ "$errors" = 0 ] || [ ! -f "$dir/fmuc.pml.trail" ]; then
      fail "$name" "broken variant NOT caught: spin found no violation (expected $expect; output in $out)"
      continue
    fi
    violation=
    replay "$name" "$defines"
    case "$violation" in
      "FMUC VIOLATION $expect:"*)
        printf 'fmuc model: %-24s broken variant: violation found as expected (%s) after %s states, %s s\n' \
          "$name" "${violation#FMUC VIOLATION }" "$stored" "$secs" ;;
      *)
        fail "$name" "broken variant caught by the wrong check: '${violation:-no FMUC message}' (expected $expect; see $dir/counterexample.txt)" ;;
    esac
  fi
done

if [ "$failures" -gt 0 ]; then
  echo "fmuc model: $failures configuration(s) failed" >&2
  exit 1
fi
echo "fmuc model: all configurations passed"
