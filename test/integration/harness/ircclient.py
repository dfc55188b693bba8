"""Real IRC clients (python3-irc 8.5.3) for synchronous test code.

    with IrcUser("alice", IRC_IP) as alice, IrcUser("bob", IRC2_IP) as bob:
        alice.join("#ops"); bob.join("#ops")
        alice.expect_join("bob", "#ops")
        bob.say("#ops", "hi")
        alice.expect_privmsg(frm="bob", target="#ops", text="hi")

What python3-irc does here: the connection (irc.client.ServerConnection: registration
with PASS/NICK/USER, every command the helpers send, CTCP ACTION quoting, the 512-byte
limit). What the harness does itself: reading. Every received line is parsed here into
a Record (prefix, command, params) rather than through irc.client's event translation,
which drops information (tags, raw bytes) and raises on some legal lines (a QUIT without
parameters). Lines are decoded as UTF-8, falling back to Latin-1 (Record.utf8 says which),
so a gateway sending invalid UTF-8 shows up in a record instead of killing the reader.

There is no thread: all IrcUsers share one irc.client.IRC reactor, and every wait pumps
it (select with a short timeout) until its condition holds or its timeout runs out, so
every user's socket is read and every server PING answered whichever user a test waits
on. Everything is bounded; a failed wait raises HarnessError naming the user, what it
waited for, and the last lines received. Expectations consume the record they match.
"""

import os
import re
import socket
import ssl
import time

import irc.buffer
import irc.client

from .addresses import IRC_PORT
from .procs import HarnessError

SOCKET_TIMEOUT = 10.0       # bound on any blocking send/recv of a client socket
_PUMP_SLICE = 0.05          # seconds per select() while waiting

_reactor = None
_users = []                 # live IrcUsers (for pumping TLS sockets with buffered data)


class IrcError(HarnessError):
    """An IRC-level failure of a client (refused registration, command refused...)."""


class IrcRefused(IrcError):
    """The server refused something with a numeric or ERROR: .code ("464", "433",
    "ERROR", "disconnect", ...), .line (the raw line), .record."""

    def __init__(self, message, code, line=None, record=None):
        super().__init__(message)
        self.code = code
        self.line = line
        self.record = record


def reactor():
    global _reactor
    if _reactor is None:
        _reactor = irc.client.IRC()
    return _reactor


def pump(timeout=_PUMP_SLICE):
    """Reads whatever has arrived on every client connection (bounded by `timeout`)."""
    r = reactor()
    for u in list(_users):
        c = u.conn
        s = getattr(c, "socket", None) if c is not None else None
        if isinstance(s, ssl.SSLSocket):
            try:
                if s.pending():
                    c.process_data()  # decrypted bytes select() cannot see
            except (OSError, ValueError):
                pass
    r.process_once(timeout)


def is_channel(name):
    return bool(name) and name[0] in "#&+!"


def irc_lower(s):
    # ngIRCd announces CASEMAPPING=ascii
    return s.lower() if s is not None else None


def parse_line(line):
    """Splits an IRC line into (tags, prefix, command, params); tags is a dict (IRCv3
    message tags, which ngIRCd 26 does not send), prefix may be None, command is upper
    case, params includes the trailing parameter."""
    tags = {}
    rest = line
    if rest.startswith("@"):
        tagstr, _, rest = rest.partition(" ")
        for t in tagstr[1:].split(";"):
            k, _, v = t.partition("=")
            tags[k] = v
        rest = rest.lstrip(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    if rest.startswith(":"):          # no command at all: only a trailing parameter
        head, sep, trailing = "", True, rest[1:]
    else:
        head, sep, trailing = rest.partition(" :")
    words = head.split()
    command = words.pop(0).upper() if words else ""
    params = words + ([trailing] if sep else [])
    return tags, prefix, command, params


class Record:
    """One received line (or a synthetic 'disconnect').

    kind     privmsg, action, ctcp, notice, join, part, quit, nick, kick, topic, mode,
             invite, kill, error, numeric, ping, pong, disconnect, or the command in
             lower case
    nick     source nick (None for a server prefix); user, host from nick!user@host
    prefix   the raw prefix; command ('PRIVMSG', '001', ...); params
    target   channel or nick addressed (PRIVMSG/NOTICE/PART/KICK/TOPIC/MODE/JOIN: the
             channel; NICK: the new nick; numerics: the first parameter, our nick)
    text     message/action/reason/topic/trailing parameter
    victim   KICK: the nick kicked
    private  PRIVMSG/NOTICE/ACTION to a nick rather than a channel
    raw      the decoded line; raw_bytes the bytes; utf8 False if Latin-1 was used
    t        time.monotonic() when read
    """

    def __init__(self, kind, raw="", raw_bytes=b"", utf8=True, prefix=None, command="",
                 params=(), tags=None):
        self.kind = kind
        self.raw = raw
        self.raw_bytes = raw_bytes
        self.utf8 = utf8
        self.prefix = prefix
        self.command = command
        self.params = list(params)
        self.tags = tags or {}
        self.nick = self.user = self.host = None
        if prefix and ("!" in prefix or "@" in prefix or "." not in prefix):
            self.nick, _, uh = prefix.partition("!")
            self.user, _, self.host = uh.partition("@")
            if "@" in self.nick:
                self.nick, _, self.host = self.nick.partition("@")
        self.target = None
        self.text = None
        self.victim = None
        self.private = False
        self.t = time.monotonic()

    def __repr__(self):
        return "<%s %s>" % (self.kind, self.raw or self.text)


def _match_text(actual, wanted):
    if wanted is None:
        return True
    if actual is None:
        return False
    if isinstance(wanted, re.Pattern):
        return wanted.search(actual) is not None
    if callable(wanted):
        return bool(wanted(actual))
    return actual == wanted


def _match_name(actual, wanted):
    return wanted is None or irc_lower(actual) == irc_lower(wanted)


class _Connection(irc.client.ServerConnection):
    """python3-irc's ServerConnection with the reader replaced (see module docstring)."""

    buffer_class = irc.buffer.LineBuffer   # bytes; decoded by the owner
    owner = None

    def process_data(self):
        try:
            reader = getattr(self.socket, "read", self.socket.recv)
            data = reader(2 ** 14)
        except ssl.SSLWantReadError:
            return
        except (OSError, ValueError, AttributeError) as e:
            self.disconnect("read failed: %s" % e)
            return
        if not data:
            self.disconnect("connection closed by the server")
            return
        self.buffer.feed(data)
        for line in self.buffer:
            if line and self.owner is not None:
                self.owner._on_line(line)

    def send_raw(self, string):
        if self.owner is not None:
            self.owner._trace(">", string)
        super().send_raw(string)

    def _handle_event(self, event):
        # Only "disconnect" reaches here (the reader above never makes events).
        if event.type == "disconnect" and self.owner is not None:
            self.owner._on_disconnect(event.arguments[0] if event.arguments else "")


class IrcUser:
    """One IRC client connection.

    nick, ip, port   registration nick and server address
    tls, ca_file     direct TLS; the certificate is verified against ca_file (the system
                     store if None) for server_hostname (default: ip; test certificates
                     carry SAN IP and DNS:<server name>); tls_verify=False skips that
    password         sent as PASS before NICK/USER (server password)
    username, realname  USER parameters (default: the nick)
    log_path         if set, every line in and out is appended there (also kept in
                     raw_lines())
    """

    def __init__(self, nick, ip, port=IRC_PORT, tls=False, ca_file=None, password=None,
                 username=None, realname=None, server_hostname=None, tls_verify=True,
                 log_path=None):
        self.requested_nick = nick
        self.current_nick = nick
        self.ip = ip
        self.port = port
        self.tls = tls
        self.ca_file = ca_file
        self.password = password
        self.username = username or nick
        self.realname = realname or ("harness user " + nick)
        self.server_hostname = server_hostname
        self.tls_verify = tls_verify
        self.log_path = log_path
        self.conn = None
        self.connected = False
        self.registered = False
        self.welcome = None
        self.server_name = None
        self.isupport = {}
        self.peer_cert = None
        self.tls_version = None
        self.disconnect_reason = None
        self._pending = []
        self._log = []
        self._raw = []
        self._ping_seq = 0

    def __repr__(self):
        return "<IrcUser %s@%s:%d>" % (self.current_nick, self.ip, self.port)

    # ---- lifecycle --------------------------------------------------------------------

    def _factory(self, timeout):
        def connect(addr):
            sock = socket.create_connection(addr, timeout=timeout)
            if self.tls:
                ctx = ssl.create_default_context(cafile=self.ca_file)
                if not self.tls_verify:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                try:
                    sock = ctx.wrap_socket(sock, server_hostname=self.server_hostname or self.ip)
                except Exception:
                    sock.close()
                    raise
                self.peer_cert = sock.getpeercert()
                self.tls_version = sock.version()
            sock.settimeout(SOCKET_TIMEOUT)
            return sock
        return connect

    def connect(self, timeout=10):
        """Connects, registers (PASS, NICK, USER) and waits for 001. Raises IrcRefused
        (.code "464" wrong/missing password, "433" nick in use, "432", "465", "ERROR",
        "disconnect") or IrcError (TCP/TLS failure, e.g. certificate verification) or
        HarnessError (no 001 within `timeout`). Returns self."""
        r = reactor()
        self.conn = _Connection(r)
        self.conn.owner = self
        with r.mutex:
            r.connections.append(self.conn)
        _users.append(self)
        self._trace("*", "connecting to %s:%d%s" % (self.ip, self.port, " (TLS)" if self.tls else ""))
        try:
            self.conn.connect(self.ip, self.port, self.requested_nick, password=self.password,
                              username=self.username, ircname=self.realname,
                              connect_factory=self._factory(timeout))
        except irc.client.ServerConnectionError as e:
            self._forget()
            raise IrcError("%s: cannot connect to %s:%d%s: %s" % (
                self.requested_nick, self.ip, self.port, " (TLS)" if self.tls else "", e))
        self.connected = True
        refusals = {"464", "465", "433", "432", "436", "437", "ERROR", "disconnect"}

        def done():
            for rec in self._pending:
                if rec.command == "001":
                    return rec
                if rec.command in refusals or rec.kind == "disconnect":
                    return rec
            return None
        rec = self._wait(done, timeout, "001 welcome")
        if rec.command != "001":
            self._pending.remove(rec)
            code = rec.command or rec.kind
            self.close()
            raise IrcRefused("%s: registration refused by %s:%d: %s" % (
                self.requested_nick, self.ip, self.port, rec.raw or rec.text), code, rec.raw, rec)
        self._pending.remove(rec)
        self.welcome = rec
        self.registered = True
        self.current_nick = rec.params[0] if rec.params else self.requested_nick
        self.server_name = rec.prefix
        # Let 002..005 and the MOTD arrive so that isupport is filled in.
        try:
            self._wait(lambda: self._find({"376", "422"}), timeout, "end of MOTD")
        except HarnessError:
            pass
        return self

    def close(self):
        """Drops the connection (sending QUIT if still connected). Idempotent."""
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.connected = False
        self._forget()

    def _forget(self):
        if self in _users:
            _users.remove(self)
        if self.conn is not None:
            r = reactor()
            with r.mutex:
                if self.conn in r.connections:
                    r.connections.remove(self.conn)
            self.conn.owner = None
            self.conn = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    # ---- commands -----------------------------------------------------------------------

    def _send(self, line):
        if self.conn is None or not self.connected:
            raise IrcError("%s: not connected (cannot send %r; %s)" % (
                self.current_nick, line, self.disconnect_reason))
        self.conn.send_raw(line)

    def raw(self, line):
        """Sends one raw line (no CR/LF)."""
        self._send(line)

    def say(self, target, text):
        """PRIVMSG to a channel or nick."""
        self._check()
        self.conn.privmsg(target, text)

    def action(self, target, text):
        """CTCP ACTION (/me)."""
        self._check()
        self.conn.action(target, text)

    def notice(self, target, text):
        self._check()
        self.conn.notice(target, text)

    def _check(self):
        if self.conn is None or not self.connected:
            raise IrcError("%s: not connected (%s)" % (self.current_nick, self.disconnect_reason))

    def join(self, channel, key=None, timeout=10):
        """JOINs and waits for 366 (end of NAMES) of the channel; returns its NAMES as
        {nick: prefix modes} (e.g. {"alice": "@", "bob": ""}). Raises IrcRefused on
        471/473/474/475/403/405/476/437/477/489."""
        self._check()
        self.conn.join(channel, key or "")
        errs = {"471", "473", "474", "475", "403", "405", "476", "437", "477", "489"}
        return self._collect_names(channel, timeout, errs, "JOIN %s" % channel)

    def names(self, channel, timeout=10):
        """Sends NAMES and returns {nick: prefix modes} from 353 until 366."""
        self._check()
        self.conn.names([channel])
        return self._collect_names(channel, timeout, set(), "NAMES %s" % channel)

    def _collect_names(self, channel, timeout, errs, what):
        def end():
            for rec in self._pending:
                if rec.command == "366" and len(rec.params) > 1 and _match_name(rec.params[1], channel):
                    return rec
                if rec.command in errs and len(rec.params) > 1 and _match_name(rec.params[1], channel):
                    return rec
            return None
        rec = self._wait(end, timeout, "366 end of NAMES for %s after %s" % (channel, what))
        if rec.command != "366":
            self._pending.remove(rec)
            raise IrcRefused("%s: %s refused: %s" % (self.current_nick, what, rec.raw),
                             rec.command, rec.raw, rec)
        names = {}
        idx = self._pending.index(rec)
        keep = []
        for r in self._pending[:idx]:
            if r.command == "353" and len(r.params) >= 4 and _match_name(r.params[2], channel):
                for item in r.params[3].split():
                    n = item.lstrip("~&@%+")
                    names[n] = item[:len(item) - len(n)]
            else:
                keep.append(r)
        self._pending = keep + self._pending[idx + 1:]
        return names

    def part(self, channel, text="", timeout=10):
        """PARTs and waits for the server's echo of our PART."""
        self._check()
        # Not conn.part(): python3-irc 8.5.3 sends the reason without ':', so a reason
        # with a space is a syntax error (461).
        self._send("PART %s :%s" % (channel, text) if text else "PART " + channel)
        return self._expect({"part"}, lambda r: _match_name(r.nick, self.current_nick)
                            and _match_name(r.target, channel), timeout,
                            "own PART of %s" % channel, refuse={"442", "403", "461"})

    def quit(self, text="", timeout=5):
        """QUIT, then wait (bounded) for the server to close the connection."""
        if self.conn is None or not self.connected:
            self.close()
            return
        self.conn.quit(text)
        try:
            self.wait_disconnected(timeout)
        finally:
            self.close()

    def nick_change(self, new, timeout=10):
        """NICK new; waits for the server's confirmation (our own NICK line) or raises
        IrcRefused (432/433/436/437/438)."""
        self._check()
        old = self.current_nick
        self.conn.nick(new)
        self._expect({"nick"}, lambda r: _match_name(r.nick, old) and _match_name(r.target, new),
                     timeout, "own NICK %s -> %s" % (old, new),
                     refuse={"431", "432", "433", "436", "437", "438", "461"})
        return new

    def nick(self, new=None, timeout=10):
        """Without argument: the current nick (follows our own NICK changes; also
        .current_nick). With one: nick_change(new)."""
        if new is None:
            return self.current_nick
        return self.nick_change(new, timeout)

    def topic(self, channel, text, timeout=10):
        """Sets the topic and waits for the server's echo (our own TOPIC line); raises
        IrcRefused on 482 (not channel operator) / 442 / 403."""
        self._check()
        self.conn.topic(channel, text)
        return self._expect({"topic"}, lambda r: _match_name(r.nick, self.current_nick)
                            and _match_name(r.target, channel) and r.text == text, timeout,
                            "own TOPIC on %s" % channel, refuse={"482", "442", "403", "477", "461"})

    def get_topic(self, channel, timeout=10):
        """Asks for the topic: its text (332), or None (331 no topic)."""
        self._check()
        self.conn.topic(channel)
        rec = self._expect({"numeric"}, lambda r: r.command in ("331", "332") and len(r.params) > 1
                           and _match_name(r.params[1], channel), timeout, "331/332 for " + channel,
                           refuse={"442", "403"})
        return rec.text if rec.command == "332" else None

    def kick(self, channel, nick, text="", timeout=10):
        """KICKs and waits for the server's echo; IrcRefused on 482/441/442/403."""
        self._check()
        self.conn.kick(channel, nick, text)
        return self._expect({"kick"}, lambda r: _match_name(r.nick, self.current_nick)
                            and _match_name(r.target, channel) and _match_name(r.victim, nick),
                            timeout, "own KICK of %s from %s" % (nick, channel),
                            refuse={"482", "441", "442", "403", "461"})

    def mode(self, target, modes, timeout=None):
        """Sends MODE target modes; with a timeout waits for the MODE echo."""
        self._check()
        self.conn.mode(target, modes)
        if timeout:
            return self._expect({"mode"}, lambda r: _match_name(r.target, target), timeout,
                                "MODE echo on %s" % target, refuse={"482", "472", "501", "502"})
        return None

    def ping(self, timeout=10):
        """Round trip to the server (PING/PONG): everything sent before has been
        processed by it when this returns."""
        self._check()
        self._ping_seq += 1
        token = "h%d-%d" % (os.getpid(), self._ping_seq)
        self._send("PING :" + token)
        self._expect({"pong"}, lambda r: r.text == token, timeout, "PONG " + token)

    # ---- expectations -------------------------------------------------------------------

    def _find(self, commands):
        for rec in self._pending:
            if rec.command in commands:
                return rec
        return None

    def _wait(self, find, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            found = find()
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("%s: no %s within %.1f s (last lines in: %s)" % (
                    self.current_nick, what, timeout, self.last_lines(4)))
            pump(min(_PUMP_SLICE, left))

    def _expect(self, kinds, pred, timeout, what, refuse=()):
        def find():
            for rec in self._pending:
                if rec.kind in kinds and pred(rec):
                    return rec
                if rec.command in refuse:
                    return rec
            return None
        rec = self._wait(find, timeout, what)
        self._pending.remove(rec)
        if rec.command in refuse:
            raise IrcRefused("%s: %s refused: %s" % (self.current_nick, what, rec.raw),
                             rec.command, rec.raw, rec)
        return rec

    def expect_privmsg(self, frm=None, target=None, text=None, timeout=10):
        """Waits for (and consumes) a PRIVMSG (not an ACTION) from nick `frm` to `target`
        (channel or our nick) with `text` (str exact, re.Pattern search, callable; any
        if None). Returns the Record."""
        return self._expect({"privmsg"}, lambda r: _match_name(r.nick, frm)
                            and _match_name(r.target, target) and _match_text(r.text, text),
                            timeout, "PRIVMSG from %s to %s text %r" % (frm, target, text))

    def expect_action(self, frm=None, target=None, text=None, timeout=10):
        """Like expect_privmsg for CTCP ACTION (/me); text is the action text."""
        return self._expect({"action"}, lambda r: _match_name(r.nick, frm)
                            and _match_name(r.target, target) and _match_text(r.text, text),
                            timeout, "ACTION from %s to %s text %r" % (frm, target, text))

    def expect_notice(self, frm=None, target=None, text=None, timeout=10):
        return self._expect({"notice"}, lambda r: _match_name(r.nick, frm)
                            and _match_name(r.target, target) and _match_text(r.text, text),
                            timeout, "NOTICE from %s to %s text %r" % (frm, target, text))

    def expect_join(self, nick, channel, timeout=10):
        return self._expect({"join"}, lambda r: _match_name(r.nick, nick)
                            and _match_name(r.target, channel), timeout,
                            "JOIN of %s to %s" % (nick, channel))

    def expect_part(self, nick, channel, text=None, timeout=10):
        return self._expect({"part"}, lambda r: _match_name(r.nick, nick)
                            and _match_name(r.target, channel) and _match_text(r.text, text),
                            timeout, "PART of %s from %s" % (nick, channel))

    def expect_quit(self, nick, text=None, timeout=10):
        """A QUIT of `nick`; text matches the quit message (ngIRCd relays a client's
        message as given; netsplits give "<server> <server>")."""
        return self._expect({"quit"}, lambda r: _match_name(r.nick, nick) and _match_text(r.text, text),
                            timeout, "QUIT of %s text %r" % (nick, text))

    def expect_nick(self, old, new, timeout=10):
        return self._expect({"nick"}, lambda r: _match_name(r.nick, old) and _match_name(r.target, new),
                            timeout, "NICK %s -> %s" % (old, new))

    def expect_kick(self, channel, nick, by=None, text=None, timeout=10):
        return self._expect({"kick"}, lambda r: _match_name(r.target, channel)
                            and _match_name(r.victim, nick) and _match_name(r.nick, by)
                            and _match_text(r.text, text), timeout,
                            "KICK of %s from %s by %s" % (nick, channel, by))

    def expect_topic(self, channel, text=None, by=None, timeout=10):
        """A TOPIC change on `channel` (the TOPIC command, not the 332 reply)."""
        return self._expect({"topic"}, lambda r: _match_name(r.target, channel)
                            and _match_text(r.text, text) and _match_name(r.nick, by), timeout,
                            "TOPIC on %s by %s text %r" % (channel, by, text))

    def expect_mode(self, target, modes=None, by=None, timeout=10):
        return self._expect({"mode"}, lambda r: _match_name(r.target, target)
                            and _match_text(" ".join(r.params[1:]), modes)
                            and _match_name(r.nick, by), timeout,
                            "MODE %s %s by %s" % (target, modes, by))

    def expect_numeric(self, code, timeout=10):
        """A numeric reply `code` ("464", ...)."""
        code = "%03d" % int(code)
        return self._expect({"numeric"}, lambda r: r.command == code, timeout, "numeric " + code)

    def expect_no_privmsg(self, frm=None, target=None, text=None, wait=2.0,
                          kinds=("privmsg", "action", "notice")):
        """Asserts (HarnessError otherwise) that no matching PRIVMSG/ACTION/NOTICE is
        pending after pumping for `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            for rec in self._pending:
                if rec.kind in kinds and _match_name(rec.nick, frm) and \
                        _match_name(rec.target, target) and _match_text(rec.text, text):
                    raise HarnessError("%s: unexpected %s: %s" % (self.current_nick, rec.kind, rec.raw))
            left = deadline - time.monotonic()
            if left <= 0:
                return
            pump(min(_PUMP_SLICE, left))

    def wait_disconnected(self, timeout=10):
        """Waits until the server has closed the connection; returns the reason."""
        self._wait(lambda: True if not self.connected else None, timeout, "disconnection")
        return self.disconnect_reason

    # ---- what was received -----------------------------------------------------------------

    def messages(self):
        """Every PRIVMSG/ACTION/NOTICE received so far (consumed or not), in order."""
        return [r for r in self._log if r.kind in ("privmsg", "action", "notice")]

    def events(self, kinds=None):
        """Every record received so far (consumed or not), optionally only `kinds`."""
        return [r for r in self._log if kinds is None or r.kind in kinds]

    def pending(self):
        """Records not yet consumed by an expectation."""
        return list(self._pending)

    def drain(self, wait=0.0):
        """Pumps for `wait` seconds, then drops (and returns) every pending record."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pump(min(_PUMP_SLICE, deadline - time.monotonic()))
        out, self._pending = self._pending, []
        return out

    def raw_lines(self):
        """[(monotonic time, '<' in / '>' out / '*' note, line)]."""
        return list(self._raw)

    def last_lines(self, n=5):
        return " | ".join([line for _, d, line in self._raw if d in "<*"][-n:])

    # ---- reader ------------------------------------------------------------------------------

    def _trace(self, direction, line):
        self._raw.append((time.monotonic(), direction, line))
        if self.log_path:
            try:
                with open(self.log_path, "a", encoding="utf-8", errors="replace") as f:
                    f.write("%.3f %s %s %s\n" % (time.time(), self.current_nick, direction, line))
            except OSError:
                pass

    def _on_disconnect(self, reason):
        was = self.connected
        self.connected = False
        self.disconnect_reason = self.disconnect_reason or reason
        self._trace("*", "disconnected: %s" % reason)
        if was:
            rec = Record("disconnect")
            rec.text = reason
            self._pending.append(rec)
            self._log.append(rec)

    def _on_line(self, raw_bytes):
        try:
            line = raw_bytes.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            line = raw_bytes.decode("latin-1")
            utf8 = False
        self._trace("<", line)
        tags, prefix, command, params = parse_line(line)
        if command == "PING":
            try:
                self.conn.send_raw("PONG :" + (params[-1] if params else ""))
            except Exception:
                pass
        rec = Record(_kind(command), line, raw_bytes, utf8, prefix, command, params, tags)
        self._fill(rec)
        if command == "NICK" and rec.target and _match_name(rec.nick, self.current_nick):
            self.current_nick = rec.target
        elif command == "005":
            for tok in params[1:-1]:
                k, _, v = tok.partition("=")
                self.isupport[k.upper()] = v
        elif command == "ERROR":
            self.disconnect_reason = rec.text
        self._pending.append(rec)
        self._log.append(rec)

    def _fill(self, rec):
        p = rec.params
        c = rec.command
        if c in ("PRIVMSG", "NOTICE"):
            rec.target = p[0] if p else None
            text = p[1] if len(p) > 1 else ""
            rec.private = not is_channel(rec.target)
            if len(text) >= 2 and text.startswith("\x01"):
                body = text[1:-1] if text.endswith("\x01") else text[1:]
                ctcp, _, arg = body.partition(" ")
                if ctcp.upper() == "ACTION" and c == "PRIVMSG":
                    rec.kind = "action"
                    rec.text = arg
                else:
                    rec.kind = "ctcp" if c == "PRIVMSG" else "ctcpreply"
                    rec.text = body
            else:
                rec.text = text
        elif c in ("JOIN", "PART", "TOPIC", "MODE", "INVITE"):
            rec.target = p[0].split("\x07")[0] if p else None
            if c == "INVITE":
                rec.target = p[1] if len(p) > 1 else None
            rec.text = p[1] if len(p) > 1 and c != "MODE" else None
            if c == "MODE":
                rec.text = " ".join(p[1:])
        elif c == "KICK":
            rec.target = p[0] if p else None
            rec.victim = p[1] if len(p) > 1 else None
            rec.text = p[2] if len(p) > 2 else None
        elif c == "NICK":
            rec.target = p[0] if p else None
        elif c in ("QUIT", "ERROR"):
            rec.text = p[0] if p else ""
        elif c == "KILL":
            rec.target = p[0] if p else None
            rec.text = p[1] if len(p) > 1 else None
        elif c in ("PING", "PONG"):
            rec.text = p[-1] if p else ""
        else:
            rec.target = p[0] if p else None
            rec.text = p[-1] if p else None


def _kind(command):
    if command.isdigit():
        return "numeric"
    return {"PRIVMSG": "privmsg", "NOTICE": "notice"}.get(command, command.lower())
