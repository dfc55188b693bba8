#!/usr/bin/python3
"""The guard stage with real Prosody traffic: the schema guard (broad profile) and
an external guard (portcullis-example-guard), chained in both directions.

Config: each direction has <schema name="schema" profile="schemas/xmpp/broad.xsd"/>
then <external name="ext-up|ext-down" timeout-ms="500"> running the example guard
through a small wrapper script (written into the run dir) that adds the test-mode
options waiting in a FIFO as it starts (read without blocking): guards may write
no file (Landlock), so "once" is the FIFO's: the test queues the options for
exactly the next start, and the instance Portcullis starts after a failure
finds the FIFO empty and is a healthy guard again. The test switches the low->high guard's mode by
killing the running guard and feeding the restarted one (Portcullis restarts it:
"program restarted (pid N)").

Asserted (in this order; MUC comes last so that a profile blocking real
Prosody MUC traffic does not hide the other results):
  (a) schema guard: chat both ways and MUC (join, groupchat both ways, leave)
      cross; no decision record in the archive has a blocking guard (if the
      profile blocks real Prosody traffic, the failure names each blocked
      stanza with the guard's reason and bytes). A message alice sends with a payload in an unknown namespace
      is blocked: alice gets policy-violation, bob gets nothing, and its
      decision record is `rejected` with guard "schema" pass=false and a reason.
  (b) external guard: normal traffic passes (both directions, ext-up/ext-down
      pass=true in the records); a body with the guard's blocked word is blocked
      by the guard's own healthy answer (no restart); in the test modes crash
      (--crash-after 0), hang (--hang, answered by the 500 ms timeout), garbage
      (--garbage) and mutate (--mutate) the stanza is BLOCKED (alice gets an
      error, bob nothing), the record names the failure, Portcullis logs it and
      restarts the guard, and the next stanza passes again.
"""

import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import procs  # noqa: E402
from harness.auditing import (archive_dir, by_stanza_id, decisions, export_json, gone,  # noqa: E402
                              log_text, wait_log)
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PROFILE = os.path.join(REPO, "schemas", "xmpp", "broad.xsd")
TIMEOUT_MS = 500

WRAPPER = """#!/bin/sh
# guard-wrapper.sh MODEFIFO GUARD [ARGS...]: runs GUARD ARGS plus the test-mode
# options waiting in MODEFIFO (read without blocking; none: a healthy guard).
modefifo=$1
shift
mode=$(dd if="$modefifo" iflag=nonblock bs=4096 count=1 2>/dev/null)
exec "$@" $mode
"""


def open_mode_fifo(fifo):
    """The test's end of a guard's mode FIFO, opened read-write so that writes
    wait in the pipe for the guard's next start without blocking anyone."""
    return os.open(fifo, os.O_RDWR | os.O_NONBLOCK)


def feed_mode(fd, opts):
    """Queues `opts` for exactly the next start of the guard (one atomic write)."""
    os.write(fd, (opts + "\n").encode())

# mode -> (options, regex of the guard's recorded reason)
MODES = [
    ("crash", "--crash-after 0", r"^guard program died \(killed by signal 6\)"),
    ("hang", "--hang", r"^guard program did not answer within %d ms$" % TIMEOUT_MS),
    ("garbage", "--garbage", r"^guard program sent a garbled answer"),
    ("mutate", "--mutate", r"^guard program changed the stanza"),
]


def guards_xml(run_dir, guard_bin):
    wrapper = os.path.join(run_dir, "guard-wrapper.sh")
    with open(wrapper, "w") as f:
        f.write(WRAPPER)
    # Run by the filter's user (separated mode), which reads the mode FIFOs.
    os.chmod(wrapper, 0o755)
    out = ["  <guards>"]
    for frm, to, name in (("low", "high", "ext-up"), ("high", "low", "ext-down")):
        mode_file = os.path.join(run_dir, "%s.mode" % name)
        os.mkfifo(mode_file)
        os.chmod(mode_file, 0o644)
        word = "forbidden-" + ("up" if frm == "low" else "down")
        out += ['    <direction from="%s" to="%s">' % (frm, to),
                # The copy next to the config (appliance.prepare): the filter's user
                # may not reach the source tree.
                '      <schema name="schema" profile="%s"/>' % os.path.join(run_dir, "schemas", "xmpp",
                                                                           os.path.basename(PROFILE)),
                '      <external name="%s" program="%s" timeout-ms="%d">' % (name, wrapper,
                                                                              TIMEOUT_MS),
                "        <arg>%s</arg>" % mode_file,
                "        <arg>%s</arg>" % guard_bin,
                "        <arg>--block-word</arg>",
                "        <arg>%s</arg>" % word,
                "      </external>",
                "    </direction>"]
    out.append("  </guards>")
    return "\n".join(out)


def guard_pid(fed, name):
    """The pid of guard `name` from the newest 'started'/'restarted' log line."""
    pids = re.findall(r"guard %s: (?:started \S+ \(pid|program restarted \(pid) (\d+)"
                      % re.escape(name), log_text(fed))
    check(pids, "no 'guard %s: started' line in the log" % name)
    return int(pids[-1])


def blocked_records(fed, build_dir, since_seq=0):
    """Decision records (after `since_seq`) with a guard that did not pass."""
    out = []
    for r in decisions(export_json(build_dir, archive_dir(fed))):
        if r["seq"] > since_seq and any(not g.get("pass") for g in r["record"].get("guards", [])):
            out.append(r)
    return out


def describe(rows):
    return "; ".join("seq %d %s %s: %s [%s]" % (
        r["seq"], r["record"].get("direction"),
        ",".join("%s=%s(%s)" % (g["name"], g["pass"], g.get("reason", ""))
                 for g in r["record"].get("guards", [])),
        r["record"].get("stanza", {}).get("kind"), r.get("original", "")[:400]) for r in rows)


def guard_of(rec, name):
    gs = [g for g in rec["record"].get("guards", []) if g["name"] == name]
    return gs[0] if gs else None


def test(ctx):
    run_dir = ctx.subdir("guards")
    guard_bin = os.path.join(ctx.build_dir, "tools", "example-guard", "portcullis-example-guard")
    check(os.access(guard_bin, os.X_OK), "example guard not built: %s" % guard_bin)
    # Installed where the filter's user can reach it (the build tree may not be).
    installed = os.path.join(run_dir, "portcullis-example-guard")
    shutil.copy(guard_bin, installed)
    os.chmod(installed, 0o755)
    guard_bin = installed
    check(os.path.exists(PROFILE), "no profile %s" % PROFILE)
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    guards_xml=guards_xml(run_dir, guard_bin)) as fed:
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        for name in ("ext-up", "ext-down"):
            wait_log(fed, r"guard %s: started " % name)
        ctx.step("portcullisd runs with schema (broad) + external guards both ways (pids %d, %d)"
                 % (guard_pid(fed, "ext-up"), guard_pid(fed, "ext-down")))
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            # ---- (a) normal chat and MUC pass the chain ----
            alice.send(bob_jid, "hello bob through the guards")
            bob.expect_message(alice_jid, "hello bob through the guards", timeout=20)
            bob.send(alice_jid, "hello alice through the guards")
            alice.expect_message(bob_jid, "hello alice through the guards", timeout=20)
            blocked = blocked_records(fed, ctx.build_dir)
            check(not blocked, "real Prosody chat was blocked by a guard: %s" % describe(blocked))
            recs = decisions(export_json(ctx.build_dir, archive_dir(fed)))
            kinds = {}
            for r in recs:
                k = (r["record"]["direction"], r["record"]["stanza"]["kind"])
                kinds[k] = kinds.get(k, 0) + 1
                names = [g["name"] for g in r["record"].get("guards", [])]
                if r["record"]["outcome"] == "released":
                    want = ["schema", "ext-up" if r["record"]["direction"] == "low-to-high"
                            else "ext-down"]
                    check(names == want, "released record seq %d ran guards %r, not %r"
                          % (r["seq"], names, want))
            ctx.step("(a) chat both ways passes both guards; "
                     "%d decisions, none blocked by a guard; by direction/kind: %s"
                     % (len(recs), ", ".join("%s %s x%d" % (d, k, n)
                                            for (d, k), n in sorted(kinds.items()))))
            last_seq = max(r["seq"] for r in recs)

            # ---- (a) a stanza outside the profile ----
            odd_id = "odd-ns-1"
            alice.send_raw('<message to="%s" id="%s" type="chat"><body>odd payload</body>'
                           '<payload xmlns="urn:example:not-in-the-profile">x</payload>'
                           '</message>' % (bob_jid, odd_id))
            e = alice.expect_error(frm=bob_jid, timeout=15)
            check(e["id"] == odd_id and e["condition"] == "policy-violation",
                  "unknown-namespace message: unexpected error %r" % e)
            bob.expect_no_message(alice_jid, wait=1.0)
            rows = by_stanza_id(export_json(ctx.build_dir, archive_dir(fed))).get(odd_id, [])
            check(len(rows) == 1, "%d decision records for the unknown-namespace message"
                  % len(rows))
            g = guard_of(rows[0], "schema")
            check(rows[0]["record"]["outcome"] == "rejected" and g is not None and
                  g["pass"] is False and g.get("reason"),
                  "unknown-namespace message record: outcome %s, schema guard %r"
                  % (rows[0]["record"]["outcome"], g))
            check(guard_of(rows[0], "ext-up") is None,
                  "the external guard ran after the schema guard blocked")
            check("urn:example:not-in-the-profile" in rows[0].get("original", ""),
                  "the record does not hold the original stanza with its payload")
            ctx.step("(a) unknown-namespace payload blocked: alice got %s/%s %r, bob nothing; "
                     "record seq %d rejected, schema pass=false: %r"
                     % (e["condition"], e["error_type"], e["text"], rows[0]["seq"],
                        g["reason"][:160]))

            # ---- (b) the external guard's own block (healthy answer) ----
            pid_before = guard_pid(fed, "ext-up")
            word_id = alice.send(bob_jid, "this says forbidden-up here")
            e = alice.expect_error(frm=bob_jid, timeout=15)
            check(e["id"] == word_id and e["condition"] == "policy-violation",
                  "blocked word: unexpected error %r" % e)
            bob.expect_no_message(alice_jid, wait=0.5)
            rows = by_stanza_id(export_json(ctx.build_dir, archive_dir(fed))).get(word_id, [])
            g = rows and guard_of(rows[0], "ext-up")
            check(g and g["pass"] is False and
                  g["reason"] == "blocked by guard program: body contains a blocked word",
                  "blocked word: ext-up result %r" % (g,))
            check(guard_pid(fed, "ext-up") == pid_before and not gone(pid_before),
                  "the guard was restarted after a healthy block")
            alice.send(bob_jid, "fine after the word")
            bob.expect_message(alice_jid, "fine after the word", timeout=15)
            ctx.step("(b) example guard's own block recorded (%r); guard pid %d kept"
                     % (g["reason"], pid_before))

            # ---- (b) failure modes ----
            mode_fd = open_mode_fifo(os.path.join(run_dir, "ext-up.mode"))
            for mode, opts, reason_rx in MODES:
                mark = len(log_text(fed))
                old = guard_pid(fed, "ext-up")
                feed_mode(mode_fd, opts)
                os.kill(old, signal.SIGKILL)
                procs.wait_until(lambda: gone(old), 5, "guard %d to die" % old, interval=0.01)
                m = wait_log(fed, r"guard ext-up: program restarted \(pid (\d+)\)", timeout=10,
                             start=mark)
                bad_pid = int(m.group(1))
                check(bad_pid != old, "restart reused pid %d" % old)
                t0 = time.monotonic()
                mid = alice.send(bob_jid, "probe in mode %s" % mode)
                e = alice.expect_error(frm=bob_jid, timeout=15)
                dt = time.monotonic() - t0
                check(e["id"] == mid and e["condition"] == "policy-violation",
                      "mode %s: unexpected error %r" % (mode, e))
                bob.expect_no_message(alice_jid, wait=0.3)
                mark2 = m.end()
                fail = wait_log(fed, r"filter warning: guard ext-up: (.*); restarting in \d+ ms",
                                timeout=10, start=mark2)
                re_m = wait_log(fed, r"guard ext-up: program restarted \(pid (\d+)\)",
                                timeout=10, start=fail.end())
                rows = by_stanza_id(export_json(ctx.build_dir, archive_dir(fed))).get(mid, [])
                check(len(rows) == 1, "mode %s: %d records for the probe" % (mode, len(rows)))
                g = guard_of(rows[0], "ext-up")
                check(rows[0]["record"]["outcome"] == "rejected" and g and g["pass"] is False
                      and re.search(reason_rx, g.get("reason", "")),
                      "mode %s: record outcome %s, ext-up %r (expected reason /%s/)"
                      % (mode, rows[0]["record"]["outcome"], g, reason_rx))
                check(re.search(reason_rx, fail.group(1)),
                      "mode %s: log reason %r" % (mode, fail.group(1)))
                alice.send(bob_jid, "after mode %s" % mode)
                bob.expect_message(alice_jid, "after mode %s" % mode, timeout=15)
                ctx.step("(b) %s: blocked in %.2f s, recorded %r; restarted as pid %s; next "
                         "stanza passes" % (mode, dt, g["reason"], re_m.group(1)))

            # The high->low guard was untouched and still passes.
            bob.send(alice_jid, "down at the end")
            alice.expect_message(bob_jid, "down at the end", timeout=15)
            check(not bob.errors(), "bob got errors: %r" % bob.errors())
            last_seq = max(r["seq"] for r in decisions(export_json(ctx.build_dir,
                                                                   archive_dir(fed))))
            unexpected = [r for r in blocked_records(fed, ctx.build_dir, last_seq)
                          if r["record"].get("stanza", {}).get("id") not in
                          [odd_id, word_id] and "probe in mode" not in r.get("original", "")]
            check(not unexpected, "other stanzas blocked by a guard: %s" % describe(unexpected))
            fed.portcullis.check_alive()
            ctx.step("ext-down still passes; no other stanza was blocked")

            # ---- (a) MUC through the schema profile (last: a profile that blocks real
            # Prosody MUC traffic must not hide the results above) ----
            room = fed.room("b")
            try:
                bob.join_room(room, "bob")
                alice.join_room(room, "alice", timeout=10)
                alice.send_groupchat(room, "room hello from alice")
                bob.expect_groupchat(room, "alice", "room hello from alice", timeout=10)
                alice.expect_groupchat(room, "alice", "room hello from alice", timeout=10)
                bob.send_groupchat(room, "room hello from bob")
                alice.expect_groupchat(room, "bob", "room hello from bob", timeout=10)
                alice.leave_room(room, "alice")
                time.sleep(1.0)   # the unavailable presence and its echo cross
            except Exception as e:
                blocked = blocked_records(fed, ctx.build_dir, last_seq)
                raise AssertionError("MUC through the guards failed (%s); stanzas blocked by a "
                                     "guard: %s" % (e, describe(blocked) or "none")) from None
            blocked = blocked_records(fed, ctx.build_dir, last_seq)
            check(not blocked, "real Prosody MUC traffic was blocked by a guard: %s"
                  % describe(blocked))
            ctx.step("(a) MUC (join, groupchat both ways, leave) passes both guards")


if __name__ == "__main__":
    run_test(test)
