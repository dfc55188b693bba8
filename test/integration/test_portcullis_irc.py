#!/usr/bin/python3
"""An IRC channel gatewayed into a federated room, through the real sandwich
(issue 10, first part).

  IRC users on irc-b.test (linked to irc-a.test) <-> #ops <-> edge(low)'s gateway
  <-> ops@rooms.low.test <-> filter <-> ops@rooms.high.test <-> bob@b.test (XMPP)

edge(low) hosts ops@rooms.low.test with <irc server=irc-a.test channel=#ops> over
TLS (port 6697 only, the certificate checked against the test CA and the name
irc-a.test), and
the room federates with ops@rooms.high.test across the boundary (FMUC). Real
Prosody a.test / b.test, slixmpp clients, two linked ngIRCd servers and
python3-irc users.

1. an IRC user (carl, on irc-b.test: the channel spans the server link) and an
   XMPP user on the high side (bob) are in one room: bob sees carl as an
   occupant; carl sees bob's puppet (and alice's) join #ops;
2. carl -> bob and bob -> carl, each message exactly once; a /me both ways;
3. what crossed the boundary about carl carries a pseudonym, not carl's IRC
   address (anon.boundary.test);
4. a private message from an XMPP user to the IRC user through the room; an
   IRC topic becomes the room's subject on both sides; an IRC user's nick
   change reaches bob as a nick change (303 and the new nick), a kick as a
   kick (307 and the reason);
5. a long XMPP message (~3 KB, sent in one burst) is split into IRC lines
   within 512 bytes, none lost or held back; a longer one is cut at the
   link's line cap and its author, bob across the boundary, is warned;
6. the IRC server restarted mid-conversation: bob sees carl leave (333); when the
   server is back the gateway reconnects by itself, carl rejoins, what the room
   said meanwhile reaches the channel once (bounded), and chat crosses again;
7. the audit archive verifies and holds the IRC user's messages crossing, and
   every IRC message in and room message out (irc-in / irc-out records, a long
   message with the number of IRC lines it became).
"""

import json
import os
import xml.etree.ElementTree as ET
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import auditing, procs  # noqa: E402
from harness.addresses import A_ROOMS, B_ROOMS, IRC2_IP, IRC_IP, PSEUDONYMS  # noqa: E402
from harness.ircclient import IrcUser  # noqa: E402
from harness.muc import wait_gone, wait_occupant  # noqa: E402
from harness.ngircd import IRC_TLS_PORT, NgircdServer, link, make_irc_pki  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation, fmuc_policy_text, fmuc_rooms_xml, write_pseudonym_key  # noqa: E402

MUC_USER = "{http://jabber.org/protocol/muc#user}"
LOW_ROOM = "ops@" + A_ROOMS
HIGH_ROOM = "ops@" + B_ROOMS
CHAN = "#ops"


def rooms_xml(ca):
    # TLS (the default): the gateway checks irc-a.test's certificate against the test CA.
    irc = ('<irc server="%s" port="%d" server-name="irc-a.test" ca="%s" channel="%s" nick="pcgate" '
           'max-nick-length="30" flood-burst="10" flood-interval-ms="300" retry-ms="500" retry-max-ms="4000"/>'
           % (IRC_IP, IRC_TLS_PORT, ca, CHAN))
    return fmuc_rooms_xml(children={"low": {"ops": irc}})


def muc_item(presence):
    """The muc#user <item/> of a presence record, parsed (None if none)."""
    x = ET.fromstring(presence["xml"]).find(MUC_USER + "x")
    return x.find(MUC_USER + "item") if x is not None else None


def test(ctx):
    run = ctx.subdir("irc")
    write_pseudonym_key(run)
    ircrun = ctx.subdir("ngircd")
    pki = make_irc_pki(os.path.join(ctx.run_dir, "irc-pki"), {"irc-a.test": IRC_IP, "irc-b.test": IRC2_IP})
    a = NgircdServer("irc-a.test", IRC_IP, ircrun, tls=True, pki=pki)
    # carl may become channel operator (OPER, then MODE +o) for TOPIC and KICK.
    b = NgircdServer("irc-b.test", IRC2_IP, ircrun, pki=pki, operators={"carl": "carl-oper-pw"},
                     options={"OperCanUseMode": "yes"})
    link(a, b, active="b")
    logs = ctx.subdir("irc-clients")
    with a, b:
        a.wait_linked(b, timeout=30)
        ctx.step("two linked ngIRCd servers: irc-a.test (the gateway's) and irc-b.test")
        with Federation(run, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                        pki_dir=os.path.join(ctx.run_dir, "pki"),
                        users={"alice": "alice-pw", "bob": "bob-pw"},
                        rooms_xml=rooms_xml(pki.ca), policy_text=fmuc_policy_text()) as fed:
            # The gateway joins #ops on its own.
            procs.wait_until(lambda: "pcgate" in a.names(CHAN), 20, "the gateway to join %s" % CHAN)
            ctx.step("edge(low)'s gateway joined %s on irc-a.test over TLS (certificate checked)" % CHAN)
            carl = IrcUser("carl", IRC2_IP, log_path=os.path.join(logs, "carl.log")).connect()
            carl.join(CHAN)
            with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
                alice.join_room(LOW_ROOM, "alice", timeout=20)
                bob.join_room(HIGH_ROOM, "bob", timeout=20)
                # 1. one room
                wait_occupant(bob, HIGH_ROOM, "carl", timeout=30)
                wait_occupant(alice, LOW_ROOM, "carl", timeout=30)
                carl.expect_join("bob", CHAN, timeout=30)
                carl.expect_join("alice", CHAN, timeout=30)
                ctx.step("bob (XMPP, high side) sees carl (IRC) in the room; carl sees bob's and alice's puppets")

                # 2. both ways, once
                carl.say(CHAN, "hello from IRC")
                bob.expect_groupchat(HIGH_ROOM, "carl", "hello from IRC", timeout=15)
                alice.expect_groupchat(LOW_ROOM, "carl", "hello from IRC", timeout=15)
                bob.send_groupchat(HIGH_ROOM, "hello from the high side")
                carl.expect_privmsg(frm="bob", target=CHAN, text="hello from the high side", timeout=15)
                carl.expect_no_privmsg(frm="bob", target=CHAN, text="hello from the high side", wait=2.0)
                check(not [m for m in bob.messages() if m.get("body") == "hello from IRC"],
                      "bob got carl's message more than once")   # expect_groupchat consumed the one copy
                carl.action(CHAN, "waves")
                bob.expect_groupchat(HIGH_ROOM, "carl", "/me waves", timeout=15)
                bob.send_groupchat(HIGH_ROOM, "/me nods")
                carl.expect_action(frm="bob", target=CHAN, text="nods", timeout=15)
                ctx.step("IRC -> XMPP across the boundary and back, once each; /me both ways")

                # 3. pseudonyms at the boundary
                recs = auditing.export_json(ctx.build_dir, auditing.archive_dir(fed))
                crossed = [r for r in auditing.decisions(recs)
                           if "hello from IRC" in (r.get("released") or "")]
                check(crossed, "no archived decision released carl's message across the boundary")
                for r in crossed:
                    check(PSEUDONYMS in r["released"] and "carl@" not in r["released"],
                          "carl's address crossed the boundary: %s" % r["released"][:300])
                    check("carl@irc." in (r.get("original") or ""),
                          "the archive lost the IRC user's address in the original: %s" % (r.get("original") or "")[:300])
                ctx.step("what crossed about carl carries a pseudonym; the archive holds carl's gateway address")

                # 4. XMPP -> IRC private message through the room
                alice.send(LOW_ROOM + "/carl", "a private word")
                carl.expect_privmsg(frm="alice", target="carl", text="a private word", timeout=15)
                ctx.step("a private message from alice (XMPP) reached carl (IRC) from alice's puppet")

                # 4b. topic -> subject, nick change (303) and kick (307), across the boundary
                carl.raw("OPER carl carl-oper-pw")
                carl.expect_numeric(381, timeout=10)
                carl.raw("MODE %s +o carl" % CHAN)
                carl.expect_mode(CHAN, timeout=10)
                carl.topic(CHAN, "topic set on IRC")
                for who, room in ((bob, HIGH_ROOM), (alice, LOW_ROOM)):
                    subj = who._wait(lambda: next((m for m in who.messages() if m["from"] == room + "/carl"
                                                   and "topic set on IRC</subject>" in m["xml"]), None),
                                     15, "carl's topic as the subject")
                    check(not subj["body"], "the topic arrived as a message with a body: %s" % subj["xml"][:300])
                dave = IrcUser("dave", IRC_IP, port=IRC_TLS_PORT, tls=True, ca_file=pki.ca,
                               log_path=os.path.join(logs, "dave.log")).connect()
                dave.join(CHAN)
                wait_occupant(bob, HIGH_ROOM, "dave", timeout=30)
                dave.nick_change("davey")
                p = bob.expect_presence(HIGH_ROOM + "/dave", ptype="unavailable", code=303, timeout=15)
                item = muc_item(p)
                check(item is not None and item.get("nick") == "davey",
                      "the 303 does not name the new nick in <item nick>: %s" % p["xml"][:400])
                wait_occupant(bob, HIGH_ROOM, "davey", timeout=15)
                carl.kick(CHAN, "davey", "off topic")
                p = bob.expect_presence(HIGH_ROOM + "/davey", ptype="unavailable", code=307, timeout=15)
                item = muc_item(p)
                reason = item.find(MUC_USER + "reason") if item is not None else None
                check(reason is not None and reason.text == "off topic",
                      "the kick's <reason> did not cross: %s" % p["xml"][:400])
                actor = item.find(MUC_USER + "actor")
                check(actor is not None and actor.get("nick") == "carl",
                      "the kick does not name carl as the actor: %s" % p["xml"][:400])
                dave.close()
                ctx.step("carl's IRC topic is the room's subject on both sides; dave's nick change reached bob as "
                         "303 with the new nick, carl's kick as 307 with the reason")

                # 5. a long message is split within 512-byte lines
                # ~3 KB: more than ngIRCd reads at once (2 KB), sent in one burst of
                # lines (flood-burst 10), so no line may wait behind another.
                long_text = " ".join("word%03d" % i for i in range(340))
                bob.send_groupchat(HIGH_ROOM, long_text)
                got = []
                deadline = time.time() + 30
                while time.time() < deadline and " ".join(got) != long_text:
                    m = carl.expect_privmsg(frm="bob", target=CHAN, timeout=max(0.5, deadline - time.time()))
                    got.append(m.text)
                check(" ".join(got) == long_text, "the long message did not arrive whole: %d line(s)" % len(got))
                check(len(got) >= 6, "a %d-byte message arrived in %d line(s)" % (len(long_text), len(got)))
                for _, d, line in carl.raw_lines():
                    if d == "<":
                        check(len(line.encode("utf-8")) + 2 <= 512, "an IRC line over 512 bytes: %d" % len(line))
                ctx.step("a %d-byte message reached IRC as %d lines, joined back to the same text" %
                         (len(long_text), len(got)))

                # 5b. longer than the link's line cap (8): cut, and bob, across the
                # boundary, is warned (type continue: it did reach IRC), not told it failed.
                capped = " ".join("cap%04d" % i for i in range(800))
                bob.send_groupchat(HIGH_ROOM, capped)
                cut = [carl.expect_privmsg(frm="bob", target=CHAN, timeout=15).text for _ in range(8)]
                check(capped.startswith(" ".join(cut)) and len(" ".join(cut)) < len(capped),
                      "the capped message did not arrive as its first 8 lines: %d bytes" % len(" ".join(cut)))
                carl.expect_no_privmsg(frm="bob", target=CHAN, wait=2.0)
                warned = bob.expect_error(frm=HIGH_ROOM, condition="policy-violation", timeout=15)
                check(warned["error_type"] == "continue" and "cut to 8 IRC line(s)" in (warned["text"] or "") and
                      "with a warning" in (warned["text"] or ""),
                      "bob's warning for the cut message: %s" % warned["xml"][:400])
                ctx.step("a %d-byte message was cut to 8 IRC lines; bob, across the boundary, was warned: %s" %
                         (len(capped), warned["text"]))

                # 6. the IRC server goes away and comes back
                a.stop()
                wait_gone(bob, HIGH_ROOM, "carl", timeout=30)
                lost = [p for p in bob.presences() if p["from"] == HIGH_ROOM + "/carl" and p["type"] == "unavailable"]
                check(lost and 'code="333"' in lost[-1]["xml"].replace("'", '"'),
                      "carl's departure was not marked 333: %s" % (lost[-1]["xml"][:300] if lost else "none"))
                alice.send_groupchat(LOW_ROOM, "said while IRC was away")
                bob.expect_groupchat(HIGH_ROOM, "alice", "said while IRC was away", timeout=15)
                ctx.step("IRC server down: carl left the room with 333, the room works on")
                a.start()
                a.wait_linked(b, timeout=40)
                procs.wait_until(lambda: "pcgate" in a.names(CHAN), 40, "the gateway to rejoin %s" % CHAN)
                # carl stayed on irc-b.test through the netsplit: the server link's
                # return brings him back to the gateway, and into the room.
                wait_occupant(bob, HIGH_ROOM, "carl", timeout=30)
                # What the room said while IRC was away reaches the channel once it is back.
                m = carl.expect_privmsg(frm="pcgate", target=CHAN, text="[alice, while IRC was away] said while IRC was away",
                                        timeout=20)
                carl.expect_no_privmsg(frm="pcgate", target=CHAN, text=m.text, wait=2.0)
                seen = [line for _, d, line in carl.raw_lines() if d == "<" and "hello from the high side" in line]
                check(len(seen) == 1, "the rejoin replayed a message IRC already had (%d copies)" % len(seen))
                carl.say(CHAN, "back again")
                bob.expect_groupchat(HIGH_ROOM, "carl", "back again", timeout=15)
                ctx.step("IRC server back: the gateway reconnected by itself and chat crosses again")
            carl.close()

    # 7. the archive
    m, _ = auditing.verify_ok(ctx.build_dir, auditing.archive_dir(fed), auditing.pubkey(fed))
    ctx.step("the audit archive verifies: %s records" % m.group(1))
    # IRC traffic in and out of the room is in the archive, one XMPP message
    # with the number of IRC lines it became.
    recs = auditing.export_json(ctx.build_dir, auditing.archive_dir(fed), key=auditing.pubkey(fed))
    events = [r for r in recs if r["type"] != "decision"]
    texts = [json.dumps(r["record"]) for r in events]
    irc_in = [t for t in texts if '"irc-in"' in t and "hello from IRC" in t]
    check(len(irc_in) == 1, "the archive holds %d irc-in record(s) of carl's message" % len(irc_in))
    check("carl@irc." in irc_in[0], "the irc-in record does not name carl's gateway address: %s" % irc_in[0][:300])
    long_out = [t for t in texts if '"irc-out"' in t and "word000" in t]
    check(len(long_out) == 1 and ("lines=%d" % len(got)) in long_out[0],
          "the archive does not map the long message to its %d IRC lines: %s" % (len(got), [t[:200] for t in long_out]))
    check(any('"irc-out"' in t and "private to=carl" in t and "a private word" in t for t in texts),
          "the archive lacks alice's private message to carl")
    ctx.step("the archive holds each IRC message in (irc-in) and each room message out with its IRC lines (irc-out)")


if __name__ == "__main__":
    run_test(test)
