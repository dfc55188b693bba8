// Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "guard/xmpp/element.h"

namespace portcullis::xmpp {

enum class StreamErrorCondition {
  BadFormat, BadNamespacePrefix, Conflict, ConnectionTimeout, HostGone, HostUnknown,
  ImproperAddressing, InternalServerError, InvalidFrom, InvalidNamespace, InvalidXml,
  NotAuthorized, NotWellFormed, PolicyViolation, RemoteConnectionFailed, Reset,
  ResourceConstraint, RestrictedXml, SeeOtherHost, SystemShutdown, UndefinedCondition,
  UnsupportedEncoding, UnsupportedFeature, UnsupportedStanzaType, UnsupportedVersion,
};

std::string_view to_string(StreamErrorCondition c);

// <stream:error><condition/><text/>[app]</stream:error> as bytes, using the
// `stream:` prefix (our own stream headers always bind it).
std::string stream_error_bytes(StreamErrorCondition c, std::string_view text = {},
                               const Element* app_condition = nullptr);

enum class StanzaErrorCondition {
  BadRequest, Conflict, FeatureNotImplemented, Forbidden, Gone, InternalServerError,
  ItemNotFound, JidMalformed, NotAcceptable, NotAllowed, NotAuthorized, PolicyViolation,
  RecipientUnavailable, Redirect, RegistrationRequired, RemoteServerNotFound,
  RemoteServerTimeout, ResourceConstraint, ServiceUnavailable, SubscriptionRequired,
  UndefinedCondition, UnexpectedRequest,
};

enum class StanzaErrorType { Auth, Cancel, Continue, Modify, Wait };

std::string_view to_string(StanzaErrorCondition c);
std::string_view to_string(StanzaErrorType t);
std::optional<StanzaErrorCondition> stanza_error_condition_from_string(std::string_view s);
std::optional<StanzaErrorType> stanza_error_type_from_string(std::string_view s);
StanzaErrorType default_type(StanzaErrorCondition c);   // RFC 6120 §8.3.3 defaults

struct StanzaError {
  StanzaErrorCondition condition = StanzaErrorCondition::UndefinedCondition;
  StanzaErrorType type = StanzaErrorType::Cancel;
  std::string text;                 // human-readable, never stanza content
  std::string by;                   // optional 'by' JID
  std::optional<Element> app;       // optional application-specific condition
};

// True when RFC 6120 / 6121 bounce rules allow an error reply to `stanza`:
// iq of type get/set; message of any type but headline and error. Never to
// type='error', never to iq result, never to presence (a subscribe request is
// answered, if at all, with 'unsubscribed' by the router, not with an error),
// never to non-stanza elements.
bool may_bounce(const Element& stanza);

// Builds the error reply to `stanza`: same kind, from/to swapped, same id,
// type='error', the <error/> child. The original payload is NOT copied
// (it may be the reason for the rejection, XEP-0205 / XEP-0258).
Element make_error_reply(const Element& stanza, const StanzaError& error);

// Reads the <error/> of an error stanza (RFC 6120 §8.3.2) into its closed
// parts: the type and the one defined condition. `text`, `by` and `app` are
// left empty whatever the stanza carries (they are free text or free XML a
// peer chose). nullopt unless the stanza has exactly one <error/> child in
// its own namespace, with a known type and exactly one defined condition.
std::optional<StanzaError> read_stanza_error(const Element& stanza);

}  // namespace portcullis::xmpp
