#!/usr/bin/python3
"""The Debian package is a real install: made with cpack, installed with dpkg on
this machine, run as the installed unit runs it, and purged.

Needs root, and a machine where Portcullis is not installed: it installs the
package with `dpkg -i` into / (CI runs on a throwaway machine), because only
there do the maintainer scripts, systemd-sysusers, systemd-tmpfiles and the
built-in default paths do what they do on an appliance. It refuses to start
when the package is installed or /etc/portcullis or /var/lib/portcullis exist,
and whatever happens it purges the package at the end and removes what it made
(those two directories, the service users that did not exist before).

Steps (net 127.0.34: a.test .2, b.test .3, edge(low) .4, edge(high) .6):
  1. `cpack -G DEB` in the build directory (or --deb FILE): the control fields
     (name, the project's version, Depends from dpkg-shlibdeps plus systemd),
     every file an install needs in `dpkg-deb -c` (the programs, schemas, unit,
     sysusers.d and tmpfiles.d files, man pages, docs, examples,
     /etc/portcullis), maintainer scripts that never start or enable the unit.
  2. `dpkg -i`: the service users (system users, nologin) and the operator
     group exist; /etc/portcullis root 0755, /var/lib/portcullis root 0711,
     its audit/ the filter's user's 0700; no portcullisd running;
     `systemd-analyze verify` of the installed unit is clean; the installed
     programs name the installed schemas, not this source tree.
  3. The operator's part: the guard's certificates and keys in
     /etc/portcullis/pki (each key 0600 to its edge's user), the audit key pair
     from the installed portcullis-audit keygen, the installed example config
     (examples/portcullis.xml) and example policy (coalition-permissive.xml
     with its SPIF) with their addresses and domains moved onto this test's
     loopback net and PKI. The installed portcullis-policy checks the policy
     and portcullisd --check-config the config with no --schema-dir.
  4. The installed unit's ExecStartPre and ExecStart, run as the unit would
     (harness/systemd_unit.py: its bounding set, no_new_privs, umask,
     ProtectSystem=strict): chat crosses both ways between two real Prosody
     servers; the children run as the package's users.
  5. After a clean stop, the installed portcullis-audit verifies the archive
     in /var/lib/portcullis/audit and finds both messages released.
  6. `dpkg --purge`: the package's files are gone; the config, the keys and
     the audit archive are kept (purge never deletes evidence or secrets),
     as the postrm says.

Not covered: systemd itself starting the unit (no systemd as PID 1 here; see
test_portcullis_systemd_unit.py for what the emulation leaves out), and an
upgrade from an earlier package.
"""

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance, procs  # noqa: E402
from harness.addresses import A_IP, B_IP, EDGE_HIGH_IP, EDGE_LOW_IP, S2S_PORT  # noqa: E402
from harness.auditing import child_pids  # noqa: E402
from harness.pki import make_pki  # noqa: E402
from harness.procs import HarnessError  # noqa: E402
from harness.systemd_unit import Emulation, parse_unit  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import Federation  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PACKAGE = "portcullis"
CONFIG_DIR = "/etc/portcullis"
STATE_DIR = "/var/lib/portcullis"
ARCHIVE = STATE_DIR + "/audit"
CONFIG = CONFIG_DIR + "/portcullis.xml"
DAEMON = "/usr/sbin/portcullisd"
AUDIT = "/usr/bin/portcullis-audit"
POLICY_TOOL = "/usr/bin/portcullis-policy"
CTL = "/usr/bin/portcullisctl"
SCHEMAS = "/usr/share/portcullis/schemas"
UNIT = "/lib/systemd/system/portcullisd.service"
EXAMPLES = "/usr/share/doc/portcullis/examples"
USERS = ("portcullis-low", "portcullis-high", "portcullis-filter", "portcullis-node")
OPERATOR_GROUP = "portcullis-operator"

# What an install needs, as `dpkg-deb -c` lists it (without the leading ".").
EXPECTED_FILES = [
    DAEMON, AUDIT, POLICY_TOOL, CTL, "/usr/libexec/portcullis/portcullis-example-guard",
    SCHEMAS + "/portcullis-config.xsd", SCHEMAS + "/policy/policy.xsd", SCHEMAS + "/xmpp/broad.xsd",
    SCHEMAS + "/xmpp/strict.xsd",
    UNIT, "/usr/lib/sysusers.d/portcullis.conf", "/usr/lib/tmpfiles.d/portcullis.conf",
    "/usr/share/man/man8/portcullisd.8.gz", "/usr/share/man/man1/portcullis-audit.1.gz",
    "/usr/share/man/man1/portcullis-policy.1.gz", "/usr/share/man/man1/portcullis-example-guard.1.gz",
    "/usr/share/man/man5/portcullis-config.5.gz", "/usr/share/man/man5/portcullis-policy.5.gz",
    "/usr/share/doc/portcullis/README.md", "/usr/share/doc/portcullis/copyright",
    "/usr/share/doc/portcullis/docs/policy-guide.md",
    EXAMPLES + "/portcullis.xml", EXAMPLES + "/policies/coalition-permissive.xml",
    EXAMPLES + "/policies/spif/coalition-mission.xml",
    "/usr/share/bash-completion/completions/portcullisd", "/usr/share/bash-completion/completions/portcullisctl",
    "/usr/share/man/man1/portcullisctl.1.gz", "/lib/systemd/system/portcullis-metrics.service", CONFIG_DIR,
]

# The example config and policy, moved onto this test's net and PKI.
EXAMPLE_MAP = [
    ("partner-a.example", "a.test"), ("partner-b.example", "b.test"),
    ("192.0.2.2", A_IP), ("192.0.2.4", EDGE_LOW_IP), ("198.51.100.3", B_IP), ("198.51.100.6", EDGE_HIGH_IP),
]
# The guard's files of the test PKI (test/pki/make-test-pki.sh) that the
# installed config names in /etc/portcullis/pki.
GUARD_PKI = ("guard-low.pem", "guard-low.key", "guard-high.pem", "guard-high.key",
             "ca-low.pem", "ca-high.pem", "ca-low.crl", "ca-high.crl")


def run(argv, timeout=120, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise HarnessError("%s did not finish within %d s" % (" ".join(argv), timeout)) from None


def said(r):
    return (r.stdout + r.stderr).strip()


def dpkg(*args):
    """dpkg ARGS, waiting (bounded) while another dpkg or apt holds its lock."""
    deadline = time.monotonic() + 60
    while True:
        r = run(["dpkg"] + list(args), timeout=180, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(2)


def installed():
    r = run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE], timeout=30)
    return r.returncode == 0 and r.stdout.strip() == "install ok installed"


def known_to_dpkg():
    """True while dpkg has any trace of the package (installed, or removed with its conffiles)."""
    r = run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE], timeout=30)
    return r.returncode == 0 and "not-installed" not in r.stdout


def user_exists(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def group_exists(name):
    try:
        return grp.getgrnam(name)
    except KeyError:
        return None


def owner_mode(path):
    st = os.stat(path)
    return pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)


def portcullisd_pids():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % p).startswith(DAEMON):
                    out.append(int(p))
            except OSError:
                pass
    return out


def project_version(build_dir):
    with open(os.path.join(build_dir, "CPackConfig.cmake")) as f:
        m = re.search(r'set\(CPACK_PACKAGE_VERSION "([^"]+)"\)', f.read())
    check(m, "no CPACK_PACKAGE_VERSION in %s/CPackConfig.cmake (is cmake/Packaging.cmake included?)" % build_dir)
    return m.group(1)


def adapt(text):
    for old, new in EXAMPLE_MAP:
        text = re.sub(r"(?<![\w-])" + re.escape(old) + r"(?![\w-])", new, text)
    return text


# ---- 1. the package ----------------------------------------------------------------

def make_package(ctx, out_dir):
    t0 = time.monotonic()
    r = run(["cpack", "--config", os.path.join(ctx.build_dir, "CPackConfig.cmake"), "-G", "DEB", "-B", out_dir],
            timeout=300, cwd=ctx.build_dir)
    check(r.returncode == 0, "cpack -G DEB failed (%d): %s" % (r.returncode, said(r)[-800:]))
    debs = [f for f in os.listdir(out_dir) if f.endswith(".deb")]
    check(len(debs) == 1, "cpack made %r in %s, expected one .deb" % (debs, out_dir))
    ctx.step("cpack -G DEB: %s (%.1f s)" % (debs[0], time.monotonic() - t0))
    return os.path.join(out_dir, debs[0])


def check_package(ctx, deb, work):
    fields = {}
    for name in ("Package", "Version", "Depends", "Maintainer", "Description"):
        r = run(["dpkg-deb", "-f", deb, name], timeout=30)
        check(r.returncode == 0, "dpkg-deb -f %s %s: %s" % (deb, name, said(r)))
        fields[name] = r.stdout.strip()
    check(fields["Package"] == PACKAGE, "package name %r, expected %r" % (fields["Package"], PACKAGE))
    version = project_version(ctx.build_dir)
    check(fields["Version"] == version, "package version %r, the project's is %r" % (fields["Version"], version))
    depends = [d.strip() for d in fields["Depends"].split(",")]
    for lib in ("libc6", "libxerces-c3.2", "libsodium23", "libnftables1", "libseccomp2", "libssl3"):
        check(any(d.startswith(lib) for d in depends), "Depends lacks %s (dpkg-shlibdeps): %s" % (lib, fields["Depends"]))
    check(any(d.startswith("systemd") for d in depends), "Depends lacks systemd (sysusers, tmpfiles): %s"
          % fields["Depends"])
    check(fields["Maintainer"] and fields["Description"], "no Maintainer or Description: %r" % fields)

    r = run(["dpkg-deb", "-c", deb], timeout=60)
    check(r.returncode == 0, "dpkg-deb -c: %s" % said(r))
    listed = {}
    for line in r.stdout.splitlines():
        parts = line.split(None, 5)
        path = parts[5].split(" -> ")[0]
        listed[path[1:].rstrip("/") or "/"] = (parts[0], parts[1])
    expected = list(EXPECTED_FILES)
    missing = [p for p in expected if p not in listed]
    check(not missing, "the package lacks %s" % ", ".join(missing))
    for p in (DAEMON, AUDIT, POLICY_TOOL, CTL):
        check(listed[p] == ("-rwxr-xr-x", "root/root"), "%s in the package: %s %s" % ((p,) + listed[p]))
    check(not any(p.startswith("/usr/local") or p.startswith(REPO) for p in listed),
          "the package installs outside the Debian layout: %s"
          % [p for p in listed if p.startswith("/usr/local") or p.startswith(REPO)][:5])

    control = os.path.join(work, "control")
    r = run(["dpkg-deb", "-e", deb, control], timeout=30)
    check(r.returncode == 0, "dpkg-deb -e: %s" % said(r))
    for script in ("postinst", "prerm", "postrm"):
        path = os.path.join(control, script)
        check(os.path.exists(path), "the package has no %s" % script)
        with open(path) as f:
            text = f.read()
        # What the script runs, not what it tells the operator to run: echo lines are
        # messages ("... then: systemctl enable --now portcullisd").
        commands = "\n".join(line for line in text.splitlines()
                              if not line.lstrip().startswith(("echo ", "printf ", "#")))
        starts = re.findall(r"(systemctl\s+(?:--\S+\s+)*(?:start|enable|restart|try-restart|reload-or-restart)\b"
                            r"|deb-systemd-invoke\s+start|invoke-rc\.d)", commands)
        check(not starts, "%s starts or enables the service: %r" % (script, starts))
    with open(os.path.join(control, "postinst")) as f:
        text = f.read()
    check("systemd-sysusers" in text and "systemd-tmpfiles" in text,
          "postinst runs neither systemd-sysusers nor systemd-tmpfiles")
    ctx.step("package %s %s: %d paths, all %d expected; Depends %s; maintainer scripts never start the unit"
             % (PACKAGE, fields["Version"], len(listed), len(expected), fields["Depends"][:120]))


# ---- 2. the install -------------------------------------------------------------------

def check_install(ctx, users_before):
    for name in USERS:
        pw = user_exists(name)
        check(pw is not None, "after dpkg -i there is no user %s (sysusers.d)" % name)
        check(pw.pw_uid < 1000 and pw.pw_uid != 0, "%s has uid %d, expected a system uid" % (name, pw.pw_uid))
        check(pw.pw_shell.endswith("nologin"), "%s has the shell %s, expected nologin" % (name, pw.pw_shell))
    check(group_exists(OPERATOR_GROUP) is not None, "after dpkg -i there is no group %s" % OPERATOR_GROUP)
    for path, want in ((CONFIG_DIR, ("root", 0o755)), (STATE_DIR, ("root", 0o711)),
                       (ARCHIVE, ("portcullis-filter", 0o700))):
        check(os.path.isdir(path), "after dpkg -i there is no %s (tmpfiles.d)" % path)
        got = owner_mode(path)
        check(got == want, "%s is %s %04o, expected %s %04o" % (path, got[0], got[1], want[0], want[1]))
    check(not portcullisd_pids(), "portcullisd runs after dpkg -i (pids %r): the install must not start it"
          % portcullisd_pids())
    r = run(["systemd-analyze", "verify", UNIT], timeout=60, cwd="/")
    check(r.returncode == 0 and not said(r), "systemd-analyze verify %s (rc %d): %s" % (UNIT, r.returncode, said(r)))
    # The built-in defaults name the installed files, never this tree.
    for binary in (DAEMON, POLICY_TOOL):
        with open(binary, "rb") as f:
            data = f.read()
        check((REPO + "/schemas").encode() not in data, "%s names the source tree's schemas" % binary)
        r = run([binary, "--help"], timeout=30)
        check(r.returncode == 0 and "(default %s)" % SCHEMAS in r.stdout,
              "%s --help does not give %s as the schema directory: %s" % (binary, SCHEMAS, said(r)[-300:]))
    made = [u for u in USERS if not users_before[u]]
    ctx.step("dpkg -i: users %s (%s), group %s; %s 0755, %s 0711, %s portcullis-filter 0700; not started; "
             "systemd-analyze verify clean; default schema dir %s"
             % (", ".join(USERS), "made: " + ", ".join(made) if made else "all there before", OPERATOR_GROUP,
                CONFIG_DIR, STATE_DIR, ARCHIVE, SCHEMAS))


# ---- 3. the operator's part -----------------------------------------------------------

def lay_out(ctx, pki):
    low, high, filt = (pwd.getpwnam(u) for u in ("portcullis-low", "portcullis-high", "portcullis-filter"))
    os.makedirs(CONFIG_DIR + "/pki", mode=0o755)
    for name in GUARD_PKI:
        dest = os.path.join(CONFIG_DIR, "pki", name)
        shutil.copyfile(os.path.join(pki, name), dest)
        if name.endswith(".key"):
            pw = low if name.startswith("guard-low") else high
            os.chown(dest, pw.pw_uid, pw.pw_gid)
            os.chmod(dest, 0o600)
        else:
            os.chmod(dest, 0o644)
    os.makedirs(CONFIG_DIR + "/keys", mode=0o755)
    secret, public = CONFIG_DIR + "/keys/audit.key", CONFIG_DIR + "/keys/audit.pub"
    r = run([AUDIT, "keygen", "--secret", secret, "--public", public], timeout=30)
    check(r.returncode == 0, "installed portcullis-audit keygen: %s" % said(r))
    os.chown(secret, filt.pw_uid, filt.pw_gid)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)

    with open(EXAMPLES + "/portcullis.xml") as f:
        example = f.read()
    config = adapt(example).replace('level="info"', 'level="debug"')
    check(config != example and "192.0.2." not in config and "partner-" not in config,
          "the example config no longer has the addresses and domains this test moves")
    with open(CONFIG, "w") as f:
        f.write(config)
    with open(EXAMPLES + "/policies/coalition-permissive.xml") as f:
        policy = adapt(f.read())
    with open(CONFIG_DIR + "/policy.xml", "w") as f:
        f.write(policy)
    shutil.copytree(EXAMPLES + "/policies/spif", CONFIG_DIR + "/spif")
    for d, _, files in os.walk(CONFIG_DIR + "/spif"):
        os.chmod(d, 0o755)
        for name in files:
            os.chmod(os.path.join(d, name), 0o644)
    for p in (CONFIG, CONFIG_DIR + "/policy.xml"):
        os.chown(p, 0, 0)
        os.chmod(p, 0o644)

    r = run([POLICY_TOOL, "check", CONFIG_DIR + "/policy.xml"], timeout=60)
    check(r.returncode == 0 and ": OK" in r.stdout, "installed portcullis-policy check (no --schema-dir): %s"
          % said(r)[-600:])
    r = run([DAEMON, "--check-config", CONFIG], timeout=60)
    check(r.returncode == 0 and ": OK" in r.stdout, "installed portcullisd --check-config %s (no --schema-dir): %s"
          % (CONFIG, said(r)[-600:]))
    ctx.step("operator's layout: example config and coalition-permissive policy on net %s; portcullis-policy "
             "check and portcullisd --check-config pass with the built-in schema directory"
             % A_IP.rsplit(".", 1)[0])


# ---- the whole test ----------------------------------------------------------------------

def install_and_run(ctx, deb, users_before):
    r = dpkg("-i", deb)
    check(r.returncode == 0, "dpkg -i %s failed (%d): %s" % (deb, r.returncode, said(r)[-800:]))
    check("not started" in r.stdout, "dpkg -i did not say the service is not started: %s" % said(r)[-400:])
    check_install(ctx, users_before)

    pki = os.path.join(ctx.run_dir, "pki")
    make_pki(pki)
    lay_out(ctx, pki)

    with open(UNIT) as f:
        text = f.read()
    emu = Emulation(parse_unit(UNIT), text, DAEMON, "/")
    emu.schema_dir = SCHEMAS
    check(all(emu.rewrite(a) == a for a in emu.pre + emu.start),
          "the installed unit names paths outside the installed layout: %r" % (emu.pre + emu.start))
    r = emu.run(emu.pre)
    check(r.returncode == 0, "the installed unit's ExecStartPre %s failed (%d): %s"
          % (" ".join(emu.pre), r.returncode, said(r)[-600:]))
    ctx.step("installed unit: ExecStartPre passes under its capabilities and read-only filesystem")

    # Connections to each edge come from its side's server (the listeners admit only them).
    appliance.route_from(EDGE_LOW_IP, A_IP)
    appliance.route_from(EDGE_HIGH_IP, B_IP)

    def start(config_path):
        check(config_path == CONFIG, "harness config path %s" % config_path)
        for ip in (EDGE_LOW_IP, EDGE_HIGH_IP):
            procs.ensure_port_free(ip, S2S_PORT)
        proc = procs.ManagedProcess("portcullisd (installed unit)", emu.argv(emu.start),
                                    os.path.join(ctx.run_dir, "portcullisd.log"), cwd="/")
        procs.wait_port(EDGE_LOW_IP, S2S_PORT, 30, proc)
        procs.wait_port(EDGE_HIGH_IP, S2S_PORT, 30, proc)
        return proc

    with Federation(ctx.run_dir, topology="portcullis", mode="cert", pki_dir=pki, portcullis_config=CONFIG,
                    portcullis_start=start) as fed:
        pid = fed.portcullis.pid
        ctx.step("installed portcullisd (pid %d) started by the installed unit's ExecStart; both edges listen" % pid)
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
            to_bob = alice.send(bob_jid, "hello bob, through the installed guard")
            bob.expect_message(alice_jid, "hello bob, through the installed guard", timeout=20)
            to_alice = bob.send(alice_jid, "hello alice, through the installed guard")
            alice.expect_message(bob_jid, "hello alice, through the installed guard", timeout=20)
            check(not alice.errors() and not bob.errors(), "message errors %r" % (alice.errors() + bob.errors()))
        ctx.step("chat a.test -> b.test and back delivered through the installed guard")
        # The installed control tool, on the shipped config's socket (root:portcullis-operator 0660).
        sock = "/run/portcullis/control"
        st_ = os.lstat(sock)
        check(stat.S_IMODE(st_.st_mode) == 0o660 and st_.st_gid == grp.getgrnam(OPERATOR_GROUP).gr_gid,
              "%s: mode %o gid %d" % (sock, st_.st_mode, st_.st_gid))
        r = run([CTL, "status"], timeout=30)
        check(r.returncode == 0 and all(re.search(r"^\s+%s\s+running\s" % re.escape(c), r.stdout, re.M)
                                         for c in ("edge(low)", "filter", "edge(high)")) and "healthy" in r.stdout,
              "installed portcullisctl status (rc %d): %s" % (r.returncode, said(r)[-600:]))
        ctx.step("installed portcullisctl status on %s: every child running, archive healthy" % sock)
        uids = {}
        for k in child_pids(pid):
            with open("/proc/%d/status" % k) as f:
                uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
            uids[pwd.getpwuid(uid).pw_name] = k
        check(set(uids) == {"portcullis-low", "portcullis-high", "portcullis-filter"},
              "the children run as %r, expected the package's three users" % sorted(uids))
        ctx.step("children run as %s" % ", ".join(sorted(uids)))
    check(not portcullisd_pids(), "portcullisd still runs after SIGTERM: %r" % portcullisd_pids())

    r = run([AUDIT, "verify", ARCHIVE, "--pubkey", CONFIG_DIR + "/keys/audit.pub"], timeout=60)
    ok = [line for line in r.stdout.splitlines() if line.startswith("OK: ")]
    check(r.returncode == 0 and ok, "installed portcullis-audit verify %s (rc %d): %s"
          % (ARCHIVE, r.returncode, said(r)[-600:]))
    ctx.step("installed portcullis-audit verify: %s" % ok[0])
    r = run([AUDIT, "search", ARCHIVE, "--pubkey", CONFIG_DIR + "/keys/audit.pub", "--verdict", "released"],
            timeout=60)
    check(r.returncode == 0, "installed portcullis-audit search (rc %d): %s" % (r.returncode, said(r)[-400:]))
    for mid in (to_bob, to_alice):
        check(mid in r.stdout, "no released decision for message %s in the archive: %s" % (mid, r.stdout[-600:]))
    ctx.step("the archive has both messages released")

    r = dpkg("--purge", PACKAGE)
    check(r.returncode == 0, "dpkg --purge failed (%d): %s" % (r.returncode, said(r)[-600:]))
    check(not known_to_dpkg(), "dpkg still knows %s after --purge" % PACKAGE)
    left = [p for p in (DAEMON, AUDIT, POLICY_TOOL, UNIT, SCHEMAS, "/usr/lib/sysusers.d/portcullis.conf",
                        "/usr/lib/tmpfiles.d/portcullis.conf", EXAMPLES) if os.path.exists(p)]
    check(not left, "after dpkg --purge these remain: %s" % ", ".join(left))
    kept = [p for p in (CONFIG, CONFIG_DIR + "/keys/audit.key") if os.path.exists(p)]
    check(len(kept) == 2 and os.listdir(ARCHIVE), "purge deleted the operator's files or the archive (kept: %r, "
          "archive: %r)" % (kept, os.listdir(ARCHIVE) if os.path.isdir(ARCHIVE) else "gone"))
    check("kept %s" % ARCHIVE in said(r), "the postrm did not say it kept %s: %s" % (ARCHIVE, said(r)[-400:]))
    check(all(user_exists(u) for u in USERS[:3]), "purge removed a service user that owns kept files")
    ctx.step("dpkg --purge: the package's files are gone; config, keys and archive kept, as the postrm said")


def clean_up(users_before, group_before):
    """Whatever happened: no package, none of the directories the test found absent,
    none of the users it found absent. Returns what failed (best effort)."""
    problems = []
    for pid in portcullisd_pids():
        try:
            os.kill(pid, 15)
        except OSError:
            pass
    if known_to_dpkg():
        r = dpkg("--purge", PACKAGE)
        if r.returncode != 0:
            problems.append("dpkg --purge: %s" % said(r)[-300:])
    # /run/portcullis: the unit's RuntimeDirectory=, which systemd removes at stop.
    for d in (CONFIG_DIR, STATE_DIR, "/run/portcullis"):
        shutil.rmtree(d, ignore_errors=True)
    for u in USERS:
        if not users_before[u] and user_exists(u):
            r = run(["userdel", u], timeout=30)
            if r.returncode != 0:
                problems.append("userdel %s: %s" % (u, said(r)))
    if not group_before and group_exists(OPERATOR_GROUP):
        run(["groupdel", OPERATOR_GROUP], timeout=30)
    return problems


def test(ctx):
    check(os.geteuid() == 0, "the package test installs into / with dpkg: it needs root")
    check(not known_to_dpkg(), "%s is installed on this machine (dpkg -l %s): this test installs and purges it, "
          "so it does not run over an existing install" % (PACKAGE, PACKAGE))
    for d in (CONFIG_DIR, STATE_DIR):
        check(not os.path.exists(d), "%s exists: this test makes and removes it, so it does not run over an "
              "existing install" % d)
    users_before = {u: user_exists(u) is not None for u in USERS}
    group_before = group_exists(OPERATOR_GROUP) is not None

    deb = ctx.args.deb or make_package(ctx, ctx.subdir("cpack"))
    check_package(ctx, deb, ctx.subdir("deb"))
    try:
        install_and_run(ctx, deb, users_before)
    finally:
        problems = clean_up(users_before, group_before)
    check(not problems, "clean-up: %s" % "; ".join(problems))


if __name__ == "__main__":
    run_test(test, add_args=lambda ap: ap.add_argument("--deb", help="test this .deb instead of making one"))
