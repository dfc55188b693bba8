"""Lays a Portcullis run out the way an installed appliance is laid out.

In separated mode (the shipped setting, see <supervision> in
schemas/portcullis-config.xsd) each child of portcullisd runs as its own user
and portcullisd refuses to start unless each can read what it needs and
nothing it must not. `prepare(config)` plays the installer for a test run:

  - creates the three service users the config names, if missing (per test
    they are pc<N>-low / pc<N>-high / pc<N>-filter, N from PORTCULLIS_TEST_NET,
    so tests running side by side never share a uid: the side firewall is by
    uid); users this process created are removed by remove_created_users();
  - gives each side's TLS key and dialback secret to that side's edge user,
    the audit signing key and an existing archive directory to the filter user
    (mode 0600 / 0700);
  - routes each edge listener's loopback address with its side's server as the
    preferred source (`ip route replace local L/32 dev lo src S table local`):
    on one loopback every connection would otherwise come from 127.0.0.1,
    and the side firewall admits to each listener only its own side's hosts,
    as a real appliance's interfaces would deliver them; remove_routes() undoes
    it;
  - copies the schemas next to the config (the build tree may sit under a 0700
    home that the service users cannot enter) and returns that directory for
    --schema-dir.

A standalone FMUC node's config (root <node>) is laid out the same way: its
one service user (<supervision node-user>, per test pc<N>-nodea / pc<N>-nodeb,
test_users(nodes=True)), its TLS key and dialback secret given to that user,
its <server><listen> addresses routed like an edge's.

The run directory itself must be reachable by the service users: run_test puts
it under /tmp/portcullis-interop/.
"""

import os
import pwd
import shutil
import subprocess
import xml.etree.ElementTree as ET

from .procs import HarnessError

NS = "{urn:portcullis:config:1}"
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
RUN_ROOT = os.environ.get("PORTCULLIS_RUN_ROOT", "/tmp/portcullis-interop")
_created = []
_routes = []


def test_users(net=None, nodes=False):
    """The service users of this test: {'low': .., 'high': .., 'filter': ..}
    (the appliance's); with nodes=True also 'nodea' and 'nodeb' (the users of
    the standalone FMUC nodes A and B: pc<N>-nodea, pc<N>-nodeb)."""
    net = net or os.environ.get("PORTCULLIS_TEST_NET", "127.0.0")
    tag = net.split(".")[-1]
    users = {"low": "pc%s-low" % tag, "high": "pc%s-high" % tag, "filter": "pc%s-filter" % tag}
    if nodes:
        users.update({"nodea": "pc%s-nodea" % tag, "nodeb": "pc%s-nodeb" % tag})
    return users


def supervision_xml(users=None, mode="separated"):
    """A <supervision/> line for the harness's configs."""
    if mode != "separated":
        return '  <supervision mode="%s"/>' % mode
    u = users or test_users()
    return ('  <supervision mode="separated" low-edge-user="%s" high-edge-user="%s" filter-user="%s"/>'
            % (u["low"], u["high"], u["filter"]))


def ensure_user(name):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise HarnessError("separated mode needs root to create the service user %s" % name)
    r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--comment", "Portcullis test service user", name],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0 and "already exists" not in r.stderr:
        raise HarnessError("useradd %s failed: %s" % (name, r.stderr.strip()))
    if r.returncode == 0:
        _created.append(name)
    return pwd.getpwnam(name)


def remove_created_users():
    """Removes the service users this process created (at the end of a test)."""
    while _created:
        name = _created.pop()
        subprocess.run(["userdel", name], capture_output=True, timeout=30)


def node_supervision_xml(node_user, mode="separated", extra_attrs=""):
    """A <supervision/> line for a standalone node's config (<node>)."""
    if mode != "separated":
        return '  <supervision mode="%s"%s/>' % (mode, (" " + extra_attrs) if extra_attrs else "")
    return '  <supervision mode="separated" node-user="%s"%s/>' % (node_user, (" " + extra_attrs) if extra_attrs else "")


def _servers(root):
    """The S2S servers a config describes: an appliance's <side>s, or a node's <server>."""
    return root.findall(NS + "side") + root.findall(NS + "server")


def _route_sources(root):
    """(listen address, source) for each loopback listener: its first `from`
    address, else its side's (or node's) first peer host."""
    out = []
    for side in _servers(root):
        peers = [p.get("host") for p in side.findall(NS + "peer")]
        for listen in side.findall(NS + "listen"):
            addr = listen.get("address")
            given = [f for f in (listen.get("from") or "").split() if "/" not in f]
            src = (given or peers or [None])[0]
            if src and src != addr and addr.startswith("127.") and src.startswith("127."):
                out.append((addr, src))
    return out


def route_from(addr, src):
    """Connections to loopback `addr` get `src` as their source address."""
    r = subprocess.run(["ip", "route", "replace", "local", addr + "/32", "dev", "lo", "src", src, "table", "local"],
                       capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        raise HarnessError("cannot route %s from %s: %s" % (addr, src, r.stderr.strip()))
    if addr not in _routes:
        _routes.append(addr)


def remove_routes():
    """Removes the loopback routes this process added."""
    while _routes:
        addr = _routes.pop()
        subprocess.run(["ip", "route", "del", "local", addr + "/32", "dev", "lo", "table", "local"],
                       capture_output=True, timeout=10)


def _own(path, pw, mode):
    if path and os.path.exists(path):
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)


def _reachable(path):
    """Raises unless every directory above `path` is searchable by others."""
    d = os.path.dirname(os.path.realpath(path))
    while True:
        if not os.stat(d).st_mode & 0o001:
            raise HarnessError("%s is not reachable by the service users (%s has no search permission for "
                               "others): run it under %s" % (path, d, RUN_ROOT))
        if d == "/":
            return
        d = os.path.dirname(d)


def run_dir(name):
    """A fresh run directory for `name` under RUN_ROOT (mode 0755)."""
    os.makedirs(RUN_ROOT, exist_ok=True)
    os.chmod(RUN_ROOT, 0o755)
    d = os.path.join(RUN_ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.chmod(d, 0o755)
    return d


def prepare(config_path):
    """Prepares the files `config_path` names for its supervision mode; returns
    the schema directory to pass as --schema-dir."""
    config_path = os.path.abspath(config_path)
    base = os.path.dirname(config_path)
    schemas = os.path.join(base, "schemas")
    shutil.copytree(os.path.join(SOURCE, "schemas"), schemas, dirs_exist_ok=True)
    root = ET.parse(config_path).getroot()
    sup = root.find(NS + "supervision")
    mode = sup.get("mode", "separated") if sup is not None else "separated"
    if mode != "separated":
        return schemas
    if root.tag == NS + "node":
        return _prepare_node(config_path, root, sup, schemas)
    names = {"low": "portcullis-low", "high": "portcullis-high", "filter": "portcullis-filter"}
    if sup is not None:
        names = {"low": sup.get("low-edge-user", names["low"]), "high": sup.get("high-edge-user", names["high"]),
                 "filter": sup.get("filter-user", names["filter"])}
    users = {k: ensure_user(v) for k, v in names.items()}
    _reachable(config_path)
    for addr, src in _route_sources(root):
        route_from(addr, src)

    def resolve(p):
        return p if os.path.isabs(p) else os.path.join(base, p)

    for side in root.findall(NS + "side"):
        pw = users[side.get("name")]
        tls = side.find(NS + "tls")
        if tls is not None:
            _own(resolve(tls.get("key")), pw, 0o600)
            for dc in tls.findall(NS + "domain-certificate"):
                _own(resolve(dc.get("key")), pw, 0o600)
        db = side.find(NS + "dialback")
        if db is not None:
            _own(resolve(db.get("secret-file")), pw, 0o600)
    audit = root.find(NS + "audit")
    if audit is not None:
        _own(resolve(audit.get("signing-key")), users["filter"], 0o600)
        archive = resolve(audit.get("dir"))
        if os.path.isdir(archive):
            _own(archive, users["filter"], 0o700)
    # Secrets the policy names (the pseudonym key): root's, readable by the
    # filter user's group only (the filter must read it and may not change it).
    pol = root.find(NS + "policy")
    if pol is not None and os.path.exists(resolve(pol.get("file"))):
        policy_path = resolve(pol.get("file"))
        for el in ET.parse(policy_path).getroot().iter():
            key = el.get("key-file")
            if key:
                kp = key if os.path.isabs(key) else os.path.join(os.path.dirname(policy_path), key)
                if os.path.exists(kp):
                    os.chown(kp, 0, users["filter"].pw_gid)
                    os.chmod(kp, 0o640)
    return schemas


def _prepare_node(config_path, root, sup, schemas):
    """prepare() for a standalone FMUC node in separated mode: its user, its
    secrets given to that user, its listeners' loopback routes."""
    base = os.path.dirname(config_path)
    name = sup.get("node-user", "portcullis-node") if sup is not None else "portcullis-node"
    pw = ensure_user(name)
    _reachable(config_path)
    for addr, src in _route_sources(root):
        route_from(addr, src)

    def resolve(p):
        return p if os.path.isabs(p) else os.path.join(base, p)

    server = root.find(NS + "server")
    if server is not None:
        tls = server.find(NS + "tls")
        if tls is not None:
            _own(resolve(tls.get("key")), pw, 0o600)
        db = server.find(NS + "dialback")
        if db is not None:
            _own(resolve(db.get("secret-file")), pw, 0o600)
    return schemas
