#!/usr/bin/python3
"""A chain of federated rooms (issue 8 item 5):

    site A node <-> guard (low room <-> high room) <-> site B node

  node A (portcullisd <node>, low side)   ops@rooms.site-a.test  federates with ops@rooms.low.test
  edge(low)'s room                        ops@rooms.low.test     accepts node A's, federates with ops@rooms.high.test
  edge(high)'s room                       ops@rooms.high.test    accepts the low room's and node B's
  node B (portcullisd <node>, high side)  ops@rooms.site-b.test  federates with ops@rooms.high.test

Clients (real Prosody a.test / b.test, slixmpp): alice@a.test in node A's room,
carol@a.test in the low room, bob@b.test in node B's room, dave@b.test in the
high room.

0. the node config check refuses a room that federates with and accepts the
   same room (a cycle), and a room federating with a domain the node has no
   <peer> for, each with FILE:LINE:COL pointing into that room (the same config
   without the offending link passes);
1. join: alice and bob see each other while nobody is in the guard's rooms
   (the middle rooms relay for the nodes); then each of the four sees the
   three others as occupants;
2. groupchat from alice reaches bob, carol and dave exactly once each (and
   alice's own echo once), from bob the same; one FMUC copy per message
   crosses the boundary;
3. nothing bob or dave receive (nor any stanza header b.test's server logs) names alice@a.test or
   carol@a.test: the boundary's pseudonyms (anon.boundary.test) cross instead;
4. history: a late joiner on node B gets a message alice said;
5. node A stops: carol, bob and dave see alice leave with status 333 within a
   bounded time (the low room notices its lost downstream link), and carol and
   dave keep chatting across the boundary;
6. node A starts again: alice rejoins, sees the others, chat crosses again, and
   nobody who stayed gets any message twice;
7. the audit archive verifies and holds the FMUC crossings of both directions.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance, auditing  # noqa: E402
from harness.addresses import (A_DOMAIN, A_IP, A_ROOMS, B_DOMAIN, B_IP, B_ROOMS, EDGE_HIGH_IP,  # noqa: E402
                               EDGE_LOW_IP, NODE_A_IP, NODE_A_ROOMS, NODE_B_IP, NODE_B_ROOMS, PSEUDONYMS)
from harness.muc import expect_once, fmuc_decisions, names_any, wait_gone, wait_occupant, wait_occupants  # noqa: E402
from harness.pki import make_pki  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import (Federation, StandaloneNode, check_config, fmuc_policy_text,  # noqa: E402
                              fmuc_rooms_xml, node_rooms_xml, write_node_config, write_pseudonym_key)

ROOM_A = "ops@" + NODE_A_ROOMS      # node A (low side)
ROOM_LOW = "ops@" + A_ROOMS         # edge(low)
ROOM_HIGH = "ops@" + B_ROOMS        # edge(high)
ROOM_B = "ops@" + NODE_B_ROOMS      # node B (high side)
LOW_REAL = ["alice@" + A_DOMAIN, "carol@" + A_DOMAIN]   # must never reach the high side
USERS = {u: u + "-pw" for u in ("alice", "bob", "carol", "dave", "erin")}
NODE_A_PEERS = [(A_DOMAIN, A_IP), (A_ROOMS, EDGE_LOW_IP)]
NODE_B_PEERS = [(B_DOMAIN, B_IP), (B_ROOMS, EDGE_HIGH_IP)]


def room_lines(text, name):
    """(first, last) line numbers (1-based) of <room name=NAME> ... </room> in `text`."""
    lines = text.splitlines()
    first = next(i for i, l in enumerate(lines, 1) if '<room name="%s"' % name in l)
    last = next(i for i, l in enumerate(lines, 1) if i >= first and "</room>" in l)
    return first, last


def expect_refused(ctx, path, what, names):
    """--check-config on `path` exits 1 with one line FILE:LINE:COL: message, the
    line inside room ops, the message naming `names`."""
    rc, out, err = check_config(ctx.build_dir, path)
    lines = err.strip().splitlines()
    check(rc == 1, "%s: --check-config exited %d (expected 1): %s" % (what, rc, (out + err).strip()[-400:]))
    check(len(lines) == 1, "%s: expected a one-line error, got %d lines: %r" % (what, len(lines), err[-400:]))
    m = re.match(r"^%s:(\d+):(\d+): (.+)$" % re.escape(path), lines[0])
    check(m is not None, "%s: the error is not FILE:LINE:COL: message: %r" % (what, lines[0]))
    with open(path) as f:
        first, last = room_lines(f.read(), "ops")
    line = int(m.group(1))
    check(first <= line <= last and int(m.group(2)) >= 1,
          "%s: the error points at %s:%s, outside room ops (lines %d-%d): %s"
          % (what, m.group(1), m.group(2), first, last, lines[0]))
    check(names in m.group(3), "%s: the error does not name %s: %s" % (what, names, lines[0]))
    return lines[0]


def config_refusals(ctx, pki, node_user):
    d = ctx.subdir("check")

    def write(name, rooms):
        return write_node_config(os.path.join(d, name), pki, "node-a", NODE_A_IP, NODE_A_PEERS,
                                 node_rooms_xml(NODE_A_ROOMS, rooms), node_user=node_user)

    control = write("control.xml", {"ops": {"federate": ROOM_LOW}})
    rc, out, err = check_config(ctx.build_dir, control)
    check(rc == 0 and ": OK" in out, "control: the node config without a bad link is refused (%d): %s"
          % (rc, (out + err).strip()[-400:]))
    cycle = write("cycle.xml", {"ops": {"federate": ROOM_LOW, "accept": [ROOM_LOW]}})
    said = expect_refused(ctx, cycle, "cycle", ROOM_LOW)
    ctx.step("config: federate with and accept from %s refused: %s" % (ROOM_LOW, said))
    unrouted = write("unrouted.xml", {"ops": {"federate": "ops@rooms.elsewhere.test"}})
    said = expect_refused(ctx, unrouted, "unrouted", "ops@rooms.elsewhere.test")
    ctx.step("config: federating with a domain the node does not peer with refused: %s" % said)


def test(ctx):
    pki = make_pki(os.path.join(ctx.run_dir, "pki"))
    users = appliance.test_users(nodes=True)
    config_refusals(ctx, pki, users["nodea"])

    run = ctx.subdir("chain")
    write_pseudonym_key(run)
    node_a_cfg = write_node_config(os.path.join(ctx.subdir("node-a"), "node.xml"), pki, "node-a", NODE_A_IP,
                                   NODE_A_PEERS, node_rooms_xml(NODE_A_ROOMS, {"ops": {"federate": ROOM_LOW}}),
                                   node_user=users["nodea"])
    node_b_cfg = write_node_config(os.path.join(ctx.subdir("node-b"), "node.xml"), pki, "node-b", NODE_B_IP,
                                   NODE_B_PEERS, node_rooms_xml(NODE_B_ROOMS, {"ops": {"federate": ROOM_HIGH}}),
                                   node_user=users["nodeb"])
    for cfg in (node_a_cfg, node_b_cfg):
        rc, out, err = check_config(ctx.build_dir, cfg)
        check(rc == 0, "node config %s refused (%d): %s" % (cfg, rc, (out + err).strip()[-400:]))

    with Federation(run, topology="portcullis", mode="cert", build_dir=ctx.build_dir, pki_dir=pki, users=USERS,
                    rooms_xml=fmuc_rooms_xml(accept={"low": {"ops": [ROOM_A]}, "high": {"ops": [ROOM_B]}}),
                    policy_text=fmuc_policy_text(),
                    extra_peers={"low": [(NODE_A_ROOMS, NODE_A_IP)], "high": [(NODE_B_ROOMS, NODE_B_IP)]}) as fed, \
            StandaloneNode(ctx.build_dir, node_a_cfg, NODE_A_IP) as node_a, \
            StandaloneNode(ctx.build_dir, node_b_cfg, NODE_B_IP):
        ctx.step("appliance with rooms.low.test / rooms.high.test, node A (%s) and node B (%s) running"
                 % (NODE_A_IP, NODE_B_IP))
        with fed.session("a", "alice") as alice, fed.session("a", "carol") as carol, \
                fed.session("b", "bob") as bob, fed.session("b", "dave") as dave:
            where = {alice: ROOM_A, carol: ROOM_LOW, bob: ROOM_B, dave: ROOM_HIGH}
            nick = {alice: "alice", carol: "carol", bob: "bob", dave: "dave"}
            everyone = [alice, carol, bob, dave]
            stayed = [carol, bob, dave]

            # 1. join. First only the two sites: nobody is in the guard's rooms,
            # which relay for the nodes all the same (a middle room joins its
            # upstream room for the occupants a downstream node brings).
            for s in (bob, alice):
                s.join_room(where[s], nick[s], timeout=20)
            wait_occupant(alice, ROOM_A, "bob", timeout=40)
            wait_occupant(bob, ROOM_B, "alice", timeout=40)
            ctx.step("join: alice (node A) and bob (node B) see each other through the guard's two rooms, "
                     "which nobody has joined")
            for s in (carol, dave):
                s.join_room(where[s], nick[s], timeout=20)
            for s in everyone:
                wait_occupants(s, where[s], [nick[o] for o in everyone if o is not s], timeout=40)
            ctx.step("join: alice (node A), carol (low room), bob (node B), dave (high room) each see the 3 others")

            # 2. groupchat, exactly once
            alice.send_groupchat(ROOM_A, "hello from site A")
            expect_once([(alice, ROOM_A), (bob, ROOM_B), (carol, ROOM_LOW), (dave, ROOM_HIGH)], "alice",
                        "hello from site A")
            bob.send_groupchat(ROOM_B, "hello from site B")
            expect_once([(bob, ROOM_B), (alice, ROOM_A), (carol, ROOM_LOW), (dave, ROOM_HIGH)], "bob",
                        "hello from site B")
            ctx.step("groupchat: alice's and bob's messages reach the three others exactly once each")

            # 3. no real JID of the low side reaches the high side
            for s in (bob, dave):
                for rec in s.presences() + s.received():
                    hit = names_any(rec["xml"], LOW_REAL)
                    check(hit is None, "privacy: %s got a stanza naming %s: %s" % (s.jid, hit, rec["xml"][:300]))
            text = fed.b.log_text()
            # (Prosody's debug log records each stanza's opening tag: its from/to/by attributes.)
            check("Received[s2sin]: <presence" in text, "privacy: b.test's log does not record stanzas")
            hit = names_any(text, LOW_REAL)
            check(hit is None, "privacy: b.test's server saw %s: %s" % (hit, hit and fed.b.log_contains(re.escape(hit))))
            crossed = [r for r in fmuc_decisions(ctx.build_dir, auditing.archive_dir(fed))
                       if r["record"].get("direction") == "low-to-high" and "alice@a.test" in (r.get("original") or "")]
            check(crossed, "privacy: no low-to-high FMUC decision about alice in the archive")
            for r in crossed:
                rel = r.get("released")
                check(rel, "privacy: a low-to-high FMUC decision about alice has no released form (%s)"
                      % r["record"].get("outcome"))
                check(names_any(rel, LOW_REAL) is None and PSEUDONYMS in rel,
                      "privacy: a released FMUC stanza names alice or carries no pseudonym: %s" % rel[:300])
            ctx.step("privacy: bob, dave and b.test never got alice@a.test or carol@a.test; %d crossing(s) of "
                     "alice's carry a pseudonym in %s" % (len(crossed), PSEUDONYMS))

            # 4. history on node B
            with fed.session("b", "erin") as erin:
                erin.join_room(ROOM_B, "erin", timeout=20, history={"maxstanzas": "20"})
                m = erin.expect_groupchat(ROOM_B, "alice", "hello from site A", timeout=15)
                check("urn:xmpp:delay" in m["xml"], "history: alice's message is not marked delayed")
                check(names_any(m["xml"], LOW_REAL) is None, "history: names a real JID: %s" % m["xml"][:300])
                erin.leave_room(ROOM_B, "erin")
            for s in everyone:
                wait_gone(s, where[s], "erin")
            ctx.step("history: a late joiner on node B got alice's message (delayed)")

            # 5. node A stops
            t0 = time.monotonic()
            node_a.stop()
            for s in stayed:
                s.expect_presence("%s/alice" % where[s], "unavailable", 333, timeout=30)
            ctx.step("node A stopped: carol, bob and dave saw alice leave with status 333 within %.1f s"
                     % (time.monotonic() - t0))
            carol.send_groupchat(ROOM_LOW, "low room during the outage")
            expect_once([(carol, ROOM_LOW), (dave, ROOM_HIGH), (bob, ROOM_B)], "carol", "low room during the outage")
            dave.send_groupchat(ROOM_HIGH, "high room during the outage")
            expect_once([(dave, ROOM_HIGH), (carol, ROOM_LOW), (bob, ROOM_B)], "dave", "high room during the outage")
            ctx.step("outage of node A: carol and dave keep chatting across the boundary")

            # 6. node A back
            node_a.start()
            since, mark = len(alice.presences()), len(alice.received())
            alice.join_room(ROOM_A, "alice", timeout=30)
            wait_occupants(alice, ROOM_A, ["carol", "bob", "dave"], timeout=40, since=since)
            for s in stayed:
                wait_occupant(s, where[s], "alice", timeout=40)
            ctx.step("node A back: alice rejoined and sees carol, bob and dave; they see her")
            alice.send_groupchat(ROOM_A, "site A is back")
            expect_once([(alice, ROOM_A), (bob, ROOM_B), (carol, ROOM_LOW), (dave, ROOM_HIGH)], "alice", "site A is back")
            dave.send_groupchat(ROOM_HIGH, "welcome back")
            expect_once([(dave, ROOM_HIGH), (alice, ROOM_A), (carol, ROOM_LOW), (bob, ROOM_B)], "dave", "welcome back")
            ctx.step("after the restart: chat crosses both ways again")
            # Whoever stayed got every message once over the whole test; alice, since her rejoin
            # (what node A learned by backfill may reach her, delayed, but once).
            for s, recs in [(s, s.received()) for s in stayed] + [(alice, alice.received()[mark:])]:
                bodies = [m["body"] for m in recs if m["type"] == "groupchat" and m["body"]]
                twice = sorted({b for b in bodies if bodies.count(b) > 1})
                check(not twice, "restart: %s got %s more than once" % (s.jid, twice))
            ctx.step("restart: nobody who stayed got any message twice, nor alice since her rejoin")
            for s in (bob, dave):
                for rec in s.presences() + s.received():
                    hit = names_any(rec["xml"], LOW_REAL)
                    check(hit is None, "privacy: %s got a stanza naming %s: %s" % (s.jid, hit, rec["xml"][:300]))
            hit = names_any(fed.b.log_text(), LOW_REAL)
            check(hit is None, "privacy: b.test's server saw %s after the restart" % hit)

    # 7. the archive
    auditing.verify_ok(ctx.build_dir, auditing.archive_dir(fed), auditing.pubkey(fed))
    decs = fmuc_decisions(ctx.build_dir, auditing.archive_dir(fed))

    def crossing(direction, body):
        return [r for r in decs if r["record"].get("direction") == direction
                and "<body>%s</body>" % body in (r.get("original") or "") and r.get("released")]
    for direction, body, real in (("low-to-high", "hello from site A", "alice@a.test"),
                                  ("high-to-low", "hello from site B", "bob@b.test"),
                                  ("high-to-low", "high room during the outage", "dave@b.test"),
                                  ("low-to-high", "site A is back", "alice@a.test")):
        got = crossing(direction, body)
        check(len(got) == 1, "audit: expected one released %s FMUC copy of %r, the archive has %d"
              % (direction, body, len(got)))
        check(real in got[0]["original"] and real not in got[0]["released"] and PSEUDONYMS in got[0]["released"],
              "audit: the %s record of %r lacks the original form or releases the real JID: %s"
              % (direction, body, got[0]["released"][:300]))
    ctx.step("audit: the archive verifies and holds each FMUC crossing once, original and pseudonymised")



if __name__ == "__main__":
    run_test(test)
