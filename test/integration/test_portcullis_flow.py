#!/usr/bin/python3
"""Flow control through the real sandwich: under load the guard slows its
senders instead of bouncing their stanzas (issue 9).

An S2S load generator (a.test, test/bench/s2s_load: TLS + SASL EXTERNAL) sends
through portcullisd (separated mode, durable audit) to a counting S2S receiver
(b.test and conference.b.test). Asserted:

  1. flood: 30,000 messages on one stream as fast as the guard takes them are
     all delivered, none bounced, and each has a released decision record;
  2. slow far server: the receiver stops reading its conference.b.test stream
     for 4 s while the generator sends to both domains. Every message of both
     arrives, none is bounced; the b.test ones all arrive during the stall
     (a slow server slows only its own senders); the generator could not push
     the conference.b.test ones out before the stall ended (it was slowed, not
     buffered without bound);
  3. bounded wait: with <limits overload-wait-ms="1000"> on the low side and a
     6 s stall, the stalled stream's stanzas are bounced with
     resource-constraint after the wait, every one either delivered or bounced
     (none lost), the b.test stream still gets everything, and the archive's
     overload records count exactly the bounces.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance, auditing, procs, s2sload  # noqa: E402
from harness.addresses import B_MUC, EDGE_HIGH_IP, EDGE_LOW_IP  # noqa: E402
from harness.pki import make_pki  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import start_portcullis, write_portcullis_config  # noqa: E402

BOB = "bob@b.test"
ROOM = "room@" + B_MUC


def start_guard(ctx, d, pki, overload_wait_ms=None):
    cfg = write_portcullis_config(os.path.join(d, "portcullis.xml"), pki, "cert", None, d)
    with open(cfg) as f:
        text = f.read().replace('level="debug"', 'level="info"')
    if overload_wait_ms is not None:
        # On the low side (where the generator's streams arrive), before its
        # peer rows (the schema's order).
        at = text.index("    <peer ", text.index('<side name="low">'))
        text = text[:at] + '    <limits overload-wait-ms="%d"/>\n' % overload_wait_ms + text[at:]
    with open(cfg, "w") as f:
        f.write(text)
    return start_portcullis(ctx.build_dir, cfg)


def overload_bounces(ctx, d):
    """The stanzas the archive's overload records say were bounced."""
    total = 0
    for r in auditing.export_json(ctx.build_dir, os.path.join(d, "audit")):
        rec = r.get("record") or {}
        if rec.get("event") == "overload":
            total += int(rec["text"].split(" ", 2)[1])
    return total


def released_ids(ctx, d):
    ids = set()
    for r in auditing.decisions(auditing.export_json(ctx.build_dir, os.path.join(d, "audit"))):
        rec = r["record"]
        if rec.get("outcome") == "released":
            ids.add((rec.get("stanza") or {}).get("id"))
    return ids


def body(ctx):
    pki = make_pki(os.path.join(ctx.run_dir, "pki"))
    s2sload.ca_bundle(pki)
    b = ctx.build_dir
    check(os.access(s2sload.binary(b), os.X_OK), "s2s_load not built: %s" % s2sload.binary(b))

    # 1. flood on one stream
    d = ctx.subdir("flood")
    pc = start_guard(ctx, d, pki)
    recv = s2sload.LoadPeer.receiver(b, pki, d, peer_ip=EDGE_HIGH_IP)
    gen = s2sload.LoadPeer.generator(b, pki, d, [BOB], 30000, peer_ip=EDGE_LOW_IP)
    g = gen.result(timeout=180)
    recv.stop()
    r = recv.result()
    pc.stop()
    ctx.step("flood: sent %d, delivered %d (%.0f/s), errors %s" % (g["sent"], r["received"],
                                                                   r["received_per_second"], g["errors"]))
    check(g["sent"] == 30000, "flood: the generator sent %d of 30000 (log %s)" % (g["sent"], gen.proc.log_path))
    check(g["errors_total"] == 0, "flood: %d stanza(s) bounced under load: %s" % (g["errors_total"], g["errors"]))
    check(r["received"] == 30000, "flood: %d of 30000 delivered" % r["received"])
    ids = released_ids(ctx, d)
    missing = [i for i in ("s0-0", "s0-14999", "s0-29999") if i not in ids]
    check(len(ids) == 30000 and not missing,
          "flood: %d released decision records (missing e.g. %s)" % (len(ids), missing))

    # 2. a slow far server slows its own senders only
    d = ctx.subdir("slow")
    pc = start_guard(ctx, d, pki)
    recv = s2sload.LoadPeer.receiver(b, pki, d, peer_ip=EDGE_HIGH_IP, stall_domain=B_MUC, stall_ms=4000)
    n = 20000
    gen = s2sload.LoadPeer.generator(b, pki, d, [ROOM, BOB], n, peer_ip=EDGE_LOW_IP, size=1000, quiet_ms=3000)
    g = gen.result(timeout=180)
    recv.stop()
    r = recv.result()
    pc.stop()
    got = r["received_by_domain"]
    stall_end = r["stall_ended_ns"]
    check(r["stall_started_ns"] > 0 and stall_end > r["stall_started_ns"], "slow: the receiver never stalled")
    bob_done = (r["last_rx_ns_by_domain"].get("b.test", 0) - r["stall_started_ns"]) / 1e9
    room_sent = (g["last_sent_ns_by_target"][ROOM] - r["stall_started_ns"]) / 1e9
    ctx.step("slow: b.test %d/%d (last %.1f s into the 4 s stall), %s %d/%d (generator's last send %.1f s in), "
             "errors %s" % (got.get("b.test", 0), n, bob_done, B_MUC, got.get(B_MUC, 0), n, room_sent, g["errors"]))
    check(g["errors_total"] == 0, "slow: %d stanza(s) bounced: %s" % (g["errors_total"], g["errors"]))
    check(got.get("b.test", 0) == n and got.get(B_MUC, 0) == n,
          "slow: delivered b.test %d, %s %d, of %d each" % (got.get("b.test", 0), B_MUC, got.get(B_MUC, 0), n))
    check(r["last_rx_ns_by_domain"]["b.test"] < stall_end,
          "slow: the b.test stream waited for the stalled one (its last message %.1f s after the stall began, "
          "the stall lasted 4 s)" % bob_done)
    check(g["last_sent_ns_by_target"][ROOM] > stall_end - 500_000_000,
          "slow: the generator pushed all %d messages for the stalled domain out %.1f s into the 4 s stall: "
          "nothing held it back" % (n, room_sent))

    # 3. the operator's bound on the wait
    d = ctx.subdir("bounded")
    pc = start_guard(ctx, d, pki, overload_wait_ms=1000)
    recv = s2sload.LoadPeer.receiver(b, pki, d, peer_ip=EDGE_HIGH_IP, stall_domain=B_MUC, stall_ms=6000)
    # Quiet for longer than the stall: what the stalled stream still holds arrives before the end.
    gen = s2sload.LoadPeer.generator(b, pki, d, [ROOM, BOB], n, peer_ip=EDGE_LOW_IP, size=1000, quiet_ms=8000)
    g = gen.result(timeout=180)
    recv.stop()
    r = recv.result()
    got = r["received_by_domain"]
    bounced = g["errors"].get("resource-constraint", 0)
    ctx.step("bounded: %s delivered %d, bounced %d (resource-constraint), b.test %d; errors %s"
             % (B_MUC, got.get(B_MUC, 0), bounced, got.get("b.test", 0), g["errors"]))
    check(bounced > 0, "bounded: nothing was bounced after the 1 s wait during a 6 s stall")
    check(set(g["errors"]) == {"resource-constraint"}, "bounded: unexpected errors %s" % g["errors"])
    check(got.get(B_MUC, 0) + bounced == n,
          "bounded: %d delivered + %d bounced != %d sent: stanzas lost" % (got.get(B_MUC, 0), bounced, n))
    check(got.get("b.test", 0) == n, "bounded: b.test got %d of %d" % (got.get("b.test", 0), n))
    pc.stop()   # the edges report what is left when streams end
    recorded = overload_bounces(ctx, d)
    check(recorded == bounced, "bounded: the archive's overload records count %d, the sender got %d errors"
          % (recorded, bounced))
    ctx.step("bounded: the archive's overload records count all %d" % recorded)


if __name__ == "__main__":
    run_test(body)
