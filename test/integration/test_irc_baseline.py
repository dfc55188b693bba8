#!/usr/bin/python3
"""IRC baseline without Portcullis: two real ngIRCd servers linked by a server link,
real python3-irc clients. Proves the IRC side of the harness (harness/ngircd.py,
harness/ircclient.py) and the peers' behaviour the XMPP<->IRC gateway tests build on:

1. link: irc-a.test (IRC_IP) and irc-b.test (IRC2_IP) link (irc-b.test dials); alice on
   A and bob on B share #ops: JOIN, PART, JOIN seen across the link, PRIVMSG both ways
   (no echo to the sender), ACTION, private messages both ways, NICK change (the new
   nick is reachable, the old is gone), TOPIC both ways, KICK, QUIT with its message;
2. restart of irc-b.test: A's users see the netsplit QUIT, A drops the link, the link
   comes back, bob reconnects and alice and bob talk again;
3. TLS: a client on A's TLS port verifying the test CA and the name irc-a.test talks to
   bob on B; a client trusting another CA, and one expecting another name, are refused;
4. server password: a wrong or missing PASS is refused (ngIRCd 26.1: ERROR "Access
   denied: Bad password?", no 464), the right one registers;
5. the server link over TLS (SSLConnect, the dialling side verifies the other's
   certificate against the test CA) carries a channel.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.addresses import IRC2_IP, IRC_IP  # noqa: E402
from harness.ircclient import IrcError, IrcRefused, IrcUser  # noqa: E402
from harness.ngircd import IRC_TLS_PORT, NgircdServer, link, make_irc_pki  # noqa: E402
from harness.testing import check, run_test  # noqa: E402

A_NAME = "irc-a.test"
B_NAME = "irc-b.test"
CHAN = "#ops"


def user(ctx, nick, ip, logs, **kw):
    return IrcUser(nick, ip, log_path=os.path.join(logs, "%s-%s.log" % (nick, ip)), **kw).connect()


def refused(fn):
    """Runs fn(); returns the IrcRefused/IrcError it raised, or None if it succeeded."""
    try:
        fn()
    except (IrcRefused, IrcError) as e:
        return e
    return None


def test(ctx):
    pki = make_irc_pki(os.path.join(ctx.run_dir, "irc-pki"), {A_NAME: IRC_IP, B_NAME: IRC2_IP})
    logs = ctx.subdir("clients")

    # ---- 1. two linked servers, one channel across them ---------------------------------
    run = ctx.subdir("link")
    a = NgircdServer(A_NAME, IRC_IP, run, tls=True, pki=pki)
    b = NgircdServer(B_NAME, IRC2_IP, run, pki=pki)
    # B dials A (a leaf dialling its hub). A freshly started ngIRCd dials its peers
    # after 1 s; the side that lost a link waits 3 s, or 5-20 s if the link was younger
    # than ConnectRetry, which would make the restart below slow and jittery.
    link(a, b, active="b")
    with a, b:
        took = a.wait_linked(b, timeout=30)
        ctx.step("link: %s <-> %s up in %.1f s" % (A_NAME, B_NAME, took))
        for srv, peer in ((a, B_NAME), (b, A_NAME)):
            line = srv.log_contains(r'Server "%s" registered' % peer)
            check(line is not None, "%s: no 'Server \"%s\" registered' in %s" % (
                srv.name, peer, srv.log_path))
        check(a.lusers_servers() == 2, "%s: LUSERS does not count 2 servers" % A_NAME)

        alice = user(ctx, "alice", IRC_IP, logs)
        bob = user(ctx, "bob", IRC2_IP, logs)
        check(alice.server_name == A_NAME and bob.server_name == B_NAME,
              "welcome from the wrong servers: %s, %s" % (alice.server_name, bob.server_name))
        check(alice.isupport.get("NICKLEN") == "30",
              "NICKLEN %r, configured 30" % alice.isupport.get("NICKLEN"))

        names = alice.join(CHAN)
        check(names == {"alice": "@"}, "alice created %s but NAMES says %s" % (CHAN, names))
        b.wait_members(CHAN, ["alice"])   # the JOIN reaches B asynchronously
        names = bob.join(CHAN)
        check(names.get("alice") == "@" and "bob" in names,
              "B does not know A's member (and op) of %s: NAMES %s" % (CHAN, names))
        alice.expect_join("bob", CHAN)                      # B -> A
        alice.part(CHAN, "back soon")
        part = bob.expect_part("alice", CHAN)               # A -> B
        check("back soon" in (part.text or ""), "PART reason lost across the link: %r" % part.raw)
        alice.join(CHAN)
        bob.expect_join("alice", CHAN)                      # A -> B
        ctx.step("link: JOIN/PART seen both ways across the link")

        alice.say(CHAN, "hello from A")
        rec = bob.expect_privmsg(frm="alice", target=CHAN, text="hello from A")
        check(rec.host is not None and not rec.private, "odd channel message record %r" % rec)
        bob.say(CHAN, "hello from B \u00e9\u00e8")
        rec = alice.expect_privmsg(frm="bob", target=CHAN, text="hello from B \u00e9\u00e8")
        check(rec.utf8, "UTF-8 text did not arrive as UTF-8: %r" % rec.raw_bytes)
        alice.ping()
        alice.expect_no_privmsg(frm="alice", wait=0)        # IRC does not echo
        bob.action(CHAN, "waves")
        alice.expect_action(frm="bob", target=CHAN, text="waves")
        alice.expect_no_privmsg(frm="bob", kinds=("privmsg",), wait=0)  # not also a PRIVMSG
        ctx.step("link: channel PRIVMSG both ways, ACTION, no echo to the sender")

        alice.say("bob", "psst, bob")
        rec = bob.expect_privmsg(frm="alice", target="bob", text="psst, bob")
        check(rec.private, "private message not marked private: %r" % rec)
        bob.say("alice", "psst, alice")
        alice.expect_privmsg(frm="bob", target="alice", text="psst, alice")
        ctx.step("link: private messages both ways")

        bob.nick("bobby")
        alice.expect_nick("bob", "bobby")
        check(bob.nick() == "bobby", "bob's client still thinks it is %s" % bob.nick())
        alice.say("bobby", "to the new nick")
        bob.expect_privmsg(frm="alice", target="bobby", text="to the new nick")
        alice.say("bob", "to the old nick")
        nosuch = alice.expect_numeric(401)
        check("bob" in nosuch.params, "401 does not name the old nick: %r" % nosuch.raw)
        bob.expect_no_privmsg(text="to the old nick", wait=0.3)
        ctx.step("link: NICK bob -> bobby seen on A; old nick gone (401)")

        alice.topic(CHAN, "topic from A")
        bob.expect_topic(CHAN, text="topic from A", by="alice")
        bob.topic(CHAN, "topic from B")
        alice.expect_topic(CHAN, text="topic from B", by="bobby")
        check(alice.get_topic(CHAN) == "topic from B", "A's topic of %s is not B's" % CHAN)
        ctx.step("link: TOPIC both ways")

        check(alice.join("#kick") == {"alice": "@"}, "alice is not op of the new #kick")
        b.wait_members("#kick", ["alice"])
        bob.join("#kick")
        alice.expect_join("bobby", "#kick")
        alice.kick("#kick", "bobby", "testing kick")
        bob.expect_kick("#kick", "bobby", by="alice", text="testing kick")
        check(set(alice.names("#kick")) == {"alice"}, "bobby still in #kick after KICK")
        ctx.step("link: KICK across the link")

        bob.quit("bye from B")
        q = alice.expect_quit("bobby")
        # ngIRCd relays a client's quit message in double quotes.
        check(q.text == '"bye from B"', "unexpected QUIT message %r" % q.text)
        ctx.step("link: QUIT seen on A with its message %s" % q.text)

        # ---- 2. restart of irc-b.test ----------------------------------------------------
        bob = user(ctx, "bob", IRC2_IP, logs)
        bob.join(CHAN)
        alice.expect_join("bob", CHAN)
        off = a.log_offset()
        t0 = time.monotonic()
        b.stop()
        q = alice.expect_quit("bob", timeout=10)
        check(q.text == "%s %s" % (A_NAME, B_NAME), "netsplit QUIT text %r" % q.text)
        reason = bob.wait_disconnected(10)
        a.wait_unlinked(B_NAME, timeout=10)
        ctx.step("restart: B stopped; alice saw netsplit QUIT %r, bob was told %r" % (q.text, reason))
        b.start()
        a.wait_linked(b, timeout=30)
        ctx.step("restart: link back %.1f s after the stop" % (time.monotonic() - t0))
        check(a.log_contains(r'Server "%s" registered' % B_NAME, since=off) is not None,
              "A's log has no new registration of %s" % B_NAME)
        bob = user(ctx, "bob", IRC2_IP, logs)
        names = bob.join(CHAN)
        check("alice" in names, "restarted B does not know alice in %s: %s" % (CHAN, names))
        alice.expect_join("bob", CHAN)
        bob.say(CHAN, "B is back")
        alice.expect_privmsg(frm="bob", target=CHAN, text="B is back")
        alice.say(CHAN, "welcome back")
        bob.expect_privmsg(frm="alice", target=CHAN, text="welcome back")
        ctx.step("restart: bob reconnected, talk both ways again")

        # ---- 3. TLS ----------------------------------------------------------------------
        carol = user(ctx, "carol", IRC_IP, logs, port=IRC_TLS_PORT, tls=True,
                     ca_file=a.ca_file, server_hostname=A_NAME)
        cn = dict(x[0] for x in carol.peer_cert["subject"]).get("commonName")
        check(cn == A_NAME, "A's TLS certificate has CN %r" % cn)
        check(carol.tls_version in ("TLSv1.2", "TLSv1.3"), "TLS version %s" % carol.tls_version)
        carol.join(CHAN)
        bob.expect_join("carol", CHAN)
        carol.say(CHAN, "over TLS")
        bob.expect_privmsg(frm="carol", target=CHAN, text="over TLS")
        ctx.step("tls: carol on %s:%d (%s, CN %s) talks to bob on B" % (
            IRC_IP, IRC_TLS_PORT, carol.tls_version, cn))
        rogue = make_irc_pki(os.path.join(ctx.run_dir, "rogue-pki"), {A_NAME: IRC_IP},
                             ca_cn="Rogue IRC CA")
        e = refused(lambda: IrcUser("mallory", IRC_IP, IRC_TLS_PORT, tls=True,
                                    ca_file=rogue.ca, server_hostname=A_NAME).connect(5))
        check(e is not None and "CERTIFICATE_VERIFY_FAILED" in str(e),
              "a client trusting another CA was not refused: %s" % e)
        e = refused(lambda: IrcUser("mallory", IRC_IP, IRC_TLS_PORT, tls=True,
                                    ca_file=a.ca_file, server_hostname=B_NAME).connect(5))
        check(e is not None and "CERTIFICATE_VERIFY_FAILED" in str(e) and "mismatch" in str(e),
              "a client expecting %s on A was not refused: %s" % (B_NAME, e))
        ctx.step("tls: other CA and wrong name refused by the client")
        for u in (alice, bob, carol):
            u.quit("done")

    # ---- 4. server password ----------------------------------------------------------------
    with NgircdServer(A_NAME, IRC_IP, ctx.subdir("password"), password="s3cret-pass") as p:
        # ngIRCd 26.1 answers a bad server password with ERROR "Access denied: Bad
        # password?" and closes; it sends no 464 (that numeric is for OPER only).
        for label, pw in (("wrong", "wrong-pass"), ("missing", None)):
            off = p.log_offset()
            e = refused(lambda: IrcUser("dave", IRC_IP, password=pw).connect(10))
            check(isinstance(e, IrcRefused) and (e.code == "464" or (
                e.code == "ERROR" and "Bad password" in (e.line or ""))),
                "a %s PASS was not refused for its password: %r" % (label, e))
            check(p.log_contains(r'"dave!.*" rejected .*Bad server password', since=off) is not None,
                  "%s PASS: no 'rejected ... Bad server password' in %s" % (label, p.log_path))
            ctx.step("password: %s PASS refused: %s" % (label, e.line))
        dave = user(ctx, "dave", IRC_IP, logs, password="s3cret-pass")
        erin = user(ctx, "erin", IRC_IP, logs, password="s3cret-pass")
        dave.join("#pw")
        erin.join("#pw")
        dave.say("#pw", "the right password works")
        erin.expect_privmsg(frm="dave", target="#pw", text="the right password works")
        ctx.step("password: the right PASS registers and talks")
        dave.quit()
        erin.quit()

    # ---- 5. server link over TLS ------------------------------------------------------------
    run = ctx.subdir("tls-link")
    a = NgircdServer(A_NAME, IRC_IP, run, tls=True, pki=pki)
    b = NgircdServer(B_NAME, IRC2_IP, run, pki=pki)
    link(a, b, active="b", tls=True)   # B dials A's TLS port, verifies A against the CA
    with a, b:
        took = a.wait_linked(b, timeout=30)
        line = b.log_contains(r'Got valid server certificate: .*CN=%s' % A_NAME)
        check(line is not None, "B's log does not show A's certificate verified: %s" % b.log_path)
        with IrcUser("frank", IRC_IP) as frank, IrcUser("grace", IRC2_IP) as grace:
            frank.join(CHAN)
            b.wait_members(CHAN, ["frank"])
            grace.join(CHAN)
            frank.expect_join("grace", CHAN)
            grace.say(CHAN, "over the TLS link")
            frank.expect_privmsg(frm="grace", target=CHAN, text="over the TLS link")
        ctx.step("tls-link: B dialled A's TLS port in %.1f s, certificate verified, chat crosses" % took)


if __name__ == "__main__":
    run_test(test)
