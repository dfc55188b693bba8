// One outbound S2S link from a domain Portcullis fronts (local) to a server on
// this side (remote): we are the initiating server. Created on demand when a
// stanza must be delivered; queues stanzas until authenticated.
//
// Negotiation: connect (deadline) -> header -> features -> STARTTLS -> TLS
// (server certificate checked against the side's CA and the remote domain)
// -> restart -> features -> SASL EXTERNAL (-> restart -> features) or
// dialback db:result -> Ready: queued stanzas are written.
// Every step has the side's negotiation deadline. When the link fails, queued
// stanzas go back to the host as undeliverable with remote-server-not-found
// (never connected / no stream) or remote-server-timeout (stream had opened),
// and pending dialback verifications answer Error.
//
// The link also carries db:verify requests for the receiving-server role; they
// are sent once TLS (if required) is up, before the link itself authenticates.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "guard/net/connection.h"
#include "guard/s2s/session_host.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::s2s {

class OutboundLink : private xmpp::StreamHandler {
 public:
  OutboundLink(SessionHost& host, std::string local, std::string remote, const config::Peer& peer);
  ~OutboundLink() override;
  OutboundLink(const OutboundLink&) = delete;
  OutboundLink& operator=(const OutboundLink&) = delete;

  const std::string& local() const { return local_; }
  const std::string& remote() const { return remote_; }

  // Queues or writes a stanza. Over the queue limit the stanza goes back as
  // undeliverable (resource-constraint, wait).
  // `ack` (0: none) is a released frame's sequence number: the host hears
  // released_taken(ack) once the stanza has been written with room to spare
  // (pending output at or below kAckMark), or handed back as undeliverable.
  // Held while the peer is slow, so a slow far server slows its senders.
  void send(xmpp::Element stanza, std::uint64_t ack = 0);
  void request_verify(const std::string& stream_id, const std::string& key,
                      std::function<void(VerifyResult)> done);
  // Graceful close (</stream:stream>), e.g. at shutdown.
  void close();
  bool ready() const { return state_ == State::Ready; }
  bool closed() const { return state_ == State::Closed; }
  // Bytes written to the connection, not yet taken by the peer's socket.
  std::size_t pending_output() const { return conn_ ? conn_->pending_output() : 0; }
  // Stanzas waiting for the link to be ready.
  std::size_t queued() const { return queue_.size(); }
  // Bytes written to a ready link but not yet taken by the peer beyond which
  // further stanzas bounce (resource-constraint) instead of growing memory.
  static constexpr std::size_t kMaxPendingOutput = 8 * 1024 * 1024;
  // Written stanzas are confirmed to the host (released_taken) while at most
  // this much waits for the peer; beyond it the confirmations wait for the drain.
  static constexpr std::size_t kAckMark = 256 * 1024;
  std::string describe() const;
  // The archive's peer fields for an event on this link: the remote domain,
  // how far authentication got, the TLS session's server certificate.
  InboundMeta event_peer() const;
  LinkStatus status() const;

 private:
  enum class State {
    Connecting, AwaitHeader, AwaitFeatures, AwaitProceed, TlsHandshake,
    AwaitSaslResult, AwaitDialbackResult, Ready, Closed,
  };

  void start_connect();
  void on_connected(int fd, const std::string& error);
  void on_data(std::string_view bytes);
  void on_tls(const net::TlsSessionInfo& info);
  void on_closed(const std::string& reason);

  // StreamHandler
  void on_stream_open(const xmpp::StreamHeader& header) override;
  void on_element(xmpp::Element element, std::size_t wire_bytes) override;
  void on_stream_close() override;
  void on_stream_error(xmpp::StreamErrorCondition condition, std::string text) override;

  void on_features(const xmpp::Element& features);
  void on_db_verify_reply(const xmpp::Element& e);
  void send_header();
  void become_ready();
  void flush_verifies();
  void fail(const std::string& reason, bool stream_error = false,
            xmpp::StreamErrorCondition c = xmpp::StreamErrorCondition::UndefinedCondition);
  void bounce_all(const std::string& reason);
  // Sends `error_bytes` (if any) and the stream close, then closes; without a
  // connection, tells the host on the next loop iteration.
  void end_stream(const std::string& error_bytes);
  void arm_deadline();
  void arm_keepalive();

  SessionHost& host_;
  std::string local_, remote_;
  const config::Peer& peer_;
  std::unique_ptr<net::Connection> conn_;
  std::unique_ptr<xmpp::StreamParser> parser_;
  State state_ = State::Connecting;
  bool stream_opened_ = false;        // a peer header was seen: failures are timeouts, not not-found
  bool restart_pending_ = false;
  bool header_after_reset_ = false;   // SASL success: we send the restart header
  bool tls_done_ = false;
  bool sasl_done_ = false;
  bool verify_allowed_ = false;       // TLS satisfied and post-TLS features seen
  std::string stream_id_;             // id the remote gave our current stream
  std::optional<net::TlsSessionInfo> tls_;
  struct Queued {
    net::TimePoint since;
    xmpp::Element stanza;
    std::uint64_t ack = 0;
  };
  std::deque<std::uint64_t> held_acks_;    // written, waiting for the peer to take the backlog
  // Delivery accounting. With stream management (XEP-0198, when the peer
  // offers it) a written stanza is delivered once the peer's <a h/> counts it;
  // without, once every byte written so far is acknowledged by the peer's TCP.
  // Until then it is unproven; a link that ends takes the unproven into
  // released_lost() (the filter bounces and records them as in doubt).
  enum class Sm { Off, Requested, On };
  Sm sm_ = Sm::Off;
  bool sm_offered_ = false;           // the last features offered urn:xmpp:sm:3
  std::uint64_t sm_sent_ = 0;         // stanzas written since <enable/>
  std::uint64_t sm_acked_ = 0;        // the peer's last h
  bool r_outstanding_ = false;        // an <r/> is waiting for its <a/>
  struct Unproven {
    std::uint64_t index = 0;          // sm_sent_ after writing it (0: TCP proof)
    std::uint64_t ack = 0;
    std::uint64_t end = 0;            // the connection's bytes_sent() after writing it
    net::TimePoint written_at{};
    net::TimePoint tcp_at{};          // when the peer's TCP had all its bytes (TCP proof)
  };
  std::deque<Unproven> unproven_;
  net::TimerId proof_timer_ = 0;
  void arm_proof();
  void seek_proof();
  void on_sm(const xmpp::Element& e);
  void lose_unproven(const std::string& reason);
  // The far server has it: taken first if still held (an <a/> can count a
  // stanza before the backlog behind it drains), then delivered.
  void prove(std::uint64_t ack, std::string_view proof);
  // How long an <r/> may wait for its <a/> before the link is given up.
  static constexpr std::chrono::seconds kAckWait{30};
 public:
  // A written stanza with no proof of delivery after this long ends the link
  // (connection-timeout): it and the rest unproven are lost, and bounced. Well
  // inside the filter's FilterProcess::kFarConfirmTimeout, so the bounce happens.
  static constexpr std::chrono::seconds kProofDeadline{60};
  // Without stream management: a stanza whose bytes the peer's TCP has
  // acknowledged is delivered once the link has stayed up this much longer (a
  // server that rejects what it read closes the stream at once).
  static constexpr std::chrono::seconds kTcpGrace{2};
 private:
  net::TimePoint r_sent_at_{};
  void write_stanza(const xmpp::Element& stanza, std::uint64_t ack);
  void release_held_acks();
  void give_back(xmpp::Element stanza, xmpp::StanzaError error, std::uint64_t ack);
  std::deque<Queued> queue_;          // waiting for the link to be ready, oldest first
  net::TimerId queue_timer_ = 0;
  void arm_queue_timer();
  void expire_queue();
  struct PendingVerify {
    std::string stream_id, key;
    std::function<void(VerifyResult)> done;
    bool sent = false;
    std::uint64_t id = 0;
  };
  std::uint64_t verify_ids_ = 0;
  std::deque<PendingVerify> verifies_;
  net::TimerId deadline_ = 0;
  net::TimerId keepalive_ = 0;
  net::TimePoint last_write_;
  net::TimePoint last_activity_;
  std::shared_ptr<bool> alive_;
  std::int64_t since_unix_ms_ = 0;
  std::uint64_t stanzas_ = 0;
};

}  // namespace portcullis::s2s
