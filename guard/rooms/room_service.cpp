#include "guard/rooms/room_service.h"

#include "guard/xmpp/jid.h"

namespace portcullis::rooms {

using xmpp::Element;
using xmpp::StanzaErrorCondition;

RoomSettings settings_from(const config::RoomSpec& spec) {
  RoomSettings s;
  s.name = spec.name;
  s.title = spec.title;
  s.subject = spec.subject;
  s.history_size = spec.history;
  s.members_only = spec.members_only;
  s.members = spec.members;
  s.owners = spec.owners;
  s.label = spec.label;
  s.federate_with = spec.federate_with;
  s.accept_from = spec.accept_from;
  return s;
}

RoomService::RoomService(const config::RoomServiceSpec& spec, std::string occupant_id_key) : domain_(spec.domain) {
  Timing t;
  t.ping_interval_ms = spec.ping_interval_ms;
  t.ping_timeout_ms = std::max<std::int64_t>(spec.ping_interval_ms, 1000);
  t.join_timeout_ms = std::max<std::int64_t>(2 * spec.ping_interval_ms, 2000);
  t.retry_ms = spec.retry_ms;
  gateway_domain_ = "irc." + domain_;
  for (const auto& r : spec.rooms) {
    RoomSettings rs = settings_from(r);
    if (r.irc) {
      // The IRC channel is one more downstream node of the room.
      const std::string gw = r.name + "@" + gateway_domain_;
      rs.accept_from.push_back(gw);
      rs.internal_nodes.push_back(gw);
      gateways_.emplace(r.name, std::make_unique<IrcGateway>(*r.irc, r.name + "@" + domain_, gw, t.ping_interval_ms));
    }
    rooms_.emplace(r.name, std::make_unique<Room>(std::move(rs), domain_, occupant_id_key, t));
  }
}

void RoomService::apply(const std::string& room, IrcActions& a, std::int64_t now, Outputs& out) {
  for (auto& e : a.events) gateway_events_.push_back(room + "@" + domain_ + " (IRC): " + e);
  for (auto& e : a.audit) gateway_audit_.push_back("room " + room + "@" + domain_ + " " + e);
  if (transport_ != nullptr) {
    IrcGateway& g = *gateways_.at(room);
    for (int c : a.open) transport_->open(room, c, g.spec());
    for (auto& [c, bytes] : a.send) transport_->send(room, c, bytes);
    for (int c : a.close) transport_->close(room, c);
  }
  auto rit = rooms_.find(room);
  if (rit == rooms_.end()) return;
  const std::string gw = gateways_.at(room)->jid();
  for (const Element& st : a.to_room) rit->second->on_peer(gw, st, now, out);
  a = IrcActions{};
}

void RoomService::route_gateways(std::int64_t now, Outputs& out) {
  if (gateways_.empty()) return;
  for (int round = 0; round < 64; ++round) {
    bool moved = false;
    Outputs keep;
    std::vector<std::pair<std::string, Element>> for_gw;
    for (auto& o : out) {
      auto to = o.to_peer ? xmpp::parse_jid(o.stanza.attr_or("to")) : std::nullopt;
      if (to && to->domain == gateway_domain_) {
        for_gw.emplace_back(to->local, std::move(o.stanza));
        moved = true;
      } else {
        keep.push_back(std::move(o));
      }
    }
    out = std::move(keep);
    if (!moved) return;
    if (round == 63) {
      // A room and its gateway that never go quiet: what is left stays in (fail closed).
      gateway_events_.push_back("rooms: gateway traffic did not settle; " + std::to_string(for_gw.size()) +
                                " stanza(s) dropped");
      return;
    }
    for (auto& [room, st] : for_gw) {
      auto g = gateways_.find(room);
      if (g == gateways_.end()) continue;
      IrcActions a;
      g->second->on_room(st, now, a);
      apply(room, a, now, out);
    }
  }
}

void RoomService::start_irc(IrcTransport* transport, std::int64_t now, Outputs& out) {
  transport_ = transport;
  for (auto& [room, g] : gateways_) {
    IrcActions a;
    g->start(now, a);
    apply(room, a, now, out);
  }
  route_gateways(now, out);
}

void RoomService::irc_connected(const std::string& room, int conn, std::int64_t now, Outputs& out) {
  auto g = gateways_.find(room);
  if (g == gateways_.end()) return;
  IrcActions a;
  g->second->on_connected(conn, now, a);
  apply(room, a, now, out);
  route_gateways(now, out);
}

void RoomService::irc_data(const std::string& room, int conn, std::string_view bytes, std::int64_t now, Outputs& out) {
  auto g = gateways_.find(room);
  if (g == gateways_.end()) return;
  IrcActions a;
  g->second->on_data(conn, bytes, now, a);
  apply(room, a, now, out);
  route_gateways(now, out);
}

void RoomService::irc_closed(const std::string& room, int conn, const std::string& why, std::int64_t now,
                             Outputs& out) {
  auto g = gateways_.find(room);
  if (g == gateways_.end()) return;
  IrcActions a;
  g->second->on_closed(conn, why, now, a);
  apply(room, a, now, out);
  route_gateways(now, out);
}

std::vector<std::string> RoomService::take_audit() {
  std::vector<std::string> v = std::move(gateway_audit_);
  gateway_audit_.clear();
  return v;
}

std::vector<const config::IrcLinkSpec*> RoomService::irc_links() const {
  std::vector<const config::IrcLinkSpec*> v;
  for (const auto& [room, g] : gateways_) v.push_back(&g->spec());
  return v;
}

const IrcGateway* RoomService::gateway(const std::string& room) const {
  auto g = gateways_.find(room);
  return g == gateways_.end() ? nullptr : g->second.get();
}

namespace {

void reply_error(const Element& st, StanzaErrorCondition c, const std::string& text, const std::string& by,
                 Outputs& out, bool to_peer) {
  const std::string type = st.attr_or("type");
  if (type == "error" || type == "result") return;
  if (st.name() != "presence" && !xmpp::may_bounce(st)) return;
  if (st.name() == "presence" && !type.empty() && type != "probe") return;
  Element r = xmpp::make_error_reply(st, {c, xmpp::default_type(c), text, by, {}});
  r.set_attr("type", "error");
  out.push_back({to_peer, std::move(r)});
}

const Element* first_child(const Element& st) {
  for (const auto& c : st.children()) {
    if (c.is_element()) return c.element.get();
  }
  return nullptr;
}

}  // namespace

void RoomService::service_iq(const Element& st, Outputs& out, bool to_peer) const {
  const std::string type = st.attr_or("type");
  if (type != "get" && type != "set") return;
  const Element* q = first_child(st);
  auto result = [&](std::optional<Element> payload) {
    Element r(st.ns(), "iq");
    r.set_attr("from", domain_);
    r.set_attr("to", st.attr_or("from"));
    r.set_attr("type", "result");
    r.set_attr("id", st.attr_or("id"));
    if (payload) r.add_child(std::move(*payload));
    out.push_back({to_peer, std::move(r)});
  };
  if (type == "get" && q != nullptr && q->name() == "query" && q->ns() == kNsDiscoInfo && q->attr("node") == nullptr) {
    Element info(std::string(kNsDiscoInfo), "query");
    Element& id = info.add_child(std::string(kNsDiscoInfo), "identity");
    id.set_attr("category", "conference");
    id.set_attr("type", "text");
    id.set_attr("name", "Portcullis rooms");
    for (const char* f : {"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info",
                          "http://jabber.org/protocol/disco#items", "urn:xmpp:ping"}) {
      info.add_child(std::string(kNsDiscoInfo), "feature").set_attr("var", f);
    }
    result(std::move(info));
    return;
  }
  if (type == "get" && q != nullptr && q->name() == "query" && q->ns() == kNsDiscoItems && q->attr("node") == nullptr) {
    Element items(std::string(kNsDiscoItems), "query");
    for (const auto& [name, room] : rooms_) {
      Element& it = items.add_child(std::string(kNsDiscoItems), "item");
      it.set_attr("jid", room->jid());
      it.set_attr("name", room->settings().title);
    }
    result(std::move(items));
    return;
  }
  if (type == "get" && q != nullptr && q->name() == "ping" && q->ns() == kNsPing) {
    result(std::nullopt);
    return;
  }
  reply_error(st, StanzaErrorCondition::ServiceUnavailable, "not offered by this service", domain_, out, to_peer);
}

void RoomService::on_local(const Element& st, std::int64_t now, Outputs& out) {
  on_local_room(st, now, out);
  route_gateways(now, out);
}

void RoomService::on_local_room(const Element& st, std::int64_t now, Outputs& out) {
  // The gateways' JIDs exist inside this service only: nobody outside may use one.
  if (auto f = xmpp::parse_jid(st.attr_or("from")); f && f->domain == gateway_domain_) return;
  auto to = xmpp::parse_jid(st.attr_or("to"));
  if (!to || to->domain != domain_) return;   // never answers for another domain
  if (!xmpp::parse_jid(st.attr_or("from"))) return;   // nobody to answer
  if (to->local.empty()) {
    if (st.name() == "iq") service_iq(st, out, false);
    else reply_error(st, StanzaErrorCondition::ServiceUnavailable, "address a room of this service", domain_, out, false);
    return;
  }
  auto it = rooms_.find(to->local);
  if (it == rooms_.end()) {
    reply_error(st, StanzaErrorCondition::ItemNotFound, "no such room; rooms are configured by the operator",
                to->bare(), out, false);
    return;
  }
  // A node this room federates with is not a user, whichever way it came; and
  // no user has an address in a federated node's domain (it would be taken
  // for that node's occupants).
  if (auto from = xmpp::parse_jid(st.attr_or("from")); from) {
    if (it->second->links_with(from->bare())) {
      it->second->on_peer(from->bare(), st, now, out);
      return;
    }
    if (it->second->links_with_domain(from->domain)) return;
  }
  it->second->on_local(st, now, out);   // strips a user's <fmuc/> after its checks
}

void RoomService::on_federated(const Element& st, std::int64_t now, Outputs& out) {
  on_federated_room(st, now, out);
  route_gateways(now, out);
}

void RoomService::on_federated_room(const Element& st, std::int64_t now, Outputs& out) {
  // The gateways' JIDs exist inside this service only: nobody outside may use one.
  if (auto f = xmpp::parse_jid(st.attr_or("from")); f && f->domain == gateway_domain_) return;
  auto to = xmpp::parse_jid(st.attr_or("to"));
  auto from = xmpp::parse_jid(st.attr_or("from"));
  if (!to || !from || to->domain != domain_) return;
  auto it = to->local.empty() ? rooms_.end() : rooms_.find(to->local);
  if (it == rooms_.end()) {
    if (to->local.empty() && st.name() == "iq") {
      service_iq(st, out, true);
      return;
    }
    reply_error(st, StanzaErrorCondition::ItemNotFound, "no such room", to->bare(), out, true);
    return;
  }
  if (!it->second->links_with(from->bare())) {
    // Only the nodes the operator configured take part in a room's federation.
    reply_error(st, StanzaErrorCondition::NotAllowed, "this room does not federate with you", it->second->jid(), out,
                true);
    return;
  }
  it->second->on_peer(from->bare(), st, now, out);
}

void RoomService::links_lost(const std::function<bool(const std::string&)>& which, const std::string& why,
                             std::int64_t now, Outputs& out) {
  for (auto& [name, room] : rooms_) {
    const auto& s = room->settings();
    std::vector<std::string> peers = s.accept_from;
    if (!s.federate_with.empty()) peers.push_back(s.federate_with);
    for (const auto& p : peers) {
      const std::string d = p.substr(p.find('@') + 1);
      if (d != gateway_domain_ && which(d)) room->link_lost(p, why, now, out);
    }
  }
  route_gateways(now, out);
}

void RoomService::tick(std::int64_t now, Outputs& out) {
  for (auto& [name, room] : rooms_) room->tick(now, out);
  route_gateways(now, out);
  for (auto& [room, g] : gateways_) {
    IrcActions a;
    g->tick(now, a);
    apply(room, a, now, out);
  }
  route_gateways(now, out);
}

void RoomService::shutdown(Outputs& out) {
  for (auto& [room, g] : gateways_) {
    IrcActions a;
    g->shutdown(a);
    a.to_room.clear();
    apply(room, a, 0, out);
  }
  for (auto& [name, room] : rooms_) room->shutdown(out);
  out.erase(std::remove_if(out.begin(), out.end(),
                           [&](const Output& o) {
                             auto to = o.to_peer ? xmpp::parse_jid(o.stanza.attr_or("to")) : std::nullopt;
                             return to && to->domain == gateway_domain_;
                           }),
            out.end());
}

const Room* RoomService::room(const std::string& name) const {
  auto it = rooms_.find(name);
  return it == rooms_.end() ? nullptr : it->second.get();
}

std::vector<const Room*> RoomService::rooms() const {
  std::vector<const Room*> v;
  for (const auto& [n, r] : rooms_) v.push_back(r.get());
  return v;
}

std::vector<std::string> RoomService::take_events() {
  std::vector<std::string> all = std::move(gateway_events_);
  gateway_events_.clear();
  for (auto& [name, room] : rooms_) {
    for (auto& e : room->take_events()) all.push_back(room->jid() + ": " + e);
  }
  return all;
}

}  // namespace portcullis::rooms
