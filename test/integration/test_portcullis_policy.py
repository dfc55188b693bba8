#!/usr/bin/python3
"""Label and content filters with real traffic: a.test (low) <-> Portcullis <-> b.test (high).

The policy (POLICY below, with the test SPIFs of test/corpus/labels copied next
to it) maps LOW-NATION labels to NATO on the way up (add-equivalent) and NATO
to LOW-NATION on the way down (replace, ESS), checks them with label-access,
scrubs presence, strips file offers going up and refuses them going down,
refuses end-to-end encryption and one code word.

1. labelled, cleared: alice sends LOW CONFIDENTIAL REL GBR (ESS) to bob (cleared
   SECRET): bob receives the original label plus the NATO CONFIDENTIAL REL GBR
   <equivalentlabel> and a display marking regenerated from the NATO SPIF.
2. over-classified: the same label to carol (b.test users: RESTRICTED) is refused
   by label-access (rule dom-b), and LOW SECRET to bob by label-transform (national
   SECRET has no NATO equivalent): policy-violation at alice, nothing at bob or
   carol, and the errors carry neither the label nor the body.
3. unlabelled: takes a.test's peer default (NATO RESTRICTED REL GBR): it reaches bob
   unlabelled (the default is for the decision, it is not written into the stanza)
   and is refused for dave, who is cleared UNCLASSIFIED only.
4. presence: a directed presence with show/status/priority/caps/nick/idle/avatar
   arrives at bob with none of them; the kept MUC <x/> survives.
5. file offers: up, an OOB offer loses its <x xmlns='jabber:x:oob'/> and keeps its
   text; an OOB-only message (body = URL) is refused; down, any offer is refused.
6. OMEMO (legacy and omemo:2) is refused at alice and never arrives.
7. STANAG 4774 down: bob's NATO SECRET REL GBR label reaches alice as an ESS
   LOW SECRET REL GBR label (replaced, marking regenerated).
8. keywords: a code word is refused (low-assurance heuristic; one case).
9. the audit archive (portcullis-audit export) records, per decision, what the log
   line leaves out: labels before/after, the ACDF reason, that the unlabelled
   messages took a.test's peer default, and each presence child removed.
"""

import base64
import os
import re
import shutil
import sys
import time
from xml.etree import ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.auditing import archive_dir, export_json  # noqa: E402
from harness.testing import check, run_test  # noqa: E402
from harness.topology import DEFAULT_USERS, Federation  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LABEL_CORPUS = os.path.join(HERE, "..", "corpus", "labels")
SPIFS = ("spif-low-nation.xml", "spif-nato.xml")

SL = "{urn:xmpp:sec-label:0}"
ESS = "{urn:xmpp:sec-label:ess:0}esssecuritylabel"
NATO4774_NS = "urn:nato:stanag:4774:confidentialitymetadatalabel:1:0"

# ESS labels under LOW-NATION (test/corpus/labels/README.md).
ESS_LOW_CONFIDENTIAL_REL_GBR = "MSkCAQ0GBCoDBAExHjAcgApghkgBZQIBCAMBoQ4wDAYFKgMEAQIxAwIBAQ=="
ESS_LOW_SECRET = "MQkCAQ4GBCoDBAE="
# DER pieces: policy OIDs and the classification INTEGERs (lacv).
OID_LOW_NATION = bytes.fromhex("06042a030401")    # 1.2.3.4.1
OID_NATO = bytes.fromhex("06042a030402")          # 1.2.3.4.2
CLASS_NATO_CONFIDENTIAL = bytes.fromhex("020103")
CLASS_LOW_SECRET = bytes.fromhex("02010e")

POLICY = """<?xml version="1.0" encoding="UTF-8"?>
<!-- test/integration/test_portcullis_policy.py: labels and content filters. -->
<policy xmlns="urn:portcullis:policy:1" version="interop-policy-1">
  <direction from="low" to="high">
    <size-limit name="size-limit" max-bytes="65536"/>
    <!-- LOW-NATION label -> NATO equivalent added (the national label is kept). -->
    <label-transform name="map-to-nato" rule="map-low-to-nato"
                     from-spif="spif-low-nation.xml" to-spif="spif-nato.xml" mode="add-equivalent"/>
    <label-access name="nato-access" spif="spif-nato.xml" check="both">
      <label id="nato-restricted-rel-gbr" classification="RESTRICTED">
        <category tag-set="Releasable To" value="GBR"/>
      </label>
      <clearance id="clr-a-channel" up-to="CONFIDENTIAL">
        <category tag-set="Compartments" value="ALPHA"/>
        <category tag-set="Releasable To" value="GBR"/>
        <category tag-set="Releasable To" value="USA"/>
      </clearance>
      <clearance id="clr-b-users" up-to="RESTRICTED">
        <category tag-set="Releasable To" value="GBR"/>
      </clearance>
      <clearance id="clr-bob" up-to="SECRET">
        <category tag-set="Compartments" value="ALPHA"/>
        <category tag-set="Releasable To" value="GBR"/>
      </clearance>
      <clearance id="clr-unclassified" up-to="UNCLASSIFIED"/>
      <peer rule="peer-a" domain="a.test" clearance="clr-a-channel" default-label="nato-restricted-rel-gbr"/>
      <peer rule="peer-a-muc" domain="conference.a.test" clearance="clr-a-channel"
            default-label="nato-restricted-rel-gbr"/>
      <domain rule="dom-b" domain="b.test" clearance="clr-b-users"/>
      <domain rule="dom-b-services" domain="*.b.test" clearance="clr-b-users"/>
      <user rule="user-bob" jid="bob@b.test" clearance="clr-bob"/>
      <user rule="user-dave" jid="dave@b.test" clearance="clr-unclassified"/>
    </label-access>
    <presence-scrub name="scrub-presence">
      <scrub id="presence-minimal">
        <keep ns="http://jabber.org/protocol/muc" element="x"/>
        <keep ns="http://jabber.org/protocol/muc#user" element="x"/>
      </scrub>
    </presence-scrub>
    <payload-filter name="payloads">
      <rule id="ft-strip" class="file-transfer" action="strip"/>
      <rule id="e2e-reject" class="encrypted" action="reject"/>
    </payload-filter>
    <keywords name="code-words">
      <list id="codewords" action="reject"><word>bluebird</word></list>
    </keywords>
    <domain-pair-allow name="domain-pair-allow">
      <allow id="low-high-1" from="a.test" to="b.test"/>
      <allow id="low-high-2" from="a.test" to="*.b.test"/>
      <allow id="low-high-3" from="*.a.test" to="b.test"/>
      <allow id="low-high-4" from="*.a.test" to="*.b.test"/>
    </domain-pair-allow>
  </direction>
  <direction from="high" to="low">
    <size-limit name="size-limit" max-bytes="65536"/>
    <!-- NATO label -> replaced by the LOW-NATION one, written as ESS. -->
    <label-transform name="map-to-low" rule="map-nato-to-low"
                     from-spif="spif-nato.xml" to-spif="spif-low-nation.xml" mode="replace" format="ess"/>
    <label-access name="low-access" spif="spif-low-nation.xml" check="recipient">
      <label id="low-unclassified" classification="UNCLASSIFIED"/>
      <clearance id="clr-low-users" up-to="SECRET">
        <category tag-set="Releasable To" value="GBR"/>
      </clearance>
      <default rule="low-default" label="low-unclassified" clearance="clr-low-users"/>
    </label-access>
    <payload-filter name="payloads">
      <rule id="ft-reject" class="file-transfer" action="reject"/>
      <rule id="e2e-reject" class="encrypted" action="reject"/>
    </payload-filter>
    <domain-pair-allow name="domain-pair-allow">
      <allow id="high-low-1" from="b.test" to="a.test"/>
      <allow id="high-low-2" from="b.test" to="*.a.test"/>
      <allow id="high-low-3" from="*.b.test" to="a.test"/>
      <allow id="high-low-4" from="*.b.test" to="*.a.test"/>
    </domain-pair-allow>
  </direction>
</policy>
"""


# ---- helpers ---------------------------------------------------------------------------

def log_text(fed):
    with open(fed.portcullis.log_path, errors="replace") as f:
        return f.read()


def wait_decision(fed, msg_id, timeout=10):
    """The filter's decision line for the stanza with id `msg_id`."""
    rx = re.compile(r"filter \w+: decision .* id=%s: .*" % re.escape(msg_id))
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(log_text(fed))
        if m:
            return m.group(0)
        if time.monotonic() > deadline:
            raise AssertionError("no decision for id=%s in %s" % (msg_id, fed.portcullis.log_path))
        time.sleep(0.05)


def audit_decisions(fed, build_dir):
    """{stanza id: audit record} of every decision in the run's audit archive
    (portcullis-audit export --format json, read while the writer runs)."""
    out = {}
    for entry in export_json(build_dir, archive_dir(fed), "--type", "decision"):
        m = re.search(r"\bid='([^']*)'", entry.get("original", ""))
        if m:
            out[m.group(1)] = entry["record"]
    return out


def filter_notes(record, filter_name):
    for f in record["filters"]:
        if f["filter"] == filter_name:
            return dict((k, v) for k, v in f.get("notes", []))
    raise AssertionError("filter %s not in the audit trail %r" % (filter_name, record["filters"]))


def filter_notes_list(record, filter_name):
    for f in record["filters"]:
        if f["filter"] == filter_name:
            return [tuple(n) for n in f.get("notes", [])]
    raise AssertionError("filter %s not in the audit trail %r" % (filter_name, record["filters"]))


def xml_of(record):
    return ET.fromstring(record["xml"])


def label_parts(msg_xml):
    """(securitylabel, displaymarking, [ESS DER of <label>], [ESS DER of each <equivalentlabel>])."""
    sl = msg_xml.find(SL + "securitylabel")
    check(sl is not None, "no <securitylabel> in %s" % ET.tostring(msg_xml, encoding="unicode"))
    dm = sl.find(SL + "displaymarking")
    labels = [base64.b64decode(e.text) for e in sl.findall(SL + "label/" + ESS)]
    equivs = [base64.b64decode(e.text) for e in sl.findall(SL + "equivalentlabel/" + ESS)]
    return sl, dm, labels, equivs


def labelled_message(to, msg_id, body, label_b64, marking):
    return ("<message to='%s' type='chat' id='%s'><body>%s</body>"
            "<securitylabel xmlns='urn:xmpp:sec-label:0'>"
            "<displaymarking fgcolor='black' bgcolor='blue'>%s</displaymarking>"
            "<label><esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>%s</esssecuritylabel></label>"
            "</securitylabel></message>" % (to, msg_id, body, marking, label_b64))


def expect_refused(ctx, sender, frm, msg_id, secrets, what, condition="policy-violation", text=None):
    """The error for `msg_id` at `sender`: `condition`, optional `text`, and none of `secrets`."""
    err = sender.expect_error(frm=frm, timeout=20)
    check(err["id"] == msg_id, "%s: error for id %r, expected %r" % (what, err["id"], msg_id))
    check(err["condition"] == condition,
          "%s: expected %s, got %s (%s)" % (what, condition, err["condition"], err["text"]))
    if text is not None:
        check(err["text"] == text, "%s: error text %r, expected %r" % (what, err["text"], text))
    for s in secrets:
        check(s not in err["xml"], "%s: the error echoes %r: %s" % (what, s, err["xml"]))
    return err


def expect_presence(session, frm, timeout=15):
    """Waits for (and consumes) a presence from bare JID `frm` at `session`."""
    def take():
        for i, p in enumerate(session._presences):
            if p["from"].split("/")[0] == frm:
                return session._presences.pop(i)
        return None
    return session._wait(take, timeout, "presence from %s" % frm)


# ---- the test ---------------------------------------------------------------------------

def test(ctx):
    run_dir = ctx.subdir("policy")
    for f in SPIFS:
        shutil.copy(os.path.join(LABEL_CORPUS, f), os.path.join(run_dir, f))
    users = dict(DEFAULT_USERS, dave="dave-pw")
    with Federation(run_dir, topology="portcullis", mode="cert", build_dir=ctx.build_dir,
                    users=users, policy_text=POLICY) as fed:
        alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
        carol_jid, dave_jid = fed.jid("b", "carol"), fed.jid("b", "dave")
        with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob, \
                fed.session("b", "carol") as carol, fed.session("b", "dave") as dave:

            # 1. labelled and cleared: mapped label at bob
            alice.send_raw(labelled_message(bob_jid, "lab-ok", "status report",
                                            ESS_LOW_CONFIDENTIAL_REL_GBR, "LOW CONFIDENTIAL REL GBR"))
            rec = bob.expect_message(alice_jid, "status report", timeout=20)
            sl, dm, labels, equivs = label_parts(xml_of(rec))
            check(dm is not None and dm.text == "NATO CONFIDENTIAL REL GBR",
                  "cleared: display marking %r" % (dm.text if dm is not None else None))
            check(dm.get("bgcolor") == "#0000FF", "cleared: marking colour %r" % dm.get("bgcolor"))
            check(labels == [base64.b64decode(ESS_LOW_CONFIDENTIAL_REL_GBR)],
                  "cleared: the original <label> was not kept byte for byte")
            check(len(equivs) == 1 and OID_NATO in equivs[0] and CLASS_NATO_CONFIDENTIAL in equivs[0],
                  "cleared: no NATO CONFIDENTIAL <equivalentlabel>: %r" % [e.hex() for e in equivs])
            line = wait_decision(fed, "lab-ok")
            check("released by low-high-1" in line and "map-to-nato=modify(map-low-to-nato)" in line
                  and "nato-access=no-opinion(user-bob)" in line, "cleared: decision %s" % line)
            ctx.step("cleared: bob got LOW CONFIDENTIAL REL GBR + equivalent NATO CONFIDENTIAL REL GBR, "
                     "marking %r %s" % (dm.text, dm.get("bgcolor")))

            # 2. over-classified: recipient clearance (carol) and no equivalent (SECRET)
            alice.send_raw(labelled_message(carol_jid, "lab-carol", "for carol only",
                                            ESS_LOW_CONFIDENTIAL_REL_GBR, "LOW CONFIDENTIAL REL GBR"))
            expect_refused(ctx, alice, carol_jid, "lab-carol",
                           ["for carol only", ESS_LOW_CONFIDENTIAL_REL_GBR, "CONFIDENTIAL", "securitylabel"],
                           "over-classified (carol)", text="security label not permitted")
            line = wait_decision(fed, "lab-carol")
            check("rejected by dom-b" in line, "over-classified (carol): decision %s" % line)
            alice.send_raw(labelled_message(bob_jid, "lab-secret", "the plans",
                                            ESS_LOW_SECRET, "LOW SECRET"))
            expect_refused(ctx, alice, bob_jid, "lab-secret",
                           ["the plans", ESS_LOW_SECRET, "SECRET", "securitylabel"],
                           "over-classified (SECRET)", text="no equivalent label")
            line = wait_decision(fed, "lab-secret")
            check("rejected by map-low-to-nato" in line, "over-classified (SECRET): decision %s" % line)
            carol.expect_no_message(alice_jid, wait=1.0)
            bob.expect_no_message(alice_jid, wait=1.0)
            ctx.step("over-classified: CONFIDENTIAL->carol refused by dom-b, LOW SECRET->bob by "
                     "map-low-to-nato; policy-violation at alice, no label or body echoed, nothing arrived")

            # 3. unlabelled: peer default NATO RESTRICTED REL GBR
            alice.send_raw("<message to='%s' type='chat' id='unl-bob'><body>no label</body></message>"
                           % bob_jid)
            rec = bob.expect_message(alice_jid, "no label", timeout=20)
            check(xml_of(rec).find(SL + "securitylabel") is None,
                  "unlabelled: bob's copy carries a label: %s" % rec["xml"])
            line = wait_decision(fed, "unl-bob")
            check("released by low-high-1" in line and "nato-access=no-opinion(user-bob)" in line,
                  "unlabelled: decision %s" % line)
            alice.send_raw("<message to='%s' type='chat' id='unl-dave'><body>no label either</body></message>"
                           % dave_jid)
            expect_refused(ctx, alice, dave_jid, "unl-dave", ["no label either"], "unlabelled (dave)",
                           text="security label not permitted")
            line = wait_decision(fed, "unl-dave")
            check("rejected by user-dave" in line, "unlabelled (dave): decision %s" % line)
            dave.expect_no_message(alice_jid, wait=1.0)
            ctx.step("unlabelled: crossed to bob as sent; refused for dave (UNCLASSIFIED clearance) "
                     "under a.test's default RESTRICTED REL GBR")

            # 4. presence scrubbed
            alice.send_raw(
                "<presence to='%s' id='pres-1'><show>dnd</show><status>in the ops room</status>"
                "<priority>7</priority>"
                "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://slixmpp.example'"
                " ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
                "<nick xmlns='http://jabber.org/protocol/nick'>Alice Ops</nick>"
                "<idle xmlns='urn:xmpp:idle:1' since='2024-05-01T12:00:00Z'/>"
                "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>"
                "<x xmlns='http://jabber.org/protocol/muc'/>"
                "</presence>" % bob_jid)
            p = expect_presence(bob, alice_jid, timeout=20)
            pres = ET.fromstring(p["xml"])
            children = ["%s" % c.tag for c in pres]
            removed = ["{jabber:client}show", "{jabber:client}status", "{jabber:client}priority",
                       "{http://jabber.org/protocol/caps}c", "{http://jabber.org/protocol/nick}nick",
                       "{urn:xmpp:idle:1}idle", "{vcard-temp:x:update}x"]
            for tag in removed:
                check(tag not in children, "presence: %s arrived at bob: %s" % (tag, p["xml"]))
            check("{http://jabber.org/protocol/muc}x" in children,
                  "presence: the kept MUC <x/> was removed: %s" % p["xml"])
            check(p["type"] == "available", "presence: type %r" % p["type"])
            line = wait_decision(fed, "pres-1")
            check("scrub-presence=modify(presence-minimal)" in line and "released by" in line,
                  "presence: decision %s" % line)
            ctx.step("presence: bob got only %s (show/status/priority/caps/nick/idle/avatar removed)"
                     % children)

            # 5. file offers: stripped going up, refused when nothing is left; refused going down
            url = "https://upload.a.test/slot/report.pdf"
            alice.send_raw("<message to='%s' type='chat' id='ft-up'><body>report attached</body>"
                           "<x xmlns='jabber:x:oob'><url>%s</url></x></message>" % (bob_jid, url))
            rec = bob.expect_message(alice_jid, "report attached", timeout=20)
            check(url not in rec["xml"] and "jabber:x:oob" not in rec["xml"],
                  "file offer (strip): the offer reached bob: %s" % rec["xml"])
            line = wait_decision(fed, "ft-up")
            check("payloads=modify(ft-strip)" in line, "file offer (strip): decision %s" % line)
            alice.send_raw("<message to='%s' type='chat' id='ft-only'><body>%s</body>"
                           "<x xmlns='jabber:x:oob'><url>%s</url></x></message>" % (bob_jid, url, url))
            expect_refused(ctx, alice, bob_jid, "ft-only", [url], "file offer (link only)",
                           text="file transfer is not allowed across this boundary")
            bob.send_raw("<message to='%s' type='chat' id='ft-down'><body>here</body>"
                         "<x xmlns='jabber:x:oob'><url>https://upload.b.test/x.doc</url></x></message>"
                         % alice_jid)
            expect_refused(ctx, bob, alice_jid, "ft-down", ["upload.b.test", "here"], "file offer (down)")
            line = wait_decision(fed, "ft-down")
            check("rejected by ft-reject" in line, "file offer (down): decision %s" % line)
            alice.expect_no_message(bob_jid, wait=1.0)
            bob.expect_no_message(alice_jid, wait=0.5)
            ctx.step("file offers: up the OOB tag was stripped (text kept), a link-only offer refused; "
                     "down refused by ft-reject")

            # 6. OMEMO refused
            omemo_legacy = (
                "<message to='%s' type='chat' id='omemo-1'>"
                "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'>"
                "<key rid='31415'>MwohEAE=</key><iv>1AbcdeFGhiJkLMno</iv></header>"
                "<payload>c2VjcmV0IHBheWxvYWQ=</payload></encrypted>"
                "<body>I sent you an OMEMO encrypted message but your client doesn't seem to support that.</body>"
                "<store xmlns='urn:xmpp:hints'/></message>" % bob_jid)
            omemo2 = (
                "<message to='%s' type='chat' id='omemo-2'>"
                "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='27183'><keys jid='%s'>"
                "<key rid='31415'>MwohEAE=</key></keys></header>"
                "<payload>c2VjcmV0IHBheWxvYWQ=</payload></encrypted></message>" % (bob_jid, bob_jid))
            for mid, xml in (("omemo-1", omemo_legacy), ("omemo-2", omemo2)):
                alice.send_raw(xml)
                expect_refused(ctx, alice, bob_jid, mid, ["c2VjcmV0IHBheWxvYWQ=", "MwohEAE="], mid,
                               text="encrypted content is not allowed across this boundary")
                line = wait_decision(fed, mid)
                check("rejected by e2e-reject" in line, "%s: decision %s" % (mid, line))
            bob.expect_no_message(alice_jid, wait=1.0)
            ctx.step("omemo: legacy and omemo:2 refused by e2e-reject at alice, nothing at bob")

            # 7. STANAG 4774 label going down, replaced by an ESS LOW-NATION label
            with open(os.path.join(LABEL_CORPUS, "msg-nato-secret-rel-gbr.xml")) as f:
                corpus = ET.fromstring(f.read())
            label_4774 = ET.tostring(corpus.find(SL + "securitylabel"), encoding="unicode")
            bob.send_raw("<message to='%s' type='chat' id='nato-down'><body>reply</body>%s</message>"
                         % (alice_jid, label_4774))
            rec = alice.expect_message(bob_jid, "reply", timeout=20)
            msg = xml_of(rec)
            sl, dm, labels, equivs = label_parts(msg)
            check(dm is not None and dm.text == "LOW SECRET REL GBR" and dm.get("bgcolor") == "#FF0000",
                  "4774 down: marking %r" % (ET.tostring(dm, encoding="unicode") if dm is not None else None))
            check(len(labels) == 1 and OID_LOW_NATION in labels[0] and CLASS_LOW_SECRET in labels[0],
                  "4774 down: <label> is not ESS LOW SECRET: %r" % [b.hex() for b in labels])
            check(not equivs and NATO4774_NS not in rec["xml"],
                  "4774 down: the NATO label survived: %s" % rec["xml"])
            line = wait_decision(fed, "nato-down")
            check("map-to-low=modify(map-nato-to-low)" in line and "released by high-low-1" in line,
                  "4774 down: decision %s" % line)
            ctx.step("4774 down: alice got ESS LOW SECRET REL GBR (label replaced), marking %r" % dm.text)

            # 8. keywords (low assurance)
            alice.send(bob_jid, "meet at the BlueBird cafe")
            err = alice.expect_error(frm=bob_jid, timeout=20)
            check(err["condition"] == "policy-violation" and "BlueBird" not in err["xml"],
                  "keywords: %s %s" % (err["condition"], err["xml"]))
            bob.expect_no_message(alice_jid, wait=1.0)
            check(re.search(r"rejected by codewords .*code-words=reject\(codewords\)", log_text(fed)),
                  "keywords: no decision by codewords")
            ctx.step("keywords: 'BlueBird' refused by codewords")

            # 9. the audit archive holds the reasons the log lines leave out
            audit = audit_decisions(fed, ctx.build_dir)
            for mid in ("lab-ok", "lab-carol", "lab-secret", "unl-bob", "unl-dave", "pres-1", "ft-up",
                        "ft-only", "omemo-1", "omemo-2", "ft-down", "nato-down"):
                check(mid in audit, "audit: no decision record for id=%s" % mid)
            notes = filter_notes(audit["lab-ok"], "map-to-nato")
            check(notes.get("label.original") == "LOW-NATION: LOW CONFIDENTIAL REL GBR"
                  and notes.get("label.mapped") == "NATO: NATO CONFIDENTIAL REL GBR",
                  "audit lab-ok: label notes %r" % notes)
            notes = filter_notes(audit["lab-carol"], "nato-access")
            check(notes.get("clearance.recipient") == "clr-b-users"
                  and notes.get("acdf", "").startswith("deny: classification CONFIDENTIAL"),
                  "audit lab-carol: %r" % notes)
            for mid, who in (("unl-bob", "clr-bob"), ("unl-dave", "clr-unclassified")):
                notes = filter_notes(audit[mid], "nato-access")
                check(notes.get("label.original") == "(unlabelled)"
                      and notes.get("label.source") == "peer-default:peer-a"
                      and notes.get("label.effective") == "NATO RESTRICTED REL GBR"
                      and notes.get("clearance.recipient") == who,
                      "audit %s: the peer default was not applied: %r" % (mid, notes))
            removed = [v for k, v in filter_notes_list(audit["pres-1"], "scrub-presence") if k == "removed"]
            check(sorted(removed) == sorted(["show", "status", "priority",
                                             "{http://jabber.org/protocol/caps}c",
                                             "{http://jabber.org/protocol/nick}nick",
                                             "{urn:xmpp:idle:1}idle", "{vcard-temp:x:update}x"]),
                  "audit pres-1: removed %r" % removed)
            ctx.step("audit: label before/after, ACDF reason, peer default (peer-default:peer-a -> "
                     "NATO RESTRICTED REL GBR) and the 7 scrubbed presence children are recorded")

            check(not bob.errors() and not carol.errors() and not dave.errors(),
                  "unexpected errors at b.test: %r" % (bob.errors() + carol.errors() + dave.errors()))


if __name__ == "__main__":
    run_test(test)
