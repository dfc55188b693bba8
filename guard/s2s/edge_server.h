// The S2S server of one side of the sandwich (the network half of an edge
// process). It terminates the streams of the servers on its side, hands every
// authenticated stanza to the filter, and delivers what the filter releases.
//
// It has no way to reach the other side except its FilterPort: the edge process
// wires that to the socketpair to the filter, and nothing else.
//
// Error duties:
//  - filter unavailable (no channel, or it died with stanzas in flight):
//    the sender gets remote-server-timeout (wait), generated here;
//  - a released stanza that cannot be delivered on this side (no route, link
//    failure, queue full): its error reply goes back through the filter, like
//    any other stanza that crosses;
//  - never an error in reply to an error (xmpp::may_bounce).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "guard/net/connection.h"
#include "guard/rooms/room_service.h"
#include "guard/s2s/irc_links.h"
#include "guard/s2s/inbound_session.h"
#include "guard/s2s/outbound_link.h"
#include "guard/s2s/session_host.h"

namespace portcullis::s2s {

struct EdgeCounters {
  std::uint64_t inbound_stanzas = 0;     // authenticated stanzas handed to the filter
  std::uint64_t released_delivered = 0;  // stanzas from the filter written or queued to a link
  std::uint64_t bounced_local = 0;       // error replies generated here (filter unavailable etc.)
  std::uint64_t bounced_via_filter = 0;  // undeliverable -> error reply sent into the filter
  std::uint64_t dropped_errors = 0;      // undeliverable errors (never answered, RFC 6120 §8.3.1)
  std::uint64_t rejected_frames = 0;     // frames from the filter this edge refused
  std::uint64_t room_stanzas_in = 0;     // stanzas handled by the hosted rooms
  std::uint64_t room_relays_out = 0;     // FMUC stanzas the rooms sent into the filter
  std::uint64_t flow_pauses = 0;         // times an inbound stream stopped being read (flow control)
  std::uint64_t overload_bounced = 0;    // stanzas bounced after waiting overload-wait-ms
  std::uint64_t edge_refusals = 0;       // stanzas this edge refused itself (malformed 'to', kind, busy)
  std::uint64_t edge_refusals_lost = 0;  // of those, the ones whose record the filter channel could not take
};

// The edge's end of the channel to the filter (edge_main wires it to a FrameChannel).
struct FilterPort {
  std::function<bool(const ipc::Frame&)> send;          // stanzas: refused when the channel is full
  std::function<bool(const ipc::Frame&)> send_control;  // acks, events, error replies
  std::function<bool()> congested;                      // above the channel's high water
};

// The TLS settings of a side, as its edge's TLS context uses them (also the
// start-time check in guard/daemon/preflight builds one from it).
net::TlsConfig tls_config_for(const config::Side& side);

class EdgeServer final : public SessionHost {
 public:
  // `outgoing` is the direction of traffic this side sends into the filter.
  EdgeServer(net::EventLoop& loop, const config::Side& side, ipc::Direction outgoing, Logger& log);
  ~EdgeServer() override;

  // Binds the listeners (throws on failure: control plane).
  void start();
  // Closes every stream (system-shutdown) and link.
  void shutdown();

  // Filter channel: `send` returns false when the frame could not be queued.
  void set_filter(FilterPort port);
  // The channel's buffer drained after being congested: streams may read again.
  void filter_drained();
  // The filter channel died: stanzas in flight are bounced to their senders.
  void filter_lost(const std::string& reason);
  bool filter_available() const { return static_cast<bool>(port_.send); }
  void on_filter_frame(const ipc::Frame& frame);

  const EdgeCounters& counters() const { return counters_; }
  const std::vector<std::unique_ptr<rooms::RoomService>>& room_services() const { return rooms_; }
  // Drives the rooms' clocks (pings, timeouts, rejoins); start() arms a timer that calls it.
  void rooms_tick();
  std::size_t in_flight() const { return in_flight_.size(); }
  std::size_t in_flight_bytes() const { return in_flight_bytes_; }
  bool gate_closed() const { return gate_closed_; }
  // The streams of this side, inbound then outbound, at most `max` of them.
  std::vector<LinkStatus> link_status(std::size_t max) const;
  std::size_t stream_count() const { return inbound_.size() + links_.size(); }

  // SessionHost
  const config::Side& side() const override { return side_; }
  const PeeringTable& peering() const override { return peering_; }
  bool fronts(std::string_view domain) const override;
  const std::string& dialback_secret() const override { return dialback_secret_; }
  net::TlsContext& tls() override { return *tls_; }
  net::EventLoop& loop() override { return loop_; }
  Logger& log() override { return log_; }
  bool on_inbound_stanza(xmpp::Element stanza, const InboundMeta& meta) override;
  void request_verify(const std::string& local, const std::string& originating, const std::string& stream_id,
                      const std::string& key, std::function<void(VerifyResult)> done) override;
  void send_local(xmpp::Element stanza) override;
  void undeliverable(xmpp::Element stanza, xmpp::StanzaError error) override;
  void inbound_closed(InboundSession* session) override;
  void link_closed(OutboundLink* link) override;
  using SessionHost::connection_event;
  void connection_event(std::string_view what, const InboundMeta& peer) override;
  void refused_connection(std::string_view what, const InboundMeta& peer, std::string_view check) override;
  void edge_refusal(const xmpp::Element& stanza, const InboundMeta& peer, xmpp::StanzaErrorCondition condition,
                    std::string_view check, std::string_view reason) override;
  void released_taken(std::uint64_t ack) override;
  void released_delivered(std::uint64_t ack, std::string_view proof) override;
  void released_lost(std::uint64_t ack, std::string_view reason) override;
  void released_settled(std::uint64_t ack, std::string_view why) override;

  // Flow control limits (the side's <limits flow-window overload-wait-ms>).
  // Beyond kMaxInFlight stanzas or kMaxInFlightBytes in the filter's hands
  // from all streams together, every stream waits.
  static constexpr std::size_t kMaxInFlight = 16384;
  static constexpr std::size_t kMaxInFlightBytes = 64 * 1024 * 1024;

 private:
  // Flow control of one inbound stream (by InboundSession::flow_id).
  struct Flow {
    InboundSession* session = nullptr;
    std::size_t in_flight = 0;       // its stanzas the filter has not acknowledged
    bool reading = true;
    bool active = false;             // has sent a stanza to the filter (only then is it held back)
    bool shedding = false;           // waited overload-wait-ms: bounce what arrives until room
    net::TimePoint blocked_since{};  // when it stopped being read
    std::string domain;              // its authenticated peer, for the records
    std::uint64_t shed = 0;          // bounced while shedding, not yet reported
    std::vector<std::string> shed_ids;  // a few of them, for the record
    // While shedding: the link the bounces go back on (local, remote), and
    // whether it is too full to take more (then the stream is not read).
    std::pair<std::string, std::string> return_link;
    bool return_blocked = false;
  };
  bool return_link_full(const std::pair<std::string, std::string>& key, bool resume = false) const;
  void update_flow(Flow& f);
  void update_gate();
  void flow_tick();
  void report_shed(Flow& f);
  void arm_flow_timer();
  // The in-flight bounds, scaled by num/den, are reached (or the channel is congested).
  bool over_bounds(std::size_t num, std::size_t den) const;
  // The link (local -> remote), created if needed; nullptr when kMaxLinks are open.
  OutboundLink* link_for(const std::string& local, const std::string& remote, const config::Peer& peer);
  static constexpr std::size_t kMaxLinks = 1024;
  // Sends a stanza to a server on this side. `local_error`: an error reply this
  // edge made for one of its own senders (skips the peer's stanza-kind filter).
  // `ack`: the released frame's sequence number, confirmed to the filter
  // (released_taken) once the stanza is written, bounced or handed over.
  void deliver(xmpp::Element stanza, bool local_error, std::uint64_t ack = 0);
  void bounce_locally(const xmpp::Element& stanza, xmpp::StanzaErrorCondition c, xmpp::StanzaErrorType t,
                      const std::string& text);
  void on_accept(int fd, net::Endpoint peer, bool direct_tls);
  // Hosted rooms: the service for `domain`, or nullptr.
  rooms::RoomService* service_for(std::string_view domain) const;
  // A stanza for a hosted room from a federated node (through the filter, an
  // error reply about a room's relay, or over S2S from a node beyond).
  void to_rooms_federated(const xmpp::Element& stanza);
  // A stanza for a hosted room from this side: a user, or a node beyond over S2S.
  void to_rooms_this_side(const xmpp::Element& stanza);
  // Sends what the rooms produced: to this side's servers, to a node beyond
  // over S2S, or across the boundary through the filter (auth Hosted).
  void room_outputs(rooms::Outputs out);
  void room_send(rooms::Output o);
  void room_events();
  bool far_room_domain(const std::string& domain) const { return peering_.find(domain) == nullptr && service_for(domain) == nullptr; }

  net::EventLoop& loop_;
  const config::Side& side_;
  ipc::Direction outgoing_;
  Logger& log_;
  PeeringTable peering_;
  std::unique_ptr<net::TlsContext> tls_;
  std::string dialback_secret_;
  std::vector<std::unique_ptr<net::Listener>> listeners_;
  std::unordered_map<InboundSession*, std::unique_ptr<InboundSession>> inbound_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<OutboundLink>> links_;
  std::vector<std::unique_ptr<OutboundLink>> dying_;   // closed links waiting for their connection to end
  // Frame sequence numbers start from the clock, so a restarted edge never
  // reuses a number a late Ack from the filter could still name.
  std::uint64_t next_seq_ = unix_now_us();
  struct Flight {
    xmpp::Element stanza;
    std::uint64_t flow = 0;   // the inbound stream it came from (0: a room's relay)
    std::size_t bytes = 0;
    std::uint64_t sm_index = 0;   // its XEP-0198 count on that stream (0: none)
  };
  std::map<std::uint64_t, Flight> in_flight_;   // sent to the filter, not yet acknowledged
  std::size_t in_flight_bytes_ = 0;
  std::unordered_map<std::uint64_t, Flow> flows_;
  std::uint64_t next_flow_id_ = 1;
  bool gate_closed_ = false;         // channel congested or the in-flight bounds reached
  net::TimerId flow_timer_ = 0;
  FilterPort port_;
  bool send_control(const ipc::Frame& f) { return port_.send_control && port_.send_control(f); }
  // Stanzas bounced because the filter was lost, reported to the archive (as
  // Event frames) once a filter is back: the dead filter may have recorded them
  // as released. Bounded; beyond the bound only the log has them.
  std::vector<std::string> undelivered_;
  static constexpr std::size_t kMaxUndeliveredReports = 10000;
  EdgeCounters counters_;
  std::vector<std::unique_ptr<rooms::RoomService>> rooms_;
  std::vector<std::unique_ptr<IrcLinks>> irc_;   // one per room service, after rooms_ (they point into it)
  net::TimerId rooms_timer_ = 0;
  // Refusal records to the archive are rate limited (a peer must not turn its
  // refused stanzas into an unbounded stream of records and control frames):
  // a token bucket; over it, refusals are counted per (peer, check) and sent
  // as one connection event a second.
  static constexpr double kRefusalsPerSecond = 100.0;
  static constexpr double kRefusalBurst = 500.0;
  double refusal_tokens_ = kRefusalBurst;
  net::TimePoint refusal_refilled_{};
  std::map<std::pair<std::string, std::string>, std::uint64_t> refusals_aggregated_;
  net::TimerId refusal_timer_ = 0;
  bool take_refusal_token();
  // An Event or Refusal frame for the archive, about `peer` (empty: no one stream).
  ipc::Frame record_frame(ipc::FrameKind kind, const InboundMeta& peer);
  void aggregate_refusal(const std::string& domain, std::string_view check);
  void flush_aggregated_refusals();
  bool in_room_outputs_ = false;
  std::vector<rooms::Output> room_backlog_;
};

// Reads a dialback secret file (control plane; throws std::runtime_error).
std::string read_secret_file(const std::string& path);

}  // namespace portcullis::s2s
