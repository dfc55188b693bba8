#!/usr/bin/python3
"""Every released stanza is delivered or bounced, and the archive says which (issue 12,
item 1: delivery accounting on the far side).

Topology: portcullis, cert mode. b.test (the far server for a.test's traffic) loads
mod_smacks, so edge(high)'s link to it uses XEP-0198 acknowledgements, and accepts
stanzas up to s2s_stanza_size_limit = 10000 bytes only: a larger stanza passes the
guard's policy (65536) and makes b.test close the guard's link.

1. Acknowledged: alice@a.test sends bob@b.test a few messages; bob gets them, and the
   archive has `delivered` records whose proof is the XEP-0198 acknowledgement and
   whose seqs cover each of them.
2. A stanza the far server rejects, amid traffic on two streams: Prosody a.test's own
   stream (alice) and a raw S2S stream authenticated as a.test (SASL EXTERNAL),
   sending as carol's full JID so that bounces reach her. The raw stream pipelines
   legitimate messages, one of 40 KB, and more legitimate ones; alice sends hers at
   the same time. Every legitimate message must reach bob or be bounced to its sender
   with a wait-type error; the big one must not reach bob and must be bounced to carol.
3. kill -9 of edge(high) under a flood from alice: every message reaches bob or is
   bounced to alice; the supervisor restarts edge(high) and chat crosses again.
4. kill -9 of edge(low), the edge a.test's stream comes in on, under a flood from
   alice. a.test loads mod_smacks too, so the edge acknowledges (XEP-0198 h) only
   what the boundary has taken; Prosody bounces the rest to alice when the stream
   dies. Every message reaches bob or is bounced (any condition: these bounces are
   Prosody's), none silently lost.

For every message the guard released (a `released` decision), the archive must name
exactly one fate: its frame seq in a `delivered` record, or an `in-doubt` or
`undelivered` record. A `delivered` claim must be true (bob got it), and an
`in-doubt` one must have told the sender (a bounce). Messages both delivered and
bounced (processed by b.test before it dropped the link, not yet acknowledged:
at-least-once notification) are counted and reported. At the end the archive
verifies.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import procs  # noqa: E402
from harness.addresses import EDGE_LOW_IP, S2S_PORT  # noqa: E402
from harness.auditing import (archive_dir, export_json, kill_and_wait, pubkey, role_pid,  # noqa: E402
                              verify_ok, wait_log)
from harness.procs import HarnessError  # noqa: E402
from harness.rawstream import RawStream  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

A, B = "a.test", "b.test"
FAR_LIMIT = 10000
BIG_BODY = 40000    # over one TLS record (16 KiB): b.test counts bytes of a stanza still open after a read
RAW_BEFORE, RAW_AFTER = 30, 30     # legitimate raw-stream messages before and after the big one
ALICE_BURST = 60
FLOOD, KILL_AT, BURST, PACE = 150, 60, 20, 0.005
SETTLE = 45
WAIT_CONDITIONS = {"remote-server-timeout", "resource-constraint", "remote-server-not-found"}
SEQ_IN_TEXT = re.compile(r"frame seq=(\d+) ")


def seq_set(ranges):
    out = set()
    for part in filter(None, ranges.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def fates(records):
    """{frame seq of a low-to-high release: [fate, ...]} from the archive's accounting
    records (delivered / in-doubt / undelivered), and the delivered records' proofs."""
    out, proofs = {}, {}
    for r in records:
        if r["type"] != "connection":
            continue
        ev = r["record"]
        kind = ev.get("event")
        if kind == "delivered":
            notes = dict(ev.get("notes", []))
            if notes.get("from-edge") != "low":
                continue
            for s in seq_set(notes.get("seqs", "")):
                out.setdefault(s, []).append("delivered")
                proofs[s] = notes.get("proof")
        elif kind in ("in-doubt", "undelivered") and ev.get("side") == "high":
            m = SEQ_IN_TEXT.search(ev.get("text", ""))
            if m:
                out.setdefault(int(m.group(1)), []).append(kind)
    return out, proofs


def wait_accounted(ids, delivered_to, bounced_to, what):
    """Waits until each id in `ids` ({id: sender session}) reached bob or was bounced
    to its sender; returns (delivered ids, bounced ids {id: error})."""
    def snapshot():
        got = {m["id"] for m in delivered_to.messages() if m["id"] in ids}
        errs = {}
        for sess in bounced_to:
            for e in sess.errors():
                if e["id"] in ids:
                    errs.setdefault(e["id"], e)
        return got, errs

    try:
        procs.wait_until(lambda: all(i in snapshot()[0] or i in snapshot()[1] for i in ids),
                         SETTLE, what, interval=0.2)
    except HarnessError:
        got, errs = snapshot()
        missing = sorted(i for i in ids if i not in got and i not in errs)
        raise AssertionError("%s: %d message(s) neither delivered nor bounced within %d s: %s"
                             % (what, len(missing), SETTLE, missing[:30])) from None
    time.sleep(1.0)    # a late second outcome lands meanwhile
    return snapshot()


def flood_across_kill(ctx, fed, alice, bob, side, prefix):
    """alice floods bob; edge(`side`) gets SIGKILL after message KILL_AT. Every
    message must reach bob or be bounced to alice, none twice; the supervisor
    restarts the edge and chat crosses again. Returns (ids, delivered, bounced)."""
    bob_jid, alice_jid = fed.jid("b", "bob"), fed.jid("a", "alice")
    sup = fed.portcullis.pid
    victim = role_pid(sup, "edge", side)
    check(victim is not None, "no '--role edge --side %s' child of portcullisd %d" % (side, sup))
    log_at = len(open(fed.portcullis.log_path, errors="replace").read())
    flood = {}
    for i in range(FLOOD):
        flood[alice.send(bob_jid, "%s-%03d" % (prefix, i))] = alice
        if i == KILL_AT:
            kill_and_wait(victim)
        elif not (KILL_AT - BURST <= i < KILL_AT):
            time.sleep(PACE)
    ctx.step("SIGKILL to edge(%s) %d after flood message %d of %d" % (side, victim, KILL_AT, FLOOD))
    got, errs = wait_accounted(flood, bob, (alice,), "flood across an edge(%s) kill" % side)
    check(errs, "no flood message bounced: the edge(%s) kill had no effect" % side)
    dup = [m["id"] for m in bob.messages() if m["id"] in flood]
    check(len(dup) == len(set(dup)), "flood messages delivered twice")
    wait_log(fed, r"restarted edge\(%s\) \(pid" % side, timeout=15, start=log_at)
    alice.send(bob_jid, "after the %s kill" % side)
    bob.expect_message(alice_jid, "after the %s kill" % side, timeout=30)
    conds = sorted({"%s/%s" % (e["condition"], e["error_type"]) for e in errs.values()})
    ctx.step("flood: %d reached bob, %d bounced (%d both; %s); edge(%s) restarted, chat crosses"
             % (len(got), len(errs), len(set(got) & set(errs)), ", ".join(conds), side))
    return flood, got, errs


def test(ctx):
    b_opts = {"smacks": True, "extra_config": "s2s_stanza_size_limit = %d\n" % FAR_LIMIT}
    with Federation(ctx.subdir("delivery"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir, prosody_opts={"a": {"smacks": True}, "b": b_opts}) as fed:
        pki = fed.pki_dir
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        sent = {}          # id -> phase
        outcome = {}       # id -> (delivered to bob?, bounced?)
        with fed.session("a", "alice") as alice, fed.session("a", "carol") as carol, \
                fed.session("b", "bob") as bob:
            # ---- 1. acknowledged by XEP-0198 ----
            acked = [alice.send(bob_jid, "acked-%d" % i) for i in range(5)]
            for i in range(5):
                bob.expect_message(alice_jid, "acked-%d" % i, timeout=20)
            for i in acked:
                sent[i] = "acked"

            # b.test acknowledges them at our next <r/>: wait for that proof in the
            # (running) archive before phase 2 drops the link, or they are, rightly,
            # in doubt.
            def acked_proven():
                recs = export_json(ctx.build_dir, archive_dir(fed))
                fate_now, proofs_now = fates(recs)
                seqs = [r["record"]["frame_seq"] for r in recs if r["type"] == "decision"
                        and r["record"].get("stanza", {}).get("id") in acked]
                return len(seqs) == len(acked) and all(
                    proofs_now.get(s) == "XEP-0198 acknowledgement" for s in seqs)
            procs.wait_until(acked_proven, 15, "XEP-0198 proof of the first 5 messages in the archive",
                             interval=0.3)
            ctx.step("5 messages alice -> bob delivered over a link with stream management, "
                     "proven by its acknowledgement")

            # ---- 2. a stanza the far server rejects, amid two streams ----
            carol_full = str(carol.client.boundjid)
            raw_ids = ["raw-%d" % i for i in range(RAW_BEFORE + RAW_AFTER)]

            def raw_msg(mid, body):
                return ("<message from='%s' to='%s' type='chat' id='%s'><body>%s</body></message>"
                        % (carol_full, bob_jid, mid, body)).encode()
            big = raw_msg("raw-big", "B" * BIG_BODY)
            check(FAR_LIMIT < len(big) < 65536, "the big stanza is %d bytes" % len(big))
            with RawStream(EDGE_LOW_IP, S2S_PORT) as s:
                s.authenticate_external(A, B, os.path.join(pki, "a.test.pem"), os.path.join(pki, "a.test.key"),
                                        os.path.join(pki, "ca-low.pem"), timeout=5.0)
                b_log = fed.b.log_offset()
                burst = b"".join(raw_msg(m, "raw %s" % m) for m in raw_ids[:RAW_BEFORE]) + big + \
                    b"".join(raw_msg(m, "raw %s" % m) for m in raw_ids[RAW_BEFORE:])
                s.send(burst)
                alice_ids = [alice.send(bob_jid, "two-streams-%d" % i) for i in range(ALICE_BURST)]
                legit = {m: carol for m in raw_ids}
                legit.update({m: alice for m in alice_ids})
                got, errs = wait_accounted(dict(legit, **{"raw-big": carol}), bob, (alice, carol),
                                           "two streams around a rejected stanza")
                check(fed.b.log_contains("stanza-too-large", since=b_log),
                      "b.test did not reject the big stanza (no 'stanza-too-large' in its log): "
                      "the case did not happen")
                check("raw-big" not in got, "bob got the 40 KB stanza")
                check("raw-big" in errs, "carol got no bounce for the stanza b.test rejected")
                s.send(b"</stream:stream>")
                s.read_until_closed(5.0)
            bad = {m: (e["condition"], e["error_type"]) for m, e in errs.items()
                   if e["condition"] not in WAIT_CONDITIONS or e["error_type"] != "wait"}
            check(not bad, "bounces that are not wait-type delivery errors: %r" % bad)
            errs.pop("raw-big")
            for m in legit:
                sent[m] = "two-streams"
                outcome[m] = (m in got, m in errs)
            sent["raw-big"] = "big"
            outcome["raw-big"] = (False, True)
            both = sorted(m for m in legit if m in got and m in errs)
            ctx.step("b.test dropped the link at the 40 KB stanza; of %d legitimate messages on two "
                     "streams %d reached bob, %d were bounced (%d both); the big one bounced to carol"
                     % (len(legit), len(got), len(errs), len(both)))

            # ---- 3. kill -9 of edge(high) under a flood ----
            flood, got, errs = flood_across_kill(ctx, fed, alice, bob, "high", "flood")
            bad = {m: (e["condition"], e["error_type"]) for m, e in errs.items()
                   if e["condition"] not in WAIT_CONDITIONS or e["error_type"] != "wait"}
            check(not bad, "flood bounces that are not wait-type errors: %r" % bad)
            for m in flood:
                sent[m] = "flood"
                outcome[m] = (m in got, m in errs)
            for m in acked:
                outcome[m] = (True, False)

            # ---- 4. kill -9 of edge(low) under a flood ----
            check(fed.a.log_contains("Enabling stream management"),
                  "a.test did not enable stream management on its stream to edge(low)")
            flood_across_kill(ctx, fed, alice, bob, "low", "flood-low")

            time.sleep(1.5)    # the last delivered batch is recorded within a second
            # A bounce can reach alice after its message was counted as delivered
            # (an in-doubt link's bounces follow its end): she was told all the same.
            late = {e["id"] for e in alice.errors()}
            for m, (delivered, bounced) in list(outcome.items()):
                outcome[m] = (delivered, bounced or m in late)
        fed.portcullis.stop()

    # ---- the archive ----
    adir, key = archive_dir(fed), pubkey(fed)
    records = export_json(ctx.build_dir, adir, key=key)
    fate_of, proofs = fates(records)
    released = {}
    for r in records:
        d = r["record"]
        if r["type"] == "decision" and d.get("direction") == "low-to-high" and d.get("outcome") == "released":
            sid = d.get("stanza", {}).get("id", "")
            if sid in sent:
                released.setdefault(sid, []).append(d["frame_seq"])
    problems = []
    counts = {}
    for sid, seqs in released.items():
        for seq in seqs:
            f = fate_of.get(seq, [])
            delivered, bounced = outcome.get(sid, (None, None))
            counts[(sent[sid], tuple(f))] = counts.get((sent[sid], tuple(f)), 0) + 1
            if len(f) != 1:
                problems.append("%s (seq %d, %s): fates %r" % (sid, seq, sent[sid], f))
            elif f[0] == "delivered" and delivered is False:
                problems.append("%s (seq %d): archived as delivered, bob never got it" % (sid, seq))
            elif f[0] == "in-doubt" and bounced is False:
                problems.append("%s (seq %d): archived in doubt, its sender was not told" % (sid, seq))
    check(not problems, "%d released message(s) without exactly one true fate in the archive: %s"
          % (len(problems), problems[:15]))
    for sid in sent:
        if sent[sid] in ("acked", "big"):
            check(sid in released, "%s has no released decision" % sid)
    check(all(proofs.get(s) == "XEP-0198 acknowledgement" for sid in acked for s in released[sid]),
          "the first messages were not proven by XEP-0198: %r"
          % [proofs.get(s) for sid in acked for s in released[sid]])
    check(fate_of.get(released["raw-big"][0]) == ["in-doubt"],
          "the stanza b.test rejected is archived as %r, not in doubt" % fate_of.get(released["raw-big"][0]))
    ctx.step("archive: every one of %d released messages has exactly one fate, each true: %s"
             % (sum(len(v) for v in released.values()),
                ", ".join("%s %s: %d" % (ph, "/".join(f) or "none", n) for (ph, f), n in sorted(counts.items()))))
    m, _ = verify_ok(ctx.build_dir, adir, key)
    ctx.step("verify exits 0: %s" % m.group(0))


if __name__ == "__main__":
    run_test(test)
