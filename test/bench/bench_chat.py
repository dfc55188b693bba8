#!/usr/bin/python3
"""Chat benchmark: alice@a.test -> bob@b.test over S2S, DIRECT and through PORTCULLIS.

For each topology (portcullis only when <build>/guard/portcullisd exists) it starts
a.test and b.test (cert mode, log level info), warms the s2s route up, then repeats
`--runs` times:
  * flood: N messages sent back to back (the sender yields to its loop every
    `--batch` messages so writing and receiving overlap); throughput = N / (last
    receipt - first send); latency = receipt - send per message;
  * one in flight: M messages, the next sent only when the previous arrived.
It prints the median of the runs per topology and the ratio portcullis/direct, and
writes the raw figures as JSON to <run dir>/bench_chat.json (default run dir
<build>/bench-runs; --run-dir to keep a shared build dir clean).

Timestamps: both clients run on one asyncio loop in this process; each body carries
its monotonic send time in ns. The client is CPU-bound Python on the same 2 cores as
both servers (and the guard): compare topologies measured in the same run only.

    /usr/bin/python3 test/bench/bench_chat.py --build-dir /work/build [--messages 20000]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import procs  # noqa: E402
from harness.clients import XmppClient  # noqa: E402
from harness.procs import HarnessError  # noqa: E402
from harness.topology import Federation, portcullis_available  # noqa: E402


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


class Receiver:
    """Collects latencies of bodies 'tag:seq:send_ns' for the current tag."""

    def __init__(self, loop):
        self.loop = loop
        self.tag = None
        self.expected = 0
        self.latencies_ns = []
        self.last_ns = 0
        self.done = None
        self.next_waiter = None

    def arm(self, tag, expected):
        self.tag = tag
        self.expected = expected
        self.latencies_ns = []
        self.done = self.loop.create_future()

    def hook(self, msg):
        now = time.monotonic_ns()
        parts = (msg["body"] or "").split(":")
        if len(parts) != 3 or parts[0] != self.tag:
            return  # warm-up leftovers or anything else
        self.latencies_ns.append(now - int(parts[2]))
        self.last_ns = now
        if self.next_waiter is not None and not self.next_waiter.done():
            self.next_waiter.set_result(None)
        if len(self.latencies_ns) >= self.expected and not self.done.done():
            self.done.set_result(None)


async def flood(sender, receiver, to, tag, n, batch, timeout):
    receiver.arm(tag, n)
    first = time.monotonic_ns()
    for i in range(n):
        sender.send_raw("<message to='%s' type='chat'><body>%s:%d:%d</body></message>"
                        % (to, tag, i, time.monotonic_ns()))
        if i % batch == batch - 1:
            await asyncio.sleep(0)
    try:
        await asyncio.wait_for(receiver.done, timeout)
    except asyncio.TimeoutError:
        raise HarnessError("flood %s: %d of %d messages arrived within %.0f s" % (
            tag, len(receiver.latencies_ns), n, timeout)) from None
    return summarize(n, receiver.last_ns - first, receiver.latencies_ns)


async def one_in_flight(sender, receiver, to, tag, m, timeout):
    receiver.arm(tag, m)
    first = time.monotonic_ns()
    for i in range(m):
        receiver.next_waiter = receiver.loop.create_future()
        sender.send_raw("<message to='%s' type='chat'><body>%s:%d:%d</body></message>"
                        % (to, tag, i, time.monotonic_ns()))
        try:
            await asyncio.wait_for(receiver.next_waiter, timeout)
        except asyncio.TimeoutError:
            raise HarnessError("one-in-flight %s: message %d lost (%.0f s)" % (
                tag, i, timeout)) from None
    receiver.next_waiter = None
    return summarize(m, receiver.last_ns - first, receiver.latencies_ns)


def summarize(n, elapsed_ns, latencies_ns):
    lat = sorted(x / 1e6 for x in latencies_ns)
    return {"messages": n, "seconds": elapsed_ns / 1e9,
            "msg_per_s": n / (elapsed_ns / 1e9) if elapsed_ns > 0 else float("nan"),
            "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99)}


def _proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """utime+stime of a process and its live descendants, in seconds (0 if gone)."""
    total = 0.0
    ppid = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid[int(entry)] = int(_proc_stat(int(entry))[1])
            except (OSError, IndexError, ValueError):
                pass
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, par in ppid.items():
            if par == parent and child not in family:
                family.add(child)
                frontier.append(child)
    for p in family:
        try:
            fields = _proc_stat(p)
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


class CpuMeter:
    """CPU used by each process of the topology (portcullisd with its edge and filter
    children) and by this client over a phase, in % of one core: shows the bottleneck."""

    def __init__(self, fed):
        self.pids = {"a.test": fed.a.proc.pid, "b.test": fed.b.proc.pid}
        if fed.portcullis is not None:
            self.pids["portcullisd"] = fed.portcullis.pid

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.self0 = time.process_time()

    def stop(self):
        dt = time.monotonic() - self.t0
        out = {k: 100.0 * (cpu_seconds(p) - self.c0[k]) / dt for k, p in self.pids.items()}
        out["client"] = 100.0 * (time.process_time() - self.self0) / dt
        return out


def median_of(runs):
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]
            if isinstance(runs[0][k], (int, float))}


async def bench_topology(fed, args):
    loop = asyncio.get_running_loop()
    a_user, b_user = "alice", "bob"
    sender = XmppClient(fed.jid("a", a_user), fed.users[a_user], fed.ca_all)
    recv_client = XmppClient(fed.jid("b", b_user), fed.users[b_user], fed.ca_all)
    receiver = Receiver(loop)
    recv_client.message_hook = receiver.hook
    await recv_client.start(fed.b.ip, timeout=15)
    await sender.start(fed.a.ip, timeout=15)
    to = fed.jid("b", b_user)
    try:
        # Warm-up: sets up the s2s route(s) and TLS before anything is timed.
        await one_in_flight(sender, receiver, to, "warm", 20, 30)
        floods, singles = [], []
        meter = CpuMeter(fed)
        for r in range(args.runs):
            meter.start()
            floods.append(await flood(sender, receiver, to, "f%d" % r, args.messages,
                                      args.batch, args.timeout))
            cpu = meter.stop()
            singles.append(await one_in_flight(sender, receiver, to, "s%d" % r, args.pingpong,
                                               args.timeout))
            print("    run %d: flood %.0f msg/s p50 %.2f ms | one-in-flight %.0f msg/s p50 %.2f ms"
                  % (r + 1, floods[-1]["msg_per_s"], floods[-1]["p50_ms"],
                     singles[-1]["msg_per_s"], singles[-1]["p50_ms"]), flush=True)
            print("           flood CPU %% of one core: %s" % ", ".join(
                "%s %.0f" % kv for kv in cpu.items()), flush=True)
        return {"flood": floods, "one_in_flight": singles,
                "flood_median": median_of(floods), "one_in_flight_median": median_of(singles)}
    finally:
        await sender.stop()
        await recv_client.stop()


def run_topology(name, args):
    run_dir = os.path.join(args.run_dir, name)
    with Federation(run_dir, topology=name, mode=args.mode, build_dir=args.build_dir,
                    pki_dir=os.path.join(args.run_dir, "pki"),
                    log_level="info") as fed:
        print("  %s (%s mode): servers up" % (name, args.mode), flush=True)
        return asyncio.run(bench_topology(fed, args))


def print_table(results):
    cols = ["flood msg/s", "p50 ms", "p90 ms", "p99 ms", "1-in-flight msg/s", "p50 ms", "p90 ms",
            "p99 ms"]
    print()
    print("%-12s" % "topology" + "".join("%19s" % c if i in (0, 4) else "%9s" % c
                                          for i, c in enumerate(cols)))

    def row(name, f, s):
        vals = [f["msg_per_s"], f["p50_ms"], f["p90_ms"], f["p99_ms"],
                s["msg_per_s"], s["p50_ms"], s["p90_ms"], s["p99_ms"]]
        out = "%-12s" % name
        for i, v in enumerate(vals):
            out += ("%19.0f" % v) if i in (0, 4) else ("%9.2f" % v)
        print(out)

    for name, r in results.items():
        row(name, r["flood_median"], r["one_in_flight_median"])
    if "direct" in results and "portcullis" in results:
        d, p = results["direct"], results["portcullis"]
        ratio = {}
        for kind in ("flood_median", "one_in_flight_median"):
            ratio[kind] = {k: p[kind][k] / d[kind][k] if d[kind][k] else float("nan")
                           for k in d[kind]}
        vals_f, vals_s = ratio["flood_median"], ratio["one_in_flight_median"]
        out = "%-12s" % "ratio p/d"
        for i, v in enumerate([vals_f["msg_per_s"], vals_f["p50_ms"], vals_f["p90_ms"],
                               vals_f["p99_ms"], vals_s["msg_per_s"], vals_s["p50_ms"],
                               vals_s["p90_ms"], vals_s["p99_ms"]]):
            out += ("%19.2f" % v) if i in (0, 4) else ("%9.2f" % v)
        print(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.environ.get("PORTCULLIS_BUILD_DIR", os.getcwd()))
    ap.add_argument("--run-dir", default=None,
                    help="where servers keep config/logs (default <build>/bench-runs)")
    ap.add_argument("--messages", type=int, default=20000, help="flood size")
    ap.add_argument("--pingpong", type=int, default=2000, help="one-in-flight count")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50, help="flood: yield every BATCH sends")
    ap.add_argument("--mode", choices=("cert", "dialback"), default="cert")
    ap.add_argument("--topology", choices=("auto", "direct", "portcullis"), default="auto",
                    help="auto: direct, plus portcullis if portcullisd is built")
    ap.add_argument("--timeout", type=float, default=120, help="per-phase bound, seconds")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    args.run_dir = os.path.abspath(args.run_dir or os.path.join(args.build_dir, "bench-runs"))
    os.makedirs(args.run_dir, exist_ok=True)

    if args.topology == "auto":
        topologies = ["direct"] + (["portcullis"] if portcullis_available(args.build_dir) else [])
    else:
        topologies = [args.topology]
    print("bench_chat: %d-message flood, %d one-in-flight, median of %d runs; topologies: %s"
          % (args.messages, args.pingpong, args.runs, ", ".join(topologies)), flush=True)
    results = {}
    try:
        for name in topologies:
            results[name] = run_topology(name, args)
    except HarnessError as e:
        print("FAIL bench_chat: %s" % e, flush=True)
        return 1
    finally:
        procs.stop_all()
    print_table(results)
    out = os.path.join(args.run_dir, "bench_chat.json")
    with open(out, "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    print("\nraw figures: %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
