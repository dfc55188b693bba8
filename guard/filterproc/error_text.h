// Error stanzas that cross the boundary carry no text chosen beyond it.
//
// An error's <text/>, its 'by', application-specific conditions and the
// content of a condition (<gone/> and <redirect/> carry a URI) are free text
// or free XML picked by whoever made the error: a far server, a far edge's
// parser (its error messages quote the hostile input), or a compromised edge.
// None of that is needed to tell the sender what happened, and each is a
// channel across the boundary no policy filter reads. So an error stanza is
// released with only what the closed sets allow: its type and one defined
// condition, read by xmpp::read_stanza_error, and an IRC link's note
// (guard/rooms/irc_note.h: a reason and a line count from a closed set), rebuilt
// from the values read. The original bytes stay in the
// audit record and the removed text in the filter's log.
#pragma once

#include <string>

#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_error.h"

namespace portcullis::filterproc {

// The appliance's own text on a bounce that crosses back to the sender.
inline constexpr const char* kBounceText = "The far side of the boundary could not deliver this stanza";

// The name of this transformation in the audit record and the log.
inline constexpr const char* kErrorTextTransformation = "error-text-removed";

// Rewrites an error stanza (type='error') that read_stanza_error accepted as
// `error`, and returns the free text it removed (the <text/> contents), for
// the log.
//  - `edge_bounce` (auth Internal: the far edge made it): the stanza is rebuilt
//    from scratch: kind, from, to, id, type='error' and an <error/> with the
//    type, the condition and kBounceText. Nothing else the far edge wrote
//    survives.
//  - otherwise (an error from a far peer that the policy released): its
//    <error/> child is replaced by one with only the type and the condition;
//    the rest of the stanza is left as the policy released it.
std::string remove_error_text(xmpp::Element& stanza, const xmpp::StanzaError& error, bool edge_bounce);

}  // namespace portcullis::filterproc
