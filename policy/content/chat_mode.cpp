#include "policy/content/chat_mode.h"

namespace portcullis::policy::content {

namespace {

constexpr std::string_view kNsMuc = "http://jabber.org/protocol/muc";
constexpr std::string_view kNsMucUser = "http://jabber.org/protocol/muc#user";
constexpr std::string_view kNsMucAdmin = "http://jabber.org/protocol/muc#admin";
constexpr std::string_view kNsMucOwner = "http://jabber.org/protocol/muc#owner";
constexpr std::string_view kNsConference = "jabber:x:conference";

std::optional<BlockRule> read_block(const PolicyNode& filter, std::string_view element) {
  const auto nodes = filter.children_named(element);
  if (nodes.empty()) return std::nullopt;
  if (nodes.size() > 1) nodes[1]->fail("<" + std::string(element) + "> appears more than once");
  return BlockRule{rule_id_of(*nodes.front()), bool_attr(*nodes.front(), "shadow", false)};
}

// The domain of a JID attribute, if it parses (a malformed address is another
// filter's business; here it just does not match a service).
std::optional<std::string> domain_of(const xmpp::Element& stanza, std::string_view attr) {
  const std::string* v = stanza.attr(attr);
  if (v == nullptr) return std::nullopt;
  auto jid = xmpp::parse_jid(*v);
  if (!jid) return std::nullopt;
  return std::move(jid->domain);
}

Verdict blocked(const BlockRule& r, std::string key, std::string value) {
  Verdict v = Verdict::reject(r.id, xmpp::StanzaErrorCondition::PolicyViolation,
                              key == "muc" ? "group chat is not allowed across this boundary"
                                           : "one-to-one chat is not allowed across this boundary");
  v.notes.emplace_back(std::move(key), std::move(value));
  if (!r.shadow) return v;
  Verdict shadow = Verdict::no_opinion(r.id);
  Notes notes;
  add_shadow_note(notes, r.id, "reject: policy-violation");
  notes.insert(notes.end(), v.notes.begin(), v.notes.end());
  return with_notes(std::move(shadow), std::move(notes));
}

}  // namespace

ChatModeFilter::ChatModeFilter(std::string name, ChatModeConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

std::shared_ptr<const Filter> ChatModeFilter::from_spec(const FilterSpec& spec) {
  const PolicyNode& node = node_of(spec);
  ChatModeConfig cfg;
  for (const PolicyNode* s : node.children_named("muc-service")) {
    cfg.muc_services.push_back(DomainPattern::parse(*s, s->required("match"), false));
  }
  cfg.block_muc = read_block(node, "block-muc");
  cfg.block_one_to_one = read_block(node, "block-one-to-one");
  if (!cfg.block_muc && !cfg.block_one_to_one) {
    node.fail("<chat-mode> needs <block-muc> or <block-one-to-one>: it would block nothing");
  }
  return std::make_shared<ChatModeFilter>(spec.name, std::move(cfg));
}

std::string_view ChatModeFilter::muc_reason(const xmpp::Element& stanza) const {
  const StanzaKind kind = kind_of(stanza);
  if (kind == StanzaKind::Other) return {};
  if (kind == StanzaKind::Message && effective_type(stanza, kind) == "groupchat") return "groupchat";
  for (const xmpp::Element* c : stanza.child_elements()) {
    if (c->name() == "x" && (c->ns() == kNsMuc || c->ns() == kNsMucUser ||
                             (kind == StanzaKind::Message && c->ns() == kNsConference))) {
      return "muc-element";
    }
    if (kind == StanzaKind::Iq && (c->ns() == kNsMucAdmin || c->ns() == kNsMucOwner)) {
      return "muc-admin";
    }
  }
  for (std::string_view attr : {"to", "from"}) {
    const auto d = domain_of(stanza, attr);
    if (!d) continue;
    for (const DomainPattern& p : config_.muc_services) {
      if (p.matches(*d)) return "muc-service";
    }
  }
  return {};
}

Verdict ChatModeFilter::evaluate(xmpp::Element& stanza, const StanzaContext&) const {
  const StanzaKind kind = kind_of(stanza);
  if (kind == StanzaKind::Other) return Verdict::no_opinion();
  const std::string_view reason = muc_reason(stanza);
  if (!reason.empty()) {
    if (config_.block_muc) return blocked(*config_.block_muc, "muc", std::string(reason));
    return Verdict::no_opinion();
  }
  if (config_.block_one_to_one && kind == StanzaKind::Message) {
    const std::string type = effective_type(stanza, kind);
    if (type == "chat" || type == "normal") {
      return blocked(*config_.block_one_to_one, "chat", "one-to-one");
    }
  }
  return Verdict::no_opinion();
}

}  // namespace portcullis::policy::content
