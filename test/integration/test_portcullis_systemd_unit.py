#!/usr/bin/python3
"""deploy/systemd/portcullisd.service can start separated mode: portcullisd run
the way the unit runs it, as far as that can be emulated without systemd as PID 1.

Everything that varies is read from the unit file, not written here, so a change
to the unit is what is tested: CapabilityBoundingSet (every line, merged),
NoNewPrivileges, UMask, StateDirectory/StateDirectoryMode, ReadWritePaths,
ProtectSystem (must be `strict`, the one emulated), the ExecStartPre and
ExecStart command lines, and from the header comment the modes it tells the
installer to give /etc/portcullis and the config file.

Steps (topology portcullis, cert mode, this test's service users pc27-*):
  1. `systemd-analyze verify` of a copy of the unit with /usr/sbin/portcullisd
     pointing at the build tree; any output fails.
  2. The installed layout, rooted in the run dir: /etc/portcullis with the
     comment's modes (config root:root), keys 0600 owned by each side's edge
     user, signing key by the filter user (appliance.prepare), and the state
     directory /var/lib/portcullis root-owned with StateDirectoryMode and no
     archive in it (the supervisor makes audit/ for the filter's user, as at a
     first start). The unit's paths are rewritten to that tree.
  3. Each command runs as the unit would: in its own mount namespace
     (`unshare -m`) where every mount but /proc, /sys and /dev is remounted
     read-only except StateDirectory and ReadWritePaths, bind-mounted writable
     (ProtectSystem=strict); umask UMask; then `setpriv --bounding-set=-all,+<the
     unit's capabilities> --inh-caps=-all [--no-new-privs]` execs portcullisd as
     root.
  4. ExecStartPre (--check-config) passes; it fails, naming the file, with the
     state directory at 0750 and with the config at 0640 (the old unit's
     layout), so those checks can fail for the reasons they name.
  5. ExecStart with the unit's bounding set minus CAP_SETPCAP (the old unit's)
     exits non-zero saying it cannot limit its capabilities for want of
     CAP_SETPCAP, and leaves no side firewall table behind; without any other
     one of the unit's capabilities the start fails too (none is granted for
     nothing, at least as far as starting goes).
  6. ExecStart with the unit's set: both edges listen, chat crosses both ways;
     the supervisor runs in the read-only namespace (a write to the config
     directory from inside it gives EROFS, to the state directory succeeds),
     with the unit's umask, no_new_privs, and afterwards only its five kept
     capabilities in its bounding set; three children under their users; the
     archive directory was made for the filter's user, 0700; the side
     firewall's lock is held in /run/lock; the archive records mode=separated.

Not covered (needs systemd as PID 1, or is not emulated honestly here):
  * systemd's own sandbox setup: PrivateTmp, PrivateDevices, ProtectHome,
    ProtectProc=invisible (a fresh hidepid procfs), ProtectKernel*/Clock/
    Hostname/ControlGroups, RestrictNamespaces, RestrictAddressFamilies,
    RestrictSUIDSGID, MemoryDenyWriteExecute, SystemCallArchitectures,
    LockPersonality, RestrictRealtime (their seccomp filters and mounts);
    they are only checked by reading the code (see docs/design.md) and by
    systemd-analyze verify knowing them. In particular no external guard runs
    here, so its user/net/mnt namespaces under RestrictNamespaces= and
    MemoryDenyWriteExecute= are not exercised.
  * /tmp is not private: the test's tree lives under /tmp/portcullis-interop.
  * StateDirectory= creation and mode fixing by systemd: the test makes the
    directory itself with StateDirectoryMode.
  * Type=, Restart=, ExecReload= ($MAINPID), KillMode, the journal (stdout goes
    to a log file), LimitNOFILE, ordering on network-online.target.
"""

import os
import pwd
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import appliance  # noqa: E402
from harness.addresses import EDGE_HIGH_IP, EDGE_LOW_IP, S2S_PORT  # noqa: E402
from harness.auditing import child_pids, export_json  # noqa: E402
from harness.procs import port_accepts  # noqa: E402
from harness.scenarios import chat_both_ways  # noqa: E402
from harness.systemd_unit import Emulation, parse_unit  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import (Federation, ensure_audit_keys, portcullis_binary,  # noqa: E402
                              write_portcullis_config)
from harness.pki import make_pki  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT = os.path.join(REPO, "deploy", "systemd", "portcullisd.service")

# The capabilities the supervisor keeps after limit_supervisor_capabilities()
# (guard/sandbox/capabilities.cpp): SETGID 6, SETUID 7, KILL 5, NET_ADMIN 12, SYS_ADMIN 21.
KEPT = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 12) | (1 << 21)


def status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def in_ns(pid, argv):
    return subprocess.run(["nsenter", "--mount=/proc/%d/ns/mnt" % pid, "--"] + argv, capture_output=True, text=True,
                          timeout=20)


def nft_tables():
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "nft list tables: %s" % r.stderr.strip())
    return r.stdout


def test(ctx):
    with open(UNIT) as f:
        text = f.read()
    unit = parse_unit(UNIT)
    run_dir = ctx.subdir("unit")
    emu = Emulation(unit, text, portcullis_binary(ctx.build_dir), os.path.join(run_dir, "root"))
    ctx.step("unit: bounding set %s; NoNewPrivileges=%s UMask=%04o StateDirectoryMode=%04o ReadWritePaths=%s; "
             "comment: /etc/portcullis %04o, config %04o" % (" ".join(sorted(emu.caps)), emu.nnp, emu.umask,
                                                            emu.state_mode, emu.rw_installed, emu.etc_mode,
                                                            emu.config_mode))

    # ---- 1. systemd-analyze verify, on a copy naming the built binary ----
    copy = os.path.join(run_dir, "portcullisd.service")
    with open(copy, "w") as f:
        f.write(text.replace("/usr/sbin/portcullisd", emu.binary))
    r = subprocess.run(["/usr/bin/systemd-analyze", "verify", copy], capture_output=True, text=True, timeout=60,
                       cwd=run_dir)
    out = (r.stdout + r.stderr).strip()
    check(r.returncode == 0 and not out, "systemd-analyze verify (rc %d): %s" % (r.returncode, out))
    ctx.step("systemd-analyze verify: clean")

    # ---- 2. the installed layout ----
    os.makedirs(emu.etc)
    os.chmod(emu.etc, emu.etc_mode)
    pki = os.path.join(emu.etc, "pki")
    make_pki(pki)
    os.makedirs(emu.state_dir)
    os.chown(emu.state_dir, 0, 0)
    os.chmod(emu.state_dir, emu.state_mode)
    archive = os.path.join(emu.state_dir, "audit")
    config = os.path.join(emu.etc, "portcullis.xml")
    write_portcullis_config(config, pki, "cert", run_dir=run_dir,
                            audit_xml='  <audit dir="%s" signing-key="%s/keys/audit.key" public-key="%s/keys/audit.pub"/>'
                            % (archive, emu.etc, emu.etc))
    ensure_audit_keys(ctx.build_dir, emu.etc)
    emu.schema_dir = appliance.prepare(config)   # users, key owners, schemas next to the config
    for p in (config, os.path.join(emu.etc, "policy.xml")):
        os.chown(p, 0, 0)
        os.chmod(p, emu.config_mode)
    check(emu.rewrite("/etc/portcullis/portcullis.xml") == config, "the unit's config path is not the test's")
    users = appliance.test_users()
    uid = {k: pwd.getpwnam(v).pw_uid for k, v in users.items()}

    # ---- 4. ExecStartPre under the unit's constraints, and what the old layout gave ----
    r = emu.run(emu.pre)
    check(r.returncode == 0, "ExecStartPre %s failed (%d): %s" % (" ".join(emu.pre), r.returncode,
                                                                  (r.stdout + r.stderr).strip()[-600:]))
    ctx.step("ExecStartPre (--check-config) passes under the unit's capabilities and read-only filesystem")
    for what, path, mode, expect in (("state directory", emu.state_dir, 0o750, "no search permission"),
                                     ("config", config, 0o640, "no read permission")):
        os.chmod(path, mode)
        try:
            r = emu.run(emu.pre)
        finally:
            os.chmod(path, emu.state_mode if path == emu.state_dir else emu.config_mode)
        said = (r.stdout + r.stderr).strip()
        check(r.returncode != 0 and path in said and expect in said,
              "--check-config with the %s at %04o: rc %d, %r (expected a refusal naming %s: %s)"
              % (what, mode, r.returncode, said[-400:], path, expect))
        ctx.step("--check-config with the %s at %04o refused: %s" % (what, mode, said.splitlines()[-1][-200:]))

    # ---- 5. the old unit's bounding set (no CAP_SETPCAP) cannot start separated mode ----
    check("CAP_SETPCAP" in emu.caps, "the unit's CapabilityBoundingSet lacks CAP_SETPCAP (libcap-ng's capng_apply "
          "needs it to drop the bounding set)")
    table = "portcullis_u%d_%d" % (uid["low"], uid["high"])
    r = emu.run(emu.start, caps=emu.caps - {"CAP_SETPCAP"}, timeout=30)
    said = (r.stdout + r.stderr).strip()
    check(r.returncode != 0, "portcullisd without CAP_SETPCAP exited %d: %s" % (r.returncode, said[-400:]))
    check("cannot limit the supervisor's capabilities" in said and "CAP_SETPCAP" in said,
          "without CAP_SETPCAP, portcullisd failed (%d) but not for want of it: %s" % (r.returncode, said[-400:]))
    check(table not in nft_tables(), "without CAP_SETPCAP, portcullisd left its firewall table %s behind" % table)
    for ip in (EDGE_LOW_IP, EDGE_HIGH_IP):
        check(not port_accepts(ip, S2S_PORT), "something listens on %s:%d after the failed start" % (ip, S2S_PORT))
    shutil.rmtree(archive, ignore_errors=True)   # the failed start made it; the real start makes it again
    ctx.step("without CAP_SETPCAP: exit %d, %r; no table left" % (r.returncode, said.splitlines()[-1][-160:]))
    # And no capability in the unit is there for nothing: without any one of them the start fails.
    for cap in sorted(emu.caps - {"CAP_SETPCAP"}):
        try:
            r = emu.run(emu.start, caps=emu.caps - {cap}, timeout=20)
        except AssertionError as e:
            raise AssertionError("portcullisd starts without %s, which the unit grants: %s" % (cap, e)) from None
        said = (r.stdout + r.stderr).strip()
        check(r.returncode != 0, "portcullisd without %s exited %d" % (cap, r.returncode))
        check(table not in nft_tables(), "without %s, portcullisd left its firewall table behind" % cap)
        shutil.rmtree(archive, ignore_errors=True)
        ctx.step("without %s: exit %d, %s" % (cap, r.returncode, said.splitlines()[-1][-160:] if said else "(silent)"))

    # ---- 6. ExecStart as the unit runs it ----
    def unit_command(binary, config_path, schema_dir):
        check(config_path == config and schema_dir == emu.schema_dir, "harness paths moved")
        return emu.argv(emu.start)

    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir, pki_dir=pki,
                    portcullis_config=config, portcullis_command=unit_command) as fed:
        pid = fed.portcullis.pid
        ctx.step("portcullisd (pid %d) started by the unit's ExecStart; both edges listen" % pid)
        chat_both_ways(ctx, fed, "systemd unit")

        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
        check(argv == [emu.rewrite(a) for a in emu.start], "supervisor command line %r" % argv)
        sup = status(pid)
        check(sup["Uid"].split() == ["0"] * 4, "supervisor uids %s" % sup["Uid"])
        check(int(sup["Umask"], 8) == emu.umask, "supervisor umask %s, unit UMask=%04o" % (sup["Umask"], emu.umask))
        check(sup["NoNewPrivs"] == ("1" if emu.nnp else "0"), "supervisor NoNewPrivs %s" % sup["NoNewPrivs"])
        for k in ("CapEff", "CapPrm", "CapBnd"):
            check(int(sup[k], 16) == KEPT, "supervisor %s %s, expected %016x" % (k, sup[k], KEPT))
        check(int(sup["CapInh"], 16) == 0, "supervisor CapInh %s" % sup["CapInh"])
        check(os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt"),
              "the supervisor shares the test's mount namespace")
        # ProtectSystem=strict, emulated: the config directory is read-only from inside, the state directory not.
        probe = os.path.join(emu.etc, "written-by-the-service")
        w = in_ns(pid, ["touch", probe])
        check(w.returncode != 0 and "Read-only file system" in w.stderr and not os.path.exists(probe),
              "write to %s inside the service's namespace: rc %d %s" % (probe, w.returncode, w.stderr.strip()))
        probe = os.path.join(emu.state_dir, "written-by-the-service")
        w = in_ns(pid, ["touch", probe])
        check(w.returncode == 0, "write to the state directory inside the namespace: %s" % w.stderr.strip())
        os.unlink(probe)
        ctx.step("supervisor: uid 0, umask %s, NoNewPrivs %s, caps %s after start; / read-only in its namespace "
                 "but the state directory" % (sup["Umask"], sup["NoNewPrivs"], sup["CapBnd"]))

        roles = {}
        for k in child_pids(pid):
            with open("/proc/%d/cmdline" % k, "rb") as f:
                a = [x.decode() for x in f.read().split(b"\0") if x]
            if "--role" in a:
                role = a[a.index("--role") + 1]
                roles[role + ("(%s)" % a[a.index("--side") + 1] if role == "edge" else "")] = k
        check(set(roles) == {"edge(low)", "filter", "edge(high)"}, "children %r" % roles)
        want = {"edge(low)": uid["low"], "edge(high)": uid["high"], "filter": uid["filter"]}
        for role, k in roles.items():
            st = status(k)
            check(st["Uid"].split() == [str(want[role])] * 4, "%s uids %s" % (role, st["Uid"]))
            check(st["CapEff"] == "0000000000000000", "%s caps %s" % (role, st["CapEff"]))
            check(st["NoNewPrivs"] == "1", "%s NoNewPrivs %s" % (role, st["NoNewPrivs"]))
        ctx.step("children %r under their users, no capabilities" % roles)

        st = os.stat(archive)
        check(st.st_uid == uid["filter"] and (st.st_mode & 0o7777) == 0o700,
              "archive %s: owner %d mode %04o" % (archive, st.st_uid, st.st_mode & 0o7777))
        st = os.stat(emu.state_dir)
        check(st.st_uid == 0 and (st.st_mode & 0o7777) == emu.state_mode, "state directory mode %04o"
              % (st.st_mode & 0o7777))
        lock = "/run/lock/%s.lock" % table
        check("/run/lock" in emu.rw_installed, "the unit does not make /run/lock writable")
        with open(lock) as f:
            check(f.read().strip() == str(pid), "lock %s does not name pid %d" % (lock, pid))
        check(table in nft_tables(), "side firewall table %s not installed" % table)
        ctx.step("archive made for the filter (0700) in the %04o state directory; lock %s held; table %s"
                 % (emu.state_mode, lock, table))

        chat_both_ways(ctx, fed, "systemd unit, after checks")
        records = export_json(ctx.build_dir, archive)
        sup_recs = [x for x in records if x["type"] == "admin" and x["record"].get("event") == "supervision"]
        check(sup_recs and dict(sup_recs[-1]["record"].get("fields", [])).get("mode") == "separated",
              "no supervision record mode=separated in the archive")
        ctx.step("archive: supervision mode=separated")
    check(table not in nft_tables(), "the side firewall table outlived portcullisd")


if __name__ == "__main__":
    run_test(test)
