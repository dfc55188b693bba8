// PRECIS for JIDs (RFC 7622 with RFC 8264/8265), and IDNA2008 for A-labels
// (RFC 5890-5893, libidn2), as the boundary needs them: a check that a JID is
// ALREADY in its prepared and enforced form. Nothing is rewritten: a part that
// the profile would change (upper case, fullwidth forms, non-NFC, a non-ASCII
// space in a resource) is refused like a disallowed code point, so what crosses
// is exactly what was checked and no two spellings of one identity exist.
//
//   localpart: UsernameCaseMapped (IdentifierClass; width mapping, lower case,
//              NFC, the Bidi Rule), plus RFC 7622's own ASCII exclusions
//              (checked by parse_jid);
//   resource:  OpaqueString (FreeformClass; non-ASCII spaces mapped, NFC);
//   domain:    parse_jid admits LDH labels only; an A-label ("xn--") must decode
//              to a valid IDNA2008 U-label that encodes back to itself.
// Code point properties come from libunistring's Unicode tables.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "guard/xmpp/jid.h"

namespace portcullis::xmpp {

// nullopt when `s` is a prepared, enforced localpart; else why not (one line,
// naming the offending code point as U+XXXX).
std::optional<std::string> precis_localpart_problem(std::string_view s);
// The same for a resourcepart.
std::optional<std::string> precis_resource_problem(std::string_view s);
// The same for a domainpart as parse_jid returns it (lower-case ASCII).
std::optional<std::string> idna_domain_problem(std::string_view s);
// All three parts of a parsed JID: "localpart: ...", "resourcepart: ...", "domainpart: ...".
std::optional<std::string> jid_prepared_problem(const Jid& jid);

}  // namespace portcullis::xmpp
