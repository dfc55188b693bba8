#!/usr/bin/env bash
# The generated man pages: each formats without a groff warning, has NAME and
# SYNOPSIS, carries the project version, and each program's page has EXIT STATUS.
# Usage: check_man_pages.sh VERSION PAGE...
set -uo pipefail
version=$1
shift
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
for page in "$@"; do
  [ -s "$page" ] || { fail "$page: missing or empty"; continue; }
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  [ -z "$warnings" ] || fail "$page: groff: $warnings"
  text=$(MANWIDTH=80 man -l "$page" 2>&1)
  for section in NAME SYNOPSIS; do
    grep -q "^$section\$" <<<"$text" || fail "$page: no $section section"
  done
  case "$page" in
    *.1 | *.8) grep -q '^EXIT STATUS$' <<<"$text" || fail "$page: no EXIT STATUS section" ;;
  esac
  grep -q "Portcullis $version" <<<"$text" || fail "$page: does not name Portcullis $version"
done
[ "$failures" = 0 ] || exit 1
echo "check_man_pages: $# pages format cleanly"
