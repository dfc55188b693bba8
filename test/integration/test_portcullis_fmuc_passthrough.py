#!/usr/bin/python3
"""FMUC pass-through (issue 8 item 6): two standalone FMUC nodes federate their
rooms over ordinary S2S through the guard, which hosts no rooms itself.

  node A (portcullisd <node>, low side)   ops@rooms.site-a.test    federates with ops@rooms.site-b.test
  edge(low): fronts rooms.site-b.test toward node A; edge(high): fronts rooms.site-a.test toward node B
  node B (portcullisd <node>, high side)  ops@rooms.site-b.test    accepts ops@rooms.site-a.test

The policy's <room-federation> allows ops@rooms.site-a.test -> ops@rooms.site-b.test
(low to high) and back (high to low); a second pair, secret@ on both nodes, is
configured on the nodes the same way but is not in the policy.

1. alice@a.test (node A's room) and bob@b.test (node B's room) see each other;
2. nothing bob receives (nor any stanza header b.test logs) names alice@a.test: a pseudonym
   of anon.boundary.test crosses instead;
3. groupchat both ways, each message exactly once;
4. private messages across the boundary through the rooms, both ways;
5. secret: no occupant of the far side ever appears on either node, a message
   said there does not cross, and the archive holds the refusal with rule
   room-pair-not-allowed;
6. the archive verifies and holds FMUC decisions in both directions, each
   with its original and its released form (the released one without the
   real JID).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance, auditing, procs  # noqa: E402
from harness.addresses import (A_DOMAIN, A_IP, B_DOMAIN, B_IP, EDGE_HIGH_IP, EDGE_LOW_IP, NODE_A_IP,  # noqa: E402
                               NODE_A_ROOMS, NODE_B_IP, NODE_B_ROOMS, PSEUDONYMS)
from harness.muc import expect_once, fmuc_decisions, names_any, occupants, rule_of, wait_occupant  # noqa: E402
from harness.pki import make_pki  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import (DEFAULT_ALLOWED, Federation, StandaloneNode, check_config,  # noqa: E402
                              fmuc_policy_text, node_rooms_xml, write_node_config, write_pseudonym_key)

ROOM_A = "ops@" + NODE_A_ROOMS
ROOM_B = "ops@" + NODE_B_ROOMS
SECRET_A = "secret@" + NODE_A_ROOMS
SECRET_B = "secret@" + NODE_B_ROOMS
RULE_ROOM_PAIR_NOT_ALLOWED = "room-pair-not-allowed"   # policy/rooms/fmuc_filters.h kRuleRoomPairNotAllowed
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

# The domain pairs are the default ones (a.test <-> b.test and their
# subdomains) and name neither node service: whatever the nodes exchange
# crosses by room-federation or not at all.
ALLOWED = DEFAULT_ALLOWED


def wait_archive(ctx, fed, pred, what, timeout=20):
    """The first FMUC decision of the running archive for which `pred` holds (bounded)."""
    found = []

    def look():
        found[:] = [r for r in fmuc_decisions(ctx.build_dir, auditing.archive_dir(fed)) if pred(r)]
        return bool(found)
    procs.wait_until(look, timeout, what, interval=0.5)
    return found


def test(ctx):
    pki = make_pki(os.path.join(ctx.run_dir, "pki"))
    users = appliance.test_users(nodes=True)
    run = ctx.subdir("passthrough")
    write_pseudonym_key(run)
    node_a_cfg = write_node_config(
        os.path.join(ctx.subdir("node-a"), "node.xml"), pki, "node-a", NODE_A_IP,
        [(A_DOMAIN, A_IP), (NODE_B_ROOMS, EDGE_LOW_IP)],
        node_rooms_xml(NODE_A_ROOMS, {"ops": {"federate": ROOM_B}, "secret": {"federate": SECRET_B}}),
        node_user=users["nodea"])
    node_b_cfg = write_node_config(
        os.path.join(ctx.subdir("node-b"), "node.xml"), pki, "node-b", NODE_B_IP,
        [(B_DOMAIN, B_IP), (NODE_A_ROOMS, EDGE_HIGH_IP)],
        node_rooms_xml(NODE_B_ROOMS, {"ops": {"accept": [ROOM_A]}, "secret": {"accept": [SECRET_A]}}),
        node_user=users["nodeb"])
    for cfg in (node_a_cfg, node_b_cfg):
        rc, out, err = check_config(ctx.build_dir, cfg)
        check(rc == 0, "node config %s refused (%d): %s" % (cfg, rc, (out + err).strip()[-400:]))

    with Federation(run, topology="portcullis", mode="cert", build_dir=ctx.build_dir, pki_dir=pki, users=USERS,
                    policy_text=fmuc_policy_text(rooms=("ops",), room_domains=(NODE_A_ROOMS, NODE_B_ROOMS),
                                                 allowed=ALLOWED),
                    extra_peers={"low": [(NODE_A_ROOMS, NODE_A_IP)], "high": [(NODE_B_ROOMS, NODE_B_IP)]},
                    extra_fronts={"low": [NODE_B_ROOMS], "high": [NODE_A_ROOMS]},
                    extra_hosts={"a": {NODE_B_ROOMS: EDGE_LOW_IP}, "b": {NODE_A_ROOMS: EDGE_HIGH_IP}}) as fed, \
            StandaloneNode(ctx.build_dir, node_a_cfg, NODE_A_IP), StandaloneNode(ctx.build_dir, node_b_cfg, NODE_B_IP):
        ctx.step("appliance without rooms (low fronts %s, high fronts %s), node A and node B running"
                 % (NODE_B_ROOMS, NODE_A_ROOMS))
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            # 1. join
            bob.join_room(ROOM_B, "bob", timeout=20)
            alice.join_room(ROOM_A, "alice", timeout=20)
            wait_occupant(alice, ROOM_A, "bob", timeout=40)
            wait_occupant(bob, ROOM_B, "alice", timeout=40)
            ctx.step("join: alice (node A) and bob (node B) see each other through the guard")

            # 3. groupchat both ways
            alice.send_groupchat(ROOM_A, "hello from site A")
            expect_once([(alice, ROOM_A), (bob, ROOM_B)], "alice", "hello from site A")
            bob.send_groupchat(ROOM_B, "hello from site B")
            expect_once([(bob, ROOM_B), (alice, ROOM_A)], "bob", "hello from site B")
            ctx.step("groupchat: both ways, each message exactly once")

            # 4. private messages through the rooms
            bob.send("%s/alice" % ROOM_B, "psst alice")
            m = alice.expect_message("%s/bob" % ROOM_A, "psst alice", timeout=15)
            check(m["type"] == "chat", "pm: expected a chat message, got %s" % m["type"])
            alice.send("%s/bob" % ROOM_A, "psst bob")
            m = bob.expect_message("%s/alice" % ROOM_B, "psst bob", timeout=15)
            check(m["type"] == "chat", "pm: expected a chat message, got %s" % m["type"])
            ctx.step("pm: bob -> alice and alice -> bob through the rooms and the guard")

            # 2. privacy (after everything alice's side sent has crossed)
            for rec in bob.presences() + bob.received():
                check(names_any(rec["xml"], ["alice@" + A_DOMAIN]) is None,
                      "privacy: bob got a stanza naming alice@a.test: %s" % rec["xml"][:300])
            text = fed.b.log_text()
            # (Prosody's debug log records each stanza's opening tag: its from/to/by attributes.)
            check("Received[s2sin]: <presence" in text, "privacy: b.test's log does not record stanzas")
            check(names_any(text, ["alice@" + A_DOMAIN]) is None,
                  "privacy: b.test's server saw alice@a.test: %s" % fed.b.log_contains(r"alice@a\.test"))
            ctx.step("privacy: nothing bob or b.test received names alice@a.test")

            # 5. the pair the policy does not list
            bob.join_room(SECRET_B, "bob", timeout=20)
            alice.join_room(SECRET_A, "alice", timeout=20)
            refused = wait_archive(
                ctx, fed, lambda r: r["record"].get("direction") == "low-to-high"
                and r["record"].get("outcome") == "rejected"
                and (r["record"].get("from") or "").startswith(SECRET_A)
                and (rule_of(r) or (None, None))[1] == RULE_ROOM_PAIR_NOT_ALLOWED,
                "a low-to-high refusal of %s -> %s with rule %s in the archive" % (SECRET_A, SECRET_B,
                                                                                    RULE_ROOM_PAIR_NOT_ALLOWED))
            check(not refused[0].get("released"), "secret: the refused join has a released form")
            alice.send_groupchat(SECRET_A, "secret words")
            alice.expect_groupchat(SECRET_A, "alice", "secret words", timeout=10)
            bob.send_groupchat(SECRET_B, "secret reply")
            bob.expect_groupchat(SECRET_B, "bob", "secret reply", timeout=10)
            time.sleep(3.0)   # three retry intervals of the nodes: a rejoin would have happened
            bob.expect_no_message(body="secret words", wait=1.0)
            alice.expect_no_message(body="secret reply", wait=1.0)
            check(occupants(alice, SECRET_A) == {"alice"}, "secret: alice sees %s" % sorted(occupants(alice, SECRET_A)))
            check(occupants(bob, SECRET_B) == {"bob"}, "secret: bob sees %s" % sorted(occupants(bob, SECRET_B)))
            for s, room, far in ((alice, SECRET_A, "bob"), (bob, SECRET_B, "alice")):
                ever = [p for p in s.presences() if p["from"] == "%s/%s" % (room, far)]
                check(not ever, "secret: %s saw %s in %s: %s" % (s.jid, far, room, ever[0]["xml"][:300] if ever else ""))
            ctx.step("secret: no far occupant ever appeared, nothing said crossed; the archive holds %d refusal(s) "
                     "with rule %s" % (len(refused), RULE_ROOM_PAIR_NOT_ALLOWED))
            # The allowed pair still works beside the refused one.
            alice.send_groupchat(ROOM_A, "still here")
            expect_once([(alice, ROOM_A), (bob, ROOM_B)], "alice", "still here")

    # 6. the archive
    auditing.verify_ok(ctx.build_dir, auditing.archive_dir(fed), auditing.pubkey(fed))
    decs = fmuc_decisions(ctx.build_dir, auditing.archive_dir(fed))
    for direction, frm, real, body in (("low-to-high", ROOM_A, "alice@a.test", "hello from site A"),
                                       ("high-to-low", ROOM_B, "bob@b.test", "hello from site B"),
                                       ("high-to-low", ROOM_B, "bob@b.test", "psst alice"),
                                       ("low-to-high", ROOM_A, "alice@a.test", "psst bob")):
        got = [r for r in decs if r["record"].get("direction") == direction
               and "<body>%s</body>" % body in (r.get("original") or "")]
        check(len(got) == 1, "audit: expected one %s FMUC decision holding %r, got %d" % (direction, body, len(got)))
        r = got[0]
        check((r["record"].get("from") or "").startswith(frm + "/"),
              "audit: the %s decision of %r is from %s" % (direction, body, r["record"].get("from")))
        check(r.get("released"), "audit: the %s decision of %r has no released form (%s)"
              % (direction, body, r["record"].get("outcome")))
        check(real in r["original"], "audit: the original form of %r lacks the author %s: %s"
              % (body, real, r["original"][:300]))
        check(real not in r["released"] and PSEUDONYMS in r["released"],
              "audit: the released form of %r names %s or carries no pseudonym: %s" % (body, real, r["released"][:300]))
    for direction, real in (("low-to-high", "alice@a.test"), ("high-to-low", "bob@b.test")):
        pres = [r for r in decs if r["record"].get("direction") == direction and r.get("released")
                and (r.get("original") or "").startswith("<presence") and real in r["original"]]
        check(pres, "audit: no released %s FMUC presence about %s" % (direction, real))
        bad = [r for r in pres if real in r["released"]]
        check(not bad, "audit: a released %s presence names %s: %s" % (direction, real,
                                                                       bad[0]["released"][:300] if bad else ""))
    check(not [r for r in decs if r.get("released") and re.search(r"<body>secret (words|reply)</body>",
                                                                  r.get("original") or "")],
          "audit: a message said in the secret rooms was released across")
    ctx.step("audit: the archive verifies; FMUC decisions both ways with original and pseudonymised released forms")


if __name__ == "__main__":
    run_test(test)
