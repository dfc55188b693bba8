#include "policy/content/stanza_kinds.h"

#include <sstream>

namespace portcullis::policy::content {

namespace {

// RFC 6120 / 6121 types per kind: anything else in `types` is a typo.
const std::set<std::string, std::less<>>& known_types(StanzaKind k) {
  static const std::set<std::string, std::less<>> message{"normal", "chat", "groupchat",
                                                          "headline", "error"};
  static const std::set<std::string, std::less<>> presence{
      "available", "unavailable", "subscribe", "subscribed", "unsubscribe",
      "unsubscribed", "probe", "error"};
  static const std::set<std::string, std::less<>> iq{"get", "set", "result", "error"};
  return k == StanzaKind::Message ? message : k == StanzaKind::Presence ? presence : iq;
}

std::optional<KindRule> read_kind(const PolicyNode& filter, StanzaKind kind) {
  const std::string kname(to_string(kind));
  const auto nodes = filter.children_named(kname);
  if (nodes.empty()) return std::nullopt;
  if (nodes.size() > 1) nodes[1]->fail("<" + kname + "> appears more than once");
  const PolicyNode& n = *nodes.front();
  KindRule r;
  r.id = rule_id_of(n);
  r.shadow = bool_attr(n, "shadow", false);
  r.max_bytes = size_attr(n, "max-bytes");
  std::istringstream types(n.required("types"));
  for (std::string t; types >> t;) {
    if (!known_types(kind).count(t)) n.fail("'" + t + "' is not a " + kname + " type");
    r.types.insert(t);
  }
  for (const PolicyNode* p : n.children_named("payload")) {
    if (kind != StanzaKind::Iq) p->fail("<payload> is only meaningful in <iq>");
    IqPayloadRule pr{rule_id_of(*p), p->required("ns"), p->attr_or("element", "")};
    if (pr.ns.empty()) p->fail("<payload> has an empty 'ns'");
    r.payloads.push_back(std::move(pr));
  }
  return r;
}

Verdict too_big(const KindRule& r) {
  Verdict v = Verdict::reject(r.id, xmpp::StanzaErrorCondition::NotAllowed,
                              "stanza larger than " + std::to_string(*r.max_bytes) + " bytes");
  v.error->type = xmpp::StanzaErrorType::Modify;
  v.error->app = xmpp::Element(std::string(xmpp::kNsXmppErrors), "stanza-too-big");
  v.notes.emplace_back("check", "size");
  return v;
}

Verdict refused(const std::string& rule, xmpp::StanzaErrorCondition c, std::string text,
                std::string check) {
  Verdict v = Verdict::reject(rule, c, std::move(text));
  v.notes.emplace_back("check", std::move(check));
  return v;
}

}  // namespace

StanzaKindsFilter::StanzaKindsFilter(std::string name, StanzaKindsConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

std::shared_ptr<const Filter> StanzaKindsFilter::from_spec(const FilterSpec& spec) {
  const PolicyNode& node = node_of(spec);
  StanzaKindsConfig cfg;
  cfg.message = read_kind(node, StanzaKind::Message);
  cfg.presence = read_kind(node, StanzaKind::Presence);
  cfg.iq = read_kind(node, StanzaKind::Iq);
  return std::make_shared<StanzaKindsFilter>(spec.name, std::move(cfg));
}

Verdict StanzaKindsFilter::evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const {
  const StanzaKind kind = kind_of(stanza);
  const std::optional<KindRule>* rule_slot =
      kind == StanzaKind::Message    ? &config_.message
      : kind == StanzaKind::Presence ? &config_.presence
      : kind == StanzaKind::Iq       ? &config_.iq
                                     : nullptr;
  if (rule_slot == nullptr || !rule_slot->has_value()) {
    return refused(std::string(kRuleKindNotListed), xmpp::StanzaErrorCondition::PolicyViolation,
                   "this kind of stanza is not allowed across this boundary", "kind");
  }
  const KindRule& r = **rule_slot;

  // Each check yields a refusal or nothing; a shadow rule records what it
  // would have refused and lets the stanza through.
  std::optional<Verdict> refusal;
  const std::size_t size = ctx.wire_bytes != 0 ? ctx.wire_bytes : stanza.serialize().size();
  const std::string type = effective_type(stanza, kind);
  std::string payload_rule;
  if (r.max_bytes && size > *r.max_bytes) {
    refusal = too_big(r);
  } else if (!r.types.count(type)) {
    refusal = refused(r.id, xmpp::StanzaErrorCondition::PolicyViolation,
                      std::string(to_string(kind)) + " of this type is not allowed across this boundary",
                      "type");
  } else if (kind == StanzaKind::Iq && (type == "get" || type == "set")) {
    const auto payloads = stanza.child_elements();
    if (payloads.size() != 1) {
      refusal = refused(r.id, xmpp::StanzaErrorCondition::BadRequest,
                        "an iq request must carry exactly one payload", "payload-count");
    } else {
      const xmpp::Element& p = *payloads.front();
      for (const IqPayloadRule& pr : r.payloads) {
        if (pr.ns == p.ns() && (pr.local.empty() || pr.local == p.name())) {
          payload_rule = pr.id;
          break;
        }
      }
      if (payload_rule.empty()) {
        refusal = refused(r.id, xmpp::StanzaErrorCondition::ServiceUnavailable,
                          "this request is not available across this boundary", "payload");
      }
    }
  }

  if (refusal && !r.shadow) return std::move(*refusal);
  Verdict v = Verdict::no_opinion(r.id);
  if (refusal) {
    Notes notes;
    add_shadow_note(notes, r.id,
                    "reject: " + std::string(xmpp::to_string(refusal->error->condition)));
    notes.insert(notes.end(), refusal->notes.begin(), refusal->notes.end());
    return with_notes(std::move(v), std::move(notes));
  }
  if (!payload_rule.empty()) v.notes.emplace_back("payload", payload_rule);
  return v;
}

}  // namespace portcullis::policy::content
