// One MUC room (XEP-0045 core) that is also an FMUC node (XEP-0289,
// primary-primary): the state machine of rooms/, with no I/O of its own.
//
// Every input is a stanza plus where it came from (a user of this side, or a
// federated node named by its bare room JID) and the time; every effect is an
// Output stanza for the caller to send. Tests drive it directly; the edge
// (guard/rooms/room_service) wires it to S2S and to the filter.
//
// Federation rules (docs/design.md "Rooms live in the edge of their side"):
//  - a room joins at most one upstream room (`federate_with`) and accepts the
//    downstream rooms it names (`accept_from`), so the graph is a tree;
//  - one copy of each message goes to each federated node that is up, never
//    back to the node it came from; a message is known by the originating
//    room's <stanza-id/> (by, id) and a node drops one it already has, which
//    kills loops and duplicate backfill alike;
//  - a lost link (error, silence past the ping timeout, filter gone) removes
//    the occupants learned through it (status 333) and leaves the room
//    working; the upstream side rejoins by itself. Each end names in the
//    rejoin the last message it received on that link (<resume/> inside
//    <fmuc/>: the join presence, and the subject that ends the join answer),
//    and the other end sends everything it took in after that one, in the
//    order it took them in (backfill both ways, each delivered once, delayed;
//    the rule test/model/fmuc.pml checks). A node that names nothing it knows
//    gets the whole history.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "guard/rooms/bounded_ids.h"
#include "guard/rooms/fmuc.h"
#include "guard/rooms/irc_note.h"
#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_error.h"

namespace portcullis::rooms {

struct RoomSettings {
  std::string name;                       // room localpart
  std::string title;                      // disco name (default: name)
  std::string subject;                    // initial subject
  std::size_t history_size = 50;          // messages kept and sent on join
  bool members_only = false;
  std::vector<std::string> members;       // bare JIDs admitted when members_only
  std::vector<std::string> owners;        // bare JIDs with affiliation owner (moderators)
  std::string label;                      // the room's default label, as the policy names it (informative here)
  std::string federate_with;              // upstream room (bare JID) this node joins; empty: none
  std::vector<std::string> accept_from;   // downstream rooms (bare JIDs) that may join this node
  // Nodes inside this process (the room's IRC gateways): the text of their
  // errors is the room's own and reaches the author; a remote node's never does.
  std::vector<std::string> internal_nodes;
};

struct Timing {
  std::int64_t ping_interval_ms = 15000;  // upstream link: a ping when quiet this long
  std::int64_t ping_timeout_ms = 10000;   // no answer: link lost
  std::int64_t join_timeout_ms = 20000;   // join sent, no subject: link lost
  std::int64_t retry_ms = 5000;           // between join attempts
};

struct Output {
  bool to_peer = false;   // false: to a user of this side; true: to a federated node
  xmpp::Element stanza;
};
using Outputs = std::vector<Output>;

enum class LinkState { Down, Joining, Up };
std::string_view to_string(LinkState s);

struct RoomCounters {
  std::uint64_t messages = 0;            // groupchat messages accepted into the room
  std::uint64_t relayed_out = 0;         // stanzas sent to federated nodes
  std::uint64_t duplicates_dropped = 0;  // a message the room already had (loop or backfill overlap)
  std::uint64_t backfilled_in = 0;       // messages learned by backfill / join history
  std::uint64_t backfilled_out = 0;      // messages sent as backfill
  std::uint64_t links_lost = 0;
  std::uint64_t refused_by_peer = 0;     // our relays the far side (or the boundary) refused
  std::uint64_t warned_by_peer = 0;      // our relays an IRC link (here or beyond a peer) passed on cut
  std::uint64_t refused_from_peer = 0;   // stanzas from a node dropped (impersonation, our own ids, limits)
  std::uint64_t refused_labels = 0;      // messages refused for a misplaced or second security label
};

class Room {
 public:
  Room(RoomSettings settings, std::string service_domain, std::string occupant_id_key, Timing timing = {});

  const std::string& jid() const { return jid_; }
  const RoomSettings& settings() const { return s_; }

  // A stanza from a user of this side addressed to the room or an occupant JID.
  void on_local(const xmpp::Element& stanza, std::int64_t now_ms, Outputs& out);
  // A stanza from federated node `peer` (bare room JID; the caller has checked
  // that the stanza came from it and that it is a node this room links with).
  void on_peer(const std::string& peer, const xmpp::Element& stanza, std::int64_t now_ms, Outputs& out);
  // The link to `peer` is gone (filter lost, far edge down, S2S failure).
  void link_lost(const std::string& peer, const std::string& why, std::int64_t now_ms, Outputs& out);
  // Pings, timeouts, rejoin attempts. Call about once a second.
  void tick(std::int64_t now_ms, Outputs& out);
  // Every occupant leaves with status 332 (service shutting down).
  void shutdown(Outputs& out);

  bool links_with(const std::string& peer) const { return links_.count(peer) != 0; }
  // True when `domain` is the domain of a node this room links with.
  bool links_with_domain(const std::string& domain) const;
  LinkState link_state(const std::string& peer) const;
  // Every federated room this one links with (by room JID) and its state.
  std::vector<std::pair<std::string, LinkState>> federated_links() const;
  std::size_t local_occupants() const;
  std::size_t remote_occupants() const;
  std::size_t history_size() const { return history_.size(); }
  const std::string& subject() const { return subject_; }
  const RoomCounters& counters() const { return counters_; }
  // One line for the log when something noteworthy happened (link up, lost...); drained by the caller.
  std::vector<std::string> take_events() { return std::move(events_); }

  // disco#info <query/> of the room.
  xmpp::Element disco_info() const;

 private:
  struct Occupant {
    std::string nick;
    std::string peer;                  // empty: local; else the link it came through
    std::vector<std::string> sessions; // local: real full JIDs
    std::string author;                // local: real full JID of the first session; remote: <fmuc from>
    std::string bare;                  // bare JID of `author`
    std::string affiliation = "none", role = "participant";
    std::string occupant_id;
    std::int64_t joined_ms = 0;        // local: when it joined (a conflict answer may follow within the join timeout)
    xmpp::Element presence;            // last available presence (show/status kept)
  };
  struct HistoryEntry {
    OriginKey key;
    std::string nick;
    std::string author;                // JID of the author as this node knows it
    std::string peer;                  // link it came through; empty: said here
    std::int64_t stamp_ms = 0;
    std::uint64_t seq = 0;             // order this node took it in (relay order on every link)
    xmpp::Element message;             // the groupchat payload, no fmuc/stanza-id/delay
  };
  struct Link {
    std::string peer;
    bool upstream = false;
    LinkState state = LinkState::Down;
    bool rejected = false;
    std::int64_t lost_at_ms = 0;       // 0: not lost since it last came up
    std::int64_t last_heard_ms = 0;
    std::int64_t join_started_ms = 0;
    std::int64_t next_attempt_ms = 0;
    std::string ping_id;
    std::int64_t ping_sent_ms = 0;
    std::vector<xmpp::Element> queue;  // produced while joining, sent once up
    OriginKey last_in;                 // the last message received on this link
    std::int64_t last_accept_ms = -1'000'000'000;   // downstream: when its last join was accepted
    std::string join_nick;             // upstream: the occupant whose presence made our join
    unsigned failed_joins = 0;         // upstream: joins in a row refused with an error (backoff)
    // A 303 from this link announced this nick: its presence is due by the
    // deadline (else the departure stands as a plain one).
    std::string pending_rename;
    std::int64_t rename_deadline_ms = 0;
  };
  enum class SentKind { Groupchat, Private, Subject };
  struct Sent {                        // a message relayed to peers, for error replies
    std::string author_session, nick, client_id;
    SentKind kind = SentKind::Groupchat;
    std::string only_peer;             // a private message went to this link only
  };
  void remember_sent(const std::string& relay_id, Sent s);
  // An IRC link's note about a message another node brought: back to that
  // node (its author's room). False if this room has no such message.
  // The IRC link a remote node's error names (its 'by'), else that node's own.
  static std::string irc_link_named(const Link& l, const xmpp::Element& st);
  bool forward_irc_note(const Link& l, const xmpp::Element& st, const xmpp::StanzaError& err, const IrcNote& note,
                        bool internal, Outputs& out);

  // Local users.
  void local_presence(const xmpp::Element& st, const std::string& from, const std::string& nick, std::int64_t now,
                      Outputs& out);
  void local_join(const xmpp::Element& st, const std::string& from, const std::string& nick, std::int64_t now,
                  Outputs& out);
  void local_leave(Occupant& o, const std::string& session, const xmpp::Element* st, Outputs& out,
                   const std::vector<int>& codes = {});
  void local_groupchat(const xmpp::Element& st, const std::string& from, std::int64_t now, Outputs& out);
  void local_private(const xmpp::Element& st, const std::string& from, const std::string& nick, Outputs& out);
  void local_iq(const xmpp::Element& st, const std::string& from, const std::string& nick, Outputs& out);

  // Federated nodes.
  void peer_presence(Link& l, const xmpp::Element& st, const std::string& nick, std::int64_t now, Outputs& out);
  void peer_message(Link& l, const xmpp::Element& st, const std::string& nick, std::int64_t now, Outputs& out);
  void peer_iq(Link& l, const xmpp::Element& st, std::int64_t now, Outputs& out);
  void peer_error(Link& l, const xmpp::Element& st, std::int64_t now, Outputs& out);
  void accept_join(Link& l, const xmpp::Element& st, std::int64_t now, Outputs& out);
  void join_complete(Link& l, const xmpp::Element& subject, std::int64_t now, Outputs& out);
  // Sends `l.peer` every message taken in after `after` (all if unknown), except its own.
  std::size_t backfill(Link& l, const std::optional<OriginKey>& after, Outputs& out);
  void start_join(Link& l, std::int64_t now, Outputs& out);
  // Occupants that need the upstream room: this side's own and those brought
  // by downstream nodes (a middle node with no user of its own still relays).
  std::size_t occupants_wanting(const Link& upstream) const;
  // Lazy FMUC both ways: join the upstream room when someone here needs it,
  // leave it when nobody does any more.
  void join_upstream_if_wanted(std::int64_t now, Outputs& out);
  void leave_upstream_if_idle(Outputs& out);
  void lose(Link& l, const std::string& why, std::int64_t now, Outputs& out, bool refused_join = false);

  // Building blocks.
  void accept_message(HistoryEntry e, const std::string& via, bool delayed, Outputs& out);
  void reflect_message(const HistoryEntry& e, bool delayed, const std::string& to_session, Outputs& out) const;
  void relay_message(const HistoryEntry& e, const std::string& except_peer, bool delayed, Outputs& out);
  void send_subject(const std::string& to_session, Outputs& out) const;
  // What travels with a presence (a departure, mostly), along the whole
  // federation: muc#user status codes (333 lost with a link, 303 nick change
  // with the new nick, 307 kicked with the reason and the kicker's nick).
  struct Departure {
    std::vector<int> codes;
    std::string new_nick;   // 303: <item nick=.../>
    std::string reason;     // 307: <item><reason/>
    std::string actor;      // 307: <item><actor nick=.../>
    std::string status;     // the leave's <status/> text (a quit message), if any
    static Departure with(std::vector<int> c) {
      Departure d;
      d.codes = std::move(c);
      return d;
    }
  };
  Departure peer_departure(const Link& l, const xmpp::Element& st) const;
  void left_if_no_occupant(Link& l, Outputs& out);
  static void departure_item(xmpp::Element& item, const Departure& d);
  void broadcast_presence(const Occupant& o, bool available, const Departure& d, Outputs& out) const;
  void relay_presence(const Occupant& o, bool available, const std::string& except_peer, Outputs& out,
                      const std::string& only_peer = {}, const Departure& d = {});
  xmpp::Element occupant_presence(const Occupant& o, bool available, const std::string& to, bool self,
                                  const Departure& d = {}) const;
  xmpp::Element fmuc_presence(const Occupant& o, bool available, const Link& l, bool join_request,
                              const Departure& d = {}) const;
  void send_to_peer(Link& l, xmpp::Element st, Outputs& out);
  std::vector<const HistoryEntry*> pick_history(const xmpp::Element* history_req, std::int64_t now) const;
  xmpp::Element relay_form(const HistoryEntry& e, const std::string& to, bool delayed) const;
  void send_history(const xmpp::Element* history_req, const std::string& to_session, std::int64_t now,
                    Outputs& out) const;
  void error_to(const xmpp::Element& st, xmpp::StanzaErrorCondition c, const std::string& text, Outputs& out,
                bool to_peer = false) const;
  void remove_remote_occupants(Link& l, const std::string& status_text, int code, Outputs& out);
  bool seen(const OriginKey& k) const { return seen_.count(k) != 0; }
  void remember(const OriginKey& k);
  std::string make_occupant_id(const std::string& bare) const;
  // True (and counted, logged) when `nick` is an occupant `l` did not bring.
  bool impersonates(const Link& l, const std::string& nick);
  std::string next_id();
  Occupant* find_session(const std::string& full_jid);
  void event(std::string line) { events_.push_back(std::move(line)); }

  RoomSettings s_;
  std::string jid_;
  std::string occupant_id_key_;
  Timing t_;
  std::string subject_;
  std::string subject_nick_;
  std::optional<xmpp::Element> subject_label_;   // the subject's security label, kept with it
  std::map<std::string, Occupant> occupants_;   // by nick
  std::deque<HistoryEntry> history_;            // oldest first, bounded by history_size
  std::set<OriginKey> seen_;
  std::deque<OriginKey> seen_order_;
  std::map<std::string, Link> links_;           // by peer room JID
  static constexpr std::size_t kMaxRemembered = 2048;   // relay ids kept for error replies
  BoundedIds<Sent> sent_{kMaxRemembered};               // relay id -> author
  BoundedIds<bool> forwarded_{kMaxRemembered};          // relay ids whose IRC note we passed back
  struct OnwardPm {                                     // a peer's private message passed on to another link
    std::string from_peer, nick, to_peer;
  };
  BoundedIds<OnwardPm> onward_pms_{kMaxRemembered};    // relay id -> where it came from
  std::uint64_t next_seq_ = 0;
  RoomCounters counters_;
  std::vector<std::string> events_;
};

}  // namespace portcullis::rooms
