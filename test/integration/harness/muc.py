"""Room helpers for the federated-room (FMUC) interop tests: who a client sees in
a room, bounded waits for occupants to come and go, exactly-once delivery, and
the FMUC decisions of an audit archive.

    wait_occupant(bob, "ops@rooms.site-b.test", "alice", timeout=30)
    expect_once([(bob, room_b), (carol, room_low)], "alice", "hello", timeout=15)
"""

import re
import time

from . import auditing, procs
from .testing import check

FMUC_NS = "http://isode.com/protocol/fmuc"


def occupants(session, room, since=0):
    """Nicks the session currently sees available in `room` (from its presence
    log; with `since`, only from the presences after the first `since` ones,
    e.g. after a rejoin: len(session.presences()) before it)."""
    seen = {}
    for p in session.presences()[since:]:
        if p["from"].startswith(room + "/"):
            seen[p["from"].split("/", 1)[1]] = p["type"] not in ("unavailable", "error")
    return {n for n, here in seen.items() if here}


def wait_occupant(session, room, nick, timeout=20, since=0):
    wait_occupants(session, room, [nick], timeout, since)


def wait_occupants(session, room, nicks, timeout=20, since=0):
    """Waits until `session` sees every nick of `nicks` in `room` (see occupants())."""
    want = set(nicks)
    try:
        procs.wait_until(lambda: want <= occupants(session, room, since), timeout, "occupants")
    except procs.HarnessError:
        raise procs.HarnessError("%s: did not see %s in %s within %.0f s (sees %s)" % (
            session.jid, sorted(want - occupants(session, room, since)), room, timeout,
            sorted(occupants(session, room, since)))) from None


def wait_gone(session, room, nick, timeout=20):
    procs.wait_until(lambda: nick not in occupants(session, room), timeout,
                     "%s to see %s leave %s" % (session.jid, nick, room))


def expect_once(receivers, nick, body, timeout=15, settle=2.0):
    """Each (session, room) of `receivers` gets groupchat `body` from `nick` in
    its room within `timeout`, and no second copy within `settle` seconds after
    the last one arrived. Returns the records, in the order of `receivers`."""
    got = [s.expect_groupchat(room, nick, body, timeout=timeout) for s, room in receivers]
    time.sleep(settle)
    for s, room in receivers:
        dup = [m for m in s.messages() if m["body"] == body]
        check(not dup, "exactly once: %s got %r (from %s) %d more time(s)" % (s.jid, body, nick, len(dup)))
    return got


def fmuc_decisions(build_dir, archive):
    """The decision records of `archive` whose original stanza is FMUC traffic."""
    recs = auditing.export_json(build_dir, archive)
    return [r for r in auditing.decisions(recs) if FMUC_NS in (r.get("original") or "")]


def names_any(text, jids):
    """The first of `jids` (bare JIDs) that `text` names (case-insensitive), or None."""
    for j in jids:
        if re.search(r"(?<![A-Za-z0-9._-])" + re.escape(j) + r"(?![A-Za-z0-9.-])", text or "", re.I):
            return j
    return None


def rule_of(record):
    """(filter, rule) of the filter whose verdict decided a rejected decision, or None."""
    for f in record["record"].get("filters", []):
        if f.get("verdict") == "reject":
            return f.get("filter"), f.get("rule")
    return None
