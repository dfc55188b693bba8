#!/usr/bin/python3
"""A compromised edge is contained: the kernel keeps edge(low) to the low side.

Topology: portcullis, cert mode, separated mode (the harness default: edge(low),
edge(high) and the filter run as this test's users pc<N>-low/-high/-filter).

The attacker is code running with edge(low)'s credentials on the host, as it
would after taking over the edge process: a probe program started as edge(low)'s
uid and gid, with no supplementary groups. It tries what the accreditor's case
says it must not be able to do, and one thing it must (its own side), so that a
probe that fails for some other reason cannot pass:

  * read the high side's TLS key and the audit signing key, list the archive:
    refused (EACCES); its own key: readable;
  * open TCP to b.test's S2S port (a high-side server), to edge(high)'s listener
    and to the filter's nothing: refused at once by the side firewall; the same
    connects from an unrelated uid (nobody) succeed, so the refusal is the
    firewall's rule for edge(low)'s uid; to a.test's S2S port (its own side's
    peer): connects;
  * signal, ptrace-attach to or read the memory of the filter or edge(high):
    refused (EPERM/EACCES);
  * as a host of the other side (a socket bound to b.test's address), connect
    to edge(low)'s listener: reset at the input hook; from a.test's: reached;
and as edge(high) the mirror image (b.test reachable, a.test not).

Also asserted: each child's uid is its user's, with no_new_privs set and not
dumpable; the filter has its own network namespace holding only `lo`, and
seccomp; each child names its role (and side) on its command line; the archive
records the supervision mode "separated" at start; chat still crosses both ways.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance  # noqa: E402
from harness.addresses import A_IP, B_IP, EDGE_HIGH_IP, EDGE_LOW_IP, NET, S2S_PORT  # noqa: E402
from harness.auditing import archive_dir, child_pids, export_json  # noqa: E402
from harness.scenarios import chat_both_ways  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation, write_pseudonym_key  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

PROBE = r'''
import ctypes, errno, json, os, socket, sys
req = json.loads(sys.argv[1])
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else type(e).__name__
for name, path in req.get("read", {}).items():
    try:
        with open(path, "rb") as f:
            f.read(1)
        out[name] = "ok"
    except OSError as e:
        out[name] = err(e)
for name, path in req.get("list", {}).items():
    try:
        os.listdir(path)
        out[name] = "ok"
    except OSError as e:
        out[name] = err(e)
for name, target in req.get("connect", {}).items():
    ip, port = target[0], target[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        if len(target) > 2:
            s.bind((target[2], 0))   # as a host with that address would
        s.connect((ip, port))
        out[name] = "ok"
    except (OSError, socket.timeout) as e:
        out[name] = "timeout" if isinstance(e, socket.timeout) else err(e)
    finally:
        s.close()
libc = ctypes.CDLL(None, use_errno=True)
for name, pid in req.get("pids", {}).items():
    try:
        os.kill(pid, 0)
        out[name + "-kill"] = "ok"
    except OSError as e:
        out[name + "-kill"] = err(e)
    PTRACE_ATTACH = 16
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        out[name + "-ptrace"] = "ok"
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    else:
        out[name + "-ptrace"] = errno.errorcode.get(ctypes.get_errno(), "?")
    try:
        with open("/proc/%d/mem" % pid, "rb") as f:
            f.read(1)
        out[name + "-mem"] = "ok"
    except OSError as e:
        out[name + "-mem"] = err(e)
print(json.dumps(out))
'''


def probe(user, request):
    """Runs PROBE as `user` (uid, primary gid, no supplementary groups); returns its results."""
    pw = pwd.getpwnam(user)
    r = subprocess.run(["/usr/bin/python3", "-c", PROBE, json.dumps(request)], user=pw.pw_uid, group=pw.pw_gid,
                       extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/")
    check(r.returncode == 0, "probe as %s failed (%d): %s" % (user, r.returncode, r.stderr.strip()[-400:]))
    return json.loads(r.stdout)


def probe_in_netns(pid, user, request):
    """PROBE as `user`, inside the network namespace of process `pid` (nsenter, then setpriv)."""
    pw = pwd.getpwnam(user)
    r = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % pid, "--", "setpriv", "--reuid=%d" % pw.pw_uid,
                        "--regid=%d" % pw.pw_gid, "--clear-groups", "/usr/bin/python3", "-c", PROBE,
                        json.dumps(request)], capture_output=True, text=True, timeout=60, cwd="/")
    check(r.returncode == 0, "probe in %d's netns as %s failed (%d): %s" % (pid, user, r.returncode,
                                                                         r.stderr.strip()[-400:]))
    return json.loads(r.stdout)


def status(pid):
    return status_of("/proc/%d/status" % pid)


def status_of(path):
    fields = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def children(fed):
    """{'edge(low)': pid, 'filter': pid, 'edge(high)': pid} from the children's command lines."""
    out = {}
    for k in child_pids(fed.portcullis.pid):
        with open("/proc/%d/cmdline" % k, "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        if "--role" not in argv:
            continue
        role = argv[argv.index("--role") + 1]
        if role == "edge":
            out["edge(%s)" % argv[argv.index("--side") + 1]] = k
        else:
            out[role] = k
    return out


def expect(results, key, wanted, who):
    got = results.get(key)
    ok = got in wanted if isinstance(wanted, tuple) else got == wanted
    check(ok, "%s: %s gave %r, expected %r" % (who, key, got, wanted))


def attack(ctx, fed, run_dir, users, tag):
    """Every probe above against a running appliance whose services run as `users`."""
    chat_both_ways(ctx, fed, tag + ", before")
    kids = children(fed)
    check(set(kids) == {"edge(low)", "filter", "edge(high)"}, "children by command line: %r" % kids)
    ctx.step("children: %r" % kids)

    # ---- who runs as whom, and how hardened ----
    expected_user = {"edge(low)": users["low"], "edge(high)": users["high"], "filter": users["filter"]}
    host_ns = os.readlink("/proc/self/ns/net")
    for role, pid in kids.items():
        st = status(pid)
        uid = pwd.getpwnam(expected_user[role]).pw_uid
        check(st["Uid"].split() == [str(uid)] * 4, "%s runs as %s, expected uid %d" % (role, st["Uid"], uid))
        check(st["Groups"] == "", "%s has supplementary groups %r" % (role, st["Groups"]))
        check(st["NoNewPrivs"] == "1", "%s: NoNewPrivs %s" % (role, st["NoNewPrivs"]))
        check(st["CapEff"] == "0000000000000000", "%s has capabilities %s" % (role, st["CapEff"]))
        netns = os.readlink("/proc/%d/ns/net" % pid)
        if role == "filter":
            check(netns != host_ns, "the filter shares the host's network namespace")
            # Every thread (the audit writer too), not just the main one.
            for task in os.listdir("/proc/%d/task" % pid):
                seccomp = status_of("/proc/%d/task/%s/status" % (pid, task))["Seccomp"]
                check(seccomp == "2", "filter thread %s has Seccomp: %s" % (task, seccomp))
            with open("/proc/%d/net/dev" % pid) as f:
                ifaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
            check(ifaces == ["lo"], "the filter's namespace has interfaces %r" % ifaces)
        else:
            check(netns == host_ns, "%s is not in the host's network namespace" % role)
    # The supervisor keeps only what restarting children needs: SETUID, SETGID, SYS_ADMIN,
    # KILL, NET_ADMIN (guard/sandbox/capabilities.h), in its effective and bounding sets.
    sup = status(fed.portcullis.pid)
    keep = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 12) | (1 << 21)
    for k in ("CapEff", "CapPrm", "CapBnd"):
        check(int(sup[k], 16) == keep, "supervisor %s %s, expected %016x" % (k, sup[k], keep))
    ctx.step("uids, no_new_privs, no capabilities (supervisor: 5 kept); filter: own netns with only lo, seccomp")

    pki = os.path.join(run_dir, "pki")
    signing_key = os.path.join(run_dir, "keys", "audit.key")
    for side, other, own_peer, far_peer, far_edge in (("low", "high", A_IP, B_IP, EDGE_HIGH_IP),
                                                      ("high", "low", B_IP, A_IP, EDGE_LOW_IP)):
        me = "edge(%s)" % side
        req = {
            "read": {"own-key": os.path.join(pki, "guard-%s.key" % side),
                     "far-key": os.path.join(pki, "guard-%s.key" % other),
                     "signing-key": signing_key},
            "list": {"archive": archive_dir(fed)},
            "connect": {"own-peer": [own_peer, S2S_PORT], "far-peer": [far_peer, S2S_PORT],
                        "far-edge": [far_edge, S2S_PORT]},
            "pids": {"filter": kids["filter"], "far-edge": kids["edge(%s)" % other]},
        }
        got = probe(users[side], req)
        ctx.step("as %s (uid %d): %r" % (me, got["uid"], got))
        check(got["groups"] == [], "%s probe has groups %r" % (me, got["groups"]))
        expect(got, "own-key", "ok", me)
        expect(got, "far-key", "EACCES", me)
        expect(got, "signing-key", "EACCES", me)
        expect(got, "archive", "EACCES", me)
        expect(got, "own-peer", "ok", me)
        # Rejected by the side firewall at once (a reset), not left to time out.
        expect(got, "far-peer", ("ECONNREFUSED", "EPERM"), me)
        expect(got, "far-edge", ("ECONNREFUSED", "EPERM"), me)
        for target in ("filter", "far-edge"):
            expect(got, target + "-kill", "EPERM", me)
            expect(got, target + "-ptrace", "EPERM", me)
            expect(got, target + "-mem", ("EACCES", "EPERM"), me)

    # From within the filter's context: its network namespace and its user. No interface
    # but a downed loopback, so nothing is reachable, not even the filter's own side.
    got = probe_in_netns(kids["filter"], users["filter"],
                         {"connect": {"b-s2s": [B_IP, S2S_PORT], "a-s2s": [A_IP, S2S_PORT],
                                      "loopback": ["127.0.0.1", S2S_PORT]},
                          "read": {"low-key": os.path.join(pki, "guard-low.key")}})
    ctx.step("as the filter, in its netns: %r" % got)
    for k in ("b-s2s", "a-s2s", "loopback"):
        expect(got, k, ("ENETUNREACH", "EHOSTUNREACH", "ECONNREFUSED"), "filter")
    check(got["b-s2s"] != "ok", "the filter's context reached b.test")
    expect(got, "low-key", "EACCES", "filter")

    # Control: the same far-side connects from an uid the firewall has no rule for succeed,
    # so the refusals above are the rule for the edges' uids, not a dead address.
    # Each edge's listener admits only its own side's hosts: from b.test's address
    # edge(low) is refused at the input hook (so a high host can never hand a
    # compromised edge(low) a connection), from a.test's it is reached; the mirror
    # for edge(high).
    got = probe("nobody", {"connect": {"b-s2s": [B_IP, S2S_PORT], "a-s2s": [A_IP, S2S_PORT],
                                       "edge-high": [EDGE_HIGH_IP, S2S_PORT],
                                       "low-host-to-edge-low": [EDGE_LOW_IP, S2S_PORT, A_IP],
                                       "high-host-to-edge-low": [EDGE_LOW_IP, S2S_PORT, B_IP],
                                       "high-host-to-edge-high": [EDGE_HIGH_IP, S2S_PORT, B_IP],
                                       "low-host-to-edge-high": [EDGE_HIGH_IP, S2S_PORT, A_IP]}})
    ctx.step("as nobody: %r" % got)
    for k in ("b-s2s", "a-s2s", "edge-high", "low-host-to-edge-low", "high-host-to-edge-high"):
        expect(got, k, "ok", "nobody")
    for k in ("high-host-to-edge-low", "low-host-to-edge-high"):
        expect(got, k, "ECONNREFUSED", "nobody")

    # The archive says how this start was separated.
    records = export_json(ctx.build_dir, archive_dir(fed))
    sup = [r for r in records if r["type"] == "admin" and r["record"].get("event") == "supervision"]
    check(sup, "no supervision record in the archive")
    fields = dict(sup[-1]["record"].get("fields", []))
    check(fields.get("mode") == "separated", "supervision record %r" % sup[-1]["record"])
    ctx.step("archive: supervision record mode=separated, filter-uid %s" % fields.get("filter-uid"))

    chat_both_ways(ctx, fed, tag + ", after")


def test(ctx):
    # The harness's own config (per-test service users).
    run_dir = ctx.subdir("separation")
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir) as fed:
        attack(ctx, fed, run_dir, appliance.test_users(), "harness config")

    # The shipped demo configuration, as deploy/demo.py lays it out (its service users
    # portcullis-low/-high/-filter), moved onto this test's loopback /24.
    run_dir = ctx.subdir("demo")
    config = os.path.join(run_dir, "portcullis.xml")
    with open(os.path.join(REPO, "deploy", "config", "demo.xml")) as f:
        text = f.read()
    check('low-edge-user="portcullis-low"' in text, "demo.xml no longer names its service users")
    with open(config, "w") as f:
        f.write(text.replace("127.0.0.", NET + "."))
    shutil.copy(os.path.join(REPO, "deploy", "config", "demo-policy.xml"), os.path.join(run_dir, "demo-policy.xml"))
    os.makedirs(os.path.join(run_dir, "keys"), exist_ok=True)
    write_pseudonym_key(os.path.join(run_dir, "keys"))
    shutil.copytree(os.path.join(REPO, "schemas", "xmpp"), os.path.join(run_dir, "schemas", "xmpp"))
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    portcullis_config=config, log_level="info") as fed:
        attack(ctx, fed, run_dir, {"low": "portcullis-low", "high": "portcullis-high",
                                   "filter": "portcullis-filter"}, "demo config")



if __name__ == "__main__":
    run_test(test)
