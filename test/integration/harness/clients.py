"""XMPP clients for tests (slixmpp 1.8, Debian's /usr/bin/python3).

Two layers:
* `XmppClient` - a slixmpp ClientXMPP for asyncio code (the benchmark): `await
  c.start(ip, port, timeout)`, `c.message_hook`/`c.error_hook` callbacks.
* `Session` - a synchronous wrapper for test scripts. All clients of the process
  share one background thread running one asyncio loop; every wait is bounded:

      with Session("alice@a.test", "pw", "127.0.0.2", ca_file=ca) as s:
          s.send("bob@b.test", "hello")
          s.expect_message("bob@b.test", "hi", timeout=10)
          s.expect_error(frm="nobody@b.test", condition="remote-server-timeout")
          s.join_room("room@conference.b.test", "alice")
          s.send_groupchat("room@conference.b.test", "hello room")
          s.expect_groupchat("room@conference.b.test", "bob", "hello alice")

Received messages and message errors are kept in arrival order; each expect_*
consumes the first match, so repeated identical messages are counted properly.
slixmpp reports message errors through 'message_error', not 'message', and only
'message' is used (registering 'groupchat_message' too would double-count;
real-peers.md pitfall 8).
"""

import asyncio
import logging
import threading
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from .addresses import C2S_PORT
from .procs import HarnessError

MUC_USER_NS = "{http://jabber.org/protocol/muc#user}"
STANZA_ERR_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)


class XmppClient(slixmpp.ClientXMPP):
    """A client that records nothing itself: it calls `message_hook(stanza)` for every
    non-error message, `error_hook(stanza)` for message errors and
    `presence_hook(stanza)` for every presence (including errors), on the loop."""

    def __init__(self, jid, password, ca_file=None):
        super().__init__(jid, password)
        if ca_file:
            self.ca_certs = Path(ca_file)  # c2s cert is verified against the test CAs
        self.message_hook = None
        self.error_hook = None
        self.presence_hook = None
        self._started = None
        self.add_event_handler("message", self._on_message)
        # slixmpp's 'message' event needs a <body/>: a subject change has none.
        self.register_handler(Callback("subject-only", MatchXPath("{jabber:client}message/{jabber:client}subject"),
                                       self._on_subject))
        self.add_event_handler("message_error", self._on_error)
        self.add_event_handler("presence", self._on_presence)
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("failed_auth", lambda *_: self._fail("authentication failed"))
        self.add_event_handler("disconnected", lambda *_: self._fail("disconnected"))
        self.add_event_handler("connection_failed",
                               lambda e=None: self._fail("connection failed: %s" % (e,)))

    def _fail(self, why):
        if self._started is not None and not self._started.done():
            self._started.set_exception(HarnessError("%s: %s" % (self.boundjid.bare, why)))

    async def _on_session_start(self, _event):
        self.send_presence()
        # Round trip to the server so the presence is processed before start() returns:
        # a message to the bare JID of a user with no available resource goes offline.
        iq = self.Iq()
        iq["type"] = "get"
        iq["to"] = self.boundjid.domain
        iq.append(ET.Element("{urn:xmpp:ping}ping"))
        try:
            await iq.send(timeout=10)
        except Exception as e:  # an error reply still proves the round trip
            if not isinstance(e, IqError):
                self._fail("ping after login failed: %r" % (e,))
                return
        if self._started is not None and not self._started.done():
            self._started.set_result(True)

    def _on_message(self, msg):
        if self.message_hook is not None:
            self.message_hook(msg)

    def _on_subject(self, msg):
        if not msg["body"] and msg["type"] != "error":
            self._on_message(msg)

    def _on_error(self, msg):
        if self.error_hook is not None:
            self.error_hook(msg)

    def _on_presence(self, pres):
        if self.presence_hook is not None:
            self.presence_hook(pres)

    async def start(self, ip, port=C2S_PORT, timeout=15):
        """Connects to ip:port (STARTTLS required), logs in, sends presence; bounded."""
        self._started = self.loop.create_future()
        self.connect(address=(ip, port), force_starttls=True)
        try:
            await asyncio.wait_for(asyncio.shield(self._started), timeout)
        except asyncio.TimeoutError:
            self.abort()
            raise HarnessError("%s: no session on %s:%d within %.0f s" % (
                self.boundjid.bare, ip, port, timeout)) from None
        except Exception:
            self.abort()
            raise

    async def stop(self, timeout=5):
        """Closes the stream (bounded), then drops the connection."""
        self._started = None
        try:
            await asyncio.wait_for(self.disconnect(wait=1.0), timeout)
        except Exception:
            pass
        self.abort()


def message_record(msg):
    """A plain dict of a message stanza (safe to hand across threads)."""
    return {"from": str(msg["from"]), "to": str(msg["to"]), "type": msg["type"],
            "body": msg["body"], "id": msg["id"], "xml": str(msg)}


def error_record(msg):
    err = msg.xml.find("{jabber:client}error")
    condition = None
    text = None
    if err is not None:
        for child in err:
            tag = child.tag.split("}")[-1]
            if child.tag.startswith("{" + STANZA_ERR_NS) and tag != "text":
                condition = condition or tag
            elif tag == "text":
                text = child.text
    return {"from": str(msg["from"]), "to": str(msg["to"]), "type": "error",
            "condition": condition, "text": text,
            "error_type": err.get("type") if err is not None else None,
            "body": msg["body"], "id": msg["id"], "xml": str(msg)}


def _quiet_exception_handler(loop, context):
    # slixmpp leaves its filter task pending after abort(); that is harmless noise.
    if "Task was destroyed but it is pending" in context.get("message", ""):
        return
    loop.default_exception_handler(context)


class _LoopThread:
    """The one background asyncio loop shared by every Session of the process."""

    _lock = threading.Lock()
    _instance = None

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet_exception_handler)
        self.thread = threading.Thread(target=self._run, name="xmpp-loop", daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, coro, timeout):
        """Runs a coroutine on the loop and returns its result (bounded)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise HarnessError("operation timed out after %.0f s" % timeout) from None

    def call(self, fn, *args, timeout=10):
        """Calls fn(*args) on the loop thread and returns its result."""
        async def wrapper():
            return fn(*args)
        return self.run(wrapper(), timeout)


def _jid_matches(actual, wanted):
    """Wanted with a resource ('room@x/nick') must match exactly; without, the bare JID."""
    if wanted is None:
        return True
    if "/" in wanted:
        return actual == wanted
    return actual.split("/")[0] == wanted


class Session:
    """A logged-in client for synchronous test code (see module docstring)."""

    def __init__(self, jid, password, server_ip, port=C2S_PORT, ca_file=None, timeout=15):
        self.jid = jid
        self.password = password
        self.server_ip = server_ip
        self.port = port
        self.ca_file = ca_file
        self.timeout = timeout
        self._lt = _LoopThread.get()
        self._cond = threading.Condition()
        self._messages = []
        self._errors = []
        self._presences = []
        self._presence_log = []   # every presence, never consumed (presences())
        self._message_log = []    # every message and message error, never consumed (received())
        self.client = None

    # ---- lifecycle -----------------------------------------------------------------

    def start(self):
        self.client = self._lt.call(XmppClient, self.jid, self.password, self.ca_file)
        self.client.message_hook = self._record(self._messages, message_record)
        self.client.error_hook = self._record(self._errors, error_record)
        record = self._record(self._presences, _presence_record)

        def presence(stanza):
            with self._cond:
                self._presence_log.append(_presence_record(stanza))
            record(stanza)
        self.client.presence_hook = presence
        self._lt.run(self.client.start(self.server_ip, self.port, self.timeout),
                     self.timeout + 5)
        return self

    def close(self):
        if self.client is not None:
            try:
                self._lt.run(self.client.stop(), 10)
            except HarnessError:
                pass
            self.client = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _record(self, store, convert):
        def hook(stanza):
            rec = convert(stanza)
            with self._cond:
                store.append(rec)
                if store is not self._presences:
                    self._message_log.append(rec)
                self._cond.notify_all()
        return hook

    # ---- sending -------------------------------------------------------------------

    def send(self, to, body, mtype="chat"):
        """Sends a message; returns its id."""
        def do():
            msg = self.client.make_message(mto=to, mbody=body, mtype=mtype)
            msg["id"] = self.client.new_id()
            msg.send()
            return msg["id"]
        return self._lt.call(do)

    def send_raw(self, xml):
        """Sends raw XML on the client stream (for hostile or unusual stanzas)."""
        self._lt.call(self.client.send_raw, xml)

    def send_groupchat(self, room, body):
        return self.send(room, body, mtype="groupchat")

    def join_room(self, room, nick, timeout=15, history=None):
        """Joins MUC `room` as `nick` and waits for the room's self-presence (status
        110). Raises HarnessError with the error condition if the join is refused.
        history: attributes of the <history/> request (default: maxchars=0, none)."""
        occupant = "%s/%s" % (room, nick)

        def do():
            pres = self.client.make_presence(pto=occupant)
            x = ET.SubElement(pres.xml, "{http://jabber.org/protocol/muc}x")
            ET.SubElement(x, "{http://jabber.org/protocol/muc}history",
                          history if history is not None else {"maxchars": "0"})
            pres.send()
        self._lt.call(do)

        def joined():
            for p in self._presences:
                if p["from"] == occupant and (p["type"] == "error" or p["self"]):
                    return p
            return None
        p = self._wait(joined, timeout, "self-presence from %s" % occupant)
        if p["type"] == "error":
            raise HarnessError("joining %s refused: %s" % (occupant, p["condition"]))
        return p

    def join_refused(self, room, nick, timeout=15):
        """Tries to join and returns the error condition of the refusal (raises if it is admitted)."""
        try:
            self.join_room(room, nick, timeout)
        except HarnessError as e:
            if "refused: " in str(e):
                return str(e).rsplit("refused: ", 1)[1]
            raise
        raise HarnessError("%s: joining %s/%s was admitted" % (self.jid, room, nick))

    def expect_presence(self, frm, ptype=None, code=None, timeout=10):
        """Waits for (and consumes) a presence from `frm` (full JID) of type `ptype`
        ('available', 'unavailable', 'error'; any if None) carrying muc#user status
        `code` (any if None). Returns its record."""
        def pred(p):
            return (p["from"] == frm and (ptype is None or p["type"] == ptype)
                    and (code is None or str(code) in p["codes"]))
        return self._wait(lambda: self._take(self._presences, pred), timeout,
                          "presence from %s type %s code %s" % (frm, ptype, code))

    def presences(self):
        """Every presence received so far, in order (expect_presence does not consume these)."""
        with self._cond:
            return list(self._presence_log)

    def leave_room(self, room, nick):
        self._lt.call(lambda: self.client.send_presence(pto="%s/%s" % (room, nick),
                                                        ptype="unavailable"))

    # ---- expectations --------------------------------------------------------------

    def _wait(self, find, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = find()
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HarnessError("%s: no %s within %.0f s" % (self.jid, what, timeout))
                self._cond.wait(left)

    def _take(self, store, pred):
        for i, rec in enumerate(store):
            if pred(rec):
                return store.pop(i)
        return None

    def expect_message(self, frm, body=None, timeout=10, mtype=None):
        """Waits for (and consumes) a message from `frm` (bare or full JID) with `body`
        (any if None) and type `mtype` (any if None). Returns the record dict."""
        def pred(m):
            return (_jid_matches(m["from"], frm) and (body is None or m["body"] == body)
                    and (mtype is None or m["type"] == mtype))
        return self._wait(lambda: self._take(self._messages, pred), timeout,
                          "message from %s body %r" % (frm, body))

    def expect_groupchat(self, room, nick, body=None, timeout=10):
        """Waits for a groupchat message in `room` from occupant `nick`."""
        return self.expect_message("%s/%s" % (room, nick), body, timeout, mtype="groupchat")

    def expect_error(self, frm=None, condition=None, timeout=15):
        """Waits for (and consumes) a message error from `frm` (any if None) with the
        stanza error `condition` (e.g. 'remote-server-timeout'; any if None)."""
        def pred(e):
            return _jid_matches(e["from"], frm) and (condition is None or
                                                     e["condition"] == condition)
        return self._wait(lambda: self._take(self._errors, pred), timeout,
                          "message error from %s condition %s" % (frm, condition))

    def expect_no_message(self, frm=None, body=None, wait=2.0):
        """Asserts that no matching message (or error) arrives within `wait` seconds."""
        def pred(m):
            return _jid_matches(m["from"], frm) and (body is None or m["body"] == body)
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                hit = next((m for m in self._messages + self._errors if pred(m)), None)
                if hit is not None:
                    raise HarnessError("%s: unexpected %s from %s: %r" % (
                        self.jid, hit["type"], hit["from"], hit["body"]))
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def messages(self):
        """Snapshot of the messages received and not yet consumed."""
        with self._cond:
            return list(self._messages)

    def errors(self):
        with self._cond:
            return list(self._errors)

    def received(self):
        """Every message and message error received so far, in arrival order,
        consumed or not (e.g. to check that none of them names some JID)."""
        with self._cond:
            return list(self._message_log)


def _presence_record(pres):
    x = pres.xml.find(MUC_USER_NS + "x")
    codes = set()
    if x is not None:
        codes = {s.get("code") for s in x.findall(MUC_USER_NS + "status")}
    condition = None
    err = pres.xml.find("{jabber:client}error")
    if err is not None:
        for child in err:
            if child.tag.startswith("{" + STANZA_ERR_NS) and not child.tag.endswith("}text"):
                condition = child.tag.split("}")[-1]
                break
    item = x.find(MUC_USER_NS + "item") if x is not None else None
    return {"from": str(pres["from"]), "type": pres["type"], "self": "110" in codes,
            "codes": sorted(c for c in codes if c), "jid": item.get("jid") if item is not None else None,
            "condition": condition, "xml": str(pres)}
