"""Real ngIRCd 26 servers on loopback addresses: private config, MOTD, pid file and log
each; optional TLS listener (own test CA) and server password; [Server] blocks to link
servers so that a channel spans them (real-peers.md, protocols.md section 6).

    pki = make_irc_pki(ctx.subdir("irc-pki"), {"irc-a.test": IRC_IP, "irc-b.test": IRC2_IP})
    a = NgircdServer("irc-a.test", IRC_IP, run_dir, tls=True, pki=pki)
    b = NgircdServer("irc-b.test", IRC2_IP, run_dir, tls=True, pki=pki)
    link(a, b, active="a")          # a dials b; b only accepts (Passive)
    a.start(); b.start(); a.wait_linked(b, timeout=30)

Every server is a procs.ManagedProcess (`ngircd --config FILE --nodaemon`, its log on
stdout/stderr into <dir>/ngircd.log), so it is stopped whatever happens.
"""

import os
import pwd
import random
import re
import socket
import subprocess
import time

from . import procs
from .addresses import IRC_PORT
from .procs import HarnessError

NGIRCD = "/usr/sbin/ngircd"
IRC_TLS_PORT = 6697
NOBODY = "nobody"


def check_prerequisites():
    if not os.access(NGIRCD, os.X_OK):
        raise HarnessError("ngircd is not installed (run deploy/install-deps.sh)")


# ---- test PKI for the IRC servers ---------------------------------------------------------

class IrcPki:
    """A CA and one certificate per server name (files in `dir`): .ca, .cert(name),
    .key(name), .dh (RFC 7919 ffdhe2048 parameters for GnuTLS, instant to make)."""

    def __init__(self, directory, names):
        self.dir = os.path.abspath(directory)
        self.names = list(names)
        self.ca = os.path.join(self.dir, "irc-ca.pem")
        self.ca_key = os.path.join(self.dir, "irc-ca.key")
        self.dh = os.path.join(self.dir, "dh.pem")

    def cert(self, name):
        return os.path.join(self.dir, name + ".pem")

    def key(self, name):
        return os.path.join(self.dir, name + ".key")


def _openssl(cwd, *args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    if r.returncode != 0:
        raise HarnessError("openssl %s failed: %s" % (args[0], r.stderr.strip()[-300:]))


def make_irc_pki(out_dir, servers, ca_cn="Portcullis IRC test CA"):
    """Creates (or completes) an IRC test PKI in out_dir: an EC P-256 CA and, for every
    {server name: ip} of `servers`, a leaf certificate with CN = the name and SAN DNS:name
    and IP:ip (so clients may verify either). Valid 30 days. Files are world-readable:
    ngIRCd started as root reads them after switching to `nobody`. Returns an IrcPki."""
    pki = IrcPki(out_dir, servers)
    os.makedirs(pki.dir, exist_ok=True)
    os.chmod(pki.dir, 0o755)
    d = pki.dir
    if not os.path.exists(pki.ca):
        _openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", pki.ca_key, "-out", pki.ca, "-days", "30",
                 "-subj", "/CN=" + ca_cn,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-addext", "subjectKeyIdentifier=hash")
    if not os.path.exists(pki.dh):
        _openssl(d, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
                 "-out", pki.dh)
    for name, ip in dict(servers).items():
        if os.path.exists(pki.cert(name)) and os.path.exists(pki.key(name)):
            continue
        ext = os.path.join(d, name + ".ext")
        csr = os.path.join(d, name + ".csr")
        sans = ["DNS:" + name] + (["IP:" + ip] if ip else [])
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nsubjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\nsubjectAltName=%s\n" % ",".join(sans))
        _openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", pki.key(name), "-out", csr, "-subj", "/CN=" + name)
        _openssl(d, "x509", "-req", "-in", csr, "-CA", pki.ca, "-CAkey", pki.ca_key,
                 "-CAcreateserial", "-out", pki.cert(name), "-days", "30", "-extfile", ext)
        os.remove(ext)
        os.remove(csr)
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)
    return pki


# ---- server links ---------------------------------------------------------------------------

class IrcPeer:
    """One [Server] block: a server this one links with.

    name             the peer's IRC server name (must equal what it announces in SERVER)
    host, port       where to dial it; port None = never dial (wait for it: passive)
    send_password    what this server sends in its PASS  -> written as `PeerPassword`
    expect_password  what the peer must send in its PASS -> written as `MyPassword`
                     (ngIRCd 26.1's conf.c stores MyPassword as pwd_in, the password it
                     checks, and PeerPassword as pwd_out, the one it sends: the reverse of
                     the man page; real-peers.md pitfall 10)
    passive          write `Passive = yes` (keep Host/Port but do not dial automatically)
    tls              `SSLConnect = yes` (dial the peer's TLS port; verify with ssl_verify
                     against the [SSL] CAFile)
    bind             source address of the outgoing link (default: this server's ip)
    service_mask     `ServiceMask` (nicks treated as services, for pseudo-servers)
    """

    def __init__(self, name, host=None, port=None, send_password="", expect_password="",
                 passive=False, tls=False, ssl_verify=True, bind=None, service_mask=None,
                 group=None):
        self.name = name
        self.host = host
        self.port = port
        self.send_password = send_password
        self.expect_password = expect_password
        self.passive = passive
        self.tls = tls
        self.ssl_verify = ssl_verify
        self.bind = bind
        self.service_mask = service_mask
        self.group = group

    def block(self, own_ip):
        lines = ["[Server]", "Name = %s" % self.name]
        if self.host:
            lines.append("Host = %s" % self.host)
        if self.port:
            lines.append("Port = %d" % self.port)
            lines.append("Bind = %s" % (self.bind or own_ip))
        lines.append("MyPassword = %s" % self.expect_password)
        lines.append("PeerPassword = %s" % self.send_password)
        if self.passive:
            lines.append("Passive = yes")
        if self.tls:
            lines.append("SSLConnect = yes")
            lines.append("SSLVerify = %s" % ("yes" if self.ssl_verify else "no"))
        if self.service_mask:
            lines.append("ServiceMask = %s" % self.service_mask)
        if self.group is not None:
            lines.append("Group = %d" % self.group)
        return "\n".join(lines) + "\n"


def link(a, b, active="a", password_ab=None, password_ba=None, tls=False):
    """Configures a server link between NgircdServers a and b (before start): only the
    `active` side ("a" or "b") dials, the other waits (no Port: passive). password_ab is
    what a sends to b, password_ba what b sends to a. tls: the active side dials the
    other's TLS port (SSLConnect, certificate verified against its pki CA)."""
    if active not in ("a", "b"):
        raise ValueError("active must be 'a' or 'b'")
    pab = password_ab or "link-%s-to-%s" % (a.name, b.name)
    pba = password_ba or "link-%s-to-%s" % (b.name, a.name)

    def peer(target, send, expect, dial):
        port = (target.tls_port if tls else target.port) if dial else None
        return IrcPeer(target.name, host=target.ip, port=port, send_password=send,
                       expect_password=expect, tls=tls and dial)
    a.peers.append(peer(b, pab, pba, active == "a"))
    b.peers.append(peer(a, pba, pab, active == "b"))


# ---- one server -----------------------------------------------------------------------------

class NgircdServer:
    """An ngIRCd server named `name` (must contain a dot), listening on ip:port only (plus
    ip:tls_port with TLS when `tls`).

    run_dir          the server's files go to <run_dir>/<name>/: ngircd.conf, ngircd.motd,
                     ngircd.log (console output: --nodaemon logs there), pid/ngircd.pid,
                     include/ (IncludeDir, empty), pki/ (own CA when tls and pki is None)
    peers            IrcPeer list ([Server] blocks); link(a, b) fills it for two servers
    pki              IrcPki from make_irc_pki (shared CA for several servers), or None
    password         global client password ([Global] Password; PAM is off, which the
                     option requires): clients must send it in PASS or get 464
    max_nick_length  MaxNickLength; every server of a network must use the same
    max_penalty_time MaxPenaltyTime: 0 disables the flood penalty (default here; otherwise a
                     client gets about one line per 2 s after a burst), None keeps ngIRCd's
                     -1 (unlimited penalty, the real-world behaviour)
    max_connections_ip MaxConnectionsIP (ngIRCd default 5; 0 = unlimited, as every test
                     client comes from 127.0.0.1)
    connect_retry    ConnectRetry in seconds (ngIRCd minimum 5, default 60)
    ping_timeout, pong_timeout  PingTimeout / PongTimeout
    channels         predefined (+P) channels: names, or dicts {name, topic, modes, key_file}
    operators        {name: password} for [Operator] blocks (Mask *)
    options          extra [Options] settings {Name: value}, e.g. {"ScrubCTCP": "yes"}
    limits           extra [Limits] settings
    extra_config     raw text appended to the config
    """

    def __init__(self, name, ip, run_dir, port=IRC_PORT, peers=None, tls=False, pki=None,
                 tls_port=IRC_TLS_PORT, password=None, max_nick_length=30,
                 max_penalty_time=0, max_connections_ip=0, max_joins=50, connect_retry=5,
                 ping_timeout=120, pong_timeout=20, channels=(), operators=None,
                 options=None, limits=None, info=None, motd=None, extra_config=""):
        if "." not in name:
            raise ValueError("an IRC server name must contain a dot: %r" % name)
        self.name = name
        self.ip = ip
        self.port = port
        self.tls = tls
        self.tls_port = tls_port
        self.pki = pki
        self.peers = list(peers or [])
        self.password = password
        self.max_nick_length = max_nick_length
        self.max_penalty_time = max_penalty_time
        self.max_connections_ip = max_connections_ip
        self.max_joins = max_joins
        self.connect_retry = connect_retry
        self.ping_timeout = ping_timeout
        self.pong_timeout = pong_timeout
        self.channels = list(channels)
        self.operators = dict(operators or {})
        self.options = dict(options or {})
        self.limits = dict(limits or {})
        self.info = info or "Portcullis test server %s" % name
        self.motd = motd or "Portcullis integration test server %s" % name
        self.extra_config = extra_config
        self.dir = os.path.abspath(os.path.join(run_dir, name))
        self.config_path = os.path.join(self.dir, "ngircd.conf")
        self.motd_path = os.path.join(self.dir, "ngircd.motd")
        self.log_path = os.path.join(self.dir, "ngircd.log")
        self.pid_dir = os.path.join(self.dir, "pid")
        self.pid_path = os.path.join(self.pid_dir, "ngircd.pid")
        self.include_dir = os.path.join(self.dir, "include")
        self.proc = None
        self.started_at = None

    # ---- configuration ---------------------------------------------------------------

    @property
    def ca_file(self):
        """The CA a client must trust to verify this server's TLS certificate."""
        return self.pki.ca if self.pki is not None else None

    @property
    def cert_file(self):
        return self.pki.cert(self.name) if self.pki is not None else None

    def ports(self):
        return [self.port] + ([self.tls_port] if self.tls else [])

    def config_text(self):
        root = os.getuid() == 0
        lines = ["# Generated by test/integration/harness/ngircd.py; do not edit.",
                 "[Global]",
                 "Name = %s" % self.name,
                 "Info = %s" % self.info,
                 # RFC 2812 wants ADMIN info; without it ngIRCd warns at every start.
                 "AdminInfo1 = Portcullis integration tests",
                 "AdminInfo2 = loopback only",
                 "AdminEMail = root@%s" % self.name,
                 "Listen = %s" % self.ip,       # this address only (default: all)
                 "Ports = %d" % self.port,
                 "MotdFile = %s" % self.motd_path,  # default /etc/ngircd/ngircd.motd
                 "PidFile = %s" % self.pid_path]
        if root:
            # As root ngIRCd switches to ServerUID after binding and refuses 0 ("must not
            # be root(0), using nobody"); say so explicitly. The pid file is written after
            # the switch, hence pid/ owned by nobody; everything else is world-readable.
            lines += ["ServerUID = %s" % NOBODY, "ServerGID = %d" % _nobody().pw_gid]
        if self.password:
            lines.append("Password = %s" % self.password)
        lines += ["", "[Limits]",
                  "ConnectRetry = %d" % self.connect_retry,
                  "MaxConnectionsIP = %d" % self.max_connections_ip,
                  "MaxJoins = %d" % self.max_joins,
                  "MaxNickLength = %d" % self.max_nick_length,
                  "PingTimeout = %d" % self.ping_timeout,
                  "PongTimeout = %d" % self.pong_timeout]
        if self.max_penalty_time is not None:
            lines.append("MaxPenaltyTime = %d" % self.max_penalty_time)
        lines += ["%s = %s" % kv for kv in self.limits.items()]
        options = {
            "PAM": "no",          # Debian builds with PAM, default yes: [Global] Password
                                  # would be ignored and every PASS would fail
            "Ident": "no",        # else an IDENT query to port 113 for every client
            "DNS": "no",          # no reverse lookups of 127.x
            "ConnectIPv6": "no",  # loopback IPv4 only
            "IncludeDir": self.include_dir,  # default /etc/ngircd/ngircd.conf.d
        }
        options.update(self.options)
        lines += ["", "[Options]"] + ["%s = %s" % kv for kv in options.items()]
        if self.tls or any(p.tls for p in self.peers):
            if self.pki is None:
                raise HarnessError("%s: TLS needs a pki" % self.name)
            lines += ["", "[SSL]",
                      "CertFile = %s" % self.pki.cert(self.name),
                      "KeyFile = %s" % self.pki.key(self.name),
                      "CAFile = %s" % self.pki.ca,
                      # Without a DHFile ngIRCd (GnuTLS) generates parameters at startup.
                      "DHFile = %s" % self.pki.dh]
            if self.tls:
                lines.append("Ports = %d" % self.tls_port)
        for name, password in sorted(self.operators.items()):
            lines += ["", "[Operator]", "Name = %s" % name, "Password = %s" % password,
                      "Mask = *!*@*"]
        for ch in self.channels:
            if isinstance(ch, str):
                ch = {"name": ch}
            lines += ["", "[Channel]", "Name = %s" % ch["name"]]
            if ch.get("topic"):
                lines.append("Topic = %s" % ch["topic"])
            if ch.get("modes"):
                lines.append("Modes = %s" % ch["modes"])
            if ch.get("key_file"):
                lines.append("KeyFile = %s" % ch["key_file"])
        text = "\n".join(lines) + "\n"
        for p in self.peers:
            text += "\n" + p.block(self.ip)
        if self.extra_config:
            text += "\n" + self.extra_config + "\n"
        return text

    def write_config(self):
        check_prerequisites()
        if self.tls and self.pki is None:
            self.pki = make_irc_pki(os.path.join(self.dir, "pki"), {self.name: self.ip})
        for d in (self.dir, self.include_dir, self.pid_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        if os.getuid() == 0:
            nb = _nobody()
            os.chown(self.pid_dir, nb.pw_uid, nb.pw_gid)
        with open(self.motd_path, "w") as f:
            f.write(self.motd + "\n")
        with open(self.config_path, "w") as f:
            f.write(self.config_text())
        for path in (self.motd_path, self.config_path):
            os.chmod(path, 0o644)
        self.configtest()

    def configtest(self):
        """Runs `ngircd --configtest`: it exits 0 even for unknown variables or bad
        values, so its ' - FILE, line N ...' complaints are the errors."""
        r = subprocess.run([NGIRCD, "--config", self.config_path, "--configtest"],
                           capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        out = r.stdout + r.stderr
        errors = [ln.strip() for ln in out.splitlines()
                  if ln.startswith(" - ") and ", line " in ln]
        if r.returncode != 0 or errors:
            raise HarnessError("%s: ngircd --configtest: %s" % (
                self.config_path, " | ".join(errors) or out.strip()[-300:]))

    # ---- lifecycle -------------------------------------------------------------------

    def start(self, timeout=15):
        """Writes the config, starts `ngircd --config FILE --nodaemon` and waits (bounded)
        until every port accepts. Fails at once if a port is already taken."""
        for port in self.ports():
            procs.ensure_port_free(self.ip, port)
        self.write_config()
        with open(self.log_path, "a") as f:
            f.write("==== harness: starting ngircd %s at %s\n" % (self.name, time.strftime("%H:%M:%S")))
        self.proc = procs.ManagedProcess("ngircd " + self.name,
                                         [NGIRCD, "--config", self.config_path, "--nodaemon"],
                                         self.log_path, cwd=self.dir)
        self.started_at = time.monotonic()
        for port in self.ports():
            procs.wait_port(self.ip, port, timeout, self.proc)
        return self

    def stop(self):
        """SIGTERM by pid (SIGKILL after 5 s). Idempotent."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart(self, timeout=15):
        self.stop()
        return self.start(timeout)

    def running(self):
        return self.proc is not None and self.proc.alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- probing through a throwaway client --------------------------------------------

    def probe(self, commands, until, timeout=10, nick=None):
        """Connects a throwaway plain-text client (PASS if the server has a password),
        waits for 001, sends `commands` (lines) and returns every line received up to
        the first one whose command is in `until` (numerics as strings, e.g. "365").
        Raises HarnessError if that takes longer than `timeout`."""
        nick = nick or "prb%06x" % random.randrange(1 << 24)
        deadline = time.monotonic() + timeout
        lines = []
        with socket.create_connection((self.ip, self.port), timeout=timeout) as s:
            buf = b""

            def send(line):
                s.sendall(line.encode() + b"\r\n")

            def read_until(cmds):
                nonlocal buf
                while True:
                    while b"\n" in buf:
                        raw, buf = buf.split(b"\n", 1)
                        line = raw.rstrip(b"\r").decode("utf-8", "replace")
                        lines.append(line)
                        parts = line.split()
                        if parts and parts[0] == "PING":
                            send("PONG " + " ".join(parts[1:]))
                            continue
                        cmd = parts[1] if parts and parts[0].startswith(":") and len(parts) > 1 \
                            else (parts[0] if parts else "")
                        if cmd in cmds:
                            return line
                        if cmd == "ERROR" or cmd in ("464", "465", "433"):
                            raise HarnessError("%s: probe refused: %s" % (self.name, line))
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise HarnessError("%s: probe got no %s within %.0f s (last: %s)" % (
                            self.name, "/".join(cmds), timeout, lines[-1:]))
                    s.settimeout(left)
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        raise HarnessError("%s: probe connection closed (last: %s)" % (
                            self.name, lines[-1:]))
                    buf += data

            if self.password:
                send("PASS " + self.password)
            send("NICK " + nick)
            send("USER probe 0 * :harness probe")
            read_until({"001"})
            for c in commands:
                send(c)
            read_until(set(until))
            try:
                send("QUIT :probe done")
            except OSError:
                pass
        return lines

    def links(self, timeout=10):
        """Server names this server knows (LINKS, 364 replies), itself included."""
        lines = self.probe(["LINKS"], ["365"], timeout)
        names = []
        for line in lines:
            p = line.split()
            if len(p) > 3 and p[1] == "364":
                names.append(p[3])
        return names

    def lusers_servers(self, timeout=10):
        """The server count of LUSERS 251 ('There are N users and M services on K servers')."""
        lines = self.probe(["LUSERS"], ["266", "255"], timeout)
        for line in lines:
            m = re.search(r" 251 \S+ :.* on (\d+) servers?", line)
            if m:
                return int(m.group(1))
        return None

    def names(self, channel, timeout=10):
        """{nick: prefix modes} of `channel` as this server sees it (NAMES from a
        non-member: fine unless the channel is +s/+p or MorePrivacy is on)."""
        lines = self.probe(["NAMES " + channel], ["366"], timeout)
        names = {}
        for line in lines:
            p = line.split(" ", 5)
            if len(p) > 5 and p[1] == "353" and p[4].lower() == channel.lower():
                for item in p[5].lstrip(":").split():
                    n = item.lstrip("~&@%+")
                    names[n] = item[:len(item) - len(n)]
        return names

    def wait_members(self, channel, nicks, timeout=10):
        """Waits until this server sees every nick of `nicks` in `channel`. A JOIN on one
        server reaches the others asynchronously: a client joining through another
        server right away may find the channel empty (and become its operator)."""
        want = {n.lower() for n in nicks}
        last = {}

        def seen():
            last["names"] = self.names(channel, timeout=5)
            return want <= {n.lower() for n in last["names"]}
        try:
            procs.wait_until(seen, timeout, "%s in %s on %s" % (sorted(want), channel, self.name),
                             interval=0.1)
        except HarnessError as e:
            raise HarnessError("%s (NAMES: %s)" % (e, last.get("names")))
        return last["names"]

    def wait_linked(self, other, timeout=30):
        """Waits (bounded) until the server link to `other` (an NgircdServer or a server
        name) is registered: LINKS on this server lists it and, when `other` is a running
        NgircdServer, LINKS on the other lists this one. Returns the seconds it took."""
        t0 = time.monotonic()
        others = [other] if isinstance(other, NgircdServer) else []
        name = other.name if isinstance(other, NgircdServer) else str(other)
        last = {}

        def up():
            if self.proc is not None:
                self.proc.check_alive()
            try:
                mine = self.links(timeout=5)
            except (HarnessError, OSError) as e:
                last[self.name] = str(e)
                return False
            last[self.name] = mine
            if name.lower() not in (n.lower() for n in mine):
                return False
            for o in others:
                if o.proc is None:
                    continue
                o.proc.check_alive()
                try:
                    theirs = o.links(timeout=5)
                except (HarnessError, OSError) as e:
                    last[o.name] = str(e)
                    return False
                last[o.name] = theirs
                if self.name.lower() not in (n.lower() for n in theirs):
                    return False
            return True
        try:
            procs.wait_until(up, timeout, "server link %s <-> %s" % (self.name, name),
                             interval=0.25)
        except HarnessError as e:
            raise HarnessError("%s (LINKS seen: %s; %s log: %s)" % (
                e, last, self.name, self.log_tail(4)))
        return time.monotonic() - t0

    def wait_unlinked(self, other_name, timeout=30):
        """Waits until LINKS on this server no longer lists `other_name`."""
        name = getattr(other_name, "name", other_name).lower()
        return procs.wait_until(
            lambda: name not in (n.lower() for n in self.links(timeout=5)), timeout,
            "%s to drop the link to %s" % (self.name, name), interval=0.25)

    # ---- logs ------------------------------------------------------------------------

    def log_offset(self):
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
        rx = re.compile(pattern)
        for line in self.log_text(since).splitlines():
            if rx.search(line):
                return line
        return None

    def wait_log(self, pattern, timeout=10, since=0):
        return procs.wait_until(lambda: self.log_contains(pattern, since), timeout,
                                "log line /%s/ in %s" % (pattern, self.log_path))

    def log_tail(self, lines=20):
        return procs.tail(self.log_path, lines)


def _nobody():
    return pwd.getpwnam(NOBODY)
