"""One real Prosody 0.12 server on a loopback address, with its own config, data dir,
log, pid file and private hosts file (resolved through lua-unbound; real-peers.md)."""

import os
import re
import subprocess

from . import procs
from .addresses import C2S_PORT, S2S_PORT
from .pki import bundle
from .procs import HarnessError

PROSODY = "/usr/bin/prosody"
PROSODYCTL = "/usr/bin/prosodyctl"


def check_prerequisites():
    """Raises HarnessError unless prosody and lua-unbound are installed. Without
    lua-unbound Prosody ignores our private hosts files (real-peers.md pitfall 1)."""
    if not os.access(PROSODY, os.X_OK):
        raise HarnessError("prosody is not installed (run deploy/install-deps.sh)")
    if not any(os.path.exists("/usr/lib/x86_64-linux-gnu/lua/%s/lunbound.so" % v)
               for v in ("5.4", "5.3", "5.2", "5.1")) and \
            subprocess.run(["dpkg", "-s", "lua-unbound"], capture_output=True).returncode != 0:
        raise HarnessError("lua-unbound is not installed: Prosody would not read the test "
                           "hosts files (run deploy/install-deps.sh)")


def _lua_str(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


class ProsodyServer:
    """A Prosody server for `domain` (plus MUC component conference.<domain>) bound to
    `ip` (c2s on ip:5222, s2s on ip:5269).

    mode:     'cert'     - s2s_secure_auth, SASL EXTERNAL (XEP-0178), no dialback;
              'dialback' - dialback only: mod_dialback loaded, s2s_auth_certs disabled,
                           s2s_secure_auth false (TLS still required).
    peer_map: {remote domain: ip} written to the private hosts file; s2s to a remote
              domain dials ip:5269.
    trust:    CA files concatenated into this server's cafile (the CAs of whatever
              presents certificates to it: the peer server, or the guard).
    cert/key: this server's certificate and key (default <pki_dir>/<domain>.pem/.key).
    users:    {username: password} created with prosodyctl before start.
    smacks:   load mod_smacks (XEP-0198 stream management, also on S2S streams).
    direct_tls_port: also accept S2S over direct TLS (XEP-0368) on ip:port.
    log_level: lowest level written to prosody.log ('debug' logs every stanza, which
              the log assertions need; the benchmark uses 'info').
    components: {domain: secret} of XEP-0114 external components (e.g. biboumi), which
              connect to ip:component_port (this server's address only); none by default,
              and then no component port is opened.
    """

    def __init__(self, domain, ip, run_dir, pki_dir, mode="cert", peer_map=None, muc=True,
                 trust=(), cert=None, key=None, users=None, extra_config="",
                 log_level="debug", smacks=False, direct_tls_port=None, components=None,
                 component_port=5347):
        if mode not in ("cert", "dialback"):
            raise ValueError("mode must be 'cert' or 'dialback'")
        self.domain = domain
        self.ip = ip
        self.muc_domain = "conference." + domain if muc else None
        self.mode = mode
        self.peer_map = dict(peer_map or {})
        self.pki_dir = pki_dir
        self.trust = list(trust)
        self.cert = cert or os.path.join(pki_dir, domain + ".pem")
        self.key = key or os.path.join(pki_dir, domain + ".key")
        self.users = dict(users or {})
        self.extra_config = extra_config
        self.log_level = log_level
        self.smacks = smacks
        self.direct_tls_port = direct_tls_port
        self.components = dict(components or {})
        self.component_port = component_port
        self.dir = os.path.abspath(os.path.join(run_dir, domain))
        self.config_path = os.path.join(self.dir, "prosody.cfg.lua")
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.console_path = os.path.join(self.dir, "console.log")
        self.pid_path = os.path.join(self.dir, "prosody.pid")
        self.hosts_path = os.path.join(self.dir, "hosts")
        self.cafile = os.path.join(self.dir, "trust.pem")
        self.data_dir = os.path.join(self.dir, "data")
        self.proc = None

    # ---- configuration -------------------------------------------------------------

    def write_config(self):
        """Writes config, hosts file, trust bundle and data dir (fresh each time)."""
        check_prerequisites()
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "certs"), exist_ok=True)
        with open(self.hosts_path, "w") as f:
            f.write("# private hosts file of %s (read by lua-unbound only)\n" % self.domain)
            for name, addr in sorted(self.peer_map.items()):
                f.write("%s %s\n" % (addr, name))
        if self.trust:
            bundle(self.cafile, self.trust)
        else:
            open(self.cafile, "w").close()
        modules = ["roster", "saslauth", "tls", "disco", "ping"]
        if self.smacks:
            # XEP-0198 (Prosody's mod_smacks): on S2S it offers and requests
            # acknowledgements on authenticated streams (smacks_enabled_s2s).
            modules.append("smacks")
        if self.mode == "dialback":
            modules.append("dialback")
            auth_lines = ('s2s_secure_auth = false\n'
                          'modules_disabled = { "s2s_auth_certs" }\n')
        else:
            auth_lines = 's2s_secure_auth = true\n'
        root = "run_as_root = true\n" if os.getuid() == 0 else ""
        ip = _lua_str(self.ip)
        if self.components:
            # XEP-0114 listener on this server's address only (the component stream is plain text).
            component_lines = "component_ports = {{ {} }}\ncomponent_interfaces = {{ {} }}\n".format(
                self.component_port, ip)
        else:
            component_lines = ""
        cfg = f"""-- Generated by test/integration/harness/prosody.py; do not edit.
{root}pidfile = {_lua_str(self.pid_path)}
data_path = {_lua_str(self.data_dir)}
certificates = {_lua_str(os.path.join(self.dir, "certs"))}  -- empty: ssl below is explicit
log = {{ {self.log_level} = {_lua_str(self.log_path)} }}
-- Every listener on this server's own loopback address only.
interfaces = {{ {ip} }}
local_interfaces = {{ {ip} }}
c2s_interfaces = {{ {ip} }}
s2s_interfaces = {{ {ip} }}
c2s_ports = {{ {C2S_PORT} }}
s2s_ports = {{ {S2S_PORT} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ {self.direct_tls_port or ""} }}
{component_lines}-- No HTTP modules are loaded, so no http(s) ports are opened.
-- Nagle off: otherwise ~40 ms stalls on small bursts (real-peers.md pitfall 13).
network_settings = {{ nagle = false }}
modules_enabled = {{ {", ".join(_lua_str(m) for m in modules)} }}
{auth_lines}s2s_require_encryption = true
c2s_require_encryption = true
allow_registration = false
authentication = "internal_plain"
storage = "internal"
-- Resolution through lua-unbound with a private hosts file; .test is a static local
-- zone, so SRV fails at once and the A record is dialled on 5269.
unbound = {{ hoststxt = {_lua_str(self.hosts_path)}; resolvconf = false; forward = "127.0.0.1" }}
ssl = {{
  certificate = {_lua_str(self.cert)};
  key = {_lua_str(self.key)};
  cafile = {_lua_str(self.cafile)};
}}
{self.extra_config}
VirtualHost {_lua_str(self.domain)}
"""
        if self.muc_domain:
            cfg += f"""
Component {_lua_str(self.muc_domain)} "muc"
  restrict_room_creation = false
  muc_room_locking = false
  muc_room_default_history_length = 0
"""
        for name, secret in sorted(self.components.items()):
            cfg += f"""
Component {_lua_str(name)}
  component_secret = {_lua_str(secret)}
"""
        with open(self.config_path, "w") as f:
            f.write(cfg)

    def register(self, user, password):
        """Creates an account with prosodyctl (server need not be running)."""
        r = subprocess.run([PROSODYCTL, "--config", self.config_path, "register", user,
                            self.domain, password], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise HarnessError("prosodyctl register %s@%s failed: %s" % (
                user, self.domain, (r.stderr or r.stdout).strip()[-300:]))

    # ---- lifecycle -----------------------------------------------------------------

    def start(self, timeout=20):
        """Writes the config, creates the users, starts `prosody --config FILE -F` and
        waits (bounded) until c2s and s2s ports accept."""
        ports = (C2S_PORT, S2S_PORT) + ((self.component_port,) if self.components else ())
        for port in ports:
            procs.ensure_port_free(self.ip, port)
        self.write_config()
        for user, password in self.users.items():
            self.register(user, password)
        self.proc = procs.ManagedProcess("prosody " + self.domain,
                                         [PROSODY, "--config", self.config_path, "-F"],
                                         self.console_path, cwd=self.dir)
        procs.wait_port(self.ip, C2S_PORT, timeout, self.proc)
        procs.wait_port(self.ip, S2S_PORT, timeout, self.proc)
        if self.components:
            procs.wait_port(self.ip, self.component_port, timeout, self.proc)
        return self

    def stop(self):
        """Terminates the server by pid (SIGTERM, then SIGKILL). Idempotent."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart(self, timeout=20):
        self.stop()
        return self.start(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- logs ----------------------------------------------------------------------

    def log_offset(self):
        """Current size of the log: pass to log_contains/wait_log to look only at
        lines written after this point."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_contains(self, pattern, since=0):
        """First log line (after byte offset `since`) matching regex `pattern`, or None."""
        rx = re.compile(pattern)
        for line in self.log_text(since).splitlines():
            if rx.search(line):
                return line
        return None

    def wait_log(self, pattern, timeout=10, since=0):
        """Waits (bounded) for a log line matching `pattern`; returns it."""
        return procs.wait_until(lambda: self.log_contains(pattern, since), timeout,
                                "log line /%s/ in %s" % (pattern, self.log_path))

    def log_tail(self, lines=20):
        return procs.tail(self.log_path, lines)

    @property
    def jid_domain(self):
        return self.domain
