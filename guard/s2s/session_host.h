// What an S2S session (inbound stream or outbound link) needs from the edge
// server that owns it. Sessions never reach around this interface: the server
// decides routing, verification and what goes to the filter.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "guard/config/config.h"
#include "guard/ipc/frame.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"
#include "guard/net/tls.h"
#include "guard/s2s/peering.h"
#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_error.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::s2s {

class InboundSession;
class OutboundLink;

// Where an inbound stanza came from, as far as authentication proved it.
struct InboundMeta {
  std::string peer_domain;          // authenticated domain (SASL identity or verified dialback pair)
  ipc::AuthMethod auth = ipc::AuthMethod::None;
  bool tls = false;
  std::string cert_identity;        // subject + fingerprint of the peer certificate, if any
  std::string stream_id;
  std::size_t wire_bytes = 0;
  std::uint64_t flow_id = 0;        // the inbound stream, for flow control (InboundSession::flow_id)
  std::uint64_t sm_index = 0;       // XEP-0198: the stanza's count on its stream (0: not counted)
};

enum class VerifyResult { Valid, Invalid, Error };

// What portcullisctl shows of one S2S stream (EdgeServer::link_status).
struct LinkStatus {
  bool inbound = true;
  std::string local, remote;         // domains; "" until the stream header names them
  std::string address;               // the peer's ip:port
  std::string state;                 // "negotiating", "authenticated", "ready", ...
  std::string auth;                  // "sasl-external", "dialback", "" before authentication
  std::string tls;                   // "TLSv1.3"; "" while plain
  std::int64_t since_unix_ms = 0;    // when the stream began
  std::uint64_t stanzas = 0;         // inbound: received; outbound: written
  std::uint64_t pending_bytes = 0;   // written to the socket, not yet taken by the peer
  std::uint64_t queued = 0;          // outbound: stanzas waiting for the link to be ready
  bool reading = true;               // inbound: false while held back (flow control)
};

// The check name of a failed inbound TLS handshake (refused_connection).
inline constexpr std::string_view kTlsHandshakeCheck = "tls-handshake";

class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual const config::Side& side() const = 0;
  virtual const PeeringTable& peering() const = 0;
  // A domain this edge answers for on its side: a far-side domain it fronts,
  // or a MUC service it hosts.
  virtual bool fronts(std::string_view domain) const = 0;
  // Empty when dialback is disabled on this side.
  virtual const std::string& dialback_secret() const = 0;
  virtual net::TlsContext& tls() = 0;
  virtual net::EventLoop& loop() = 0;
  virtual Logger& log() = 0;

  // An inbound stream delivered a stanza from an authenticated peer. Returns
  // true when the host holds it for later (sent to the filter): it then calls
  // InboundSession::sm_handled(meta.sm_index) once the boundary has taken
  // responsibility for it. False: handled now (answered, refused, kept on this side).
  virtual bool on_inbound_stanza(xmpp::Element stanza, const InboundMeta& meta) = 0;
  // Receiving-server role: ask the authoritative server for `originating`
  // whether `key` is valid for (receiving=local, originating, stream_id).
  virtual void request_verify(const std::string& local, const std::string& originating,
                              const std::string& stream_id, const std::string& key,
                              std::function<void(VerifyResult)> done) = 0;
  // Sends a stanza to a server on this side (error replies generated here).
  virtual void send_local(xmpp::Element stanza) = 0;
  // An outbound link could not deliver `stanza` (it was never written).
  virtual void undeliverable(xmpp::Element stanza, xmpp::StanzaError error) = 0;
  // Flow control: the stanza a link was given with `ack` (a released frame's
  // sequence number; never 0) has left the link's hands: written with room to
  // spare, or handed back through undeliverable(). Default: nothing to do.
  virtual void released_taken(std::uint64_t ack) { (void)ack; }
  // Delivery accounting, once per released stanza after released_taken():
  // delivered: the far server acknowledged it (`proof` says how: XEP-0198, TCP);
  // lost: the link ended before any proof (the filter bounces it as in doubt);
  // settled: this edge answered it itself (bounced it as undeliverable, or gave
  // it to a room it hosts), `why` says which. Default: nothing to do.
  virtual void released_delivered(std::uint64_t ack, std::string_view proof) { (void)ack, (void)proof; }
  virtual void released_lost(std::uint64_t ack, std::string_view reason) { (void)ack, (void)reason; }
  virtual void released_settled(std::uint64_t ack, std::string_view why) { (void)ack, (void)why; }
  // Lifecycle: the session's connection is gone; the host destroys it later.
  virtual void inbound_closed(InboundSession* session) = 0;
  virtual void link_closed(OutboundLink* link) = 0;
  // Connection-level events worth an audit/log record (auth success/failure,
  // stream errors). `peer` says whom the event is about, in the archive's
  // structured peer fields: the authenticated domain, or for a failure the
  // domain the peer claimed, with the method tried and the stream's TLS.
  virtual void connection_event(std::string_view what, const InboundMeta& peer) = 0;
  // An event about no peer in particular (rooms, overload, undelivered frames).
  void connection_event(std::string_view what) { connection_event(what, InboundMeta{}); }
  // A connection refused before any stream (a failed TLS handshake): recorded
  // like connection_event, but within the edge's rate of refusal records, and
  // counted in aggregate beyond it (an unauthenticated flood must not fill the
  // archive). `check` names the refusal for the aggregate ("tls-handshake").
  virtual void refused_connection(std::string_view what, const InboundMeta& peer, std::string_view check) = 0;
  // A stanza the session refused itself (and answered with `condition` where
  // an answer is allowed): to the archive, as a rejected decision of this edge.
  // `check` names the check (a short word), `reason` says why.
  virtual void edge_refusal(const xmpp::Element& stanza, const InboundMeta& peer, xmpp::StanzaErrorCondition condition,
                            std::string_view check, std::string_view reason) = 0;
};

// Our stream header for S2S (jabber:server, with the dialback prefix bound).
std::string s2s_stream_header(std::string_view from, std::string_view to, std::string_view id);

// The stream parser limits configured for a side.
xmpp::ParserLimits parser_limits(const config::Side& side);

// Now as UTC microseconds since the epoch (frame arrival times).
std::uint64_t unix_now_us();

std::string base64_encode(std::string_view in);
// Returns false on malformed input.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace portcullis::s2s
