#!/usr/bin/python3
"""The operator's view of a running appliance (issue 11 item 1): the control
socket, portcullisctl and its OpenMetrics endpoint, with real traffic.

portcullisd runs separated, with <control socket=... group=...> naming an
operator group made for the test. Asserted:

  1. the socket is root:<group> 0660; an operator (a user in the group, not
     root) reads `portcullisctl status`: three children running, policy
     harness-1 with the sha256 of the file, the archive healthy; a user not in
     the group is refused (exit 1, one line naming the socket);
  2. while alice chats to bob, the counters move: edge(low) inbound stanzas,
     the filter's released, edge(high) delivered, each by at least the
     messages sent; `peers` lists a.test's inbound stream (sasl-external,
     TLSv1.3) and the outbound link to b.test;
  3. the metrics endpoint (portcullisctl serve-metrics, run by the operator on
     loopback) serves OpenMetrics that parse, with portcullis_up 1 and
     portcullis_filter_released_total grown by the messages; other paths 404;
  4. `portcullisctl reload` with a broken policy exits 1 with the file:line:col
     and keeps harness-1; with a good one exits 0 naming the new version; the
     archive's policy-reload record names the operator's uid;
  5. edge(high) killed -9: status shows its restart and how it died;
  6. an unknown command gets a JSON error, portcullisctl a usage error (exit 2).
"""

import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance, auditing, procs  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import DEFAULT_ALLOWED, Federation, portcullis_policy_text  # noqa: E402

GROUP = "portcullis-ctltest"
OPERATOR = "portcullis-ctlop"
OUTSIDER = "nobody"


def ensure_group_and_operator():
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True, capture_output=True, timeout=30)
    try:
        pwd.getpwnam(OPERATOR)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", "--gid", GROUP, "--comment", "Portcullis test operator", OPERATOR],
                       check=True, capture_output=True, timeout=30)


def remove_group_and_operator():
    subprocess.run(["userdel", OPERATOR], capture_output=True, timeout=30)
    subprocess.run(["groupdel", GROUP], capture_output=True, timeout=30)


def as_user(user, argv):
    pw = pwd.getpwnam(user)
    return ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--init-groups", "--"] + argv


def ctl(tool, sock, *args, user=OPERATOR, timeout=30):
    r = subprocess.run(as_user(user, [tool, "--socket", sock] + list(args)), capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def status(tool, sock):
    code, out, err = ctl(tool, sock, "status", "--json")
    check(code in (0, 3), "portcullisctl status --json exited %d: %s" % (code, err.strip()))
    return json.loads(out)


def report(st, role):
    for c in st["children"]:
        if c["role"] == role:
            check("report" in c, "%s has no report: %r" % (role, c))
            return c["report"]
    raise AssertionError("no child %s in %r" % (role, st))


def child(st, role):
    return next(c for c in st["children"] if c["role"] == role)


def metrics(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode()
    return ctype, text


def parse_metrics(text):
    """{sample name with labels: value}; checks the OpenMetrics framing."""
    lines = text.rstrip("\n").split("\n")
    check(lines[-1] == "# EOF", "the exposition does not end with # EOF: %r" % lines[-3:])
    out = {}
    for l in lines[:-1]:
        if l.startswith("# TYPE ") or l.startswith("# HELP "):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.]+)', l)
        check(m is not None, "not an OpenMetrics sample line: %r" % l)
        out[m.group(1)] = float(m.group(2))
    return out


def chat(fed, alice, bob, n, tag):
    for i in range(n):
        alice.send(fed.jid("b", "bob"), "%s %d" % (tag, i))
    for i in range(n):
        bob.expect_message(fed.jid("a", "alice"), "%s %d" % (tag, i), timeout=20)


def body(ctx):
    check(os.geteuid() == 0, "needs root (separated mode, a test operator group)")
    ensure_group_and_operator()
    try:
        run(ctx)
    finally:
        remove_group_and_operator()


def run(ctx):
    net = os.environ.get("PORTCULLIS_TEST_NET", "127.0.35")
    sock_dir = "/run/portcullis-ctltest-%s" % net.replace(".", "-")
    sock = sock_dir + "/control"
    shutil.rmtree(sock_dir, ignore_errors=True)
    # The operator runs portcullisctl from a place it can reach (the build tree may be under a 0700 home).
    bindir = os.path.join(ctx.run_dir, "bin")
    os.makedirs(bindir, exist_ok=True)
    os.chmod(ctx.run_dir, 0o755)
    os.chmod(bindir, 0o755)
    tool = os.path.join(bindir, "portcullisctl")
    shutil.copy(os.path.join(ctx.build_dir, "tools", "portcullisctl"), tool)
    os.chmod(tool, 0o755)

    with Federation(ctx.subdir("ctl"), topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    control_xml='  <control socket="%s" group="%s"/>' % (sock, GROUP)) as fed:
        # 1. the socket, and who may use it
        st_ = os.lstat(sock)
        check(stat.S_ISSOCK(st_.st_mode) and stat.S_IMODE(st_.st_mode) == 0o660 and st_.st_uid == 0 and
              st_.st_gid == grp.getgrnam(GROUP).gr_gid,
              "control socket %s: mode %o uid %d gid %d" % (sock, st_.st_mode, st_.st_uid, st_.st_gid))
        procs.wait_until(lambda: all(c["state"] == "running" and c["answered"]
                                     for c in status(tool, sock)["children"]), 20, "every child to answer")
        code, out, err = ctl(tool, sock, "status")
        check(code == 0, "portcullisctl status exited %d: %s%s" % (code, out, err))
        for want in ("edge(low)", "filter", "edge(high)", "policy harness-1", "healthy"):
            check(want in out, "status has no %r:\n%s" % (want, out))
        st0 = status(tool, sock)
        with open(os.path.join(fed.run_dir, "policy.xml"), "rb") as f:
            import hashlib
            sha = hashlib.sha256(f.read()).hexdigest()
        pol = report(st0, "filter")["policy"]
        check(pol["version"] == "harness-1" and pol["sha256"] == sha, "policy in status: %r (file %s)" % (pol, sha))
        check(report(st0, "filter")["audit"]["healthy"] and report(st0, "filter")["audit"]["free_bytes"] > 0,
              "audit in status: %r" % report(st0, "filter")["audit"])
        code, out, err = ctl(tool, sock, "status", user=OUTSIDER)
        check(code == 1 and sock in err and "Permission denied" in err and len(err.strip().split("\n")) == 1,
              "a user outside the group: exit %d, %r" % (code, err))
        ctx.step("socket root:%s 0660; the operator reads status; %s is refused" % (GROUP, OUTSIDER))

        # 2. counters move with traffic; the streams are listed
        port = 19464
        url = "http://%s.20:%d/metrics" % (net, port)
        server = procs.ManagedProcess("serve-metrics",
                                      as_user(OPERATOR, [tool, "--socket", sock, "serve-metrics",
                                                         "--listen", "%s.20:%d" % (net, port)]),
                                      os.path.join(ctx.run_dir, "serve-metrics.log"))
        procs.wait_port("%s.20" % net, port, 10, server)
        ctype, text = metrics(url)
        check(ctype.startswith("application/openmetrics-text"), "metrics content type %r" % ctype)
        m0 = parse_metrics(text)
        n = 25
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            chat(fed, alice, bob, n, "counted")
            time.sleep(0.5)
            st1 = status(tool, sock)
            code, peers, err = ctl(tool, sock, "peers")
        low0, low1 = report(st0, "edge(low)"), report(st1, "edge(low)")
        high0, high1 = report(st0, "edge(high)"), report(st1, "edge(high)")
        f0, f1 = report(st0, "filter"), report(st1, "filter")
        grew = {
            "edge(low) inbound_stanzas": low1["counters"]["inbound_stanzas"] - low0["counters"]["inbound_stanzas"],
            "filter released": f1["counters"]["released"] - f0["counters"]["released"],
            "edge(high) released_delivered":
                high1["counters"]["released_delivered"] - high0["counters"]["released_delivered"],
        }
        for what, d in grew.items():
            check(d >= n, "%s grew by %d for %d messages" % (what, d, n))
        inbound = [s for s in low1["streams"] if s["direction"] == "inbound" and s["remote"] == "a.test"]
        check(any(s["auth"] == "sasl-external" and s["tls"] == "TLSv1.3" and s["stanzas"] >= n for s in inbound),
              "edge(low) streams: %r" % low1["streams"])
        outbound = [s for s in high1["streams"] if s["direction"] == "outbound" and s["remote"] == "b.test"]
        check(any(s["state"] == "ready" and s["stanzas"] >= n for s in outbound),
              "edge(high) streams: %r" % high1["streams"])
        check(code == 0 and re.search(r"^low\s+inbound\s+\S+\s+a\.test\s.*sasl-external\s+TLSv1\.3", peers, re.M),
              "portcullisctl peers (exit %d):\n%s%s" % (code, peers, err))
        ctx.step("after %d messages: %s; peers lists a.test inbound (sasl-external, TLSv1.3)" % (
            n, ", ".join("%s +%d" % kv for kv in grew.items())))

        # 3. the metrics endpoint
        ctype, text = metrics(url)
        m1 = parse_metrics(text)
        check(m1.get("portcullis_up") == 1, "portcullis_up = %r" % m1.get("portcullis_up"))
        d = m1["portcullis_filter_released_total"] - m0["portcullis_filter_released_total"]
        check(d >= n, "portcullis_filter_released_total grew by %d" % d)
        check(m1['portcullis_child_running{role="edge(high)"}'] == 1, "child_running: %r" %
              {k: v for k, v in m1.items() if "running" in k})
        check('portcullis_edge_inbound_stanzas_total{side="low"}' in m1, "no per-side edge counters")
        try:
            urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
            check(False, "/other was served")
        except urllib.error.HTTPError as e:
            check(e.code == 404, "/other: HTTP %d" % e.code)
        ctx.step("metrics: OpenMetrics, portcullis_up 1, filter released +%d, /other 404" % d)

        # 4. reload through the control socket
        policy = os.path.join(fed.run_dir, "policy.xml")
        good = open(policy).read()
        with open(policy, "w") as f:
            f.write(good.replace("<policy ", "<policy bogus-attribute='1' ", 1))
        code, out, err = ctl(tool, sock, "reload")
        check(code == 1 and re.search(r"policy\.xml:\d+:\d+:", err) and "harness-1" in err,
              "reload of a broken policy: exit %d, %r" % (code, err))
        with open(policy, "w") as f:
            f.write(portcullis_policy_text(DEFAULT_ALLOWED, version="harness-2"))
        code, out, err = ctl(tool, sock, "reload")
        check(code == 0 and "harness-2" in out and "harness-1" in out, "reload: exit %d, %r %r" % (code, out, err))
        check(report(status(tool, sock), "filter")["policy"]["version"] == "harness-2", "status after the reload")
        op_uid = pwd.getpwnam(OPERATOR).pw_uid
        recs = auditing.export_json(ctx.build_dir, os.path.join(fed.run_dir, "audit"))
        reloads = [dict(r["record"].get("fields", [])) for r in recs
                   if r["type"] == "admin" and r["record"].get("event") == "policy-reload"]
        check(any(f.get("version") == "harness-2" and "uid=%d " % op_uid in f.get("requested", "") for f in reloads),
              "policy-reload records: %r" % reloads)
        failed = [r for r in recs if r["type"] == "admin" and r["record"].get("event") == "policy-reload-failed"]
        check(len(failed) == 1, "%d policy-reload-failed records" % len(failed))
        ctx.step("reload: broken policy refused with its position, harness-2 loaded, archived with uid %d" % op_uid)

        # 5. a restart shows
        pid = child(status(tool, sock), "edge(high)")["pid"]
        os.kill(pid, signal.SIGKILL)
        procs.wait_until(lambda: (lambda c: c["state"] == "running" and c["pid"] != pid and c["restarts"] == 1)(
            child(status(tool, sock), "edge(high)")), 20, "edge(high) to restart")
        code, out, err = ctl(tool, sock, "status")
        check("restarts 1" in out and "killed by signal 9" in out, "status after kill -9:\n%s" % out)
        ctx.step("edge(high) killed -9: status shows restarts 1 (killed by signal 9)")

        # 6. bad requests
        r = subprocess.run(as_user(OPERATOR, ["/usr/bin/python3", "-c",
                                              "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
                                              "s.sendall(b'drop tables\\n'); print(s.recv(4096).decode())", sock]),
                           capture_output=True, text=True, timeout=20)
        check("unknown command" in r.stdout, "an unknown command got %r %r" % (r.stdout, r.stderr))
        code, out, err = ctl(tool, sock, "frobnicate")
        check(code == 2 and len(err.strip().split("\n")) == 1, "portcullisctl frobnicate: exit %d %r" % (code, err))
        server.stop()
        ctx.step("unknown command: JSON error; bad command line: exit 2")
    check(not os.path.exists(sock), "the control socket outlived portcullisd")


if __name__ == "__main__":
    run_test(body)
