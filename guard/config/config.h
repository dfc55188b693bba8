// Appliance configuration: one XML file validated against
// schemas/portcullis-config.xsd by Xerces-C++, then checked for meaning.
// Any error stops the load with file:line:column and what was expected;
// nothing falls back silently to a default that the schema does not state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::config {

struct XmlNode;   // guard/config/xml_tree.h

// A load error, already formatted as "FILE:LINE:COLUMN: message".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, int line, int column, const std::string& message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  std::string file_;
  int line_, column_;
  std::string message_;
};

enum class PeerAuth { SaslExternal, Dialback, Any };   // what a peer must use to authenticate
enum class PeerTls { Required, Optional, Forbidden };  // Optional/Forbidden need allow-plaintext

struct StanzaKinds {
  bool message = true, presence = true, iq = true;
};

// One row of a side's peering table: which servers on this side we talk to.
struct Peer {
  std::string domain_pattern;    // "a.test" or "*.a.test"
  std::string host;              // numeric address to dial (no DNS)
  int port = 5269;
  PeerAuth auth = PeerAuth::SaslExternal;
  PeerTls tls = PeerTls::Required;
  bool direct_tls = false;       // XEP-0368: TLS from the first byte (port usually 5270)
  StanzaKinds kinds;
  int line = 0, column = 0;      // position in the file, for later messages
};

struct Listen {
  std::string address;
  int port = 5269;
  // Who may connect (numeric address or address/prefix-length), enforced by the
  // side firewall in separated mode; absent in the file: the side's peer hosts.
  std::vector<std::string> from;
  std::string interface;         // empty: any interface; else the only one it accepts on
  int line = 0, column = 0;
  bool direct_tls = false;       // XEP-0368: TLS from the first byte, no STARTTLS
};

// A certificate of its own for one presented domain (<domain-certificate> in <tls>).
struct DomainCertificate {
  std::string domain, cert_file, key_file;
  int line = 0, column = 0;
};

// A room <-> IRC channel link (<irc> in a <room>; guard/irc, issue 10).
struct IrcLinkSpec {
  std::string server;                     // numeric address (no DNS)
  int port = 6697;
  bool tls = true;                        // tls="required"; false only with allow-plaintext
  std::string server_name;                // the name the server's certificate must carry
  std::string ca_file;
  std::string channel;                    // "#ops"
  std::string password_file;              // server PASS; empty: none
  std::string sasl_user, sasl_password_file;   // SASL PLAIN; empty: none
  std::string nick = "pcgate";            // the gateway's own connection
  std::size_t max_nick_length = 9;
  std::size_t line_cap = 8;
  std::uint32_t flood_burst = 4;
  std::uint32_t flood_interval_ms = 2000;
  std::uint32_t retry_ms = 2000;
  std::uint32_t retry_max_ms = 120000;
  std::size_t max_puppets = 50;           // IRC connections for room occupants at most
  // Labels (issue 10 item 4), all or none: the SPIF, the label IRC traffic
  // carries in the room, the link's clearance (what may be sent to IRC), and
  // the label an unlabelled room message is judged at (required in a room with
  // a default label). The elements keep their positions: guard/rooms/irc_labels
  // resolves them against the SPIF and reports a bad name at file:line:column.
  std::string spif_file;                  // empty: no labels configured (labelled messages stay off IRC)
  std::shared_ptr<const XmlNode> label, clearance, unlabelled;
  int line = 0, column = 0;
};

// One room of a hosted MUC service (guard/rooms), with its FMUC links.
struct RoomSpec {
  std::string name;                       // localpart
  std::string title, subject, label;
  std::size_t history = 50;
  bool members_only = false;
  std::vector<std::string> owners, members;   // bare JIDs
  std::string federate_with;              // upstream node (bare JID); empty: none
  std::vector<std::string> accept_from;   // downstream nodes (bare JIDs)
  std::optional<IrcLinkSpec> irc;         // an IRC channel gatewayed into the room
  int line = 0, column = 0;
  int federate_line = 0, federate_column = 0;
};

// A MUC service hosted by a side's edge (<rooms domain=...>).
struct RoomServiceSpec {
  std::string domain;
  std::uint32_t ping_interval_ms = 15000;
  std::uint32_t retry_ms = 5000;
  std::vector<RoomSpec> rooms;
  int line = 0, column = 0;
};

struct Side {
  std::string name;                     // "low" or "high"
  std::vector<Listen> listen;
  std::vector<std::string> fronts;      // far-side domains this side presents (exact names)
  std::string cert_file, key_file, ca_file;
  std::vector<DomainCertificate> domain_certs;   // chosen by SNI / used by links from the domain
  std::string crl_file;                 // empty: no revocation check
  bool crl_check_chain = true;          // every chain level (false: the peer's own certificate only)
  std::string dialback_secret_file;     // empty: dialback disabled on this side
  int tls_line = 0, tls_column = 0;     // position of <tls>, for later messages
  std::vector<Peer> peers;              // evaluated in order; first match wins
  std::vector<RoomServiceSpec> rooms;   // MUC services this side's edge hosts
  // Timeouts (milliseconds).
  std::uint32_t connect_timeout_ms = 10000;
  std::uint32_t negotiation_timeout_ms = 15000;   // every negotiation step
  std::uint32_t keepalive_interval_ms = 60000;    // whitespace keepalive
  std::uint32_t idle_timeout_ms = 600000;         // close idle streams
  std::uint32_t queue_timeout_ms = 30000;         // stanzas waiting for a link
  std::size_t max_queue = 1000;                   // per outbound link
  std::size_t max_inbound = 512;                  // inbound connections open at once
  // Flow control: stanzas of one inbound stream the boundary may hold at once
  // (unconfirmed by the far edge); beyond it the stream is not read. A stream
  // that cannot be read for overload_wait_ms has what it sends bounced.
  std::size_t flow_window = 512;
  std::uint32_t overload_wait_ms = 10000;
  // Parser limits for streams on this side.
  std::size_t max_stanza_bytes = 262144;
  std::size_t max_depth = 32;
  std::size_t max_attributes = 64;
};

// One rule of the domain-pair allow list (policy/filters/domain_pair_allow),
// read from the policy file's <domain-pair-allow> element.
struct DomainPairRule {
  std::string id;
  std::string from_pattern;   // domain pattern of the sender
  std::string to_pattern;     // domain pattern of the recipient
  bool shadow = false;        // a match is recorded, never accepted
};

// LEGACY: the first-version per-direction policy, once read from the appliance
// config's <filter> section (now gone: the policy file replaces it). Only the
// in-code pipeline builder of policy/policy_from_config.h still reads it (its
// unit tests); the loader never fills it.
struct DirectionPolicy {
  std::vector<DomainPairRule> allow;          // empty = deny all
  std::size_t max_stanza_bytes = 65536;
};

// The audit archive (guard/audit), written by the filter process.
struct AuditConfig {
  bool enabled = false;                    // <audit> present
  std::string dir;                         // archive directory
  std::string signing_key_file;            // Ed25519 secret key, readable only by the writer
  std::string public_key_file;             // its public key (for verifiers and the self-check at start)
  std::uint32_t checkpoint_every_records = 1000;
  std::uint32_t checkpoint_every_ms = 5000;
  std::uint64_t segment_max_bytes = 64ull * 1024 * 1024;
  std::uint32_t segment_max_age_s = 86400;
  std::uint32_t retention_days = 0;        // 0: keep forever
  std::uint32_t warn_free_percent = 20;    // warn when free space on the archive fs drops below
  std::uint32_t stop_free_percent = 5;     // refuse to write (fail closed) below
  bool syslog_summary = false;             // one RFC 5424 line per record for the site SIEM
  int line = 0, column = 0;                // position of <audit>, for later messages
};

// One XML guard of the guard stage (policy/guard).
struct GuardSpec {
  enum class Kind { Schema, External };
  Kind kind = Kind::Schema;
  std::string name;
  std::string profile;                     // Schema: path of the application profile XSD
  std::string program;                     // External: program to run
  std::vector<std::string> args;           // External: its arguments
  std::uint32_t timeout_ms = 2000;         // External: per stanza
  std::string run_as_user;                 // External: drop to this user (optional)
  int line = 0, column = 0;
};

struct GuardsConfig {
  std::vector<GuardSpec> low_to_high, high_to_low;   // run in order; all must pass
};

// Who runs each child (see <supervision> in the schema).
enum class SupervisionMode { Separated, SingleUserDevelopment };

// An unprivileged user a child runs as: its uid and primary gid, with no
// supplementary groups (the supervisor drops them), so what it can read is
// decided by owner, group and mode bits alone.
struct ProcessUser {
  std::string name;
  std::uint32_t uid = 0, gid = 0;
};

struct Supervision {
  std::uint32_t restart_backoff_ms = 500;     // first restart delay; doubles to max
  std::uint32_t restart_backoff_max_ms = 10000;
  std::uint32_t watchdog_ms = 10000;          // heartbeat silence that counts as hung
  std::uint32_t give_up_after = 5;            // same quick death this many times in a row: stop (0: never)
  SupervisionMode mode = SupervisionMode::Separated;
  // Separated mode: resolved at load by the appliance (LoadFor::Appliance);
  // names only for the children.
  ProcessUser low_edge{"portcullis-low"}, high_edge{"portcullis-high"}, filter{"portcullis-filter"};
  ProcessUser node{"portcullis-node"};        // a standalone node's server process (<node>)
  int line = 0, column = 0;                   // of <supervision>, 0 when absent
};

// The control socket that portcullisctl talks to (<control>): owned by the
// supervisor's user and `group`, mode 0660. Absent: no control socket.
struct ControlConfig {
  bool enabled = false;
  std::string socket = "/run/portcullis/control";
  std::string group;            // empty: the supervisor's own group
  gid_t gid = 0;                // resolved at load by the appliance (LoadFor::Appliance)
  int line = 0, column = 0;
};

// Explicit exceptions to the fail-closed start rules (<waivers>); each is
// written to the audit archive at every start.
struct Waiver {
  enum class Of { NoGuardStage, GuardIsolation };
  Of of = Of::NoGuardStage;
  std::string direction;   // "low-to-high" / "high-to-low"; empty: both (guard-isolation only)
  std::string guard;       // guard-isolation: the guard's name
  std::string reason;
  int line = 0, column = 0;
};

// What the file configures: the appliance (<portcullis>: two sides, the filter
// between them) or a standalone FMUC node (<node>: one server with rooms, no
// boundary, no filter, no audit; only `node`, `supervision` and logging are set).
enum class ConfigKind { Appliance, Node };

struct Config {
  std::string file;                 // path it was loaded from
  ConfigKind kind = ConfigKind::Appliance;
  Side low, high;
  Side node;                        // ConfigKind::Node: the node's server (name "node")
  DirectionPolicy low_to_high, high_to_low;   // LEGACY, never filled by load_config (see above)
  Supervision supervision;
  ControlConfig control;
  std::string policy_file;          // the security policy file (<policy file=.../>), absolute
  AuditConfig audit;
  GuardsConfig guards;
  std::vector<Waiver> waivers;
  std::string log_target = "stderr";   // "stderr" or "syslog"
  std::string log_level = "info";
};

// The hosted room service for `domain` on `side`, or nullptr.
const RoomServiceSpec* hosted_service(const Side& side, std::string_view domain);

// Who loads the config. Each process checks only the files it reads itself,
// so an edge never needs (and must not be able) to read the other side's TLS
// key or dialback secret, the audit signing key or the policy; the filter never
// touches TLS files. The appliance (the supervisor, and --check-config) checks
// every file, and in separated mode that each user can read what its process
// needs and cannot read what it must not (check_separation).
// A node's file is loaded by the supervisor (Appliance: every check) and by
// its server process (Node).
enum class LoadFor { Appliance, Filter, EdgeLow, EdgeHigh, Node };

// A waiver that covers `guard` of `direction` ("low-to-high"/"high-to-low"), or nullptr.
const Waiver* isolation_waiver(const Config& cfg, const std::string& direction, const std::string& guard);

// Loads, validates against the XSD in `schema_dir`, and checks meaning.
// Throws ConfigError (first error) on failure.
Config load_config(const std::string& file, const std::string& schema_dir, LoadFor who = LoadFor::Appliance);

// Separated mode: the file-permission picture each process relies on, checked
// for the users in cfg.supervision as they will run (uid and primary gid, no
// supplementary groups; POSIX mode bits, every directory on the path):
//   - each edge user can read the config, the schemas and its own side's TLS
//     certificate, key, CA and dialback secret; the other edge user and the
//     filter user cannot read that side's key or secret;
//   - the filter user can read the config, the schemas, the policy, the audit
//     keys and the guard profiles and programs, and can write the archive
//     directory (or create it); neither edge user can read the signing key or
//     enter the archive directory.
// Throws ConfigError at the element that names the file.
void check_separation(const Config& cfg, const std::string& schema_dir);

}  // namespace portcullis::config
