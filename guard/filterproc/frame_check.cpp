#include "guard/filterproc/frame_check.h"

#include <algorithm>

#include "guard/xmpp/jid.h"
#include "guard/xmpp/precis.h"
#include "guard/xmpp/stream_error.h"

namespace portcullis::filterproc {

namespace {

const config::Peer* find_row(const std::vector<config::Peer>& rows, std::string_view domain) {
  for (const auto& r : rows) {
    if (xmpp::domain_matches(r.domain_pattern, domain)) return &r;
  }
  return nullptr;
}

bool fronts(const SideDomains& side, std::string_view domain) {
  return std::any_of(side.fronts.begin(), side.fronts.end(), [&](const std::string& d) { return d == domain; });
}

bool kind_permitted(const config::StanzaKinds& k, const std::string& n) {
  return (n == "message" && k.message) || (n == "presence" && k.presence) || (n == "iq" && k.iq);
}

// What the edge claimed, quoted for the log and the record (bounded: a
// compromised edge must not fill the archive through a refusal reason).
std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 256;
  std::string out = "'";
  out += s.substr(0, kMax);
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

const config::RoomSpec* hosted_room(const SideDomains& side, const xmpp::Jid& j) {
  for (const auto& s : side.hosted) {
    if (s.domain != j.domain) continue;
    for (const auto& r : s.rooms) {
      if (r.name == j.local) return &r;
    }
  }
  return nullptr;
}

bool hosts(const SideDomains& side, std::string_view domain) {
  return std::any_of(side.hosted.begin(), side.hosted.end(), [&](const auto& s) { return s.domain == domain; });
}

// The checks of a frame from a room the origin edge hosts (auth Hosted).
std::optional<FrameRefusal> check_hosted(const SideDomains& origin, const SideDomains& far,
                                         const std::optional<xmpp::Jid>& from, const std::optional<xmpp::Jid>& to,
                                         const std::optional<std::string>& peer, const xmpp::Element& stanza) {
  auto refuse = [](std::string check, std::string reason) { return FrameRefusal{std::move(check), std::move(reason)}; };
  if (!from) return refuse("from", "malformed or missing 'from' " + quoted(stanza.attr_or("from")));
  if (!peer || !hosts(origin, *peer) || from->domain != *peer) {
    return refuse("hosted", "auth hosted claimed for peer domain " + quoted(peer ? *peer : std::string{}) +
                                ", which is not a room service side " + origin.name + " hosts, or is not the 'from' domain");
  }
  const config::RoomSpec* room = hosted_room(origin, *from);
  if (room == nullptr) return refuse("hosted", "'from' " + quoted(from->bare()) + " is not a configured room");
  if (!to) return refuse("to", "malformed or missing 'to' " + quoted(stanza.attr_or("to")));
  const config::RoomSpec* twin = hosted_room(far, *to);
  const std::string twin_jid = to->bare();
  const bool paired = twin != nullptr && (room->federate_with == twin_jid ||
                                          std::find(room->accept_from.begin(), room->accept_from.end(), twin_jid) !=
                                              room->accept_from.end());
  if (!paired) {
    return refuse("hosted", "room " + quoted(from->bare()) + " is not configured to federate with " +
                                quoted(twin_jid) + " on side " + far.name);
  }
  const std::string type = stanza.attr_or("type");
  // Exactly one <fmuc/>, holding nothing but what XEP-0289 and our resume marker put there.
  std::size_t fmuc_count = 0;
  bool fmuc_clean = true;
  for (const xmpp::Element* c : stanza.child_elements()) {
    if (c->ns() != "http://isode.com/protocol/fmuc") continue;
    ++fmuc_count;
    if (c->name() != "fmuc") fmuc_clean = false;
    for (const xmpp::Element* g : c->child_elements()) {
      if (g->ns() != c->ns() || (g->name() != "reject" && g->name() != "left" && g->name() != "resume")) fmuc_clean = false;
    }
  }
  if (fmuc_count > 1 || !fmuc_clean) {
    return refuse("hosted", "an FMUC element that is not one <fmuc/> holding reject, left or resume");
  }
  const bool fmuc = fmuc_count == 1 && (stanza.name() == "presence" || stanza.name() == "message");
  bool ping = false;
  if (stanza.name() == "iq") {
    if (type == "result") {
      ping = stanza.child_elements().empty();
    } else if (type == "get") {
      const auto kids = stanza.child_elements();
      ping = kids.size() == 1 && kids[0]->name() == "ping" && kids[0]->ns() == "urn:xmpp:ping" &&
             kids[0]->child_elements().empty();
    }
  }
  if (!fmuc && !ping && type != "error") {
    return refuse("hosted", "a room sends only FMUC traffic, pings and error replies across, got <" + stanza.name() +
                                "/> type " + quoted(type));
  }
  return std::nullopt;
}

}  // namespace

Boundary Boundary::from_config(const config::Config& cfg) {
  Boundary b;
  b.low = {cfg.low.name, cfg.low.peers, cfg.low.fronts, cfg.low.rooms};
  b.high = {cfg.high.name, cfg.high.peers, cfg.high.fronts, cfg.high.rooms};
  return b;
}

FrameCheck check_frame(const Boundary& boundary, bool from_low, const ipc::FrameHeader& header,
                       const xmpp::Element& stanza) {
  const SideDomains& origin = from_low ? boundary.low : boundary.high;
  const SideDomains& far = from_low ? boundary.high : boundary.low;
  const ipc::Direction expected = from_low ? ipc::Direction::LowToHigh : ipc::Direction::HighToLow;

  // Whether a reply can be addressed safely is decided on the addresses alone,
  // whichever check refuses the frame.
  const auto from = xmpp::parse_jid(stanza.attr_or("from"));
  const auto to = xmpp::parse_jid(stanza.attr_or("to"));
  const auto peer = xmpp::normalize_domain(header.peer_domain);
  const config::Peer* row = peer ? find_row(origin.peers, *peer) : nullptr;
  const bool peer_of_origin = row != nullptr && find_row(far.peers, *peer) == nullptr && !fronts(origin, *peer);
  FrameCheck out;
  out.sender_verified = from && peer && from->domain == *peer && peer_of_origin && to && fronts(origin, to->domain);
  if (header.auth == ipc::AuthMethod::Hosted && header.direction == expected) {
    // A room of the origin edge: an error reply goes back to that room.
    if (auto r = check_hosted(origin, far, from, to, peer, stanza)) {
      out.refusal = std::move(*r);
      return out;
    }
    out.sender_verified = true;
    if (stanza.attr_or("type") == "error" && !xmpp::read_stanza_error(stanza)) {
      out.refusal = FrameRefusal{"error-element", "error stanza without exactly one <error/> with a known type and one defined condition"};
    }
    return out;
  }

  auto refuse = [&out](std::string check, std::string reason) {
    out.refusal = FrameRefusal{std::move(check), std::move(reason)};
    return out;
  };
  if (header.direction != expected) {
    return refuse("direction", "frame on edge(" + origin.name + ")'s channel claims direction " +
                                   std::string(ipc::to_string(header.direction)));
  }
  const bool internal = header.auth == ipc::AuthMethod::Internal;
  if (header.auth != ipc::AuthMethod::SaslExternal && header.auth != ipc::AuthMethod::Dialback && !internal) {
    return refuse("auth", "unauthenticated (auth " + std::string(ipc::to_string(header.auth)) + ")");
  }
  if (stanza.attr("from") == nullptr) return refuse("from", "no 'from'");
  if (!from) return refuse("from", "malformed 'from' " + quoted(stanza.attr_or("from")));
  if (!peer) return refuse("peer-domain", "malformed peer domain " + quoted(header.peer_domain));
  if (from->domain != *peer) {
    return refuse("from-domain", "'from' domain " + quoted(from->domain) + " is not the frame's peer domain " +
                                     quoted(*peer));
  }
  if (fronts(origin, *peer)) {
    return refuse("fronted-domain", "peer domain " + quoted(*peer) + " is a domain side " + origin.name +
                                        " fronts for side " + far.name);
  }
  if (find_row(far.peers, *peer) != nullptr) {
    return refuse("far-side-domain",
                  "peer domain " + quoted(*peer) + " is in side " + far.name + "'s peering table");
  }
  if (row == nullptr) {
    return refuse("peer-domain", "peer domain " + quoted(*peer) + " is not in side " + origin.name +
                                     "'s peering table");
  }
  if (stanza.attr("to") == nullptr) return refuse("to", "no 'to'");
  if (!to) return refuse("to", "malformed 'to' " + quoted(stanza.attr_or("to")));
  // PRECIS / IDNA2008: only addresses already in their prepared form cross, so
  // one identity has one spelling on both sides (the edge refuses them too).
  if (auto why = xmpp::jid_prepared_problem(*from)) return refuse("from-precis", "'from' is not prepared: " + *why);
  if (auto why = xmpp::jid_prepared_problem(*to)) return refuse("to-precis", "'to' is not prepared: " + *why);
  if (!fronts(origin, to->domain)) {
    return refuse("to", "'to' domain " + quoted(to->domain) + " is not fronted on side " + origin.name);
  }
  const bool is_error = stanza.attr_or("type") == "error";
  if (internal) {
    // The only stanzas an edge makes itself and sends across are the error
    // replies for released stanzas it could not deliver.
    if (!is_error) return refuse("auth", "auth internal on a stanza that is not an error reply");
  } else {
    if (header.auth == ipc::AuthMethod::Dialback && row->auth == config::PeerAuth::SaslExternal) {
      return refuse("auth", "dialback claimed for " + quoted(*peer) + ", whose peering row (line " +
                                std::to_string(row->line) + ") requires SASL EXTERNAL");
    }
    if ((header.flags & ipc::kFlagTls) == 0 && row->tls == config::PeerTls::Required) {
      return refuse("tls", "plaintext stream claimed for " + quoted(*peer) + ", whose peering row (line " +
                               std::to_string(row->line) + ") requires TLS");
    }
    if (!kind_permitted(row->kinds, stanza.name())) {
      return refuse("kind", "<" + stanza.name() + "/> is not a kind the peering row (line " +
                                std::to_string(row->line) + ") permits for " + quoted(*peer));
    }
  }
  if (is_error && !xmpp::read_stanza_error(stanza)) {
    return refuse("error-element", "error stanza without exactly one <error/> with a known type and one defined condition");
  }
  return out;
}

}  // namespace portcullis::filterproc
