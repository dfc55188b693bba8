// One inbound S2S stream: a server on this side connected to Portcullis
// (we are the receiving server, and the authoritative server for the domains we
// front when a peer verifies a dialback key with us).
//
// States (every wait has the side's negotiation deadline):
//   AwaitHeader  -> header checked, our header + features sent
//   Negotiating  -> STARTTLS, SASL EXTERNAL, dialback db:result / db:verify
//   TlsHandshake -> in-place TLS, then AwaitHeader again (stream restart)
//   Authenticated-> stanzas flow to the host (SASL identity, or verified
//                   dialback pairs; a stream may carry both db:* and stanzas)
// Any protocol violation ends the stream with the matching stream error.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "guard/net/connection.h"
#include "guard/s2s/session_host.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::s2s {

class InboundSession : private xmpp::StreamHandler {
 public:
  // `direct_tls`: the listener is XEP-0368 direct TLS (TLS from the first byte).
  InboundSession(SessionHost& host, std::unique_ptr<net::Connection> conn, bool direct_tls = false);
  ~InboundSession() override;
  InboundSession(const InboundSession&) = delete;
  InboundSession& operator=(const InboundSession&) = delete;

  void start();
  // Closes with a stream error (used by the host on shutdown: system-shutdown).
  void close_with(xmpp::StreamErrorCondition c, std::string_view text);
  std::string describe() const;
  // The peer's <stream:error/>: recorded with its condition, our side closed.
  void peer_stream_error(const xmpp::Element& e);
  // The archive's peer fields for an event about `domain` on this stream (the
  // domain claimed, for a failure), with the method tried.
  InboundMeta event_peer(std::string_view domain, ipc::AuthMethod method) const;
  // How far this stream has authenticated: SASL EXTERNAL, dialback, or not yet.
  ipc::AuthMethod auth_so_far() const;
  LinkStatus status() const;
  // Flow control (EdgeServer): stop or resume reading this stream's socket.
  void set_reading(bool on);
  // XEP-0198 on a SASL-authenticated stream: the stanza counted `index`
  // (InboundMeta::sm_index; 0: none) is handled. The h we acknowledge is the
  // longest run of handled stanzas from the first, so a sending server that
  // loses this stream bounces only what the boundary never took.
  void sm_handled(std::uint64_t index);
  // Set by the host at accept; travels in InboundMeta::flow_id.
  std::uint64_t flow_id = 0;   // "inbound a.test->b.test from 127.0.0.2:40000"
  // Answers buffered for a peer that does not read, beyond which it is cut off.
  static constexpr std::size_t kMaxPendingOutput = 1024 * 1024;

 private:
  enum class State { AwaitHeader, Negotiating, TlsHandshake, Authenticated, Closed };

  // StreamHandler
  void on_stream_open(const xmpp::StreamHeader& header) override;
  void on_element(xmpp::Element element, std::size_t wire_bytes) override;
  void on_stream_close() override;
  void on_stream_error(xmpp::StreamErrorCondition condition, std::string text) override;

  void on_data(std::string_view bytes);
  void on_tls(const net::TlsSessionInfo& info);
  void on_closed(const std::string& reason);

  void send_features();
  void handle_starttls();
  void handle_sasl_auth(const xmpp::Element& auth);
  void handle_db_result(const xmpp::Element& e);
  void handle_db_verify(const xmpp::Element& e);
  void handle_stanza(xmpp::Element e, std::size_t wire_bytes);
  void on_sm(const xmpp::Element& e);
  void send_sm_ack();
  void final_sm_ack();
  std::uint64_t sm_h() const;

  bool sasl_possible(std::string* why) const;
  bool dialback_possible(std::string* why) const;
  bool tls_satisfied() const;
  void fail(xmpp::StreamErrorCondition c, std::string text);
  void arm_deadline();
  void arm_idle();
  void touch();

  SessionHost& host_;
  std::unique_ptr<net::Connection> conn_;
  std::unique_ptr<xmpp::StreamParser> parser_;
  State state_ = State::AwaitHeader;
  bool restart_pending_ = false;      // parser reset deferred until feed() returns
  bool header_sent_ = false;
  std::string stream_id_;
  std::string from_, to_;             // from the first header; restarts must keep them
  bool direct_tls_ = false;
  const config::Peer* peer_ = nullptr;
  std::optional<net::TlsSessionInfo> tls_;
  std::string sasl_domain_;           // set after SASL EXTERNAL success
  // cert_identity_of() for the last stanza's from domain: the TLS session does
  // not change, so most stanzas reuse it instead of matching the SANs again.
  std::string cert_id_domain_, cert_id_;
  std::set<std::pair<std::string, std::string>> verified_;   // (from, to) dialback pairs
  std::set<std::pair<std::string, std::string>> pending_;    // pairs being verified
  std::uint64_t generation_ = 0;      // bumped at STARTTLS: older verify answers are void
  net::TimerId deadline_ = 0;
  net::TimerId idle_timer_ = 0;
  net::TimePoint last_activity_;
  std::shared_ptr<bool> alive_;       // lets async verify callbacks notice we are gone
  std::int64_t since_unix_ms_ = 0;
  std::uint64_t stanzas_ = 0;
  // Stream management (offered after SASL EXTERNAL; acknowledgements only).
  bool sm_on_ = false;
  std::uint64_t sm_received_ = 0;      // stanzas counted since <enable/>
  // Counted, not yet handled: held by the boundary (at most the flow window)
  // or being handled now. h is everything before the first of them.
  std::set<std::uint64_t> sm_pending_;
  bool sm_owed_ = false;               // an <r/> was answered before everything was handled
  net::TimerId sm_timer_ = 0;
};

}  // namespace portcullis::s2s
