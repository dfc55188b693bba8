// The IRC connections of an edge's room gateways (guard/rooms/irc_gateway):
// TCP to the <irc> server of this side (numeric address: the side firewall
// lets the edge reach it and nothing else), then TLS with the certificate
// checked against the link's CA and server-name. Bytes in and out only; what
// they mean is the gateway's business.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "guard/log/log.h"
#include "guard/net/connection.h"
#include "guard/net/event_loop.h"
#include "guard/rooms/room_service.h"

namespace portcullis::s2s {

class IrcLinks : public rooms::IrcTransport {
 public:
  // `deliver(service, call)`: runs `call` against the service and sends what it produced.
  using Deliver = std::function<void(rooms::RoomService&, const std::function<void(rooms::Outputs&)>&)>;
  IrcLinks(net::EventLoop& loop, Logger& log, rooms::RoomService& service, Deliver deliver);
  ~IrcLinks() override;

  void open(const std::string& room, int conn, const config::IrcLinkSpec& spec) override;
  void send(const std::string& room, int conn, const std::string& bytes) override;
  void close(const std::string& room, int conn) override;
  void close_all();

 private:
  struct Link;
  using Key = std::pair<std::string, int>;
  void closed(const Key& key, std::uint64_t gen, const std::string& why);
  std::int64_t now() const;

  net::EventLoop& loop_;
  Logger& log_;
  rooms::RoomService& service_;
  Deliver deliver_;
  std::map<Key, std::unique_ptr<Link>> links_;
  std::uint64_t next_gen_ = 0;
  std::map<std::string, std::unique_ptr<net::TlsContext>> tls_;   // per CA file
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis::s2s
