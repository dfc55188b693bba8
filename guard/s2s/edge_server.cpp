#include "guard/s2s/edge_server.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::s2s {

using xmpp::StanzaErrorCondition;
using xmpp::StanzaErrorType;

std::string read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read dialback secret");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.size() < 16) throw std::runtime_error(path + ": dialback secret shorter than 16 bytes");
  return s;
}

net::TlsConfig tls_config_for(const config::Side& side) {
  net::TlsConfig tc;
  tc.cert_file = side.cert_file;
  tc.key_file = side.key_file;
  tc.ca_file = side.ca_file;
  tc.crl_file = side.crl_file;
  tc.crl_check_chain = side.crl_check_chain;
  for (const config::DomainCertificate& d : side.domain_certs) tc.identities.push_back({d.domain, d.cert_file, d.key_file});
  return tc;
}

EdgeServer::EdgeServer(net::EventLoop& loop, const config::Side& side, ipc::Direction outgoing, Logger& log)
    : loop_(loop), side_(side), outgoing_(outgoing), log_(log), peering_(side.peers) {
  tls_ = std::make_unique<net::TlsContext>(tls_config_for(side));
  if (!side.dialback_secret_file.empty()) dialback_secret_ = read_secret_file(side.dialback_secret_file);
  if (!side.rooms.empty()) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    std::string key(32, '\0');
    randombytes_buf(key.data(), key.size());
    for (const auto& svc : side.rooms) rooms_.push_back(std::make_unique<rooms::RoomService>(svc, key));
  }
}

EdgeServer::~EdgeServer() {
  if (refusal_timer_ != 0) loop_.cancel_timer(refusal_timer_);
}

void EdgeServer::start() {
  for (const auto& l : side_.listen) {
    listeners_.push_back(std::make_unique<net::Listener>(
        loop_, net::Endpoint{l.address, l.port},
        [this, direct = l.direct_tls](int fd, net::Endpoint peer) { on_accept(fd, std::move(peer), direct); }));
    LogLine(log_, LogLevel::Info) << "listening on " << l.address << ":" << l.port
                                  << (l.direct_tls ? " (direct TLS)" : "")
                                  << (side_.name == "node" ? " for the node" : " for side " + side_.name);
  }
  for (const auto& svc : rooms_) {
    LogLine(log_, LogLevel::Info) << "hosting room service " << svc->domain() << " (" << svc->rooms().size()
                                  << " room(s))" << (side_.name == "node" ? "" : " on side " + side_.name);
  }
  if (!rooms_.empty()) rooms_tick();
  // IRC gateways of the hosted rooms (issue 10): their connections are this edge's.
  for (auto& svc : rooms_) {
    auto links = std::make_unique<IrcLinks>(loop_, log_, *svc,
                                            [this](rooms::RoomService&, const std::function<void(rooms::Outputs&)>& call) {
                                              rooms::Outputs o;
                                              call(o);
                                              room_outputs(std::move(o));
                                            });
    rooms::Outputs out;
    svc->start_irc(links.get(), static_cast<std::int64_t>(unix_now_us() / 1000), out);
    irc_.push_back(std::move(links));
    room_outputs(std::move(out));
  }
}

void EdgeServer::rooms_tick() {
  const std::int64_t now = static_cast<std::int64_t>(unix_now_us() / 1000);
  rooms::Outputs out;
  for (auto& svc : rooms_) svc->tick(now, out);
  room_outputs(std::move(out));
  rooms_timer_ = loop_.add_timer(std::chrono::milliseconds(1000), [this] { rooms_tick(); });
}

rooms::RoomService* EdgeServer::service_for(std::string_view domain) const {
  for (const auto& svc : rooms_) {
    if (svc->domain() == domain) return svc.get();
  }
  return nullptr;
}

void EdgeServer::room_events() {
  for (auto& svc : rooms_) {
    for (const auto& e : svc->take_events()) connection_event("room " + e);
    // IRC traffic into and out of the rooms: to the archive (it holds message
    // text, so never to the log).
    for (const auto& a : svc->take_audit()) {
      if (!port_.send) continue;   // a standalone node has no archive
      ipc::Frame f = record_frame(ipc::FrameKind::Event, InboundMeta{});
      f.body = a.substr(0, 4096);
      send_control(f);
    }
  }
}

void EdgeServer::room_outputs(rooms::Outputs out) {
  // Sending can feed a room again (a bounce of its own relay): queue, do not recurse.
  for (auto& o : out) room_backlog_.push_back(std::move(o));
  if (in_room_outputs_) return;
  in_room_outputs_ = true;
  std::size_t budget = 100000;
  while (!room_backlog_.empty() && budget-- > 0) {
    auto batch = std::move(room_backlog_);
    room_backlog_.clear();
    for (auto& o : batch) room_send(std::move(o));
  }
  if (!room_backlog_.empty()) {
    LogLine(log_, LogLevel::Error) << "rooms: " << room_backlog_.size() << " stanza(s) dropped (output loop)";
    room_backlog_.clear();
  }
  in_room_outputs_ = false;
  room_events();
}

void EdgeServer::room_send(rooms::Output o) {
  auto from = xmpp::parse_jid(o.stanza.attr_or("from"));
  auto to = xmpp::parse_jid(o.stanza.attr_or("to"));
  if (!from || !to || service_for(from->domain) == nullptr) return;
  if (service_for(to->domain) != nullptr) {
    // Two services of this edge do not federate with each other (the config refuses it).
    return;
  }
  const config::Peer* peer = peering_.find(to->domain);
  if (peer != nullptr) {
    // A user of this side, or an FMUC node beyond it: plain S2S.
    const auto& k = peer->kinds;
    const std::string& n = o.stanza.name();
    if (!((n == "message" && k.message) || (n == "presence" && k.presence) || (n == "iq" && k.iq))) {
      LogLine(log_, LogLevel::Warning) << "room " << from->bare() << ": <" << n << "/> to " << to->domain
                                       << " not sent: the peering row does not permit that kind";
      return;
    }
    OutboundLink* link = link_for(from->domain, to->domain, *peer);
    if (link == nullptr) {
      undeliverable(std::move(o.stanza), {StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait,
                                          "too many server-to-server links open", {}, {}});
      return;
    }
    ++counters_.released_delivered;
    link->send(std::move(o.stanza));
    return;
  }
  // The twin room on the other side: only through the filter.
  const std::int64_t now = static_cast<std::int64_t>(unix_now_us() / 1000);
  if (!port_.send) {
    rooms::Outputs more;
    auto* svc = service_for(from->domain);
    svc->links_lost([&](const std::string& d) { return d == to->domain; }, "boundary filter unavailable", now, more);
    for (auto& m : more) room_backlog_.push_back(std::move(m));
    return;
  }
  ipc::Frame f;
  f.header.kind = ipc::FrameKind::Stanza;
  f.header.direction = outgoing_;
  f.header.auth = ipc::AuthMethod::Hosted;
  f.header.flags = 0;
  f.header.seq = next_seq_++;
  f.header.arrival_unix_us = unix_now_us();
  f.header.peer_domain = from->domain;
  f.body = o.stanza.serialize();
  if (!port_.send(f)) {
    bounce_locally(o.stanza, StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait, "boundary filter busy");
    return;
  }
  ++counters_.room_relays_out;
  in_flight_bytes_ += f.body.size();
  in_flight_.emplace(f.header.seq, Flight{std::move(o.stanza), 0, f.body.size()});
  update_gate();
}

void EdgeServer::to_rooms_this_side(const xmpp::Element& stanza) {
  auto to = xmpp::parse_jid(stanza.attr_or("to"));
  rooms::RoomService* svc = to ? service_for(to->domain) : nullptr;
  if (svc == nullptr) return;
  ++counters_.room_stanzas_in;
  // From a node the room federates with (beyond this side) it is FMUC; from anyone else, a user.
  auto from = xmpp::parse_jid(stanza.attr_or("from"));
  const rooms::Room* room = to->local.empty() ? nullptr : svc->room(to->local);
  rooms::Outputs out;
  const std::int64_t now = static_cast<std::int64_t>(unix_now_us() / 1000);
  if (from && room != nullptr && room->links_with(from->bare())) {
    svc->on_federated(stanza, now, out);
  } else {
    svc->on_local(stanza, now, out);
  }
  room_outputs(std::move(out));
}

void EdgeServer::to_rooms_federated(const xmpp::Element& stanza) {
  auto to = xmpp::parse_jid(stanza.attr_or("to"));
  rooms::RoomService* svc = to ? service_for(to->domain) : nullptr;
  if (svc == nullptr) return;
  ++counters_.room_stanzas_in;
  rooms::Outputs out;
  svc->on_federated(stanza, static_cast<std::int64_t>(unix_now_us() / 1000), out);
  room_outputs(std::move(out));
}

void EdgeServer::shutdown() {
  for (auto& [p, s] : inbound_) s->close_with(xmpp::StreamErrorCondition::SystemShutdown, "Portcullis is shutting down");
  rooms::Outputs out;
  for (auto& svc : rooms_) svc->shutdown(out);
  for (auto& o : out) room_send(std::move(o));
  for (auto& l : irc_) l->close_all();
  if (rooms_timer_ != 0) loop_.cancel_timer(rooms_timer_);
  if (refusal_timer_ != 0) loop_.cancel_timer(refusal_timer_);
  refusal_timer_ = 0;
  flush_aggregated_refusals();
  for (auto& [k, l] : links_) l->close();
  listeners_.clear();
}

bool EdgeServer::fronts(std::string_view domain) const {
  for (const auto& d : side_.fronts) {
    if (d == domain) return true;
  }
  return service_for(domain) != nullptr;
}

void EdgeServer::on_accept(int fd, net::Endpoint peer, bool direct_tls) {
  if (inbound_.size() >= side_.max_inbound) {
    // A flood of connections must not exhaust the edge: refuse before any parsing.
    LogLine(log_, LogLevel::Warning) << "refusing connection from " << peer.to_string() << ": "
                                     << inbound_.size() << " inbound connections open (max-inbound)";
    ::close(fd);
    return;
  }
  auto conn = std::make_unique<net::Connection>(loop_, fd, peer);
  auto session = std::make_unique<InboundSession>(*this, std::move(conn), direct_tls);
  InboundSession* raw = session.get();
  raw->flow_id = next_flow_id_++;
  flows_[raw->flow_id].session = raw;
  inbound_.emplace(raw, std::move(session));
  LogLine(log_, LogLevel::Debug) << "accepted connection from " << peer.to_string();
  raw->start();
}

void EdgeServer::inbound_closed(InboundSession* session) {
  // Its stanzas still in flight are acknowledged by flow id, to nothing.
  if (auto it = flows_.find(session->flow_id); it != flows_.end()) {
    report_shed(it->second);
    flows_.erase(it);
  }
  // Destroyed on the next iteration: we are inside the session's own callback.
  loop_.post([this, session] { inbound_.erase(session); });
}

void EdgeServer::link_closed(OutboundLink* link) {
  loop_.post([this, link] {
    for (auto it = links_.begin(); it != links_.end(); ++it) {
      if (it->second.get() == link) {
        links_.erase(it);
        return;
      }
    }
    for (auto it = dying_.begin(); it != dying_.end(); ++it) {
      if (it->get() == link) {
        dying_.erase(it);
        return;
      }
    }
  });
}

void EdgeServer::connection_event(std::string_view what, const InboundMeta& peer) {
  // The audit archive lives with the filter; the event travels there as a frame.
  // Without a filter the log is the only record.
  LogLine(log_, LogLevel::Info) << "connection event: " << what;
  if (!port_.send) return;
  ipc::Frame f = record_frame(ipc::FrameKind::Event, peer);
  f.body = std::string(what.substr(0, 4096));
  send_control(f);
}

void EdgeServer::refused_connection(std::string_view what, const InboundMeta& peer, std::string_view check) {
  if (take_refusal_token()) {
    connection_event(what, peer);
    return;
  }
  LogLine(log_, LogLevel::Debug) << "connection event (aggregated): " << what;
  ++counters_.edge_refusals_lost;
  aggregate_refusal(peer.peer_domain, check);
}

void EdgeServer::aggregate_refusal(const std::string& domain, std::string_view check) {
  ++refusals_aggregated_[{domain.empty() ? std::string("?") : domain, std::string(check)}];
  if (refusal_timer_ == 0) {
    refusal_timer_ = loop_.add_timer(std::chrono::milliseconds(1000), [this] {
      refusal_timer_ = 0;
      flush_aggregated_refusals();
    });
  }
}

ipc::Frame EdgeServer::record_frame(ipc::FrameKind kind, const InboundMeta& peer) {
  ipc::Frame f;
  f.header.kind = kind;
  f.header.direction = outgoing_;
  f.header.auth = peer.auth == ipc::AuthMethod::None ? ipc::AuthMethod::Internal : peer.auth;
  f.header.flags = peer.tls ? ipc::kFlagTls : 0;
  f.header.seq = next_seq_++;
  f.header.arrival_unix_us = unix_now_us();
  // The peer, structured (the text says it too, for people): the archive's
  // searches by domain and the report's per-peer tables use these fields.
  // Bounded so the frame always fits (header strings: 1024 bytes).
  f.header.peer_domain = peer.peer_domain.substr(0, 1023);
  f.header.cert_identity = peer.cert_identity.substr(0, 1023);
  f.header.stream_id = peer.stream_id.substr(0, 255);
  return f;
}

void EdgeServer::edge_refusal(const xmpp::Element& stanza, const InboundMeta& peer, StanzaErrorCondition condition,
                              std::string_view check, std::string_view reason) {
  LogLine(log_, LogLevel::Info) << "refused at the edge: " << stanza.name() << " id=" << stanza.attr_or("id").substr(0, 64)
                                << " from " << (peer.peer_domain.empty() ? std::string("?") : peer.peer_domain) << ": "
                                << reason << " (" << xmpp::to_string(condition) << ")";
  ++counters_.edge_refusals;
  if (!port_.send_control) {
    LogLine(log_, LogLevel::Warning) << "edge refusal not in the archive: the filter is unavailable";
    return;
  }
  if (!take_refusal_token()) {
    // Over the rate: counted, and reported in aggregate within a second.
    ++counters_.edge_refusals_lost;
    aggregate_refusal(peer.peer_domain, check);
    return;
  }
  ipc::Frame f = record_frame(ipc::FrameKind::Refusal, peer);
  f.body.append(xmpp::to_string(condition)).append("\t").append(check).append("\t");
  for (char c : reason.substr(0, 512)) f.body += (c == '\n' || c == '\t') ? ' ' : c;
  f.body += '\n';
  // "busy": the filter channel had no room for the stanza, so the record
  // carries what identifies it (above, in the reason), not its bytes again.
  if (check != "busy") f.body += stanza.serialize();
  if (!send_control(f)) {
    LogLine(log_, LogLevel::Warning) << "edge refusal not in the archive: the filter channel is full";
    ++counters_.edge_refusals_lost;
  }
}

bool EdgeServer::take_refusal_token() {
  const net::TimePoint now = loop_.now();
  if (refusal_refilled_ != net::TimePoint{}) {
    const double secs = std::chrono::duration<double>(now - refusal_refilled_).count();
    refusal_tokens_ = std::min(kRefusalBurst, refusal_tokens_ + secs * kRefusalsPerSecond);
  }
  refusal_refilled_ = now;
  if (refusal_tokens_ < 1.0) return false;
  refusal_tokens_ -= 1.0;
  return true;
}

void EdgeServer::flush_aggregated_refusals() {
  auto agg = std::move(refusals_aggregated_);
  refusals_aggregated_.clear();
  for (const auto& [key, n] : agg) {
    // Connections refused before any stream (kTlsHandshakeCheck) are not stanzas.
    const char* what = key.second == kTlsHandshakeCheck ? " connection(s) from " : " stanza(s) from ";
    connection_event("refusals: " + std::to_string(n) + what + key.first + " refused at the edge (" +
                     key.second + "), over the rate of refusal records (" +
                     std::to_string(static_cast<int>(kRefusalsPerSecond)) + "/s): counted here, not recorded one by one");
  }
}

void EdgeServer::released_taken(std::uint64_t ack) {
  // The filter holds the sender's credit until this edge has taken the stanza
  // it released (end-to-end flow control): tell it.
  if (!port_.send) return;
  send_control(ipc::taken_ack(
      outgoing_ == ipc::Direction::LowToHigh ? ipc::Direction::HighToLow : ipc::Direction::LowToHigh, ack));
}

void EdgeServer::released_delivered(std::uint64_t ack, std::string_view proof) {
  if (!port_.send) return;
  send_control(ipc::accounting_ack(
      outgoing_ == ipc::Direction::LowToHigh ? ipc::Direction::HighToLow : ipc::Direction::LowToHigh, ack,
      ipc::kAckDelivered, std::string(proof.substr(0, 200))));
}

void EdgeServer::released_lost(std::uint64_t ack, std::string_view reason) {
  if (!port_.send) return;
  send_control(ipc::accounting_ack(
      outgoing_ == ipc::Direction::LowToHigh ? ipc::Direction::HighToLow : ipc::Direction::LowToHigh, ack,
      ipc::kAckLost, std::string(reason.substr(0, 200))));
}

void EdgeServer::released_settled(std::uint64_t ack, std::string_view why) {
  if (!port_.send) return;
  send_control(ipc::accounting_ack(
      outgoing_ == ipc::Direction::LowToHigh ? ipc::Direction::HighToLow : ipc::Direction::LowToHigh, ack,
      ipc::kAckSettled, std::string(why.substr(0, 200))));
}

bool EdgeServer::over_bounds(std::size_t num, std::size_t den) const {
  return (port_.congested && port_.congested()) || in_flight_.size() >= kMaxInFlight * num / den ||
         in_flight_bytes_ >= kMaxInFlightBytes * num / den;
}

void EdgeServer::update_gate() {
  // Hysteresis: closed at the bounds, open again below three quarters of them
  // (the channel's own drain mark is a quarter of its high water).
  const bool closed = gate_closed_ ? over_bounds(3, 4) : over_bounds(1, 1);
  if (closed == gate_closed_) return;
  gate_closed_ = closed;
  LogLine(log_, LogLevel::Debug) << "flow: filter channel " << (closed ? "full, streams wait" : "has room, streams read")
                                 << " (" << in_flight_.size() << " stanza(s) in flight)";
  for (auto& [id, f] : flows_) update_flow(f);
}

void EdgeServer::update_flow(Flow& f) {
  if (f.session == nullptr) return;
  // A stream still negotiating, or one that only talks to hosted rooms, is
  // never held back for the filter: only streams that feed it are.
  if (!f.active) return;
  const std::size_t window = side_.flow_window;
  bool room;
  if (f.reading && !f.shedding) {
    room = !gate_closed_ && f.in_flight < window;
  } else {
    room = !gate_closed_ && f.in_flight <= window * 3 / 4;
  }
  if (room) {
    if (f.shedding) {
      f.shedding = false;
      f.return_blocked = false;
      report_shed(f);
      LogLine(log_, LogLevel::Info) << "flow: stream from " << f.domain << " has room again: stanzas cross";
    }
    f.blocked_since = {};
  } else if (f.blocked_since == net::TimePoint{}) {
    f.blocked_since = loop_.now();
    if (f.reading) ++counters_.flow_pauses;
    arm_flow_timer();
  }
  const bool read = room || (f.shedding && !f.return_blocked);
  if (read != f.reading) {
    f.reading = read;
    f.session->set_reading(read);
  }
}

void EdgeServer::flow_tick() {
  // A stream that has waited overload-wait-ms is read again, and what it sends
  // while there is still no room is bounced (resource-constraint): the operator
  // bounds the wait, a buffer never decides it.
  const auto now = loop_.now();
  const auto wait = net::Duration(side_.overload_wait_ms);
  bool waiting = false;
  for (auto& [id, f] : flows_) {
    if (f.shedding) {
      report_shed(f);
      waiting = true;
      if (f.return_blocked && !return_link_full(f.return_link, /*resume=*/true)) {
        f.return_blocked = false;
        update_flow(f);
      }
      continue;
    }
    if (f.blocked_since == net::TimePoint{}) continue;
    if (now - f.blocked_since < wait) {
      waiting = true;
      continue;
    }
    f.shedding = true;
    waiting = true;
    LogLine(log_, LogLevel::Warning) << "flow: stream from " << f.domain << " waited " << side_.overload_wait_ms
                                     << " ms for room (" << f.in_flight << " of its stanza(s) in flight, "
                                     << in_flight_.size() << " in all): bouncing what it sends until there is room";
    update_flow(f);
  }
  if (waiting) arm_flow_timer();
}

void EdgeServer::arm_flow_timer() {
  if (flow_timer_ != 0) return;
  flow_timer_ = loop_.add_timer(net::Duration(std::clamp<std::uint32_t>(side_.overload_wait_ms / 4, 50, 250)),
                                [this] {
                                  flow_timer_ = 0;
                                  flow_tick();
                                });
}

bool EdgeServer::return_link_full(const std::pair<std::string, std::string>& key, bool resume) const {
  auto it = links_.find(key);
  if (it == links_.end() || it->second->closed()) return false;
  const OutboundLink& l = *it->second;
  // Stop at half the queue or the ack mark; go on again at a quarter of each.
  const std::size_t div = resume ? 4 : 2;
  return l.ready() ? l.pending_output() > OutboundLink::kAckMark * 2 / div
                   : l.queued() >= side_.max_queue / div;
}

void EdgeServer::report_shed(Flow& f) {
  if (f.shed == 0) return;
  std::string ids;
  for (const auto& i : f.shed_ids) ids += (ids.empty() ? "" : ",") + i;
  connection_event("overload: " + std::to_string(f.shed) + " stanza(s) from " + f.domain +
                   " bounced (resource-constraint) after waiting " + std::to_string(side_.overload_wait_ms) +
                   " ms for room in the boundary; ids: " + (ids.empty() ? "-" : ids));
  f.shed = 0;
  f.shed_ids.clear();
}

OutboundLink* EdgeServer::link_for(const std::string& local, const std::string& remote, const config::Peer& peer) {
  auto key = std::make_pair(local, remote);
  auto it = links_.find(key);
  if (it != links_.end()) {
    if (!it->second->closed()) return it->second.get();
    dying_.push_back(std::move(it->second));
    links_.erase(it);
  }
  if (links_.size() >= kMaxLinks) return nullptr;
  auto link = std::make_unique<OutboundLink>(*this, local, remote, peer);
  OutboundLink* raw = link.get();
  links_.emplace(key, std::move(link));
  return raw;
}

bool EdgeServer::on_inbound_stanza(xmpp::Element stanza, const InboundMeta& meta) {
  if (auto to = xmpp::parse_jid(stanza.attr_or("to")); to && service_for(to->domain) != nullptr) {
    // A room this edge hosts: the traffic stays on this side.
    (void)meta;
    to_rooms_this_side(stanza);
    return false;
  }
  if (!port_.send) {
    bounce_locally(stanza, StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                   "boundary filter unavailable");
    return false;
  }
  auto fl = flows_.find(meta.flow_id);
  Flow* flow = fl == flows_.end() ? nullptr : &fl->second;
  if (flow != nullptr && flow->domain.empty()) flow->domain = meta.peer_domain;
  if (flow != nullptr) flow->active = true;
  if (flow != nullptr && flow->shedding) {
    ++counters_.overload_bounced;
    ++flow->shed;
    if (flow->shed_ids.size() < 20) flow->shed_ids.push_back(stanza.name() + "/" + stanza.attr_or("id").substr(0, 64));
    bounce_locally(stanza, StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait,
                   "boundary overloaded: no room within " + std::to_string(side_.overload_wait_ms) + " ms");
    // The bounces go back over a link to the sender's domain: while that link
    // cannot take more, the stream is not read either (no bounce is dropped).
    auto from = xmpp::parse_jid(stanza.attr_or("from"));
    auto to = xmpp::parse_jid(stanza.attr_or("to"));
    if (from && to) {
      flow->return_link = {to->domain, from->domain};
      if (return_link_full(flow->return_link) && !flow->return_blocked) {
        flow->return_blocked = true;
        update_flow(*flow);
      }
    }
    return false;
  }
  ipc::Frame f;
  f.header.kind = ipc::FrameKind::Stanza;
  f.header.direction = outgoing_;
  f.header.auth = meta.auth;
  f.header.flags = meta.tls ? ipc::kFlagTls : 0;
  f.header.seq = next_seq_++;
  f.header.arrival_unix_us = unix_now_us();
  f.header.peer_domain = meta.peer_domain;
  f.header.cert_identity = meta.cert_identity;
  f.header.stream_id = meta.stream_id;
  f.body = stanza.serialize();
  if (!port_.send(f)) {
    bounce_locally(stanza, StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait,
                   "boundary filter busy");
    edge_refusal(stanza, meta, StanzaErrorCondition::ResourceConstraint, "busy",
                 "boundary filter busy: " + stanza.name() + " id=" + stanza.attr_or("id").substr(0, 64) + " from=" +
                     stanza.attr_or("from").substr(0, 128) + " to=" + stanza.attr_or("to").substr(0, 128));
    return false;
  }
  ++counters_.inbound_stanzas;
  in_flight_bytes_ += f.body.size();
  in_flight_.emplace(f.header.seq, Flight{std::move(stanza), meta.flow_id, f.body.size(), meta.sm_index});
  if (flow != nullptr) {
    ++flow->in_flight;
    update_flow(*flow);
  }
  update_gate();
  return true;
}

void EdgeServer::filter_drained() { update_gate(); }

void EdgeServer::set_filter(FilterPort port) {
  port_ = std::move(port);
  LogLine(log_, LogLevel::Info) << "filter channel up";
  // The stanzas bounced while the filter was lost may have been recorded as
  // released by the filter that died: tell the archive they did not cross.
  auto lost = std::move(undelivered_);
  undelivered_.clear();
  for (const auto& line : lost) connection_event(line);
}

void EdgeServer::filter_lost(const std::string& reason) {
  port_ = {};
  if (!rooms_.empty()) {
    // Every federation link across the boundary is gone with the filter; the rooms go on alone.
    rooms::Outputs out;
    const std::int64_t now = static_cast<std::int64_t>(unix_now_us() / 1000);
    for (auto& svc : rooms_) {
      svc->links_lost([this](const std::string& d) { return far_room_domain(d); }, "boundary filter lost (" + reason + ")",
                      now, out);
    }
    room_outputs(std::move(out));
  }
  LogLine(log_, LogLevel::Warning) << "filter channel lost (" << reason << "); " << in_flight_.size()
                                   << " stanza(s) in flight bounced; nothing crosses until it is back";
  auto in_flight = std::move(in_flight_);
  in_flight_.clear();
  in_flight_bytes_ = 0;
  // Nothing waits for this filter any more: every stream reads (and is told
  // the filter is unavailable) until a new one is attached.
  for (auto& [id, fl] : flows_) fl.in_flight = 0;
  update_gate();
  for (auto& [id, fl] : flows_) update_flow(fl);
  for (auto& [seq, flight] : in_flight) {
    const xmpp::Element& stanza = flight.stanza;
    if (undelivered_.size() < kMaxUndeliveredReports) {
      // The edge cannot know whether the dead filter released it first: say so.
      undelivered_.push_back("in-doubt: frame seq=" + std::to_string(seq) + " " + stanza.name() + " id=" +
                             stanza.attr_or("id") + " from=" + stanza.attr_or("from") + " to=" + stanza.attr_or("to") +
                             " bounced to its sender (remote-server-timeout) after the filter was lost (" + reason +
                             "); it crossed only if that filter released it before dying");
    }
    bounce_locally(stanza, StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                   "boundary filter unavailable");
    // Answered: its sender has been told.
    if (auto fl = flows_.find(flight.flow); fl != flows_.end() && fl->second.session != nullptr)
      fl->second.session->sm_handled(flight.sm_index);
  }
}

void EdgeServer::on_filter_frame(const ipc::Frame& frame) {
  switch (frame.header.kind) {
    case ipc::FrameKind::Ack: {
      auto it = in_flight_.find(frame.header.seq);
      if (it == in_flight_.end()) return;
      const std::uint64_t flow_id = it->second.flow;
      const std::uint64_t sm_index = it->second.sm_index;
      in_flight_bytes_ -= std::min(in_flight_bytes_, it->second.bytes);
      in_flight_.erase(it);
      update_gate();
      if (auto fl = flows_.find(flow_id); fl != flows_.end()) {
        if (fl->second.in_flight > 0) --fl->second.in_flight;
        // Decided, recorded and taken on the far side (or answered): the
        // sending server may forget it (XEP-0198 h).
        if (fl->second.session != nullptr) fl->second.session->sm_handled(sm_index);
        update_flow(fl->second);
      }
      return;
    }
    case ipc::FrameKind::Stanza:
      break;
    default:
      return;
  }
  // Released traffic comes in the direction opposite to ours; error replies to
  // our own senders come as Local.
  const bool inbound_dir = frame.header.direction != outgoing_;
  if (!inbound_dir) {
    ++counters_.rejected_frames;
    LogLine(log_, LogLevel::Error) << "refusing frame from the filter with this side's own direction";
    return;
  }
  // The filter has checked these bytes and the frame size is bounded by the
  // channel. The origin side's limits applied to the wire form; the serialized
  // form can be larger (escaping, namespace declarations), and this side's own
  // limits may be stricter: neither may drop a released stanza here.
  xmpp::ParserLimits limits = parser_limits(side_);
  limits.max_stanza_bytes = frame.body.size() + 1;
  limits.max_depth = std::max<std::size_t>(limits.max_depth, 256);
  limits.max_attributes = std::max<std::size_t>(limits.max_attributes, 1024);
  std::string err;
  auto stanza = xmpp::parse_element(frame.body, limits, &err);
  if (!stanza) {
    ++counters_.rejected_frames;
    LogLine(log_, LogLevel::Error) << "unparseable stanza from the filter: " << err;
    connection_event("undelivered: frame seq=" + std::to_string(frame.header.seq) +
                     " could not be parsed by edge(" + side_.name + "): " + err);
    if (frame.header.direction != ipc::Direction::Local) {
      released_taken(frame.header.seq);
      released_settled(frame.header.seq, "edge(" + side_.name + ") could not parse it; its sender was not told");
    }
    return;
  }
  // A released stanza (not an error the filter made for our own senders) is
  // confirmed to the filter once a link has taken it.
  deliver(std::move(*stanza), false, frame.header.direction != ipc::Direction::Local ? frame.header.seq : 0);
}

void EdgeServer::deliver(xmpp::Element stanza, bool local_error, std::uint64_t ack) {
  // Every way out but a link's send() is final at once: confirm it on return.
  // Delivery accounting: a room this edge hosts took it, or this edge answered
  // it itself (undeliverable here: the sender gets an error where one is allowed).
  struct Confirm {
    EdgeServer* self;
    std::uint64_t ack;
    bool to_room = false;
    ~Confirm() {
      if (ack == 0) return;
      self->released_taken(ack);
      if (to_room) self->released_delivered(ack, "taken by a room this edge hosts");
      else self->released_settled(ack, "not deliverable on side " + self->side_.name + ": answered with an error");
    }
  } confirm{this, ack};
  auto from = xmpp::parse_jid(stanza.attr_or("from"));
  auto to = xmpp::parse_jid(stanza.attr_or("to"));
  if (to && service_for(to->domain) != nullptr) {
    // For a hosted room: released FMUC from its twin, or an error about its own relay.
    confirm.to_room = true;
    to_rooms_federated(stanza);
    return;
  }
  // Released traffic speaks for far-side domains only; an error this edge made
  // itself for one of its own senders may also come from a room service it hosts.
  const bool far_domain =
      from && (std::find(side_.fronts.begin(), side_.fronts.end(), from->domain) != side_.fronts.end() ||
               (local_error && service_for(from->domain) != nullptr));
  if (!from || !to || !far_domain) {
    // We may only speak for the domains we front; anything else is refused here.
    ++counters_.rejected_frames;
    LogLine(log_, LogLevel::Error) << "cannot deliver: sender domain '" << (from ? from->domain : "?")
                                   << "' is not fronted by " << (side_.name == "node" ? std::string("the node") : "side " + side_.name);
    undeliverable(std::move(stanza), {StanzaErrorCondition::ServiceUnavailable, StanzaErrorType::Cancel,
                                      "sender domain not served by this boundary", {}, {}});
    return;
  }
  const config::Peer* peer = peering_.find(to->domain);
  if (peer == nullptr) {
    LogLine(log_, LogLevel::Warning) << "no route to " << to->domain << (side_.name == "node" ? std::string(" from the node") : " on side " + side_.name);
    undeliverable(std::move(stanza), {StanzaErrorCondition::RemoteServerNotFound, StanzaErrorType::Cancel,
                                      "no route to " + to->domain, {}, {}});
    return;
  }
  const auto& k = peer->kinds;
  const std::string& n = stanza.name();
  // An error this edge generated for a sender on its own side answers a stanza
  // of that very kind from that peer, and carries no payload: it goes back even
  // where the kind is not permitted.
  if (!local_error && !((n == "message" && k.message) || (n == "presence" && k.presence) || (n == "iq" && k.iq))) {
    undeliverable(std::move(stanza), {StanzaErrorCondition::PolicyViolation, StanzaErrorType::Cancel,
                                      "stanza kind not permitted to " + to->domain, {}, {}});
    return;
  }
  OutboundLink* link = link_for(from->domain, to->domain, *peer);
  if (link == nullptr) {
    // Wildcard peering rows could otherwise open a link per invented subdomain.
    undeliverable(std::move(stanza), {StanzaErrorCondition::ResourceConstraint, StanzaErrorType::Wait,
                                      "too many server-to-server links open", {}, {}});
    return;
  }
  ++counters_.released_delivered;
  confirm.ack = 0;   // the link confirms it (OutboundLink::send)
  link->send(std::move(stanza), ack);
}

void EdgeServer::send_local(xmpp::Element stanza) { deliver(std::move(stanza), true); }

void EdgeServer::undeliverable(xmpp::Element stanza, xmpp::StanzaError error) {
  if (auto from = xmpp::parse_jid(stanza.attr_or("from")); from && service_for(from->domain) != nullptr) {
    // A hosted room's stanza for this side (a user, or a node beyond) did not
    // get through: the room hears of it, nothing goes to the filter.
    auto to = xmpp::parse_jid(stanza.attr_or("to"));
    if (!xmpp::may_bounce(stanza)) {
      if (to && stanza.attr_or("type") != "error") {
        rooms::Outputs out;
        const std::string d = to->domain;
        service_for(from->domain)
            ->links_lost([&](const std::string& dom) { return dom == d; }, error.text,
                         static_cast<std::int64_t>(unix_now_us() / 1000), out);
        room_outputs(std::move(out));
      }
      return;
    }
    to_rooms_this_side(xmpp::make_error_reply(stanza, error));
    return;
  }
  if (!xmpp::may_bounce(stanza)) {
    ++counters_.dropped_errors;
    LogLine(log_, LogLevel::Info) << "undeliverable " << stanza.name() << " (" << error.text
                                  << ") not answered: " << (stanza.attr_or("type") == "error" ? "it is an error" : "no reply allowed");
    return;
  }
  // The sender is on the other side: the error crosses back through the filter.
  auto reply = xmpp::make_error_reply(stanza, error);
  auto from = xmpp::parse_jid(reply.attr_or("from"));
  if (!port_.send) {
    ++counters_.dropped_errors;
    LogLine(log_, LogLevel::Warning) << "undeliverable " << stanza.name() << " (" << error.text
                                     << "): error reply lost, filter unavailable";
    return;
  }
  ipc::Frame f;
  f.header.kind = ipc::FrameKind::Stanza;
  f.header.direction = outgoing_;
  f.header.auth = ipc::AuthMethod::Internal;
  f.header.seq = next_seq_++;
  f.header.arrival_unix_us = unix_now_us();
  f.header.peer_domain = from ? from->domain : std::string{};
  f.body = reply.serialize();
  if (send_control(f)) {
    ++counters_.bounced_via_filter;
  } else {
    ++counters_.dropped_errors;
    LogLine(log_, LogLevel::Warning) << "error reply lost: filter channel full";
  }
}

void EdgeServer::bounce_locally(const xmpp::Element& stanza, StanzaErrorCondition c, StanzaErrorType t,
                                const std::string& text) {
  if (!xmpp::may_bounce(stanza)) return;
  ++counters_.bounced_local;
  deliver(xmpp::make_error_reply(stanza, {c, t, text, {}, {}}), true);
}

void EdgeServer::request_verify(const std::string& local, const std::string& originating,
                                const std::string& stream_id, const std::string& key,
                                std::function<void(VerifyResult)> done) {
  const config::Peer* peer = peering_.find(originating);
  if (peer == nullptr || !fronts(local)) {
    done(VerifyResult::Error);
    return;
  }
  OutboundLink* link = link_for(local, originating, *peer);
  if (link == nullptr) {
    done(VerifyResult::Error);
    return;
  }
  link->request_verify(stream_id, key, std::move(done));
}

std::vector<LinkStatus> EdgeServer::link_status(std::size_t max) const {
  std::vector<LinkStatus> out;
  for (const auto& [raw, session] : inbound_) {
    if (out.size() >= max) return out;
    out.push_back(session->status());
  }
  for (const auto& [key, link] : links_) {
    if (out.size() >= max) return out;
    out.push_back(link->status());
  }
  return out;
}

}  // namespace portcullis::s2s
