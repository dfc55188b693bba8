#!/usr/bin/python3
"""Federated rooms across the boundary: ops@rooms.low.test (hosted by edge(low))
federates with ops@rooms.high.test (hosted by edge(high)) through the filter.

Real Prosody servers a.test (low) and b.test (high); slixmpp clients join the
room of their own side through their own server (plain S2S to the edge).

1. join: alice (low) and bob (high) each see the other as an occupant; the
   occupant learned across the boundary carries no real JID of the far side
   (the crossing FMUC presence carries a pseudonym, anon.boundary.test);
2. groupchat both ways, one FMUC copy per message per link whatever the
   number of far occupants (three on the high side);
3. history on join holds both halves' messages; the subject crosses;
4. a nick held on the far half is refused (409 conflict);
5. a private message across the boundary through the room;
6. a labelled message the policy refuses for the far half reaches the near
   half only, and its author gets the room's error saying so;
7. disconnected operation: the filter is killed: both halves keep chatting,
   remote occupants leave with status 333; the filter comes back: the halves
   rejoin by themselves and backfill each other (delayed, each message once);
   the same after the far edge is killed;
8. every FMUC crossing is in the audit archive, which verifies.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import auditing, procs  # noqa: E402
from harness.addresses import A_ROOMS, B_ROOMS, EDGE_HIGH_IP, PSEUDONYMS  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation, fmuc_policy_text, fmuc_rooms_xml, write_pseudonym_key  # noqa: E402

LOW_ROOM = "ops@" + A_ROOMS
HIGH_ROOM = "ops@" + B_ROOMS

HERE = os.path.dirname(os.path.abspath(__file__))
SPIF = os.path.join(HERE, "..", "corpus", "labels", "spif-low-nation.xml")
ESS_LOW_SECRET = "MQkCAQ4GBCoDBAE="   # LOW-NATION SECRET (test/corpus/labels/README.md)

# Low to high, the high room is cleared up to CONFIDENTIAL REL GBR; unlabelled
# room traffic (and FMUC presence) takes the room's default label UNCLASSIFIED.
ROOM_LABELS = {("low", "high"): """    <label-access name="room-labels" spif="spif-low-nation.xml" check="recipient">
      <label id="low-unclassified" classification="UNCLASSIFIED"/>
      <clearance id="clr-ops-room" up-to="CONFIDENTIAL"><category tag-set="Releasable To" value="GBR"/></clearance>
      <room rule="room-ops" jid="ops@rooms.high.test" clearance="clr-ops-room" default-label="low-unclassified"/>
    </label-access>"""}


def occupants(session, room):
    """Nicks the session currently sees available in `room` (from its presence log)."""
    seen = {}
    for p in session.presences():
        if p["from"].startswith(room + "/"):
            seen[p["from"].split("/", 1)[1]] = p["type"] != "unavailable" and p["type"] != "error"
    return {n for n, here in seen.items() if here}


def wait_occupant(session, room, nick, timeout=20):
    procs.wait_until(lambda: nick in occupants(session, room), timeout,
                     "%s to see %s in %s (sees %s)" % (session.jid, nick, room, sorted(occupants(session, room))))


def wait_gone(session, room, nick, timeout=20):
    procs.wait_until(lambda: nick not in occupants(session, room), timeout,
                     "%s to see %s leave %s" % (session.jid, nick, room))


def fmuc_decisions(ctx, fed):
    recs = auditing.export_json(ctx.build_dir, auditing.archive_dir(fed))
    return [r for r in auditing.decisions(recs) if "isode.com/protocol/fmuc" in (r.get("original") or "")]


def test(ctx):
    run = ctx.subdir("rooms")
    os.makedirs(run, exist_ok=True)
    write_pseudonym_key(run)
    shutil.copy(SPIF, os.path.join(run, "spif-low-nation.xml"))
    with Federation(run, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    pki_dir=os.path.join(ctx.run_dir, "pki"),
                    users={"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
                           "erin": "erin-pw"},
                    rooms_xml=fmuc_rooms_xml(), policy_text=fmuc_policy_text(extra=ROOM_LABELS),
                    supervision_attrs='restart-backoff-ms="6000"') as fed:
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob, \
                fed.session("b", "carol") as carol, fed.session("b", "dave") as dave:
            # 1. join both halves
            alice.join_room(LOW_ROOM, "alice", timeout=20)
            bob.join_room(HIGH_ROOM, "bob", timeout=20)
            wait_occupant(bob, HIGH_ROOM, "alice")
            wait_occupant(alice, LOW_ROOM, "bob")
            ctx.step("join: alice (low) and bob (high) see each other across the boundary")
            for p in bob.presences():
                check("a.test" not in p["xml"] and "alice@" not in p["xml"],
                      "join: a presence bob got names alice's real JID: %s" % p["xml"][:300])
            crossing = [r for r in fmuc_decisions(ctx, fed) if "<presence" in (r.get("released") or r.get("original") or "")]
            check(crossing, "join: no FMUC presence decision in the archive")
            low_to_high = [r for r in crossing if r["record"].get("direction") == "low-to-high"]
            check(low_to_high, "join: no low-to-high FMUC presence in the archive")
            for r in low_to_high:
                rel = r.get("released") or ""
                if not rel:
                    continue
                check("alice@a.test" not in rel and PSEUDONYMS in rel,
                      "join: released FMUC presence carries the real JID or no pseudonym: %s" % rel[:300])
                check("alice@a.test" in (r.get("original") or ""),
                      "join: the archive lost the original form of the pseudonymised presence")
            ctx.step("join: the crossing FMUC presence carries a pseudonym; the archive holds both forms")

            # 2. groupchat both ways, one copy per message
            carol.join_room(HIGH_ROOM, "carol", timeout=20)
            dave.join_room(HIGH_ROOM, "dave", timeout=20)
            wait_occupant(alice, LOW_ROOM, "dave")
            before = len(fmuc_decisions(ctx, fed))
            alice.send_groupchat(LOW_ROOM, "hello from low")
            alice.expect_groupchat(LOW_ROOM, "alice", "hello from low", timeout=10)
            for s in (bob, carol, dave):
                s.expect_groupchat(HIGH_ROOM, "alice", "hello from low", timeout=15)
            bob.send_groupchat(HIGH_ROOM, "hello from high")
            alice.expect_groupchat(LOW_ROOM, "bob", "hello from high", timeout=15)
            time.sleep(1.0)
            msgs = [r for r in fmuc_decisions(ctx, fed)[before:] if "<message" in (r.get("original") or "")
                    and "<body>" in (r.get("original") or "")]
            check(len(msgs) == 2, "groupchat: expected one FMUC copy per message (2), the archive has %d" % len(msgs))
            ctx.step("groupchat: both ways; one copy per message across for three far occupants")

            # 3. history and subject
            with fed.session("b", "erin") as erin:
                erin.join_room(HIGH_ROOM, "erin", timeout=20, history={"maxstanzas": "10"})
                erin.expect_groupchat(HIGH_ROOM, "alice", "hello from low", timeout=10)
                erin.expect_groupchat(HIGH_ROOM, "bob", "hello from high", timeout=10)
                erin.leave_room(HIGH_ROOM, "erin")
            ctx.step("history: a late joiner on the high half gets both halves' messages")
            alice.send_raw("<message to='%s' type='groupchat'><subject>plan B</subject></message>" % LOW_ROOM)
            procs.wait_until(lambda: any("<subject>plan B</subject>" in m["xml"] for m in bob.messages()), 15,
                             "bob to get the new subject")
            ctx.step("subject: set on the low half, seen on the high half")

            # 4. nick conflict across halves
            with fed.session("b", "erin") as erin:
                cond = erin.join_refused(HIGH_ROOM, "alice", timeout=15)
                check(cond == "conflict", "conflict: expected conflict for a nick held across, got %s" % cond)
            ctx.step("conflict: the nick 'alice' (held on the low half) is refused on the high half (409)")

            # 5. a private message across
            bob.send("%s/alice" % HIGH_ROOM, "psst alice")
            m = alice.expect_message("%s/bob" % LOW_ROOM, "psst alice", timeout=15)
            check(m["type"] == "chat", "pm: expected a chat message, got %s" % m["type"])
            ctx.step("pm: bob -> alice through the rooms and the boundary")

            # 6. a refused groupchat reaches its own half only, and the author learns it
            alice.send_raw("<message to='%s' type='groupchat' id='lab1'><body>labelled</body>"
                           "<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>SECRET</displaymarking>"
                           "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>%s</esssecuritylabel>"
                           "</label></securitylabel></message>" % (LOW_ROOM, ESS_LOW_SECRET))
            alice.expect_groupchat(LOW_ROOM, "alice", "labelled", timeout=10)
            err = alice.expect_error(frm=LOW_ROOM, timeout=15)
            check(err["condition"] == "policy-violation", "refused: expected policy-violation, got %s (%s)"
                  % (err["condition"], err["text"]))
            bob.expect_no_message(body="labelled", wait=2.0)
            ctx.step("refused: the labelled message stayed on the low half; alice got %s: %s"
                     % (err["condition"], err["text"]))

            # 7. disconnected operation: the filter dies (restarted after 6 s)
            carol.leave_room(HIGH_ROOM, "carol")
            dave.leave_room(HIGH_ROOM, "dave")
            wait_gone(alice, LOW_ROOM, "dave")
            sup = fed.portcullis.pid
            auditing.kill_and_wait(auditing.role_pid(sup, "filter"))
            alice.expect_presence("%s/bob" % LOW_ROOM, "unavailable", 333, timeout=10)
            bob.expect_presence("%s/alice" % HIGH_ROOM, "unavailable", 333, timeout=10)
            ctx.step("filter killed: each half saw the other's occupants leave with status 333")
            alice.send_groupchat(LOW_ROOM, "low said during the outage")
            alice.expect_groupchat(LOW_ROOM, "alice", "low said during the outage", timeout=10)
            bob.send_groupchat(HIGH_ROOM, "high said during the outage")
            bob.expect_groupchat(HIGH_ROOM, "bob", "high said during the outage", timeout=10)
            ctx.step("outage: both halves keep chatting on their own")
            wait_occupant(alice, LOW_ROOM, "bob", timeout=30)
            wait_occupant(bob, HIGH_ROOM, "alice", timeout=30)
            ctx.step("filter back: the halves rejoined by themselves")
            m = bob.expect_groupchat(HIGH_ROOM, "alice", "low said during the outage", timeout=15)
            check("urn:xmpp:delay" in m["xml"], "backfill: the message said on the low half was not marked delayed")
            m = alice.expect_groupchat(LOW_ROOM, "bob", "high said during the outage", timeout=15)
            check("urn:xmpp:delay" in m["xml"], "backfill: the message said on the high half was not marked delayed")
            time.sleep(3.0)
            for who, sess, room, body in ((bob, bob, HIGH_ROOM, "low said during the outage"),
                                         (alice, alice, LOW_ROOM, "high said during the outage")):
                dup = [x for x in sess.messages() if x["body"] == body]
                check(not dup, "backfill: %s got %r %d more time(s)" % (who.jid, body, len(dup)))
            ctx.step("backfill: each half got what the other said during the outage, delayed, exactly once")

            # the far edge dies: edge(high) and its half of the room (restarted after 6 s)
            auditing.kill_and_wait(auditing.role_pid(sup, "edge", "high"))
            alice.expect_presence("%s/bob" % LOW_ROOM, "unavailable", 333, timeout=20)
            alice.send_groupchat(LOW_ROOM, "low said while the high edge was down")
            alice.expect_groupchat(LOW_ROOM, "alice", "low said while the high edge was down", timeout=10)
            ctx.step("far edge killed: the low half lost its remote occupants (333) and chats on")
            procs.wait_port(EDGE_HIGH_IP, 5269, 30)
            time.sleep(3.0)
            # bob's client would learn by XEP-0410 self-ping that the restarted half lost him: he rejoins.
            bob.join_room(HIGH_ROOM, "bob", timeout=20, history={"maxstanzas": "20"})
            m = bob.expect_groupchat(HIGH_ROOM, "alice", "low said while the high edge was down", timeout=20)
            check("urn:xmpp:delay" in m["xml"], "far edge: the backfilled message is not marked delayed")
            wait_occupant(alice, LOW_ROOM, "bob", timeout=20)
            ctx.step("far edge back: its half of the room was refilled from the low half; bob rejoined and "
                     "got what was said meanwhile")

    # 8. audit: every crossing recorded; the archive verifies once the writer has closed it
    auditing.verify_ok(ctx.build_dir, auditing.archive_dir(fed), auditing.pubkey(fed))
    recs = auditing.export_json(ctx.build_dir, auditing.archive_dir(fed))
    bodies = " ".join((r.get("original") or "") for r in auditing.decisions(recs))
    for body in ("hello from low", "hello from high", "low said during the outage", "high said during the outage",
                 "labelled"):
        check(body in bodies, "audit: no decision record holds %r" % body)
    ctx.step("audit: the archive verifies and holds every crossing, the refused one included")


if __name__ == "__main__":
    run_test(test)
