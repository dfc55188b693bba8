#!/usr/bin/env bash
# Command-line manners of one program (docs/command-line.md), run on the built binary:
#   --help       exit 0, usage on stdout (first line "usage: NAME ..."), with the exit statuses
#   --version    exit 0, exactly "NAME (Portcullis) VERSION" on stdout
#   each BAD argument list: exit 2, nothing on stdout, one line "NAME: ... (see NAME --help)" on stderr
# Usage: check_cli.sh NAME BINARY VERSION [BAD-ARGS]...   (each BAD-ARGS one word list, split on
#        spaces; "(none)" for no arguments at all)
set -uo pipefail
name=$1 binary=$2 version=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $name: $*"; failures=$((failures + 1)); }

run() {  # run ARGS...: sets status, out, err
  "$binary" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  status=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
}

run --help
[ "$status" = 0 ] || fail "--help exited $status"
case "$out" in "usage: $name "*) ;; *) fail "--help: first line is not 'usage: $name ...': $(head -n1 "$tmp/out")" ;; esac
grep -q '^exit status: 0 ' "$tmp/out" || fail "--help does not state the exit statuses"
[ -z "$err" ] || fail "--help wrote to stderr: $err"

run --version
[ "$status" = 0 ] || fail "--version exited $status"
[ "$out" = "$name (Portcullis) $version" ] || fail "--version printed '$out', expected '$name (Portcullis) $version'"

for bad in "$@"; do
  if [ "$bad" = "(none)" ]; then
    run
  else
    # shellcheck disable=SC2086  # split on purpose: one argument list per word group
    run $bad
  fi
  [ "$status" = 2 ] || fail "'$bad' exited $status, expected 2 (usage)"
  [ -z "$out" ] || fail "'$bad' wrote to stdout: $out"
  [ "$(wc -l <"$tmp/err")" = 1 ] || fail "'$bad': expected one line on stderr, got: $err"
  case "$err" in "$name: "*"(see $name --help)") ;; *) fail "'$bad': stderr is not '$name: ... (see $name --help)': $err" ;; esac
done

[ "$failures" = 0 ] || exit 1
echo "check_cli: $name: --help, --version and $# bad command line(s) as documented"
