"""Topologies: the two Prosody servers federating DIRECT, or THROUGH Portcullis.

                 direct                              portcullis
  a.test sees    b.test -> 127.0.0.3 (b.test)        b.test -> 127.0.0.4 (edge low)
  b.test sees    a.test -> 127.0.0.2 (a.test)        a.test -> 127.0.0.6 (edge high)
  a.test trusts  ca-high (b.test's cert)             ca-low  (guard-low's cert)
  b.test trusts  ca-low  (a.test's cert)             ca-high (guard-high's cert)

`Federation` starts the whole thing (PKI, both servers, Portcullis if asked) and
stops it again, whatever happens.

Standalone FMUC nodes (portcullisd on a <node> config, issue 8): node A
(rooms.site-a.test, 127.0.0.8) on the low side, node B (rooms.site-b.test,
127.0.0.9) on the high side; a.test resolves rooms.site-a.test to node A and
b.test rooms.site-b.test to node B. node_config_text / write_node_config make
their configs, start_node / StandaloneNode run them.
"""

import os
import subprocess

from . import appliance, procs
from .addresses import (A_DOMAIN, A_IP, A_MUC, A_ROOMS, B_DOMAIN, B_IP, B_MUC, B_ROOMS,
                        EDGE_HIGH_IP, EDGE_LOW_IP, NODE_A_IP, NODE_A_ROOMS, NODE_B_IP, NODE_B_ROOMS,
                        S2S_PORT)
from .clients import Session
from .pki import bundle, make_pki
from .procs import HarnessError
from .prosody import ProsodyServer

DEFAULT_USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}


class Topology:
    """Which address each server dials for the other side, and which CAs it trusts."""

    def __init__(self, name):
        if name not in ("direct", "portcullis"):
            raise ValueError("topology must be 'direct' or 'portcullis'")
        self.name = name

    def peer_map(self, domain, extra=None):
        """{remote domain: ip} for the hosts file of `domain`'s server: the far
        server (or the edge fronting it), this side's guard-hosted room service,
        and this side's standalone FMUC node (rooms.site-a.test -> node A for
        a.test, rooms.site-b.test -> node B for b.test); `extra` ({domain: ip})
        adds or replaces entries (e.g. the far node's rooms through the edge)."""
        if domain == A_DOMAIN:
            ip = B_IP if self.name == "direct" else EDGE_LOW_IP
            out = {B_DOMAIN: ip, B_MUC: ip, A_ROOMS: EDGE_LOW_IP, NODE_A_ROOMS: NODE_A_IP}
        elif domain == B_DOMAIN:
            ip = A_IP if self.name == "direct" else EDGE_HIGH_IP
            out = {A_DOMAIN: ip, A_MUC: ip, B_ROOMS: EDGE_HIGH_IP, NODE_B_ROOMS: NODE_B_IP}
        else:
            raise ValueError("unknown domain " + domain)
        out.update(extra or {})
        return out

    def trust(self, domain, pki_dir):
        """CA files the server for `domain` must trust for its s2s peer."""
        if domain == A_DOMAIN:
            ca = "ca-high.pem" if self.name == "direct" else "ca-low.pem"
        elif domain == B_DOMAIN:
            ca = "ca-low.pem" if self.name == "direct" else "ca-high.pem"
        else:
            raise ValueError("unknown domain " + domain)
        return [os.path.join(pki_dir, ca)]


# ---- Portcullis ------------------------------------------------------------------------

def portcullis_binary(build_dir):
    return os.path.join(os.path.abspath(build_dir), "guard", "portcullisd")


def portcullis_available(build_dir):
    return os.access(portcullis_binary(build_dir), os.X_OK)


def audit_tool(build_dir):
    return os.path.join(os.path.abspath(build_dir), "tools", "audit", "portcullis-audit")


def ensure_audit_keys(build_dir, config_dir):
    """Creates the audit signing key pair <config_dir>/keys/audit.{key,pub} with
    `portcullis-audit keygen` unless it exists; returns the public key path."""
    keys = os.path.join(os.path.abspath(config_dir), "keys")
    secret, public = os.path.join(keys, "audit.key"), os.path.join(keys, "audit.pub")
    if os.path.exists(secret) and os.path.exists(public):
        return public
    os.makedirs(keys, exist_ok=True)
    r = subprocess.run([audit_tool(build_dir), "keygen", "--secret", secret, "--public", public],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise HarnessError("portcullis-audit keygen failed: %s" % (r.stderr or r.stdout).strip())
    return public


def start_portcullis(build_dir, config_path, log_path=None, timeout=20, command=None):
    """Starts `<build>/guard/portcullisd --config FILE --foreground`, output to
    `log_path` (default: next to the config), and waits (bounded) until both edges
    accept: 127.0.0.4:5269 (low) and 127.0.0.6:5269 (high). Returns the
    ManagedProcess (stop() it, or let the runner's cleanup do it).

    command: optional callable(binary, config_path, schema_dir) -> argv that
    replaces that command line (e.g. to start it the way the systemd unit does);
    its process must end up being portcullisd itself (exec, not fork)."""
    binary = portcullis_binary(build_dir)
    if not os.access(binary, os.X_OK):
        raise HarnessError("portcullisd not built: %s" % binary)
    for ip in (EDGE_LOW_IP, EDGE_HIGH_IP):
        procs.ensure_port_free(ip, S2S_PORT)
    config_path = os.path.abspath(config_path)
    ensure_audit_keys(build_dir, os.path.dirname(config_path))
    # Owners and modes as an installed appliance has them (separated mode).
    schema_dir = appliance.prepare(config_path)
    log_path = log_path or os.path.join(os.path.dirname(config_path), "portcullisd.log")
    argv = ([binary, "--config", config_path, "--schema-dir", schema_dir, "--foreground"] if command is None
            else command(binary, config_path, schema_dir))
    proc = procs.ManagedProcess("portcullisd", argv, log_path, cwd=os.path.dirname(config_path))
    procs.wait_port(EDGE_LOW_IP, S2S_PORT, timeout, proc)
    procs.wait_port(EDGE_HIGH_IP, S2S_PORT, timeout, proc)
    return proc


# Default allowed pairs: everything between the two domains and their MUC components.
DEFAULT_ALLOWED = {
    ("low", "high"): [(A_DOMAIN, B_DOMAIN), (A_DOMAIN, "*." + B_DOMAIN),
                      ("*." + A_DOMAIN, B_DOMAIN), ("*." + A_DOMAIN, "*." + B_DOMAIN)],
    ("high", "low"): [(B_DOMAIN, A_DOMAIN), (B_DOMAIN, "*." + A_DOMAIN),
                      ("*." + B_DOMAIN, A_DOMAIN), ("*." + B_DOMAIN, "*." + A_DOMAIN)],
}


def portcullis_config_text(pki_dir, mode, allowed, run_dir, policy_file="policy.xml",
                           audit_xml=None, guards_xml=None, supervision_xml=None, rooms_xml=None,
                           extra_peers=None, extra_fronts=None, peer_attrs=None):
    """The text of a Portcullis config for the test topology.

    pki_dir: test PKI (guard-low/guard-high certs, ca-low/ca-high);
    mode:    'cert' (SASL EXTERNAL toward the peers) or 'dialback';
    allowed: {(from_side, to_side): [(from_domain, to_domain), ...]}: the
             domain pairs go into the policy file (portcullis_policy_text),
             not into this text; kept in the signature for callers;
    run_dir: the run's directory (for anything the daemon writes, e.g. audit);
    policy_file: the <policy file=.../> path (relative: to the config's directory);
    audit_xml: replaces the default <audit .../> element (text, one or more lines);
    guards_xml: a <guards>...</guards> element placed after <audit> (default: none,
             with the waivers that lets both directions start without a guard stage);
    supervision_xml: the <supervision/> line (default: separated mode with this
             test's service users, appliance.supervision_xml()).
    rooms_xml: {"low": text, "high": text}: <rooms> elements placed at the end of
             that side (hosted MUC services; see fmuc_rooms_xml()).
    extra_peers: {"low": [(domain, ip), ...], "high": [...]}: peers added after
             that side's default ones (a.test / b.test and their MUC), e.g. a
             standalone FMUC node: ("rooms.site-a.test", NODE_A_IP) on low;
    extra_fronts: {"low": [domain, ...], "high": [...]}: domains that side fronts
             besides the far server's (FMUC pass-through: low fronts the far
             node's rooms.site-b.test, which high must then route to).
    peer_attrs: {"low": {domain: 'attr="value" ...'}, ...}: extra attributes of
             that side's <peer> row for domain (e.g. kinds="message presence").
    """
    # This is the only place the harness knows the appliance config format
    # (schemas/portcullis-config.xsd), as portcullis_policy_text knows the policy's:
    # when the format grows, update it here.
    auth = "sasl-external" if mode == "cert" else "dialback"
    pki = os.path.abspath(pki_dir)

    def side(name, listen_ip, fronts, cert, ca, peers):
        rooms = (rooms_xml or {}).get(name)
        lines = ['  <side name="%s">' % name,
                 '    <listen address="%s" port="%d"/>' % (listen_ip, S2S_PORT)]
        lines += ['    <fronts domain="%s"/>' % d for d in fronts]
        lines.append('    <tls certificate="%s/%s.pem" key="%s/%s.key" ca="%s/%s"/>'
                     % (pki, cert, pki, cert, pki, ca))
        if mode == "dialback":
            lines.append('    <dialback secret-file="%s"/>' % _dialback_secret(run_dir, name))
        attrs = (peer_attrs or {}).get(name, {})
        lines += ['    <peer domain="%s" host="%s" port="%d" auth="%s" tls="required"%s/>'
                  % (d, ip, S2S_PORT, auth, (" " + attrs[d]) if d in attrs else "") for d, ip in peers]
        if rooms:
            lines.append(rooms)
        lines.append("  </side>")
        return lines

    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<!-- generated by test/integration/harness/topology.py for run %s -->" % run_dir,
           '<portcullis xmlns="urn:portcullis:config:1">',
           '  <logging target="stderr" level="debug"/>',
           supervision_xml if supervision_xml is not None else appliance.supervision_xml()]
    xp, xf = extra_peers or {}, extra_fronts or {}
    out += side("low", EDGE_LOW_IP, [B_DOMAIN, B_MUC] + list(xf.get("low", [])), "guard-low", "ca-low.pem",
                [(A_DOMAIN, A_IP), (A_MUC, A_IP)] + list(xp.get("low", [])))
    out += side("high", EDGE_HIGH_IP, [A_DOMAIN, A_MUC] + list(xf.get("high", [])), "guard-high", "ca-high.pem",
                [(B_DOMAIN, B_IP), (B_MUC, B_IP)] + list(xp.get("high", [])))
    out.append('  <policy file="%s"/>' % policy_file)
    # The audit archive: keys made by ensure_audit_keys() next to the config.
    out.append(audit_xml if audit_xml is not None else
               '  <audit dir="audit" signing-key="keys/audit.key" public-key="keys/audit.pub"/>')
    if guards_xml is not None:
        out.append(guards_xml)
    else:
        # Fail closed at start: a direction without a guard stage needs a waiver.
        out.append('  <waivers>')
        for d in ("low-to-high", "high-to-low"):
            out.append('    <waiver of="no-guard-stage" direction="%s" reason="interop test of the policy '
                       'pipeline alone (harness default)"/>' % d)
        out.append('  </waivers>')
    out.append("</portcullis>")
    return "\n".join(out) + "\n"


def portcullis_policy_text(allowed, version="harness-1"):
    """The text of the security policy file for the test topology.

    allowed: {(from_side, to_side): [(from_domain, to_domain), ...]}. Each
    direction gets <size-limit max-bytes="65536"/> first, then one
    <domain-pair-allow> with a rule per pair (ids "<from>-<to>-<n>"). A
    direction missing from `allowed` has no filters and so denies everything.
    """
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<!-- generated by test/integration/harness/topology.py -->",
           '<policy xmlns="urn:portcullis:policy:1" version="%s">' % version]
    for frm, to in (("low", "high"), ("high", "low")):
        out.append('  <direction from="%s" to="%s">' % (frm, to))
        if (frm, to) in allowed:
            out.append('    <size-limit name="size-limit" max-bytes="65536"/>')
            out.append('    <domain-pair-allow name="domain-pair-allow">')
            for i, (a, b) in enumerate(allowed[(frm, to)], 1):
                out.append('      <allow id="%s-%s-%d" from="%s" to="%s"/>' % (frm, to, i, a, b))
            out.append("    </domain-pair-allow>")
        out.append("  </direction>")
    out.append("</policy>")
    return "\n".join(out) + "\n"


def _dialback_secret(run_dir, side):
    """A fresh dialback secret file (32 random bytes as hex, mode 0600) for `side`."""
    path = os.path.join(os.path.abspath(run_dir), "dialback-%s.secret" % side)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def fmuc_rooms_xml(rooms=("ops",), ping_ms=2000, retry_ms=1000, history=50, accept=None, children=None):
    """{"low": .., "high": ..}: rooms.low.test and rooms.high.test, each room
    `name` of the low service federating with its twin of the same name on the
    high service (low joins, high accepts).
    accept: {"low": {room: [bare JID, ...]}, "high": {...}}: further downstream
    rooms each room accepts (e.g. a standalone FMUC node's twin).
    children: {"low": {room: xml}, ...}: more of a room's config (e.g. its <irc/> link)."""
    def svc(side, domain, other, upstream):
        out = ['    <rooms domain="%s" ping-interval-ms="%d" retry-ms="%d">' % (domain, ping_ms, retry_ms)]
        for r in rooms:
            out.append('      <room name="%s" subject="%s subject" history="%d">' % (r, r, history))
            if upstream:
                out.append('        <federate with="%s@%s"/>' % (r, other))
            else:
                out.append('        <accept from="%s@%s"/>' % (r, other))
            for jid in ((accept or {}).get(side) or {}).get(r, []):
                out.append('        <accept from="%s"/>' % jid)
            more = ((children or {}).get(side) or {}).get(r)
            if more:
                out.append('        ' + more)
            out.append('      </room>')
        out.append('    </rooms>')
        return "\n".join(out)
    return {"low": svc("low", A_ROOMS, B_ROOMS, True), "high": svc("high", B_ROOMS, A_ROOMS, False)}


def fmuc_policy_text(rooms=("ops",), allowed=None, pseudonym_key="pseudonym.key", extra=None, version="harness-fmuc-1",
                     room_domains=None):
    """A policy for federated rooms: per direction size-limit, fmuc-pseudonyms
    (domain anon.boundary.test, key file `pseudonym_key` next to the policy),
    presence-scrub keeping the MUC and FMUC elements, `extra` (text placed
    before room-federation, per direction: {(from, to): text}), room-federation
    allowing each room's pair, then the domain pairs of `allowed`.
    room_domains: (low service, high service) whose rooms of the same name
    federate (default: the guard's own rooms.low.test, rooms.high.test; FMUC
    pass-through: the nodes' rooms.site-a.test, rooms.site-b.test)."""
    allowed = allowed or DEFAULT_ALLOWED
    low_svc, high_svc = room_domains or (A_ROOMS, B_ROOMS)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<!-- generated by test/integration/harness/topology.py (fmuc) -->",
           '<policy xmlns="urn:portcullis:policy:1" version="%s">' % version]
    for frm, to in (("low", "high"), ("high", "low")):
        src, dst = (low_svc, high_svc) if frm == "low" else (high_svc, low_svc)
        out.append('  <direction from="%s" to="%s">' % (frm, to))
        out.append('    <size-limit name="size-limit" max-bytes="65536"/>')
        out.append('    <fmuc-pseudonyms name="pseudonyms" domain="anon.boundary.test" key-file="%s"/>' % pseudonym_key)
        out.append('    <presence-scrub name="scrub"><scrub id="presence-room">'
                   '<keep ns="http://jabber.org/protocol/muc" element="x"/>'
                   '<keep ns="http://jabber.org/protocol/muc#user" element="x"/>'
                   '<keep ns="http://isode.com/protocol/fmuc" element="fmuc"/>'
                   '</scrub></presence-scrub>')
        if extra and (frm, to) in extra:
            out.append(extra[(frm, to)])
        out.append('    <room-federation name="rooms">')
        for r in rooms:
            out.append('      <allow id="%s-%s-%s" from="%s@%s" to="%s@%s"/>' % (r, frm, to, r, src, r, dst))
        out.append('    </room-federation>')
        out.append('    <domain-pair-allow name="domain-pair-allow">')
        for i, (a, b) in enumerate(allowed.get((frm, to), []), 1):
            out.append('      <allow id="%s-%s-%d" from="%s" to="%s"/>' % (frm, to, i, a, b))
        out.append("    </domain-pair-allow>")
        out.append("  </direction>")
    out.append("</policy>")
    return "\n".join(out) + "\n"


def write_pseudonym_key(config_dir, name="pseudonym.key"):
    """A fresh pseudonym key (32 random bytes as hex, mode 0600) next to the config."""
    path = os.path.join(os.path.abspath(config_dir), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def write_portcullis_config(path, pki_dir, mode="cert", allowed=None, run_dir=None,
                            policy_text=None, audit_xml=None, guards_xml=None, supervision_xml=None,
                            rooms_xml=None, extra_peers=None, extra_fronts=None, peer_attrs=None):
    """Writes the Portcullis config for the test topology to `path`, and its
    policy file next to it (policy.xml: `policy_text` if given, else
    portcullis_policy_text(allowed)); returns path. Files a ready-made policy
    names by relative path (SPIFs, word lists) resolve against that directory."""
    allowed = allowed or DEFAULT_ALLOWED
    policy_path = os.path.join(os.path.dirname(os.path.abspath(path)), "policy.xml")
    with open(policy_path, "w") as f:
        f.write(policy_text if policy_text is not None else portcullis_policy_text(allowed))
    text = portcullis_config_text(pki_dir, mode, allowed,
                                  run_dir or os.path.dirname(os.path.abspath(path)),
                                  policy_file=policy_path, audit_xml=audit_xml,
                                  guards_xml=guards_xml, supervision_xml=supervision_xml,
                                  rooms_xml=rooms_xml, extra_peers=extra_peers, extra_fronts=extra_fronts,
                                  peer_attrs=peer_attrs)
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- standalone FMUC nodes ------------------------------------------------------------

def node_rooms_xml(domain, rooms, ping_ms=2000, retry_ms=1000, history=50):
    """A <rooms> element for a node's service `domain`. rooms: {name: {"federate":
    bare JID or None, "accept": [bare JID, ...], "subject": text}} (in order)."""
    out = ['    <rooms domain="%s" ping-interval-ms="%d" retry-ms="%d">' % (domain, ping_ms, retry_ms)]
    for name, r in rooms.items():
        out.append('      <room name="%s" subject="%s" history="%d">'
                   % (name, r.get("subject", name + " subject"), r.get("history", history)))
        if r.get("federate"):
            out.append('        <federate with="%s"/>' % r["federate"])
        for jid in r.get("accept", []):
            out.append('        <accept from="%s"/>' % jid)
        out.append('      </room>')
    out.append('    </rooms>')
    return "\n".join(out)


def node_config_text(pki_dir, name, listen_ip, peers, rooms_xml, mode="cert", node_user=None,
                     supervision_xml=None, listen_from=None, run_dir=None, log_level="debug", ca=None):
    """The text of a standalone FMUC node's config (root <node>, the same
    namespace as the appliance's; schemas/portcullis-config.xsd).

    pki_dir: test PKI; name: the node's certificate ("node-a" / "node-b": its
             cert and key in pki_dir);
    ca:      the CA file (in pki_dir, or absolute) its peers' certificates are
             checked against (default: its side's, ca-low.pem for node-a,
             ca-high.pem for node-b: the CA of its side's server and of the
             guard's edge facing that side);
    listen_ip: its S2S listener (port 5269);
    peers:   [(domain, ip), ...]: its peering table (the first peer's host is
             the source of connections to the listener, appliance.prepare);
    rooms_xml: one or more <rooms> elements (node_rooms_xml());
    mode:    'cert' (SASL EXTERNAL) or 'dialback' (with a fresh secret in run_dir);
    node_user / supervision_xml: the <supervision/> line (default: separated
             mode as node_user, appliance.node_supervision_xml());
    listen_from: the listener's `from` attribute (default: none, its peers' hosts).
    """
    # With portcullis_config_text, the only place the harness knows the config format.
    auth = "sasl-external" if mode == "cert" else "dialback"
    pki = os.path.abspath(pki_dir)
    ca = os.path.join(pki, ca or {"node-a": "ca-low.pem", "node-b": "ca-high.pem"}[name])
    if supervision_xml is None:
        if node_user is None:
            raise ValueError("node_config_text needs node_user or supervision_xml")
        supervision_xml = appliance.node_supervision_xml(node_user)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<!-- generated by test/integration/harness/topology.py (standalone FMUC node %s) -->" % name,
           '<node xmlns="urn:portcullis:config:1">',
           '  <logging target="stderr" level="%s"/>' % log_level,
           supervision_xml,
           '  <server>',
           '    <listen address="%s" port="%d"%s/>' % (listen_ip, S2S_PORT,
                                                        ' from="%s"' % listen_from if listen_from else ""),
           '    <tls certificate="%s/%s.pem" key="%s/%s.key" ca="%s"/>' % (pki, name, pki, name, ca)]
    if mode == "dialback":
        out.append('    <dialback secret-file="%s"/>' % _dialback_secret(run_dir, name))
    out += ['    <peer domain="%s" host="%s" port="%d" auth="%s" tls="required"/>' % (d, ip, S2S_PORT, auth)
            for d, ip in peers]
    out.append(rooms_xml)
    out += ['  </server>', '</node>']
    return "\n".join(out) + "\n"


def write_node_config(path, pki_dir, name, listen_ip, peers, rooms_xml, **kw):
    """Writes node_config_text(...) to `path` (its directory: one per node, the
    schemas are copied next to it); returns path."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    kw.setdefault("run_dir", os.path.dirname(path))
    with open(path, "w") as f:
        f.write(node_config_text(pki_dir, name, listen_ip, peers, rooms_xml, **kw))
    return path


def check_config(build_dir, config_path, timeout=30):
    """`portcullisd --check-config FILE --schema-dir DIR` on a config laid out by
    appliance.prepare (users, owners, schemas next to it): (exit status, stdout,
    stderr)."""
    binary = portcullis_binary(build_dir)
    schema_dir = appliance.prepare(config_path)
    try:
        r = subprocess.run([binary, "--check-config", os.path.abspath(config_path), "--schema-dir", schema_dir],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise HarnessError("portcullisd --check-config %s did not finish within %d s" % (config_path, timeout)) from None
    return r.returncode, r.stdout, r.stderr


def start_node(build_dir, config_path, listen_ip, log_path=None, timeout=20, port=S2S_PORT):
    """Starts `portcullisd --config NODE.xml --schema-dir DIR --foreground` (a
    standalone FMUC node), output to `log_path` (default: portcullisd.log next
    to the config), after appliance.prepare (its user, key owner, routes,
    schemas), and waits (bounded) until listen_ip:port accepts. Returns the
    ManagedProcess (stop() it, or let the runner's cleanup do it)."""
    binary = portcullis_binary(build_dir)
    if not os.access(binary, os.X_OK):
        raise HarnessError("portcullisd not built: %s" % binary)
    procs.ensure_port_free(listen_ip, port)
    config_path = os.path.abspath(config_path)
    schema_dir = appliance.prepare(config_path)
    log_path = log_path or os.path.join(os.path.dirname(config_path), "portcullisd.log")
    proc = procs.ManagedProcess("portcullisd node %s" % os.path.basename(os.path.dirname(config_path)),
                                [binary, "--config", config_path, "--schema-dir", schema_dir, "--foreground"],
                                log_path, cwd=os.path.dirname(config_path))
    try:
        procs.wait_port(listen_ip, port, timeout, proc)
    except BaseException:
        proc.stop()
        raise
    return proc


class StandaloneNode:
    """A standalone FMUC node run by the harness: start() / stop() / restart(),
    or a `with` block; stopped whatever happens (procs.ManagedProcess)."""

    def __init__(self, build_dir, config_path, listen_ip):
        self.build_dir = build_dir
        self.config_path = os.path.abspath(config_path)
        self.listen_ip = listen_ip
        self.log_path = os.path.join(os.path.dirname(self.config_path), "portcullisd.log")
        self.proc = None

    def start(self, timeout=20):
        if self.proc is None:
            self.proc = start_node(self.build_dir, self.config_path, self.listen_ip, self.log_path, timeout)
        return self

    def stop(self):
        """SIGTERM portcullisd (it stops the node and removes its firewall table). Idempotent."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart(self, timeout=20):
        self.stop()
        return self.start(timeout)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- the whole federation ------------------------------------------------------------

class Federation:
    """a.test and b.test (and Portcullis between them for topology='portcullis').

        with Federation(run_dir, topology="direct", mode="cert") as fed:
            with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
                alice.send(fed.jid("b", "bob"), "hi")
                bob.expect_message(fed.jid("a", "alice"), "hi")

    a_cert/a_key override a.test's certificate (e.g. the rogue one); users are
    created on both servers; portcullis_config is a path (default: generated);
    policy_text is the text of the generated config's policy.xml (default:
    portcullis_policy_text(allowed)), written into run_dir; audit_xml and
    guards_xml go to portcullis_config_text (default: the standard <audit/>, no
    guards); portcullis_command goes to start_portcullis (default: the plain
    command line); portcullis_start, a callable(config path) -> ManagedProcess,
    replaces start_portcullis altogether (e.g. an installed portcullisd on an
    installed layout, which the build tree's preparation must not touch); it
    returns once both edges listen. extra_peers / extra_fronts ({"low": [...], "high": [...]})
    go to portcullis_config_text (peers and fronted domains added to a side,
    e.g. for standalone FMUC nodes); prosody_opts ({"a": {...}, "b": {...}}) are
    extra ProsodyServer arguments per server (smacks=True, extra_config=...); extra_hosts ({"a": {domain: ip}, "b":
    {...}}) adds entries to a server's private hosts file (Topology.peer_map).
    """

    def __init__(self, run_dir, topology="direct", mode="cert", build_dir=None,
                 users=None, a_cert=None, a_key=None, allowed=None,
                 portcullis_config=None, pki_dir=None, log_level="debug", policy_text=None,
                 audit_xml=None, guards_xml=None, portcullis_command=None, rooms_xml=None,
                 supervision_attrs=None, extra_peers=None, extra_fronts=None, extra_hosts=None,
                 portcullis_start=None, control_xml=None, peer_attrs=None, prosody_opts=None):
        self.portcullis_command = portcullis_command
        self.control_xml = control_xml
        self.portcullis_start = portcullis_start
        self.supervision_attrs = supervision_attrs
        self.rooms_xml = rooms_xml
        self.extra_peers, self.extra_fronts = extra_peers, extra_fronts
        self.peer_attrs = peer_attrs
        self.prosody_opts = dict(prosody_opts or {})
        self.extra_hosts = dict(extra_hosts or {})
        self.run_dir = os.path.abspath(run_dir)
        self.topology = Topology(topology)
        self.mode = mode
        self.build_dir = build_dir
        self.users = dict(users or DEFAULT_USERS)
        self.pki_dir = pki_dir or os.path.join(self.run_dir, "pki")
        self.a_cert, self.a_key = a_cert, a_key
        self.allowed = allowed
        self.portcullis_config = portcullis_config
        self.policy_text = policy_text
        self.audit_xml, self.guards_xml = audit_xml, guards_xml
        self.log_level = log_level
        self.a = self.b = self.portcullis = None
        self.ca_all = os.path.join(self.run_dir, "clients-ca.pem")

    def start(self):
        os.makedirs(self.run_dir, exist_ok=True)
        make_pki(self.pki_dir)
        # Clients verify their own server's c2s certificate (possibly the rogue one).
        bundle(self.ca_all, [os.path.join(self.pki_dir, c)
                             for c in ("ca-low.pem", "ca-high.pem", "ca-rogue.pem")])
        t = self.topology
        try:
            if t.name == "portcullis":
                if self.build_dir is None and self.portcullis_start is None:
                    raise HarnessError("topology 'portcullis' needs build_dir")
                cfg = self.portcullis_config or write_portcullis_config(
                    os.path.join(self.run_dir, "portcullis.xml"), self.pki_dir, self.mode,
                    self.allowed, self.run_dir, policy_text=self.policy_text,
                    audit_xml=self.audit_xml, guards_xml=self.guards_xml, rooms_xml=self.rooms_xml,
                    extra_peers=self.extra_peers, extra_fronts=self.extra_fronts,
                    peer_attrs=self.peer_attrs)
                if not self.portcullis_config and self.supervision_attrs:
                    # Extra <supervision> attributes (e.g. a slower restart, to hold an outage open).
                    with open(cfg) as f:
                        text = f.read().replace("<supervision ", "<supervision %s " % self.supervision_attrs, 1)
                    with open(cfg, "w") as f:
                        f.write(text)
                if not self.portcullis_config and self.control_xml:
                    # A <control/> element (the control socket), after <supervision> as the schema orders.
                    with open(cfg) as f:
                        lines = f.read().split("\n")
                    at = next(i for i, l in enumerate(lines) if l.lstrip().startswith("<supervision"))
                    while not lines[at].rstrip().endswith("/>"):
                        at += 1
                    lines.insert(at + 1, self.control_xml)
                    with open(cfg, "w") as f:
                        f.write("\n".join(lines))
                if not self.portcullis_config and self.log_level != "debug":
                    # Portcullis logs at the federation's level too (the benchmark uses info).
                    with open(cfg) as f:
                        text = f.read().replace('level="debug"', 'level="%s"' % (
                            "warning" if self.log_level == "warn" else self.log_level))
                    with open(cfg, "w") as f:
                        f.write(text)
                self.portcullis = (self.portcullis_start(cfg) if self.portcullis_start is not None else
                                   start_portcullis(self.build_dir, cfg, command=self.portcullis_command))
            self.a = ProsodyServer(A_DOMAIN, A_IP, self.run_dir, self.pki_dir, self.mode,
                                   t.peer_map(A_DOMAIN, self._hosts("a")), trust=t.trust(A_DOMAIN, self.pki_dir),
                                   cert=self.a_cert, key=self.a_key, users=self.users,
                                   log_level=self.log_level, **self.prosody_opts.get("a", {})).start()
            self.b = ProsodyServer(B_DOMAIN, B_IP, self.run_dir, self.pki_dir, self.mode,
                                   t.peer_map(B_DOMAIN, self._hosts("b")), trust=t.trust(B_DOMAIN, self.pki_dir),
                                   users=self.users, log_level=self.log_level,
                                   **self.prosody_opts.get("b", {})).start()
        except BaseException:
            self.stop()
            raise
        return self

    def _hosts(self, side):
        """extra_hosts for `side`'s server ("a"/"low"/"a.test" or "b"/"high"/"b.test")."""
        names = ("a", "low", A_DOMAIN) if side == "a" else ("b", "high", B_DOMAIN)
        out = {}
        for n in names:
            out.update(self.extra_hosts.get(n) or {})
        return out

    def stop(self):
        for s in (self.a, self.b):
            if s is not None:
                s.stop()
        if self.portcullis is not None:
            self.portcullis.stop()
            self.portcullis = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def server(self, side):
        """'a'/'low'/'a.test' -> a.test's ProsodyServer; 'b'/'high'/'b.test' -> b.test's."""
        if side in ("a", "low", A_DOMAIN):
            return self.a
        if side in ("b", "high", B_DOMAIN):
            return self.b
        raise ValueError("unknown side " + side)

    def jid(self, side, user):
        return "%s@%s" % (user, self.server(side).domain)

    def room(self, side, name="room"):
        return "%s@%s" % (name, self.server(side).muc_domain)

    def session(self, side, user, timeout=15):
        """An unstarted Session for user@<side's domain> (use it in a `with`)."""
        srv = self.server(side)
        return Session(self.jid(side, user), self.users[user], srv.ip, ca_file=self.ca_all,
                       timeout=timeout)
