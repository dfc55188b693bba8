#include "policy/content/users.h"

namespace portcullis::policy::content {

namespace {

std::optional<UserList> read_list(const PolicyNode& filter, std::string_view list,
                                  std::string_view entry) {
  const auto nodes = filter.children_named(list);
  if (nodes.empty()) return std::nullopt;
  if (nodes.size() > 1) nodes[1]->fail("<" + std::string(list) + "> appears more than once");
  const PolicyNode& n = *nodes.front();
  UserList l;
  l.id = rule_id_of(n);
  l.shadow = bool_attr(n, "shadow", false);
  for (const PolicyNode* e : n.children_named(entry)) {
    UserEntry u{rule_id_of(*e), JidPattern::parse(*e, e->required("match")), bool_attr(*e, "server-only", false)};
    if (u.server_only && !u.pattern.is_domain())
      e->fail("server-only=\"true\" needs a plain domain in 'match' (the server's own address), not '" +
              u.pattern.text() + "'");
    l.entries.push_back(std::move(u));
  }
  return l;
}

// Checks one side. Returns a refusal (nullopt = the address passes) and adds
// the matching entry to `notes`.
std::optional<Verdict> check_side(const UserList& list, const xmpp::Element& stanza,
                                  std::string_view attr, std::string_view side, Notes& notes) {
  const std::string* value = stanza.attr(attr);
  const std::optional<xmpp::Jid> jid = value ? xmpp::parse_jid(*value) : std::nullopt;
  if (!jid) {
    Verdict v = Verdict::reject(list.id, xmpp::StanzaErrorCondition::JidMalformed,
                                "missing or malformed '" + std::string(attr) + "' address");
    v.notes.emplace_back("check", std::string(side));
    return v;
  }
  for (const UserEntry& e : list.entries) {
    if (e.pattern.matches(*jid) && (!e.server_only || jid->local.empty())) {
      notes.emplace_back("allow-" + std::string(side), e.id);
      return std::nullopt;
    }
  }
  Verdict v = Verdict::reject(list.id, xmpp::StanzaErrorCondition::Forbidden,
                              std::string(side) + " not allowed across this boundary");
  v.notes.emplace_back("check", std::string(side));
  return v;
}

}  // namespace

UsersFilter::UsersFilter(std::string name, UsersConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

std::shared_ptr<const Filter> UsersFilter::from_spec(const FilterSpec& spec) {
  const PolicyNode& node = node_of(spec);
  UsersConfig cfg;
  cfg.senders = read_list(node, "senders", "allow-sender");
  cfg.recipients = read_list(node, "recipients", "allow-recipient");
  if (!cfg.senders && !cfg.recipients) {
    node.fail("<users> needs <senders> or <recipients>: it would restrict nothing");
  }
  return std::make_shared<UsersFilter>(spec.name, std::move(cfg));
}

Verdict UsersFilter::evaluate(xmpp::Element& stanza, const StanzaContext&) const {
  Notes notes;
  std::string shadow_rule;
  struct Side {
    const std::optional<UserList>& list;
    std::string_view attr, side;
  };
  for (const Side& s : {Side{config_.senders, "from", "sender"},
                        Side{config_.recipients, "to", "recipient"}}) {
    if (!s.list) continue;
    std::optional<Verdict> refusal = check_side(*s.list, stanza, s.attr, s.side, notes);
    if (!refusal) continue;
    if (!s.list->shadow) return with_notes(std::move(*refusal), std::move(notes));
    if (shadow_rule.empty()) shadow_rule = s.list->id;
    add_shadow_note(notes, s.list->id,
                    "reject: " + std::string(xmpp::to_string(refusal->error->condition)));
    notes.insert(notes.end(), refusal->notes.begin(), refusal->notes.end());
  }
  return with_notes(Verdict::no_opinion(shadow_rule), std::move(notes));
}

}  // namespace portcullis::policy::content
