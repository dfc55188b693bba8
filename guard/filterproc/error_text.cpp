#include "guard/filterproc/error_text.h"

#include "guard/rooms/irc_note.h"

namespace portcullis::filterproc {

namespace {

xmpp::Element closed_error(const std::string& ns, const xmpp::StanzaError& error, const char* text) {
  xmpp::Element e(ns, "error");
  e.set_attr("type", std::string(xmpp::to_string(error.type)));
  e.add_child(std::string(xmpp::kNsStanzas), std::string(xmpp::to_string(error.condition)));
  if (text != nullptr) {
    xmpp::Element& t = e.add_child(std::string(xmpp::kNsStanzas), "text");
    t.attributes().push_back(xmpp::Attribute{"xml", "lang", std::string(xmpp::kNsXml), "en"});
    t.add_text(text);
  }
  return e;
}

std::string texts_of(const xmpp::Element& stanza) {
  std::string out;
  for (const auto* err : stanza.child_elements()) {
    if (err->name() != "error") continue;
    for (const auto* c : err->child_elements()) {
      if (c->name() != "text") continue;
      if (!out.empty()) out += " | ";
      out += c->text();
    }
  }
  return out;
}

}  // namespace

std::string remove_error_text(xmpp::Element& stanza, const xmpp::StanzaError& error, bool edge_bounce) {
  std::string removed = texts_of(stanza);
  if (edge_bounce) {
    xmpp::Element rebuilt(stanza.ns(), stanza.name());
    for (const char* a : {"from", "to", "id"}) {
      if (const std::string* v = stanza.attr(a)) rebuilt.set_attr(a, *v);
    }
    rebuilt.set_attr("type", "error");
    rebuilt.add_child(closed_error(stanza.ns(), error, kBounceText));
    stanza = std::move(rebuilt);
    return removed;
  }
  for (auto& node : stanza.children()) {
    if (node.is_element() && node.element->name() == "error" && node.element->ns() == stanza.ns()) {
      // An IRC link's note is closed words too: it crosses, rebuilt from the
      // values it was read as (never its bytes), so a far author learns why.
      const std::optional<rooms::IrcNote> note = rooms::read_irc_note(stanza);
      *node.element = closed_error(stanza.ns(), error, nullptr);
      if (note) node.element->add_child(rooms::make_irc_note(*note));
      break;   // read_stanza_error accepted exactly one
    }
  }
  return removed;
}

}  // namespace portcullis::filterproc
