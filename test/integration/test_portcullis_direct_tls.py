#!/usr/bin/python3
"""S2S over direct TLS (XEP-0368) through the sandwich, and a certificate per
presented domain chosen by SNI (issue 12, "S2S completeness").

Topology: portcullis, cert mode. b.test (real Prosody) also accepts S2S over direct
TLS on 5270 (s2s_direct_tls_ports); edge(high)'s <peer domain="b.test"> dials it
there with direct-tls="true" (SNI b.test, ALPN xmpp-server). Edge(low) has a second
listener, <listen port="5270" direct-tls="true">, and a <domain-certificate> for
conference.b.test (a leaf that names only that domain).

  * alice@a.test <-> bob@b.test both ways: a.test's traffic reaches b.test over the
    direct-TLS link, b.test's replies come back over Prosody's own link;
  * the archive's connection event for edge(high)'s link to b.test says it is direct
    TLS with SNI b.test (Prosody 0.12 answers no ALPN there; ours is offered);
  * a raw client with a.test's certificate on edge(low)'s direct-TLS listener:
    SNI b.test gets guard-low's certificate, ALPN xmpp-server;
    SNI conference.b.test gets that domain's own certificate;
    STARTTLS is not offered inside, SASL EXTERNAL authenticates a.test, and a message
    sent on that stream reaches bob; the archive records the stream as direct TLS;
  * a ClientHello offering only ALPN h2 is refused (no application protocol);
  * a cleartext stream header on the direct-TLS port gets no XMPP stream back, and
    traffic still flows afterwards;
  * both refused handshakes are in the archive as tls-failure events with OpenSSL's
    reason ("no application protocol", "wrong version number"); a bare connect and
    close (a port probe) is not.
"""

import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.addresses import EDGE_LOW_IP, S2S_PORT  # noqa: E402
from harness.auditing import archive_dir, export_json, pubkey  # noqa: E402
from harness.procs import HarnessError  # noqa: E402
from harness.rawstream import RawStream  # noqa: E402
from harness.scenarios import chat_both_ways  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation, write_portcullis_config  # noqa: E402

A, B, B_MUC = "a.test", "b.test", "conference.b.test"
DIRECT_PORT = 5270
TIMEOUT = 5.0


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def config(run_dir, pki):
    """The standard test config, with the direct-TLS pieces added."""
    path = os.path.join(run_dir, "portcullis.xml")
    write_portcullis_config(path, pki, "cert", run_dir=run_dir)
    with open(path) as f:
        lines = f.read().split("\n")
    out, side = [], None
    for ln in lines:
        s = ln.strip()
        if s.startswith("<side "):
            side = "low" if 'name="low"' in s else "high"
        if side == "high" and s.startswith('<peer domain="%s"' % B):
            old = 'port="%d"' % S2S_PORT
            check(old in ln, "unexpected peer line %r" % ln)
            ln = ln.replace(old, 'port="%d" direct-tls="true"' % DIRECT_PORT)
        if side == "low" and s.startswith("<tls ") and s.endswith("/>"):
            # <tl .../> becomes <tls ...>, a domain certificate, </tls>.
            ind = ln[:len(ln) - len(ln.lstrip())]
            out.append(ln.rstrip()[:-2].rstrip() + ">")
            out.append('%s  <domain-certificate domain="%s" certificate="%s/%s-own.pem" key="%s/%s-own.key"/>'
                       % (ind, B_MUC, pki, B_MUC, pki, B_MUC))
            out.append(ind + "</tls>")
            continue
        out.append(ln)
        if side == "low" and s.startswith("<listen "):
            out.append('%s<listen address="%s" port="%d" direct-tls="true"/>'
                       % (ln[:len(ln) - len(ln.lstrip())], EDGE_LOW_IP, DIRECT_PORT))
    text = "\n".join(out)
    check(text.count('direct-tls="true"') == 2 and "domain-certificate" in text,
          "config was not rewritten as expected:\n" + text)
    with open(path, "w") as f:
        f.write(text)
    return path


def test(ctx):
    run_dir = ctx.subdir("direct-tls")
    os.makedirs(run_dir, exist_ok=True)
    pki = os.path.join(run_dir, "pki")
    from harness.pki import make_pki
    make_pki(pki)
    cfg = config(run_dir, os.path.abspath(pki))
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    pki_dir=pki, portcullis_config=cfg,
                    prosody_opts={"b": {"direct_tls_port": DIRECT_PORT}}) as fed:
        a_cert, a_key = os.path.join(pki, "a.test.pem"), os.path.join(pki, "a.test.key")
        ca_low = os.path.join(pki, "ca-low.pem")
        chat_both_ways(ctx, fed, "direct TLS to b.test")

        with RawStream(EDGE_LOW_IP, DIRECT_PORT) as s:
            alpn, der = s.direct_tls(a_cert, a_key, ca_low, B)
            check(alpn == "xmpp-server", "SNI b.test: ALPN %r, expected xmpp-server" % alpn)
            check(der == der_of(os.path.join(pki, "guard-low.pem")),
                  "SNI b.test: the edge did not present guard-low's certificate")
        ctx.step("direct TLS, SNI b.test: guard-low's certificate, ALPN xmpp-server")

        with RawStream(EDGE_LOW_IP, DIRECT_PORT) as s:
            alpn, der = s.direct_tls(a_cert, a_key, ca_low, B_MUC)
            check(der == der_of(os.path.join(pki, B_MUC + "-own.pem")),
                  "SNI conference.b.test: the edge did not present that domain's own certificate")
            check(der != der_of(os.path.join(pki, "guard-low.pem")), "own certificate equals guard-low's")
        ctx.step("direct TLS, SNI conference.b.test: that domain's own certificate")

        with fed.session("b", "bob") as bob:
            with RawStream(EDGE_LOW_IP, DIRECT_PORT) as s:
                s.direct_tls(a_cert, a_key, ca_low, B)
                s.authenticate_external(A, B, a_cert, a_key, ca_low, timeout=TIMEOUT, direct=True)
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat' id='direct-1'>"
                       b"<body>over direct TLS</body></message>")
                bob.expect_message("raw@a.test", "over direct TLS", timeout=15)
            ctx.step("raw direct-TLS stream: no STARTTLS offered, SASL EXTERNAL as a.test, "
                     "its message reached bob")

            try:
                with RawStream(EDGE_LOW_IP, DIRECT_PORT) as s:
                    s.direct_tls(a_cert, a_key, ca_low, B, alpn=("h2",))
                refused = None
            except HarnessError as e:
                refused = str(e)
            check(refused is not None, "a ClientHello with ALPN h2 only was accepted")
            ctx.step("ALPN h2 alone refused: %s" % refused.splitlines()[0][:160])

            # Cleartext XMPP on the direct-TLS port: the edge expects a ClientHello and
            # never answers with a stream; the connection closes.
            sock = socket.create_connection((EDGE_LOW_IP, DIRECT_PORT), timeout=TIMEOUT)
            try:
                sock.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                             b"xmlns:stream='http://etherx.jabber.org/streams' from='a.test' "
                             b"to='b.test' version='1.0'>")
                got, deadline = b"", time.monotonic() + 10
                while time.monotonic() < deadline:
                    try:
                        chunk = sock.recv(4096)
                    except socket.timeout:
                        continue
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    got += chunk
                else:
                    check(False, "cleartext on the direct-TLS port: still open after 10 s")
            finally:
                sock.close()
            check(b"stream" not in got, "cleartext on the direct-TLS port got an XMPP answer: %r" % got)
            ctx.step("cleartext stream header on the direct-TLS port: closed, no stream (%d bytes back)"
                     % len(got))
            # A bare connect and close (a port probe, a health check) refused nothing.
            socket.create_connection((EDGE_LOW_IP, DIRECT_PORT), timeout=TIMEOUT).close()
            with fed.session("a", "alice") as alice:
                alice.send(fed.jid("b", "bob"), "after the hostile cases")
                bob.expect_message(fed.jid("a", "alice"), "after the hostile cases", timeout=20)
            ctx.step("traffic still flows after the hostile cases")

    recs = export_json(ctx.build_dir, archive_dir(fed), key=pubkey(fed))
    conns = [r["record"] for r in recs if r["type"] == "connection"]
    out_direct = [c for c in conns if c["side"] == "high" and c["peer"]["domain"] == B
                  and "authenticated" in c["text"] and "direct TLS" in c["text"]]
    # Prosody 0.12 does not answer ALPN on its direct-TLS port, so the agreed
    # protocol is whatever it chose (none); the SNI we sent is always named.
    check(out_direct and all("SNI %s" % B in c["text"] for c in out_direct),
          "no archived direct-TLS link from edge(high) to b.test naming its SNI: %r"
          % [c["text"] for c in conns if c["side"] == "high"])
    in_direct = [c for c in conns if c["side"] == "low" and c["event"] == "auth-success"
                 and c["peer"]["domain"] == A and "direct TLS" in c["text"]]
    check(in_direct, "no archived direct-TLS SASL EXTERNAL stream of a.test on edge(low): %r"
          % [c["text"] for c in conns if c["side"] == "low"])
    starttls_b = [c for c in conns if c["side"] == "high" and c["peer"]["domain"] == B
                  and "STARTTLS" in c["text"] and "authenticated (" in c["text"]]
    check(not starttls_b, "edge(high) dialled b.test with STARTTLS: %r" % [c["text"] for c in starttls_b])
    tls_fail = [c["text"] for c in conns if c["event"] == "tls-failure" and c["side"] == "low"]
    check(any(t.endswith("TLS handshake failed: no application protocol") for t in tls_fail) and
          any(t.endswith("TLS handshake failed: wrong version number") for t in tls_fail),
          "the refused handshakes (ALPN h2, cleartext) are not archived as tls-failure events: %r" % tls_fail)
    check(len(tls_fail) == 2, "a bare connect and close was archived as a refusal: %r" % tls_fail)
    ctx.step("archive: both refused handshakes, and only they, are tls-failure events (%s)" % "; ".join(
        t.split(": ", 1)[1] for t in tls_fail))
    alpn_in = [c for c in in_direct if "ALPN xmpp-server" in c["text"]]
    check(alpn_in, "the direct-TLS inbound stream's event does not name ALPN xmpp-server: %r"
          % [c["text"] for c in in_direct])
    ctx.step("archive: %d direct-TLS link event(s) to b.test naming SNI b.test (%s), %d direct-TLS "
             "inbound SASL EXTERNAL stream(s) of a.test with ALPN xmpp-server, none over STARTTLS "
             "to b.test" % (len(out_direct), "ALPN " + ("agreed" if "ALPN" in out_direct[0]["text"]
                                                   else "not answered by Prosody"),
                            len(in_direct)))


if __name__ == "__main__":
    run_test(test)
