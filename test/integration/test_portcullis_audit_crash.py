#!/usr/bin/python3
"""Audit before release survives a crash: kill -9 of the filter under load.

Topology: portcullis, cert mode, default audit archive (<run>/audit) and default
supervision. alice@a.test floods bob@b.test with FLOOD messages; right after an
unpaced burst (stanzas in flight) the filter child of portcullisd (the process
that owns the archive writer) gets SIGKILL; the supervisor restarts it and the
flood goes on.

Asserted, against the archive (`portcullis-audit export --format json`):
  * every message was delivered to bob or bounced to alice with a wait-type
    error (nothing lost silently), none delivered twice;
  * EVERY message bob received has a decision record with its stanza id,
    outcome released, direction low-to-high, and the archived original bytes
    carry its body (audit before release, across the crash);
  * no message both released-in-the-archive and bounced was sent after the kill
    (a record made durable just before the kill whose frame never left is
    counted and reported);
  * the restarted writer continued the archive (a `start` admin record after the
    kill); after portcullisd stops, `portcullis-audit verify` exits 0 with its
    OK line (notes, e.g. a recovered tail, are printed in the step log).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import procs  # noqa: E402
from harness.auditing import (archive_dir, by_stanza_id, export_json, kill_and_wait, pubkey,  # noqa: E402
                              role_pid, verify_ok, wait_log)
from harness.procs import HarnessError  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

FLOOD = 200
PACE = 0.01          # s between paced messages
KILL_AT = 70         # the filter is killed right after this message
BURST = 30           # unpaced messages right before the kill
SETTLE_TIMEOUT = 30
WAIT_CONDITIONS = {"remote-server-timeout", "resource-constraint"}


def test(ctx):
    with Federation(ctx.subdir("crash"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir) as fed:
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(bob_jid, "warm-up a->b")
            bob.expect_message(alice_jid, "warm-up a->b", timeout=20)
            bob.send(alice_jid, "warm-up b->a")
            alice.expect_message(bob_jid, "warm-up b->a", timeout=20)
            sup = fed.portcullis.pid
            old_filter = role_pid(sup, "filter")
            check(old_filter is not None, "no '--role filter' child of portcullisd %d" % sup)
            ctx.step("chat crosses both ways; filter (archive writer) is pid %d" % old_filter)

            sent = {}            # id -> (index, body, unix send time)
            t_kill = None
            for i in range(FLOOD):
                body = "crash-flood-%03d" % i
                sent[alice.send(bob_jid, body)] = (i, body, time.time())
                if i == KILL_AT:
                    t_kill = time.time()
                    kill_and_wait(old_filter)
                    ctx.step("SIGKILL to filter %d after message %d (%d unpaced before it)"
                             % (old_filter, i, BURST))
                elif not (KILL_AT - BURST <= i < KILL_AT):
                    time.sleep(PACE)
            ctx.step("flood of %d messages sent" % FLOOD)

            def snapshot():
                delivered = {}
                for m in bob.messages():
                    if m["from"].split("/")[0] == alice_jid and m["id"] in sent:
                        delivered.setdefault(m["id"], []).append(m)
                bounced = {}
                for e in alice.errors():
                    if e["id"] in sent:
                        bounced.setdefault(e["id"], []).append(e)
                return delivered, bounced

            def accounted():
                delivered, bounced = snapshot()
                return all(mid in delivered or mid in bounced for mid in sent)
            try:
                procs.wait_until(accounted, SETTLE_TIMEOUT, "every message delivered or bounced",
                                 interval=0.1)
            except HarnessError:
                delivered, bounced = snapshot()
                missing = sorted(sent[m][0] for m in sent if m not in delivered and m not in bounced)
                raise AssertionError("%d message(s) neither delivered nor bounced within %d s: "
                                     "indexes %s" % (len(missing), SETTLE_TIMEOUT, missing[:40]))
            time.sleep(1.0)   # a late second outcome (released and bounced) lands meanwhile
            delivered, bounced = snapshot()

            # The supervisor restarted the filter and it writes the archive again.
            wait_log(fed, r"portcullisd info: restarted filter \(pid \d+", timeout=10)
            alice.send(bob_jid, "after the crash a->b")
            after = bob.expect_message(alice_jid, "after the crash a->b", timeout=15)
            bob.send(alice_jid, "after the crash b->a")
            alice.expect_message(bob_jid, "after the crash b->a", timeout=15)
            new_filter = role_pid(sup, "filter")
            ctx.step("filter restarted as pid %s; chat crosses both ways again" % new_filter)

            dup = {sent[m][0]: len(v) for m, v in delivered.items() if len(v) > 1}
            check(not dup, "messages delivered more than once: %r" % dup)
            bad = {}
            for mid, errs in bounced.items():
                for e in errs:
                    if e["condition"] not in WAIT_CONDITIONS or e["error_type"] != "wait":
                        bad[sent[mid][0]] = (e["condition"], e["error_type"], e["text"])
            check(not bad, "bounces other than wait-type filter-unavailable errors: %r" % bad)
            check(bounced, "no message bounced: the kill had no effect")
            both = sorted(sent[m][0] for m in bounced if m in delivered)
            check(all(i <= KILL_AT for i in both), "messages sent after the kill were both "
                  "delivered and bounced: %r" % both)
            ctx.step("%d sent: %d delivered, %d bounced with wait-type errors (%d both: %r)"
                     % (len(sent), len(delivered), len(bounced), len(both), both))

        # ---- the archive, after a clean stop (the writer closes its segment) ----
        fed.portcullis.stop()
        adir, key = archive_dir(fed), pubkey(fed)
        records = export_json(ctx.build_dir, adir)
        ids = by_stanza_id(records)
        unaudited, wrong = [], []
        for mid in sorted(delivered, key=lambda m: sent[m][0]):
            rows = [r for r in ids.get(mid, []) if r["record"].get("direction") == "low-to-high"]
            released = [r for r in rows if r["record"].get("outcome") == "released"]
            if not released:
                unaudited.append((sent[mid][0], [r["record"].get("outcome") for r in rows]))
            elif sent[mid][1] not in released[0].get("original", ""):
                wrong.append(sent[mid][0])
        check(not unaudited, "messages delivered to bob without a durable 'released' decision "
              "record (index, outcomes found): %r" % unaudited[:20])
        check(not wrong, "archived original bytes do not carry the delivered body: %r" % wrong)
        check(after["id"] in ids, "the message after the crash has no decision record")
        # Bounced ones: what the archive says about them (none may say released
        # unless it was durable just before the kill and its frame died with the filter).
        rel_bounced = sorted(sent[m][0] for m in bounced if m not in delivered and any(
            r["record"].get("outcome") == "released" for r in ids.get(m, [])))
        check(all(i <= KILL_AT for i in rel_bounced),
              "messages sent after the kill are 'released' in the archive but bounced: %r"
              % rel_bounced)
        # Those the dead filter recorded as released were bounced by the edge; once
        # the filter is back, the edge reports each one, so the archive says so too.
        undelivered = [r["record"].get("text", "") for r in records
                       if r["type"] == "connection" and r["record"].get("event") == "in-doubt"]
        unreported = [sent[m][0] for m in bounced if m not in delivered and any(
            r["record"].get("outcome") == "released" for r in ids.get(m, []))
            and not any(("id=%s " % m) in t for t in undelivered)]
        check(not unreported, "released-in-the-archive but bounced, with no 'in-doubt' "
              "record: %r" % unreported)
        no_record = sum(1 for m in bounced if m not in ids)
        starts = [r for r in records if r["type"] == "admin" and r["record"].get("event") == "start"]
        check(len(starts) >= 2, "the restarted filter wrote no 'start' admin record (%d)"
              % len(starts))
        recov = [r["record"].get("text") for r in records
                 if r["type"] == "admin" and r["record"].get("event") == "recovery"]
        ctx.step("archive: %d 'in-doubt' records from the edges" % len(undelivered))
        ctx.step("archive: all %d delivered ids have a released decision record with their "
                 "body; of %d bounced: %d rejected in the archive, %d without a record (filter "
                 "dead), %d released-then-lost at the kill %r; %d writer starts; recovery: %s"
                 % (len(delivered), len(bounced),
                    sum(1 for m in bounced if any(r["record"].get("outcome") == "rejected"
                                                 for r in ids.get(m, []))),
                    no_record, len(rel_bounced), rel_bounced, len(starts), recov or "none"))
        m, out = verify_ok(ctx.build_dir, adir, key)
        notes = [ln for ln in out.splitlines() if ln.startswith("note:")]
        ctx.step("verify exits 0: %s%s" % (m.group(0), ("; " + " | ".join(notes)) if notes else ""))


if __name__ == "__main__":
    run_test(test)
