#!/usr/bin/env bash
# Installs every Debian 12 package that building Portcullis and running its tests need.
# Idempotent: packages already installed are skipped, `apt-get update` runs only when an
# install fails (empty or stale package lists). After installing the real peers (Prosody,
# ngIRCd, biboumi) it stops and disables the system's own instances, because a system daemon
# bound to the wildcard address would block the test servers' 127.0.0.x:5222/5269/6667 binds
# (and a system biboumi would keep dialling a component port and its identd port 113).
# On failure it prints one readable line on stderr and exits non-zero.
#
# Usage: deploy/install-deps.sh            (as root, or with sudo available)
set -euo pipefail

BUILD_PKGS=(g++ cmake ninja-build pkg-config ccache libxml2-dev libxerces-c-dev libssl-dev libseccomp-dev libnftables-dev libcap-ng-dev
            libsodium-dev libpoco-dev catch2 openssl libunistring-dev libidn2-dev systemd lowdown groff-base spin nftables
            clang libclang-rt-14-dev)   # clang: the ASan/UBSan unit run and the libFuzzer targets (test/run-sanitized.sh)
PEER_PKGS=(prosody lua-unbound python3-slixmpp ngircd python3-irc
           biboumi)   # biboumi: the XMPP<->IRC gateway test/bench/bench_irc.py compares against

die() { echo "install-deps: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available"
  SUDO=(sudo)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${BUILD_PKGS[@]}" "${PEER_PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done

# Stop a system instance of a daemon the package may have started. Only the system's own
# pid file is used (never a process name), so test instances with private pid files survive.
stop_system_daemon() {
  local svc=$1 pidfile=$2 confdir=$3
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl stop "$svc" >/dev/null 2>&1 || true
    "${SUDO[@]}" systemctl disable "$svc" >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$svc" ]; then
    "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
  if [ -f "$pidfile" ]; then
    local pid
    pid=$(tr -dc '0-9' <"$pidfile" || true)
    # Only a process started from the system config dir (not one of ours with --config).
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
       ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '--config\|-f /'; then
      "${SUDO[@]}" kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      echo "install-deps: stopped system $svc (pid $pid, $confdir)"
    fi
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >"$log" 2>&1; then
    # Most likely empty or stale package lists: update once, then try again.
    "${SUDO[@]}" apt-get update -q >"$log" 2>&1 ||
      die "apt-get update failed: $(grep -E '^(E|Err):' "$log" | head -n1)"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >"$log" 2>&1 ||
      die "apt-get install failed: $(grep -E '^E:' "$log" | head -n1)"
  fi
  for p in "${missing[@]}"; do installed "$p" || die "package $p is still not installed"; done
  need_stop=1
else
  need_stop=0
fi

# Act on the system daemons right after installing them, or whenever their system pid file
# shows them running.
if [ "$need_stop" = 1 ] || [ -f /run/prosody/prosody.pid ]; then
  stop_system_daemon prosody /run/prosody/prosody.pid /etc/prosody
fi
if [ "$need_stop" = 1 ] || [ -f /run/ngircd/ngircd.pid ]; then
  stop_system_daemon ngircd /run/ngircd/ngircd.pid /etc/ngircd
fi
# biboumi ships only a systemd unit (Type=notify, no pid file, no init script), so it is
# stopped and disabled through systemctl; the pid file argument is never there. The harness
# runs its own with a private config file (test/integration/harness/biboumi.py).
if [ "$need_stop" = 1 ] || { [ -d /run/systemd/system ] && systemctl is-active --quiet biboumi 2>/dev/null; }; then
  stop_system_daemon biboumi /run/biboumi/biboumi.pid /etc/biboumi
fi

# Pitfall: without lua-unbound Prosody ignores the harness's private hosts files.
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || die "/usr/bin/python3 cannot import slixmpp"
[ -n "$(dpkg -L lua-unbound 2>/dev/null | grep 'lunbound\.so$')" ] ||
  die "lua-unbound is not installed (Prosody would not read the test hosts files)"
echo "install-deps: all dependencies present"
