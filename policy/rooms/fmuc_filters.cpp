#include "policy/rooms/fmuc_filters.h"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "guard/rooms/irc_note.h"
#include "guard/xmpp/jid.h"

namespace portcullis::policy::rooms {

namespace {

constexpr std::string_view kNsFmuc = "http://isode.com/protocol/fmuc";
constexpr std::string_view kNsMucUser = "http://jabber.org/protocol/muc#user";
constexpr std::string_view kNsAddress = "http://jabber.org/protocol/address";

std::string bare_room(const PolicyNode& n, std::string_view attr) {
  const std::string& v = n.required(attr);
  auto j = xmpp::parse_jid(v);
  if (!j || j->local.empty() || !j->resource.empty()) {
    n.fail("<" + n.name + "> " + std::string(attr) + ": expected a room's bare JID (room@service), got '" + v + "'");
  }
  return j->bare();
}

std::string bare_of(const std::string& s) {
  auto j = xmpp::parse_jid(s);
  return j ? j->bare() : std::string{};
}

}  // namespace

bool is_fmuc_traffic(const xmpp::Element& stanza, const StanzaContext& ctx) {
  return ctx.auth == ipc::AuthMethod::Hosted || stanza.find_child("fmuc", kNsFmuc) != nullptr;
}

// ---- room-federation ----------------------------------------------------------

RoomFederationFilter::RoomFederationFilter(std::string name, std::vector<Rule> rules)
    : name_(std::move(name)), rules_(std::move(rules)) {}

std::shared_ptr<const Filter> RoomFederationFilter::from_spec(const FilterSpec& spec) {
  if (spec.node == nullptr) throw std::logic_error("room-federation needs its policy element");
  std::vector<Rule> rules;
  for (const PolicyNode* a : spec.node->children_named("allow")) {
    Rule r;
    r.id = a->required("id");
    for (const auto& e : rules) {
      if (e.id == r.id) a->fail("<allow> id: expected a rule id unique in <room-federation>, got '" + r.id + "' again");
    }
    r.from = bare_room(*a, "from");
    r.to = bare_room(*a, "to");
    const std::string sh = a->attr_or("shadow", "false");
    r.shadow = sh == "true" || sh == "1";
    rules.push_back(std::move(r));
  }
  return std::make_shared<const RoomFederationFilter>(spec.name, std::move(rules));
}

namespace {

constexpr std::string_view kNsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";

bool blank(const std::string& t) { return t.find_first_not_of(" \t\r\n") == std::string::npos; }

// No character data but white space directly in `e`.
bool no_text(const xmpp::Element& e) {
  return std::all_of(e.children().begin(), e.children().end(),
                     [](const xmpp::Node& n) { return n.is_element() || blank(n.text); });
}

// An error stanza that says nothing but its error: one <error/> holding one
// defined condition and at most one <text/> (RFC 6120 8.3), nothing else. An
// error carrying a body, addresses or an application payload is a channel of
// its own (label filters do not judge errors).
bool plain_error(const xmpp::Element& stanza) {
  if (stanza.attr_or("type") != "error" || !no_text(stanza)) return false;
  const std::vector<const xmpp::Element*> kids = stanza.child_elements();
  if (kids.size() != 1 || kids.front()->name() != "error" || kids.front()->ns() != stanza.ns()) return false;
  const xmpp::Element& err = *kids.front();
  if (!no_text(err)) return false;
  int conditions = 0, texts = 0, notes = 0;
  for (const xmpp::Element* c : err.child_elements()) {
    // An IRC link's note: closed words (a reason and a line count), read
    // exactly; less than the <text/> a plain error may carry anyway.
    if (c->ns() == portcullis::rooms::kNsIrcNote) {
      if (++notes > 1 || !portcullis::rooms::parse_irc_note(*c)) return false;
      continue;
    }
    if (c->ns() != kNsStanzas || !c->child_elements().empty()) return false;
    if (c->name() == "text") {
      ++texts;
    } else {
      ++conditions;
      // Only gone and redirect carry character data (a URI).
      if (c->name() != "gone" && c->name() != "redirect" && !no_text(*c)) return false;
    }
  }
  return conditions == 1 && texts <= 1;
}

// What two federated nodes exchange besides <fmuc/> stanzas: XEP-0199 pings
// between the rooms (a bare <ping/>), their empty results, and plain errors.
bool is_link_upkeep(const xmpp::Element& stanza) {
  const std::string type = stanza.attr_or("type");
  if (type == "error") return plain_error(stanza);
  if (stanza.name() != "iq" || !no_text(stanza)) return false;
  const std::vector<const xmpp::Element*> kids = stanza.child_elements();
  if (type == "result") return kids.empty();
  if (type != "get" || kids.size() != 1) return false;
  const xmpp::Element& ping = *kids.front();
  return ping.name() == "ping" && ping.ns() == "urn:xmpp:ping" && ping.child_elements().empty() && no_text(ping);
}

}  // namespace

Verdict RoomFederationFilter::evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const {
  const std::string from = bare_of(stanza.attr_or("from"));
  const std::string to = bare_of(stanza.attr_or("to"));
  if (!is_fmuc_traffic(stanza, ctx)) {
    // Pass-through (two FMUC nodes beyond the boundary, no room hosted here):
    // a ping, its result or an error between the two rooms of an allowed pair
    // is that pair's link upkeep, accepted by its rule. Anything else without
    // <fmuc/> is not this filter's to judge.
    if (!is_link_upkeep(stanza)) return Verdict::no_opinion();
    std::vector<std::pair<std::string, std::string>> shadowed;
    for (const Rule& r : rules_) {
      if (r.from != from || r.to != to) continue;
      if (r.shadow) {
        shadowed.emplace_back("shadow-match", r.id);
        continue;
      }
      Verdict v = Verdict::accept(r.id);
      v.notes = std::move(shadowed);
      return v;
    }
    Verdict v = Verdict::no_opinion();
    v.notes = std::move(shadowed);
    return v;
  }
  if (stanza.attr_or("type") == "error" && !plain_error(stanza)) {
    // An FMUC error that carries more than its error would cross unjudged.
    Verdict v = Verdict::reject(std::string(kRuleRoomErrorNotPlain), xmpp::StanzaErrorCondition::PolicyViolation,
                                "an error between federated rooms carries only its error");
    v.notes.emplace_back("room.from", from.empty() ? "(none)" : from);
    v.notes.emplace_back("room.to", to.empty() ? "(none)" : to);
    return v;
  }
  std::vector<std::pair<std::string, std::string>> notes;
  for (const Rule& r : rules_) {
    if (r.from != from || r.to != to) continue;
    if (r.shadow) {
      notes.emplace_back("shadow-match", r.id);
      continue;
    }
    Verdict v = Verdict::accept(r.id);
    v.notes = std::move(notes);
    return v;
  }
  Verdict v = Verdict::reject(std::string(kRuleRoomPairNotAllowed), xmpp::StanzaErrorCondition::PolicyViolation,
                              "these rooms may not federate across the boundary");
  notes.emplace_back("room.from", from.empty() ? "(none)" : from);
  notes.emplace_back("room.to", to.empty() ? "(none)" : to);
  v.notes = std::move(notes);
  return v;
}

// ---- pseudonyms ----------------------------------------------------------------

PseudonymTable::PseudonymTable(std::string key, std::string domain) : key_(std::move(key)), domain_(std::move(domain)) {}

std::string PseudonymTable::hash(const std::string& what, std::size_t bytes) const {
  unsigned char out[32];
  crypto_generichash(out, bytes, reinterpret_cast<const unsigned char*>(what.data()), what.size(),
                     reinterpret_cast<const unsigned char*>(key_.data()), key_.size());
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), out, bytes);
  hex.pop_back();
  return hex;
}

std::string PseudonymTable::pseudonym(const std::string& jid) const {
  auto j = xmpp::parse_jid(jid);
  if (!j) return "invalid@" + domain_;
  // A JID already in the pseudonym domain is hashed again: nobody can put
  // another user's pseudonym on a stanza and have it cross as theirs.
  // Localparts compare without case (RFC 7622 UsernameCaseMapped, ASCII here):
  // Alice and alice are one user and get one pseudonym.
  std::string local = j->local;
  for (char& c : local) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const std::string bare = local.empty() ? j->domain : local + "@" + j->domain;
  std::string p = hash("bare\n" + bare, 16) + "@" + domain_;
  if (!j->resource.empty()) p += "/" + hash("full\n" + bare + "/" + j->resource, 6);
  return p;
}

FmucPseudonymsFilter::FmucPseudonymsFilter(std::string name, std::shared_ptr<PseudonymTable> table)
    : name_(std::move(name)), table_(std::move(table)) {}

namespace {

std::string read_key(const PolicyNode& n) {
  const std::string path = n.resolve_path(n.required("key-file"));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) n.fail("<fmuc-pseudonyms> key-file: cannot read '" + path + "'");
  if ((st.st_mode & S_IROTH) != 0) {
    n.fail("<fmuc-pseudonyms> key-file: expected a file that is not world-readable, got '" + path + "'");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) n.fail("<fmuc-pseudonyms> key-file: cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string k = ss.str();
  while (!k.empty() && (k.back() == '\n' || k.back() == '\r' || k.back() == ' ')) k.pop_back();
  if (k.size() < 16) {
    n.fail("<fmuc-pseudonyms> key-file: expected a secret of at least 16 bytes, got " + std::to_string(k.size()) +
           " in '" + path + "'");
  }
  if (k.size() > crypto_generichash_KEYBYTES_MAX) {
    // Long secrets are hashed down to a key.
    unsigned char d[crypto_generichash_KEYBYTES_MAX];
    crypto_generichash(d, sizeof d, reinterpret_cast<const unsigned char*>(k.data()), k.size(), nullptr, 0);
    k.assign(reinterpret_cast<const char*>(d), sizeof d);
  }
  return k;
}

}  // namespace

std::shared_ptr<const Filter> FmucPseudonymsFilter::from_spec(const FilterSpec& spec) {
  if (spec.node == nullptr) throw std::logic_error("fmuc-pseudonyms needs its policy element");
  if (sodium_init() < 0) spec.node->fail("<fmuc-pseudonyms>: libsodium failed to initialise");
  const std::string& d = spec.node->required("domain");
  auto domain = xmpp::normalize_domain(d);
  if (!domain) spec.node->fail("<fmuc-pseudonyms> domain: expected a domain, got '" + d + "'");
  const std::string key = read_key(*spec.node);
  auto t = std::make_shared<PseudonymTable>(key, *domain);
  return std::make_shared<const FmucPseudonymsFilter>(spec.name, std::move(t));
}

Verdict FmucPseudonymsFilter::evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const {
  std::vector<std::pair<std::string, std::string>> notes;
  auto replace = [&](xmpp::Element& e, std::string_view attr, const std::string& why) {
    const std::string* v = e.attr(attr);
    if (v == nullptr || v->empty()) return;
    const std::string p = table_->pseudonym(*v);
    if (p == *v) return;
    notes.emplace_back(why, *v + " -> " + p);
    e.set_attr(attr, p);
  };
  const bool fmuc = is_fmuc_traffic(stanza, ctx);
  for (auto& c : stanza.children()) {
    if (!c.is_element()) continue;
    xmpp::Element& ch = *c.element;
    if (ch.ns() == kNsFmuc && ch.name() == "fmuc") {
      replace(ch, "from", "pseudonym.fmuc-from");
    } else if (fmuc && ch.ns() == kNsMucUser && ch.name() == "x") {
      for (auto& i : ch.children()) {
        if (i.is_element() && i.element->name() == "item" && i.element->ns() == kNsMucUser) {
          replace(*i.element, "jid", "pseudonym.item-jid");
          for (auto& a : i.element->children()) {
            if (a.is_element() && a.element->name() == "actor") replace(*a.element, "jid", "pseudonym.actor-jid");
          }
        } else if (i.is_element() && i.element->ns() == kNsMucUser &&
                   (i.element->name() == "invite" || i.element->name() == "decline")) {
          replace(*i.element, "from", "pseudonym." + i.element->name() + "-from");
          replace(*i.element, "to", "pseudonym." + i.element->name() + "-to");
        }
      }
    }
  }
  if (fmuc && stanza.remove_children("addresses", kNsAddress) > 0) notes.emplace_back("removed", "addresses");
  if (notes.empty()) return Verdict::no_opinion();
  Verdict v = Verdict::modify(name_, std::string(kTransformPseudonyms));
  v.notes = std::move(notes);
  return v;
}

void register_room_filters(FilterRegistry& registry) {
  registry.add(std::string(kTypeRoomFederation), &RoomFederationFilter::from_spec);
  registry.add(std::string(kTypeFmucPseudonyms), &FmucPseudonymsFilter::from_spec);
}

}  // namespace portcullis::policy::rooms
