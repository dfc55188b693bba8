#!/usr/bin/python3
"""The accreditor tools (portcullis-audit verify/search/show/export/report) on a
real archive written by an interop run with Prosody.

Run: policy "tools-1" allows a.test -> b.test chat only low->high (no MUC pairs)
and everything high->low. Traffic: UP messages alice -> bob, DOWN bob -> alice,
REJ alice -> room@conference.b.test (rejected: that pair is not allowed low->high);
then the policy file is replaced by "tools-2" (same rules) and portcullisd gets
SIGHUP (the supervisor forwards it to the filter); one more message each way.
portcullisd is stopped (the writer closes its segment), then:

  * verify: exit 0, "OK: N records ..." with N = every record export lists
    (all types + checkpoints) and the right last seq;
  * search --jid / --direction / --verdict: as many lines (and "N matching
    record(s)") as the records computed from the JSON export, and at least the
    stanzas this test sent; --rule and --type admin find the reload;
  * show SEQ of a released message: its metadata and the pretty-printed stanza
    (the body on its own indented line);
  * export json (JSON Lines) and csv (csv module, 23 columns) parse; the number
    of decision records equals the decision lines the filter logged, and the
    decisions carry the policy version in force (tools-1, then tools-2 after the
    policy-reload admin record with the new file's sha256);
  * report --html: exits 0, file written, self-contained (no <script>, <link>,
    src/href, @import or url(); the only "http" is the SVG namespace name), shows
    the totals, the verdict counts and the OK verification line;
  * one byte flipped inside a decision record of a COPY of the archive: verify
    exits 1 and names HASH-MISMATCH with the segment file, the record's offset and
    seq.
"""

import csv
import hashlib
import io
import os
import re
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.addresses import A_DOMAIN, B_DOMAIN  # noqa: E402
from harness.auditing import (archive_dir, decisions, export_json, log_text, pubkey,  # noqa: E402
                              run_audit, verify, verify_ok, wait_log)
from harness.testing import check, run_test  # noqa: E402
from harness.topology import DEFAULT_ALLOWED, Federation, portcullis_policy_text  # noqa: E402

UP, DOWN, REJ = 5, 4, 2
ALLOWED = {("low", "high"): [(A_DOMAIN, B_DOMAIN)],
           ("high", "low"): DEFAULT_ALLOWED[("high", "low")]}


def search(build_dir, adir, key, *query):
    """(lines, count printed on stderr) of `portcullis-audit search DIR --pubkey KEY query`
    on an archive that verifies (exit 0)."""
    r = run_audit(build_dir, "search", adir, "--pubkey", key, *query)
    check(r.returncode == 0, "search %s exited %d: %s" % (" ".join(query), r.returncode,
                                                          r.stderr.strip()))
    m = re.search(r"^(\d+) matching record\(s\)$", r.stderr, re.M)
    check(m is not None, "search %s: no 'N matching record(s)' line: %r" % (" ".join(query),
                                                                       r.stderr))
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    check(len(lines) == int(m.group(1)), "search %s printed %d lines but says %s"
          % (" ".join(query), len(lines), m.group(1)))
    return lines


def jid_match(want, have):
    return have == want or have.startswith(want + "/")


def test(ctx):
    run_dir = ctx.subdir("tools")
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    policy_text=portcullis_policy_text(ALLOWED, version="tools-1")) as fed:
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        room = fed.room("b")
        up, down, rej = [], [], []
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            for i in range(UP):
                up.append((alice.send(bob_jid, "tools-up-%d" % i), "tools-up-%d" % i))
                bob.expect_message(alice_jid, "tools-up-%d" % i, timeout=20)
            for i in range(DOWN):
                down.append((bob.send(alice_jid, "tools-down-%d" % i), "tools-down-%d" % i))
                alice.expect_message(bob_jid, "tools-down-%d" % i, timeout=20)
            for i in range(REJ):
                rej.append((alice.send(room, "tools-rejected-%d" % i), "tools-rejected-%d" % i))
                e = alice.expect_error(frm=room, timeout=20)
                check(e["condition"] == "policy-violation",
                      "alice -> room: expected policy-violation, got %r" % e)
            ctx.step("%d a->b and %d b->a messages crossed; %d a->room refused (policy-violation)"
                     % (UP, DOWN, REJ))

            # ---- policy reload (SIGHUP to portcullisd) ----
            policy = os.path.join(fed.run_dir, "policy.xml")
            text = portcullis_policy_text(ALLOWED, version="tools-2")
            with open(policy + ".new", "w") as f:
                f.write(text)
            os.replace(policy + ".new", policy)
            new_hash = hashlib.sha256(text.encode()).hexdigest()
            os.kill(fed.portcullis.pid, signal.SIGHUP)
            wait_log(fed, r"filter info: policy tools-2 sha256 %s loaded from \S+ \(reload, "
                          r"replacing version tools-1\)" % new_hash)
            up.append((alice.send(bob_jid, "tools-up-after-reload"), "tools-up-after-reload"))
            bob.expect_message(alice_jid, "tools-up-after-reload", timeout=20)
            down.append((bob.send(alice_jid, "tools-down-after-reload"),
                         "tools-down-after-reload"))
            alice.expect_message(bob_jid, "tools-down-after-reload", timeout=20)
            ctx.step("SIGHUP: policy tools-2 (sha256 %s...) loaded; chat crosses both ways"
                     % new_hash[:12])
        fed.portcullis.stop()
        logged = len(re.findall(r"^\S+ filter (?:debug|warning): decision seq=", log_text(fed),
                                re.M))

    adir, key = archive_dir(fed), pubkey(fed)
    build = ctx.build_dir

    # ---- export json: the reference for every count below ----
    recs = export_json(build, adir, key=key)
    cps = export_json(build, adir, "--type", "checkpoint", key=key)
    check(cps and all(r["type"] == "checkpoint" for r in cps), "no checkpoint records exported")
    dec = decisions(recs)
    by_id = {}
    for r in dec:
        by_id.setdefault(r["record"]["stanza"]["id"], []).append(r)
    check(len(dec) == logged, "%d decision records in the archive, the filter logged %d "
          "decisions" % (len(dec), logged))
    for group, direction, outcome in ((up, "low-to-high", "released"),
                                      (down, "high-to-low", "released"),
                                      (rej, "low-to-high", "rejected")):
        for mid, body in group:
            rows = by_id.get(mid, [])
            check(len(rows) == 1 and rows[0]["record"]["direction"] == direction and
                  rows[0]["record"]["outcome"] == outcome and body in rows[0]["original"],
                  "%r (id %s): expected one %s %s record with its bytes, got %r"
                  % (body, mid, direction, outcome, [r["record"] for r in rows]))
    reload_rec = [r for r in recs if r["type"] == "admin" and
                  r["record"].get("event") == "policy-reload"]
    check(len(reload_rec) == 1, "%d policy-reload admin records" % len(reload_rec))
    fields = dict(reload_rec[0]["record"].get("fields", []))
    check(fields.get("sha256") == new_hash and fields.get("version") == "tools-2",
          "policy-reload record fields %r" % fields)
    for r in dec:
        want = "tools-1" if r["seq"] < reload_rec[0]["seq"] else "tools-2"
        check(r["record"]["policy"]["version"] == want, "decision seq %d names policy %s, not "
              "%s" % (r["seq"], r["record"]["policy"]["version"], want))
    ctx.step("export json: %d records (%d decisions = %d logged by the filter) + %d "
             "checkpoints; policy-reload record seq %d with the new sha256; decisions name "
             "tools-1 then tools-2" % (len(recs), len(dec), logged, len(cps),
                                       reload_rec[0]["seq"]))

    # ---- verify ----
    m, _ = verify_ok(build, adir, key)
    total = len(recs) + len(cps)
    last = max(r["seq"] for r in recs + cps)
    check(int(m.group(1)) == total and int(m.group(3)) == last,
          "verify says %s records / last seq %s; the export has %d / %d"
          % (m.group(1), m.group(3), total, last))
    ctx.step("verify exits 0: %s" % m.group(0))

    # ---- search ----
    def count(pred):
        return sum(1 for r in dec if pred(r["record"]))
    cases = [
        (("--jid", alice_jid), lambda d: jid_match(alice_jid, d["from"]) or
         jid_match(alice_jid, d["to"]), len(up) + len(down) + len(rej)),
        (("--jid", bob_jid), lambda d: jid_match(bob_jid, d["from"]) or
         jid_match(bob_jid, d["to"]), len(up) + len(down)),
        (("--direction", "low-to-high"), lambda d: d["direction"] == "low-to-high",
         len(up) + len(rej)),
        (("--direction", "high-to-low"), lambda d: d["direction"] == "high-to-low", len(down)),
        (("--verdict", "released"), lambda d: d["outcome"] == "released", len(up) + len(down)),
        (("--verdict", "rejected"), lambda d: d["outcome"] == "rejected", len(rej)),
        (("--direction", "low-to-high", "--verdict", "rejected"),
         lambda d: d["direction"] == "low-to-high" and d["outcome"] == "rejected", len(rej)),
        (("--rule", "low-high-1"), lambda d: any(f.get("rule") == "low-high-1"
                                                 for f in d["filters"]), len(up)),
    ]
    shown = []
    for query, pred, at_least in cases:
        lines = search(build, adir, key, *query)
        want = count(pred)
        check(len(lines) == want, "search %s: %d records, the export says %d"
              % (" ".join(query), len(lines), want))
        check(want >= at_least, "search %s: %d records, fewer than the %d this test caused"
              % (" ".join(query), want, at_least))
        shown.append("%s=%d" % (" ".join(query), want))
    rej_lines = search(build, adir, key, "--verdict", "rejected")
    check(all(" rejected low-to-high " in ln and "error=policy-violation" in ln
              for ln in rej_lines[:len(rej)]), "rejected lines: %r" % rej_lines)
    admin_lines = search(build, adir, key, "--type", "admin")
    check(any("policy-reload" in ln for ln in admin_lines),
          "search --type admin lacks the policy-reload: %r" % admin_lines)
    ctx.step("search counts match the export: %s; --type admin shows the reload"
             % ", ".join(shown))

    # ---- show ----
    mid, body = up[0]
    seq = by_id[mid][0]["seq"]
    r = run_audit(build, "show", adir, seq, "--pubkey", key)
    check(r.returncode == 0, "show %d exited %d: %s" % (seq, r.returncode, r.stderr.strip()))
    out = r.stdout
    for want in ("seq:       %d" % seq, "outcome:   released", "direction: low-to-high",
                 "id=%s" % mid, "policy:    version=tools-1", "--- original stanza ---"):
        check(want in out, "show %d lacks %r:\n%s" % (seq, want, out))
    check(re.search(r"\n[ \t]+<body>%s</body>\n" % re.escape(body), out),
          "show %d: the stanza body is not pretty-printed on its own indented line:\n%s"
          % (seq, out))
    r = run_audit(build, "show", adir, last + 1000, "--pubkey", key)
    check(r.returncode == 1, "show of a missing seq exited %d, expected 1" % r.returncode)
    ctx.step("show %d: metadata and the pretty-printed stanza (%r indented)" % (seq, body))

    # ---- export csv ----
    r = run_audit(build, "export", adir, "--format", "csv", "--pubkey", key)
    check(r.returncode == 0, "export csv exited %d: %s" % (r.returncode, r.stderr.strip()))
    rows = list(csv.reader(io.StringIO(r.stdout)))
    header, rows = rows[0], rows[1:]
    check(len(header) == 23 and header[0] == "seq", "csv header %r" % header)
    check(all(len(x) == 23 for x in rows), "csv rows with other than 23 fields")
    check(len(rows) == len(recs), "csv has %d rows, json %d records" % (len(rows), len(recs)))
    csv_dec = [x for x in rows if x[2] == "decision"]
    check(len(csv_dec) == logged, "csv: %d decisions, the filter logged %d"
          % (len(csv_dec), logged))
    col = {n: i for i, n in enumerate(header)}
    for x in csv_dec:
        j = by_id[x[col["stanza_id"]]]
        check(any(str(y["seq"]) == x[col["seq"]] and y["record"]["outcome"] == x[col["outcome"]]
                  for y in j), "csv row seq %s disagrees with the json export" % x[0])
    ctx.step("export csv: %d rows x 23 fields, %d decisions agree with the json export"
             % (len(rows), len(csv_dec)))

    # ---- report --html ----
    html_path = os.path.join(run_dir, "report.html")
    r = run_audit(build, "report", adir, "--html", html_path, "--pubkey", key)
    check(r.returncode == 0, "report exited %d: %s %s" % (r.returncode, r.stdout.strip(),
                                                         r.stderr.strip()))
    check(os.path.exists(html_path), "report did not write %s" % html_path)
    with open(html_path, encoding="utf-8") as f:
        html = f.read()
    low = html.lower()
    for bad in ("<script", "<link", "<iframe", "<img src=\"http", "@import", "url(", " src=",
                " href="):
        check(bad not in low, "report is not self-contained: contains %r" % bad)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    check(urls <= {"http://www.w3.org/2000/svg"},
          "report contains URLs other than the SVG namespace name: %r" % urls)
    check(("xmlns=\"http://www.w3.org/2000/svg\"" in html) or not urls,
          "the SVG namespace appears outside an xmlns attribute")
    check(m.group(0) in html, "report lacks the verification line %r" % m.group(0))
    check('class="status ok"' in html, "report verification status is not 'ok'")
    released, rejected = count(lambda d: d["outcome"] == "released"), count(
        lambda d: d["outcome"] == "rejected")
    for label, n in (("decisions", len(dec)), ("checkpoints", len(cps))):
        check(re.search(r"<th>%s</th><td class=\"num\">%d</td>" % (label, n), html),
              "report totals lack %s = %d" % (label, n))
    for label, n in (("released", released), ("rejected", rejected)):
        check(re.search(r">%s</t[dh]><td class=\"num\">%d</td>" % (label, n), html),
              "report verdict table lacks %s = %d" % (label, n))
    check("<svg" in html, "report has no chart")
    ctx.step("report --html: %d bytes, no external resource (only %s), totals, verdict counts "
             "(released %d, rejected %d), charts and the OK line" % (
                 len(html), sorted(urls) or "no URL", released, rejected))

    # ---- connection events name their peer; the report's tables ----
    dom_a, dom_b = alice_jid.split("@")[1], bob_jid.split("@")[1]
    conns = [r["record"] for r in recs if r["type"] == "connection"]
    for dom, side in ((dom_a, "low"), (dom_b, "high")):
        ok = [c for c in conns if c["event"] == "auth-success" and c["peer"]["domain"] == dom
              and c["side"] == side]
        check(ok and all(c["peer"]["auth"] == "sasl-external" and c["peer"]["tls"] and
                         "sha256:" in c["peer"]["cert"] for c in ok),
              "no auth-success record of %s on side %s with its structured peer fields: %r"
              % (dom, side, [c for c in conns if c["event"] == "auth-success"]))
        found = search(build, adir, key, "--domain", dom, "--type", "connection")
        check(any("auth-success" in ln for ln in found),
              "search --domain %s --type connection finds no auth-success: %r" % (dom, found))

    def table(tid):
        at = html.find('id="%s"' % tid)
        check(at >= 0, "report has no %s table" % tid)
        return html[at:html.find("</table>", at)]
    peers = table("peers")
    sent_a = count(lambda d: d["peer"]["domain"] == dom_a and d["direction"] == "low-to-high")
    check(re.search(r"<tr><td>%s</td><td>low</td><td class=\"num\">%d</td>" % (re.escape(dom_a), sent_a),
                    peers), "peers table lacks %s (low) with %d decisions: %s" % (dom_a, sent_a, peers))
    refusals = table("refusals")
    for ln in rej_lines:
        check('<tr><td class="num">%s</td>' % ln.split()[0] in refusals,
              "refusals table lacks seq %s" % ln.split()[0])
    policies = table("policies")
    check(re.search(r"<td>tools-1</td>.*at start.*<td>tools-2</td>.*reload", policies, re.S),
          "policy table does not show tools-1 at start, then tools-2 by reload: %s" % policies)
    keys = table("keys")
    check("<td>yes</td>" in keys and "<strong>no</strong>" not in keys,
          "keys table does not show the signing key as given: %s" % keys)
    check('id="trust"' not in html, "a verified archive's report marks figures unverified")
    ctx.step("connection events name their peers (search --domain finds them); report: "
             "%s sent %d, %d refusals by seq, policy tools-1 then tools-2, the key id"
             % (dom_a, sent_a, len(rej_lines)))

    # ---- tampering: one flipped byte in a copy ----
    tampered = os.path.join(run_dir, "audit-tampered")
    shutil.rmtree(tampered, ignore_errors=True)
    shutil.copytree(adir, tampered)
    victim = by_id[down[0][0]][0]
    path = os.path.join(tampered, victim["segment_file"])
    at = victim["offset"] + 28 + 20          # inside the payload (frame header is 28 bytes)
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x01]))
    rc, out, _ = verify(build, tampered, key)
    check(rc == 1, "verify of the tampered copy exited %d, expected 1: %s" % (rc, out))
    want = "HASH-MISMATCH %s offset %d seq %d" % (victim["segment_file"], victim["offset"],
                                                   victim["seq"])
    check(want in out, "verify of the tampered copy does not name %r:\n%s" % (want, out))
    fault = [ln for ln in out.splitlines() if ln.startswith("FAULT:")]
    check(fault, "verify of the tampered copy printed no FAULT line:\n%s" % out)
    ctx.step("flipped byte at %s+%d: verify exits 1: %s" % (victim["segment_file"], at,
                                                           fault[0][:200]))
    r = run_audit(build, "report", tampered, "--html", html_path, "--pubkey", key)
    check(r.returncode == 1, "report of the tampered copy exited %d, expected 1" % r.returncode)
    with open(html_path, encoding="utf-8") as f:
        bad_html = f.read()
    check('class="status fault"' in bad_html and 'id="trust"' in bad_html and
          "unverified)" in bad_html, "report of the tampered copy does not mark its figures")
    ctx.step("report of the tampered copy: FAULT banner; the records that %s are marked unverified"
             % re.search(r"come after seq (\d+)|(all of them)", bad_html).group(0))
    rc, _, _ = verify(build, adir, key)
    check(rc == 0, "the original archive no longer verifies after the copy was tampered")


if __name__ == "__main__":
    run_test(test)
