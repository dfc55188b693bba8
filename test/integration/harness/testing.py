"""Test-script convention: each test/integration/test_*.py calls run_test(body).

run_test parses --build-dir (default $PORTCULLIS_BUILD_DIR, else the current
directory), gives the test a fresh run dir /tmp/portcullis-interop/<test name>/ (linked from
<build>/integration-runs/<test name>),
runs body(ctx), stops every child process whatever happens, and exits 0 printing
"PASS <name>", or non-zero with one last line "FAIL <name>: <reason> (logs: <dir>)".
"""

import argparse
import os
import shutil
import sys
import time
import traceback

from . import appliance, procs
from .procs import HarnessError


class TestContext:
    def __init__(self, name, run_dir, build_dir, args):
        self.name = name
        self.run_dir = run_dir
        self.build_dir = build_dir
        self.args = args
        self._t0 = time.monotonic()

    def subdir(self, name):
        """A fresh directory under the run dir (one per phase of a test)."""
        d = os.path.join(self.run_dir, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def step(self, text):
        """Prints a progress line (shown by ctest --output-on-failure / -V)."""
        print("  [%6.1f s] %s" % (time.monotonic() - self._t0, text), flush=True)


def check(condition, message):
    """Fails the test with `message` unless `condition` holds."""
    if not condition:
        raise AssertionError(message)


def run_test(body, name=None, add_args=None):
    """Runs body(ctx) as a test and exits the process with its verdict."""
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    ap = argparse.ArgumentParser(description=name)
    ap.add_argument("--build-dir", default=os.environ.get("PORTCULLIS_BUILD_DIR", os.getcwd()))
    if add_args is not None:
        add_args(ap)
    args = ap.parse_args()
    build_dir = os.path.abspath(args.build_dir)
    # Under /tmp, not the build tree: the appliance's service users must reach it
    # (a checkout may sit under a 0700 home). The build tree gets a link to it.
    run_dir = appliance.run_dir(name)
    link = os.path.join(build_dir, "integration-runs", name)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.islink(link) or os.path.isfile(link):
        os.unlink(link)
    elif os.path.isdir(link):
        shutil.rmtree(link, ignore_errors=True)
    os.symlink(run_dir, link)
    ctx = TestContext(name, run_dir, build_dir, args)
    code = 0
    try:
        body(ctx)
        print("PASS %s (%.1f s)" % (name, time.monotonic() - ctx._t0), flush=True)
    except (AssertionError, HarnessError) as e:
        code = 1
        msg = str(e).replace("\n", " | ")
        print("FAIL %s: %s (logs: %s)" % (name, msg, run_dir), flush=True)
    except BaseException as e:  # a harness bug or an interrupt: still one last line
        code = 2
        traceback.print_exc()
        print("FAIL %s: %s: %s (logs: %s)" % (name, type(e).__name__, e, run_dir), flush=True)
    finally:
        procs.stop_all()
        appliance.remove_created_users()
        appliance.remove_routes()
    sys.stdout.flush()
    os._exit(code)  # do not wait for the client loop thread
