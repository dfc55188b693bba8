// Why an IRC link refused or changed a room message, in closed words that may
// cross room links and the boundary (a remote node's free error text is never
// shown, and the boundary's room-federation filter lets this note through
// because it is closed): <irc xmlns='urn:portcullis:rooms:irc:1' reason='...'
// [lines='N']/> as the application condition of the stanza error. Our own
// extension; its own small library, so the edge's rooms and the filter's
// policy read it with the same code.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "guard/xmpp/element.h"

namespace portcullis::rooms {

inline constexpr std::string_view kNsIrcNote = "urn:portcullis:rooms:irc:1";
enum class IrcNoteReason { Label, LineCap, Away, NoConnection, NoUser, NotSent };
struct IrcNote {
  IrcNoteReason reason = IrcNoteReason::NotSent;
  int lines = 0;   // LineCap: the lines it was cut to
};
xmpp::Element make_irc_note(const IrcNote& note);
// `n` as a note: nullopt unless it is exactly of this vocabulary (element,
// namespace, a known reason, lines only for line-cap, no children or text).
std::optional<IrcNote> parse_irc_note(const xmpp::Element& n);
// The note of an error stanza's <error/>; nullopt if it has none, more than
// one, or one that is not exactly of this vocabulary.
std::optional<IrcNote> read_irc_note(const xmpp::Element& error_stanza);
// What a room tells an author about the note, in its own words.
std::string describe(const IrcNote& note);

}  // namespace portcullis::rooms
