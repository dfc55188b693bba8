// ESS security label (RFC 2634 §5.4.15) codec: DER bytes <-> Label, and the
// base64 text form carried in <esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>.
//
//   ESSSecurityLabel ::= SET {
//     security-policy-identifier OBJECT IDENTIFIER,
//     security-classification    INTEGER (0..256) OPTIONAL,
//     privacy-mark               CHOICE { pString PrintableString (SIZE (1..128)),
//                                         utf8String UTF8String (SIZE (1..MAX)) } OPTIONAL,
//     security-categories        SET SIZE (1..64) OF SecurityCategory OPTIONAL }
//   SecurityCategory ::= SEQUENCE { type [0] IMPLICIT OBJECT IDENTIFIER,
//                                   value [1] EXPLICIT ANY DEFINED BY type }
//
// Category values use the SDN.801c / ACP-145(A) syntaxes (type OIDs under
// 2.16.840.1.101.2.1.8.3): .0 restrictive bitmap, .1 enumerated attributes,
// .2 permissive bitmap, .3 informative; each value is
// SEQUENCE { tagName OBJECT IDENTIFIER (the SPIF tag-set id), attributes }.
// A category of any other type makes the label undecodable (we cannot judge
// what we cannot read: fail closed).
//
// The decoder is for hostile input: it reads TLVs with OpenSSL's
// ASN1_get_object inside strict bounds, accepts definite lengths only, limits
// sizes and counts, and returns nullopt with a reason instead of throwing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/labels/label.h"

namespace portcullis::policy::labels {

inline constexpr std::string_view kNsEss = "urn:xmpp:sec-label:ess:0";

// Category syntax OIDs (SDN.801c).
inline constexpr std::string_view kOidRestrictiveBitmap = "2.16.840.1.101.2.1.8.3.0";
inline constexpr std::string_view kOidEnumeratedAttributes = "2.16.840.1.101.2.1.8.3.1";
inline constexpr std::string_view kOidPermissiveBitmap = "2.16.840.1.101.2.1.8.3.2";
inline constexpr std::string_view kOidInformative = "2.16.840.1.101.2.1.8.3.3";

// Limits on what the decoder accepts.
inline constexpr std::size_t kMaxEssBytes = 8192;
inline constexpr std::size_t kMaxCategoryValues = 256;   // LACVs over all categories
inline constexpr long kMaxLacv = 1 << 16;

using Bytes = std::vector<std::uint8_t>;

// Decodes DER (BER with definite lengths is accepted too). On failure returns
// nullopt and sets *why (never containing the input bytes).
std::optional<Label> decode_ess(const std::uint8_t* der, std::size_t len, std::string* why = nullptr);
inline std::optional<Label> decode_ess(const Bytes& der, std::string* why = nullptr) {
  return decode_ess(der.data(), der.size(), why);
}

// Encodes `label` in DER. Categories must carry a tag-set OID, a LACV and a
// kind/syntax (a canonical label does); an enumerated or unknown syntax is
// written as enumerated attributes. Returns nullopt (and *why) if the label
// cannot be written (no policy OID, bad OID text, a category without LACV).
std::optional<Bytes> encode_ess(const Label& label, std::string* why = nullptr);

// Base64 (RFC 4648) with the tolerance XEP-0258 examples need: whitespace is
// skipped and padding may be missing. Any other character, or a bad length,
// gives nullopt.
std::optional<Bytes> base64_decode(std::string_view text);
std::string base64_encode(const Bytes& bytes);

}  // namespace portcullis::policy::labels
