#!/usr/bin/python3
"""The Portcullis demo (run through deploy/demo.sh).

Starts Prosody for a.test (low) and b.test (high) on loopback, and portcullisd on
deploy/config/demo.xml between them, then:
  1. alice@a.test -> bob@b.test and back: both cross, the filter logs "released";
  2. a message over the filter's 64 KiB limit: refused, alice gets the error;
  3. group chat across the boundary: alice joins ops@rooms.low.test, bob joins
     ops@rooms.high.test; the two rooms federate through the filter, each sees
     the other (the far occupant under a pseudonym) and they talk;
and prints the filter's decisions. Keeps running (users can log in with any XMPP
client: alice/alice-pw on 127.0.0.2, bob/bob-pw on 127.0.0.3) until Ctrl-C, or
stops at once with --once.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "test", "integration"))

from harness import appliance, procs  # noqa: E402
from harness.topology import Federation, write_pseudonym_key  # noqa: E402


def say(text):
    print("demo: " + text, flush=True)


DECISION = re.compile(r"decision seq=\S+ (?P<dir>\S+) peer=(?P<peer>\S+) auth=(?P<auth>\S+) (?P<kind>\S+) "
                      r"from=(?P<frm>\S*) to=(?P<to>\S*) id=\S*: (?P<outcome>.*?) by (?P<rule>\S+) "
                      r"policy=(?P<policy>\S+) audit=(?P<audit>\S+); trail:(?P<trail>.*)$")


def show_decisions(log_path, seen):
    """Prints each new decision line of the filter as one readable line."""
    with open(log_path, errors="replace") as f:
        lines = [l.rstrip() for l in f if " decision " in l]
    for line in lines[seen:]:
        m = DECISION.search(line)
        if not m:
            print("   " + line.split(" ", 1)[1][:200], flush=True)
            continue
        guards = " ".join(t for t in m["trail"].split() if t.startswith("guard:"))
        print("   %-11s %s %s -> %s: %s by rule %s (%s; audit record #%s; policy %s)" % (
            m["dir"], m["kind"], m["frm"].split("/")[0], m["to"].split("/")[0], m["outcome"], m["rule"],
            guards or ("refused before the guard stage" if m["outcome"].startswith(("rejected", "refused"))
                       else "no guard stage"), m["audit"], m["policy"]), flush=True)
    return len(lines)


def main():
    ap = argparse.ArgumentParser(description="Portcullis demo")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--run-dir", default="/tmp/portcullis-demo")
    ap.add_argument("--once", action="store_true", help="stop after the demonstration")
    args = ap.parse_args()
    run_dir = os.path.abspath(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    # The shipped default config, next to the PKI it names ("pki/...").
    config = os.path.join(run_dir, "portcullis.xml")
    shutil.copy(os.path.join(HERE, "config", "demo.xml"), config)
    # ... and the security policy it names (<policy file="demo-policy.xml"/>).
    shutil.copy(os.path.join(HERE, "config", "demo-policy.xml"), os.path.join(run_dir, "demo-policy.xml"))
    # The guard stage's XMPP application profiles, where demo.xml names them.
    shutil.copytree(os.path.join(SOURCE, "schemas", "xmpp"), os.path.join(run_dir, "schemas", "xmpp"))
    # The pseudonym secret the policy names (keys/pseudonym.key).
    os.makedirs(os.path.join(run_dir, "keys"), exist_ok=True)
    write_pseudonym_key(os.path.join(run_dir, "keys"))

    fed = Federation(run_dir, topology="portcullis", mode="cert", build_dir=args.build_dir,
                     portcullis_config=config, log_level="info")
    try:
        say("starting Prosody a.test (127.0.0.2), b.test (127.0.0.3) and portcullisd "
            "(edge low 127.0.0.4, edge high 127.0.0.6) on deploy/config/demo.xml")
        fed.start()
        log = fed.portcullis.log_path
        say("portcullisd log: " + log)
        seen = 0
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(fed.jid("b", "bob"), "Hello from the low side")
            m = bob.expect_message(fed.jid("a", "alice"), "Hello from the low side", timeout=20)
            say("bob@b.test received from %s: %r" % (m["from"], m["body"]))
            bob.send(fed.jid("a", "alice"), "Hello from the high side")
            m = alice.expect_message(fed.jid("b", "bob"), "Hello from the high side", timeout=20)
            say("alice@a.test received from %s: %r" % (m["from"], m["body"]))
            alice.send(fed.jid("b", "bob"), "x" * 70000)
            e = alice.expect_error(frm=fed.jid("b", "bob"), timeout=20)
            say("a 70 kB message was refused: alice got <%s/> (%s)" % (e["condition"], e["text"]))
            low_room, high_room = "ops@rooms.low.test", "ops@rooms.high.test"
            alice.join_room(low_room, "alice", timeout=20)
            bob.join_room(high_room, "bob", timeout=20)
            procs.wait_until(lambda: any(p["from"] == high_room + "/alice" for p in bob.presences()), 20,
                             "bob to see alice in " + high_room)
            pres = [p for p in bob.presences() if p["from"] == high_room + "/alice"][-1]
            say("bob (in %s) sees alice, who joined %s on the low side; her address does not cross: %s"
                % (high_room, low_room, "a.test" not in pres["xml"]))
            alice.send_groupchat(low_room, "Status report: all quiet")
            m = bob.expect_groupchat(high_room, "alice", "Status report: all quiet", timeout=20)
            say("bob received in %s from %s: %r" % (high_room, m["from"], m["body"]))
            bob.send_groupchat(high_room, "Acknowledged")
            m = alice.expect_groupchat(low_room, "bob", "Acknowledged", timeout=20)
            say("alice received in %s from %s: %r" % (low_room, m["from"], m["body"]))
            time.sleep(0.3)
            say("the filter's decisions:")
            seen = show_decisions(log, seen)
        ctl = os.path.join(os.path.abspath(args.build_dir), "tools", "portcullisctl")
        sock = os.path.join(run_dir, "control.sock")
        say("the appliance as the operator sees it (%s --socket %s status):" % (ctl, sock))
        st = subprocess.run([ctl, "--socket", sock, "status"], capture_output=True, text=True, timeout=30)
        print("".join("   " + l + "\n" for l in (st.stdout + st.stderr).rstrip().split("\n")), end="", flush=True)
        if st.returncode != 0:
            raise RuntimeError("portcullisctl status exited %d" % st.returncode)
        tool = os.path.join(os.path.abspath(args.build_dir), "tools", "audit", "portcullis-audit")
        say("every decision is in the audit archive; check it with:\n   %s verify %s --pubkey %s\n"
            "   %s report %s --html %s" % (tool, os.path.join(run_dir, "audit"),
                                           os.path.join(run_dir, "keys", "audit.pub"), tool,
                                           os.path.join(run_dir, "audit"), os.path.join(run_dir, "report.html")))
        if args.once:
            say("done (--once)")
            return 0
        say("running; log in as alice/alice-pw at 127.0.0.2:5222 or bob/bob-pw at "
            "127.0.0.3:5222 with any XMPP client (rooms: ops@rooms.low.test, ops@rooms.high.test). "
            "Ctrl-C stops everything.")
        stop = []
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        while not stop:
            time.sleep(0.5)
            fed.portcullis.check_alive()
            seen = show_decisions(log, seen)
        return 0
    except Exception as e:  # one readable line, non-zero exit
        print("demo: FAILED: %s (logs in %s)" % (e, run_dir), file=sys.stderr)
        return 1
    finally:
        fed.stop()
        procs.stop_all()
        appliance.remove_routes()


if __name__ == "__main__":
    sys.exit(main())
