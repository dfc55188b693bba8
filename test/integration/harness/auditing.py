"""Helpers for the audit and guard interop tests: the portcullis-audit tool, the
archive of a Federation run, portcullisd's log and its child processes.

    recs = export_json(ctx.build_dir, archive_dir(fed))      # every record (JSON Lines)
    rc, out, err = verify(ctx.build_dir, archive_dir(fed), pubkey(fed))
    wait_log(fed, r"ALARM audit: ...", timeout=10)

Every call is bounded (subprocess timeouts, polling deadlines).
"""

import json
import os
import signal
import re
import subprocess
import time

from .procs import HarnessError
from .topology import audit_tool
from . import procs


def archive_dir(fed):
    """The archive directory of a Federation with the default <audit dir="audit"/>."""
    return os.path.join(fed.run_dir, "audit")


def pubkey(fed):
    """The archive's public key (made by topology.ensure_audit_keys)."""
    return os.path.join(fed.run_dir, "keys", "audit.pub")


def run_audit(build_dir, *args, timeout=60):
    """Runs `portcullis-audit ARGS...`; returns the CompletedProcess (text)."""
    try:
        return subprocess.run([audit_tool(build_dir)] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HarnessError("portcullis-audit %s did not finish within %d s"
                           % (" ".join(str(a) for a in args), timeout)) from None


def export_json(build_dir, directory, *query, key=None):
    """Every record `portcullis-audit export DIR --format json [query]` prints, as
    dicts ({seq, time, time_us, type, segment_file, offset, record, original[,
    released]}). With `key` (the archive's public key file) the archive must verify:
    exit 0. Without, the tool cannot authenticate it (nor a running writer's unsigned
    tail) and exits 3 with its warning on stderr; that is accepted, for tests that
    read the records (those that need a verified archive pass `key` or call
    verify_ok). Fails on any other exit or a line that is not JSON."""
    r = run_audit(build_dir, "export", directory, "--format", "json", *query,
                  *(["--pubkey", key] if key else []))
    expected = 0 if key else 3
    if r.returncode != expected or (expected == 3 and "WARNING" not in r.stderr):
        raise AssertionError("portcullis-audit export exited %d, expected %d: %s"
                             % (r.returncode, expected, r.stderr.strip()))
    out = []
    for n, line in enumerate(r.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise AssertionError("export --format json line %d is not JSON (%s): %r"
                                 % (n, e, line[:200])) from None
    return out


def decisions(records):
    """The decision records among export_json() output."""
    return [r for r in records if r["type"] == "decision"]


def by_stanza_id(records):
    """{stanza id: [decision export rows]}"""
    out = {}
    for r in decisions(records):
        sid = r["record"].get("stanza", {}).get("id", "")
        out.setdefault(sid, []).append(r)
    return out


def verify(build_dir, directory, key):
    """(exit status, stdout, stderr) of `portcullis-audit verify DIR --pubkey KEY`."""
    r = run_audit(build_dir, "verify", directory, "--pubkey", key)
    return r.returncode, r.stdout, r.stderr


VERIFY_OK = re.compile(r"^OK: (\d+) records in (\d+) segments, last seq (\d+), "
                       r"(\d+) checkpoints verified$", re.M)


def verify_ok(build_dir, directory, key):
    """Runs verify, asserts exit 0 and the OK line; returns (match, stdout)."""
    rc, out, err = verify(build_dir, directory, key)
    m = VERIFY_OK.search(out)
    if rc != 0 or m is None:
        raise AssertionError("portcullis-audit verify %s exited %d: %s | %s"
                             % (directory, rc, out.strip().replace("\n", " | "),
                                err.strip().splitlines()[-1:] if err.strip() else ""))
    return m, out


# ---- portcullisd's log ------------------------------------------------------------

def log_text(fed):
    with open(fed.portcullis.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def wait_log(fed, pattern, timeout=10, start=0):
    """The first match of `pattern` in portcullisd's log at or after character
    `start`; waits (bounded) for it to appear."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(log_text(fed), start)
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError("portcullisd log has no match for %r within %.0f s (%s)"
                                 % (pattern, timeout, fed.portcullis.log_path))
        time.sleep(0.05)


# ---- portcullisd's children -------------------------------------------------------

def child_pids(pid):
    kids = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return kids
    for task in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def role_pid(sup_pid, role, side=None):
    """The child of portcullisd running '--role ROLE' (filter, edge...), and with
    `side`, '--side SIDE' (low, high); or None."""
    def arg(argv, name):
        return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None

    for k in child_pids(sup_pid):
        try:
            with open("/proc/%d/cmdline" % k, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if arg(argv, b"--role") == role.encode() and (side is None or arg(argv, b"--side") == side.encode()):
            return k
    return None


def gone(pid):
    """True once `pid` has exited (reaped, or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def kill_and_wait(pid, timeout=5):
    """SIGKILL `pid` and wait (bounded) until it is gone; returns the time it died."""
    os.kill(pid, signal.SIGKILL)
    procs.wait_until(lambda: gone(pid), timeout, "process %d to die" % pid, interval=0.001)
    return time.time()
