#include "guard/s2s/outbound_link.h"

#include "guard/s2s/dialback.h"

#include <unistd.h>

namespace portcullis::s2s {

namespace {
using xmpp::kNsSm;
// The proof of delivery, as the archive records it (constant, so that a
// second's deliveries to one domain make one record).
constexpr std::string_view kProofSm = "XEP-0198 acknowledgement";
constexpr std::string_view kProofTcp = "TCP acknowledgement, link up 2 s later (no stream management)";
}  // namespace

using xmpp::StanzaErrorCondition;
using xmpp::StanzaErrorType;
using xmpp::StreamErrorCondition;

OutboundLink::OutboundLink(SessionHost& host, std::string local, std::string remote, const config::Peer& peer)
    : host_(host), local_(std::move(local)), remote_(std::move(remote)), peer_(peer),
      alive_(std::make_shared<bool>(true)), since_unix_ms_(static_cast<std::int64_t>(unix_now_us() / 1000)) {
  parser_ = std::make_unique<xmpp::StreamParser>(static_cast<xmpp::StreamHandler&>(*this),
                                                 parser_limits(host_.side()));
  start_connect();
}

OutboundLink::~OutboundLink() {
  *alive_ = false;
  if (deadline_) host_.loop().cancel_timer(deadline_);
  if (keepalive_) host_.loop().cancel_timer(keepalive_);
  if (queue_timer_) host_.loop().cancel_timer(queue_timer_);
  if (proof_timer_) host_.loop().cancel_timer(proof_timer_);
}

std::string OutboundLink::describe() const {
  return "outbound " + local_ + "->" + remote_ + " (" + peer_.host + ":" + std::to_string(peer_.port) + ")";
}

InboundMeta OutboundLink::event_peer() const {
  InboundMeta m;
  m.peer_domain = remote_;
  m.auth = sasl_done_ ? ipc::AuthMethod::SaslExternal
                      : state_ == State::Ready ? ipc::AuthMethod::Dialback : ipc::AuthMethod::None;
  m.tls = tls_.has_value();
  if (tls_ && tls_->peer_cert_present) {
    // Verified only when the chain is trusted AND the certificate names the
    // remote domain (as for inbound streams); otherwise marked.
    const bool verified = tls_->peer_cert_trusted && net::certificate_matches_domain(tls_->peer, remote_);
    m.cert_identity = (verified ? "" : "unverified: ") + tls_->peer.subject.substr(0, 512) + " sha256:" +
                      tls_->peer.sha256_fingerprint;
  }
  return m;
}

LinkStatus OutboundLink::status() const {
  LinkStatus st;
  st.inbound = false;
  st.local = local_;
  st.remote = remote_;
  st.address = peer_.host + ":" + std::to_string(peer_.port);
  switch (state_) {
    case State::Connecting: st.state = "connecting"; break;
    case State::AwaitHeader: st.state = "await-header"; break;
    case State::AwaitFeatures: st.state = "await-features"; break;
    case State::AwaitProceed: st.state = "await-proceed"; break;
    case State::TlsHandshake: st.state = "tls-handshake"; break;
    case State::AwaitSaslResult: st.state = "await-sasl-result"; break;
    case State::AwaitDialbackResult: st.state = "await-dialback-result"; break;
    case State::Ready: st.state = "ready"; break;
    case State::Closed: st.state = "closed"; break;
  }
  if (state_ == State::Ready) st.auth = sasl_done_ ? "sasl-external" : "dialback";
  if (tls_) st.tls = tls_->protocol;
  st.since_unix_ms = since_unix_ms_;
  st.stanzas = stanzas_;
  st.pending_bytes = pending_output();
  st.queued = queue_.size();
  return st;
}

void OutboundLink::arm_deadline() {
  if (deadline_) host_.loop().cancel_timer(deadline_);
  deadline_ = 0;
  if (state_ == State::Ready || state_ == State::Closed) return;
  auto alive = alive_;
  deadline_ = host_.loop().add_timer(net::Duration(host_.side().negotiation_timeout_ms), [this, alive] {
    if (!*alive) return;
    deadline_ = 0;
    fail("negotiation step timed out", stream_opened_, StreamErrorCondition::ConnectionTimeout);
  });
}

void OutboundLink::arm_keepalive() {
  auto alive = alive_;
  const auto every = net::Duration(host_.side().keepalive_interval_ms);
  keepalive_ = host_.loop().add_timer(every, [this, alive, every] {
    if (!*alive) return;
    keepalive_ = 0;
    if (state_ != State::Ready) return;
    const auto now = host_.loop().now();
    if (now - last_activity_ >= net::Duration(host_.side().idle_timeout_ms)) {
      LogLine(host_.log(), LogLevel::Info) << describe() << ": idle, closing";
      close();
      return;
    }
    // Whitespace keepalive (RFC 6120 §4.6.1) keeps NAT and peers' idle checks quiet.
    if (now - last_write_ >= every) {
      conn_->send(" ");
      last_write_ = now;
    }
    arm_keepalive();
  });
}

void OutboundLink::start_connect() {
  state_ = State::Connecting;
  net::Endpoint ep{peer_.host, peer_.port};
  auto alive = alive_;
  LogLine(host_.log(), LogLevel::Debug) << describe() << ": connecting";
  net::connect_tcp(host_.loop(), ep, net::Duration(host_.side().connect_timeout_ms),
                   [this, alive](int fd, std::string error) {
                     if (!*alive) {
                       if (fd >= 0) ::close(fd);
                       return;
                     }
                     on_connected(fd, error);
                   });
}

void OutboundLink::on_connected(int fd, const std::string& error) {
  if (state_ == State::Closed) {
    if (fd >= 0) ::close(fd);
    return;
  }
  if (fd < 0) {
    fail("connect failed: " + error);
    return;
  }
  conn_ = std::make_unique<net::Connection>(host_.loop(), fd, net::Endpoint{peer_.host, peer_.port});
  net::Connection::Callbacks cb;
  cb.on_data = [this](std::string_view b) { on_data(b); };
  cb.on_tls_established = [this](const net::TlsSessionInfo& i) { on_tls(i); };
  cb.on_closed = [this](const std::string& r) { on_closed(r); };
  cb.on_drained = [this] { release_held_acks(); };
  conn_->set_callbacks(std::move(cb));
  conn_->start();
  last_activity_ = last_write_ = host_.loop().now();
  if (peer_.direct_tls) {
    // XEP-0368: TLS from the first byte, SNI the peer's domain, ALPN
    // "xmpp-server"; on_tls sends the stream header. Our certificate is the
    // local domain's own, if it has one (SASL EXTERNAL asserts that domain).
    state_ = State::TlsHandshake;
    conn_->start_tls_client(host_.tls().for_domain(local_), remote_, "xmpp-server");
    arm_deadline();
    return;
  }
  send_header();
}

void OutboundLink::send_header() {
  conn_->send(s2s_stream_header(local_, remote_, {}));
  state_ = State::AwaitHeader;
  arm_deadline();
}

void OutboundLink::on_data(std::string_view bytes) {
  if (state_ == State::Closed && !(sm_ == Sm::On && !unproven_.empty())) return;
  last_activity_ = host_.loop().now();
  parser_->feed(bytes);
  if (restart_pending_ && state_ != State::Closed) {
    restart_pending_ = false;
    parser_->reset();
    // After SASL success the restart is ours to send; after STARTTLS, on_tls sends it.
    if (header_after_reset_) {
      header_after_reset_ = false;
      send_header();
    }
  }
}

void OutboundLink::on_tls(const net::TlsSessionInfo& info) {
  if (state_ == State::Closed) return;
  tls_ = info;
  tls_done_ = true;
  LogLine(host_.log(), LogLevel::Info) << describe() << ": TLS " << net::describe_tls(info, peer_.direct_tls)
                                       << (info.peer_cert_trusted ? ", server certificate trusted"
                                                                  : ", server certificate NOT trusted: " + info.verify_error);
  send_header();
}

void OutboundLink::on_closed(const std::string& reason) {
  if (state_ != State::Closed) {
    const bool was_ready = state_ == State::Ready;
    state_ = State::Closed;
    if (!was_ready || !queue_.empty() || !verifies_.empty()) {
      bounce_all("connection closed: " + reason);
    }
    LogLine(host_.log(), was_ready ? LogLevel::Info : LogLevel::Warning) << describe() << ": closed: " << reason;
    // Closed by the peer before the link was ready (during TLS or SASL, say):
    // an authentication that did not happen, so the archive hears of it.
    if (!was_ready) host_.connection_event(describe() + ": failed: closed before it was ready: " + reason, event_peer());
  }
  // Written, never proven received: the senders get their credit, and the
  // filter bounces and records each one as in doubt.
  release_held_acks();
  lose_unproven("link closed: " + reason);
  *alive_ = false;
  host_.link_closed(this);
}

void OutboundLink::on_stream_open(const xmpp::StreamHeader& header) {
  if (state_ != State::AwaitHeader) {
    fail("unexpected stream header", true, StreamErrorCondition::NotWellFormed);
    return;
  }
  stream_opened_ = true;
  if (header.id.empty()) {
    fail("peer stream header has no id", true, StreamErrorCondition::InvalidXml);
    return;
  }
  stream_id_ = header.id;
  state_ = State::AwaitFeatures;
  arm_deadline();
}

void OutboundLink::on_stream_close() {
  if (state_ == State::Closed) return;
  LogLine(host_.log(), LogLevel::Debug) << describe() << ": peer closed the stream";
  if (conn_) {
    conn_->send("</stream:stream>");
    conn_->close_after_flush();
  }
  const bool was_ready = state_ == State::Ready;
  state_ = State::Closed;
  if (!was_ready || !queue_.empty() || !verifies_.empty()) bounce_all("peer closed the stream");
}

void OutboundLink::on_stream_error(StreamErrorCondition condition, std::string text) {
  fail("bad XML from peer: " + text, true, condition);
}

void OutboundLink::fail(const std::string& reason, bool stream_error, StreamErrorCondition c) {
  if (state_ == State::Closed) return;
  LogLine(host_.log(), LogLevel::Warning) << describe() << ": failed: " << reason;
  host_.connection_event(describe() + ": failed: " + reason, event_peer());
  state_ = State::Closed;
  end_stream(stream_error ? xmpp::stream_error_bytes(c, reason) : std::string{});
  bounce_all(reason);
}

void OutboundLink::bounce_all(const std::string& reason) {
  // RFC 6120 §10.4.3 / Prosody: not-found when no stream ever opened, timeout otherwise.
  const StanzaErrorCondition cond = stream_opened_ ? StanzaErrorCondition::RemoteServerTimeout
                                                   : StanzaErrorCondition::RemoteServerNotFound;
  const StanzaErrorType type = stream_opened_ ? StanzaErrorType::Wait : StanzaErrorType::Cancel;
  auto queue = std::move(queue_);
  queue_.clear();
  // The reason can quote the far server (its stream error) or our parser's
  // message about its bytes; the bounce crosses the boundary, so it carries
  // fixed text and the reason stays in this edge's log and connection events.
  if (!queue.empty()) {
    LogLine(host_.log(), LogLevel::Info) << describe() << ": bouncing " << queue.size()
                                         << " queued stanza(s): " << reason;
  }
  for (auto& q : queue) {
    give_back(std::move(q.stanza), {cond, type, "Server-to-server connection failed", {}, {}}, q.ack);
  }
  auto verifies = std::move(verifies_);
  verifies_.clear();
  for (auto& v : verifies) v.done(VerifyResult::Error);
}

void OutboundLink::on_features(const xmpp::Element& f) {
  sm_offered_ = f.find_child("sm", kNsSm) != nullptr;
  const bool starttls_offered = f.find_child("starttls", xmpp::kNsTls) != nullptr;
  if (!conn_->is_tls()) {
    if (peer_.tls != config::PeerTls::Forbidden && starttls_offered) {
      conn_->send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      state_ = State::AwaitProceed;
      arm_deadline();
      return;
    }
    if (peer_.tls == config::PeerTls::Required) {
      fail("peer does not offer STARTTLS and TLS is required", true, StreamErrorCondition::PolicyViolation);
      return;
    }
  }
  if (sasl_done_) {
    become_ready();
    return;
  }
  bool cert_ok = false;
  std::string cert_why = "no TLS";
  if (tls_) {
    if (!tls_->peer_cert_trusted) cert_why = "server certificate not trusted (" + tls_->verify_error + ")";
    else if (!net::certificate_matches_domain(tls_->peer, remote_)) cert_why = "server certificate does not name " + remote_;
    else cert_ok = true;
    // Whatever authenticates this link afterwards (SASL, or dialback answers we
    // will believe), the server we reached over TLS must prove it is `remote_`:
    // otherwise whoever answers at the peer's address could vouch for keys.
    if (!cert_ok) {
      fail(cert_why, true, StreamErrorCondition::NotAuthorized);
      return;
    }
  }
  verify_allowed_ = true;
  flush_verifies();
  if (state_ == State::Closed) return;
  bool external_offered = false;
  if (const auto* mechs = f.find_child("mechanisms", xmpp::kNsSasl)) {
    for (const auto* m : mechs->child_elements()) {
      if (m->name() == "mechanism" && m->text() == "EXTERNAL") external_offered = true;
    }
  }
  const bool dialback_offered = f.find_child("dialback", xmpp::kNsDialbackFeature) != nullptr;
  const bool want_sasl = peer_.auth != config::PeerAuth::Dialback;
  const bool want_db = peer_.auth != config::PeerAuth::SaslExternal && !host_.dialback_secret().empty();

  if (want_sasl && cert_ok && external_offered) {
    conn_->send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + base64_encode(local_) + "</auth>");
    state_ = State::AwaitSaslResult;
    arm_deadline();
    return;
  }
  if (want_db && dialback_offered) {
    if (peer_.auth == config::PeerAuth::SaslExternal) return;  // unreachable: want_db false
    const std::string key = dialback_key(host_.dialback_secret(), remote_, local_, stream_id_);
    conn_->send("<db:result from='" + xmpp::escape_attr(local_) + "' to='" + xmpp::escape_attr(remote_) + "'>" + key + "</db:result>");
    state_ = State::AwaitDialbackResult;
    arm_deadline();
    return;
  }
  std::string why = "no usable authentication:";
  if (want_sasl) why += cert_ok ? (external_offered ? "" : " SASL EXTERNAL not offered;") : " " + cert_why + ";";
  if (want_db) why += dialback_offered ? "" : " dialback not offered;";
  if (!want_db && peer_.auth != config::PeerAuth::SaslExternal) why += " dialback not enabled on this side;";
  fail(why, true, StreamErrorCondition::NotAuthorized);
}

void OutboundLink::flush_verifies() {
  if (!verify_allowed_ || !conn_) return;
  for (auto& v : verifies_) {
    if (v.sent) continue;
    conn_->send("<db:verify from='" + xmpp::escape_attr(local_) + "' to='" + xmpp::escape_attr(remote_) +
                "' id='" + xmpp::escape_attr(v.stream_id) + "'>" + xmpp::escape_text(v.key) + "</db:verify>");
    v.sent = true;
  }
}

void OutboundLink::on_db_verify_reply(const xmpp::Element& e) {
  const std::string id = e.attr_or("id");
  const std::string type = e.attr_or("type");
  for (auto it = verifies_.begin(); it != verifies_.end(); ++it) {
    if (it->sent && it->stream_id == id) {
      auto done = std::move(it->done);
      verifies_.erase(it);
      done(type == "valid" ? VerifyResult::Valid : type == "invalid" ? VerifyResult::Invalid : VerifyResult::Error);
      return;
    }
  }
  // A verification answer nobody asked for on this stream is ignored (XEP-0220 §2.4).
  LogLine(host_.log(), LogLevel::Warning) << describe() << ": ignoring unsolicited db:verify answer";
}

void OutboundLink::become_ready() {
  state_ = State::Ready;
  arm_deadline();   // cancels
  LogLine(host_.log(), LogLevel::Info) << describe() << ": ready (" << (sasl_done_ ? "SASL EXTERNAL" : "dialback") << ")";
  host_.connection_event(describe() + ": authenticated (" + (sasl_done_ ? "SASL EXTERNAL" : "dialback") +
                             (tls_ ? "; " + net::describe_tls(*tls_, peer_.direct_tls) : std::string()) + ")",
                         event_peer());
  if (sm_offered_) {
    // Acknowledgements for what we write (XEP-0198 §3; no resumption on S2S).
    conn_->send("<enable xmlns='urn:xmpp:sm:3'/>");
    sm_ = Sm::Requested;
  }
  auto queue = std::move(queue_);
  queue_.clear();
  for (auto& q : queue) write_stanza(q.stanza, q.ack);
  last_write_ = host_.loop().now();
  arm_keepalive();
}

void OutboundLink::on_element(xmpp::Element e, std::size_t) {
  if (restart_pending_) return;
  const std::string& ns = e.ns();
  const std::string& name = e.name();
  if (state_ == State::Closed) {
    // After our close, a peer's last <a/> (Prosody sends one as it closes)
    // still proves what it counts.
    if (ns == kNsSm && name == "a" && sm_ == Sm::On) on_sm(e);
    return;
  }
  if (ns == xmpp::kNsDialback && name == "verify") {
    on_db_verify_reply(e);
    return;
  }
  if (ns == kNsSm && state_ == State::Ready) {
    on_sm(e);
    return;
  }
  switch (state_) {
    case State::AwaitFeatures:
      if (ns == xmpp::kNsStream && name == "features") { on_features(e); return; }
      break;
    case State::AwaitProceed:
      if (ns == xmpp::kNsTls && name == "proceed") {
        // Plaintext the peer pipelined after <proceed/> dies with the old parser.
        state_ = State::TlsHandshake;
        restart_pending_ = true;
        conn_->start_tls_client(host_.tls().for_domain(local_), remote_);
        arm_deadline();
        return;
      }
      if (ns == xmpp::kNsTls && name == "failure") { fail("peer refused STARTTLS"); return; }
      break;
    case State::AwaitSaslResult:
      if (ns == xmpp::kNsSasl && name == "success") {
        sasl_done_ = true;
        restart_pending_ = true;
        header_after_reset_ = true;
        state_ = State::AwaitHeader;
        arm_deadline();
        return;
      }
      if (ns == xmpp::kNsSasl && name == "failure") { fail("SASL EXTERNAL refused by peer"); return; }
      break;
    case State::AwaitDialbackResult:
      if (ns == xmpp::kNsDialback && name == "result") {
        const std::string type = e.attr_or("type");
        if (e.attr_or("from") != remote_ || e.attr_or("to") != local_) break;
        if (type == "valid") { become_ready(); return; }
        if (type == "invalid") {
          // XEP-0220: queued stanzas bounce with internal-server-error.
          auto queue = std::move(queue_);
          queue_.clear();
          for (auto& q : queue)
            give_back(std::move(q.stanza), {StanzaErrorCondition::InternalServerError, StanzaErrorType::Cancel,
                                            "dialback refused by " + remote_, {}, {}}, q.ack);
          fail("dialback key refused by peer");
          return;
        }
        fail("dialback error from peer");
        return;
      }
      break;
    case State::Ready:
      // Without bidi (XEP-0288) the responder must not send stanzas on our stream.
      break;
    default:
      break;
  }
  if (ns == xmpp::kNsStream && name == "error") {
    std::string cond = "unknown";
    for (const auto* c : e.child_elements()) {
      if (c->ns() == xmpp::kNsStreams && c->name() != "text") cond = c->name();
    }
    fail("stream error from peer: " + cond);
    return;
  }
  fail("unexpected <" + name + "/> from peer", true, StreamErrorCondition::UnsupportedStanzaType);
}

void OutboundLink::give_back(xmpp::Element stanza, xmpp::StanzaError error, std::uint64_t ack) {
  const std::string why = "could not deliver it (" + error.text + "): answered with an error";
  host_.undeliverable(std::move(stanza), std::move(error));
  if (ack != 0) {
    host_.released_taken(ack);
    host_.released_settled(ack, why);
  }
}

void OutboundLink::write_stanza(const xmpp::Element& stanza, std::uint64_t ack) {
  conn_->send(stanza.serialize());
  ++stanzas_;
  if (sm_ != Sm::Off) ++sm_sent_;
  if (ack == 0) return;
  unproven_.push_back({sm_ != Sm::Off ? sm_sent_ : 0, ack, conn_->bytes_sent(), host_.loop().now(), {}});
  arm_proof();
  if (held_acks_.empty() && conn_->pending_output() <= kAckMark) {
    host_.released_taken(ack);
    return;
  }
  // The peer has a backlog: its senders wait (flow control) until it takes it.
  if (held_acks_.empty()) conn_->arm_drain(kAckMark / 4);
  held_acks_.push_back(ack);
}

void OutboundLink::arm_proof() {
  if (proof_timer_ != 0 || state_ != State::Ready) return;
  auto alive = alive_;
  // A short wait lets a burst be acknowledged with one <r/>.
  proof_timer_ = host_.loop().add_timer(std::chrono::milliseconds(20), [this, alive] {
    if (!*alive) return;
    proof_timer_ = 0;
    seek_proof();
  });
}

void OutboundLink::seek_proof() {
  if (state_ != State::Ready || unproven_.empty()) return;
  const auto now = host_.loop().now();
  if (now - unproven_.front().written_at >= kProofDeadline) {
    // A peer that keeps its link but proves nothing (no <a/> covering it, or a
    // TCP window that never opens) cannot be told apart from one that lost it.
    // Its senders hear of it now, not when a stuck socket finally closes.
    const std::string why = "no proof of delivery within " + std::to_string(kProofDeadline.count()) + " s";
    release_held_acks();
    lose_unproven(why);
    fail(why, true, StreamErrorCondition::ConnectionTimeout);
    if (conn_) conn_->close_now(why);
    return;
  }
  if (sm_ == Sm::On) {
    if (!r_outstanding_) {
      conn_->send("<r xmlns='urn:xmpp:sm:3'/>");
      r_outstanding_ = true;
      r_sent_at_ = now;
    } else if (now - r_sent_at_ >= kAckWait) {
      fail("no stream management acknowledgement within " + std::to_string(kAckWait.count()) + " s", true,
           StreamErrorCondition::ConnectionTimeout);
      return;
    }
  } else if (sm_ == Sm::Off) {
    // Per stanza: all bytes but the unacknowledged tail have reached the peer.
    if (const auto unacked = conn_->unacknowledged_bytes()) {
      const std::uint64_t sent = conn_->bytes_sent();
      const std::uint64_t reached = sent > *unacked ? sent - *unacked : 0;
      for (auto& u : unproven_) {
        if (u.index != 0 || u.end > reached) break;
        if (u.tcp_at == net::TimePoint{}) u.tcp_at = now;
      }
    }
    while (!unproven_.empty() && unproven_.front().index == 0 && unproven_.front().tcp_at != net::TimePoint{} &&
           now - unproven_.front().tcp_at >= kTcpGrace) {
      const std::uint64_t ack = unproven_.front().ack;
      unproven_.pop_front();
      prove(ack, kProofTcp);
    }
  }
  // Requested: waiting for <enabled/> or <failed/> (the deadline above bounds it).
  if (!unproven_.empty()) arm_proof();
}

void OutboundLink::on_sm(const xmpp::Element& e) {
  const std::string& name = e.name();
  if (name == "enabled") {
    if (sm_ == Sm::Requested) sm_ = Sm::On;
    return;
  }
  if (name == "failed") {
    // Not enabled after all: what was counted gets the TCP proof instead.
    LogLine(host_.log(), LogLevel::Info) << describe() << ": stream management refused by the peer";
    sm_ = Sm::Off;
    r_outstanding_ = false;
    for (auto& u : unproven_) u.index = 0;   // their bytes count from the start
    arm_proof();
    return;
  }
  if (name == "r") {
    // We receive no stanzas on an outbound stream (no bidi): none handled.
    conn_->send("<a xmlns='urn:xmpp:sm:3' h='0'/>");
    return;
  }
  if (name == "a" && sm_ != Sm::Off) {
    const std::string h_text = e.attr_or("h");
    bool ok = !h_text.empty() && h_text.size() <= 10;
    for (char c : h_text) ok = ok && c >= '0' && c <= '9';
    const std::uint64_t h32 = ok ? std::stoull(h_text) : 0;
    ok = ok && h32 <= 0xffffffffULL;
    // h counts modulo 2^32 (XEP-0198 §4): what it adds since the last one.
    const std::uint64_t delta = (h32 - (sm_acked_ & 0xffffffffULL)) & 0xffffffffULL;
    if (!ok || delta > sm_sent_ - sm_acked_) {
      fail("stream management <a h='" + h_text.substr(0, 16) + "'/> does not match the " + std::to_string(sm_sent_) +
               " stanza(s) written",
           true, StreamErrorCondition::UndefinedCondition);
      return;
    }
    const std::uint64_t h = sm_acked_ + delta;
    sm_acked_ = h;
    r_outstanding_ = false;
    while (!unproven_.empty() && unproven_.front().index != 0 && unproven_.front().index <= h) {
      const std::uint64_t ack = unproven_.front().ack;
      unproven_.pop_front();
      prove(ack, kProofSm);
    }
    if (!unproven_.empty()) arm_proof();
    return;
  }
  fail("unexpected <" + name + "/> in " + std::string(kNsSm), true, StreamErrorCondition::UnsupportedStanzaType);
}

void OutboundLink::prove(std::uint64_t ack, std::string_view proof) {
  if (!held_acks_.empty() && held_acks_.front() == ack) {
    held_acks_.pop_front();
    host_.released_taken(ack);
  }
  host_.released_delivered(ack, proof);
}

void OutboundLink::lose_unproven(const std::string& reason) {
  auto lost = std::move(unproven_);
  unproven_.clear();
  for (const auto& u : lost) host_.released_lost(u.ack, reason);
}

void OutboundLink::release_held_acks() {
  auto acks = std::move(held_acks_);
  held_acks_.clear();
  for (std::uint64_t a : acks) host_.released_taken(a);
}

void OutboundLink::send(xmpp::Element stanza, std::uint64_t ack) {
  if (state_ == State::Ready && conn_->pending_output() > kMaxPendingOutput) {
    // The peer is not reading: bounded memory, and the sender learns it.
    give_back(std::move(stanza), {StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait,
                                  remote_ + " is not reading its stream", {}, {}}, ack);
    return;
  }
  if (state_ == State::Ready) {
    write_stanza(stanza, ack);
    last_write_ = last_activity_ = host_.loop().now();
    return;
  }
  if (state_ == State::Closed) {
    give_back(std::move(stanza), {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                                  "Server-to-server connection closed", {}, {}}, ack);
    return;
  }
  if (queue_.size() >= host_.side().max_queue) {
    give_back(std::move(stanza), {StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait,
                                  "too many stanzas queued for " + remote_, {}, {}}, ack);
    return;
  }
  queue_.push_back({host_.loop().now(), std::move(stanza), ack});
  arm_queue_timer();
}

void OutboundLink::arm_queue_timer() {
  if (queue_timer_ || queue_.empty()) return;
  const auto limit = net::Duration(host_.side().queue_timeout_ms);
  const auto now = host_.loop().now();
  const auto due = queue_.front().since + limit;
  const auto wait = due > now ? std::chrono::duration_cast<net::Duration>(due - now) : net::Duration(0);
  auto alive = alive_;
  queue_timer_ = host_.loop().add_timer(wait, [this, alive] {
    if (!*alive) return;
    queue_timer_ = 0;
    expire_queue();
  });
}

void OutboundLink::expire_queue() {
  // A stanza may wait for the link at most queue-ms, whatever the negotiation is doing.
  const auto limit = net::Duration(host_.side().queue_timeout_ms);
  const auto now = host_.loop().now();
  while (!queue_.empty() && now - queue_.front().since >= limit) {
    auto q = std::move(queue_.front());
    queue_.pop_front();
    give_back(std::move(q.stanza), {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                                    "no link to " + remote_ + " within the queue time limit", {}, {}}, q.ack);
  }
  arm_queue_timer();
}

void OutboundLink::request_verify(const std::string& stream_id, const std::string& key,
                                  std::function<void(VerifyResult)> done) {
  if (state_ == State::Closed) {
    done(VerifyResult::Error);
    return;
  }
  const std::uint64_t id = ++verify_ids_;
  verifies_.push_back({stream_id, key, std::move(done), false, id});
  // An authoritative server that never answers must not pin the request (or the
  // inbound stream waiting on it) forever.
  auto alive = alive_;
  host_.loop().add_timer(net::Duration(host_.side().negotiation_timeout_ms), [this, alive, id] {
    if (!*alive) return;
    for (auto it = verifies_.begin(); it != verifies_.end(); ++it) {
      if (it->id != id) continue;
      auto cb = std::move(it->done);
      verifies_.erase(it);
      LogLine(host_.log(), LogLevel::Warning) << describe() << ": dialback verification timed out";
      cb(VerifyResult::Error);
      return;
    }
  });
  flush_verifies();
}

void OutboundLink::end_stream(const std::string& error_bytes) {
  if (conn_) {
    if (!error_bytes.empty()) conn_->send(error_bytes);
    conn_->send("</stream:stream>");
    conn_->close_after_flush();
    return;
  }
  // Never connected: nothing will call on_closed, so tell the host here (later).
  auto alive = alive_;
  host_.loop().post([this, alive] {
    if (*alive) {
      *alive_ = false;
      host_.link_closed(this);
    }
  });
}

void OutboundLink::close() {
  if (state_ == State::Closed) return;
  const bool was_ready = state_ == State::Ready;
  state_ = State::Closed;
  if (!was_ready) bounce_all("link closed");
  end_stream({});
}

}  // namespace portcullis::s2s
