"""A systemd unit read and run as systemd would run it, as far as that can be
emulated without systemd as PID 1 (test_portcullis_systemd_unit.py says how far,
and what is left out).

parse_unit(path) reads a unit file; Emulation(unit, text, binary, root) takes its
capabilities (CapabilityBoundingSet), NoNewPrivileges, UMask, StateDirectory/Mode,
RuntimeDirectory/Mode, ReadWritePaths, ProtectSystem=strict and Exec lines, maps its installed paths into
`root` (or keeps them, root "/"), and runs a command line the unit's way:
`unshare -m` with everything read-only but the state directory and
ReadWritePaths, the unit's umask, then `setpriv` with its bounding set and
no_new_privs.
"""

import json
import os
import re
import shlex
import subprocess

from .testing import check

SANDBOX_PYTHON = "/usr/bin/python3"

# Runs inside `unshare -m`: ProtectSystem=strict's view, then umask, then setpriv.
SANDBOX = r'''
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
def unescape(s):
    return s.encode().decode("unicode_escape")
rw = [os.path.realpath(p) for p in spec["rw"]]
for p in rw:
    subprocess.run(["mount", "--bind", p, p], check=True)
with open("/proc/self/mountinfo") as f:
    points = [unescape(line.split()[4]) for line in f]
for m in points:
    if m in rw or any(m == k or m.startswith(k + "/") for k in ("/proc", "/sys", "/dev")):
        continue
    r = subprocess.run(["mount", "-o", "remount,bind,ro", m], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("sandbox: cannot make %s read-only: %s\n" % (m, r.stderr.strip()))
        sys.exit(111)
os.umask(spec["umask"])
os.execvp(spec["argv"][0], spec["argv"])
'''


# ---- the unit file ----------------------------------------------------------------

def parse_unit(path):
    """{section: [(key, value), ...]} in file order (continuation lines joined)."""
    sections, current, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if pending:
                line, pending = pending + line.lstrip(), ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                current = s[1:-1]
                sections.setdefault(current, [])
                continue
            key, sep, value = s.partition("=")
            check(sep and current, "%s: cannot parse %r" % (path, s))
            sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit, key, section="Service"):
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit, key, section="Service"):
    vs = values(unit, key, section)
    check(len(vs) >= 1, "the unit has no %s=" % key)
    return vs[-1]   # systemd: the last assignment of a single-valued key wins


def bounding_set(unit):
    """CapabilityBoundingSet= as systemd merges it: lines add up, an empty one resets."""
    caps = set()
    for v in values(unit, "CapabilityBoundingSet"):
        check(not v.startswith("~"), "CapabilityBoundingSet=~... (an inverted list) is not emulated")
        if not v:
            caps = set()
        caps |= set(v.split())
    check(caps, "the unit has no CapabilityBoundingSet=")
    for c in caps:
        check(re.fullmatch(r"CAP_[A-Z_]+", c), "CapabilityBoundingSet: unexpected %r" % c)
    return caps


def yes(v):
    return v.lower() in ("yes", "true", "on", "1")


def command(unit, key):
    """ExecStart=/ExecStartPre= as argv; refuses prefixes that would leave the sandbox."""
    vs = values(unit, key)
    check(len(vs) == 1, "expected one %s=, got %r" % (key, vs))
    v = vs[0]
    check(v[0] not in "-@:+!", "%s=%s: a prefix (%s) changes how it runs; not emulated" % (key, v, v[0]))
    return shlex.split(v)


def comment_mode(text, pattern, what):
    m = re.search(pattern, text)
    check(m, "the unit's header comment no longer states %s (pattern %r)" % (what, pattern))
    return int(m.group(1), 8)


# ---- running it as the unit would -----------------------------------------------------

class Emulation:
    """The unit's directives, with its paths moved into `root` and its
    /usr/sbin/portcullisd to `binary` (root "/" and the installed binary: the
    unit's own paths, as an installed package runs it)."""

    def __init__(self, unit, text, binary, root):
        self.unit = unit
        self.caps = bounding_set(unit)
        self.nnp = yes(one(unit, "NoNewPrivileges"))
        self.umask = int(one(unit, "UMask"), 8)
        self.protect_system = one(unit, "ProtectSystem")
        check(self.protect_system == "strict", "ProtectSystem=%s: the test emulates only strict"
              % self.protect_system)
        state = one(unit, "StateDirectory")
        check("/" not in state and " " not in state, "StateDirectory=%s: expected one plain name" % state)
        self.state_dir_installed = "/var/lib/" + state
        self.state_mode = int(one(unit, "StateDirectoryMode"), 8)
        self.rw_installed = [p.lstrip("-+") for v in values(unit, "ReadWritePaths") for p in v.split()]
        # RuntimeDirectory=: made by systemd (root's, RuntimeDirectoryMode) and writable under strict.
        runtime = values(unit, "RuntimeDirectory")
        check(all("/" not in r and " " not in r for r in runtime), "RuntimeDirectory=%s: expected one plain name"
              % runtime)
        self.runtime_dir_installed = "/run/" + runtime[-1] if runtime else None
        self.runtime_mode = int(one(unit, "RuntimeDirectoryMode"), 8) if runtime else 0o755
        self.pre = command(unit, "ExecStartPre")
        self.start = command(unit, "ExecStart")
        self.etc_mode = comment_mode(text, r"/etc/portcullis \(root:root, (0[0-7]{3})", "the mode of /etc/portcullis")
        self.config_mode = comment_mode(text, r"portcullis\.xml root:root, (0[0-7]{3})", "the config's mode")
        self.root = root
        self.binary = binary
        self.etc = os.path.join(root, "etc", "portcullis")
        self.state_dir = os.path.join(root, self.state_dir_installed.lstrip("/"))
        self.schema_dir = None   # set once appliance.prepare() has copied the schemas

    def path_map(self):
        m = {"/usr/sbin/portcullisd": self.binary, "/etc/portcullis": self.etc,
             self.state_dir_installed: self.state_dir}
        if self.schema_dir:
            m["/usr/share/portcullis/schemas"] = self.schema_dir
        return m

    def rewrite(self, arg):
        for installed, here in sorted(self.path_map().items(), key=lambda kv: -len(kv[0])):
            if arg == installed or arg.startswith(installed + "/"):
                return here + arg[len(installed):]
        check(not arg.startswith("/"), "the unit names %s, which this test does not know where to put" % arg)
        return arg

    def writable(self):
        """StateDirectory= (writable under ProtectSystem=strict by itself) and ReadWritePaths=."""
        out = [self.state_dir]
        if self.runtime_dir_installed:
            rt = os.path.join(self.root, self.runtime_dir_installed.lstrip("/"))
            os.makedirs(rt, exist_ok=True)
            os.chmod(rt, self.runtime_mode)
            out.append(rt)
        for p in self.rw_installed:
            out.append(self.rewrite(p) if p.startswith(tuple(self.path_map())) else p)
        for p in out:
            check(os.path.isdir(p), "ReadWritePaths: %s does not exist here (systemd would refuse to start)" % p)
        return out

    def argv(self, cmd, caps=None):
        caps = self.caps if caps is None else caps
        setpriv = ["setpriv", "--bounding-set=-all," + ",".join("+" + c[4:].lower() for c in sorted(caps)),
                   "--inh-caps=-all"]
        if self.nnp:
            setpriv.append("--no-new-privs")
        spec = {"rw": self.writable(), "umask": self.umask,
                "argv": setpriv + ["--"] + [self.rewrite(a) for a in cmd]}
        return ["unshare", "--mount", "--propagation", "private", "--", SANDBOX_PYTHON, "-c", SANDBOX,
                json.dumps(spec)]

    def run(self, cmd, caps=None, timeout=60):
        """Runs `cmd` to its end; one that does not end in `timeout` s gets SIGTERM
        (so a portcullisd removes its firewall table) and fails the test."""
        p = subprocess.Popen(self.argv(cmd, caps), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd="/")
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                out, _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            raise AssertionError("%s still running after %d s (expected it to exit): %s"
                                 % (" ".join(cmd), timeout, (out or "").strip()[-400:])) from None
        return subprocess.CompletedProcess(p.args, p.returncode, out, "")
