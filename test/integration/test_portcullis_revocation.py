#!/usr/bin/python3
"""Certificate revocation per side: a revoked peer is refused, with the reason in the
log and in the audit archive (labels interop + separation).

Topology: portcullis, cert mode (SASL EXTERNAL both ways). The low side's <tls> names
a CRL of ca-low (test/pki/make-test-pki.sh makes them):

  phase "current": ca-low.crl revokes nothing: chat crosses both ways (the CRL is
      loaded and checked: with crl-check="chain" a missing CRL would refuse);
  phase "revoked": ca-low-revoked-a.test.crl revokes a.test's certificate:
    * a.test -> b.test: a.test's inbound stream to edge(low) presents the revoked
      certificate; edge(low) refuses to authenticate it ("certificate for a.test is not
      trusted (certificate revoked)"); bob receives nothing;
    * b.test -> a.test: edge(low)'s outbound link to a.test sees the revoked server
      certificate, refuses it ("server certificate not trusted (certificate
      revoked)") and bounces bob's message with an error; alice receives nothing;
    * both refusals are connection records in the archive that name the revocation,
      and no stanza from a.test reached the filter (no decision record for it).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.auditing import archive_dir, export_json, log_text, wait_log  # noqa: E402
from harness.pki import make_pki  # noqa: E402
from harness.scenarios import chat_both_ways  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation, write_portcullis_config  # noqa: E402


def config_with_crl(run_dir, crl):
    pki = make_pki(os.path.join(run_dir, "pki"))
    path = write_portcullis_config(os.path.join(run_dir, "portcullis.xml"), pki, "cert", run_dir=run_dir)
    with open(path) as f:
        text = f.read()
    low_tls = 'ca="%s/ca-low.pem"/>' % pki
    check(low_tls in text, "generated config has no low-side <tls> ending %r" % low_tls)
    text = text.replace(low_tls, 'ca="%s/ca-low.pem" crl="%s/%s" crl-check="chain"/>' % (pki, pki, crl), 1)
    with open(path, "w") as f:
        f.write(text)
    return path


def test(ctx):
    run_dir = ctx.subdir("current")
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    portcullis_config=config_with_crl(run_dir, "ca-low.crl")) as fed:
        chat_both_ways(ctx, fed, "current CRL")

    run_dir = ctx.subdir("revoked")
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    portcullis_config=config_with_crl(run_dir, "ca-low-revoked-a.test.crl")) as fed:
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            alice.send(bob_jid, "from a revoked server")
            wait_log(fed, r"certificate for a\.test is not trusted \(certificate revoked", timeout=20)
            ctx.step("a.test -> edge(low): refused, certificate revoked")
            bob.send(alice_jid, "to a revoked server")
            bob.expect_error(timeout=40)
            ctx.step("b.test -> a.test: bounced to bob")
            wait_log(fed, r"server certificate not trusted \(certificate revoked", timeout=5)
            bob.expect_no_message(alice_jid, "from a revoked server", wait=1.0)
            alice.expect_no_message(bob_jid, "to a revoked server", wait=1.0)
        records = export_json(ctx.build_dir, archive_dir(fed))
        revoked = [r for r in records if r["type"] == "connection" and "certificate revoked" in str(r["record"])]
        check(len(revoked) >= 2, "expected the inbound and the outbound refusal in the archive, got %d: %r"
              % (len(revoked), [r["record"].get("text") for r in revoked]))
        check(not [r for r in records if r["type"] == "decision" and "from a revoked server" in str(r)],
              "a stanza of the revoked peer reached the filter")
        ctx.step("archive: %d connection records name the revocation; nothing from a.test was judged"
                 % len(revoked))
        check("certificate revoked" in log_text(fed), "log lost the reason")


if __name__ == "__main__":
    run_test(test)
