#!/usr/bin/python3
"""Every process of the running sandwich is confined by seccomp, and the edges'
allow-list holds under real S2S traffic.

1. Both edges log "started for side ... (seccomp allow-list installed)"; each edge
   is one thread, and every thread of both edges and of the filter shows
   `Seccomp: 2` (filter mode) and `NoNewPrivs: 1` in /proc/PID/task/*/status.
2. Chat crosses both ways (TLS, SASL EXTERNAL, outbound links made under the
   allow-list) and again after the links are idle.
3. Afterwards the same three children run (no edge was killed by SIGSYS and
   restarted), the log has no "killed by signal" line, and, where the kernel
   log can be read, it has no seccomp record for an edge's pid.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.auditing import role_pid  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402


def children_by_role(sup_pid):
    """{"edge-low": pid, "edge-high": pid, "filter": pid} of portcullisd's children."""
    found = {"edge-low": role_pid(sup_pid, "edge", "low"), "edge-high": role_pid(sup_pid, "edge", "high"),
             "filter": role_pid(sup_pid, "filter")}
    return {role: pid for role, pid in found.items() if pid is not None}


def task_status(pid):
    """{tid: {field: value}} from /proc/PID/task/*/status."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        out[int(tid)] = fields
    return out


def log_text(fed):
    with open(fed.portcullis.log_path, errors="replace") as f:
        return f.read()


def test(ctx):
    with Federation(ctx.subdir("seccomp"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir) as fed:
        sup = fed.portcullis.pid
        kids = children_by_role(sup)
        check(set(kids) == {"edge-low", "edge-high", "filter"}, "children of portcullisd: %r" % kids)
        for side in ("low", "high"):
            check(re.search(r"edge\(%s\) info: started for side %s \(seccomp allow-list installed\)" % (side, side),
                            log_text(fed)), "edge(%s) did not log its allow-list" % side)
        for role, pid in sorted(kids.items()):
            tasks = task_status(pid)
            if role.startswith("edge"):
                check(len(tasks) == 1, "%s (pid %d) has %d threads; the allow-list assumes one" % (role, pid, len(tasks)))
            for tid, st in tasks.items():
                check(st.get("Seccomp") == "2", "%s thread %d: Seccomp: %s" % (role, tid, st.get("Seccomp")))
                check(st.get("NoNewPrivs") == "1", "%s thread %d: NoNewPrivs: %s" % (role, tid, st.get("NoNewPrivs")))
            ctx.step("%s (pid %d): %d thread(s), all Seccomp: 2, NoNewPrivs: 1" % (role, pid, len(tasks)))

        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            for n in range(3):
                alice.send(bob_jid, "low to high %d" % n)
                bob.expect_message(alice_jid, "low to high %d" % n, timeout=20)
                bob.send(alice_jid, "high to low %d" % n)
                alice.expect_message(bob_jid, "high to low %d" % n, timeout=20)
            ctx.step("chat crossed three times each way under the allow-list")

        after = children_by_role(sup)
        check(after == kids, "children changed during the test: %r -> %r" % (kids, after))
        text = log_text(fed)
        check("killed by signal" not in text, "a child was killed: %s" % [
            l for l in text.splitlines() if "killed by signal" in l][:3])
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=20)
        if dmesg.returncode == 0:
            edge_pids = {kids["edge-low"], kids["edge-high"]}
            records = [l for l in dmesg.stdout.splitlines()
                       if "type=1326" in l and any(" pid=%d " % p in l for p in edge_pids)]
            check(not records, "the kernel logged seccomp actions of an edge: %s" % records[:3])
            ctx.step("same children after traffic; no kill in the log; no seccomp record of an edge in the kernel log")
        else:
            ctx.step("same children after traffic; no kill in the log (kernel log not readable: not checked)")


if __name__ == "__main__":
    run_test(test)
