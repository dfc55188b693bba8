// Verdict constructors and names (declared in policy/filter.h).
#include "policy/filter.h"

namespace portcullis::policy {

std::string_view to_string(VerdictKind k) {
  switch (k) {
    case VerdictKind::Accept: return "accept";
    case VerdictKind::NoOpinion: return "no-opinion";
    case VerdictKind::Reject: return "reject";
    case VerdictKind::Modify: return "modify";
  }
  return "unknown";
}

Verdict Verdict::accept(std::string rule) {
  Verdict v;
  v.kind = VerdictKind::Accept;
  v.rule_id = std::move(rule);
  return v;
}

Verdict Verdict::no_opinion(std::string rule) {
  Verdict v;
  v.kind = VerdictKind::NoOpinion;
  v.rule_id = std::move(rule);
  return v;
}

Verdict Verdict::reject(std::string rule, xmpp::StanzaErrorCondition c, std::string text) {
  Verdict v;
  v.kind = VerdictKind::Reject;
  v.rule_id = std::move(rule);
  xmpp::StanzaError e;
  e.condition = c;
  e.type = xmpp::default_type(c);
  e.text = std::move(text);
  v.error = std::move(e);
  return v;
}

Verdict Verdict::modify(std::string rule, std::string transformation) {
  Verdict v;
  v.kind = VerdictKind::Modify;
  v.rule_id = std::move(rule);
  v.transformation = std::move(transformation);
  return v;
}

}  // namespace portcullis::policy
