"""A raw S2S stream over a plain socket, for hostile-peer tests.

Speaks just enough XMPP S2S by hand (stream header, STARTTLS with Python's ssl
wrapping the socket in place, SASL EXTERNAL, stream restarts) to reach any
state of Portcullis' inbound state machine, then lets the test send arbitrary
bytes. Every read is bounded by a deadline; nothing here parses XML (the
point is to send what a parser would refuse), answers are matched as bytes.

    with RawStream("127.0.0.4", 5269) as s:
        s.send(stream_header("a.test", "b.test"))
        s.read_until(b"</stream:features>", timeout=5)
        s.send(b"<!-- hostile -->")
        data, closed = s.read_until_closed(timeout=5)
"""

import socket
import ssl
import time

from .procs import HarnessError

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
SASL_EXTERNAL_A_TEST = "YS50ZXN0"   # base64("a.test"): authzid = the stream 'from'


def stream_header(frm, to, version="1.0", content_ns="jabber:server",
                  streams_ns=NS_STREAMS, prolog=""):
    """Bytes of an S2S stream header (optionally preceded by `prolog`, e.g. an XML
    declaration and a DOCTYPE). frm/to None leave the attribute out."""
    attrs = ""
    if frm is not None:
        attrs += " from='%s'" % frm
    if to is not None:
        attrs += " to='%s'" % to
    if version is not None:
        attrs += " version='%s'" % version
    return ("%s<stream:stream xmlns='%s' xmlns:stream='%s'%s>"
            % (prolog, content_ns, streams_ns, attrs)).encode()


def stream_error_condition(data):
    """The defined condition of the first <stream:error> in `data` (bytes), or None."""
    start = data.find(b"<stream:error>")
    if start < 0:
        return None
    rest = data[start + len(b"<stream:error>"):]
    if not rest.startswith(b"<"):
        return None
    end = min(i for i in (rest.find(b" "), rest.find(b"/"), rest.find(b">")) if i >= 0)
    return rest[1:end].decode("utf-8", "replace")


class RawStream:
    """One TCP connection to ip:port; optionally upgraded to TLS in place."""

    def __init__(self, ip, port, connect_timeout=5.0):
        self.ip, self.port = ip, port
        try:
            self.sock = socket.create_connection((ip, port), timeout=connect_timeout)
        except OSError as e:
            raise HarnessError("raw stream: cannot connect to %s:%d: %s" % (ip, port, e)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""          # everything received on the current layer, not yet consumed
        self.received = b""     # everything received on the current layer (for reports)
        self.closed = False     # the peer closed (EOF or reset)
        self.send_error = None  # the error of a send the peer cut short, if any

    # ---- lifecycle -----------------------------------------------------------------

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- bytes ---------------------------------------------------------------------

    def send(self, data, chunk=65536):
        """Sends `data`. A peer that closes or resets the connection while we are still
        sending (it refused what it had read) is recorded in `send_error`, not raised:
        the answer it sent before closing is still to be read."""
        if isinstance(data, str):
            data = data.encode()
        try:
            for i in range(0, len(data), chunk):
                self.sock.sendall(data[i:i + chunk])
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout) as e:
            self.send_error = e
            return False

    def _recv_once(self, deadline):
        """One recv bounded by `deadline`; returns False once the peer has closed."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return True
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self.closed = True
            return False
        except ssl.SSLError:
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        self.received += chunk
        return True

    def read_until(self, marker, timeout=5.0):
        """Reads until `marker` (bytes) is in the buffer; returns and consumes the buffer
        up to and including it. HarnessError (with what came) on timeout or close."""
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if time.monotonic() >= deadline or not self._recv_once(deadline):
                raise HarnessError("raw stream %s:%d: no %r within %.1f s (closed=%s); got %r" % (
                    self.ip, self.port, marker, timeout, self.closed, self.buf[-600:]))
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_until_any(self, markers, timeout=5.0):
        """Reads until one of `markers` is in the buffer; returns the buffer (consumed)."""
        deadline = time.monotonic() + timeout
        while not any(m in self.buf for m in markers):
            if time.monotonic() >= deadline or not self._recv_once(deadline):
                raise HarnessError("raw stream %s:%d: none of %r within %.1f s (closed=%s); got %r"
                                   % (self.ip, self.port, markers, timeout, self.closed,
                                      self.buf[-600:]))
        out, self.buf = self.buf, b""
        return out

    def read_until_closed(self, timeout=5.0):
        """Reads until the peer closes the connection or `timeout` runs out. Returns
        (bytes received and not consumed before, closed?)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._recv_once(deadline):
            pass
        out, self.buf = self.buf, b""
        return out, self.closed

    # ---- negotiation ---------------------------------------------------------------

    def open(self, frm, to, timeout=5.0):
        """Sends a stream header and reads the answer up to the end of the features."""
        self.send(stream_header(frm, to))
        return self.read_until_any([b"</stream:features>", b"<stream:features/>"], timeout)

    def starttls(self, certfile, keyfile, cafile, server_hostname, timeout=5.0, pipelined=b""):
        """<starttls/>, <proceed/>, then a TLS handshake on this socket presenting
        certfile/keyfile and verifying the server against cafile for server_hostname.
        `pipelined` bytes go in the same write right after <starttls/> (a STARTTLS
        command injection: the server must discard them)."""
        self.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + pipelined)
        self.read_until(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", timeout)
        if self.buf:
            raise HarnessError("raw stream: bytes after <proceed/>: %r" % self.buf)
        self._wrap_tls(certfile, keyfile, cafile, server_hostname, None, timeout, "TLS")

    def _wrap_tls(self, certfile, keyfile, cafile, server_hostname, alpn, timeout, what):
        """The TLS handshake on this socket (client certificate certfile/keyfile if
        given, the server verified against cafile for server_hostname, ALPN `alpn`
        if given); the stream's buffers start afresh. HarnessError if it fails."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if certfile:
            ctx.load_cert_chain(certfile, keyfile)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        self.sock.settimeout(timeout)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        except (ssl.SSLError, OSError) as e:
            raise HarnessError("raw stream: %s handshake with %s:%d failed: %s" % (
                what, self.ip, self.port, e)) from None
        self.buf = b""
        self.received = b""

    def direct_tls(self, certfile, keyfile, cafile, server_hostname, alpn=("xmpp-server",), timeout=5.0):
        """XEP-0368: a TLS handshake on the fresh socket (before any XML), SNI
        `server_hostname` (verified against cafile), offering the ALPN protocols
        `alpn` (None: no ALPN). Returns (the ALPN protocol the server chose or
        None, the server certificate in DER). HarnessError if the handshake fails."""
        self._wrap_tls(certfile, keyfile, cafile, server_hostname, alpn, timeout, "direct TLS")
        return self.sock.selected_alpn_protocol(), self.sock.getpeercert(binary_form=True)

    def authenticate_external(self, frm, to, certfile, keyfile, cafile, authzid_b64=None,
                              timeout=5.0, pipelined=b"", direct=False):
        """The whole dance up to an authenticated stream: header, STARTTLS, header,
        SASL EXTERNAL, header. `to` is also the name the server certificate must carry;
        `pipelined` is passed to starttls(). `direct`: the stream runs over direct TLS
        already (direct_tls()): STARTTLS must not be offered, and is skipped.
        Returns the bytes of the last answer (the empty features)."""
        features = self.open(frm, to, timeout)
        if direct:
            if b"urn:ietf:params:xml:ns:xmpp-tls" in features:
                raise HarnessError("raw stream: STARTTLS offered inside direct TLS: %r" % features)
        else:
            if b"urn:ietf:params:xml:ns:xmpp-tls" not in features:
                raise HarnessError("raw stream: no STARTTLS offered: %r" % features)
            self.starttls(certfile, keyfile, cafile, to, timeout, pipelined)
            features = self.open(frm, to, timeout)
        if b"<mechanism>EXTERNAL</mechanism>" not in features:
            raise HarnessError("raw stream: SASL EXTERNAL not offered after TLS: %r" % features)
        b64 = authzid_b64 if authzid_b64 is not None else _b64(frm)
        self.send(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>"
                   % b64).encode())
        answer = self.read_until_any([b"<success", b"<failure", b"</stream:stream>"], timeout)
        if b"<success" not in answer:
            raise HarnessError("raw stream: SASL EXTERNAL refused: %r" % answer)
        return self.open(frm, to, timeout)


def _b64(text):
    import base64
    return base64.b64encode(text.encode()).decode()
