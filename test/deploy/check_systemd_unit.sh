#!/usr/bin/env bash
# Checks deploy/systemd/portcullisd.service with systemd-analyze verify: every
# directive known, every command runnable. The unit names the installed paths,
# so a copy pointing at the built binary is checked. Any output is a failure.
set -euo pipefail
unit=$1
binary=$2
command -v systemd-analyze >/dev/null || { echo "check_systemd_unit: systemd-analyze not found (Debian package systemd)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s#/usr/sbin/portcullisd#$binary#g" "$unit" > "$tmp/portcullisd.service"
out=$(cd "$tmp" && systemd-analyze verify "$tmp/portcullisd.service" 2>&1 || true)
if [ -n "$out" ]; then
  echo "check_systemd_unit: $out"
  exit 1
fi
echo "check_systemd_unit: $unit verified"
