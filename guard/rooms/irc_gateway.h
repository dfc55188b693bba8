// A room <-> IRC channel gateway (issue 10), with no I/O of its own.
//
// To its room the gateway is one more FMUC node: a downstream room
// (`jid()`, "<room>@irc.<service domain>") that the room accepts like any
// federated node. Everything the room knows about FMUC then holds for IRC too:
// one copy of each message per link, occupants learned through the link and
// removed with 333 when it is lost, private messages by nick, nobody speaking
// for an occupant it did not bring.
//
// To the IRC server it is several clients (guard/irc/client.h):
//  - connection 0, the gateway's own (`nick` of <irc>): it joins the channel,
//    and only what it sees enters the room (a channel message reaches every
//    puppet too; it enters once);
//  - one puppet per room occupant that is not an IRC user, so IRC users see
//    real nicks and can query them. A puppet joins when its occupant joins and
//    quits when it leaves; what the occupant says goes out on its puppet.
//
// The gateway joins the room once the channel has an IRC user and leaves it
// when the last one has gone (lazy, as FMUC nodes are). Messages said in the
// room before the join (history) are not replayed into IRC. Labels
// (guard/rooms/irc_labels.h): a room message goes to IRC only within the
// link's clearance, marked; what IRC says enters with the link's label. While the IRC
// server is away, messages for IRC are refused back to the room
// (recipient-unavailable), so their authors are told; the gateway reconnects
// with a doubling backoff, and never again after the server refused its
// credentials.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "guard/config/config.h"
#include "guard/rooms/irc_note.h"
#include "guard/xmpp/element.h"

namespace portcullis::irc {
class Client;
struct Event;
}

namespace portcullis::rooms {

class IrcLabels;
struct IrcLabelJudgement;

// What the gateway asks of its caller.
struct IrcActions {
  std::vector<int> open;                          // connect connection N (TCP, then TLS when configured)
  std::vector<std::pair<int, std::string>> send;  // bytes (whole lines, CR LF) for connection N
  std::vector<int> close;                         // close connection N after what was sent
  std::vector<xmpp::Element> to_room;             // FMUC stanzas for the room (from jid())
  std::vector<std::string> events;                // log lines
  // Audit records (the edge sends them to the archive, not to the log): each
  // room message sent to IRC with the lines it became, each IRC message taken in.
  std::vector<std::string> audit;
};

struct IrcGatewayCounters {
  std::uint64_t to_irc = 0;          // room messages sent to IRC
  std::uint64_t lines_out = 0;       // IRC lines they became
  std::uint64_t from_irc = 0;        // IRC messages that entered the room
  std::uint64_t refused = 0;         // room messages not sent (IRC away, too long, no puppet)
  std::uint64_t reconnects = 0;
};

class IrcGateway {
 public:
  // `ping_interval_ms`: the room service's; the gateway pings the room that
  // often (a room loses a downstream link silent for three intervals).
  IrcGateway(const config::IrcLinkSpec& spec, std::string room_jid, std::string gateway_jid,
             std::int64_t ping_interval_ms);
  ~IrcGateway();
  IrcGateway(const IrcGateway&) = delete;
  IrcGateway& operator=(const IrcGateway&) = delete;

  const std::string& jid() const { return jid_; }
  const std::string& room_jid() const { return room_; }
  const config::IrcLinkSpec& spec() const { return spec_; }

  // Connects the gateway's own connection (call once at start).
  void start(std::int64_t now_ms, IrcActions& out);
  // An FMUC stanza from the room to jid() or jid()/nick.
  void on_room(const xmpp::Element& stanza, std::int64_t now_ms, IrcActions& out);
  // Connection N is up (TLS established when configured) / sent bytes / went away.
  void on_connected(int conn, std::int64_t now_ms, IrcActions& out);
  void on_data(int conn, std::string_view bytes, std::int64_t now_ms, IrcActions& out);
  void on_closed(int conn, const std::string& why, std::int64_t now_ms, IrcActions& out);
  // Paced lines, reconnects. Call about every 100 ms (pacing) or at least every second.
  void tick(std::int64_t now_ms, IrcActions& out);
  // Everyone quits (edge shutting down).
  void shutdown(IrcActions& out);

  bool connected() const;            // the gateway's own connection is registered and in the channel
  bool in_room() const { return in_room_; }
  std::size_t irc_users() const { return irc_users_.size(); }
  std::size_t puppets() const;
  const IrcGatewayCounters& counters() const { return counters_; }

 private:
  struct Puppet;
  struct IrcUser {
    std::string nick;       // as IRC spells it
    std::string room_nick;  // its occupant nick in the room
  };

  void connect_main(std::int64_t now_ms, IrcActions& out);
  void main_event(const irc::Event& e, std::int64_t now_ms, IrcActions& out);
  void puppet_event(const std::string& room_nick, const irc::Event& e, std::int64_t now_ms, IrcActions& out);
  void irc_user_joined(const std::string& nick, std::int64_t now_ms, IrcActions& out);
  // `kicked_by`: a kick (307), by that IRC nick, for `kick_text`.
  void irc_user_left(const std::string& nick, const std::string& reason, bool lost, IrcActions& out,
                     const std::string& kicked_by = {}, const std::string& kick_text = {});
  void irc_user_renamed(const std::string& nick, const std::string& new_nick, IrcActions& out);
  // `room_nick` is an occupant's, or another IRC user's (not the one folded as `except`).
  bool room_nick_taken(const std::string& room_nick, const std::string& except) const;
  void lose_irc(const std::string& why, std::int64_t now_ms, IrcActions& out, bool refused = false);
  std::string folded(const std::string& nick) const;
  bool our_channel(const std::string& channel) const;
  void drop_puppets(const std::string& why, IrcActions& out);
  void occupant_available(const std::string& room_nick, std::int64_t now_ms, IrcActions& out);
  void occupant_gone(const std::string& room_nick, IrcActions& out);
  // Refused back to the room, with free text (shown by this room only) and a
  // closed note (which may travel back to a far author's room).
  void refuse(const xmpp::Element& st, const std::string& why, IrcNoteReason reason, IrcActions& out);
  // It went to IRC, changed (cut at line-cap): the room tells its author.
  void warn(const xmpp::Element& st, const std::string& why, int lines, IrcActions& out);
  static std::string flot(const std::string& marking, const std::string& text);
  static std::string marking_note(const std::string& marking);
  std::string label_note() const;
  std::string jid_note(const xmpp::Element& st, const std::string& nick) const;
  void label_from_irc(xmpp::Element& m) const;
  void audit_refusal(const xmpp::Element& st, const std::string& nick, const std::string& what,
                     const IrcLabelJudgement& j, IrcActions& out) const;
  xmpp::Element presence_for(const IrcUser& u, bool available, bool join, const std::vector<int>& codes) const;
  std::string irc_jid(const std::string& nick) const;
  bool is_puppet_nick(const std::string& irc_nick) const;
  void flush(int conn, irc::Client& c, std::int64_t now_ms, IrcActions& out);
  void pump(int conn, std::int64_t now_ms, IrcActions& out);
  irc::Client* client(int conn);

  config::IrcLinkSpec spec_;
  std::string room_, jid_, domain_;
  std::int64_t ping_interval_ms_;
  std::string password_, sasl_password_;
  std::unique_ptr<IrcLabels> labels_;                  // the link's labels and clearance (may be unconfigured)
  std::unique_ptr<irc::Client> main_;
  bool main_open_ = false;
  bool main_joined_ = false;
  bool credentials_rejected_ = false;
  std::int64_t next_connect_ms_ = 0;
  std::int64_t backoff_ms_ = 0;
  bool in_room_ = false;
  bool join_sent_ = false;
  std::int64_t last_ping_ms_ = 0;
  std::uint64_t next_id_ = 0;
  std::set<std::string> occupants_;                    // room nicks of the room's other occupants
  std::map<std::string, std::string> occupant_jids_;   // room nick -> JID as the room gave it (for the audit)
  std::set<std::string> over_cap_;                     // occupants without a puppet (max-puppets), logged once
  std::set<std::string> no_puppet_;                    // occupants whose puppet the server refused: not retried
  std::map<std::string, std::int64_t> puppet_retry_at_;   // occupants whose puppet was dropped: when to retry
  std::string join_key_;                               // the IRC user whose presence made our join
  bool users_capped_ = false;
  bool stable_ = false;                                // the link stayed in the channel a while
  std::int64_t joined_at_ms_ = 0;
  std::string last_by_, last_id_;                      // the last room message received (for <resume/>)
  bool resuming_ = false;                              // our join named it: what follows is backfill
  std::size_t backfilled_ = 0, backfill_skipped_ = 0, backfill_refused_ = 0;
  std::map<std::string, IrcUser> irc_users_;            // folded IRC nick -> user
  std::map<std::string, std::unique_ptr<Puppet>> puppets_;   // room nick -> puppet
  std::map<int, std::string> puppet_conns_;             // connection -> room nick
  int next_conn_ = 1;
  IrcGatewayCounters counters_;
};

}  // namespace portcullis::rooms
