#include "policy/content/peer_requirements.h"

#include <optional>
#include <sstream>

namespace portcullis::policy::content {

namespace {

// Local names (the policy's words) so this library needs no link to guard/ipc.
std::string_view auth_name(ipc::AuthMethod a) {
  switch (a) {
    case ipc::AuthMethod::None: return "none";
    case ipc::AuthMethod::SaslExternal: return "sasl-external";
    case ipc::AuthMethod::Dialback: return "dialback";
    case ipc::AuthMethod::Internal: return "internal";
    case ipc::AuthMethod::Hosted: return "hosted";
  }
  return "unknown";
}

}  // namespace

PeerRequirementsFilter::PeerRequirementsFilter(std::string name, PeerRequirementsConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

std::shared_ptr<const Filter> PeerRequirementsFilter::from_spec(const FilterSpec& spec) {
  const PolicyNode& node = node_of(spec);
  PeerRequirementsConfig cfg;
  const std::string internal = node.attr_or("internal", "pass");
  if (internal == "pass") cfg.internal_passes = true;
  else if (internal == "check") cfg.internal_passes = false;
  else node.fail("internal must be pass or check, not '" + internal + "'");

  for (const PolicyNode* p : node.children_named("peer")) {
    PeerRule r;
    r.id = rule_id_of(*p);
    r.match = DomainPattern::parse(*p, p->required("match"), true);
    // Both are required: the officer states each requirement, nothing defaults.
    if (!p->attr("require-tls")) p->fail("<peer> needs the attribute 'require-tls'");
    r.require_tls = bool_attr(*p, "require-tls", true);
    std::istringstream methods(p->required("auth"));
    for (std::string m; methods >> m;) {
      if (m == "sasl-external") r.allow_sasl_external = true;
      else if (m == "dialback") r.allow_dialback = true;
      else if (m == "internal") r.allow_internal = true;
      else if (m == "hosted") r.allow_hosted = true;
      else p->fail("'" + m + "' is not an authentication method (sasl-external, dialback, internal, hosted)");
    }
    if (!r.allow_sasl_external && !r.allow_dialback && !r.allow_internal && !r.allow_hosted) {
      p->fail("<peer> 'auth' lists no method: no peer could ever pass");
    }
    r.shadow = bool_attr(*p, "shadow", false);
    cfg.rules.push_back(std::move(r));
  }
  if (cfg.rules.empty()) node.fail("<peer-requirements> has no <peer> rule");
  return std::make_shared<PeerRequirementsFilter>(spec.name, std::move(cfg));
}

Verdict PeerRequirementsFilter::evaluate(xmpp::Element&, const StanzaContext& ctx) const {
  if (ctx.auth == ipc::AuthMethod::None) {
    Verdict v = Verdict::reject(std::string(kRuleUnauthenticated),
                                xmpp::StanzaErrorCondition::NotAuthorized,
                                "the link this stanza came on is not authenticated");
    v.notes.emplace_back("check", "auth");
    return v;
  }
  if ((ctx.auth == ipc::AuthMethod::Internal || ctx.auth == ipc::AuthMethod::Hosted) && config_.internal_passes) {
    // Made inside the appliance (a bounce, or a hosted room's FMUC): no peer link to judge.
    Verdict v = Verdict::no_opinion();
    v.notes.emplace_back(ctx.auth == ipc::AuthMethod::Hosted ? "hosted" : "internal", "pass");
    return v;
  }

  const PeerRule* rule = nullptr;
  for (const PeerRule& r : config_.rules) {
    if (r.match.matches(ctx.peer_domain)) {
      rule = &r;
      break;
    }
  }
  if (rule == nullptr) return Verdict::no_opinion();

  std::optional<Verdict> refusal;
  if (rule->require_tls && !ctx.peer_tls) {
    refusal = Verdict::reject(rule->id, xmpp::StanzaErrorCondition::PolicyViolation,
                              "this boundary requires an encrypted link");
    refusal->notes.emplace_back("check", "tls");
  } else {
    const bool ok = (ctx.auth == ipc::AuthMethod::SaslExternal && rule->allow_sasl_external) ||
                    (ctx.auth == ipc::AuthMethod::Dialback && rule->allow_dialback) ||
                    (ctx.auth == ipc::AuthMethod::Internal && rule->allow_internal) ||
                    (ctx.auth == ipc::AuthMethod::Hosted && rule->allow_hosted);
    if (!ok) {
      refusal = Verdict::reject(rule->id, xmpp::StanzaErrorCondition::NotAuthorized,
                                "this boundary requires stronger authentication of the link");
      refusal->notes.emplace_back("check", "auth");
      refusal->notes.emplace_back("auth", std::string(auth_name(ctx.auth)));
    }
  }
  if (!refusal) return Verdict::no_opinion(rule->id);
  if (!rule->shadow) return std::move(*refusal);
  Notes notes;
  add_shadow_note(notes, rule->id,
                  "reject: " + std::string(xmpp::to_string(refusal->error->condition)));
  notes.insert(notes.end(), refusal->notes.begin(), refusal->notes.end());
  return with_notes(Verdict::no_opinion(rule->id), std::move(notes));
}

}  // namespace portcullis::policy::content
