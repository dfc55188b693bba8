#!/usr/bin/python3
"""Portcullis's IRC gateway side by side with biboumi (issue 10), in one run.

Two gateways, each in front of the same IRC network built the same way: two linked
ngIRCd 26 servers, irc-a.test (the gateway's, TLS on 6697 with a test CA) and
irc-b.test, where the python3-irc users carl and erin sit (so the channel spans the
server link, as in test_portcullis_irc.py).

  (a) biboumi 9 as an external component irc.a.test of a private Prosody a.test; the
      XMPP users (alice, dave, frank @a.test) join #ops%<irc-a>@irc.a.test
      (loopback net PORTCULLIS_TEST_NET=127.0.41);
  (b) Portcullis: the sandwich with edge(low) hosting ops@rooms.low.test linked to #ops
      and federated with ops@rooms.high.test; bob@b.test on the high side (across the
      boundary) and, like for like with biboumi, alice@a.test on the low side, the IRC
      side (127.0.42).

Each gateway runs in its own child process (own loopback net, own processes, all
stopped on exit). For each it measures messages/s of a flood of N messages and p50/p99
latency one in flight, XMPP->IRC and IRC->XMPP, with gateway pacing off; then an
XMPP->IRC flood through a paced link (both gateways set to the same pacing: a burst of
10 lines, then one per second: biboumi's default throttle, Portcullis flood-burst=10
flood-interval-ms=1000). ngIRCd runs with MaxPenaltyTime=0 (no server-side flood
penalty), so the figures are the gateways', not ngIRCd's per-client penalty (with
ngIRCd's default, a client gets about one line per 2 s after a short burst;
real-peers.md). Then a feature probe that exercises what both can be observed to do:
/me both ways, private messages both ways, topic <-> subject, nick change, quit, kick
(of an IRC user and of the XMPP user's IRC identity), formatting codes, a 1400-byte and
an 8000-byte message (lines, <= 512 bytes), a nick collision, and an IRC server restart
(reconnect by itself? room told? what is said meanwhile?).

    /usr/bin/python3 test/bench/bench_irc.py --build-dir build [--messages 500] [--latency 50] [--paced 30]

Figures and the feature table go to stdout and to <run dir>/bench_irc.json and
bench_irc.md (run dir: /tmp/portcullis-interop/bench_irc unless --run-dir). Every
process shares the same cores: compare the two gateways measured in the same run only.
"""

import argparse
import html
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

NETS = {"biboumi": "127.0.41", "portcullis": "127.0.42"}
CHAN, PACED = "#ops", "#paced"
AWAY_TEXT = "said while IRC was away"


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ==== one gateway (child process) =======================================================

class Speaker:
    """An XMPP user in the gatewayed room, with arrival times of every message body."""

    def __init__(self, label, session, room, nick, irc_nick, share=None):
        self.label, self.s, self.room, self.nick, self.irc_nick = label, session, room, nick, irc_nick
        if share is not None:   # another room of the same session: one hook, one record
            self.arrivals = share.arrivals
            return
        self.arrivals = {}
        orig = session.client.message_hook

        def hook(stanza):
            self.arrivals.setdefault(stanza["body"], []).append(time.monotonic())
            orig(stanza)
        session.client.message_hook = hook

    def wait_body(self, body, timeout):
        return self.s._wait(lambda: self.arrivals.get(body) or None, timeout, "message %r" % body)

    def clear(self):
        with self.s._cond:
            self.s._messages.clear()
        self.arrivals.clear()

    def flood(self, room, bodies, mtype="groupchat"):
        client = self.s.client

        def do():
            for b in bodies:
                client.make_message(mto=room, mbody=b, mtype=mtype).send()
        self.s._lt.call(do, timeout=60)

    def rejoin(self, timeout=30):
        with self.s._cond:
            self.s._presences.clear()
        return self.s.join_room(self.room, self.nick, timeout=timeout)


def irc_arrivals(user, since, marker):
    """{text: [monotonic times]} of PRIVMSG texts containing `marker` received by `user`
    after `since`."""
    out = {}
    for t, d, line in user.raw_lines():
        if d != "<" or t < since or marker not in line or " PRIVMSG " not in line:
            continue
        text = line.split(" :", 2)[-1] if line.startswith(":") else line.split(" :", 1)[-1]
        out.setdefault(text, []).append(t)
    return out


def pump_until(pred, timeout, interval=0.05):
    from harness.ircclient import pump
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        pump(min(interval, max(0.0, deadline - time.monotonic())))
    return pred()


def measure(sp, carl, channel, n, m, tag, i2x_also=()):
    """Flood of n and m one-in-flight messages both ways between speaker `sp` and carl."""
    from harness.ircclient import pump
    res = {}
    # XMPP -> IRC flood
    carl.drain(0.3)
    bodies = ["x2i-%s-%d" % (tag, k) for k in range(n)]
    t0 = time.monotonic()
    sp.flood(sp.room, bodies)
    want = set(bodies)
    arr = pump_until(lambda: (lambda a: a if want <= set(a) else None)(irc_arrivals(carl, t0, "x2i-%s-" % tag)),
                     60 + n * 0.05) or irc_arrivals(carl, t0, "x2i-%s-" % tag)
    got = {b: ts for b, ts in arr.items() if b in want}
    last = max((ts[0] for ts in got.values()), default=None)
    res["x2i_flood"] = {"sent": n, "delivered": len(got), "duplicates": sum(len(v) - 1 for v in got.values()),
                        "seconds": (last - t0) if last else None,
                        "msgs_per_s": (len(got) / (last - t0)) if last and last > t0 else None}
    carl.drain(0.5)
    sp.clear()
    # IRC -> XMPP flood (every speaker in i2x_also gets it too)
    bodies = ["i2x-%s-%d" % (tag, k) for k in range(n)]
    t0 = time.monotonic()
    for k, b in enumerate(bodies):
        carl.say(channel, b)
        if k % 50 == 49:
            pump(0)
    for who in (sp,) + tuple(i2x_also):
        def have(who=who):
            return all(b in who.arrivals for b in bodies)
        pump_until(have, 60 + n * 0.05)
        got = {b: who.arrivals[b] for b in bodies if b in who.arrivals}
        last = max((ts[0] for ts in got.values()), default=None)
        key = "i2x_flood" if who is sp else "i2x_flood_" + who.label
        res[key] = {"sent": n, "delivered": len(got), "duplicates": sum(len(v) - 1 for v in got.values()),
                    "seconds": (last - t0) if last else None,
                    "msgs_per_s": (len(got) / (last - t0)) if last and last > t0 else None}
    time.sleep(0.5)
    for who in (sp,) + tuple(i2x_also):
        who.clear()
    carl.drain(0.2)
    # one in flight, XMPP -> IRC
    xs = []
    for k in range(m):
        body = "lx-%s-%d" % (tag, k)
        t0 = time.monotonic()
        sp.s.send_groupchat(sp.room, body)
        carl.expect_privmsg(frm=sp.irc_nick, target=channel, text=body, timeout=20)
        a = irc_arrivals(carl, t0, body).get(body)
        xs.append(((a[0] if a else time.monotonic()) - t0) * 1000)
    res["x2i_latency_ms"] = {"n": m, "p50": pct(xs, 50), "p99": pct(xs, 99)}
    # one in flight, IRC -> XMPP
    xs = []
    for k in range(m):
        body = "li-%s-%d" % (tag, k)
        t0 = time.monotonic()
        carl.say(channel, body)
        pump(0)
        ts = sp.wait_body(body, 20)
        xs.append((ts[0] - t0) * 1000)
    res["i2x_latency_ms"] = {"n": m, "p50": pct(xs, 50), "p99": pct(xs, 99)}
    for who in (sp,) + tuple(i2x_also):
        who.clear()
    carl.drain(0.3)
    return res


def measure_paced(sp, carl, channel, n, tag):
    """XMPP -> IRC flood of n through a paced link: when each line reached carl."""
    carl.drain(0.3)
    bodies = ["px-%s-%d" % (tag, k) for k in range(n)]
    t0 = time.monotonic()
    sp.flood(sp.room, bodies)
    want = set(bodies)
    arr = pump_until(lambda: (lambda a: a if want <= set(a) else None)(irc_arrivals(carl, t0, "px-%s-" % tag)),
                     30 + n * 2.5) or irc_arrivals(carl, t0, "px-%s-" % tag)
    times = sorted(arr[b][0] - t0 for b in bodies if b in arr)
    out = {"sent": n, "delivered": len(times), "seconds": times[-1] if times else None,
           "msgs_per_s": len(times) / times[-1] if times and times[-1] > 0 else None,
           "first_10_within_s": times[9] if len(times) >= 10 else None,
           "after_burst_lines_per_s": ((len(times) - 10) / (times[-1] - times[9])
                                       if len(times) > 11 and times[-1] > times[9] else None)}
    carl.drain(0.3)
    sp.clear()
    return out


def irc_net(run, with_ops=True):
    from harness.addresses import IRC2_IP, IRC_IP
    from harness.ngircd import NgircdServer, link, make_irc_pki
    pki = make_irc_pki(os.path.join(run, "irc-pki"), {"irc-a.test": IRC_IP, "irc-b.test": IRC2_IP})
    opts = {"OperCanUseMode": "yes", "OperServerMode": "yes"}
    a = NgircdServer("irc-a.test", IRC_IP, os.path.join(run, "ngircd"), tls=True, pki=pki, options=opts,
                     max_penalty_time=0)
    b = NgircdServer("irc-b.test", IRC2_IP, os.path.join(run, "ngircd"), pki=pki, options=opts,
                     operators={"carl": "carl-oper-pw"}, max_penalty_time=0)
    link(a, b, active="b")
    return pki, a, b


def _status(p):
    if "<status>" not in p["xml"]:
        return ""
    return html.unescape(p["xml"].split("<status>", 1)[1].split("</status>", 1)[0])


def probe(results, name, fn):
    """Runs one feature probe; records {"observed": text, "ok": bool|None}."""
    t0 = time.monotonic()
    try:
        ok, text = fn()
    except Exception as e:  # a probe that fails is an observation too
        ok, text = False, "probe failed: %s" % str(e)[:300]
    results[name] = {"ok": ok, "observed": text, "seconds": round(time.monotonic() - t0, 2)}
    print("  [%s] %-22s %s" % ({True: "yes", False: "NO ", None: " ? "}[ok], name, text), flush=True)


def features(g, sp, others, carl, erin, a, b, run):
    """The feature probe, through adapter `g` (BiboumiRun / PortcullisRun)."""
    from harness.ircclient import IrcUser
    from harness.addresses import IRC2_IP
    r = {}
    room = sp.room

    def me_x2i():
        sp.s.send_groupchat(room, "/me nods")
        m = carl.expect_action(frm=sp.irc_nick, target=CHAN, timeout=15)
        return m.text == "nods", "carl got CTCP ACTION %r from %s" % (m.text, m.nick)
    probe(r, "/me XMPP->IRC", me_x2i)

    def me_i2x():
        carl.action(CHAN, "waves")
        m = sp.s.expect_message(room + "/carl", None, timeout=15, mtype="groupchat")
        return m["body"] == "/me waves", "XMPP body %r" % m["body"]
    probe(r, "/me IRC->XMPP", me_i2x)

    def pm_x2i():
        sp.s.send(g.pm_jid("carl"), "a private word", mtype="chat")
        m = carl.expect_privmsg(target="carl", text="a private word", timeout=15)
        return True, "carl got PRIVMSG carl from %s" % m.nick
    probe(r, "PM XMPP->IRC", pm_x2i)

    def pm_i2x():
        carl.say(sp.irc_nick, "private reply from IRC")
        m = sp.s.expect_message(None, "private reply from IRC", timeout=15)
        return True, "XMPP got type=%s from %s" % (m["type"], m["from"])
    probe(r, "PM IRC->XMPP", pm_i2x)

    # carl becomes channel operator (IRC operator + MODE +o), for TOPIC and KICK
    try:
        carl.raw("OPER carl carl-oper-pw")
        carl.expect_numeric(381, timeout=10)
        if carl.names(CHAN).get("carl") != "@":
            carl.raw("MODE %s +o carl" % CHAN)
            carl.expect_mode(CHAN, timeout=10)
    except Exception as e:
        print("  (carl could not become chanop: %s)" % e, flush=True)
    print("  (carl is %s on %s)" % ("chanop" if carl.names(CHAN).get("carl") == "@" else "NOT chanop", CHAN), flush=True)
    sp.clear()

    def topic_i2x():
        for o in others:
            o.clear()
        carl.topic(CHAN, "topic set on IRC")

        def hit(who):
            for m in who.s.messages():
                if "<subject>topic set on IRC</subject>" in m["xml"]:
                    return m
            return None
        try:
            m = sp.s._wait(lambda: hit(sp), 15, "subject")
            text = "XMPP subject from %s" % m["from"]
        except Exception:
            m, text = None, "no subject reached %s within 15 s" % sp.label
        for o in others:
            h = hit(o)
            text += "; %s: %s" % (o.label, ("subject from %s" % h["from"]) if h else "no subject either")
        return m is not None, text
    probe(r, "topic IRC->subject", topic_i2x)

    def subject_x2i():
        sp.s.send_raw('<message to="%s" type="groupchat"><subject>subject set on XMPP</subject></message>' % room)
        m = carl.expect_topic(CHAN, "subject set on XMPP", timeout=10)
        return True, "IRC TOPIC from %s" % (m.nick or m.prefix)
    probe(r, "subject XMPP->topic", subject_x2i)

    def nick_change():
        erin.nick_change("erin2")
        p = sp.s.expect_presence(room + "/erin", "unavailable", None, timeout=15)
        sp.s.expect_presence(room + "/erin2", None, None, timeout=15)
        if "303" in p["codes"]:
            return True, "room saw erin -> erin2 as a nick change (303)"
        return False, "room saw erin leave (codes %s, status %r) and erin2 join: no 303 nick change" % (
            p["codes"], _status(p))
    probe(r, "nick change IRC", nick_change)

    def kick_irc():
        carl.kick(CHAN, "erin2", "kick test")
        p = sp.s.expect_presence(room + "/erin2", "unavailable", None, timeout=15)
        return "307" in p["codes"], "erin2 left the room, codes %s, status %r" % (p["codes"], _status(p))
    probe(r, "kick of IRC user", kick_irc)

    def quit_irc():
        erin.join(CHAN)
        sp.s.expect_presence(room + "/erin2", None, None, timeout=15)
        erin.quit("gone home")
        p = sp.s.expect_presence(room + "/erin2", "unavailable", None, timeout=15)
        return True, "erin2 left the room, codes %s, status %r" % (p["codes"], _status(p))
    probe(r, "quit IRC user", quit_irc)

    def formatting():
        carl.say(CHAN, "\x02bold\x02 and \x0304red\x03 and \x1funder\x1f")
        m = sp.s.expect_message(room + "/carl", None, timeout=15, mtype="groupchat")
        clean = m["body"] == "bold and red and under"
        xhtml = "xhtml" in m["xml"]
        return clean, "XMPP body %r%s" % (m["body"], " (+ XHTML-IM)" if xhtml else "")
    probe(r, "formatting stripped", formatting)

    def long_split(size, name):
        text = " ".join("w%04d" % i for i in range(size // 6))
        carl.drain(0.3)
        t0 = time.monotonic()
        sp.s.send_groupchat(room, text)
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and " ".join(lines) != text:
            try:
                m = carl.expect_privmsg(frm=sp.irc_nick, target=CHAN, timeout=max(0.5, min(8, deadline - time.monotonic())))
            except Exception:
                break
            lines.append(m.text)
        raw = [(t, line) for t, d, line in carl.raw_lines() if d == "<" and t >= t0 and " PRIVMSG %s :" % CHAN in line]
        longest = max((len(line.encode()) + 2 for _, line in raw), default=0)
        whole = " ".join(lines) == text
        late = ""
        if not whole and lines:
            # Lost, or held somewhere until the same connection sends again? Nudge it.
            sp.s.send_groupchat(room, "nudge after the long message")
            more = []
            end = time.monotonic() + 10
            while time.monotonic() < end:
                try:
                    m = carl.expect_privmsg(frm=sp.irc_nick, target=CHAN, timeout=max(0.5, end - time.monotonic()))
                except Exception:
                    break
                if m.text == "nudge after the long message":
                    break
                more.append(m.text)
            lines += more
            whole = " ".join(lines) == text
            late = "; after one more message from the same XMPP user, %d more line(s) arrived%s" % (
                len(more), " and the text is whole" if whole else "")
        joined = " ".join(lines)
        return (whole and longest <= 512), "%d bytes -> %d IRC lines, longest %d bytes with CRLF as received, %s" % (
            len(text.encode()), len(lines), longest,
            "text whole" if whole else "text NOT whole (%d of %d bytes arrived%s)" % (
                len(joined.encode()), len(text.encode()), ", ends %r" % joined[-40:] if joined else "")) + late
    probe(r, "long message 1400 B", lambda: long_split(1400, "1400"))
    probe(r, "long message 8000 B", lambda: long_split(8000, "8000"))

    def kick_puppet():
        sp.clear()
        carl.kick(CHAN, sp.irc_nick, "kick the gateway user")
        time.sleep(3)
        pres = [p for p in sp.s.presences() if p["from"].startswith(room)][-6:]
        msgs = [m["body"][:80] for m in sp.s.messages() if m["body"]][-3:]
        selfout = [p for p in pres if p["from"] == room + "/" + sp.nick and p["type"] == "unavailable"]
        back = pump_until(lambda: sp.irc_nick.lower() in [n.lower() for n in a.names(CHAN)], 10)
        text = ("XMPP user %s (codes %s)" % ("removed from the room" if selfout else "still in the room",
                                            selfout[-1]["codes"] if selfout else "-")
                + "; IRC identity %s" % ("back in %s" % CHAN if back else "not back in %s after 10 s" % CHAN)
                + ("; messages %s" % msgs if msgs else ""))
        if selfout:
            sp.rejoin()
            text += "; the XMPP user rejoined"
        if not back:
            back = pump_until(lambda: sp.irc_nick.lower() in [n.lower() for n in a.names(CHAN)], 20)
            text += "; then IRC identity %s" % ("back" if back else "still not back after 20 s more")
        return None, text
    probe(r, "kick of XMPP user", kick_puppet)

    def collision(in_channel, user, irc_nick):
        """An IRC user already holds the nick the XMPP user `user` joins with."""
        holder = IrcUser(irc_nick, IRC2_IP, log_path=os.path.join(run, irc_nick + "-irc.log")).connect()
        if in_channel:
            holder.join(CHAN)
            a.wait_members(CHAN, [irc_nick], timeout=15)
            time.sleep(1)
        before = set(n.lower() for n in a.names(CHAN))
        fs = g.xmpp_session(user)
        room_u = g.room_for(user)
        try:
            fs.join_room(room_u, irc_nick, timeout=20)
        except Exception as e:
            holder.close()
            fs.close()
            return None, "the XMPP user's join as %r refused: %s" % (irc_nick, str(e).split("refused: ")[-1][:120])
        fs.send_groupchat(room_u, "%s from XMPP" % irc_nick)
        try:
            m = carl.expect_privmsg(target=CHAN, text="%s from XMPP" % irc_nick, timeout=15)
            seen = m.nick
        except Exception:
            seen = None
        after = set(n.lower() for n in a.names(CHAN))
        holder.close()
        fs.close()
        if seen is None:
            return False, "joined as %r, but the message never reached IRC (new nicks %s)" % (irc_nick, sorted(after - before))
        return seen.lower() != irc_nick.lower(), "joined as %r; IRC shows the XMPP user as %r (new nicks %s)" % (
            irc_nick, seen, sorted(after - before))
    probe(r, "nick collision (IRC holder in channel)", lambda: collision(True, "frank", "frank"))
    probe(r, "nick collision (IRC holder elsewhere)", lambda: collision(False, "gina", "gina"))

    # IRC server restart: the gateway's server goes away and comes back
    sp.clear()
    carl.drain(0.2)
    res = {}

    def restart():
        p0 = len(sp.s.presences())
        a.stop()
        time.sleep(8)
        pres = sp.s.presences()[p0:]
        gone = [p for p in pres if p["type"] == "unavailable"]
        told = [m["body"] for m in sp.s.messages() if m["body"]]
        res["down"] = "room saw %d departures (%s)%s" % (
            len(gone), ", ".join("%s in %s codes %s" % (p["from"].split("/")[-1], p["from"].split("@")[0],
                                                       "/".join(p["codes"]) or "-") for p in gone[:4]),
            ("; messages: %s" % [t[:80] for t in told[:3]]) if told else "; no message")
        e0 = len(sp.s.errors())
        sp.s.send_groupchat(room, AWAY_TEXT)
        time.sleep(3)
        errs = sp.s.errors()[e0:]
        res["while_away"] = ("error back to the author: %s" % errs[0]["condition"]) if errs else "no error back"
        t_up = time.monotonic()
        a.start()
        a.wait_linked(b, timeout=40)
        back = pump_until(lambda: g.gateway_nick().lower() in [n.lower() for n in a.names(CHAN)], 60, interval=1.0)
        res["reconnect_s"] = round(time.monotonic() - t_up, 1) if back else None
        if not back:
            res["manual"] = "rejoined by hand"
            sp.rejoin(timeout=40)
        got_away = pump_until(lambda: [l for t, d, l in carl.raw_lines() if d == "<" and AWAY_TEXT in l], 20)
        res["away_msg"] = ("reached IRC %d time(s): %r" % (len(got_away), got_away[0].split(" :", 2)[-1][:80])
                           if got_away else "never reached IRC")
        carl.say(CHAN, "back again")
        sp.s.expect_message(room + "/carl", "back again", timeout=20, mtype="groupchat")
        res["after"] = "chat crosses again"
        text = ("reconnected by itself after %.1f s" % res["reconnect_s"] if back else
                "did NOT reconnect within 60 s (%s)" % res["manual"])
        text += "; down: %s; said while away: %s, %s; %s" % (res["down"], res["while_away"], res["away_msg"], res["after"])
        return bool(back), text
    probe(r, "IRC server restart", restart)
    r["IRC server restart"]["detail"] = res
    return r


def close_all(sessions, *servers):
    """Closes the XMPP sessions, then stops the servers (gateway, federation), each once."""
    for s in sessions:
        try:
            s.close()
        except Exception:
            pass
    for srv in servers:
        if srv is not None:
            srv.stop()


class BiboumiRun:
    """(a): biboumi on Prosody."""
    name = "biboumi"

    def __init__(self, run, build):
        self.run = run

    def start(self, pki):
        from harness.addresses import A_IP, IRC_IP
        from harness.biboumi import BiboumiGateway
        from harness.topology import Federation
        self.irc_ip = IRC_IP
        users = {u: u + "-pw" for u in ("alice", "dave", "frank", "gina")}
        self.fed = Federation(os.path.join(self.run, "xmpp"), topology="direct", users=users, log_level="info",
                              prosody_opts={"a": {"components": {"irc.a.test": "biboumi-secret"}}}).start()
        self.gw = BiboumiGateway("irc.a.test", "biboumi-secret", A_IP, self.run, ca_file=pki.ca, bind_ip=A_IP,
                                 log_level=1).start(self.fed.a)
        self.sessions = []
        return self

    def xmpp_session(self, user):
        s = self.fed.session("a", user).start()
        self.sessions.append(s)
        # TLS on 6697 only (no plain-text fallback), certificate verified against the test CA.
        self.gw.configure_server(s, self.irc_ip, {"ports": [], "tls_ports": ["6697"], "verify_cert": "true"})
        return s

    def room_for(self, user, channel=CHAN):
        return self.gw.channel_jid(channel, self.irc_ip)

    def pm_jid(self, nick):
        return self.gw.channel_jid(CHAN, self.irc_ip) + "/" + nick

    def gateway_nick(self):
        return "alice"

    def speakers(self, carl):
        alice = self.xmpp_session("alice")
        # pacing off for alice (throttle_limit -1); dave keeps biboumi's default (10, then 1/s)
        self.gw.configure_server(alice, self.irc_ip, {"throttle_limit": "-1"})
        dave = self.xmpp_session("dave")
        alice.join_room(self.room_for("alice"), "alice", timeout=30)
        dave.join_room(self.room_for("dave", PACED), "dave", timeout=30)
        carl.expect_join("alice", CHAN, timeout=20)
        carl.expect_join("dave", PACED, timeout=20)
        main = Speaker("alice", alice, self.room_for("alice"), "alice", "alice")
        paced = Speaker("dave", dave, self.room_for("dave", PACED), "dave", "dave")
        return main, [], paced

    def stop(self):
        close_all(getattr(self, "sessions", []), getattr(self, "gw", None), getattr(self, "fed", None))


class PortcullisRun:
    """(b): Portcullis's sandwich gateway."""
    name = "portcullis"

    def __init__(self, run, build):
        self.run, self.build = run, build

    def start(self, pki):
        from harness.addresses import A_ROOMS, B_ROOMS, IRC_IP
        from harness.ngircd import IRC_TLS_PORT
        from harness.topology import Federation, fmuc_policy_text, write_pseudonym_key
        from harness import procs
        self.A_ROOMS, self.B_ROOMS = A_ROOMS, B_ROOMS
        xmpp = os.path.join(self.run, "xmpp")
        os.makedirs(xmpp, exist_ok=True)
        write_pseudonym_key(xmpp)

        def irc(channel, nick, pacing):
            return ('<irc server="%s" port="%d" server-name="irc-a.test" ca="%s" channel="%s" nick="%s" '
                    'max-nick-length="30" line-cap="8" %s retry-ms="500" retry-max-ms="4000"/>'
                    % (IRC_IP, IRC_TLS_PORT, pki.ca, channel, nick, pacing))
        # pacing off (ops) vs the same pacing as biboumi's default (paced)
        unpaced = 'flood-burst="100" flood-interval-ms="0"'
        paced = 'flood-burst="10" flood-interval-ms="1000"'
        low = ('    <rooms domain="%s" ping-interval-ms="2000" retry-ms="1000">\n'
               '      <room name="ops" subject="ops subject"><federate with="ops@%s"/>%s</room>\n'
               '      <room name="paced" subject="paced subject"><federate with="paced@%s"/>%s</room>\n'
               '    </rooms>' % (A_ROOMS, B_ROOMS, irc(CHAN, "pcgate", unpaced), B_ROOMS, irc(PACED, "pcpaced", paced)))
        high = ('    <rooms domain="%s" ping-interval-ms="2000" retry-ms="1000">\n'
                '      <room name="ops" subject="ops subject"><accept from="ops@%s"/></room>\n'
                '      <room name="paced" subject="paced subject"><accept from="paced@%s"/></room>\n'
                '    </rooms>' % (B_ROOMS, A_ROOMS, A_ROOMS))
        users = {u: u + "-pw" for u in ("alice", "bob", "frank", "gina")}
        self.fed = Federation(xmpp, topology="portcullis", mode="cert", build_dir=self.build, users=users,
                              log_level="info", rooms_xml={"low": low, "high": high},
                              policy_text=fmuc_policy_text(rooms=("ops", "paced"))).start()
        self.sessions = []
        self.procs = procs
        return self

    def wait_gateway(self, a):
        self.procs.wait_until(lambda: "pcgate" in a.names(CHAN) and "pcpaced" in a.names(PACED), 30,
                              "the Portcullis gateway to join %s and %s" % (CHAN, PACED))

    def xmpp_session(self, user):
        side = "a" if user == "alice" else "b"
        s = self.fed.session(side, user).start()
        self.sessions.append(s)
        return s

    def room_for(self, user, channel=CHAN):
        name = channel.lstrip("#")
        return "%s@%s" % (name, self.A_ROOMS if user == "alice" else self.B_ROOMS)

    def pm_jid(self, nick):
        return self.room_for("bob") + "/" + nick

    def gateway_nick(self):
        return "pcgate"

    def speakers(self, carl):
        from harness.muc import wait_occupant
        bob = self.xmpp_session("bob")
        alice = self.xmpp_session("alice")
        bob.join_room(self.room_for("bob"), "bob", timeout=30)
        alice.join_room(self.room_for("alice"), "alice", timeout=30)
        bob.join_room(self.room_for("bob", PACED), "bob", timeout=30)
        for who, r in ((bob, self.room_for("bob")), (alice, self.room_for("alice")), (bob, self.room_for("bob", PACED))):
            wait_occupant(who, r, "carl", timeout=30)
        carl.expect_join("bob", CHAN, timeout=30)
        carl.expect_join("alice", CHAN, timeout=30)
        # IRC nicks are network-wide: bob's second puppet (for #paced) gets the collision suffix.
        pj = carl.expect_join(None, PACED, timeout=30)
        while pj.nick.lower() in ("carl", "erin", "pcpaced"):
            pj = carl.expect_join(None, PACED, timeout=30)
        self.paced_nick = pj.nick
        main = Speaker("bob (high side)", bob, self.room_for("bob"), "bob", "bob")
        same = Speaker("alice (low side)", alice, self.room_for("alice"), "alice", "alice")
        paced = Speaker("bob (high side)", bob, self.room_for("bob", PACED), "bob", pj.nick, share=main)
        return main, [same], paced

    def stop(self):
        close_all(getattr(self, "sessions", []), getattr(self, "fed", None))


def run_phase(kind, args):
    from harness import appliance, procs
    from harness.addresses import IRC2_IP, NET
    from harness.ircclient import IrcUser
    assert NET == NETS[kind], "PORTCULLIS_TEST_NET must be %s for %s" % (NETS[kind], kind)
    run = os.path.join(args.run_dir, kind)
    os.makedirs(run, exist_ok=True)
    out = {"gateway": kind, "net": NET, "messages": args.messages, "latency_messages": args.latency,
           "paced_messages": args.paced}
    g = (BiboumiRun if kind == "biboumi" else PortcullisRun)(run, os.path.abspath(args.build_dir))
    pki, a, b = irc_net(run)
    try:
        a.start()
        b.start()
        a.wait_linked(b, timeout=30)
        carl = IrcUser("carl", IRC2_IP, log_path=os.path.join(run, "carl.log")).connect()
        erin = IrcUser("erin", IRC2_IP, log_path=os.path.join(run, "erin.log")).connect()
        g.start(pki)
        if kind == "portcullis":
            g.wait_gateway(a)
        carl.join(CHAN)
        carl.join(PACED)
        erin.join(CHAN)
        a.wait_members(CHAN, ["carl", "erin"], timeout=15)
        main, others, paced = g.speakers(carl)
        time.sleep(1.0)
        carl.drain(0.5)
        print("%s: measuring (%d-message floods, %d one in flight)" % (kind, args.messages, args.latency), flush=True)
        out["rows"] = {main.label: measure(main, carl, CHAN, args.messages, args.latency, "m", i2x_also=tuple(others))}
        for o in others:
            out["rows"][o.label] = measure(o, carl, CHAN, args.messages, args.latency, "o")
        for label, row in out["rows"].items():
            print("  %-18s %s" % (label, json.dumps(row)), flush=True)
        print("%s: paced link, %d-message XMPP->IRC flood" % (kind, args.paced), flush=True)
        out["paced"] = measure_paced(paced, carl, PACED, args.paced, "p")
        out["paced"]["irc_nick"] = paced.irc_nick
        print("  " + json.dumps(out["paced"]), flush=True)
        print("%s: feature probe" % kind, flush=True)
        out["features"] = features(g, main, others, carl, erin, a, b, run)
        carl.close()
    except Exception:
        out["error"] = traceback.format_exc()[-2000:]
        print(out["error"], file=sys.stderr, flush=True)
    finally:
        g.stop()
        a.stop()
        b.stop()
        procs.stop_all()
        appliance.remove_created_users()
        appliance.remove_routes()
    with open(os.path.join(args.run_dir, "%s.json" % kind), "w") as f:
        json.dump(out, f, indent=1)
    return 0 if "error" not in out else 1


# ==== the parent: both gateways, the table and the report ===============================

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v) + unit
    return str(v) + unit


def report(results, args, command):
    lines = ["# bench_irc: Portcullis's IRC gateway next to biboumi", "",
             "Command: `%s`" % command, "",
             "Host: %s, %d CPUs; ngIRCd MaxPenaltyTime=0; %d-message floods, %d one in flight, %d paced." % (
                 os.uname().nodename, os.cpu_count() or 0, args.messages, args.latency, args.paced), "",
             "## Throughput and latency (gateway pacing off)", "",
             "| gateway | XMPP user | XMPP->IRC msg/s | IRC->XMPP msg/s | XMPP->IRC p50 / p99 ms | IRC->XMPP p50 / p99 ms | delivered x2i / i2x (dups) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in ("biboumi", "portcullis"):
        res = results.get(kind) or {}
        for label, row in (res.get("rows") or {}).items():
            x, i = row["x2i_flood"], row["i2x_flood"]
            lx, li = row["x2i_latency_ms"], row["i2x_latency_ms"]
            lines.append("| %s | %s | %s | %s | %s / %s | %s / %s | %d/%d, %d/%d (%d, %d) |" % (
                kind, label, fmt(x["msgs_per_s"]), fmt(i["msgs_per_s"]), fmt(lx["p50"]), fmt(lx["p99"]),
                fmt(li["p50"]), fmt(li["p99"]), x["delivered"], x["sent"], i["delivered"], i["sent"],
                x["duplicates"], i["duplicates"]))
            for k, v in row.items():
                if k.startswith("i2x_flood_"):
                    lines.append("| %s | %s (same flood) | | %s | | | -, %d/%d (-, %d) |" % (
                        kind, k[len("i2x_flood_"):], fmt(v["msgs_per_s"]), v["delivered"], v["sent"], v["duplicates"]))
    lines += ["", "## Paced link (burst 10, then 1 line/s on both), XMPP->IRC", "",
              "| gateway | delivered | total s | msg/s | first 10 within s | after the burst lines/s |",
              "| --- | --- | --- | --- | --- | --- |"]
    for kind in ("biboumi", "portcullis"):
        p = (results.get(kind) or {}).get("paced")
        if p:
            lines.append("| %s | %d/%d | %s | %s | %s | %s |" % (kind, p["delivered"], p["sent"], fmt(p["seconds"]),
                                                              fmt(p["msgs_per_s"]), fmt(p["first_10_within_s"]),
                                                              fmt(p["after_burst_lines_per_s"])))
    lines += ["", "## Feature probe (observed)", "", "| feature | biboumi | Portcullis |", "| --- | --- | --- |"]
    names = []
    for kind in ("biboumi", "portcullis"):
        for n in ((results.get(kind) or {}).get("features") or {}):
            if n not in names:
                names.append(n)
    mark = {True: "yes", False: "**no**", None: "see"}
    for n in names:
        cells = []
        for kind in ("biboumi", "portcullis"):
            f = ((results.get(kind) or {}).get("features") or {}).get(n)
            cells.append("%s: %s" % (mark[f["ok"]], f["observed"].replace("|", "/")) if f else "-")
        lines.append("| %s | %s | %s |" % (n, cells[0], cells[1]))
    for kind in ("biboumi", "portcullis"):
        if (results.get(kind) or {}).get("error"):
            lines += ["", "%s phase error:" % kind, "", "```", results[kind]["error"], "```"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--messages", type=int, default=500, help="messages per flood")
    ap.add_argument("--latency", type=int, default=50, help="messages one in flight, per direction")
    ap.add_argument("--paced", type=int, default=30, help="messages of the paced XMPP->IRC flood")
    ap.add_argument("--only", choices=sorted(NETS), help="run one gateway only")
    ap.add_argument("--phase", choices=sorted(NETS), help=argparse.SUPPRESS)   # child process
    args = ap.parse_args()
    if args.phase:
        return run_phase(args.phase, args)
    from harness import appliance
    command = " ".join(["/usr/bin/python3", "test/bench/bench_irc.py"] + sys.argv[1:])
    args.run_dir = os.path.abspath(args.run_dir or appliance.run_dir("bench_irc"))
    os.makedirs(args.run_dir, exist_ok=True)
    results = {}
    rc = 0
    for kind in ("biboumi", "portcullis"):
        if args.only and kind != args.only:
            continue
        env = dict(os.environ, PORTCULLIS_TEST_NET=NETS[kind])
        argv = [sys.executable, os.path.abspath(__file__), "--phase", kind, "--build-dir", args.build_dir,
                "--run-dir", args.run_dir, "--messages", str(args.messages), "--latency", str(args.latency),
                "--paced", str(args.paced)]
        print("==== %s (loopback %s.0/24)" % (kind, NETS[kind]), flush=True)
        try:
            p = subprocess.run(argv, env=env, timeout=1500)
            rc |= p.returncode
        except subprocess.TimeoutExpired:
            print("%s: phase timed out" % kind, flush=True)
            rc = 1
        try:
            with open(os.path.join(args.run_dir, "%s.json" % kind)) as f:
                results[kind] = json.load(f)
        except (OSError, ValueError):
            results[kind] = {"error": "no result file"}
    md = report(results, args, command)
    with open(os.path.join(args.run_dir, "bench_irc.json"), "w") as f:
        json.dump({"command": command, "results": results}, f, indent=1)
    with open(os.path.join(args.run_dir, "bench_irc.md"), "w") as f:
        f.write(md)
    print()
    print(md)
    print("written: %s/bench_irc.json, bench_irc.md" % args.run_dir)
    return rc


if __name__ == "__main__":
    sys.exit(main())
