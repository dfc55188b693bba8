#include "policy/content/presence_scrub.h"

#include <algorithm>

namespace portcullis::policy::content {

namespace {

bool is_blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

}  // namespace

PresenceScrubFilter::PresenceScrubFilter(std::string name, PresenceScrubConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

std::shared_ptr<const Filter> PresenceScrubFilter::from_spec(const FilterSpec& spec) {
  const PolicyNode& node = node_of(spec);
  const PolicyNode* scrub = node.child("scrub");
  if (scrub == nullptr) node.fail("<presence-scrub> needs a <scrub id=\"...\"> rule");
  if (node.children_named("scrub").size() > 1) node.fail("<presence-scrub> has more than one <scrub>");
  PresenceScrubConfig cfg;
  cfg.rule_id = rule_id_of(*scrub);
  cfg.shadow = bool_attr(*scrub, "shadow", false);
  for (const PolicyNode* k : scrub->children_named("keep")) {
    KeptChild kc{k->required("ns"), k->required("element")};
    if (kc.local.empty()) k->fail("<keep> has an empty 'element'");
    cfg.keep.push_back(std::move(kc));
  }
  return std::make_shared<PresenceScrubFilter>(spec.name, std::move(cfg));
}

bool PresenceScrubFilter::kept(const xmpp::Element& child, bool error_presence) const {
  // The <error/> of a presence error (a refused MUC join) is what it says;
  // scrubbing it would leave an error that explains nothing.
  if (child.name() == "error" && (child.ns() == xmpp::kNsServer || child.ns() == xmpp::kNsClient) &&
      error_presence) {
    return true;
  }
  return std::any_of(config_.keep.begin(), config_.keep.end(), [&](const KeptChild& k) {
    return k.ns == child.ns() && k.local == child.name();
  });
}

Verdict PresenceScrubFilter::evaluate(xmpp::Element& stanza, const StanzaContext&) const {
  if (kind_of(stanza) != StanzaKind::Presence) return Verdict::no_opinion();

  const bool error_presence = stanza.attr_or("type") == "error";
  // Decide first, change after: a shadow rule must leave the stanza as it was.
  std::vector<std::string> removed;
  for (const xmpp::Node& n : stanza.children()) {
    if (n.is_element() && !kept(*n.element, error_presence)) removed.push_back(note_name(stanza, *n.element));
    // Character data directly in <presence> has no meaning (RFC 6121): if it
    // is more than white space it is a channel of its own, and goes too.
    if (!n.is_element() && !is_blank(n.text)) removed.push_back("#text");
  }
  if (removed.empty()) return Verdict::no_opinion(config_.rule_id);

  if (config_.shadow) {
    Verdict v = Verdict::no_opinion(config_.rule_id);
    Notes notes;
    add_shadow_note(notes, config_.rule_id, "modify: presence-scrub");
    for (std::string& r : removed) notes.emplace_back("would-remove", std::move(r));
    return with_notes(std::move(v), std::move(notes));
  }

  auto& children = stanza.children();
  // White space between the removed children goes with them (it would only
  // leave the released presence full of indentation).
  children.erase(std::remove_if(children.begin(), children.end(),
                                [&](const xmpp::Node& n) { return !n.is_element() || !kept(*n.element, error_presence); }),
                 children.end());
  Verdict v = Verdict::modify(config_.rule_id, std::string(kTransformPresenceScrub));
  for (std::string& r : removed) v.notes.emplace_back("removed", std::move(r));
  return v;
}

}  // namespace portcullis::policy::content
