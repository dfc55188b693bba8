#!/usr/bin/python3
"""Stanzas an edge refuses itself are in the audit archive (issue 12, item 2), and
connection events carry the peer in their structured fields (item 7, in part).

Topology: portcullis, cert mode, with a.test's peering row on side low limited to
kinds="message presence". A raw S2S stream authenticates as a.test (STARTTLS with
a.test's certificate, SASL EXTERNAL) to edge(low) and sends:
  * a legitimate message: it reaches bob@b.test (the stream is authenticated);
  * a message with a malformed 'to' ('@b.test'): edge(low) answers jid-malformed;
  * an iq: a kind a.test may not send, answered policy-violation;
  * a message from a localpart with a zero-width joiner (not PRECIS-prepared):
    refused jid-malformed, the reason naming U+200D;
  * another legitimate message: it still arrives (a refusal keeps the stream).
Then, from the archive (portcullis-audit export/search/report, the archive must
verify):
  * one rejected decision per refused stanza, direction low-to-high, naming edge(low)
    as the refuser (filter "edge(low)", type "edge", rule edge:to / edge:kind), the
    check and reason in its notes, the error condition sent, the peer (a.test,
    sasl-external, TLS, its certificate), and the stanza's exact bytes;
  * neither refused stanza was released, and bob never got them;
  * search --verdict rejected lists both, the report's refusals table names
    "edge(low) (edge) rule edge:kind";
  * the raw stream's SASL success is a connection event whose peer block names
    a.test with sasl-external and TLS (search --domain a.test finds it);
  * a flood of 700 refused iq results: recorded one by one up to the edge's rate
    (a burst of 500), the rest counted in aggregate edge-refusals events, so the
    two add up to 700;
  * a second raw stream that ends with <stream:error><system-shutdown/> (as Prosody
    does at shutdown) is closed without an error of ours, and its condition is
    archived as a peer-stream-error event (its text made printable).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.addresses import EDGE_LOW_IP, S2S_PORT  # noqa: E402
from harness.auditing import archive_dir, export_json, pubkey, run_audit  # noqa: E402
from harness.rawstream import RawStream  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

A, B = "a.test", "b.test"
TIMEOUT = 5.0
FLOOD = 700        # refused iqs sent at once: over the edge's burst of 500 refusal records

BAD_TO = (b"<message from='raw@a.test' to='@b.test' type='chat' id='refuse-to-1'>"
          b"<body>to nobody</body></message>")
# A localpart with a zero-width joiner (PRECIS: not allowed there): one identity
# could otherwise look like another across the boundary.
BAD_PRECIS = ("<message from='al\u200dice@a.test/r' to='bob@b.test' type='chat' id='refuse-precis-1'>"
              "<body>looks like alice</body></message>").encode()
BAD_KIND = (b"<iq from='raw@a.test/r' to='b.test' type='get' id='refuse-kind-1'>"
            b"<ping xmlns='urn:xmpp:ping'/></iq>")


def test(ctx):
    with Federation(ctx.subdir("refusals"), topology="portcullis", mode="cert",
                    build_dir=ctx.build_dir,
                    peer_attrs={"low": {A: 'kinds="message presence"'}}) as fed:
        pki = fed.pki_dir
        a_cert, a_key = os.path.join(pki, "a.test.pem"), os.path.join(pki, "a.test.key")
        ca_low = os.path.join(pki, "ca-low.pem")
        with fed.session("b", "bob") as bob:
            with RawStream(EDGE_LOW_IP, S2S_PORT) as s:
                s.authenticate_external(A, B, a_cert, a_key, ca_low, timeout=TIMEOUT)
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat' id='ok-1'>"
                       b"<body>raw hello</body></message>")
                bob.expect_message("raw@a.test", "raw hello", timeout=15)
                ctx.step("raw stream authenticated as a.test: a message reached bob")
                s.send(BAD_TO)
                s.send(BAD_KIND)
                s.send(BAD_PRECIS)
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat' id='ok-2'>"
                       b"<body>still here</body></message>")
                bob.expect_message("raw@a.test", "still here", timeout=15)
                # A flood of refused stanzas (iq results: no bounce goes back) is
                # recorded one by one up to the edge's rate, and in aggregate beyond.
                s.send(b"".join(b"<iq from='raw@a.test/r' to='b.test' type='result' id='flood-%d'/>" % i
                                for i in range(FLOOD)))
                s.send(b"<message from='raw@a.test' to='bob@b.test' type='chat' id='ok-3'>"
                       b"<body>after the flood</body></message>")
                bob.expect_message("raw@a.test", "after the flood", timeout=15)
                check(b"<stream:error" not in s.received,
                      "a refused stanza ended the stream: %r" % s.received[-300:])
                ctx.step("malformed 'to', a forbidden iq and an unprepared 'from' refused; the stream goes on")
                s.send(b"</stream:stream>")
                s.read_until_closed(TIMEOUT)
            bob.expect_no_message("raw@a.test", wait=0.3)
            bob.expect_no_message("al\u200dice@a.test", wait=0.3)
            # A peer that ends its stream with its own error (as Prosody does at
            # shutdown): the guard closes without an error of its own, and the
            # archive has the peer's condition.
            with RawStream(EDGE_LOW_IP, S2S_PORT) as s:
                s.authenticate_external(A, B, a_cert, a_key, ca_low, timeout=TIMEOUT)
                s.buf = s.received = b""
                s.send(b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                       b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye\tnow</text>"
                       b"</stream:error></stream:stream>")
                data, closed = s.read_until_closed(TIMEOUT)
                check(closed and data.rstrip().endswith(b"</stream:stream>") and
                      b"<stream:error" not in s.received,
                      "the guard answered a peer's stream error with %r" % s.received[-300:])
            ctx.step("a peer's <stream:error><system-shutdown/> is answered by a plain close")
        fed.portcullis.stop()

    adir, key = archive_dir(fed), pubkey(fed)
    recs = export_json(ctx.build_dir, adir, key=key)
    by_id = {}
    for r in recs:
        if r["type"] == "decision":
            by_id.setdefault(r["record"]["stanza"]["id"], []).append(r)
    cases = (("refuse-to-1", BAD_TO, "to", "jid-malformed", "message"),
             ("refuse-kind-1", BAD_KIND, "kind", "policy-violation", "iq"),
             ("refuse-precis-1", BAD_PRECIS, "from-precis", "jid-malformed", "message"))
    for sid, sent, chk, cond, kind in cases:
        rows = by_id.get(sid, [])
        check(len(rows) == 1, "%s: %d decision records, expected 1: %r"
              % (sid, len(rows), [r["record"] for r in rows]))
        d = rows[0]["record"]
        notes = dict(d.get("notes", []))
        check(d["outcome"] == "rejected" and d["direction"] == "low-to-high",
              "%s: outcome %s direction %s" % (sid, d["outcome"], d["direction"]))
        check(d.get("error") == cond, "%s: error %r, expected %s" % (sid, d.get("error"), cond))
        check(notes.get("refused.by") == "edge(low)" and notes.get("refused.check") == chk
              and notes.get("refused"), "%s: notes %r" % (sid, notes))
        f = d["filters"]
        check(len(f) == 1 and f[0]["filter"] == "edge(low)" and f[0]["type"] == "edge"
              and f[0]["verdict"] == "reject" and f[0]["rule"] == "edge:" + chk,
              "%s: trail %r" % (sid, f))
        p = d["peer"]
        check(p["domain"] == A and p["auth"] == "sasl-external" and p["tls"]
              and "sha256:" in p["cert"], "%s: peer %r" % (sid, p))
        check(d["stanza"]["kind"] == kind and d["from"].replace("\u200d", "").startswith(("raw@a.test", "alice@a.test")),
              "%s: stanza %r from %r" % (sid, d["stanza"], d["from"]))
        # The exact bytes the edge parsed (serialized again: same element, same text).
        body = sent.split(b"<body>")[1].split(b"</body>")[0] if b"<body>" in sent else b"urn:xmpp:ping"
        check(body.decode() in rows[0]["original"], "%s: original %r" % (sid, rows[0]["original"]))
        if chk == "from-precis":
            check("U+200D" in notes.get("refused", ""), "%s: the reason does not name U+200D: %r" % (sid, notes))
        check("released_sha256" not in d, "%s: something was released: %r" % (sid, d))
    ctx.step("the three refusals archived as rejected decisions of edge(low) with check, "
             "condition, peer and bytes")

    rej = run_audit(ctx.build_dir, "search", adir, "--pubkey", key, "--verdict", "rejected")
    check(rej.returncode == 0, "search exited %d: %s" % (rej.returncode, rej.stderr))
    for sid, *_ in cases:
        check(any("id=" + sid in ln or sid in ln for ln in rej.stdout.splitlines()),
              "search --verdict rejected lacks %s: %s" % (sid, rej.stdout))
    html_path = os.path.join(fed.run_dir, "report.html")
    r = run_audit(ctx.build_dir, "report", adir, "--html", html_path, "--pubkey", key)
    check(r.returncode == 0, "report exited %d: %s" % (r.returncode, r.stdout + r.stderr))
    with open(html_path, encoding="utf-8") as fh:
        html = fh.read()
    at = html.find('id="refusals"')
    table = html[at:html.find("</table>", at)]
    check("edge(low) (edge) rule edge:kind" in table and "edge(low) (edge) rule edge:to" in table,
          "report refusals table does not name edge(low): %s" % table[:2000])

    conns = [r["record"] for r in recs if r["type"] == "connection"]
    raw_ok = [c for c in conns if c["event"] == "auth-success" and c["peer"]["domain"] == A
              and c["side"] == "low" and "SASL EXTERNAL" in c["text"]]
    check(raw_ok and all(c["peer"]["auth"] == "sasl-external" and c["peer"]["tls"]
                         for c in raw_ok),
          "no auth-success event of a.test with its peer fields: %r" % conns)
    found = run_audit(ctx.build_dir, "search", adir, "--pubkey", key, "--domain", A,
                      "--type", "connection")
    check(found.returncode == 0 and "auth-success" in found.stdout,
          "search --domain a.test --type connection: %s" % found.stdout)
    ctx.step("search and report list the refusals; %d auth-success events name a.test "
             "in their peer fields" % len(raw_ok))
    peer_err = [c for c in conns if c["event"] == "peer-stream-error"]
    check(len(peer_err) == 1 and "stream error system-shutdown (bye?now)" in peer_err[0]["text"]
          and peer_err[0]["peer"]["domain"] == A and peer_err[0]["peer"]["auth"] == "sasl-external",
          "the peer's stream error is not archived with its condition: %r" % peer_err)
    check(not [c for c in conns if "unexpected <error/>" in c["text"]],
          "a peer's stream error is still archived as unexpected <error/>")
    ctx.step("the peer's stream error is archived as peer-stream-error system-shutdown")

    flood_recorded = sum(1 for sid in by_id if sid.startswith("flood-"))
    agg = [c for c in conns if c["event"] == "edge-refusals"]
    flood_agg = 0
    for c in agg:
        m = re.match(r"refusals: (\d+) stanza\(s\) from a\.test refused at the edge \(kind\)", c["text"])
        check(m is not None, "unexpected aggregate refusal event: %r" % c["text"])
        flood_agg += int(m.group(1))
    check(agg and flood_recorded + flood_agg == FLOOD and flood_recorded <= 520,
          "flood of %d refused iqs: %d recorded one by one, %d in aggregate (%d events)"
          % (FLOOD, flood_recorded, flood_agg, len(agg)))
    ctx.step("a flood of %d refused iqs: %d recorded one by one, %d counted in %d aggregate "
             "event(s); none lost" % (FLOOD, flood_recorded, flood_agg, len(agg)))


if __name__ == "__main__":
    run_test(test)
