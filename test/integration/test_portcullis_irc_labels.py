#!/usr/bin/python3
"""The IRC link's security labels and nick collisions, through the real sandwich
(issue 10 items 2-4).

  carl (IRC, irc-a.test) <-> #ops <-> edge(low)'s gateway <-> ops@rooms.low.test
  <-> filter (label-access: the high room cleared up to CONFIDENTIAL REL GBR)
  <-> ops@rooms.high.test <-> bob@b.test

The gateway's <irc spif="spif-low-nation.xml"> carries <label UNCLASSIFIED>
into the room and is cleared up to RESTRICTED. Real Prosody, slixmpp clients,
ngIRCd and python3-irc users.

1. a RESTRICTED message from alice (low side) reaches carl with its display
   marking as leading text, and bob across the boundary;
2. a CONFIDENTIAL REL GBR message from alice reaches bob (the boundary allows it)
   but not carl; alice is told why (the label and the link's clearance);
3. carl's message reaches bob labelled UNCLASSIFIED, and the filter judged
   it by that label;
4. nick collision: an IRC user already holds "alice" on the server: alice's
   puppet gets another nick, carl sees her message from it; an IRC user named
   "dave" enters the room as "dave|irc" beside XMPP dave;
5. the archive verifies and holds the irc-refused record of the CONFIDENTIAL
   message, the irc-puppet record pairing alice's JID with her IRC nick, and
   the irc-out record with the label.
"""

import json
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import auditing, procs  # noqa: E402
from harness.addresses import A_ROOMS, B_ROOMS, IRC_IP, IRC_PORT  # noqa: E402
from harness.ircclient import IrcUser  # noqa: E402
from harness.muc import wait_occupant  # noqa: E402
from harness.ngircd import NgircdServer  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation, fmuc_policy_text, fmuc_rooms_xml, write_pseudonym_key  # noqa: E402

LOW_ROOM = "ops@" + A_ROOMS
HIGH_ROOM = "ops@" + B_ROOMS
CHAN = "#ops"
HERE = os.path.dirname(os.path.abspath(__file__))
SPIF = os.path.join(HERE, "..", "corpus", "labels", "spif-low-nation.xml")
# ESS labels of LOW-NATION (test/corpus/labels/README.md; RESTRICTED made the same way).
ESS_RESTRICTED = "MQkCAQwGBCoDBAE="                                          # LOW RESTRICTED
ESS_CONF_REL_GBR = "MSkCAQ0GBCoDBAExHjAcgApghkgBZQIBCAMBoQ4wDAYFKgMEAQIxAwIBAQ=="   # LOW CONFIDENTIAL REL GBR

ROOM_LABELS = {("low", "high"): """    <label-access name="room-labels" spif="spif-low-nation.xml" check="recipient">
      <label id="low-unclassified" classification="UNCLASSIFIED"/>
      <clearance id="clr-ops-room" up-to="CONFIDENTIAL"><category tag-set="Releasable To" value="GBR"/></clearance>
      <room rule="room-ops" jid="ops@rooms.high.test" clearance="clr-ops-room" default-label="low-unclassified"/>
    </label-access>"""}


def rooms_xml():
    irc = ('<irc server="%s" port="%d" tls="forbidden" allow-plaintext="true" channel="%s" nick="pcgate" '
           'max-nick-length="30" max-puppets="2" flood-interval-ms="300" retry-ms="500" retry-max-ms="4000" '
           'spif="spif-low-nation.xml"><label classification="UNCLASSIFIED"/>'
           '<clearance up-to="RESTRICTED"/></irc>' % (IRC_IP, IRC_PORT, CHAN))
    return fmuc_rooms_xml(children={"low": {"ops": irc}})


def labelled(room, body, ess, marking, mid):
    return ("<message to='%s' type='groupchat' id='%s'><body>%s</body>"
            "<securitylabel xmlns='urn:xmpp:sec-label:0'><displaymarking>%s</displaymarking>"
            "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>%s</esssecuritylabel></label>"
            "</securitylabel></message>" % (room, mid, body, marking, ess))


def test(ctx):
    run = ctx.subdir("irc")
    write_pseudonym_key(run)
    shutil.copy(SPIF, os.path.join(run, "spif-low-nation.xml"))
    srv = NgircdServer("irc-a.test", IRC_IP, ctx.subdir("ngircd"))
    logs = ctx.subdir("irc-clients")
    with srv:
        # Someone on the IRC server already holds the nick "alice" (not in #ops).
        squatter = IrcUser("alice", IRC_IP, log_path=os.path.join(logs, "alice-squatter.log")).connect()
        with Federation(run, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                        pki_dir=os.path.join(ctx.run_dir, "pki"),
                        users={"alice": "alice-pw", "bob": "bob-pw", "dave": "dave-pw"}, rooms_xml=rooms_xml(),
                        policy_text=fmuc_policy_text(extra=ROOM_LABELS)) as fed:
            procs.wait_until(lambda: "pcgate" in srv.names(CHAN), 20, "the gateway to join %s" % CHAN)
            carl = IrcUser("carl", IRC_IP, log_path=os.path.join(logs, "carl.log")).connect()
            carl.join(CHAN)
            with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
                alice.join_room(LOW_ROOM, "alice", timeout=20)
                bob.join_room(HIGH_ROOM, "bob", timeout=20)
                wait_occupant(bob, HIGH_ROOM, "carl", timeout=30)
                # 4a. alice's puppet cannot have "alice": it joins under another nick.
                procs.wait_until(lambda: any(n.lstrip("@+").lower().startswith("alice") and n.lstrip("@+") != "alice"
                                             for n in srv.names(CHAN)), 30, "alice's puppet to join %s" % CHAN)
                puppet = [n.lstrip("@+") for n in srv.names(CHAN)
                          if n.lstrip("@+").lower().startswith("alice") and n.lstrip("@+") != "alice"][0]
                check(squatter.current_nick == "alice",
                      "the squatter lost the nick 'alice' (now '%s')" % squatter.current_nick)
                ctx.step("an IRC user holds 'alice': alice's puppet joined %s as '%s'" % (CHAN, puppet))

                # 1. RESTRICTED: to IRC, marked, and across the boundary.
                alice.send_raw(labelled(LOW_ROOM, "routine words", ESS_RESTRICTED, "LOW RESTRICTED", "r1"))
                carl.expect_privmsg(frm=puppet, target=CHAN, text="[LOW RESTRICTED] routine words", timeout=15)
                m = bob.expect_groupchat(HIGH_ROOM, "alice", "routine words", timeout=15)
                check("LOW RESTRICTED" in m["xml"], "bob's copy lost its label: %s" % m["xml"][:400])
                ctx.step("a RESTRICTED message reached carl as '[LOW RESTRICTED] routine words', and bob")

                # 2. CONFIDENTIAL REL GBR: across the boundary, not to IRC; alice told why.
                alice.send_raw(labelled(LOW_ROOM, "confidential words", ESS_CONF_REL_GBR,
                                        "LOW CONFIDENTIAL REL GBR", "c1"))
                bob.expect_groupchat(HIGH_ROOM, "alice", "confidential words", timeout=15)
                err = alice.expect_error(frm=LOW_ROOM, timeout=15)
                check(err["text"] and "above what this IRC link is cleared for" in err["text"] and
                      "CONFIDENTIAL" in err["text"], "alice was not told why: %s" % err)
                carl.expect_no_privmsg(text=lambda t: "confidential words" in t, wait=2.0)
                ctx.step("a CONFIDENTIAL message reached bob, not carl; alice was told: %s" % err["text"])

                # 3. IRC -> room: labelled with the link's label, judged by it at the boundary.
                carl.say(CHAN, "hello from IRC")
                m = bob.expect_groupchat(HIGH_ROOM, "carl", "hello from IRC", timeout=15)
                check(">UNCLASSIFIED</displaymarking>" in m["xml"] and "esssecuritylabel" in m["xml"],
                      "carl's message reached bob without the link's label: %s" % m["xml"][:400])
                ctx.step("carl's message reached bob labelled UNCLASSIFIED (the link's <label>)")

                # 4b. an IRC user named like an XMPP occupant enters as nick|irc. dave
                # (XMPP) has no puppet (max-puppets 2: alice's and bob's), so IRC's
                # "dave" is free on the server but taken in the room.
                procs.wait_until(lambda: "bob" in [n.lstrip("@+") for n in srv.names(CHAN)], 30,
                                 "bob's puppet to join %s" % CHAN)
                with fed.session("a", "dave") as dave:
                    dave.join_room(LOW_ROOM, "dave", timeout=20)
                    ircdave = IrcUser("dave", IRC_IP, log_path=os.path.join(logs, "dave-irc.log")).connect()
                    ircdave.join(CHAN)
                    wait_occupant(bob, HIGH_ROOM, "dave|irc", timeout=30)
                    ircdave.say(CHAN, "the other dave")
                    bob.expect_groupchat(HIGH_ROOM, "dave|irc", "the other dave", timeout=15)
                    dave.expect_groupchat(LOW_ROOM, "dave|irc", "the other dave", timeout=15)
                    ctx.step("an IRC user 'dave' is 'dave|irc' in the room, beside XMPP dave")
                    ircdave.close()
            carl.close()
        squatter.close()

    # 5. the archive
    m, _ = auditing.verify_ok(ctx.build_dir, auditing.archive_dir(fed), auditing.pubkey(fed))
    recs = auditing.export_json(ctx.build_dir, auditing.archive_dir(fed), key=auditing.pubkey(fed))
    texts = [json.dumps(r["record"]) for r in recs if r["type"] != "decision"]
    refused = [t for t in texts if '"irc-refused"' in t and "confidential words" in t]
    check(len(refused) == 1 and "denied by clearance" in refused[0],
          "the archive holds %d irc-refused record(s) of the CONFIDENTIAL message: %s" % (len(refused), refused[:1]))
    pair = [t for t in texts if '"irc-puppet"' in t and "room-nick=alice " in t]
    check(pair and ("irc-nick=" + puppet) in pair[-1] and "jid=alice@a.test/" in pair[-1],
          "no irc-puppet record pairs alice's JID with '%s': %s" % (puppet, pair))
    out = [t for t in texts if '"irc-out"' in t and "routine words" in t]
    check(len(out) == 1 and "LOW RESTRICTED" in out[0] and "jid=alice@a.test/" in out[0],
          "the irc-out record lacks the label or alice's JID: %s" % out)
    crossed = [r for r in auditing.decisions(recs) if "hello from IRC" in (r.get("released") or "")]
    check(crossed and any(re.search(r'label\.effective"[,:]\s*"UNCLASSIFIED"', json.dumps(r)) for r in crossed),
          "the filter's decision on carl's message does not name its label")
    ctx.step("archive verifies (%s records): irc-refused, irc-puppet (alice <-> %s), irc-out with the label"
             % (m.group(1), puppet))


if __name__ == "__main__":
    run_test(test)
