// Shared vocabulary of the content and traffic filters (policy/content).
//
// Control-plane helpers read a filter's settings from its PolicyNode and stop
// the load (PolicyNode::fail -> config::ConfigError "file:line:col: ...") on
// anything that does not make sense. Data-path helpers never throw (beyond
// allocation failure, which the runner turns into a Reject).
//
// Conventions shared by every filter of this family (docs/policy-guide.md):
//  - Content filters restrict or transform; they never Accept. A stanza they
//    let through gets NoOpinion, so the filters after them still run and the
//    release still needs an explicit allow (domain-pair-allow) later on.
//  - Every rule has an `id`; every Reject/Modify carries the id of the rule
//    that decided, and a NoOpinion carries it when a rule looked at the stanza.
//  - A rule with shadow="true" decides but does not enforce: the filter records
//    ("shadow", "<rule id> would <reject|modify>") and carries on as if the rule
//    had not matched. Filter-level shadow is the pipeline's business.
//  - Error texts name the rule's reason, never stanza content (XEP-0205).
//  - Element names in notes: a child in the stanza's own namespace is written
//    by its local name ("status"), any other as "{namespace}local".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guard/xmpp/element.h"
#include "guard/xmpp/jid.h"
#include "policy/filter.h"
#include "policy/policy_node.h"
#include "policy/registry.h"

namespace portcullis::policy::content {

// ---------- control plane ----------

// The filter's element in the policy file; throws config::ConfigError at the
// spec's position when the spec has none (the filter is only defined in the
// policy file, never in the appliance config).
const PolicyNode& node_of(const FilterSpec& spec);

// An xs:boolean attribute ("true"/"false"/"1"/"0"); `fallback` when absent.
// Any other value fails the load.
bool bool_attr(const PolicyNode& node, std::string_view key, bool fallback);

// A non-negative integer attribute, or nullopt when absent. Fails the load on
// anything else (no coercion).
std::optional<std::size_t> size_attr(const PolicyNode& node, std::string_view key);

// A rule's id attribute (required).
const std::string& rule_id_of(const PolicyNode& node);

// A domain pattern for peers and services: "example.org" (exactly), "*.example.org"
// (any strict subdomain) or, where allowed, "*" (any domain).
class DomainPattern {
 public:
  // Parses `text` as written at `where`; fails the load if it is not a valid
  // pattern (or is "*" and `allow_any` is false).
  static DomainPattern parse(const PolicyNode& where, const std::string& text, bool allow_any);
  bool matches(std::string_view domain) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  bool any_ = false;
};

// A JID pattern for users: "alice@example.org" (that bare JID, any resource),
// "example.org" (every JID at that domain, and the domain itself) or
// "*.example.org" (every JID at any strict subdomain). Localparts compare
// ASCII-case-insensitively (no PRECIS on the appliance; a variant that escapes
// the comparison is simply not allowed: fail closed).
class JidPattern {
 public:
  static JidPattern parse(const PolicyNode& where, const std::string& text);
  bool matches(const xmpp::Jid& jid) const;
  const std::string& text() const { return text_; }
  // A plain domain ("example.org"), as opposed to a user or "*.domain".
  bool is_domain() const { return kind_ == Kind::Domain; }

 private:
  enum class Kind { BareJid, Domain, Subdomains };
  Kind kind_ = Kind::Domain;
  std::string text_, local_, domain_;
};

// ---------- data path ----------

enum class StanzaKind { Message, Presence, Iq, Other };

// The stanza kind; Other for anything not a message/presence/iq in the
// jabber:server or jabber:client namespace.
StanzaKind kind_of(const xmpp::Element& stanza);
std::string_view to_string(StanzaKind k);

// The stanza's 'type', with RFC 6120/6121 defaults: "normal" for a message,
// "available" for a presence, "" for an iq without one.
std::string effective_type(const xmpp::Element& stanza, StanzaKind kind);

// How a child is named in notes (see file comment).
std::string note_name(const xmpp::Element& stanza, const xmpp::Element& child);

// Notes collected while a filter evaluates, attached to its final verdict.
using Notes = std::vector<std::pair<std::string, std::string>>;

// Records a rule-level shadow decision: ("shadow", "<rule id> would <would>").
void add_shadow_note(Notes& notes, const std::string& rule_id, std::string_view would);

// `v` with `notes` put before its own notes (they were recorded first).
Verdict with_notes(Verdict v, Notes notes);

// Lower-cases ASCII letters only.
std::string ascii_lower(std::string_view s);

}  // namespace portcullis::policy::content
