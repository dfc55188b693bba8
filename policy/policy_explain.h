// "What would the policy do with this stanza?": the report behind
// `portcullis-policy explain`, for a security officer trialling a policy.
//
// explain_stanza() runs the stanza through one direction's pipeline of a
// loaded policy, in-process and exactly as the filter process would (same
// runner, same filters, same fail-closed rules), and writes a plain-text
// report: every filter that ran in order with its verdict, rule id, shadow
// flag and notes; the outcome (released, or rejected with the error
// condition and text the sender would get); and the stanza as it would be
// released (serialized, after any transformations). Nothing is sent anywhere.
#pragma once

#include <ostream>
#include <string>

#include "guard/xmpp/element.h"
#include "policy/filter.h"
#include "policy/policy_file.h"

namespace portcullis::policy {

// Runs `stanza` (modified in place by transformations) through the pipeline of
// ctx.direction (LowToHigh or HighToLow), writes the report to `out` and
// returns the decision.
Decision explain_stanza(const LoadedPolicy& policy, xmpp::Element& stanza, const StanzaContext& ctx,
                        std::ostream& out);

// Parses a stanza written by hand: an optional XML declaration and surrounding
// whitespace are skipped, and a top-level element without a namespace gets
// xmlns='jabber:server' (the S2S namespace the pipeline sees). Throws
// std::runtime_error with the parser's message if it is not one element.
xmpp::Element parse_stanza_text(const std::string& text);

}  // namespace portcullis::policy
