"""s2s_load (test/bench/s2s_load.cpp) as a peer server: an S2S load generator
and counting receiver with TLS and SASL EXTERNAL, built from Portcullis's own
S2S code. It stands where a.test (generator) and b.test (receiver) stand in the
topology (addresses.py), with their certificates from the test PKI.

    recv = LoadPeer.receiver(build_dir, pki, run_dir, peer_ip=EDGE_HIGH_IP)
    gen = LoadPeer.generator(build_dir, pki, run_dir, to=["bob@b.test"], count=10000,
                             peer_ip=EDGE_LOW_IP)
    g = gen.result(timeout=120); recv.stop(); r = recv.result()

result() is the JSON object the program wrote when it stopped (see the top of
s2s_load.cpp for the fields).
"""

import json
import os
import time

from . import procs
from .addresses import A_DOMAIN, A_IP, A_MUC, B_DOMAIN, B_IP, B_MUC, S2S_PORT
from .procs import HarnessError


def binary(build_dir):
    return os.path.join(build_dir, "test", "bench", "s2s_load")


class LoadPeer:
    def __init__(self, name, argv, out_path, log_path):
        self.name = name
        self.out_path = out_path
        if os.path.exists(out_path):
            os.unlink(out_path)
        self.proc = procs.ManagedProcess(name, argv, log_path)

    @classmethod
    def receiver(cls, build_dir, pki, run_dir, peer_ip, name="recv", stall_domain=None, stall_ms=0,
                 extra=None):
        """b.test (and conference.b.test) on B_IP:5269, accepting a.test's streams
        from `peer_ip` (the guard's high edge, or the generator itself when direct)."""
        out = os.path.join(run_dir, "%s.json" % name)
        argv = [binary(build_dir), "--domain", B_DOMAIN, "--domain", B_MUC,
                "--listen", "%s:%d" % (B_IP, S2S_PORT),
                "--cert", os.path.join(pki, "b.test.pem"), "--key", os.path.join(pki, "b.test.key"),
                "--ca", os.path.join(pki, "ca-all.pem"),
                "--peer", "%s=%s:%d" % (A_DOMAIN, peer_ip, S2S_PORT), "--out", out]
        if stall_domain:
            argv += ["--stall-domain", stall_domain, "--stall-ms", str(stall_ms)]
        argv += list(extra or [])
        self = cls(name, argv, out, os.path.join(run_dir, "%s.log" % name))
        procs.wait_port(B_IP, S2S_PORT, 10, self.proc)
        return self

    @classmethod
    def generator(cls, build_dir, pki, run_dir, to, count, peer_ip, name="gen", streams=1, rate=0, size=100,
                  quiet_ms=3000, extra=None):
        """a.test on A_IP:5269 (where errors come back), sending `count` messages
        to each JID in `to` over `streams` streams each, through `peer_ip`."""
        out = os.path.join(run_dir, "%s.json" % name)
        argv = [binary(build_dir), "--domain", A_DOMAIN, "--listen", "%s:%d" % (A_IP, S2S_PORT),
                "--cert", os.path.join(pki, "a.test.pem"), "--key", os.path.join(pki, "a.test.key"),
                "--ca", os.path.join(pki, "ca-all.pem"),
                "--peer", "%s=%s:%d" % (B_DOMAIN, peer_ip, S2S_PORT),
                "--peer", "%s=%s:%d" % (B_MUC, peer_ip, S2S_PORT),
                "--count", str(count), "--streams", str(streams), "--rate", str(rate), "--size", str(size),
                "--quiet-ms", str(quiet_ms), "--out", out]
        for jid in to:
            argv += ["--send-to", jid]
        argv += list(extra or [])
        return cls(name, argv, out, os.path.join(run_dir, "%s.log" % name))

    def stop(self):
        """SIGTERM: the program writes its figures and exits."""
        self.proc.stop(grace=10)

    def result(self, timeout=120):
        """Waits (bounded) for the program to end by itself, then returns its figures."""
        deadline = time.monotonic() + timeout
        while self.proc.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.proc.alive():
            self.proc.stop(grace=10)
        if not os.path.exists(self.out_path):
            raise HarnessError("%s wrote no figures; log %s: %s" % (self.name, self.proc.log_path,
                                                                    procs.tail(self.proc.log_path, 3)))
        with open(self.out_path) as f:
            return json.loads(f.read())


def ca_bundle(pki):
    """ca-all.pem in the PKI directory: both sides' CAs (a direct run needs each
    peer to trust the other's CA; through the guard each trusts its own side's)."""
    path = os.path.join(pki, "ca-all.pem")
    with open(path, "w") as out:
        for c in ("ca-low.pem", "ca-high.pem"):
            with open(os.path.join(pki, c)) as f:
                out.write(f.read())
    return path


__all__ = ["LoadPeer", "ca_bundle", "binary", "A_IP", "B_IP"]
