#!/usr/bin/python3
"""The guard alone under load, next to the same load without it, in one run.

An S2S load generator (a.test, test/bench/s2s_load: TLS + SASL EXTERNAL, built
from the guard's own S2S code, ~1.4 us of CPU per message) sends to a counting
S2S receiver (b.test), either DIRECT or THROUGH the full sandwich (portcullisd
in separated mode: pipeline, durable audit archive, and for the "broad" rows
the schema guard stage with schemas/xmpp/broad.xsd in both directions).

Reported, each guard figure next to the direct one measured in the same run:
  * flood, 1 stream and 4 streams (--messages each): delivered/s, bounced,
    lost (sent - delivered - bounced);
  * the same flood through the broad-profile guard stage;
  * CPU microseconds per crossing stanza of edge(low), the filter (with its
    audit writer and guard stage) and edge(high), from /proc, over the flood;
  * latency p50/p99 at fixed rates (5k/s and 20k/s, --rate-seconds each);
  * RSS per idle authenticated inbound S2S stream of edge(low), with
    --idle-streams streams (TLS state included), and the same for the
    receiver (the guard's S2S code without the sandwich) as the baseline.

    /usr/bin/python3 test/bench/bench_guard.py --build-dir build [--messages 200000]

Raw figures go to <run dir>/bench_guard.json. Needs root (separated mode).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
os.environ.setdefault("PORTCULLIS_TEST_NET", "127.0.40")

from harness import appliance, auditing, procs, s2sload  # noqa: E402
from harness.addresses import A_IP, B_IP, EDGE_HIGH_IP, EDGE_LOW_IP  # noqa: E402
from harness.pki import make_pki  # noqa: E402
from harness.topology import start_portcullis, write_portcullis_config  # noqa: E402

BOB = "bob@b.test"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime+stime of pid and every descendant, in seconds."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            continue
        todo += auditing.child_pids(p)
    return total


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fdatasync_ms(directory, n=300, size=600):
    """The disk's floor under audit-before-release: p50/p99 of one append of a
    record-sized block plus fdatasync, in `directory` (the archive's filesystem)."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    out = []
    try:
        block = b"x" * size
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            out.append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        os.unlink(path)
    out.sort()
    return {"p50_ms": out[len(out) // 2], "p99_ms": out[int(len(out) * 0.99)]}


def guards_xml(run_dir):
    profile = os.path.join(run_dir, "schemas", "xmpp", "broad.xsd")
    out = ["  <guards>"]
    for frm, to in (("low", "high"), ("high", "low")):
        out += ['    <direction from="%s" to="%s">' % (frm, to),
                '      <schema name="schema" profile="%s"/>' % profile, "    </direction>"]
    out.append("  </guards>")
    return "\n".join(out)


class Guard:
    def __init__(self, build, run, pki, broad=False, max_inbound=None, flow_window=None):
        os.makedirs(run, exist_ok=True)
        cfg = write_portcullis_config(os.path.join(run, "portcullis.xml"), pki, "cert", None, run,
                                      guards_xml=guards_xml(run) if broad else None)
        with open(cfg) as f:
            text = f.read().replace('level="debug"', 'level="info"')
        limits = (' max-inbound="%d"' % max_inbound if max_inbound else "") + \
            (' flow-window="%d"' % flow_window if flow_window else "")
        if limits:
            at = text.index("    <peer ", text.index('<side name="low">'))
            text = text[:at] + '    <limits%s/>\n' % limits + text[at:]
        with open(cfg, "w") as f:
            f.write(text)
        self.proc = start_portcullis(build, cfg)
        self.pids = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(self.pids) < 3:
            for name, role, side in (("edge_low", "edge", "low"), ("filter", "filter", None),
                                     ("edge_high", "edge", "high")):
                pid = auditing.role_pid(self.proc.pid, role, side)
                if pid:
                    self.pids[name] = pid
            time.sleep(0.1)

    def cpu(self):
        return {k: cpu_s(p) for k, p in self.pids.items()}

    def stop(self):
        self.proc.stop()


def run_load(build, run, pki, name, guard, **kw):
    """One generator run into a fresh receiver; returns (gen, recv, cpu_delta or None)."""
    d = os.path.join(run, name)
    os.makedirs(d, exist_ok=True)
    recv = s2sload.LoadPeer.receiver(build, pki, d, peer_ip=EDGE_HIGH_IP if guard else A_IP)
    before = guard.cpu() if guard else None
    gen = s2sload.LoadPeer.generator(build, pki, d, [BOB], peer_ip=EDGE_LOW_IP if guard else B_IP,
                                     quiet_ms=2000, **kw)
    g = gen.result(timeout=600)
    # CPU over the run, minus the quiet tail (idle).
    after = guard.cpu() if guard else None
    recv.stop()
    r = recv.result()
    cpu = {k: after[k] - before[k] for k in after} if guard else None
    return g, r, cpu


def row(g, r):
    bounced = g["errors_total"] + g["local_bounces"]
    return {"sent": g["sent"], "delivered": r["received"], "delivered_per_s": r["received_per_second"],
            "bounced": bounced, "lost": g["sent"] - r["received"] - bounced,
            "p50_ms": r["latency_ms_p50"], "p99_ms": r["latency_ms_p99"], "generator_cpu_s": g["cpu_seconds_sending"],
            "receiver_cpu_s": r["cpu_seconds"]}


def idle_rss(build, run, pki, n, guard):
    """RSS growth per idle authenticated stream of the accepting side: n streams,
    one message each (so each authenticates), then idle. Through the guard that
    side is edge(low); direct it is the receiver (the same S2S code alone)."""
    d = os.path.join(run, "idle-%s" % ("guard" if guard else "direct"))
    os.makedirs(d, exist_ok=True)
    recv = s2sload.LoadPeer.receiver(build, pki, d, peer_ip=EDGE_HIGH_IP if guard else A_IP,
                                     extra=["--expect", str(n), "--stay"])
    target = guard.pids["edge_low"] if guard else recv.proc.pid
    time.sleep(0.5)
    base = rss_kib(target)
    gen = s2sload.LoadPeer.generator(build, pki, d, [BOB], count=n, streams=n,
                                     peer_ip=EDGE_LOW_IP if guard else B_IP, quiet_ms=600000, extra=["--stay"])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not os.path.exists(recv.out_path):
        time.sleep(0.5)
    time.sleep(2.0)
    grown = rss_kib(target) - base
    got = recv.result(timeout=0)["received"] if os.path.exists(recv.out_path) else 0
    gen.stop()
    recv.stop()
    return {"streams": n, "authenticated": got, "rss_kib_per_stream": grown / max(n, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--rate-seconds", type=int, default=5)
    ap.add_argument("--idle-streams", type=int, default=1000)
    ap.add_argument("--only", choices=("flood", "rate", "broad", "idle"), action="append",
                    help="run only these parts (repeatable); the report shows what ran")
    ap.add_argument("--flow-window", type=int, default=None,
                    help="the low side's <limits flow-window> (default: the product's default)")
    args = ap.parse_args()
    parts = set(args.only or ("flood", "rate", "broad", "idle"))
    build = os.path.abspath(args.build_dir)
    run = args.run_dir or appliance.run_dir("bench_guard")
    os.makedirs(run, exist_ok=True)
    pki = make_pki(os.path.join(run, "pki"))
    s2sload.ca_bundle(pki)
    out = {"messages": args.messages}
    try:
        if parts & {"flood", "broad"}:
            for streams in ((1, 4) if "flood" in parts else (1,)):
                g, r, _ = run_load(build, run, pki, "direct-flood-%d" % streams, None,
                                   count=args.messages // streams, streams=streams)
                out["direct_flood_%d" % streams] = row(g, r)
        out["fdatasync"] = fdatasync_ms(run)
        if parts & {"flood", "rate"}:
            guard = Guard(build, os.path.join(run, "guard"), pki, flow_window=args.flow_window)
            for streams in ((1, 4) if "flood" in parts else ()):
                g, r, cpu = run_load(build, run, pki, "guard-flood-%d" % streams, guard,
                                     count=args.messages // streams, streams=streams)
                x = row(g, r)
                x["cpu_us_per_stanza"] = {k: v * 1e6 / max(r["received"], 1) for k, v in cpu.items()}
                out["guard_flood_%d" % streams] = x
            for rate in ((5000, 20000) if "rate" in parts else ()):
                n = rate * args.rate_seconds
                g, r, _ = run_load(build, run, pki, "guard-rate-%d" % rate, guard, count=n, rate=rate)
                out["guard_rate_%d" % rate] = row(g, r)
                g, r, _ = run_load(build, run, pki, "direct-rate-%d" % rate, None, count=n, rate=rate)
                out["direct_rate_%d" % rate] = row(g, r)
            guard.stop()
        if "broad" in parts:
            guard = Guard(build, os.path.join(run, "guard-broad"), pki, broad=True, flow_window=args.flow_window)
            g, r, cpu = run_load(build, run, pki, "broad-flood-1", guard, count=args.messages, streams=1)
            x = row(g, r)
            x["cpu_us_per_stanza"] = {k: v * 1e6 / max(r["received"], 1) for k, v in cpu.items()}
            out["broad_flood_1"] = x
            guard.stop()
        if "idle" in parts and args.idle_streams > 0:
            out["idle_direct"] = idle_rss(build, run, pki, args.idle_streams, None)
            guard = Guard(build, os.path.join(run, "guard-idle"), pki, max_inbound=args.idle_streams + 100)
            out["idle_guard"] = idle_rss(build, run, pki, args.idle_streams, guard)
            guard.stop()
    finally:
        procs.stop_all()
        appliance.remove_created_users()
        appliance.remove_routes()
    with open(os.path.join(run, "bench_guard.json"), "w") as f:
        json.dump(out, f, indent=1)
    report(out)


def report(o):
    def fl(name):
        x = o[name]
        return "%8.0f/s delivered, %d bounced, %d lost" % (x["delivered_per_s"], x["bounced"], x["lost"])

    for s in (1, 4):
        if "guard_flood_%d" % s not in o:
            continue
        g, d = o["guard_flood_%d" % s], o["direct_flood_%d" % s]
        print("flood, %d stream(s), %d messages: guard %s | direct %s | ratio guard/direct %.2f" % (
            s, o["messages"], fl("guard_flood_%d" % s), fl("direct_flood_%d" % s),
            g["delivered_per_s"] / max(d["delivered_per_s"], 1e-9)))
    b = o.get("broad_flood_1")
    if b:
        print("flood, 1 stream, broad-profile guard stage: %s | ratio to direct %.2f" % (
            fl("broad_flood_1"), b["delivered_per_s"] / max(o["direct_flood_1"]["delivered_per_s"], 1e-9)))
    for name in ("guard_flood_1", "broad_flood_1"):
        if name not in o:
            continue
        c = o[name]["cpu_us_per_stanza"]
        gen_us = o[name]["generator_cpu_s"] * 1e6 / max(o[name]["sent"], 1)
        print("CPU per crossing stanza (%s): edge(low) %.1f us, filter %.1f us, edge(high) %.1f us, total %.1f us; "
              "generator %.1f us per message, so the guard costs %.1f x the generator (a ratio that holds when "
              "the machine's speed varies between runs)" % (
                  name, c.get("edge_low", 0), c.get("filter", 0), c.get("edge_high", 0), sum(c.values()), gen_us,
                  sum(c.values()) / max(gen_us, 1e-9)))
    for rate in (5000, 20000):
        if "guard_rate_%d" % rate not in o:
            continue
        g, d = o["guard_rate_%d" % rate], o["direct_rate_%d" % rate]
        print("%5d/s: guard p50 %.2f ms p99 %.2f ms (%d lost, %d bounced) | direct p50 %.2f ms p99 %.2f ms | "
              "added p50 %+.2f ms, p99 %+.2f ms" % (rate, g["p50_ms"], g["p99_ms"], g["lost"], g["bounced"],
                                                   d["p50_ms"], d["p99_ms"], g["p50_ms"] - d["p50_ms"],
                                                   g["p99_ms"] - d["p99_ms"]))
    if "fdatasync" in o:
        print("the disk under the archive: append + fdatasync p50 %.2f ms, p99 %.2f ms (every release waits for "
              "one: the floor of the added latency)" % (o["fdatasync"]["p50_ms"], o["fdatasync"]["p99_ms"]))
    if "idle_guard" in o:
        print("RSS per idle authenticated S2S stream (%d streams, TLS): edge(low) %.1f KiB | the same S2S code "
              "alone (receiver) %.1f KiB | ratio %.2f" % (
                  o["idle_guard"]["streams"], o["idle_guard"]["rss_kib_per_stream"],
                  o["idle_direct"]["rss_kib_per_stream"],
                  o["idle_guard"]["rss_kib_per_stream"] / max(o["idle_direct"]["rss_kib_per_stream"], 1e-9)))


if __name__ == "__main__":
    main()
