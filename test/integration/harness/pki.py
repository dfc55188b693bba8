"""Test PKI for a run: made by test/pki/make-test-pki.sh OUTDIR.

Files (all PEM): ca-low.pem, ca-high.pem, ca-rogue.pem;
a.test.pem/.key (SAN a.test, conference.a.test; ca-low),
b.test.pem/.key (SAN b.test, conference.b.test; ca-high),
guard-low.pem/.key (b.test, conference.b.test, rooms.low.test, rooms.site-b.test; ca-low),
guard-high.pem/.key (a.test, conference.a.test, rooms.high.test, rooms.site-a.test; ca-high),
conference.b.test-own.pem/.key (conference.b.test only; ca-low: the low side's
  own certificate for that fronted domain, chosen by SNI),
node-a.pem/.key (rooms.site-a.test; ca-low: the standalone FMUC node of the low side),
node-b.pem/.key (rooms.site-b.test; ca-high: the standalone FMUC node of the high side),
rogue-a.test.pem/.key (a.test, conference.a.test; ca-rogue);
ca-low.crl, ca-high.crl (nothing revoked), ca-low-revoked-a.test.crl (a.test revoked).
"""

import os
import subprocess

from .procs import HarnessError

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MAKE_PKI = os.path.join(SOURCE_DIR, "test", "pki", "make-test-pki.sh")

REQUIRED = ["ca-low.pem", "ca-high.pem", "ca-rogue.pem",
            "a.test.pem", "a.test.key", "b.test.pem", "b.test.key",
            "guard-low.pem", "guard-low.key", "guard-high.pem", "guard-high.key",
            "conference.b.test-own.pem", "conference.b.test-own.key",
            "node-a.pem", "node-a.key", "node-b.pem", "node-b.key",
            "rogue-a.test.pem", "rogue-a.test.key", "ca-low.crl", "ca-high.crl", "ca-low-revoked-a.test.crl"]


def make_pki(out_dir):
    """Creates the test PKI in out_dir (once; reused if complete) and returns out_dir."""
    out_dir = os.path.abspath(out_dir)
    if all(os.path.exists(os.path.join(out_dir, f)) for f in REQUIRED):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(MAKE_PKI):
        r = subprocess.run(["bash", MAKE_PKI, out_dir], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise HarnessError("make-test-pki.sh failed (%d): %s" % (
                r.returncode, (r.stderr or r.stdout).strip().splitlines()[-1:]))
    else:
        _fallback_pki(out_dir)
    missing = [f for f in REQUIRED if not os.path.exists(os.path.join(out_dir, f))]
    if missing:
        raise HarnessError("test PKI in %s lacks %s" % (out_dir, ", ".join(missing)))
    return out_dir


def bundle(out_path, ca_files):
    """Concatenates PEM CA files into one cafile (Prosody takes a single cafile)."""
    with open(out_path, "w") as out:
        for ca in ca_files:
            with open(ca) as f:
                out.write(f.read().rstrip("\n") + "\n")
    return out_path


# Stand-in used only while test/pki/make-test-pki.sh is not in the tree. Same files, same
# names and SANs: EC P-256 CAs and leaf certs valid 30 days.
def _fallback_pki(out):
    def ossl(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=out, timeout=60)
        if r.returncode != 0:
            raise HarnessError("openssl %s failed: %s" % (args[0], r.stderr.strip()[-200:]))

    for ca in ("low", "high", "rogue"):
        ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca-%s.key" % ca, "-out", "ca-%s.pem" % ca, "-days", "30",
             "-subj", "/CN=Portcullis test CA %s" % ca,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaves = [("a.test", "low", ["a.test", "conference.a.test"]),
              ("b.test", "high", ["b.test", "conference.b.test"]),
              ("guard-low", "low", ["b.test", "conference.b.test", "rooms.low.test", "rooms.site-b.test"]),
              ("guard-high", "high", ["a.test", "conference.a.test", "rooms.high.test", "rooms.site-a.test"]),
              ("node-a", "low", ["rooms.site-a.test"]),
              ("node-b", "high", ["rooms.site-b.test"]),
              ("rogue-a.test", "rogue", ["a.test", "conference.a.test"])]
    for name, ca, sans in leaves:
        ext = os.path.join(out, name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n"
                    % ",".join("DNS:" + s for s in sans))
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + sans[0])
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca-%s.pem" % ca,
             "-CAkey", "ca-%s.key" % ca, "-CAcreateserial", "-out", name + ".pem",
             "-days", "30", "-extfile", ext)
        os.remove(ext)
        os.remove(os.path.join(out, name + ".csr"))
    for f in os.listdir(out):
        if f.endswith(".key"):
            os.chmod(os.path.join(out, f), 0o644)  # prosody may run as its own user
