#include "guard/xmpp/stream_error.h"

#include <array>
#include <utility>

namespace portcullis::xmpp {

namespace {

constexpr std::array<std::string_view, 25> kStreamConditions = {
    "bad-format",          "bad-namespace-prefix",    "conflict",
    "connection-timeout",  "host-gone",               "host-unknown",
    "improper-addressing", "internal-server-error",   "invalid-from",
    "invalid-namespace",   "invalid-xml",             "not-authorized",
    "not-well-formed",     "policy-violation",        "remote-connection-failed",
    "reset",               "resource-constraint",     "restricted-xml",
    "see-other-host",      "system-shutdown",         "undefined-condition",
    "unsupported-encoding", "unsupported-feature",    "unsupported-stanza-type",
    "unsupported-version",
};

constexpr std::array<std::string_view, 22> kStanzaConditions = {
    "bad-request",          "conflict",
    "feature-not-implemented", "forbidden",
    "gone",                 "internal-server-error",
    "item-not-found",       "jid-malformed",
    "not-acceptable",       "not-allowed",
    "not-authorized",       "policy-violation",
    "recipient-unavailable", "redirect",
    "registration-required", "remote-server-not-found",
    "remote-server-timeout", "resource-constraint",
    "service-unavailable",  "subscription-required",
    "undefined-condition",  "unexpected-request",
};

constexpr std::array<std::string_view, 5> kStanzaTypes = {"auth", "cancel", "continue", "modify",
                                                          "wait"};

template <typename Array, typename Enum>
std::string_view lookup(const Array& names, Enum e) {
  const auto i = static_cast<std::size_t>(e);
  return i < names.size() ? names[i] : std::string_view("undefined-condition");
}

Attribute xml_lang_en() { return Attribute{"xml", "lang", std::string(kNsXml), "en"}; }

}  // namespace

std::string_view to_string(StreamErrorCondition c) { return lookup(kStreamConditions, c); }
std::string_view to_string(StanzaErrorCondition c) { return lookup(kStanzaConditions, c); }
std::string_view to_string(StanzaErrorType t) { return lookup(kStanzaTypes, t); }

std::optional<StanzaErrorCondition> stanza_error_condition_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kStanzaConditions.size(); ++i) {
    if (kStanzaConditions[i] == s) return static_cast<StanzaErrorCondition>(i);
  }
  return std::nullopt;
}

std::optional<StanzaErrorType> stanza_error_type_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kStanzaTypes.size(); ++i) {
    if (kStanzaTypes[i] == s) return static_cast<StanzaErrorType>(i);
  }
  return std::nullopt;
}

StanzaErrorType default_type(StanzaErrorCondition c) {
  using C = StanzaErrorCondition;
  using T = StanzaErrorType;
  switch (c) {
    case C::BadRequest: return T::Modify;
    case C::Conflict: return T::Cancel;
    case C::FeatureNotImplemented: return T::Cancel;
    case C::Forbidden: return T::Auth;
    case C::Gone: return T::Cancel;
    case C::InternalServerError: return T::Cancel;
    case C::ItemNotFound: return T::Cancel;
    case C::JidMalformed: return T::Modify;
    case C::NotAcceptable: return T::Modify;
    case C::NotAllowed: return T::Cancel;
    case C::NotAuthorized: return T::Auth;
    case C::PolicyViolation: return T::Modify;
    case C::RecipientUnavailable: return T::Wait;
    case C::Redirect: return T::Modify;
    case C::RegistrationRequired: return T::Auth;
    case C::RemoteServerNotFound: return T::Cancel;
    case C::RemoteServerTimeout: return T::Wait;
    case C::ResourceConstraint: return T::Wait;
    case C::ServiceUnavailable: return T::Cancel;
    case C::SubscriptionRequired: return T::Auth;
    case C::UndefinedCondition: return T::Cancel;
    case C::UnexpectedRequest: return T::Wait;
  }
  return T::Cancel;
}

std::string stream_error_bytes(StreamErrorCondition c, std::string_view text,
                               const Element* app_condition) {
  std::string out = "<stream:error><";
  out += to_string(c);
  out += " xmlns='";
  out += kNsStreams;
  out += "'/>";
  if (!text.empty()) {
    out += "<text xmlns='";
    out += kNsStreams;
    out += "' xml:lang='en'>";
    out += escape_text(text);
    out += "</text>";
  }
  if (app_condition != nullptr) out += app_condition->serialize();
  out += "</stream:error>";
  return out;
}

bool may_bounce(const Element& stanza) {
  const std::string type = stanza.attr_or("type");
  if (type == "error") return false;   // never answer an error (loops)
  const std::string& kind = stanza.name();
  if (kind == "iq") return type == "get" || type == "set";
  if (kind == "message") return type != "headline";
  // A MUC join (available presence with <x xmlns='http://jabber.org/protocol/muc'/>,
  // FMUC's node joins included) fails with a presence error (XEP-0045 §7.2):
  // without one the joiner waits for a room that will never answer.
  if (kind == "presence") {
    return type.empty() && stanza.find_child("x", "http://jabber.org/protocol/muc") != nullptr;
  }
  // Other presence is never answered with an error (RFC 6121 §8.5):
  // availability is dropped, subscription requests are answered (if at all)
  // with 'unsubscribed', which is the router's business, not an error bounce.
  return false;
}

Element make_error_reply(const Element& stanza, const StanzaError& error) {
  // Keep the stream's content namespace (jabber:client on a client stream).
  const std::string ns =
      stanza.ns() == kNsClient ? std::string(kNsClient) : std::string(kNsServer);
  Element reply(ns, stanza.name());
  if (const std::string* to = stanza.attr("to")) reply.set_attr("from", *to);
  if (const std::string* from = stanza.attr("from")) reply.set_attr("to", *from);
  if (const std::string* id = stanza.attr("id")) reply.set_attr("id", *id);
  reply.set_attr("type", "error");

  Element& err = reply.add_child(ns, "error");
  err.set_attr("type", std::string(to_string(error.type)));
  if (!error.by.empty()) err.set_attr("by", error.by);
  err.add_child(std::string(kNsStanzas), std::string(to_string(error.condition)));
  if (!error.text.empty()) {
    Element& text = err.add_child(std::string(kNsStanzas), "text");
    text.attributes().push_back(xml_lang_en());
    text.add_text(error.text);
  }
  if (error.app) err.add_child(*error.app);
  return reply;
}

std::optional<StanzaError> read_stanza_error(const Element& stanza) {
  const Element* error = nullptr;
  for (const Element* c : stanza.child_elements()) {
    if (c->name() != "error" || c->ns() != stanza.ns()) continue;
    if (error != nullptr) return std::nullopt;   // two <error/>: which one would a client show?
    error = c;
  }
  if (error == nullptr) return std::nullopt;
  const auto type = stanza_error_type_from_string(error->attr_or("type"));
  if (!type) return std::nullopt;
  std::optional<StanzaErrorCondition> condition;
  for (const Element* c : error->child_elements()) {
    if (c->ns() != kNsStanzas || c->name() == "text") continue;
    const auto cond = stanza_error_condition_from_string(c->name());
    if (!cond || condition) return std::nullopt;   // unknown, or more than one, defined condition
    condition = cond;
  }
  if (!condition) return std::nullopt;
  StanzaError out;
  out.condition = *condition;
  out.type = *type;
  return out;
}

}  // namespace portcullis::xmpp
