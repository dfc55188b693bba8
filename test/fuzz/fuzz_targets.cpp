#include "test/fuzz/fuzz_targets.h"

#include <cstdlib>
#include <string>
#include <string_view>

#include "guard/ipc/frame.h"
#include "guard/rooms/room_service.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::fuzz {
namespace {

// A violated property is a bug: abort so the fuzzer records the input.
void require(bool ok) {
  if (!ok) std::abort();
}

class CountingHandler : public xmpp::StreamHandler {
 public:
  int errors = 0;
  void on_stream_open(const xmpp::StreamHeader&) override {}
  void on_element(xmpp::Element e, std::size_t) override {
    const std::string once = e.serialize();
    std::string err;
    auto again = xmpp::parse_element(once, {}, &err);
    require(again.has_value());
    require(again->serialize() == once);
  }
  void on_stream_close() override {}
  void on_stream_error(xmpp::StreamErrorCondition, std::string) override { ++errors; }
};

}  // namespace

void stream_parser_one_input(const std::uint8_t* data, std::size_t size) {
  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = 16 * 1024;
  limits.max_depth = 16;
  CountingHandler h;
  xmpp::StreamParser parser(h, limits);
  // The first byte picks the chunk size, so splits at every boundary get explored.
  const std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = 0; at < all.size(); at += chunk) {
    if (!parser.feed(all.substr(at, chunk))) break;
  }
  require(h.errors <= 1);
}

void frame_decoder_one_input(const std::uint8_t* data, std::size_t size) {
  ipc::FrameLimits limits;
  limits.max_body = 64 * 1024;
  ipc::FrameDecoder dec(limits);
  dec.append(std::string_view(reinterpret_cast<const char*>(data), size));
  std::size_t consumed = 0;
  while (auto f = dec.next()) {
    const std::string bytes = ipc::encode(*f);
    require(bytes.size() <= size - consumed);
    require(std::string_view(reinterpret_cast<const char*>(data) + consumed, bytes.size()) == bytes);
    consumed += bytes.size();
  }
}

namespace {

bool has_fmuc_anywhere(const xmpp::Element& e) {
  if (e.ns() == rooms::kNsFmuc) return true;
  for (const auto& c : e.children()) {
    if (c.is_element() && has_fmuc_anywhere(*c.element)) return true;
  }
  return false;
}

// Every output of `svc`: from the service or one of its rooms; FMUC only to
// `twin_domain`; nothing carrying <fmuc/> to anyone else.
void check_outputs(const rooms::Outputs& out, const std::string& domain, const std::string& twin_domain) {
  for (const auto& o : out) {
    auto from = xmpp::parse_jid(o.stanza.attr_or("from"));
    auto to = xmpp::parse_jid(o.stanza.attr_or("to"));
    require(from.has_value() && from->domain == domain);
    require(to.has_value());
    if (o.to_peer) {
      // To a node: the twin, or an error reply (no FMUC in it) to whoever sent the refused stanza.
      require(to->domain == twin_domain || (o.stanza.attr_or("type") == "error" && !has_fmuc_anywhere(o.stanza)));
    } else {
      // To a user: never to a room domain (but an error goes back to whoever sent the stanza), never FMUC.
      require(to->domain != domain);
      require(to->domain != twin_domain || o.stanza.attr_or("type") == "error");
      require(!has_fmuc_anywhere(o.stanza));
    }
  }
}

}  // namespace

void room_one_input(const std::uint8_t* data, std::size_t size) {
  config::RoomServiceSpec low_spec, high_spec;
  low_spec.domain = "rooms.low.test";
  high_spec.domain = "rooms.high.test";
  config::RoomSpec low_room, high_room;
  low_room.name = high_room.name = "ops";
  low_room.history = high_room.history = 8;
  low_room.federate_with = "ops@rooms.high.test";
  high_room.accept_from = {"ops@rooms.low.test"};
  low_spec.rooms = {low_room};
  high_spec.rooms = {high_room};
  rooms::RoomService low(low_spec, "fuzz-key-0123456789abcdef"), high(high_spec, "fuzz-key-0123456789abcdef");
  std::int64_t now = 1'700'000'000'000;
  bool link_up = true;
  // Delivers what one service sent to the other (while the link is up), bounded.
  auto pump = [&](rooms::Outputs out, bool from_low) {
    for (int round = 0; round < 8 && !out.empty(); ++round) {
      check_outputs(out, from_low ? low.domain() : high.domain(), from_low ? high.domain() : low.domain());
      rooms::Outputs next;
      for (auto& o : out) {
        if (o.to_peer && link_up) (from_low ? high : low).on_federated(o.stanza, now, next);
      }
      out = std::move(next);
      from_low = !from_low;
    }
  };
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 0;
  while (!all.empty() && lines++ < 64) {
    const std::size_t nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
    if (line.empty()) continue;
    const unsigned char op = static_cast<unsigned char>(line[0]);
    std::string_view xml = line.substr(1);
    rooms::Outputs out;
    std::string err;
    xmpp::ParserLimits limits;
    limits.max_stanza_bytes = 8192;
    limits.max_depth = 12;
    switch (op % 8) {
      case 0: link_up = false; low.links_lost([](const std::string&) { return true; }, "fuzz", now, out); pump(std::move(out), true); break;
      case 1: link_up = true; now += 6000; low.tick(now, out); pump(std::move(out), true); break;
      case 2: now += 1000 + (op >> 3) * 1000; high.tick(now, out); pump(std::move(out), false); break;
      default: {
        auto st = xmpp::parse_element(xml, limits, &err);
        if (!st) break;
        const std::size_t before = out.size();
        switch (op % 8) {
          case 3: low.on_local(*st, now, out); break;
          case 4: high.on_local(*st, now, out); break;
          case 5: low.on_federated(*st, now, out); break;
          case 6: high.on_federated(*st, now, out); break;
          default: low.tick(now, out); break;
        }
        // One stanza in: a bounded number out (a join answers with the room's occupants and history).
        require(out.size() - before <= 2 * 5000 + 64);
        pump(std::move(out), op % 2 == 1);
      }
    }
  }
}

}  // namespace portcullis::fuzz
