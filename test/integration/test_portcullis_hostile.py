#!/usr/bin/python3
"""Hostile S2S streams from a raw socket are closed with a stream error, while the
Prosody traffic on the other streams keeps flowing.

Topology: portcullis, cert mode. alice@a.test and bob@b.test chat through Portcullis
for the whole test. Each hostile case opens its own raw TCP connection to edge(low)
(<net>.4:5269, which fronts b.test), sends one class of hostile input and reads
until the guard closes the connection (bounded). For every case we assert:
  * the bytes received contain exactly the expected stream error condition (the
    first <stream:error> carries it) followed by </stream:stream>;
  * what the guard wrote on the current stream (its header, features, the error,
    the close) is one well-formed XML document - so a stream error always follows
    a stream header of ours, also after a stream restart (RFC 6120 4.9.1.3);
  * the guard closed the connection;
  * edge(low) logged "stream error <condition>" for it;
  * a chat message alice -> bob sent right after it still arrives.
Pre-TLS cases: the classes of the stream parser (restricted XML, limits, encoding,
namespaces, stream-level text) and of the inbound state machine (unknown element,
stanza before authentication, SASL before TLS, unknown 'to', no peering, missing
'from', wrong version, markup echoed from the header into the error text).
Post-authentication cases (STARTTLS with a.test's certificate, SASL EXTERNAL,
restarts): a legitimate raw stanza first (it must reach bob: the stream really is
authenticated), then a spoofed 'from', an oversized stanza, a deeply nested stanza,
too many attributes, a 'to' not fronted. Restart cases: a header after STARTTLS that
changes the 'to', a header after SASL success with a wrong version. And a STARTTLS
command injection (a stanza pipelined after <starttls/>) that must be discarded.
Case failures are collected and reported together at the end.
At the end portcullisd must still run with the same children, and neither Prosody
had to re-establish its s2s stream.

Conditions asserted are those guard/xmpp/stream_parser.cpp and
guard/s2s/inbound_session.cpp give (see the table below).
"""

import os
import re
import sys
import time
from xml.etree import ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.addresses import EDGE_LOW_IP, S2S_PORT  # noqa: E402
from harness.procs import HarnessError  # noqa: E402
from harness.rawstream import (NS_STREAM_ERRORS, RawStream, stream_error_condition,  # noqa: E402
                               stream_header)
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

READ_TIMEOUT = 5.0          # bounded wait for the guard to answer and close
MAX_STANZA = 262144         # edge default (schemas/portcullis-config.xsd, Limits)
MAX_DEPTH = 32
MAX_ATTRIBUTES = 64

A, B = "a.test", "b.test"


def billion_laughs():
    ents = ['<!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = "lol" if i == 1 else "lol%d" % (i - 1)
        ents.append('<!ENTITY lol%d "%s">' % (i, ("&%s;" % prev) * 10))
    return "<?xml version='1.0'?><!DOCTYPE lolz [%s]>" % "".join(ents)


def deep(levels):
    return ("<message from='alice@a.test' to='bob@b.test'>" + "<x>" * levels
            + "</x>" * levels + "</message>").encode()


def many_attributes(n):
    attrs = "".join(" a%d='%d'" % (i, i) for i in range(n))
    return ("<message from='alice@a.test' to='bob@b.test'%s/>" % attrs).encode()


def oversized(frm, extra=8192):
    return (("<message from='%s' to='bob@b.test' type='chat'><body>" % frm).encode()
            + b"A" * (MAX_STANZA + extra) + b"</body></message>")


HEADER = stream_header(A, B)

# name, bytes sent before waiting for the features (None: nothing is awaited, the
# header itself or its prolog is the hostile part), hostile bytes, expected condition.
PRE_AUTH_CASES = [
    ("billion laughs (DOCTYPE with entities)",
     None, stream_header(A, B, prolog=billion_laughs()) +
     b"<message from='alice@a.test' to='bob@b.test'><body>&lol9;</body></message>",
     "restricted-xml"),
    ("DOCTYPE SYSTEM (external entity)",
     None, stream_header(A, B, prolog="<?xml version='1.0'?>"
                                      "<!DOCTYPE stream:stream SYSTEM 'file:///etc/passwd'>"),
     "restricted-xml"),
    ("processing instruction", HEADER, b"<?evil do-something?>", "restricted-xml"),
    ("comment", HEADER, b"<!-- a comment -->", "restricted-xml"),
    ("undeclared entity reference", HEADER,
     b"<message from='alice@a.test' to='bob@b.test'><body>&xxe;</body></message>",
     "restricted-xml"),
    ("deep nesting (%d levels)" % (MAX_DEPTH + 8), HEADER, deep(MAX_DEPTH + 8),
     "policy-violation"),
    ("too many attributes (%d)" % (MAX_ATTRIBUTES + 6), HEADER,
     many_attributes(MAX_ATTRIBUTES + 6), "policy-violation"),
    ("oversized stanza pre-auth", HEADER, oversized("alice@a.test"), "policy-violation"),
    ("invalid UTF-8", HEADER,
     b"<message from='alice@a.test' to='bob@b.test'><body>\xc3\x28\xff</body></message>",
     "not-well-formed"),
    ("unbound prefix", HEADER, b"<foo:message from='alice@a.test' to='bob@b.test'/>",
     "not-well-formed"),
    ("malformed XML (tag mismatch)", HEADER,
     b"<message from='alice@a.test' to='bob@b.test'><body>x</bodyy></message>",
     "not-well-formed"),
    ("text at stream level", HEADER, b"hello, this is not XML<presence/>", "not-well-formed"),
    ("wrong stream namespace", None,
     stream_header(A, B, streams_ns="urn:example:not-the-streams-namespace"),
     "invalid-namespace"),
    ("wrong content namespace", None, stream_header(A, B, content_ns="jabber:client"),
     "invalid-namespace"),
    ("unknown top-level element pre-auth", HEADER, b"<foo xmlns='urn:example:foo'/>",
     "unsupported-stanza-type"),
    ("stanza before authentication", HEADER,
     b"<message from='alice@a.test' to='bob@b.test' type='chat'><body>early</body></message>",
     "not-authorized"),
    ("SASL before TLS", HEADER,
     b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS50ZXN0</auth>",
     "policy-violation"),
    ("unknown 'to' domain", None, stream_header(A, "nope.test"), "host-unknown"),
    ("markup in the 'to' (echoed in the error text)", None,
     stream_header(A, "&lt;/text&gt;&lt;evil/&gt;&amp;"), "host-unknown"),
    ("markup in the 'from' (echoed in the error text)", None,
     stream_header("&lt;/text&gt;&lt;evil/&gt;.test", B), "policy-violation"),
    ("no peering for from='evil.test'", None, stream_header("evil.test", B), "policy-violation"),
    ("stream without 'from'", None, stream_header(None, B), "policy-violation"),
    ("wrong version", None, stream_header(A, B, version="0.9"), "unsupported-version"),
]


class Checker:
    """Per-case assertions plus the 'traffic keeps flowing' probe."""

    def __init__(self, ctx, fed, alice, bob):
        self.ctx, self.fed, self.alice, self.bob = ctx, fed, alice, bob
        self.log_path = fed.portcullis.log_path
        self.n = 0
        self.results = []
        self.failures = []

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def expect_stream_error(self, name, data, closed, condition, s, log_offset):
        shown = data[-400:]
        element = ("<%s xmlns='%s'/>" % (condition, NS_STREAM_ERRORS)).encode()
        check(element in data,
              "%s: expected stream error <%s/>, got %r (send error: %r)" % (
                  name, condition, shown, s.send_error))
        got = stream_error_condition(data)
        check(got == condition, "%s: first stream error is <%s/>, expected <%s/>: %r" % (
            name, got, condition, shown))
        check(data.rstrip().endswith(b"</stream:stream>"),
              "%s: no </stream:stream> after the stream error: %r" % (name, shown))
        check(closed, "%s: the guard did not close the connection within %.0f s" % (
            name, READ_TIMEOUT))
        # What the guard wrote on this stream (since its last header) is one well-formed
        # document: header, features, the error, the close.
        last = max(data.rfind(b"<?xml"), 0)
        try:
            ET.fromstring(data[last:])
        except ET.ParseError as e:
            raise AssertionError("%s: the guard's answer is not well-formed XML (%s): %r" % (
                name, e, data[last:][-400:])) from None
        # The log line is written before the error is sent: it is there already.
        pat = re.compile(r"edge\(low\) warning: .*: stream error %s: (.*)" % re.escape(condition))
        m = pat.search(self.log_since(log_offset))
        check(m is not None, "%s: no 'stream error %s' line from edge(low) in %s" % (
            name, condition, self.log_path))
        return m.group(1).strip()

    def traffic_flows(self, name):
        self.n += 1
        body = "still flowing %d after %s" % (self.n, name)
        self.alice.send(self.fed.jid("b", "bob"), body)
        self.bob.expect_message(self.fed.jid("a", "alice"), body, timeout=15)

    def run_case(self, name, condition, fn):
        t0 = time.monotonic()
        offset = self.log_size()
        failure = None
        with RawStream(EDGE_LOW_IP, S2S_PORT) as s:
            fn(s)
            _, closed = s.read_until_closed(READ_TIMEOUT)
            # Everything received on the last layer (plaintext, or TLS once upgraded).
            try:
                text = self.expect_stream_error(name, s.received, closed, condition, s, offset)
            except AssertionError as e:
                # Go on with the other cases; every failure is reported at the end.
                failure = str(e)
                self.failures.append(failure)
        self.fed.portcullis.check_alive()
        self.traffic_flows(name)
        dt = time.monotonic() - t0
        self.results.append((name, condition))
        if failure:
            self.ctx.step("%-40s -> FAILED: %s" % (name, failure[:300]))
        else:
            self.ctx.step("%-40s -> <%s/> (%s); chat still flows [%.2f s]" % (
                name, condition, text[:70], dt))


def test(ctx):
    with Federation(ctx.subdir("hostile"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir) as fed:
        pki = fed.pki_dir
        a_cert, a_key = os.path.join(pki, "a.test.pem"), os.path.join(pki, "a.test.key")
        ca_low = os.path.join(pki, "ca-low.pem")
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            # A real chat flow first (the s2s streams a.test -> edge(low) and edge(high)
            # -> b.test exist from now on and must survive every hostile case).
            alice.send(bob_jid, "hello bob before the attack")
            bob.expect_message(alice_jid, "hello bob before the attack", timeout=20)
            bob.send(alice_jid, "hello alice before the attack")
            alice.expect_message(bob_jid, "hello alice before the attack", timeout=20)
            ctx.step("chat a.test <-> b.test through Portcullis established")
            sup_pid = fed.portcullis.pid
            children_before = child_pids(sup_pid)

            c = Checker(ctx, fed, alice, bob)

            # ---- pre-TLS ----
            for name, first, hostile, condition in PRE_AUTH_CASES:
                def fn(s, first=first, hostile=hostile, name=name):
                    if first is not None:
                        s.send(first)
                        answer = s.read_until_any([b"</stream:features>"], READ_TIMEOUT)
                        check(b"<stream:stream" in answer and b"starttls" in answer,
                              "%s: valid header not answered with header + STARTTLS: %r" % (
                                  name, answer))
                    s.send(hostile)
                c.run_case(name, condition, fn)

            # ---- after STARTTLS + SASL EXTERNAL ----
            def auth(s):
                s.authenticate_external(A, B, a_cert, a_key, ca_low, timeout=READ_TIMEOUT)

            def spoof(s):
                auth(s)
                # Proof the raw stream is authenticated: a legitimate stanza crosses.
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat' id='raw-1'>"
                       b"<body>raw hello</body></message>")
                bob.expect_message("raw@a.test", "raw hello", timeout=15)
                ctx.step("raw authenticated stream: a stanza from raw@a.test reached bob")
                s.send(b"<message from='mallory@evil.test' to='bob@b.test' type='chat' "
                       b"id='spoof-1'><body>spoofed</body></message>")
            c.run_case("post-auth spoofed from='mallory@evil.test'", "invalid-from", spoof)

            def big(s):
                auth(s)
                s.send(oversized("raw@a.test"))
            c.run_case("post-auth oversized stanza (%d bytes)" % (MAX_STANZA + 8192),
                       "policy-violation", big)

            def nested(s):
                auth(s)
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat'>" +
                       b"<x>" * (MAX_DEPTH + 8) + b"</x>" * (MAX_DEPTH + 8) + b"</message>")
            c.run_case("post-auth deep nesting (%d levels)" % (MAX_DEPTH + 9),
                       "policy-violation", nested)

            def attrs(s):
                auth(s)
                s.send(b"<message from='raw@a.test' to='bob@b.test'" +
                       "".join(" a%d='%d'" % (i, i) for i in range(MAX_ATTRIBUTES + 6)).encode()
                       + b"/>")
            c.run_case("post-auth too many attributes", "policy-violation", attrs)

            def other_domain(s):
                auth(s)
                s.send(b"<message from='raw@a.test' to='someone@elsewhere.test' type='chat'>"
                       b"<body>x</body></message>")
            c.run_case("post-auth 'to' a domain not fronted", "host-unknown", other_domain)

            def restart_changes_to(s):
                s.open(A, B, timeout=READ_TIMEOUT)
                s.starttls(a_cert, a_key, ca_low, B, timeout=READ_TIMEOUT)
                s.send(stream_header(A, "conference.b.test"))
            c.run_case("restart after TLS with another 'to'", "improper-addressing",
                       restart_changes_to)

            def restart_bad_version(s):
                s.open(A, B, timeout=READ_TIMEOUT)
                s.starttls(a_cert, a_key, ca_low, B, timeout=READ_TIMEOUT)
                s.open(A, B, timeout=READ_TIMEOUT)
                s.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
                       b"YS50ZXN0</auth>")
                s.read_until(b"<success", READ_TIMEOUT)
                s.buf = s.received = b""   # what follows is the third stream
                s.send(stream_header(A, B, version="0.9"))
            c.run_case("restart after SASL with version='0.9'", "unsupported-version",
                       restart_bad_version)

            # STARTTLS command injection: a stanza pipelined in plaintext right after
            # <starttls/> must be discarded with the plaintext parser (not parsed: it
            # would be a stanza before authentication; never delivered). The stream
            # then authenticates and works normally; a clean close gets a clean close.
            t0 = time.monotonic()
            offset = c.log_size()
            with RawStream(EDGE_LOW_IP, S2S_PORT) as s:
                s.authenticate_external(
                    A, B, a_cert, a_key, ca_low, timeout=READ_TIMEOUT,
                    pipelined=b"<message from='inject@a.test' to='bob@b.test' type='chat'>"
                              b"<body>injected</body></message>")
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat' id='raw-2'>"
                       b"<body>after injection</body></message>")
                bob.expect_message("raw@a.test", "after injection", timeout=15)
                s.send(b"</stream:stream>")
                data, closed = s.read_until_closed(READ_TIMEOUT)
                check(b"<stream:error>" not in s.received and
                      data.rstrip().endswith(b"</stream:stream>") and closed,
                      "STARTTLS injection: clean close not answered cleanly: %r" % s.received[-300:])
            check("stream error" not in c.log_since(offset),
                  "STARTTLS injection: stream error logged: %s" % c.log_since(offset)[-400:])
            bob.expect_no_message("inject@a.test", wait=0.3)
            c.traffic_flows("STARTTLS injection")
            ctx.step("%-40s -> discarded; stream authenticated and closed cleanly [%.2f s]" % (
                "STARTTLS command injection", time.monotonic() - t0))

            # Nothing of the refused stanzas reached bob.
            bob.expect_no_message("mallory@evil.test", wait=0.5)
            check(not [m for m in bob.messages() if m["from"].startswith("raw@")],
                  "bob got stanzas from the refused raw streams: %r" % bob.messages())
            check(not alice.errors() and not bob.errors(),
                  "unexpected message errors on the real chat: %r" % (
                      alice.errors() + bob.errors()))

            # ---- the guard itself ----
            fed.portcullis.check_alive()
            children_after = child_pids(sup_pid)
            check(children_after == children_before,
                  "a child of portcullisd was replaced during the test: %r -> %r" % (
                      children_before, children_after))
            with open(fed.portcullis.log_path, "rb") as f:
                log = f.read().decode("utf-8", "replace")
            n_errors = len(re.findall(r"edge\(low\) warning: .*: stream error ", log))
            check(n_errors >= len(c.results),
                  "%d stream error lines from edge(low) for %d cases" % (n_errors, len(c.results)))
            check("restarted " not in log and " killed by signal" not in log,
                  "a child was restarted: %s" % [l for l in log.splitlines()
                                                  if "restarted " in l or "killed" in l])
            # "Keeps flowing" on the very same streams: neither Prosody had to reconnect.
            for srv, pat in ((fed.a, r"Outgoing s2s connection a\.test->b\.test complete"),
                             (fed.b, r"Incoming s2s connection a\.test->b\.test complete"),
                             (fed.b, r"Outgoing s2s connection b\.test->a\.test complete")):
                with open(srv.log_path, "rb") as f:
                    n = len(re.findall(pat, f.read().decode("utf-8", "replace")))
                check(n == 1, "%s: %d x '%s' (expected 1: the s2s stream was re-established)"
                      % (srv.domain, n, pat))
            check(not c.failures, "%d of %d cases failed: %s" % (
                len(c.failures), len(c.results), " || ".join(c.failures)))
            ctx.step("%d hostile cases refused; %d stream error lines; portcullisd (pid %d) and "
                     "its children %r still running" % (len(c.results), n_errors, sup_pid,
                                                        sorted(children_after.values())))


def child_pids(pid):
    """{role: pid} of the children of `pid` (from /proc), role from the command line."""
    out = {}
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except OSError as e:
        raise HarnessError("cannot list children of %d: %s" % (pid, e)) from None
    for k in kids:
        try:
            with open("/proc/%d/cmdline" % k, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        role = b"?"
        if b"--role" in argv:
            i = argv.index(b"--role")
            role = argv[i + 1] if i + 1 < len(argv) else b"?"
            if role == b"edge" and b"--side" in argv:
                role = b"edge-" + argv[argv.index(b"--side") + 1]
        out[role.decode()] = k
    return out


if __name__ == "__main__":
    run_test(test)
