#include "policy/content/common.h"

#include <charconv>

namespace portcullis::policy::content {

const PolicyNode& node_of(const FilterSpec& spec) {
  if (spec.node == nullptr) {
    throw config::ConfigError(spec.file, spec.line, spec.column,
                              "filter type '" + spec.type +
                                  "' is only available in a policy file (it has no element here)");
  }
  return *spec.node;
}

bool bool_attr(const PolicyNode& node, std::string_view key, bool fallback) {
  const std::string* v = node.attr(key);
  if (v == nullptr) return fallback;
  if (*v == "true" || *v == "1") return true;
  if (*v == "false" || *v == "0") return false;
  node.fail("attribute '" + std::string(key) + "' of <" + node.name +
            "> must be true or false, not '" + *v + "'");
}

std::optional<std::size_t> size_attr(const PolicyNode& node, std::string_view key) {
  const std::string* v = node.attr(key);
  if (v == nullptr) return std::nullopt;
  std::size_t out = 0;
  const char* end = v->data() + v->size();
  const auto [ptr, ec] = std::from_chars(v->data(), end, out);
  if (v->empty() || ec != std::errc() || ptr != end) {
    node.fail("attribute '" + std::string(key) + "' of <" + node.name +
              "> must be a non-negative integer, not '" + *v + "'");
  }
  return out;
}

const std::string& rule_id_of(const PolicyNode& node) {
  const std::string& id = node.required("id");
  if (id.empty()) node.fail("<" + node.name + "> has an empty 'id'");
  return id;
}

DomainPattern DomainPattern::parse(const PolicyNode& where, const std::string& text,
                                   bool allow_any) {
  DomainPattern p;
  p.text_ = text;
  if (text == "*") {
    if (!allow_any) where.fail("'*' (any domain) is not allowed in <" + where.name + ">");
    p.any_ = true;
    return p;
  }
  const std::string_view base =
      text.size() > 2 && text.compare(0, 2, "*.") == 0 ? std::string_view(text).substr(2) : text;
  if (!xmpp::normalize_domain(base)) {
    where.fail("'" + text + "' is not a domain pattern (example.org, *.example.org" +
               std::string(allow_any ? " or *)" : ")"));
  }
  return p;
}

bool DomainPattern::matches(std::string_view domain) const {
  return any_ || xmpp::domain_matches(text_, domain);
}

JidPattern JidPattern::parse(const PolicyNode& where, const std::string& text) {
  JidPattern p;
  p.text_ = text;
  if (text.size() > 2 && text.compare(0, 2, "*.") == 0) {
    const auto d = xmpp::normalize_domain(std::string_view(text).substr(2));
    if (!d) where.fail("'" + text + "' is not a JID pattern: bad domain after '*.'");
    p.kind_ = Kind::Subdomains;
    p.domain_ = *d;
    return p;
  }
  const auto jid = xmpp::parse_jid(text);
  if (!jid) {
    where.fail("'" + text + "' is not a JID pattern (alice@example.org, example.org or *.example.org)");
  }
  if (!jid->resource.empty()) {
    where.fail("'" + text + "' names a resource; user patterns are bare JIDs or domains");
  }
  p.domain_ = jid->domain;
  if (jid->local.empty()) {
    p.kind_ = Kind::Domain;
  } else {
    p.kind_ = Kind::BareJid;
    p.local_ = ascii_lower(jid->local);
  }
  return p;
}

bool JidPattern::matches(const xmpp::Jid& jid) const {
  switch (kind_) {
    case Kind::BareJid: return jid.domain == domain_ && ascii_lower(jid.local) == local_;
    case Kind::Domain: return jid.domain == domain_;
    case Kind::Subdomains: return xmpp::domain_matches("*." + domain_, jid.domain);
  }
  return false;
}

StanzaKind kind_of(const xmpp::Element& stanza) {
  if (stanza.ns() != xmpp::kNsServer && stanza.ns() != xmpp::kNsClient) return StanzaKind::Other;
  if (stanza.name() == "message") return StanzaKind::Message;
  if (stanza.name() == "presence") return StanzaKind::Presence;
  if (stanza.name() == "iq") return StanzaKind::Iq;
  return StanzaKind::Other;
}

std::string_view to_string(StanzaKind k) {
  switch (k) {
    case StanzaKind::Message: return "message";
    case StanzaKind::Presence: return "presence";
    case StanzaKind::Iq: return "iq";
    case StanzaKind::Other: return "other";
  }
  return "other";
}

std::string effective_type(const xmpp::Element& stanza, StanzaKind kind) {
  if (const std::string* t = stanza.attr("type")) return *t;
  switch (kind) {
    case StanzaKind::Message: return "normal";
    case StanzaKind::Presence: return "available";
    default: return {};
  }
}

std::string note_name(const xmpp::Element& stanza, const xmpp::Element& child) {
  if (child.ns() == stanza.ns()) return child.name();
  return "{" + child.ns() + "}" + child.name();
}

void add_shadow_note(Notes& notes, const std::string& rule_id, std::string_view would) {
  notes.emplace_back("shadow", rule_id + " would " + std::string(would));
}

Verdict with_notes(Verdict v, Notes notes) {
  if (notes.empty()) return v;
  notes.insert(notes.end(), std::make_move_iterator(v.notes.begin()),
               std::make_move_iterator(v.notes.end()));
  v.notes = std::move(notes);
  return v;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace portcullis::policy::content
