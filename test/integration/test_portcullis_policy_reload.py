#!/usr/bin/python3
"""Policy reload on SIGHUP, all or nothing, with real S2S traffic.

1. At start the filter logs "policy <version> sha256 <hash> loaded" and every
   decision carries policy=<version>/<12 hex>.
2. The policy file is replaced by a BROKEN one (a bad attribute value) and
   portcullisd gets SIGHUP: the filter logs "policy reload failed, keeping version
   harness-1: <file>:<line>:<col>: ..." and chat still crosses under harness-1.
3. The file is replaced by a GOOD policy that denies low->high (no filters in that
   direction), SIGHUP: the filter logs the new version and hash; alice's message to
   bob is now refused with policy-violation and never arrives, while high->low
   still crosses; the decision names the new policy.
"""

import hashlib
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.testing import check, run_test  # noqa: E402
from harness.topology import DEFAULT_ALLOWED, Federation, portcullis_policy_text  # noqa: E402


def log_text(fed):
    with open(fed.portcullis.log_path, errors="replace") as f:
        return f.read()


def wait_log(fed, pattern, timeout=10):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while True:
        m = rx.search(log_text(fed))
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError("portcullisd log has no match for %r (%s)" % (pattern, fed.portcullis.log_path))
        time.sleep(0.05)


def write(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)   # the officer's editor may not be this careful; the filter copes either way
    return hashlib.sha256(text.encode()).hexdigest()


def test(ctx):
    with Federation(ctx.subdir("reload"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir) as fed:
        policy = os.path.join(fed.run_dir, "policy.xml")
        with open(policy, "rb") as f:
            first_hash = hashlib.sha256(f.read()).hexdigest()
        wait_log(fed, r"filter info: policy harness-1 sha256 %s loaded" % first_hash)
        ctx.step("start: policy harness-1 sha256 %s... loaded" % first_hash[:12])

        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(bob_jid, "before reload")
            bob.expect_message(alice_jid, "before reload", timeout=20)
            wait_log(fed, r"decision .* released by low-high-1 policy=harness-1/%s " % first_hash[:12])
            ctx.step("start: chat crossed, decision names policy=harness-1/%s" % first_hash[:12])

            # 2. broken policy: kept running
            broken = portcullis_policy_text(DEFAULT_ALLOWED, version="broken-2").replace(
                'max-bytes="65536"', 'max-bytes="64k"', 1)
            write(policy, broken)
            os.kill(fed.portcullis.pid, signal.SIGHUP)
            m = wait_log(fed, r"filter error: policy reload failed, keeping version harness-1: "
                              r"(\S+):(\d+):(\d+): (.*)")
            check(m.group(1) == policy, "broken: error names %s, not the policy file" % m.group(1))
            check("max-bytes" in m.group(4), "broken: unexpected reason %r" % m.group(4))
            ctx.step("broken: 'policy reload failed, keeping version harness-1: ...:%s:%s: %s'"
                     % (m.group(2), m.group(3), m.group(4)[:60]))
            alice.send(bob_jid, "after broken reload")
            bob.expect_message(alice_jid, "after broken reload", timeout=20)
            ctx.step("broken: chat still crosses under harness-1")

            # 3. good policy that denies low->high
            deny = {("high", "low"): DEFAULT_ALLOWED[("high", "low")]}
            new_hash = write(policy, portcullis_policy_text(deny, version="deny-up-3"))
            os.kill(fed.portcullis.pid, signal.SIGHUP)
            wait_log(fed, r"filter info: policy deny-up-3 sha256 %s loaded from \S+ "
                          r"\(reload, replacing version harness-1\)" % new_hash)
            ctx.step("good: policy deny-up-3 sha256 %s... loaded, replacing harness-1" % new_hash[:12])
            alice.send(bob_jid, "must not cross")
            err = alice.expect_error(frm=bob_jid, timeout=20)
            check(err["condition"] == "policy-violation",
                  "good: expected policy-violation, got %s (%s)" % (err["condition"], err["text"]))
            bob.expect_no_message(alice_jid, wait=1.5)
            wait_log(fed, r"decision .* rejected by default-deny policy=deny-up-3/%s " % new_hash[:12])
            ctx.step("good: low->high now refused with policy-violation by deny-up-3")
            bob.send(alice_jid, "down still works")
            alice.expect_message(bob_jid, "down still works", timeout=20)
            ctx.step("good: high->low still crosses")


if __name__ == "__main__":
    run_test(test)
