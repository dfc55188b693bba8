#include "guard/s2s/inbound_session.h"

#include "guard/s2s/dialback.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/precis.h"

namespace portcullis::s2s {

using xmpp::StreamErrorCondition;

namespace {

// What frames and records say of the peer's certificate for `domain`: its
// subject and fingerprint when the chain verified and the certificate names the
// domain; marked "unverified" otherwise (a dialback peer may present any
// certificate, and nothing downstream may take that one for an identity).
std::string cert_identity_of(const net::TlsSessionInfo& info, std::string_view domain) {
  if (!info.peer_cert_present) return {};
  // Bounded so it always fits a frame header string (1024 bytes); the
  // fingerprint, which identifies the certificate, is always kept whole.
  std::string id = info.peer.subject.substr(0, 512) + " sha256:" + info.peer.sha256_fingerprint;
  if (info.peer_cert_trusted && net::certificate_matches_domain(info.peer, domain)) return id;
  return "unverified: " + id;
}

std::string db_error(std::string_view name, std::string_view from, std::string_view to,
                     std::string_view id, std::string_view condition, std::string_view type) {
  std::string out = "<db:";
  out.append(name).append(" from='").append(xmpp::escape_attr(from)).append("' to='")
      .append(xmpp::escape_attr(to)).append("'");
  if (!id.empty()) out.append(" id='").append(xmpp::escape_attr(id)).append("'");
  out.append(" type='error'><error type='").append(type).append("'><").append(condition)
      .append(" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:").append(name).append(">");
  return out;
}

}  // namespace

InboundSession::InboundSession(SessionHost& host, std::unique_ptr<net::Connection> conn, bool direct_tls)
    : host_(host), conn_(std::move(conn)), alive_(std::make_shared<bool>(true)), since_unix_ms_(static_cast<std::int64_t>(unix_now_us() / 1000)) {
  direct_tls_ = direct_tls;
  parser_ = std::make_unique<xmpp::StreamParser>(static_cast<xmpp::StreamHandler&>(*this), parser_limits(host_.side()));
}

InboundSession::~InboundSession() {
  *alive_ = false;
  if (deadline_) host_.loop().cancel_timer(deadline_);
  if (idle_timer_) host_.loop().cancel_timer(idle_timer_);
  if (sm_timer_) host_.loop().cancel_timer(sm_timer_);
}

InboundMeta InboundSession::event_peer(std::string_view domain, ipc::AuthMethod method) const {
  InboundMeta m;
  m.peer_domain = std::string(domain.substr(0, 1023));
  m.auth = method;
  m.tls = tls_.has_value();
  if (tls_ && !domain.empty()) m.cert_identity = cert_identity_of(*tls_, domain);
  m.stream_id = stream_id_;
  return m;
}

ipc::AuthMethod InboundSession::auth_so_far() const {
  if (!sasl_domain_.empty()) return ipc::AuthMethod::SaslExternal;
  return verified_.empty() ? ipc::AuthMethod::None : ipc::AuthMethod::Dialback;
}

std::string InboundSession::describe() const {
  std::string d = "inbound ";
  d += from_.empty() ? "?" : from_;
  d += "->";
  d += to_.empty() ? "?" : to_;
  d += " from ";
  d += conn_->peer().to_string();
  return d;
}

LinkStatus InboundSession::status() const {
  LinkStatus st;
  st.inbound = true;
  st.local = to_;
  st.remote = from_;
  st.address = conn_->peer().to_string();
  switch (state_) {
    case State::AwaitHeader: st.state = "await-header"; break;
    case State::Negotiating: st.state = "negotiating"; break;
    case State::TlsHandshake: st.state = "tls-handshake"; break;
    case State::Authenticated: st.state = "authenticated"; break;
    case State::Closed: st.state = "closed"; break;
  }
  st.auth = !sasl_domain_.empty() ? "sasl-external" : !verified_.empty() ? "dialback" : "";
  if (tls_) st.tls = tls_->protocol;
  st.since_unix_ms = since_unix_ms_;
  st.stanzas = stanzas_;
  st.pending_bytes = conn_->pending_output();
  st.reading = conn_->reading();
  return st;
}

void InboundSession::start() {
  net::Connection::Callbacks cb;
  cb.on_data = [this](std::string_view b) { on_data(b); };
  cb.on_tls_established = [this](const net::TlsSessionInfo& i) { on_tls(i); };
  cb.on_closed = [this](const std::string& r) { on_closed(r); };
  conn_->set_callbacks(std::move(cb));
  conn_->start();
  if (direct_tls_) {
    // XEP-0368: the handshake comes first; the stream header follows inside it.
    // The certificate is the side's, or the one of the domain the SNI names.
    state_ = State::TlsHandshake;
    conn_->start_tls_server(host_.tls());
  }
  stream_id_ = random_stream_id();
  last_activity_ = host_.loop().now();
  arm_deadline();
  arm_idle();
}

void InboundSession::set_reading(bool on) {
  if (state_ != State::Closed && conn_ && conn_->is_open()) conn_->set_reading(on);
}

void InboundSession::arm_deadline() {
  if (deadline_) host_.loop().cancel_timer(deadline_);
  deadline_ = 0;
  if (state_ == State::Authenticated || state_ == State::Closed) return;
  auto alive = alive_;
  deadline_ = host_.loop().add_timer(net::Duration(host_.side().negotiation_timeout_ms), [this, alive] {
    if (!*alive) return;
    deadline_ = 0;
    // Dialback streams may idle in Negotiating with verified pairs: they are usable.
    if (!verified_.empty()) return;
    fail(StreamErrorCondition::ConnectionTimeout, "negotiation step timed out");
  });
}

void InboundSession::touch() { last_activity_ = host_.loop().now(); }

void InboundSession::arm_idle() {
  auto alive = alive_;
  const auto idle = net::Duration(host_.side().idle_timeout_ms);
  idle_timer_ = host_.loop().add_timer(idle, [this, alive, idle] {
    if (!*alive) return;
    idle_timer_ = 0;
    if (state_ == State::Closed) return;
    if (host_.loop().now() - last_activity_ >= idle) {
      LogLine(host_.log(), LogLevel::Info) << describe() << ": idle, closing";
      conn_->send("</stream:stream>");
      conn_->close_after_flush();
      state_ = State::Closed;
      return;
    }
    arm_idle();
  });
}

void InboundSession::on_data(std::string_view bytes) {
  if (state_ == State::Closed) return;
  touch();
  parser_->feed(bytes);
  if (state_ != State::Closed && conn_->pending_output() > kMaxPendingOutput) {
    // Our answers pile up because the peer sends but never reads: cut it off
    // rather than buffer without bound.
    LogLine(host_.log(), LogLevel::Warning) << describe() << ": peer does not read its stream, closing";
    state_ = State::Closed;
    conn_->close_now("peer does not read its stream");
    return;
  }
  if (restart_pending_ && state_ != State::Closed) {
    // Stream restart after SASL success: the old parser context must not be
    // destroyed from inside its own callback, so it is replaced here.
    restart_pending_ = false;
    parser_->reset();
  }
}

void InboundSession::fail(StreamErrorCondition c, std::string text) {
  if (state_ == State::Closed) return;
  LogLine(host_.log(), LogLevel::Warning) << describe() << ": stream error " << xmpp::to_string(c)
                                          << ": " << text;
  host_.connection_event(describe() + ": stream error " + std::string(xmpp::to_string(c)) + ": " + text,
                         event_peer(from_, auth_so_far()));
  if (!header_sent_) {
    // RFC 6120 §4.9.1.3: a stream error before our header still needs the header.
    conn_->send(s2s_stream_header(to_.empty() ? std::string_view{} : std::string_view(to_), from_, stream_id_));
    header_sent_ = true;
  }
  final_sm_ack();
  conn_->send(xmpp::stream_error_bytes(c, text));
  conn_->send("</stream:stream>");
  conn_->close_after_flush();
  state_ = State::Closed;
}

void InboundSession::peer_stream_error(const xmpp::Element& e) {
  // The peer ends the stream with its own error (RFC 6120 §4.9): that is its
  // condition to report, not one of ours; we close our side without another
  // error. Its text is the peer's, so it is bounded and made printable.
  std::string cond = "undefined-condition", text;
  for (const auto* c : e.child_elements()) {
    if (c->ns() != xmpp::kNsStreams) continue;
    if (c->name() == "text") text = c->text();
    else cond = c->name();
  }
  std::string shown;
  for (char ch : std::string_view(text).substr(0, 200)) {
    shown += (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ? '?' : ch;
  }
  const std::string what = describe() + ": peer closed with stream error " + cond.substr(0, 64) +
                           (shown.empty() ? std::string() : " (" + shown + ")");
  LogLine(host_.log(), LogLevel::Info) << what;
  host_.connection_event(what, event_peer(from_, auth_so_far()));
  if (!header_sent_) {
    conn_->send(s2s_stream_header(to_.empty() ? std::string_view{} : std::string_view(to_), from_, stream_id_));
    header_sent_ = true;
  }
  conn_->send("</stream:stream>");
  conn_->close_after_flush();
  state_ = State::Closed;
}

void InboundSession::close_with(StreamErrorCondition c, std::string_view text) {
  fail(c, std::string(text));
}

void InboundSession::on_stream_error(StreamErrorCondition condition, std::string text) {
  fail(condition, std::move(text));
}

void InboundSession::on_stream_close() {
  if (state_ == State::Closed) return;
  LogLine(host_.log(), LogLevel::Debug) << describe() << ": peer closed the stream";
  final_sm_ack();
  conn_->send("</stream:stream>");
  conn_->close_after_flush();
  state_ = State::Closed;
}

void InboundSession::on_closed(const std::string& reason) {
  if (state_ == State::TlsHandshake && !conn_->handshake_ended_by_peer()) {
    // A refused handshake (no common protocol, an ALPN list without
    // xmpp-server, cleartext on a direct-TLS port) is a refusal: archived,
    // within the edge's rate of refusal records. A peer that only connects and
    // goes away (a port probe, a health check) refused nothing: the log has it.
    const std::string_view prefix = "TLS handshake failed";
    const std::string what = describe() + ": " +
                             (reason.rfind(prefix, 0) == 0 ? reason : std::string(prefix) + ": " + reason);
    LogLine(host_.log(), LogLevel::Info) << what;
    host_.refused_connection(what, event_peer(from_, auth_so_far()), kTlsHandshakeCheck);
  } else if (state_ != State::Closed) {
    LogLine(host_.log(), LogLevel::Debug) << describe() << ": connection closed: " << reason;
  }
  state_ = State::Closed;
  *alive_ = false;
  host_.inbound_closed(this);
}

void InboundSession::on_stream_open(const xmpp::StreamHeader& header) {
  if (state_ == State::Closed) return;
  if (state_ != State::AwaitHeader) {
    fail(StreamErrorCondition::NotWellFormed, "unexpected stream header");
    return;
  }
  const bool restart = !to_.empty();
  auto to = xmpp::normalize_domain(header.to);
  auto from = xmpp::normalize_domain(header.from);
  if (restart) {
    // A restart must keep the addresses of the first header (Prosody does the same).
    if ((!header.to.empty() && (!to || *to != to_)) || (!header.from.empty() && (!from || *from != from_))) {
      fail(StreamErrorCondition::ImproperAddressing, "stream addresses changed across a restart");
      return;
    }
  } else {
    if (!to || !host_.fronts(*to)) {
      fail(StreamErrorCondition::HostUnknown, "this service does not serve '" + header.to + "'");
      return;
    }
    to_ = *to;
    if (!from) {
      // Without a 'from' we cannot pick the peering row (deny by default).
      fail(StreamErrorCondition::PolicyViolation, "a stream 'from' naming the sending domain is required");
      return;
    }
    from_ = *from;
    peer_ = host_.peering().find(from_);
    if (peer_ == nullptr) {
      fail(StreamErrorCondition::PolicyViolation, "no peering for domain '" + from_ + "'");
      return;
    }
  }
  if (header.version != "1.0") {
    fail(StreamErrorCondition::UnsupportedVersion, "version='1.0' is required");
    return;
  }
  if (restart) stream_id_ = random_stream_id();
  conn_->send(s2s_stream_header(to_, from_, stream_id_));
  header_sent_ = true;
  state_ = State::Negotiating;
  if (!sasl_domain_.empty()) {
    // After SASL success the stream is open; stream management (XEP-0198) lets
    // the sending server know what the boundary took, and bounce the rest if
    // this stream is lost.
    conn_->send("<stream:features><sm xmlns='urn:xmpp:sm:3'/></stream:features>");
    state_ = State::Authenticated;
    arm_deadline();
    return;
  }
  send_features();
  arm_deadline();
}

bool InboundSession::tls_satisfied() const {
  if (conn_->is_tls()) return true;
  return peer_ != nullptr && peer_->tls != config::PeerTls::Required;
}

bool InboundSession::sasl_possible(std::string* why) const {
  if (peer_->auth == config::PeerAuth::Dialback) { if (why) *why = "peer is configured for dialback only"; return false; }
  if (!tls_) { if (why) *why = "SASL EXTERNAL needs TLS"; return false; }
  if (!tls_->peer_cert_present) { if (why) *why = "no client certificate presented"; return false; }
  if (!tls_->peer_cert_trusted) {
    if (why) *why = "certificate for " + from_ + " is not trusted (" + tls_->verify_error + ")";
    return false;
  }
  if (!net::certificate_matches_domain(tls_->peer, from_)) {
    if (why) *why = "certificate does not name " + from_;
    return false;
  }
  return true;
}

bool InboundSession::dialback_possible(std::string* why) const {
  if (peer_->auth == config::PeerAuth::SaslExternal) { if (why) *why = "peer requires SASL EXTERNAL"; return false; }
  if (host_.dialback_secret().empty()) { if (why) *why = "dialback is not enabled on this side"; return false; }
  if (!tls_satisfied()) { if (why) *why = "TLS is required first"; return false; }
  return true;
}

void InboundSession::send_features() {
  std::string f = "<stream:features>";
  if (!conn_->is_tls()) {
    if (peer_->tls != config::PeerTls::Forbidden) {
      f += "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>";
      if (peer_->tls == config::PeerTls::Required) f += "<required/>";
      f += "</starttls>";
    }
    if (peer_->tls == config::PeerTls::Required) {
      conn_->send(f + "</stream:features>");
      return;
    }
  }
  std::string why_sasl, why_db;
  const bool sasl = sasl_possible(&why_sasl);
  const bool db = dialback_possible(&why_db);
  if (sasl) f += "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>";
  if (db) f += "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>";
  if (!sasl && !db && conn_->is_tls()) {
    // Nothing this peer could authenticate with: refuse now, and say why.
    LogLine(host_.log(), LogLevel::Warning) << "refusing " << from_ << ": " << why_sasl
                                            << (why_db.empty() ? "" : "; dialback: " + why_db);
    conn_->send(f + "</stream:features>");
    fail(StreamErrorCondition::NotAuthorized, why_sasl);
    return;
  }
  conn_->send(f + "</stream:features>");
}

void InboundSession::on_tls(const net::TlsSessionInfo& info) {
  if (state_ == State::Closed) return;
  tls_ = info;
  LogLine(host_.log(), LogLevel::Info) << describe() << ": TLS " << net::describe_tls(info, direct_tls_)
                                       << (info.peer_cert_present ? (info.peer_cert_trusted ? ", client certificate trusted" : ", client certificate NOT trusted: " + info.verify_error) : ", no client certificate");
  state_ = State::AwaitHeader;
  arm_deadline();
}

void InboundSession::handle_starttls() {
  if (conn_->is_tls() || peer_->tls == config::PeerTls::Forbidden) {
    fail(StreamErrorCondition::PolicyViolation, "STARTTLS not offered");
    return;
  }
  conn_->send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  state_ = State::TlsHandshake;
  // RFC 6120 §5.4.3.3: nothing learned before TLS survives it, dialback pairs
  // included; verifications still running answer into the void.
  verified_.clear();
  pending_.clear();
  ++generation_;
  // Anything the peer pipelined after <starttls/> in plaintext is discarded with
  // the old parser (no STARTTLS command injection).
  restart_pending_ = true;
  header_sent_ = false;   // the restarted stream needs our header again (RFC 6120 §4.9.1.3)
  // The certificate of the domain the stream is for, unless the SNI names another.
  conn_->start_tls_server(host_.tls().for_domain(to_));
  arm_deadline();
}

void InboundSession::handle_sasl_auth(const xmpp::Element& auth) {
  const std::string mech = auth.attr_or("mechanism");
  std::string why;
  if (!sasl_domain_.empty()) {
    fail(StreamErrorCondition::PolicyViolation, "already authenticated");
    return;
  }
  if (mech != "EXTERNAL" || !sasl_possible(&why)) {
    const std::string cond = mech != "EXTERNAL" ? "invalid-mechanism" : "not-authorized";
    LogLine(host_.log(), LogLevel::Warning) << describe() << ": SASL " << mech << " refused: "
                                            << (why.empty() ? "mechanism not offered" : why);
    host_.connection_event(describe() + ": SASL failure: " + (why.empty() ? cond : why),
                           event_peer(from_, ipc::AuthMethod::SaslExternal));
    conn_->send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><" + cond + "/></failure>");
    conn_->send("</stream:stream>");
    conn_->close_after_flush();
    state_ = State::Closed;
    return;
  }
  std::string text = auth.text();
  if (!text.empty() && text != "=") {
    std::string authzid;
    if (!base64_decode(text, authzid)) {
      host_.connection_event(describe() + ": SASL failure: incorrect-encoding",
                             event_peer(from_, ipc::AuthMethod::SaslExternal));
      conn_->send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><incorrect-encoding/></failure>");
      conn_->send("</stream:stream>");
      conn_->close_after_flush();
      state_ = State::Closed;
      return;
    }
    auto z = xmpp::normalize_domain(authzid);
    if (!z || *z != from_) {
      host_.connection_event(describe() + ": SASL failure: authzid does not match stream from",
                             event_peer(from_, ipc::AuthMethod::SaslExternal));
      conn_->send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-authzid/></failure>");
      conn_->send("</stream:stream>");
      conn_->close_after_flush();
      state_ = State::Closed;
      return;
    }
  }
  conn_->send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  sasl_domain_ = from_;
  LogLine(host_.log(), LogLevel::Info) << describe() << ": authenticated " << from_ << " by SASL EXTERNAL";
  host_.connection_event(describe() + ": authenticated by SASL EXTERNAL (" + cert_identity_of(*tls_, from_) + "; " +
                             net::describe_tls(*tls_, direct_tls_) + ")",
                         event_peer(from_, ipc::AuthMethod::SaslExternal));
  state_ = State::AwaitHeader;
  restart_pending_ = true;
  header_sent_ = false;   // the restarted stream needs our header again (RFC 6120 §4.9.1.3)
  arm_deadline();
}

void InboundSession::handle_db_result(const xmpp::Element& e) {
  if (e.attr("type") != nullptr) {
    // Unsolicited dialback result on a stream we did not initiate (the 2012
    // dialback attacks): never act on it.
    fail(StreamErrorCondition::NotAuthorized, "unsolicited dialback result");
    return;
  }
  const auto from = xmpp::normalize_domain(e.attr_or("from"));
  const auto to = xmpp::normalize_domain(e.attr_or("to"));
  if (!from || !to) {
    fail(StreamErrorCondition::ImproperAddressing, "db:result needs valid 'from' and 'to'");
    return;
  }
  std::string why;
  const config::Peer* row = host_.peering().find(*from);
  if (!host_.fronts(*to)) {
    conn_->send(db_error("result", *to, *from, {}, "item-not-found", "cancel"));
    return;
  }
  if (row == nullptr || row->auth == config::PeerAuth::SaslExternal || host_.dialback_secret().empty()) {
    host_.connection_event(describe() + ": dialback refused for " + *from + ": not permitted by peering",
                           event_peer(*from, ipc::AuthMethod::Dialback));
    conn_->send(db_error("result", *to, *from, {}, "not-authorized", "auth"));
    return;
  }
  if (!conn_->is_tls() && row->tls == config::PeerTls::Required) {
    conn_->send(db_error("result", *to, *from, {}, "policy-violation", "modify"));
    return;
  }
  const auto pair = std::make_pair(*from, *to);
  if (verified_.count(pair) || pending_.count(pair)) return;   // duplicate request: nothing new
  pending_.insert(pair);
  auto alive = alive_;
  const std::string key = e.text();
  LogLine(host_.log(), LogLevel::Debug) << describe() << ": verifying dialback key for " << *from << "->" << *to;
  const std::uint64_t generation = generation_;
  host_.request_verify(*to, *from, stream_id_, key, [this, alive, pair, generation](VerifyResult r) {
    if (!*alive || state_ == State::Closed || generation != generation_) return;
    pending_.erase(pair);
    const auto& [f, t] = pair;
    switch (r) {
      case VerifyResult::Valid:
        verified_.insert(pair);
        conn_->send("<db:result from='" + xmpp::escape_attr(t) + "' to='" + xmpp::escape_attr(f) + "' type='valid'/>");
        LogLine(host_.log(), LogLevel::Info) << describe() << ": authenticated " << f << "->" << t << " by dialback";
        host_.connection_event(describe() + ": authenticated " + f + "->" + t + " by dialback",
                               event_peer(f, ipc::AuthMethod::Dialback));
        if (state_ == State::Negotiating) state_ = State::Authenticated;
        arm_deadline();
        break;
      case VerifyResult::Invalid:
        host_.connection_event(describe() + ": dialback key invalid for " + f + "->" + t,
                               event_peer(f, ipc::AuthMethod::Dialback));
        conn_->send("<db:result from='" + xmpp::escape_attr(t) + "' to='" + xmpp::escape_attr(f) + "' type='invalid'/>");
        if (verified_.empty()) fail(StreamErrorCondition::NotAuthorized, "dialback key invalid");
        break;
      case VerifyResult::Error:
        host_.connection_event(describe() + ": dialback verification failed for " + f + "->" + t,
                               event_peer(f, ipc::AuthMethod::Dialback));
        conn_->send(db_error("result", t, f, {}, "remote-server-not-found", "cancel"));
        break;
    }
  });
}

void InboundSession::handle_db_verify(const xmpp::Element& e) {
  if (e.attr("type") != nullptr) {
    fail(StreamErrorCondition::NotAuthorized, "unsolicited dialback verification result");
    return;
  }
  const auto from = xmpp::normalize_domain(e.attr_or("from"));   // the receiving server asking
  const auto to = xmpp::normalize_domain(e.attr_or("to"));       // us, the authoritative server
  const std::string id = e.attr_or("id");
  if (!from || !to || id.empty()) {
    fail(StreamErrorCondition::ImproperAddressing, "db:verify needs 'from', 'to' and 'id'");
    return;
  }
  if (!host_.fronts(*to) || host_.dialback_secret().empty()) {
    conn_->send(db_error("verify", *to, *from, id, "item-not-found", "cancel"));
    return;
  }
  if (!tls_satisfied()) {
    conn_->send(db_error("verify", *to, *from, id, "policy-violation", "modify"));
    return;
  }
  const std::string expected = dialback_key(host_.dialback_secret(), *from, *to, id);
  const bool ok = keys_equal(expected, e.text());
  conn_->send("<db:verify from='" + xmpp::escape_attr(*to) + "' to='" + xmpp::escape_attr(*from) +
              "' id='" + xmpp::escape_attr(id) + "' type='" + (ok ? "valid" : "invalid") + "'/>");
  LogLine(host_.log(), ok ? LogLevel::Debug : LogLevel::Warning)
      << describe() << ": authoritative verify for " << *to << " asked by " << *from << ": " << (ok ? "valid" : "invalid");
}

void InboundSession::handle_stanza(xmpp::Element e, std::size_t wire_bytes) {
  ++stanzas_;
  // Counted for XEP-0198 whatever becomes of it, and pending until this
  // returns: handled then, unless the host holds it (then when the boundary
  // has taken it).
  struct Handled {
    InboundSession* self;
    std::uint64_t index;
    bool held = false;
    ~Handled() {
      if (!held) self->sm_handled(index);
    }
  } handled{this, sm_on_ ? ++sm_received_ : 0};
  if (handled.index != 0) sm_pending_.insert(handled.index);
  const std::string* from_attr = e.attr("from");
  const std::string* to_attr = e.attr("to");
  if (from_attr == nullptr || to_attr == nullptr) {
    fail(StreamErrorCondition::ImproperAddressing, "stanza without 'from' or 'to'");
    return;
  }
  auto from = xmpp::parse_jid(*from_attr);
  auto to = xmpp::parse_jid(*to_attr);
  if (!from) {
    fail(StreamErrorCondition::InvalidFrom, "malformed 'from'");
    return;
  }
  InboundMeta meta;
  if (!sasl_domain_.empty()) {
    if (from->domain != sasl_domain_) {
      fail(StreamErrorCondition::InvalidFrom, "'from' domain " + from->domain + " is not the authenticated " + sasl_domain_);
      return;
    }
    meta.auth = ipc::AuthMethod::SaslExternal;
  } else {
    if (!to || !verified_.count({from->domain, to->domain})) {
      fail(StreamErrorCondition::InvalidFrom, "'from'/'to' pair not authenticated on this stream");
      return;
    }
    meta.auth = ipc::AuthMethod::Dialback;
  }
  if (!to) {
    host_.edge_refusal(e, event_peer(from->domain, meta.auth), xmpp::StanzaErrorCondition::JidMalformed, "to",
                       "malformed 'to'");
    if (xmpp::may_bounce(e)) {
      xmpp::Element reply = xmpp::make_error_reply(e, {xmpp::StanzaErrorCondition::JidMalformed,
                                                       xmpp::StanzaErrorType::Modify, "malformed 'to'", {}, {}});
      // The malformed address cannot be the sender of the reply: the domain
      // this stream was opened to (one we front) answers instead.
      reply.set_attr("from", to_);
      host_.send_local(std::move(reply));
    }
    return;
  }
  if (!host_.fronts(to->domain)) {
    fail(StreamErrorCondition::HostUnknown, "this service does not serve '" + to->domain + "'");
    return;
  }
  // PRECIS / IDNA2008 (RFC 7622): an address not already in its prepared form
  // is refused, never rewritten, so what crosses is what was checked.
  for (const auto* j : {&*from, &*to}) {
    if (auto why = xmpp::jid_prepared_problem(*j)) {
      const bool is_from = j == &*from;
      host_.edge_refusal(e, event_peer(from->domain, meta.auth), xmpp::StanzaErrorCondition::JidMalformed,
                         is_from ? "from-precis" : "to-precis",
                         std::string(is_from ? "'from'" : "'to'") + " is not a prepared JID: " + *why);
      if (xmpp::may_bounce(e)) {
        xmpp::Element reply = xmpp::make_error_reply(e, {xmpp::StanzaErrorCondition::JidMalformed,
                                                         xmpp::StanzaErrorType::Modify, "address not in its prepared form",
                                                         {}, {}});
        // The unprepared 'to' cannot answer: the domain this stream was opened to does.
        if (!is_from) reply.set_attr("from", to_);
        host_.send_local(std::move(reply));
      }
      return;
    }
  }
  // On a dialback stream several verified senders can share the stream: the
  // sender's own peering row says which kinds it may send.
  const config::Peer* sender_row = host_.peering().find(from->domain);
  const config::StanzaKinds& kinds = (sender_row ? sender_row : peer_)->kinds;
  const bool allowed = (e.name() == "message" && kinds.message) || (e.name() == "presence" && kinds.presence) ||
                       (e.name() == "iq" && kinds.iq);
  if (!allowed) {
    host_.edge_refusal(e, event_peer(from->domain, meta.auth), xmpp::StanzaErrorCondition::PolicyViolation, "kind",
                       "stanza kind " + e.name() + " not permitted for this peer");
    if (xmpp::may_bounce(e)) {
      host_.send_local(xmpp::make_error_reply(e, {xmpp::StanzaErrorCondition::PolicyViolation,
                                                  xmpp::StanzaErrorType::Cancel,
                                                  "stanza kind not permitted for this peer", {}, {}}));
    }
    return;
  }
  meta.peer_domain = from->domain;
  meta.tls = conn_->is_tls();
  if (tls_ && (cert_id_.empty() || cert_id_domain_ != from->domain)) {
    cert_id_domain_ = from->domain;
    cert_id_ = cert_identity_of(*tls_, from->domain);
  }
  meta.cert_identity = tls_ ? cert_id_ : std::string{};
  meta.stream_id = stream_id_;
  meta.wire_bytes = wire_bytes;
  meta.flow_id = flow_id;
  meta.sm_index = handled.index;
  handled.held = host_.on_inbound_stanza(std::move(e), meta);
}

void InboundSession::on_element(xmpp::Element element, std::size_t wire_bytes) {
  if (state_ == State::Closed || restart_pending_) return;
  const std::string& ns = element.ns();
  const std::string& name = element.name();
  if (ns == xmpp::kNsServer && (name == "message" || name == "presence" || name == "iq")) {
    if (state_ == State::Authenticated || (state_ == State::Negotiating && !verified_.empty())) {
      handle_stanza(std::move(element), wire_bytes);
    } else {
      fail(StreamErrorCondition::NotAuthorized, "stanza before authentication");
    }
    return;
  }
  if (ns == xmpp::kNsStream && name == "error") {
    peer_stream_error(element);
    return;
  }
  if (ns == xmpp::kNsSm && state_ == State::Authenticated && !sasl_domain_.empty()) {
    on_sm(element);
    return;
  }
  if (state_ != State::Negotiating && !(state_ == State::Authenticated && ns == xmpp::kNsDialback)) {
    fail(StreamErrorCondition::UnsupportedStanzaType, "unexpected <" + name + "/>");
    return;
  }
  if (ns == xmpp::kNsTls && name == "starttls") {
    handle_starttls();
  } else if (ns == xmpp::kNsSasl && name == "auth") {
    if (!tls_satisfied()) { fail(StreamErrorCondition::PolicyViolation, "TLS is required first"); return; }
    handle_sasl_auth(element);
  } else if (ns == xmpp::kNsDialback && name == "result") {
    handle_db_result(element);
  } else if (ns == xmpp::kNsDialback && name == "verify") {
    handle_db_verify(element);
  } else {
    fail(StreamErrorCondition::UnsupportedStanzaType, "unexpected <" + name + "/> in " + ns);
  }
}

void InboundSession::on_sm(const xmpp::Element& e) {
  const std::string& name = e.name();
  if (name == "enable") {
    if (sm_on_) {
      conn_->send("<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
      return;
    }
    // No resumption on S2S: <enabled/> carries no id, whatever was asked.
    sm_on_ = true;
    conn_->send("<enabled xmlns='urn:xmpp:sm:3'/>");
    return;
  }
  if (name == "r" && sm_on_) {
    send_sm_ack();
    return;
  }
  if (name == "a" && sm_on_) return;   // we send no stanzas on an inbound stream
  fail(StreamErrorCondition::UnsupportedStanzaType,
       "unexpected <" + name + "/> in " + std::string(xmpp::kNsSm) + (sm_on_ ? "" : " before <enable/>"));
}

std::uint64_t InboundSession::sm_h() const {
  // Everything received up to the first stanza still pending.
  return sm_pending_.empty() ? sm_received_ : *sm_pending_.begin() - 1;
}

void InboundSession::send_sm_ack() {
  if (state_ == State::Closed) return;
  const std::uint64_t h = sm_h();
  conn_->send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(h & 0xffffffffULL) + "'/>");
  // Answered with less than was received: the rest is acknowledged unasked
  // once handled (XEP-0198 allows an <a/> at any time).
  sm_owed_ = h < sm_received_;
}

void InboundSession::final_sm_ack() {
  // Before we close: what the boundary took, so the sender bounces only the rest.
  if (sm_on_ && state_ != State::Closed)
    conn_->send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_h() & 0xffffffffULL) + "'/>");
}

void InboundSession::sm_handled(std::uint64_t index) {
  if (index == 0 || sm_pending_.erase(index) == 0) return;
  if (!sm_owed_ || sm_timer_ != 0 || state_ == State::Closed) return;
  // A burst of handled stanzas makes one <a/>.
  auto alive = alive_;
  sm_timer_ = host_.loop().add_timer(std::chrono::milliseconds(5), [this, alive] {
    if (!*alive) return;
    sm_timer_ = 0;
    if (sm_owed_) send_sm_ack();
  });
}

}  // namespace portcullis::s2s
