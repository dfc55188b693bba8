#include "policy/policy_explain.h"

#include <stdexcept>

#include "guard/xmpp/stream_parser.h"
#include "policy/pipeline.h"

namespace portcullis::policy {

namespace {

std::string describe_error(const xmpp::StanzaError& e) {
  std::string s = std::string(xmpp::to_string(e.condition)) + " (type " +
                  std::string(xmpp::to_string(e.type)) + ")";
  if (!e.text.empty()) s += " \"" + e.text + "\"";
  return s;
}

// (Not ipc::to_string: the policy libraries use the frame types, not the ipc library.)
std::string_view auth_name(ipc::AuthMethod a) {
  switch (a) {
    case ipc::AuthMethod::SaslExternal: return "sasl-external";
    case ipc::AuthMethod::Dialback: return "dialback";
    case ipc::AuthMethod::Internal: return "internal";
    case ipc::AuthMethod::Hosted: return "hosted";
    case ipc::AuthMethod::None: break;
  }
  return "none";
}

}  // namespace

Decision explain_stanza(const LoadedPolicy& policy, xmpp::Element& stanza, const StanzaContext& ctx,
                        std::ostream& out) {
  const bool l2h = ctx.direction != ipc::Direction::HighToLow;
  const Pipeline& pipeline = l2h ? policy.pipelines.low_to_high : policy.pipelines.high_to_low;
  out << "policy " << policy.version << " sha256 " << policy.sha256 << "\n"
      << "direction " << (l2h ? "low-to-high" : "high-to-low") << ", peer "
      << (ctx.peer_domain.empty() ? "(none)" : ctx.peer_domain) << ", auth "
      << auth_name(ctx.auth) << ", tls " << (ctx.peer_tls ? "yes" : "no") << ", "
      << pipeline.size() << " filters\n";

  const Decision d = pipeline.run(stanza, ctx);

  int step = 0;
  for (const TrailEntry& t : d.trail) {
    out << "  " << ++step << ". " << t.filter << " (" << t.type << "): " << to_string(t.verdict.kind);
    if (!t.verdict.rule_id.empty()) out << ", rule " << t.verdict.rule_id;
    if (t.shadow) out << ", SHADOW (recorded, not enforced)";
    out << "\n";
    if (t.verdict.kind == VerdictKind::Reject && t.verdict.error) {
      out << "       error " << describe_error(*t.verdict.error) << "\n";
    }
    if (t.verdict.kind == VerdictKind::Modify) {
      out << "       transformation " << t.verdict.transformation << "\n";
    }
    for (const auto& [key, value] : t.verdict.notes) out << "       note " << key << " = " << value << "\n";
  }
  if (d.trail.size() < pipeline.size()) {
    out << "  (the remaining " << pipeline.size() - d.trail.size()
        << " filters did not run: the decision was already made)\n";
  }

  const std::string& rule = d.final_verdict.rule_id;
  // The filter that ended the pipeline: the last enforced one that ran.
  std::string decider;
  for (const TrailEntry& t : d.trail)
    if (!t.shadow) decider = t.filter;
  if (d.release) {
    out << "outcome: RELEASED by " << decider << ", rule " << rule << "\n";
    if (!d.transformations.empty()) {
      out << "transformations:";
      for (const auto& t : d.transformations) out << " " << t;
      out << "\n";
    }
    out << "released stanza" << (d.transformations.empty() ? " (unchanged)" : " (transformed)")
        << ":\n" << stanza.serialize() << "\n";
  } else {
    out << "outcome: REJECTED by ";
    if (rule == kRuleDefaultDeny) {
      out << "the default deny (no filter accepted the stanza)";
    } else {
      out << decider << ", rule " << rule;
    }
    out << "\n";
    if (d.final_verdict.error) {
      out << "error to the sender: " << describe_error(*d.final_verdict.error) << "\n";
    } else {
      out << "error to the sender: policy-violation (type cancel) \"blocked by policy\"\n";
    }
    if (!xmpp::may_bounce(stanza)) out << "(no error is sent: bounce rules forbid answering this stanza: an error, an iq result, a presence other than a MUC join, or a headline)\n";
  }
  return d;
}

xmpp::Element parse_stanza_text(const std::string& text) {
  std::string_view s = text;
  auto skip_space = [&] {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
      s.remove_prefix(1);
  };
  skip_space();
  if (s.starts_with("<?xml")) {
    const auto end = s.find("?>");
    if (end == std::string_view::npos) throw std::runtime_error("unterminated XML declaration");
    s.remove_prefix(end + 2);
    skip_space();
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);

  std::string body(s);
  std::string error;
  auto parsed = xmpp::parse_element(body, {}, &error);
  if (parsed && parsed->ns().empty() && body.size() > 1 && body[0] == '<') {
    // Written without a namespace: give it the server namespace, as it would
    // carry on an S2S stream.
    const auto name_end = body.find_first_of(" \t\r\n/>", 1);
    body.insert(name_end, " xmlns='jabber:server'");
    parsed = xmpp::parse_element(body, {}, &error);
  }
  if (!parsed) throw std::runtime_error("not a stanza: " + error);
  return std::move(*parsed);
}

}  // namespace portcullis::policy
