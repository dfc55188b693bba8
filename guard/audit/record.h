// The audit record model: one record per policy decision, per connection event
// and per administrative event, plus the signed checkpoints the archive writes
// itself. The model is plain data (strings, no policy types) so the archive,
// the verifier and the accreditor tools share it without depending on the
// pipeline; the filter process fills it from its Decision.
//
// On disk a record is a frame (see format.h and docs/audit-format.md) whose
// payload is: u32 meta_len | meta (deterministic JSON) | u32 blob_count |
// blob_count x (u32 len | bytes). Decision records carry the original stanza
// bytes as blob 0 and, when the released bytes differ, those as blob 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "guard/audit/json.h"

namespace portcullis::audit {

enum class RecordType : std::uint8_t {
  Decision = 1,     // a stanza's fate
  Connection = 2,   // auth success/failure, TLS parameters, stream errors, bad XML
  Admin = 3,        // start, stop, policy load/reload, key change, retention, recovery
  Checkpoint = 4,   // Ed25519 signature over the chain so far (written by the archive)
};

enum class Outcome : std::uint8_t {
  Released,   // forwarded unchanged
  Rejected,   // not forwarded; sender got an error (or nothing, per bounce rules)
  Modified,   // forwarded after a named transformation
  Shadow,     // a shadow rule would have rejected; enforced outcome is in `notes`
};

enum class Direction : std::uint8_t { LowToHigh, HighToLow, Local, None };

std::string_view to_string(RecordType t);
std::string_view to_string(Outcome o);
std::string_view to_string(Direction d);
// Parse the names above ("decision", "released", "low-to-high", ...).
std::optional<RecordType> parse_record_type(std::string_view s);
std::optional<Outcome> parse_outcome(std::string_view s);
std::optional<Direction> parse_direction(std::string_view s);

using Notes = std::vector<std::pair<std::string, std::string>>;

// The authenticated peer a stanza or connection event came from.
struct PeerInfo {
  std::string domain;          // authenticated peer domain
  std::string auth;            // "sasl-external", "dialback", "internal", "none"
  bool tls = false;
  std::string cert_identity;   // certificate identity/fingerprint, if any
  std::string tls_params;      // e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384" (optional)
};

// One filter of the pipeline trail, in order.
struct FilterResult {
  std::string filter;          // instance name
  std::string type;            // registry type
  std::string verdict;         // "accept", "no-opinion", "reject", "modify", "error"
  std::string rule_id;
  bool shadow = false;
  std::string transformation;  // for modify
  Notes notes;
};

// One guard of the guard stage, in order.
struct GuardResult {
  std::string name;
  bool pass = false;
  std::string reason;
};

struct DecisionRecord {
  Outcome outcome = Outcome::Rejected;
  Direction direction = Direction::None;
  PeerInfo peer;
  std::uint64_t frame_seq = 0;     // the edge's frame sequence number (correlation)
  std::string stream_id;
  std::string from, to;
  std::string stanza_kind;         // message | presence | iq
  std::string stanza_type;         // the type attribute
  std::string stanza_id;           // the id attribute
  std::string label_original, label_effective, label_mapped;
  std::vector<FilterResult> filters;
  std::vector<GuardResult> guards;
  std::string error_condition;     // for Rejected: the XMPP error condition sent
  std::string policy_version, policy_hash;
  Notes notes;                     // anything else (e.g. "shadow.enforced" = "released")
  std::string original;            // exact bytes received
  std::optional<std::string> released;  // bytes forwarded when different from `original`
  // Filled by the archive when it encodes the record (callers leave them empty);
  // filled from the stored record when decoding.
  std::string original_sha256, released_sha256;   // lowercase hex; released_sha256
                                                  // empty when nothing was released
};

struct ConnectionEvent {
  std::string kind;         // "auth-success", "auth-failure", "tls-failure", "stream-error", ... (docs/audit-format.md)
  std::string text;
  std::string side;         // side name (low/high) or "" if unknown
  PeerInfo peer;
  Notes notes;
};

struct AdminEvent {
  std::string kind;         // "start", "stop", "policy-load", "policy-reload", "key-change",
                            // "segment-open", "retention-delete", "recovery", "store-failed", ...
  std::string text;
  Notes fields;             // kind-specific fields (documented in docs/audit-format.md)
  // Convenience: the value of field `key`, or "" if absent.
  std::string field(std::string_view key) const;
};

struct CheckpointRecord {
  std::uint64_t segment_no = 0;
  std::uint64_t covered_seq = 0;     // seq of the record just before the checkpoint
  std::string covered_hash;          // its hash, 32 raw bytes
  std::string key_id;                // hex of the first 8 bytes of the public key
  std::string signature;             // 64 raw bytes
};

using RecordBody = std::variant<DecisionRecord, ConnectionEvent, AdminEvent, CheckpointRecord>;

// What the filter process hands to AuditArchive::append. `time_us` (UTC
// microseconds since the epoch) is set by the archive when left 0.
struct Record {
  std::uint64_t time_us = 0;
  RecordBody body;

  RecordType type() const;
};

// A record read back from a segment (tools, verifier).
struct StoredRecord {
  std::uint64_t seq = 0;
  std::uint64_t time_us = 0;
  RecordType type = RecordType::Admin;
  RecordBody body;
  std::string meta_json;   // the metadata exactly as stored
};

// Encodes the payload of a record (meta JSON + blobs). For decisions it also
// fills the SHA-256 fields of the stored metadata from the bytes.
std::string encode_payload(const Record& r);

// Decodes a payload into a body of `type`. Returns false (with `error`) when the
// payload is malformed, the JSON is invalid or a stored SHA-256 does not match
// its bytes.
bool decode_payload(RecordType type, std::string_view payload, RecordBody& out, std::string& meta_json,
                    std::string* error);

// The meta part of a decision record's payload built through json::Value (the
// reference that encode_payload's direct writer must equal, byte for byte).
std::string decision_meta_reference(const DecisionRecord& d);

// The metadata of a body as a JSON object (what the meta part of the payload
// holds, also used by `portcullis-audit export`).
json::Value to_json(const RecordBody& body);

// Lowercase hex and back (from_hex returns nullopt on odd length or bad digits).
std::string to_hex(std::string_view bytes);
std::optional<std::string> from_hex(std::string_view hex);
// SHA-256 of `bytes`, 32 raw bytes; of `a` then `b` (no concatenation).
// OpenSSL's (fast); libsodium's if OpenSSL cannot, so it never fails.
std::string sha256(std::string_view bytes);
std::string sha256(std::string_view a, std::string_view b);

}  // namespace portcullis::audit
