"""Child processes of a test: started, tracked and always killed.

Every process the harness starts is registered here. They are terminated
(SIGTERM, then SIGKILL after a grace period) by `stop_all()`, which runs from the
test runner's `finally`, from `atexit`, and on SIGTERM/SIGINT/SIGHUP. Each child
also gets PR_SET_PDEATHSIG=SIGTERM, so a runner killed with SIGKILL (for
example by a CTest timeout) does not leave servers behind holding the ports.
"""

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import time

_PR_SET_PDEATHSIG = 1
_registry = []  # ManagedProcess, in start order


class HarnessError(Exception):
    """A harness step failed (a process did not start, a wait ran out, ...)."""


def _set_pdeathsig():
    # Runs in the child between fork and exec. Only meaningful because children are
    # always spawned from the main thread (the signal follows the forking thread).
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass
    os.setpgrp()  # own process group: a ^C at the terminal goes to the runner only


class ManagedProcess:
    """One child process with its output in a log file."""

    def __init__(self, name, argv, log_path, cwd=None, env=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = str(log_path)
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                                      preexec_fn=_set_pdeathsig, close_fds=True)
        _registry.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def check_alive(self):
        """Raises HarnessError (with the log tail) if the process has exited."""
        if not self.alive():
            raise HarnessError("%s exited with status %s; log %s: %s" % (
                self.name, self.popen.returncode, self.log_path, tail(self.log_path, 3)))

    def stop(self, grace=5.0):
        """SIGTERM, wait up to `grace` seconds, then SIGKILL. Idempotent."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
            except ProcessLookupError:
                pass
        if not self._log.closed:
            self._log.close()
        if self in _registry:
            _registry.remove(self)
        return self.popen.returncode


def stop_all():
    """Stops every registered process, newest first."""
    for p in reversed(list(_registry)):
        try:
            p.stop()
        except Exception:  # keep stopping the others
            pass


def _on_signal(signum, _frame):
    stop_all()
    raise SystemExit(128 + signum)


atexit.register(stop_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def port_accepts(ip, port, timeout=0.5):
    """True if a TCP connect to ip:port succeeds now."""
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(ip, port, timeout, proc=None):
    """Waits until ip:port accepts connections; bounded by `timeout` seconds.
    Raises HarnessError if it does not, or if `proc` dies meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        if port_accepts(ip, port):
            return
        time.sleep(0.05)
    if proc is not None:
        proc.check_alive()
    raise HarnessError("%s:%d did not accept connections within %.0f s" % (ip, port, timeout))


def ensure_port_free(ip, port):
    """Raises HarnessError if something already listens on ip:port (a stale server
    from an earlier run, or a system daemon bound to the wildcard address)."""
    if port_accepts(ip, port, timeout=0.3):
        raise HarnessError("%s:%d is already in use (stale test server or system daemon? "
                           "see `ss -ltnp`)" % (ip, port))


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls `predicate` until it returns a true value (returned) or `timeout` runs
    out (HarnessError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def tail(path, lines=20):
    """Last `lines` lines of a text file, joined with ' | ' (for one-line messages)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return " | ".join(data.strip().splitlines()[-lines:])
