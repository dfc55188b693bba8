#!/usr/bin/python3
"""Federated rooms vs plain MUC through the guard, measured in one run.

One federation through the real sandwich (Prosody a.test low, b.test high,
portcullisd with rooms.low.test federated with rooms.high.test). alice (low)
talks in two rooms, each with the same N occupants on the high side:
  * FMUC: ops@rooms.low.test, federated with ops@rooms.high.test, where the N
    high users joined their own side's room;
  * plain MUC (the baseline): room@conference.a.test, a Prosody room on the low
    side that the N high users joined directly through the guard.
For N = 1, 10, 50 it reports, per groupchat message, the stanzas and bytes the
filter had to judge and archive (from the audit archive), FMUC vs plain; then
the latency from alice's send to one far occupant's receipt (p50/p99, one in
flight, N = 10), FMUC vs plain; then the time from the filter's return after an
outage to the far half having every one of M messages said meanwhile
(backfill), with each delivered once.

    /usr/bin/python3 test/bench/bench_fmuc.py --build-dir build [--messages 10] [--backfill 1000]

Figures go to stdout and, raw, to <run dir>/bench_fmuc.json. Everything runs on
the same cores (2 in CI): compare the two kinds measured in the same run only.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import appliance, auditing, procs  # noqa: E402
from harness.topology import Federation, fmuc_policy_text, fmuc_rooms_xml, write_pseudonym_key  # noqa: E402

FMUC_LOW, FMUC_HIGH = "ops@rooms.low.test", "ops@rooms.high.test"
PLAIN = "room@conference.a.test"


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def crossing(records, tag):
    """(stanzas, bytes) of the decision records whose original stanza holds `tag`."""
    hits = [r for r in auditing.decisions(records) if tag in (r.get("original") or "")]
    return len(hits), sum(len((r.get("original") or "").encode()) for r in hits)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--messages", type=int, default=10, help="messages per room and N")
    ap.add_argument("--latency", type=int, default=30, help="messages for the latency figure")
    ap.add_argument("--backfill", type=int, default=1000, help="messages said during the outage")
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    run = args.run_dir or appliance.run_dir("bench_fmuc")
    os.makedirs(run, exist_ok=True)
    write_pseudonym_key(run)
    sizes = (1, 10, 50)
    users = {"alice": "alice-pw"}
    users.update({"u%d" % i: "u%d-pw" % i for i in range(1, max(sizes) + 1)})
    out = {"messages": args.messages, "sizes": {}}
    fed = Federation(run, topology="portcullis", mode="cert", build_dir=build, users=users, log_level="info",
                     rooms_xml=fmuc_rooms_xml(history=args.backfill + 100, ping_ms=5000, retry_ms=500),
                     policy_text=fmuc_policy_text(), supervision_attrs='restart-backoff-ms="4000"')
    try:
        fed.start()
        alice = fed.session("a", "alice").start()
        alice.join_room(FMUC_LOW, "alice", timeout=30)
        alice.join_room(PLAIN, "alice", timeout=30)
        far = []
        for n in sizes:
            while len(far) < n:
                s = fed.session("b", "u%d" % (len(far) + 1), timeout=30).start()
                s.join_room(FMUC_HIGH, s.jid.split("@")[0], timeout=30)
                s.join_room(PLAIN, s.jid.split("@")[0], timeout=30)
                far.append(s)
            time.sleep(1.0)
            for kind, room, far_room in (("fmuc", FMUC_LOW, FMUC_HIGH), ("plain", PLAIN, PLAIN)):
                for k in range(args.messages):
                    body = "bench-%s-n%d-%d" % (kind, n, k)
                    alice.send_groupchat(room, body)
                    for s in far:
                        s.expect_groupchat(far_room, "alice", body, timeout=60)
            recs = auditing.export_json(build, auditing.archive_dir(fed))
            row = {}
            for kind in ("fmuc", "plain"):
                st, by = crossing(recs, "bench-%s-n%d-" % (kind, n))
                row[kind] = {"stanzas_per_message": st / args.messages, "bytes_per_message": by / args.messages}
            out["sizes"][n] = row
            print("N=%-3d per message across the filter: FMUC %5.1f stanzas %8.0f bytes | plain MUC %5.1f stanzas "
                  "%8.0f bytes | ratio plain/FMUC %.1f stanzas, %.1f bytes" % (
                      n, row["fmuc"]["stanzas_per_message"], row["fmuc"]["bytes_per_message"],
                      row["plain"]["stanzas_per_message"], row["plain"]["bytes_per_message"],
                      row["plain"]["stanzas_per_message"] / max(row["fmuc"]["stanzas_per_message"], 1e-9),
                      row["plain"]["bytes_per_message"] / max(row["fmuc"]["bytes_per_message"], 1e-9)), flush=True)

        # Latency, one in flight, to the first far occupant (N stays at its last size).
        lat = {}
        probe = far[0]
        for kind, room, far_room in (("fmuc", FMUC_LOW, FMUC_HIGH), ("plain", PLAIN, PLAIN)):
            xs = []
            for k in range(args.latency):
                body = "lat-%s-%d" % (kind, k)
                t0 = time.monotonic()
                alice.send_groupchat(room, body)
                probe.expect_groupchat(far_room, "alice", body, timeout=30)
                xs.append((time.monotonic() - t0) * 1000)
            for s in far[1:]:
                for k in range(args.latency):
                    s.expect_groupchat(far_room, "alice", "lat-%s-%d" % (kind, k), timeout=60)
            lat[kind] = {"p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99)}
        out["latency_n%d" % len(far)] = lat
        print("latency alice -> far occupant (N=%d, one in flight, %d messages): FMUC p50 %.1f ms p99 %.1f ms | "
              "plain MUC p50 %.1f ms p99 %.1f ms | ratio FMUC/plain p50 %.2f" % (
                  len(far), args.latency, lat["fmuc"]["p50_ms"], lat["fmuc"]["p99_ms"], lat["plain"]["p50_ms"],
                  lat["plain"]["p99_ms"], lat["fmuc"]["p50_ms"] / max(lat["plain"]["p50_ms"], 1e-9)), flush=True)

        # Backfill: the filter dies, alice says M messages, the filter comes back.
        for s in far[1:]:
            s.close()
        far = far[:1]
        log_start = len(auditing.log_text(fed))
        auditing.kill_and_wait(auditing.role_pid(fed.portcullis.pid, "filter"))
        probe.expect_presence(FMUC_HIGH + "/alice", "unavailable", 333, timeout=15)
        for k in range(args.backfill):
            alice.send_groupchat(FMUC_LOW, "outage-%d" % k)
        alice.expect_groupchat(FMUC_LOW, "alice", "outage-%d" % (args.backfill - 1), timeout=60)
        m = auditing.wait_log(fed, r"edge\(high\) info: filter channel up", timeout=30, start=log_start)
        stamp = m.string[m.string.rfind("\n", 0, m.start()) + 1:].split(" ", 1)[0]
        t_up = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
        want = {"outage-%d" % k for k in range(args.backfill)}

        def have():
            return [x for x in probe.messages() if x["body"] in want]
        deadline = time.time() + 120
        while len({x["body"] for x in have()}) < len(want) and time.time() < deadline:
            time.sleep(0.01)
        t_done = time.time()
        got = have()
        once = len({x["body"] for x in got})
        dups = len(got) - once
        out["backfill"] = {"messages": args.backfill, "seconds": t_done - t_up, "delivered": once, "duplicates": dups}
        print("backfill: %d messages said during a filter outage reached the far half %.2f s after the filter was "
              "back (%d of %d delivered, %d duplicates; %.0f messages/s)" % (
                  args.backfill, t_done - t_up, once, args.backfill, dups, once / max(t_done - t_up, 1e-9)), flush=True)
        for s in far + [alice]:
            s.close()
    finally:
        fed.stop()
        procs.stop_all()
        appliance.remove_created_users()
        appliance.remove_routes()
    with open(os.path.join(run, "bench_fmuc.json"), "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
