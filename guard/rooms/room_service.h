// A MUC service hosted by an edge (<rooms domain=...> of its side): the rooms
// the operator configured, service discovery, and the routing of stanzas to
// rooms. Like Room it does no I/O: the edge hands it stanzas and sends its
// Outputs (to this side's servers, or to a federated node through the filter
// or over S2S).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "guard/config/config.h"
#include "guard/rooms/irc_gateway.h"
#include "guard/rooms/room.h"

namespace portcullis::rooms {

// The I/O the IRC gateways need (the edge provides it): connection N of the
// gateway of room ROOM (localpart) to its IRC server.
class IrcTransport {
 public:
  virtual ~IrcTransport() = default;
  virtual void open(const std::string& room, int conn, const config::IrcLinkSpec& spec) = 0;
  virtual void send(const std::string& room, int conn, const std::string& bytes) = 0;
  virtual void close(const std::string& room, int conn) = 0;
};

class RoomService {
 public:
  // `occupant_id_key`: keys occupant-id and stanza-id derivation (random per edge start is fine).
  RoomService(const config::RoomServiceSpec& spec, std::string occupant_id_key);

  const std::string& domain() const { return domain_; }

  // From a user of this side (authenticated S2S peer of this side).
  void on_local(const xmpp::Element& stanza, std::int64_t now_ms, Outputs& out);
  // From a federated node: released by the filter, or an error reply about
  // our own relay (from the boundary or the far node). Refused with an error
  // unless the sender is a node the addressed room links with.
  void on_federated(const xmpp::Element& stanza, std::int64_t now_ms, Outputs& out);
  // Every link whose peer room's domain satisfies `which` is lost (the filter
  // or the far side went away).
  void links_lost(const std::function<bool(const std::string& domain)>& which, const std::string& why,
                  std::int64_t now_ms, Outputs& out);
  void tick(std::int64_t now_ms, Outputs& out);
  void shutdown(Outputs& out);

  // IRC gateways (rooms with <irc>): start them once the transport is set;
  // then hand them what their connections do.
  void start_irc(IrcTransport* transport, std::int64_t now_ms, Outputs& out);
  void irc_connected(const std::string& room, int conn, std::int64_t now_ms, Outputs& out);
  void irc_data(const std::string& room, int conn, std::string_view bytes, std::int64_t now_ms, Outputs& out);
  void irc_closed(const std::string& room, int conn, const std::string& why, std::int64_t now_ms, Outputs& out);
  const IrcGateway* gateway(const std::string& room) const;
  std::vector<const config::IrcLinkSpec*> irc_links() const;
  // Audit records of the IRC gateways since the last call ("room JID irc-in/irc-out ...").
  std::vector<std::string> take_audit();
  // The domain of the gateways' JIDs ("irc." + domain()): never routed to S2S.
  const std::string& gateway_domain() const { return gateway_domain_; }

  const Room* room(const std::string& name) const;
  std::vector<const Room*> rooms() const;
  // Log lines from the rooms since the last call, each prefixed with the room's JID.
  std::vector<std::string> take_events();

 private:
  void service_iq(const xmpp::Element& st, Outputs& out, bool to_peer) const;
  void on_local_room(const xmpp::Element& st, std::int64_t now_ms, Outputs& out);
  void on_federated_room(const xmpp::Element& st, std::int64_t now_ms, Outputs& out);
  // Moves what the rooms sent their gateways out of `out` into the gateways,
  // and what the gateways answer back into the rooms, until quiet.
  void route_gateways(std::int64_t now_ms, Outputs& out);
  void apply(const std::string& room, IrcActions& a, std::int64_t now_ms, Outputs& out);

  std::string domain_, gateway_domain_;
  std::map<std::string, std::unique_ptr<Room>> rooms_;
  std::map<std::string, std::unique_ptr<IrcGateway>> gateways_;   // room localpart -> gateway
  IrcTransport* transport_ = nullptr;
  std::vector<std::string> gateway_events_;
  std::vector<std::string> gateway_audit_;
};

// Room settings from the config's <room>.
RoomSettings settings_from(const config::RoomSpec& spec);

}  // namespace portcullis::rooms
