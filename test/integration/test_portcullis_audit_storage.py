#!/usr/bin/python3
"""A full archive store stops releases (fail closed); traffic resumes when space
returns.

The run's audit directory is a 512 KiB tmpfs (mounted before portcullisd starts;
needs root, unmounted whatever happens). After chat has crossed, a filler file
takes the free space down to a few blocks: below the default stop-free-percent
(5 %) while writes would still fit, so what stops releases is the threshold, not
ENOSPC.

Asserted:
  * the log shows "audit: archive filesystem nearly full" and the
    "ALARM audit: archive store failed, releases stop (fail closed)" line;
  * then alice's messages to bob (and bob's to alice) do NOT arrive; each sender
    gets a wait-type error (remote-server-timeout "boundary audit unavailable");
    the log says the records were not durable and nothing was released;
  * the filler is deleted: the writer recovers on its retry timer (bounded wait
    for "archive store recovered ... releases resume") and chat crosses again;
  * nothing unaudited crossed: every message bob or alice ever received through
    the boundary has a `released` decision record with its id; the archive holds
    `segment-abandoned` and `store-recovered` (failed_appends >= the messages
    refused) records, and `portcullis-audit verify` exits 0 after the stop.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.auditing import (archive_dir, by_stanza_id, export_json, pubkey, verify_ok,  # noqa: E402
                              wait_log)
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

TMPFS_SIZE = "512k"
LEAVE_BLOCKS = 4          # free blocks left by the filler: < 5 % of 128, writes still fit
BLOCKED = 3               # messages sent a->b while the store is stopped


def mount_tmpfs(path):
    if os.geteuid() != 0:
        raise AssertionError("this test mounts a tmpfs for the audit archive and must run as "
                             "root (euid %d)" % os.geteuid())
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0750" % TMPFS_SIZE, "tmpfs",
                        path], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        raise AssertionError("cannot mount a %s tmpfs on %s (exit %d): %s" % (
            TMPFS_SIZE, path, r.returncode, (r.stderr or r.stdout).strip()))
    check(os.path.ismount(path), "%s is not a mount point after mount" % path)


def unmount(path):
    if not os.path.ismount(path):
        return
    r = subprocess.run(["umount", path], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=20)


def free_percent(path):
    s = os.statvfs(path)
    return 100.0 * s.f_bavail / s.f_blocks


def test(ctx):
    run_dir = ctx.subdir("storage")
    adir = os.path.join(run_dir, "audit")
    os.makedirs(adir)
    mount_tmpfs(adir)
    try:
        body(ctx, run_dir, adir)
    finally:
        unmount(adir)


def body(ctx, run_dir, adir):
    ctx.step("audit dir %s is a %s tmpfs" % (adir, TMPFS_SIZE))
    filler = os.path.join(adir, "filler")
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir) as fed:
        check(archive_dir(fed) == adir, "archive dir %s is not the tmpfs" % archive_dir(fed))
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        got_bob, got_alice = [], []     # every message that crossed, by receiver
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(bob_jid, "before a->b")
            got_bob.append(bob.expect_message(alice_jid, "before a->b", timeout=20))
            bob.send(alice_jid, "before b->a")
            got_alice.append(alice.expect_message(bob_jid, "before b->a", timeout=20))
            ctx.step("chat crosses both ways; %.1f%% free on the archive tmpfs"
                     % free_percent(adir))

            # ---- fill the store below stop-free-percent ----
            log_mark = len(open(fed.portcullis.log_path, "rb").read())
            s = os.statvfs(adir)
            fill = (s.f_bavail - LEAVE_BLOCKS) * s.f_frsize
            check(fill > 0, "tmpfs already full before the filler")
            with open(filler, "wb") as f:
                f.write(b"\0" * fill)
                f.flush()
                os.fsync(f.fileno())
            pct = free_percent(adir)
            check(pct < 5.0, "filler left %.1f%% free, not below 5%%" % pct)
            t_fill = time.monotonic()
            full = wait_log(fed, r"filter error: audit: archive filesystem nearly full: "
                                 r"[0-9.]+% free on \S+ \(stop below 5%\)", timeout=10,
                            start=log_mark)
            alarm = wait_log(fed, r"filter error: ALARM audit: archive store failed, releases "
                                  r"stop \(fail closed\): (.*)", timeout=10, start=log_mark)
            ctx.step("filler of %d KiB leaves %.1f%% free; after %.1f s the log says %r and %r"
                     % (fill // 1024, pct, time.monotonic() - t_fill, full.group(0)[14:],
                        alarm.group(0)[14:]))

            # ---- nothing crosses; senders get wait-type errors ----
            blocked = [alice.send(bob_jid, "while full %d" % i) for i in range(BLOCKED)]
            blocked_up = bob.send(alice_jid, "while full b->a")
            for mid in blocked:
                e = alice.expect_error(frm=bob_jid, timeout=15)
                check(e["id"] in blocked, "alice got an error for another message: %r" % e)
                check(e["error_type"] == "wait" and e["condition"] == "remote-server-timeout"
                      and e["text"] == "boundary audit unavailable",
                      "bounce while the store is full is %s/%s %r, expected "
                      "remote-server-timeout/wait 'boundary audit unavailable'"
                      % (e["condition"], e["error_type"], e["text"]))
            e = bob.expect_error(frm=alice_jid, timeout=15)
            check(e["id"] == blocked_up and e["error_type"] == "wait",
                  "bob's b->a message while full: unexpected bounce %r" % e)
            bob.expect_no_message(alice_jid, wait=1.0)
            alice.expect_no_message(bob_jid, wait=0.1)
            wait_log(fed, r"filter error: audit record for seq=\d+ not durable \(.*\): "
                          r"not released", start=log_mark)
            ctx.step("store full: %d a->b and 1 b->a messages bounced (wait, remote-server-"
                     "timeout 'boundary audit unavailable'), none crossed" % BLOCKED)

            # ---- space returns: the writer recovers by itself ----
            os.unlink(filler)
            t_free = time.monotonic()
            rec = wait_log(fed, r"filter warning: audit: archive store recovered after (\d+) "
                                r"failed append\(s\); releases resume", timeout=10,
                           start=log_mark)
            ctx.step("filler deleted; recovered after %.1f s: %r"
                     % (time.monotonic() - t_free, rec.group(0)[16:]))
            alice.send(bob_jid, "after recovery a->b")
            got_bob.append(bob.expect_message(alice_jid, "after recovery a->b", timeout=15))
            bob.send(alice_jid, "after recovery b->a")
            got_alice.append(alice.expect_message(bob_jid, "after recovery b->a", timeout=15))
            got_bob += [m for m in bob.messages() if m["from"].split("/")[0] == alice_jid]
            got_alice += [m for m in alice.messages() if m["from"].split("/")[0] == bob_jid]
            check(not [m for m in got_bob if m["body"].startswith("while full")],
                  "a message sent while the store was full reached bob")
            ctx.step("chat crosses both ways again")

        fed.portcullis.stop()
        records = export_json(ctx.build_dir, adir)
        ids = by_stanza_id(records)
        for m, direction in [(m, "low-to-high") for m in got_bob] + \
                            [(m, "high-to-low") for m in got_alice]:
            ok = [r for r in ids.get(m["id"], []) if r["record"].get("outcome") == "released"
                  and r["record"].get("direction") == direction]
            check(ok, "message %r (id %s) crossed %s without a released decision record"
                  % (m["body"], m["id"], direction))
        for mid in blocked + [blocked_up]:
            check(not [r for r in ids.get(mid, []) if r["record"].get("outcome") == "released"],
                  "a message refused while full has a released record: %s" % mid)
        admin = [r["record"] for r in records if r["type"] == "admin"]
        abandoned = [a for a in admin if a.get("event") == "segment-abandoned"]
        recovered = [a for a in admin if a.get("event") == "store-recovered"]
        check(abandoned, "no segment-abandoned record in the archive")
        check(recovered, "no store-recovered record in the archive")
        failed = int(dict(recovered[0].get("fields", [])).get("failed_appends", "0"))
        check(failed >= BLOCKED + 1, "store-recovered says %d failed appends, expected >= %d"
              % (failed, BLOCKED + 1))
        m, out = verify_ok(ctx.build_dir, adir, pubkey(fed))
        notes = [ln for ln in out.splitlines() if ln.startswith("note:")]
        ctx.step("archive: all %d crossed messages have released records, none of the %d "
                 "refused; segment-abandoned %r; store-recovered failed_appends=%d; verify: %s%s"
                 % (len(got_bob) + len(got_alice), BLOCKED + 1, abandoned[0].get("text"), failed,
                    m.group(0), ("; " + " | ".join(notes)) if notes else ""))


if __name__ == "__main__":
    run_test(test)
