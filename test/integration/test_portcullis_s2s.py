#!/usr/bin/python3
"""Real S2S traffic through the sandwich: a.test (low) <-> Portcullis <-> b.test (high).

1. cert mode (SASL EXTERNAL on all four streams): chat a->b and b->a; a.test user
   joins room@conference.b.test and groupchat flows both ways; the edges' logs prove
   SASL EXTERNAL authenticated each stream and the filter logged each decision.
2. a MUC-only policy: a chat message for a pair that is not allowed comes back to
   its sender as policy-violation (without echoing the body) and never arrives,
   while the allowed room traffic still crosses.
3. a.test presents a certificate from an untrusted CA: edge(low) refuses it and
   its log says why; nothing crosses.
4. dialback mode (XEP-0220, Portcullis as receiving, initiating and authoritative
   server): chat both ways, and the logs prove dialback was used.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import auditing  # noqa: E402
from harness.addresses import A_DOMAIN, B_DOMAIN, B_MUC  # noqa: E402
from harness.scenarios import chat_both_ways, muc_both_ways  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402


def wait_log(fed, pattern, timeout=10):
    """The whole portcullisd log line that matches `pattern` (waits, bounded)."""
    m = auditing.wait_log(fed, pattern, timeout)
    text = m.string
    end = text.find("\n", m.end())
    return text[text.rfind("\n", 0, m.start()) + 1:end if end >= 0 else len(text)]


def test(ctx):
    pki = os.path.join(ctx.run_dir, "pki")

    # 1. cert mode
    with Federation(ctx.subdir("cert"), topology="portcullis", mode="cert", pki_dir=pki,
                    build_dir=ctx.build_dir) as fed:
        chat_both_ways(ctx, fed, "cert")
        log = auditing.log_text(fed)
        for what in (r"edge\(low\) info: inbound a\.test->b\.test .*authenticated a\.test by SASL EXTERNAL",
                     r"edge\(high\) info: inbound b\.test->a\.test .*authenticated b\.test by SASL EXTERNAL",
                     r"edge\(high\) info: outbound a\.test->b\.test .*ready \(SASL EXTERNAL\)",
                     r"edge\(low\) info: outbound b\.test->a\.test .*ready \(SASL EXTERNAL\)",
                     r"filter debug: decision seq=\d+ low-to-high peer=a\.test auth=sasl-external message .*released",
                     r"filter debug: decision seq=\d+ high-to-low peer=b\.test auth=sasl-external message .*released"):
            check(re.search(what, log), "cert: portcullisd log lacks /%s/ (%s)" % (what, fed.portcullis.log_path))
        check("dialback" not in log.lower().replace("dialback-", ""),
              "cert: dialback used in cert mode")
        ctx.step("cert: four streams authenticated by SASL EXTERNAL, decisions logged")
        muc_both_ways(ctx, fed)

    # 1b. the far server is down: edge(high) cannot connect, and the error reply
    # crosses back through the filter to alice (remote-server-not-found).
    with Federation(ctx.subdir("down"), topology="portcullis", mode="cert", pki_dir=pki,
                    build_dir=ctx.build_dir) as fed:
        with fed.session("a", "alice") as alice:
            fed.b.stop()
            alice.send(fed.jid("b", "bob"), "nobody home")
            err = alice.expect_error(frm=fed.jid("b", "bob"), timeout=30)
            check(err["condition"] == "remote-server-not-found",
                  "down: expected remote-server-not-found, got %s (%s)" % (err["condition"], err["text"]))
            line = wait_log(fed, r"filter debug: decision .* high-to-low peer=b\.test auth=internal message "
                                 r"from=bob@b\.test to=alice@a\.test\S* .*released")
            ctx.step("down: alice got %s; the bounce crossed the filter: %s" % (
                err["condition"], line.split("decision ", 1)[-1][:90]))

    # 2. MUC-only policy: a.test may reach the b.test rooms, not b.test users.
    allowed = {("low", "high"): [(A_DOMAIN, B_MUC)],
               ("high", "low"): [(B_MUC, A_DOMAIN), (B_DOMAIN, A_DOMAIN)]}
    with Federation(ctx.subdir("deny"), topology="portcullis", mode="cert", pki_dir=pki,
                    build_dir=ctx.build_dir, allowed=allowed) as fed:
        room = fed.room("b")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            secret = "the launch code is 0000"
            alice.send(fed.jid("b", "bob"), secret)
            err = alice.expect_error(frm=fed.jid("b", "bob"), timeout=20)
            check(err["condition"] == "policy-violation",
                  "deny: expected policy-violation, got %s (%s)" % (err["condition"], err["text"]))
            check(secret not in (err.get("xml") or "") and secret not in (err["text"] or ""),
                  "deny: the error echoes the refused body")
            bob.expect_no_message(fed.jid("a", "alice"), wait=2.0)
            ctx.step("deny: alice->bob refused with %s, nothing arrived" % err["condition"])
            line = wait_log(fed, r"filter warning: decision .* from=alice@a\.test\S* to=bob@b\.test .*rejected by default-deny")
            ctx.step("deny: filter log: " + line.split(": ", 1)[-1][:120])
            bob.join_room(room, "bob")
            alice.join_room(room, "alice", timeout=20)
            alice.send_groupchat(room, "allowed in the room")
            bob.expect_groupchat(room, "alice", "allowed in the room", timeout=20)
            ctx.step("deny: the allowed pair a.test -> %s still crosses" % B_MUC)

    # 3. untrusted certificate: a.test presents rogue-a.test (signed by ca-rogue)
    with Federation(ctx.subdir("rogue"), topology="portcullis", mode="cert", pki_dir=pki,
                    build_dir=ctx.build_dir,
                    a_cert=os.path.join(pki, "rogue-a.test.pem"),
                    a_key=os.path.join(pki, "rogue-a.test.key")) as fed:
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(fed.jid("b", "bob"), "must not arrive")
            line = wait_log(fed, r"edge\(low\) warning: refusing a\.test: certificate for a\.test is not trusted", 20)
            ctx.step("rogue: " + line.split("warning: ", 1)[-1])
            err = alice.expect_error(frm=fed.jid("b", "bob"), timeout=40)
            check(err["condition"] in ("remote-server-timeout", "remote-server-not-found"),
                  "rogue: unexpected bounce %s (%s)" % (err["condition"], err["text"]))
            ctx.step("rogue: alice got %s from her own server" % err["condition"])
            bob.expect_no_message(fed.jid("a", "alice"), wait=1.0)
            check("decision" not in auditing.log_text(fed), "rogue: a stanza reached the filter")

    # 4. dialback mode
    with Federation(ctx.subdir("dialback"), topology="portcullis", mode="dialback", pki_dir=pki,
                    build_dir=ctx.build_dir) as fed:
        chat_both_ways(ctx, fed, "dialback")
        log = auditing.log_text(fed)
        for what in (r"edge\(low\) info: inbound a\.test->b\.test .*authenticated a\.test->b\.test by dialback",
                     r"edge\(high\) info: inbound b\.test->a\.test .*authenticated b\.test->a\.test by dialback",
                     r"edge\(high\) info: outbound a\.test->b\.test .*ready \(dialback\)",
                     r"edge\(low\) info: outbound b\.test->a\.test .*ready \(dialback\)",
                     r"filter debug: decision .* auth=dialback message .*released"):
            check(re.search(what, log), "dialback: portcullisd log lacks /%s/" % what)
        ctx.step("dialback: Portcullis verified keys as receiving server and answered as authoritative")

    # 5. dialback with an impostor: a.test's server presents a certificate from an
    # untrusted CA. Dialback would take its word; the outbound link Portcullis
    # opens to verify the key checks the server certificate and refuses it.
    with Federation(ctx.subdir("dialback-rogue"), topology="portcullis", mode="dialback", pki_dir=pki,
                    build_dir=ctx.build_dir,
                    a_cert=os.path.join(pki, "rogue-a.test.pem"),
                    a_key=os.path.join(pki, "rogue-a.test.key")) as fed:
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(fed.jid("b", "bob"), "must not arrive either")
            line = wait_log(fed, r"edge\(low\) warning: outbound b\.test->a\.test .*failed: server certificate not trusted", 20)
            ctx.step("dialback-rogue: " + line.split("warning: ", 1)[-1][:140])
            bob.expect_no_message(fed.jid("a", "alice"), wait=3.0)
            check(" released " not in auditing.log_text(fed) and "decision" not in auditing.log_text(fed),
                  "dialback-rogue: a stanza reached the filter")


run_test(test)
