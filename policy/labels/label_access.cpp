// LabelAccessFilter (see label_access.h).
#include "policy/labels/label_access.h"

#include <map>
#include <set>

#include "guard/xmpp/jid.h"
#include "policy/labels/acdf.h"
#include "policy/labels/stanza_labels.h"

namespace portcullis::policy::labels {

using xmpp::StanzaErrorCondition;

namespace {

const LabelAccessConfig::Entry* find_domain(const std::vector<LabelAccessConfig::Entry>& entries,
                                            std::string_view domain) {
  // Exact entries win over wildcard ones, whatever the order.
  for (const auto& e : entries)
    if (e.match == domain) return &e;
  for (const auto& e : entries)
    if (xmpp::domain_matches(e.match, domain)) return &e;
  return nullptr;
}

const LabelAccessConfig::Entry* find_bare(const std::vector<LabelAccessConfig::Entry>& entries,
                                          std::string_view bare) {
  for (const auto& e : entries)
    if (e.match == bare) return &e;
  return nullptr;
}

struct Chosen {
  const Clearance* clearance = nullptr;   // null = nil clearance
  std::string rule;
};

}  // namespace

LabelAccessFilter::LabelAccessFilter(std::string name, LabelAccessConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

Verdict LabelAccessFilter::evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const {
  LabelScan scan = scan_stanza_labels(stanza);
  // FMUC join and leave presence (XEP-0289) carries no label (XEP-0258 forbids
  // it) but does cross into a room: it is judged by the label the room's
  // traffic is given when unlabelled (the room's default label, else the
  // peer's or the policy's), so a room cleared below that label stays closed.
  if (scan.early && scan.early->rule_id == kRulePresence &&
      stanza.find_child("fmuc", "http://isode.com/protocol/fmuc") != nullptr) {
    scan.early.reset();
  }
  if (scan.early) {
    if (scan.early->rule_id == kRuleLabelledPresence) ++counters_.labelled_presence;
    if (scan.early->rule_id == kRuleMalformedLabel || scan.early->rule_id == kRuleMultipleLabels ||
        scan.early->rule_id == kRuleMisplacedLabel ||
        scan.early->rule_id == kRuleLabelledError)
      ++counters_.malformed;
    return *scan.early;
  }
  const Spif& spif = *config_.spif;
  std::vector<std::pair<std::string, std::string>> notes;
  notes.emplace_back("label.original", scan.view ? summary(*scan.view) : "(unlabelled)");

  // Recipient entries, needed for the room default label and the clearance.
  const std::optional<xmpp::Jid> to = xmpp::parse_jid(stanza.attr_or("to"));
  const LabelAccessConfig::Entry* room = to ? find_bare(config_.rooms, to->bare()) : nullptr;
  const LabelAccessConfig::Entry* user = to && !room ? find_bare(config_.users, to->bare()) : nullptr;
  const LabelAccessConfig::Entry* domain = to && !room && !user ? find_domain(config_.domains, to->domain) : nullptr;
  const LabelAccessConfig::Entry* peer = find_domain(config_.peers, ctx.peer_domain);

  // The effective label under this policy.
  std::optional<Label> effective;
  std::string source;
  for (auto& c : scan.candidates) {
    if (!spif.owns(c.label)) continue;
    std::string why;
    if (!spif.canonicalize(c.label, &why)) {
      Verdict v = Verdict::reject(std::string(kRuleInvalidLabel), StanzaErrorCondition::PolicyViolation,
                                  std::string(kTextNotValid));
      v.notes = std::move(notes);
      v.notes.emplace_back("label.error", why);
      ++counters_.denied;
      return v;
    }
    effective = std::move(c.label);
    source = c.equivalent ? "equivalent" : "stanza";
    break;
  }
  if (!effective) {
    if (!scan.view && room && room->default_label) {
      effective = room->default_label;
      source = "room-default:" + room->rule;
    } else if (!scan.view && peer && peer->default_label) {
      effective = peer->default_label;
      source = "peer-default:" + peer->rule;
    } else if (config_.default_label) {
      effective = config_.default_label;
      source = "policy-default:" + config_.default_rule;
    }
    if (effective) ++counters_.defaulted;
  }
  if (!effective) {
    ++counters_.nil_label;
    ++counters_.denied;
    Verdict v = Verdict::reject(std::string(kRuleNilLabel), StanzaErrorCondition::PolicyViolation,
                                std::string(kTextNotPermitted));
    v.notes = std::move(notes);
    v.notes.emplace_back("label.effective", "(nil)");
    return v;
  }
  notes.emplace_back("label.source", source);
  notes.emplace_back("label.effective", spif.marking(*effective));
  if (config_.check_marking && source == "stanza" && scan.view && !scan.view->display_marking.empty() &&
      scan.view->display_marking != spif.marking(*effective)) {
    ++counters_.denied;
    Verdict v = Verdict::reject("marking-mismatch", StanzaErrorCondition::PolicyViolation,
                                std::string(kTextNotValid));
    v.notes = std::move(notes);
    v.notes.emplace_back("marking.expected", spif.marking(*effective));
    return v;
  }

  auto choose = [&](const LabelAccessConfig::Entry* e) {
    Chosen c;
    if (e) {
      c.rule = e->rule;
      if (e->clearance) c.clearance = &*e->clearance;
      return c;   // an entry without a clearance is the nil clearance
    }
    if (config_.default_clearance) {
      c.rule = config_.default_rule;
      c.clearance = &*config_.default_clearance;
    } else {
      c.rule = std::string(kRuleNilClearance);
    }
    return c;
  };
  std::vector<std::pair<std::string, Chosen>> checks;
  if (config_.check_channel) checks.emplace_back("clearance.channel", choose(peer));
  if (config_.check_recipient)
    checks.emplace_back("clearance.recipient", choose(room ? room : user ? user : domain));

  std::string deciding;
  for (const auto& [key, chosen] : checks) {
    notes.emplace_back(key, chosen.clearance ? chosen.clearance->id : "(nil)");
    const AcdfResult r = chosen.clearance ? acdf(spif, *chosen.clearance, *effective)
                                          : AcdfResult{false, "nil clearance"};
    if (!r.grant) {
      if (!chosen.clearance) ++counters_.nil_clearance;
      ++counters_.denied;
      Verdict v = Verdict::reject(chosen.rule, StanzaErrorCondition::PolicyViolation,
                                  std::string(kTextNotPermitted));
      notes.emplace_back("acdf", "deny: " + r.reason);
      v.notes = std::move(notes);
      return v;
    }
    deciding = chosen.rule;
  }
  ++counters_.granted;
  notes.emplace_back("acdf", "grant");
  Verdict v = Verdict::no_opinion(deciding);
  v.notes = std::move(notes);
  return v;
}

LabelAccessConfig LabelAccessFilter::config_from_node(const PolicyNode& node) {
  LabelAccessConfig cfg;
  auto spif = std::make_shared<Spif>(Spif::load(node.resolve_path(node.required("spif"))));
  cfg.spif = spif;
  const std::string check = node.attr_or("check", "both");
  if (check == "channel") cfg.check_recipient = false;
  else if (check == "recipient") cfg.check_channel = false;
  else if (check != "both") node.fail("attribute 'check' must be channel, recipient or both, not '" + check + "'");
  const std::string marking = node.attr_or("marking", "ignore");
  if (marking == "check") cfg.check_marking = true;
  else if (marking != "ignore") node.fail("attribute 'marking' must be check or ignore, not '" + marking + "'");

  std::map<std::string, Label> labels;
  std::map<std::string, Clearance> clearances;
  std::set<std::string> rules;
  for (const PolicyNode* n : node.children_named("label")) {
    const std::string& id = n->required("id");
    if (labels.count(id)) n->fail("label id '" + id + "' is used twice");
    labels.emplace(id, spif->label_from_node(*n));
  }
  for (const PolicyNode* n : node.children_named("clearance")) {
    Clearance c = spif->clearance_from_node(*n);
    if (clearances.count(c.id)) n->fail("clearance id '" + c.id + "' is used twice");
    clearances.emplace(c.id, std::move(c));
  }
  auto label_ref = [&](const PolicyNode& n, std::string_view key) -> std::optional<Label> {
    const std::string* id = n.attr(key);
    if (!id) return std::nullopt;
    const auto it = labels.find(*id);
    if (it == labels.end()) n.fail("no <label id='" + *id + "'> in this filter");
    return it->second;
  };
  auto clearance_ref = [&](const PolicyNode& n) -> std::optional<Clearance> {
    const std::string* id = n.attr("clearance");
    if (!id) return std::nullopt;
    const auto it = clearances.find(*id);
    if (it == clearances.end()) n.fail("no <clearance id='" + *id + "'> in this filter");
    return it->second;
  };
  auto rule_of = [&](const PolicyNode& n) {
    const std::string& r = n.required("rule");
    if (!rules.insert(r).second) n.fail("rule id '" + r + "' is used twice in this filter");
    return r;
  };
  if (const PolicyNode* d = node.child("default")) {
    cfg.default_rule = rule_of(*d);
    cfg.default_label = label_ref(*d, "label");
    cfg.default_clearance = clearance_ref(*d);
  }
  auto entries = [&](std::string_view element, std::string_view key, bool is_domain, bool has_default,
                     std::vector<LabelAccessConfig::Entry>& out) {
    for (const PolicyNode* n : node.children_named(element)) {
      LabelAccessConfig::Entry e;
      e.rule = rule_of(*n);
      const std::string& value = n->required(key);
      if (is_domain) {
        const bool wild = value.rfind("*.", 0) == 0;
        const auto norm = xmpp::normalize_domain(wild ? std::string_view(value).substr(2) : std::string_view(value));
        if (!norm) n->fail("'" + value + "' is not a domain or *.domain");
        e.match = wild ? "*." + *norm : *norm;
      } else {
        const auto jid = xmpp::parse_jid(value);
        if (!jid || jid->local.empty() || !jid->resource.empty()) n->fail("'" + value + "' is not a bare JID");
        e.match = jid->bare();
      }
      for (const auto& other : out)
        if (other.match == e.match) n->fail("'" + value + "' has two <" + std::string(element) + "> entries");
      e.clearance = clearance_ref(*n);
      if (has_default) e.default_label = label_ref(*n, "default-label");
      else if (n->attr("default-label")) n->fail("<" + std::string(element) + "> has no default label");
      out.push_back(std::move(e));
    }
  };
  entries("peer", "domain", true, true, cfg.peers);
  entries("domain", "domain", true, false, cfg.domains);
  entries("user", "jid", false, false, cfg.users);
  entries("room", "jid", false, true, cfg.rooms);
  return cfg;
}

}  // namespace portcullis::policy::labels
