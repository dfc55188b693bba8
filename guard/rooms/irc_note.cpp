#include "guard/rooms/irc_note.h"

#include <algorithm>

namespace portcullis::rooms {

namespace {

struct NoteWord {
  IrcNoteReason reason;
  std::string_view word, text;
};
constexpr NoteWord kNoteWords[] = {
    {IrcNoteReason::Label, "label", "its label is not within the IRC link's clearance"},
    {IrcNoteReason::LineCap, "line-cap", ""},
    {IrcNoteReason::Away, "away", "the IRC channel, or the author's IRC connection, was away"},
    {IrcNoteReason::NoConnection, "no-connection", "the IRC link has no connection for its author (max-puppets)"},
    {IrcNoteReason::NoUser, "no-user", "no IRC user has that nick"},
    {IrcNoteReason::NotSent, "not-sent", "the IRC link could not send it"},
};

}  // namespace

xmpp::Element make_irc_note(const IrcNote& note) {
  xmpp::Element e(std::string(kNsIrcNote), "irc");
  for (const NoteWord& w : kNoteWords) {
    if (w.reason == note.reason) e.set_attr("reason", std::string(w.word));
  }
  // What parse_irc_note reads back: at most 4 digits.
  if (note.reason == IrcNoteReason::LineCap) e.set_attr("lines", std::to_string(std::clamp(note.lines, 0, 9999)));
  return e;
}

std::optional<IrcNote> read_irc_note(const xmpp::Element& st) {
  const xmpp::Element* error = st.find_child("error", st.ns());
  if (error == nullptr) return std::nullopt;
  const xmpp::Element* n = nullptr;
  for (const xmpp::Element* c : error->child_elements()) {
    if (c->ns() != kNsIrcNote) continue;
    if (n != nullptr) return std::nullopt;
    n = c;
  }
  return n == nullptr ? std::nullopt : parse_irc_note(*n);
}

std::optional<IrcNote> parse_irc_note(const xmpp::Element& n) {
  if (n.ns() != kNsIrcNote || n.name() != "irc" || !n.children().empty()) return std::nullopt;
  for (const auto& a : n.attributes()) {
    if (!a.ns.empty() || (a.local != "reason" && a.local != "lines")) return std::nullopt;
  }
  IrcNote note;
  bool known = false;
  for (const NoteWord& w : kNoteWords) {
    if (n.attr_or("reason") == w.word) {
      note.reason = w.reason;
      known = true;
    }
  }
  if (!known) return std::nullopt;
  const std::string lines = n.attr_or("lines");
  if (note.reason == IrcNoteReason::LineCap) {
    if (lines.empty() || lines.size() > 4 || lines.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    note.lines = std::stoi(lines);
  } else if (n.attr("lines") != nullptr) {
    return std::nullopt;
  }
  return note;
}

std::string describe(const IrcNote& note) {
  if (note.reason == IrcNoteReason::LineCap) {
    return "it was cut to " + std::to_string(note.lines) + " IRC line(s) at the IRC link's line cap";
  }
  for (const NoteWord& w : kNoteWords) {
    if (w.reason == note.reason) return std::string(w.text);
  }
  return {};
}

}  // namespace portcullis::rooms
