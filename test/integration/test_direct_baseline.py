#!/usr/bin/python3
"""Baseline without Portcullis: a.test and b.test federate DIRECTLY.

Validates the harness itself and the peers' behaviour the guard tests rely on:
1. cert mode (SASL EXTERNAL): chat a->b and b->a; MUC room@conference.b.test with a
   remote occupant from a.test, groupchat both ways;
2. cert mode with a.test presenting rogue-a.test (untrusted CA): b.test refuses it
   ("certificate is not trusted") and alice's message bounces;
3. dialback mode: chat a->b and b->a.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.scenarios import chat_both_ways, muc_both_ways  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402


def test(ctx):
    pki = os.path.join(ctx.run_dir, "pki")  # one test PKI for every phase
    # 1. cert mode
    with Federation(ctx.subdir("cert"), topology="direct", mode="cert", pki_dir=pki) as fed:
        chat_both_ways(ctx, fed, "cert")
        # Prove both s2s streams were authenticated by certificate, not dialback.
        for srv, peer in ((fed.a, "b.test"), (fed.b, "a.test")):
            check(srv.log_contains(r"Received\[s2sin_unauthed\]: <auth [^>]*mechanism='EXTERNAL'")
                  is not None, "%s: no SASL EXTERNAL from %s in %s" % (srv.domain, peer,
                                                                      srv.log_path))
            check(srv.log_contains(r"jabber:server:dialback'>") is None,
                  "%s: dialback element seen in cert mode" % srv.domain)
        muc_both_ways(ctx, fed)

    # 2. untrusted certificate: a.test presents rogue-a.test (signed by ca-rogue)
    with Federation(ctx.subdir("rogue"), topology="direct", mode="cert", pki_dir=pki,
                    a_cert=os.path.join(pki, "rogue-a.test.pem"),
                    a_key=os.path.join(pki, "rogue-a.test.key")) as fed:
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(fed.jid("b", "bob"), "must not arrive")
            line = fed.b.wait_log(r"certificate is not trusted", timeout=20)
            check("a.test" in line, "refusal line does not name a.test: " + line)
            ctx.step("rogue: b.test refused a.test: " + line.split("\t")[-1].strip())
            err = alice.expect_error(frm=fed.jid("b", "bob"), timeout=40)
            check(err["condition"] == "remote-server-timeout" and "not trusted" in (err["text"] or ""),
                  "rogue: unexpected bounce %s (%s)" % (err["condition"], err["text"]))
            ctx.step("rogue: alice got bounce %s (%s)" % (err["condition"], err["text"]))
            bob.expect_no_message(fed.jid("a", "alice"), wait=1.0)

    # 3. dialback mode
    with Federation(ctx.subdir("dialback"), topology="direct", mode="dialback",
                    pki_dir=pki) as fed:
        chat_both_ways(ctx, fed, "dialback")
        for srv in (fed.a, fed.b):
            check(srv.log_contains(r"verified dialback key\.\.\. it is valid") is not None,
                  "%s: no dialback verification in %s" % (srv.domain, srv.log_path))
            check(srv.log_contains(r"mechanism='EXTERNAL'") is None,
                  "%s: SASL EXTERNAL used in dialback mode" % srv.domain)


if __name__ == "__main__":
    run_test(test)
