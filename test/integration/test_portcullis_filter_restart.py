#!/usr/bin/python3
"""Killing the filter process mid-traffic: nothing crosses while it is down, senders
get errors, traffic resumes after the supervisor restarts it.

Topology: portcullis, cert mode, default supervision (no <supervision> element in
the generated config: restart-backoff-ms = 500 from schemas/portcullis-config.xsd).
alice@a.test floods bob@b.test with FLOOD messages (distinct bodies, paced); at
message KILL_AT (right after a short unpaced burst, so stanzas are in flight) the
filter child of portcullisd (the child whose command line has "--role filter") gets
SIGKILL; the moment it is gone a probe message is sent; the flood goes on.

Asserted:
  * every message sent was delivered to bob or bounced to alice: nothing is lost
    silently; none is delivered twice;
  * every bounce is a wait-type error (remote-server-timeout / resource-constraint:
    what edge_server.cpp generates when the filter is unavailable or busy);
  * errors did occur; the probes (alice -> bob and bob -> alice, sent while the
    filter was down) bounced with remote-server-timeout "boundary filter
    unavailable" and never crossed;
  * nothing crossed while the filter was down: every message sent after the kill
    was complete and well before edge(low) logged "filter channel up" again was
    bounced, not delivered; a message both delivered and bounced (released just
    before the crash, its Ack lost) is allowed and counted, but only if it was sent
    before the kill;
  * every message sent after edge(low) had its new filter link was delivered;
  * the supervisor logged "filter killed by signal 9 (SIGKILL)", "restarting filter
    in 500 ms" and "restarted filter (pid N, restart #1)", N being the new filter
    child; both edges got the new link; fresh chat crosses both ways afterwards.
"""

import datetime
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import procs  # noqa: E402
from harness.auditing import kill_and_wait, role_pid  # noqa: E402
from harness.procs import HarnessError  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

FLOOD = 300
PACE = 0.01            # seconds between flood messages (~100 messages/s)
KILL_AT = 100          # index of the flood message after which the filter is killed
BURST = 30             # unpaced messages right before the kill (stanzas in flight)
SETTLE_TIMEOUT = 40    # bounded wait for every message to be accounted for
TRANSIT_MARGIN = 0.2   # s: a message sent this long before the edge had its new filter
                       # link must have reached the edge before it (loopback, idle peers)
WAIT_CONDITIONS = {"remote-server-timeout", "resource-constraint"}


def filter_pid(sup_pid):
    """The pid of portcullisd's filter child (harness.auditing.role_pid)."""
    return role_pid(sup_pid, "filter")


LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (.*)$")


def log_lines(path):
    """[(unix time, text)] of the portcullisd log (UTC ms timestamps)."""
    out = []
    with open(path, "rb") as f:
        for raw in f.read().decode("utf-8", "replace").splitlines():
            m = LOG_TS.match(raw)
            if m:
                t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                out.append((t, m.group(2)))
    return out


def find(lines, pattern, after=0.0):
    """(time, match) of the first line matching `pattern` at or after `after`."""
    rx = re.compile(pattern)
    for t, text in lines:
        if t >= after:
            m = rx.search(text)
            if m:
                return t, m
    return None


def test(ctx):
    with Federation(ctx.subdir("restart"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir) as fed:
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        log_path = fed.portcullis.log_path
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(bob_jid, "warm-up a->b")
            bob.expect_message(alice_jid, "warm-up a->b", timeout=20)
            bob.send(alice_jid, "warm-up b->a")
            alice.expect_message(bob_jid, "warm-up b->a", timeout=20)
            ctx.step("chat a.test <-> b.test through Portcullis established")

            sup = fed.portcullis.pid
            old_filter = filter_pid(sup)
            check(old_filter is not None, "no '--role filter' child of portcullisd %d" % sup)
            ctx.step("filter is pid %d (child of portcullisd %d)" % (old_filter, sup))

            sent = {}      # id -> (index, body, unix send time)
            t_kill = t_dead = None
            probe_id = None
            restart_seen_before_probe = False
            for i in range(FLOOD):
                body = "flood-%03d" % i
                sent[alice.send(bob_jid, body)] = (i, body, time.time())
                if i == KILL_AT:
                    t_kill = time.time()
                    t_dead = kill_and_wait(old_filter)
                    with open(log_path, "rb") as f:
                        restart_seen_before_probe = b"restarted filter" in f.read()
                    probe_id = alice.send(bob_jid, "probe while the filter is down")
                    sent[probe_id] = (-1, "probe while the filter is down", time.time())
                    # The other direction too: edge(high) lost the filter as well.
                    bob_probe = bob.send(alice_jid, "probe b->a while the filter is down")
                    ctx.step("SIGKILL to filter %d after message %d; gone after %.1f ms; probe sent"
                             % (old_filter, i, (t_dead - t_kill) * 1000))
                elif not (KILL_AT - BURST <= i < KILL_AT):
                    time.sleep(PACE)
            t_flood_end = time.time()
            ctx.step("flood of %d messages sent" % FLOOD)
            check(not restart_seen_before_probe,
                  "the filter was restarted before the probe could be sent")

            # ---- settle: every message delivered or bounced (bounded) ----
            def snapshot():
                delivered = {}
                for m in bob.messages():
                    if m["from"].split("/")[0] == alice_jid:
                        delivered.setdefault(m["body"], []).append(m)
                bounced = {}
                for e in alice.errors():
                    if e["id"] in sent:
                        bounced.setdefault(e["id"], []).append(e)
                return delivered, bounced

            def accounted():
                delivered, bounced = snapshot()
                missing = [mid for mid, (_, body, _) in sent.items()
                           if body not in delivered and mid not in bounced]
                return not missing
            try:
                procs.wait_until(accounted, SETTLE_TIMEOUT, "every message delivered or bounced",
                                 interval=0.1)
            except HarnessError:
                delivered, bounced = snapshot()
                missing = sorted(sent[mid][0] for mid, (_, body, _) in sent.items()
                                 if body not in delivered and mid not in bounced)
                raise AssertionError("%d message(s) neither delivered nor bounced within %d s "
                                     "(lost silently): indexes %s" % (
                                         len(missing), SETTLE_TIMEOUT, missing[:40]))
            # A message both delivered and bounced has its second outcome arrive shortly
            # after the first: give late ones a moment before counting.
            time.sleep(1.0)
            delivered, bounced = snapshot()

            # ---- the restart, from the log ----
            procs.wait_until(lambda: b"restarted filter" in open(log_path, "rb").read(), 10,
                             "the supervisor to restart the filter")
            procs.wait_until(lambda: len(re.findall(rb"edge\(low\) info: filter channel up",
                                                    open(log_path, "rb").read())) >= 2, 10,
                             "edge(low) to get the new filter link")
            lines = log_lines(log_path)
            killed = find(lines, r"portcullisd info: filter (killed by signal 9 \(SIGKILL\)) "
                                 r"after (\d+) ms", t_kill - 1)
            check(killed is not None, "no 'filter killed by signal 9 (SIGKILL)' line in %s"
                  % log_path)
            sched = find(lines, r"portcullisd info: restarting filter in (\d+) ms", killed[0])
            check(sched is not None and sched[1].group(1) == "500",
                  "no 'restarting filter in 500 ms' (the XSD default backoff): %s"
                  % (sched[1].group(0) if sched else None))
            restarted = find(lines, r"portcullisd info: restarted filter \(pid (\d+), "
                                    r"restart #(\d+)\)", killed[0])
            check(restarted is not None, "no 'restarted filter' line in %s" % log_path)
            new_pid = int(restarted[1].group(1))
            check(restarted[1].group(2) == "1", "restart count is %s, expected 1"
                  % restarted[1].group(2))
            check(new_pid != old_filter and filter_pid(sup) == new_pid,
                  "restarted filter pid %d is not the running '--role filter' child (%s)"
                  % (new_pid, filter_pid(sup)))
            backoff = restarted[0] - killed[0]
            check(backoff >= 0.45, "filter restarted %.0f ms after its death, before the "
                  "500 ms backoff" % (backoff * 1000))
            lost = find(lines, r"edge\(low\) warning: filter channel lost \((.*)\); (\d+) "
                               r"stanza\(s\) in flight bounced", t_kill - 0.01)
            check(lost is not None, "edge(low) did not log 'filter channel lost'")
            up_low = find(lines, r"edge\(low\) info: filter channel up", restarted[0])
            up_high = find(lines, r"edge\(high\) info: filter channel up", restarted[0])
            check(up_low is not None and up_high is not None,
                  "an edge did not log 'filter channel up' after the restart")
            ctx.step("log: %s after %s ms; %s; restarted as pid %d %.0f ms after the death; "
                     "edge(low) lost the channel (%s, %s in flight bounced), link back %.0f ms "
                     "after the death" % (killed[1].group(1), killed[1].group(2),
                                          sched[1].group(0), new_pid, backoff * 1000,
                                          lost[1].group(1), lost[1].group(2),
                                          (up_low[0] - killed[0]) * 1000))
            t_up = max(up_low[0], up_high[0]) + 0.001   # log times are truncated to ms

            # ---- accounting ----
            body_of = {mid: v[1] for mid, v in sent.items()}
            dup = {b: len(ms) for b, ms in delivered.items() if len(ms) > 1}
            check(not dup, "messages delivered more than once: %r" % dup)
            conditions = {}
            for mid, errs in bounced.items():
                for e in errs:
                    key = (e["condition"], e["error_type"], e["text"])
                    conditions[key] = conditions.get(key, 0) + 1
            ctx.step("bounce conditions seen: %s" % ", ".join(
                "%s/%s %r x%d" % (c, t, txt, n) for (c, t, txt), n in sorted(conditions.items(),
                                                                             key=str)))
            bad = {k: n for k, n in conditions.items()
                   if k[0] not in WAIT_CONDITIONS or k[1] != "wait"}
            check(not bad, "bounces with other than wait-type filter-unavailable conditions: %r"
                  % bad)
            multi = {body_of[mid]: len(errs) for mid, errs in bounced.items() if len(errs) > 1}
            check(not multi, "messages bounced more than once: %r" % multi)
            flood_bounced = [mid for mid in bounced if mid != probe_id]
            check(flood_bounced, "no flood message bounced: the kill had no effect")

            both = sorted(sent[mid][0] for mid in bounced if body_of[mid] in delivered)
            late_both = [i for i in both if i > KILL_AT or i < 0]
            check(not late_both, "messages sent after the filter was killed were both "
                  "delivered and bounced: %r" % late_both)

            # The probe: sent while the filter was down -> bounced, never delivered.
            check(probe_id in bounced, "the probe sent while the filter was down was not "
                  "bounced (delivered: %s)" % (sent[probe_id][1] in delivered))
            pe = bounced[probe_id][0]
            check(pe["condition"] == "remote-server-timeout" and pe["error_type"] == "wait"
                  and pe["text"] == "boundary filter unavailable",
                  "probe bounce is %s/%s %r, expected remote-server-timeout/wait "
                  "'boundary filter unavailable'" % (pe["condition"], pe["error_type"],
                                                     pe["text"]))
            check(sent[probe_id][1] not in delivered, "the probe crossed while the filter was down")
            be = bob.expect_error(frm=alice_jid, timeout=10)
            check(be["id"] == bob_probe and be["condition"] == "remote-server-timeout" and
                  be["error_type"] == "wait" and be["text"] == "boundary filter unavailable",
                  "bob's probe b->a: unexpected bounce %r" % be)
            check(not [m for m in alice.messages() if m["body"] and "b->a while" in m["body"]],
                  "bob's probe crossed b->a while the filter was down")

            # Nothing crossed while the filter was down.
            window = [(i, mid) for mid, (i, _, t) in sent.items()
                      if t_dead <= t <= up_low[0] - TRANSIT_MARGIN]
            crossed = sorted(i for i, mid in window if body_of[mid] in delivered)
            check(not crossed, "messages sent while the filter was down were delivered: %r"
                  % crossed)
            check(all(mid in bounced for _, mid in window),
                  "messages sent while the filter was down not bounced")
            # Everything sent once both edges had the new link crossed.
            after = [(i, mid) for mid, (i, _, t) in sent.items() if t > t_up]
            not_crossed = sorted(i for i, mid in after if body_of[mid] not in delivered)
            check(not not_crossed, "messages sent after the restart were not delivered: %r"
                  % not_crossed)
            check(after, "the flood ended before the filter was back (no message sent after)")
            n_delivered = sum(1 for mid in sent if body_of[mid] in delivered)
            ctx.step("%d sent: %d delivered, %d bounced (%d both: released just before the "
                     "crash, indexes %r); %d sent in the down window all bounced; %d sent after "
                     "the restart all delivered; flood lasted %.1f s"
                     % (len(sent), n_delivered, len(bounced), len(both), both, len(window),
                        len(after), t_flood_end - sent[next(iter(sent))][2]))

            # ---- fresh traffic both ways ----
            alice.send(bob_jid, "after the restart a->b")
            bob.expect_message(alice_jid, "after the restart a->b", timeout=15)
            bob.send(alice_jid, "after the restart b->a")
            alice.expect_message(bob_jid, "after the restart b->a", timeout=15)
            check(not bob.errors(), "bob got other errors: %r" % bob.errors())
            fed.portcullis.check_alive()
            ctx.step("fresh chat crosses both ways with the new filter (pid %d)" % new_pid)


if __name__ == "__main__":
    run_test(test)
