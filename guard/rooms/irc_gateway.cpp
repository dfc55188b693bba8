#include "guard/rooms/irc_gateway.h"

#include <algorithm>
#include <fstream>
#include <random>

#include "guard/irc/client.h"
#include "guard/irc/nick.h"
#include "guard/irc/text.h"
#include "guard/rooms/fmuc.h"
#include "guard/rooms/irc_labels.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_error.h"

namespace portcullis::rooms {

using xmpp::Element;

namespace {

// A value of an audit record's key=value fields, in quotes ("...", with \" and
// \\, control characters as \xNN).
std::string quoted(std::string_view v) {
  std::string out = "\"";
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// As it is, or quoted when it holds anything that could be read as the end of
// the field or the start of another, or of the text after ": ": a room nick,
// a message id or a sender's display marking is the user's choice.
std::string q(std::string_view v) {
  const bool plain = !v.empty() && std::all_of(v.begin(), v.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c > 0x20 && c != 0x7f && c != '"' && c != '\\' && c != '=' && c != ':' && c != '(' && c != ')';
  });
  return plain ? std::string(v) : quoted(v);
}

constexpr std::size_t kMaxIrcUsers = 500;      // IRC users brought into the room at most
constexpr std::size_t kMaxBackfillLines = 20;   // messages said while IRC was away, replayed on reconnect

std::string first_line_of(const std::string& file) {
  if (file.empty()) return {};
  std::ifstream in(file, std::ios::binary);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string resource_of(const std::string& jid) {
  auto j = xmpp::parse_jid(jid);
  return j ? j->resource : std::string{};
}

std::string bare_of(const std::string& jid) {
  auto j = xmpp::parse_jid(jid);
  return j ? j->bare() : std::string{};
}

std::string body_of(const Element& m) {
  const Element* b = m.find_child("body", m.ns());
  return b ? b->text() : std::string{};
}


// "@nick" / "+nick" as NAMES lists them -> "nick".
std::string strip_prefix(const std::string& n) {
  std::size_t i = 0;
  while (i < n.size() && (n[i] == '@' || n[i] == '+' || n[i] == '%' || n[i] == '&' || n[i] == '~')) ++i;
  return n.substr(i);
}

}  // namespace

std::string IrcGateway::folded(const std::string& nick) const {
  // The server's own case mapping (ngIRCd: ascii): two nicks it tells apart
  // are two users here too.
  return irc::nick_fold(nick, main_ ? main_->server().casemapping : irc::CaseMapping::Rfc1459);
}

bool IrcGateway::our_channel(const std::string& channel) const {
  return irc::nick_equal(channel, spec_.channel, main_ ? main_->server().casemapping : irc::CaseMapping::Rfc1459);
}

struct IrcGateway::Puppet {
  std::string room_nick;
  int conn = 0;
  std::unique_ptr<irc::Client> client;
  bool open = false;
};

IrcGateway::IrcGateway(const config::IrcLinkSpec& spec, std::string room_jid, std::string gateway_jid,
                       std::int64_t ping_interval_ms)
    : spec_(spec), room_(std::move(room_jid)), jid_(std::move(gateway_jid)), ping_interval_ms_(ping_interval_ms) {
  domain_ = jid_.substr(jid_.find('@') + 1);
  password_ = first_line_of(spec_.password_file);
  sasl_password_ = first_line_of(spec_.sasl_password_file);
  labels_ = std::make_unique<IrcLabels>(spec_);   // throws ConfigError: the edge does not start
}

IrcGateway::~IrcGateway() = default;

bool IrcGateway::connected() const { return main_ && main_joined_; }
std::size_t IrcGateway::puppets() const { return puppets_.size(); }

irc::Client* IrcGateway::client(int conn) {
  if (conn == 0) return main_.get();
  auto it = puppet_conns_.find(conn);
  if (it == puppet_conns_.end()) return nullptr;
  auto p = puppets_.find(it->second);
  return p == puppets_.end() ? nullptr : p->second->client.get();
}

std::string IrcGateway::irc_jid(const std::string& nick) const {
  // An IRC user's address as the room (and the archive, before the boundary's
  // pseudonyms) knows it: the folded nick in the gateway's domain.
  // Only valid IRC nicks get here (irc_user_joined): letters, digits and
  // []\`_^{|}- are all allowed in a JID localpart.
  return folded(nick) + "@" + domain_;
}

bool IrcGateway::is_puppet_nick(const std::string& irc_nick) const {
  const std::string f = folded(irc_nick);
  for (const auto& [n, p] : puppets_) {
    if (p->client && folded(p->client->current_nick()) == f) return true;
  }
  return false;
}

void IrcGateway::start(std::int64_t now_ms, IrcActions& out) { connect_main(now_ms, out); }

void IrcGateway::connect_main(std::int64_t now_ms, IrcActions& out) {
  if (credentials_rejected_) return;
  irc::ClientConfig c;
  c.nick = spec_.nick;
  c.user = "portcullis";
  c.realname = "Portcullis gateway for " + room_;
  c.server_password = password_;
  c.sasl_user = spec_.sasl_user;
  c.sasl_password = sasl_password_;
  c.nick_rules.max_len = spec_.max_nick_length;
  c.channels = {spec_.channel};
  c.pacing.burst = spec_.flood_burst;
  c.pacing.interval_ms = spec_.flood_interval_ms;
  c.max_lines_per_message = spec_.line_cap;
  try {
    main_ = std::make_unique<irc::Client>(std::move(c));
  } catch (const std::exception& ex) {
    credentials_rejected_ = true;   // a config the client refuses will not get better by retrying
    out.events.push_back(std::string("IRC gateway not started: ") + ex.what());
    return;
  }
  main_open_ = true;
  main_joined_ = false;
  next_connect_ms_ = now_ms;
  out.open.push_back(0);
}

void IrcGateway::flush(int conn, irc::Client& c, std::int64_t now_ms, IrcActions& out) {
  for (std::string& l : c.take_output()) out.send.emplace_back(conn, std::move(l));
  for (std::string& l : c.due(now_ms)) {
    ++counters_.lines_out;
    out.send.emplace_back(conn, std::move(l));
  }
}

void IrcGateway::on_connected(int conn, std::int64_t now_ms, IrcActions& out) {
  irc::Client* c = client(conn);
  if (c == nullptr) return;
  for (std::string& l : c->start()) out.send.emplace_back(conn, std::move(l));
  flush(conn, *c, now_ms, out);
}

void IrcGateway::on_data(int conn, std::string_view bytes, std::int64_t now_ms, IrcActions& out) {
  irc::Client* c = client(conn);
  if (c == nullptr) return;
  std::vector<irc::Event> events = c->feed(bytes);
  if (conn == 0) {
    for (const irc::Event& e : events) main_event(e, now_ms, out);
  } else {
    const std::string room_nick = puppet_conns_[conn];
    for (const irc::Event& e : events) puppet_event(room_nick, e, now_ms, out);
  }
  if (irc::Client* again = client(conn)) flush(conn, *again, now_ms, out);
}

void IrcGateway::on_closed(int conn, const std::string& why, std::int64_t now_ms, IrcActions& out) {
  if (conn == 0) {
    if (!main_open_) return;
    lose_irc(why, now_ms, out);
    return;
  }
  auto it = puppet_conns_.find(conn);
  if (it == puppet_conns_.end()) return;
  const std::string nick = it->second;
  puppet_conns_.erase(it);
  puppets_.erase(nick);
  // A puppet the server dropped comes back after a while, not at once.
  puppet_retry_at_[nick] = now_ms + std::max<std::int64_t>(spec_.retry_ms, 5000);
  out.events.push_back("IRC puppet of " + nick + " closed: " + why);
}

void IrcGateway::lose_irc(const std::string& why, std::int64_t now_ms, IrcActions& out, bool refused) {
  if (refused) stable_ = false;
  main_open_ = false;
  main_joined_ = false;
  main_.reset();
  drop_puppets("the IRC link is down", out);
  // The IRC users were learned through this link: they leave the room as lost.
  std::vector<std::string> nicks;
  for (const auto& [f, u] : irc_users_) nicks.push_back(u.nick);
  for (const std::string& n : nicks) irc_user_left(n, "the IRC server went away", true, out);
  if (credentials_rejected_) {
    out.events.push_back("IRC link to " + spec_.server + ":" + std::to_string(spec_.port) + " closed: " + why +
                         "; the server refused the credentials: not retried until restart");
    return;
  }
  // The backoff starts over only after a link that got into the channel and
  // stayed a while; a kick or a refused join keeps doubling it.
  if (stable_) backoff_ms_ = 0;
  stable_ = false;
  backoff_ms_ = backoff_ms_ == 0 ? spec_.retry_ms : std::min<std::int64_t>(backoff_ms_ * 2, spec_.retry_max_ms);
  next_connect_ms_ = now_ms + backoff_ms_;
  out.events.push_back("IRC link to " + spec_.server + ":" + std::to_string(spec_.port) + " lost: " + why +
                       "; reconnecting in " + std::to_string(backoff_ms_) + " ms");
}

void IrcGateway::drop_puppets(const std::string& why, IrcActions& out) {
  for (auto& [nick, p] : puppets_) {
    if (p->client && p->open) {
      p->client->quit(why);
      for (std::string& l : p->client->take_output()) out.send.emplace_back(p->conn, std::move(l));
    }
    out.close.push_back(p->conn);
  }
  puppets_.clear();
  puppet_conns_.clear();
}

// ---- IRC -> room -----------------------------------------------------------------

Element IrcGateway::presence_for(const IrcUser& u, bool available, bool join, const std::vector<int>& codes) const {
  Element p(std::string(xmpp::kNsServer), "presence");
  p.set_attr("from", jid_ + "/" + u.room_nick);
  p.set_attr("to", room_ + "/" + u.room_nick);
  if (!available) p.set_attr("type", "unavailable");
  set_fmuc_from(p, irc_jid(u.nick));
  if (join) {
    if (!last_id_.empty()) {
      // The room sends what was said after the last message we had (backfill).
      Element& r = p.find_child("fmuc", kNsFmuc)->add_child(std::string(kNsFmuc), "resume");
      r.set_attr("by", last_by_);
      r.set_attr("id", last_id_);
    }
    Element& x = p.add_child(std::string(kNsMuc), "x");
    x.add_child(std::string(kNsMuc), "history").set_attr("maxstanzas", "0");
  }
  Element& ux = p.add_child(std::string(kNsMucUser), "x");
  Element& item = ux.add_child(std::string(kNsMucUser), "item");
  item.set_attr("affiliation", "none");
  item.set_attr("role", available ? "participant" : "none");
  item.set_attr("jid", irc_jid(u.nick));
  for (int code : codes) ux.add_child(std::string(kNsMucUser), "status").set_attr("code", std::to_string(code));
  return p;
}

void IrcGateway::irc_user_joined(const std::string& nick, std::int64_t now_ms, IrcActions& out) {
  if (nick.empty() || is_puppet_nick(nick) || (main_ && irc::nick_equal(nick, main_->current_nick()))) return;
  irc::NickRules any;
  any.max_len = 64;
  if (!irc::is_valid_nick(nick, any)) {
    out.events.push_back("IRC user with an invalid nick not brought into the room");
    return;
  }
  const std::string f = folded(nick);
  if (irc_users_.count(f) != 0) return;
  if (irc_users_.size() >= kMaxIrcUsers) {
    if (!users_capped_) out.events.push_back("IRC channel has more than " + std::to_string(kMaxIrcUsers) +
                                             " users: the rest stay out of the room");
    users_capped_ = true;
    return;
  }
  IrcUser u;
  u.nick = nick;
  u.room_nick = irc::to_xmpp_text(nick);
  // A nick the room (or another IRC user, as nick|irc) has: nick|irc at once;
  // if that is taken too, this user stays out.
  if (room_nick_taken(u.room_nick, f)) u.room_nick += "|irc";
  if (room_nick_taken(u.room_nick, f)) {
    out.events.push_back("IRC user " + nick + " cannot enter the room: " + u.room_nick + " is taken");
    return;
  }
  irc_users_.emplace(f, u);
  if (in_room_) {
    out.to_room.push_back(presence_for(u, true, false, {}));
  } else if (!join_sent_) {
    // The first IRC user brings the gateway into the room (lazy, as FMUC nodes join).
    join_sent_ = true;
    join_key_ = f;
    last_ping_ms_ = now_ms;
    resuming_ = !last_id_.empty();
    backfilled_ = backfill_skipped_ = backfill_refused_ = 0;
    out.to_room.push_back(presence_for(u, true, true, {}));
    out.events.push_back("IRC channel " + spec_.channel + " has users: joining " + room_);
  }
}

void IrcGateway::irc_user_left(const std::string& nick, const std::string& reason, bool lost, IrcActions& out,
                               const std::string& kicked_by, const std::string& kick_text) {
  auto it = irc_users_.find(folded(nick));
  if (it == irc_users_.end()) return;
  IrcUser u = it->second;
  irc_users_.erase(it);
  if (!join_sent_) return;
  std::vector<int> codes;
  if (lost) codes.push_back(333);
  if (!kicked_by.empty()) codes.push_back(307);
  Element p = presence_for(u, false, false, codes);
  if (!kicked_by.empty()) {
    // A kick (XEP-0045 §9.2): the kicker by its room nick when it is in the
    // room (an IRC user), and the reason.
    Element& item = *p.find_child("x", kNsMucUser)->find_child("item", kNsMucUser);
    if (auto k = irc_users_.find(folded(kicked_by)); k != irc_users_.end()) {
      item.add_child(std::string(kNsMucUser), "actor").set_attr("nick", k->second.room_nick);
    }
    if (!kick_text.empty()) item.add_child(std::string(kNsMucUser), "reason").add_text(irc::to_xmpp_text(kick_text));
  }
  if (!reason.empty()) {
    p.add_child(std::string(xmpp::kNsServer), "status").add_text(irc::to_xmpp_text(reason));
  }
  out.to_room.push_back(std::move(p));
  if (irc_users_.empty()) {
    // The room answers the last departure with <left/>; the puppets go now.
    drop_puppets("nobody left on IRC", out);
    occupants_.clear();
    in_room_ = false;
    join_sent_ = false;
  }
}

bool IrcGateway::room_nick_taken(const std::string& room_nick, const std::string& except) const {
  if (occupants_.count(room_nick) != 0) return true;
  for (const auto& [k, u] : irc_users_) {
    if (k != except && u.room_nick == room_nick) return true;
  }
  return false;
}

void IrcGateway::irc_user_renamed(const std::string& nick, const std::string& new_nick, IrcActions& out) {
  const std::string f = folded(nick), nf = folded(new_nick);
  auto it = irc_users_.find(f);
  if (it == irc_users_.end()) return;
  irc::NickRules any;
  any.max_len = 64;
  // The room nick it takes: as spelled on IRC, else nick|irc (as at a join).
  std::string room_nick = irc::to_xmpp_text(new_nick);
  if (room_nick_taken(room_nick, f)) room_nick += "|irc";
  const bool can_stay = !new_nick.empty() && irc::is_valid_nick(new_nick, any) && !is_puppet_nick(new_nick) &&
                        (nf == f || irc_users_.count(nf) == 0) && !room_nick_taken(room_nick, f);
  if (!can_stay) {
    // No nick this IRC user can have in the room: it leaves.
    irc_user_left(nick, "now known as " + new_nick, false, out);
    return;
  }
  const IrcUser old = it->second;
  irc_users_.erase(it);
  IrcUser u;
  u.nick = new_nick;
  u.room_nick = room_nick;
  irc_users_.emplace(nf, u);
  // The room has heard of this user once it is in, or if it is the one whose
  // presence made the gateway's join (in order before this); else nothing was
  // sent about it yet, and the join answer brings it in under the new nick.
  const bool announced = join_sent_ && (in_room_ || join_key_ == f);
  if (join_key_ == f) join_key_ = nf;
  out.audit.push_back("irc-in nick channel=" + spec_.channel + " from=" + q(irc::to_xmpp_text(nick)) + " to=" +
                      q(u.room_nick) + " as=" + q(irc_jid(new_nick)) + " was=" + q(irc_jid(nick)));
  if (!announced) return;
  // A nick change (XEP-0045 §7.6): unavailable with 303 and the new nick,
  // then the new nick's presence. The room keeps the link up in between.
  Element gone = presence_for(old, false, false, {303});
  gone.find_child("x", kNsMucUser)->find_child("item", kNsMucUser)->set_attr("nick", u.room_nick);
  out.to_room.push_back(std::move(gone));
  out.to_room.push_back(presence_for(u, true, false, {}));
}

void IrcGateway::main_event(const irc::Event& e, std::int64_t now_ms, IrcActions& out) {
  using K = irc::EventKind;
  // Only the configured channel is the room's: events of any other channel the
  // gateway finds itself in (forwarded, forced) never reach the room.
  const bool channel_event = e.kind == K::Joined || e.kind == K::Names || e.kind == K::Parted || e.kind == K::Kicked ||
                             e.kind == K::Topic || e.kind == K::JoinRefused ||
                             (e.kind == K::Message && !e.private_message);
  if (channel_event && !our_channel(e.channel)) return;
  switch (e.kind) {
    case K::JoinRefused:
      out.events.push_back("IRC server refused the gateway's join of " + e.channel + " (" + e.code + ")");
      out.close.push_back(0);
      lose_irc("join refused", now_ms, out, true);
      return;
    case K::Registered:
      out.events.push_back("IRC gateway registered as " + e.nick + " on " + spec_.server);
      break;
    case K::CredentialsRejected:
      credentials_rejected_ = true;
      out.events.push_back("IRC server refused the gateway's credentials (" + e.code + "): " + e.text);
      break;
    case K::NickUnavailable:
      out.events.push_back("IRC server refused every nick the gateway tried");
      break;
    case K::Joined:
      if (e.self) {
        main_joined_ = true;
        joined_at_ms_ = now_ms;
        out.events.push_back("IRC gateway joined " + e.channel);
      } else {
        irc_user_joined(e.nick, now_ms, out);
      }
      break;
    case K::Names:
      for (const std::string& n : e.names) irc_user_joined(strip_prefix(n), now_ms, out);
      break;
    case K::Parted:
      if (e.self) {
        out.close.push_back(0);
        lose_irc("the gateway left " + e.channel, now_ms, out, true);
        return;
      }
      irc_user_left(e.nick, e.text, false, out);
      break;
    case K::Kicked:
      if (e.self) {
        out.close.push_back(0);
        lose_irc("kicked from " + e.channel + " by " + e.by, now_ms, out, true);
        return;
      }
      irc_user_left(e.nick, "kicked by " + e.by + (e.text.empty() ? "" : ": " + e.text), false, out,
                    e.by.empty() ? std::string("the server") : e.by, e.text);
      break;
    case K::Quit:
      irc_user_left(e.nick, e.netsplit ? "netsplit " + e.text : e.text, e.netsplit, out);
      break;
    case K::NickChanged:
      if (e.self) break;
      irc_user_renamed(e.nick, e.new_nick, out);
      break;
    case K::Message: {
      if (e.private_message || e.from_server || !in_room_) break;
      auto it = irc_users_.find(folded(e.nick));
      if (it == irc_users_.end()) break;   // a puppet, or someone not in the channel
      Element m(std::string(xmpp::kNsServer), "message");
      m.set_attr("from", jid_ + "/" + it->second.room_nick);
      m.set_attr("to", room_);
      m.set_attr("type", "groupchat");
      m.set_attr("id", "irc-" + std::to_string(++next_id_) + "-" + std::to_string(now_ms));
      const std::string text = irc::to_xmpp_text(e.text);
      m.add_child(std::string(xmpp::kNsServer), "body").add_text(e.action ? "/me " + text : text);
      set_fmuc_from(m, irc_jid(e.nick));
      label_from_irc(m);
      ++counters_.from_irc;
      out.audit.push_back("irc-in channel=" + spec_.channel + " from=" + q(irc::to_xmpp_text(e.nick)) + " as=" +
                          q(irc_jid(e.nick)) + " id=" + q(m.attr_or("id")) + (e.action ? " action" : "") +
                          label_note() + ": " + text);
      out.to_room.push_back(std::move(m));
      break;
    }
    case K::Topic: {
      if (!in_room_ || is_puppet_nick(e.by) || irc::nick_equal(e.by, main_->current_nick())) break;
      // From an IRC user in the room: the subject is theirs. From a server (an
      // IRC operator's or a service's change is often sent in the server's
      // name) or anyone not in the room: the room's own, with no nick.
      auto it = irc_users_.find(folded(e.by));
      const bool by_user = !e.by.empty() && it != irc_users_.end();
      Element m(std::string(xmpp::kNsServer), "message");
      m.set_attr("from", by_user ? jid_ + "/" + it->second.room_nick : jid_);
      m.set_attr("to", room_);
      m.set_attr("type", "groupchat");
      m.set_attr("id", "irc-topic-" + std::to_string(++next_id_));
      m.add_child(std::string(xmpp::kNsServer), "subject").add_text(irc::to_xmpp_text(e.text));
      set_fmuc_from(m, by_user ? irc_jid(e.by) : jid_);
      label_from_irc(m);
      out.audit.push_back("irc-in topic channel=" + spec_.channel + " from=" + q(irc::to_xmpp_text(e.by)) + " as=" +
                          (by_user ? q(irc_jid(e.by)) : std::string("-")) + " id=" + q(m.attr_or("id")) + label_note() +
                          ": " + irc::to_xmpp_text(e.text));
      out.to_room.push_back(std::move(m));
      break;
    }
    case K::Closed:
      lose_irc("the server closed the link: " + e.text, now_ms, out);
      return;
    default:
      break;
  }
}

void IrcGateway::puppet_event(const std::string& room_nick, const irc::Event& e, std::int64_t now_ms, IrcActions& out) {
  using K = irc::EventKind;
  if ((e.kind == K::Kicked || e.kind == K::Parted) && e.self && our_channel(e.channel)) {
    // A puppet out of the channel speaks for nobody: it quits, and comes back
    // after a while (a kick repeated is a retry every few seconds, no faster);
    // meanwhile its occupant's messages are refused back to them.
    auto it = puppets_.find(room_nick);
    if (it == puppets_.end()) return;
    Puppet& p = *it->second;
    p.client->quit("out of " + spec_.channel);
    for (std::string& l : p.client->take_output()) out.send.emplace_back(p.conn, std::move(l));
    out.close.push_back(p.conn);
    puppet_conns_.erase(p.conn);
    puppets_.erase(it);
    puppet_retry_at_[room_nick] = now_ms + std::max<std::int64_t>(spec_.retry_ms, 5000);
    out.events.push_back("IRC puppet of " + room_nick + (e.kind == K::Kicked ? " kicked from " : " parted from ") +
                         e.channel + (e.by.empty() ? std::string() : " by " + e.by) + ": reconnecting later");
    return;
  }
  if (e.kind == K::Message && e.private_message && !e.from_server && in_room_) {
    // An IRC user queries an occupant: a private message through the room.
    auto it = irc_users_.find(folded(e.nick));
    if (it == irc_users_.end()) return;   // only users of the channel reach the room's occupants
    Element m(std::string(xmpp::kNsServer), "message");
    m.set_attr("from", jid_ + "/" + it->second.room_nick);
    m.set_attr("to", room_ + "/" + room_nick);
    m.set_attr("type", "chat");
    m.set_attr("id", "irc-pm-" + std::to_string(++next_id_));
    const std::string text = irc::to_xmpp_text(e.text);
    m.add_child(std::string(xmpp::kNsServer), "body").add_text(e.action ? "/me " + text : text);
    set_fmuc_from(m, irc_jid(e.nick));
    label_from_irc(m);
    ++counters_.from_irc;
    out.audit.push_back("irc-in private from=" + q(irc::to_xmpp_text(e.nick)) + " as=" + q(irc_jid(e.nick)) + " to=" +
                        q(room_nick) + " id=" + q(m.attr_or("id")) + label_note() + ": " + text);
    out.to_room.push_back(std::move(m));
  } else if (e.kind == K::Registered) {
    // The JID <-> IRC nick pair, as the server gave it (a collision suffix included).
    auto j = occupant_jids_.find(room_nick);
    out.audit.push_back("irc-puppet room-nick=" + q(room_nick) + " jid=" + q(j == occupant_jids_.end() ? "?" : j->second) +
                        " irc-nick=" + q(e.nick) + " channel=" + spec_.channel);
  } else if (e.kind == K::CredentialsRejected || e.kind == K::NickUnavailable) {
    // Never retried with the same credentials or nicks: this occupant stays off IRC.
    no_puppet_.insert(room_nick);
    out.events.push_back("IRC puppet of " + room_nick + " refused (" + e.code + "): not retried");
  }
}

// ---- room -> IRC -----------------------------------------------------------------

void IrcGateway::occupant_available(const std::string& room_nick, std::int64_t now_ms, IrcActions& out) {
  occupants_.insert(room_nick);
  if (!main_joined_ || puppets_.count(room_nick) != 0 || no_puppet_.count(room_nick) != 0) return;
  if (auto r = puppet_retry_at_.find(room_nick); r != puppet_retry_at_.end()) {
    if (now_ms < r->second) return;
    puppet_retry_at_.erase(r);
  }
  if (puppets_.size() >= spec_.max_puppets) {
    if (over_cap_.insert(room_nick).second) {
      out.events.push_back("no IRC connection for " + room_nick + ": max-puppets (" + std::to_string(spec_.max_puppets) +
                           ") reached");
    }
    return;
  }
  over_cap_.erase(room_nick);
  irc::ClientConfig c;
  irc::NickRules rules;
  rules.max_len = spec_.max_nick_length;
  c.nick = irc::irc_nick_for(room_nick, rules);
  c.user = "xmpp";
  c.realname = irc::to_xmpp_text(room_nick);
  c.server_password = password_;
  c.nick_rules = rules;
  c.channels = {spec_.channel};
  c.pacing.burst = spec_.flood_burst;
  c.pacing.interval_ms = spec_.flood_interval_ms;
  c.max_lines_per_message = spec_.line_cap;
  c.max_channels = 1;
  c.max_members = 1;
  auto p = std::make_unique<Puppet>();
  p->room_nick = room_nick;
  p->conn = next_conn_++;
  if (next_conn_ >= 1'000'000'000) next_conn_ = 1;
  try {
    p->client = std::make_unique<irc::Client>(std::move(c));
  } catch (const std::exception& ex) {
    no_puppet_.insert(room_nick);
    out.events.push_back("no IRC connection for " + room_nick + ": " + ex.what());
    return;
  }
  p->open = true;
  puppet_conns_[p->conn] = room_nick;
  out.open.push_back(p->conn);
  puppets_.emplace(room_nick, std::move(p));
  (void)now_ms;
}

void IrcGateway::occupant_gone(const std::string& room_nick, IrcActions& out) {
  occupants_.erase(room_nick);
  occupant_jids_.erase(room_nick);
  over_cap_.erase(room_nick);
  no_puppet_.erase(room_nick);
  puppet_retry_at_.erase(room_nick);
  auto it = puppets_.find(room_nick);
  if (it == puppets_.end()) return;
  Puppet& p = *it->second;
  p.client->quit("left the room");
  for (std::string& l : p.client->take_output()) out.send.emplace_back(p.conn, std::move(l));
  out.close.push_back(p.conn);
  puppet_conns_.erase(p.conn);
  puppets_.erase(it);
}

std::string IrcGateway::flot(const std::string& marking, const std::string& text) {
  // The display marking leads the text (FLOT): IRC users see what they read.
  // With empty text: the lead the IRC client puts on every line.
  return marking.empty() ? text : "[" + marking + "] " + text;
}

std::string IrcGateway::marking_note(const std::string& marking) {
  return marking.empty() ? std::string() : " label=" + quoted(marking);
}

std::string IrcGateway::label_note() const {
  const std::string m = labels_->irc_marking();
  return m.empty() ? std::string() : " label=" + quoted(m);
}

std::string IrcGateway::jid_note(const Element& st, const std::string& nick) const {
  // The author's JID as the room gave it (a remote one is the boundary's pseudonym).
  std::string jid = read_fmuc(st).from;
  if (jid.empty()) {
    auto j = occupant_jids_.find(nick);
    if (j != occupant_jids_.end()) jid = j->second;
  }
  return jid.empty() ? std::string() : " jid=" + q(jid);
}

void IrcGateway::label_from_irc(Element& m) const {
  if (const Element* l = labels_->irc_label()) m.add_child(*l);
}

void IrcGateway::audit_refusal(const Element& st, const std::string& nick, const std::string& what,
                               const IrcLabelJudgement& j, IrcActions& out) const {
  out.audit.push_back("irc-refused " + what + " channel=" + spec_.channel + " from=" + q(nick) + jid_note(st, nick) +
                      " id=" + q(st.attr_or("id")) + " why=" + quoted(j.audit) + ": " + body_of(st));
}

void IrcGateway::refuse(const Element& st, const std::string& why, IrcNoteReason reason, IrcActions& out) {
  ++counters_.refused;
  if (!xmpp::may_bounce(st)) return;
  // Not a remote-server-* condition: the room must not take it for a lost link.
  Element e = xmpp::make_error_reply(st, {xmpp::StanzaErrorCondition::RecipientUnavailable, xmpp::StanzaErrorType::Wait,
                                          why, jid_, make_irc_note({reason, 0})});
  e.set_attr("type", "error");
  out.to_room.push_back(std::move(e));
}

void IrcGateway::warn(const Element& st, const std::string& why, int lines, IrcActions& out) {
  if (!xmpp::may_bounce(st)) return;
  Element e = xmpp::make_error_reply(st, {xmpp::StanzaErrorCondition::PolicyViolation, xmpp::StanzaErrorType::Continue,
                                          why, jid_, make_irc_note({IrcNoteReason::LineCap, lines})});
  e.set_attr("type", "error");
  out.to_room.push_back(std::move(e));
}

void IrcGateway::on_room(const Element& st, std::int64_t now_ms, IrcActions& out) {
  if (bare_of(st.attr_or("from")) != room_) return;
  const std::string nick = resource_of(st.attr_or("from"));
  const std::string type = st.attr_or("type");
  if (st.name() == "iq") {
    if (type == "get") {   // the room's ping (or anything): answer empty, as a node does
      Element r(st.ns(), "iq");
      r.set_attr("from", st.attr_or("to"));
      r.set_attr("to", st.attr_or("from"));
      r.set_attr("type", "result");
      r.set_attr("id", st.attr_or("id"));
      out.to_room.push_back(std::move(r));
    }
    return;
  }
  if (st.name() == "presence") {
    const FmucView f = read_fmuc(st);
    if (type == "error") {
      // The room refused one of our IRC users (a nick in use there): it gets
      // one more try under "nick|irc", then stays out.
      for (auto it = irc_users_.begin(); it != irc_users_.end(); ++it) {
        if (it->second.room_nick != nick) continue;
        const bool was_join = join_sent_ && !in_room_;
        IrcUser u = it->second;
        irc_users_.erase(it);
        if (was_join) join_sent_ = false;
        if (u.room_nick.find("|irc") == std::string::npos && !room_nick_taken(u.room_nick + "|irc", folded(u.nick))) {
          u.room_nick += "|irc";
          irc_users_.emplace(folded(u.nick), u);
          if (in_room_) {
            out.to_room.push_back(presence_for(u, true, false, {}));
          } else if (!join_sent_) {
            join_sent_ = true;
            out.to_room.push_back(presence_for(u, true, true, {}));
          }
          out.events.push_back("IRC user " + u.nick + ": nick taken in the room, trying " + u.room_nick);
        } else {
          out.events.push_back("IRC user " + u.nick + " cannot enter the room: " + nick + " is taken");
        }
        return;
      }
      return;
    }
    if (f.kind == FmucKind::Left || f.kind == FmucKind::Reject) {
      out.events.push_back(f.kind == FmucKind::Left ? "the IRC gateway left " + room_
                                                    : "the room refused the IRC gateway: " + f.reject_text);
      in_room_ = false;
      join_sent_ = false;
      drop_puppets("the room link closed", out);
      occupants_.clear();
      return;
    }
    if (nick.empty()) return;
    for (const auto& [k, u] : irc_users_) {
      if (u.room_nick == nick) return;   // one of ours, told back in the join answer
    }
    if (type == "unavailable") {
      occupant_gone(nick, out);
    } else if (type.empty()) {
      if (!f.from.empty()) occupant_jids_[nick] = f.from;
      occupant_available(nick, now_ms, out);
    }
    return;
  }
  if (st.name() != "message" || type == "error") return;
  const bool subject_only = st.find_child("subject", st.ns()) != nullptr && st.find_child("body", st.ns()) == nullptr;
  if (subject_only) {
    if (!in_room_ && join_sent_) {
      // The subject ends the join answer: the gateway is in the room; the
      // other IRC users follow.
      in_room_ = true;
      if (resuming_ && backfill_skipped_ != 0 && main_joined_ && main_) {
        main_->privmsg(spec_.channel, flot(labels_->irc_marking(), "(" + std::to_string(backfill_skipped_) +
                                          " more message(s) were said in the room while IRC was away)"));
        flush(0, *main_, now_ms, out);
      }
      if (resuming_ && backfill_refused_ != 0) {
        out.events.push_back(std::to_string(backfill_refused_) + " message(s) said while IRC was away were above "
                             "the link's clearance and stayed in the room");
      }
      resuming_ = false;
      out.events.push_back("IRC gateway is in " + room_ + " (" + std::to_string(irc_users_.size()) + " IRC user(s))");
      for (const auto& [k, u] : irc_users_) {
        if (k != join_key_) out.to_room.push_back(presence_for(u, true, false, {}));
      }
      return;
    }
    if (in_room_ && main_joined_ && main_ && !nick.empty()) {
      const Element* s = st.find_child("subject", st.ns());
      const IrcLabelJudgement j = labels_->judge(st);
      if (!j.send) {
        // IRC keeps its topic; the refusal is archived, and the room tells
        // the subject's author (it remembers the subject's relay id).
        audit_refusal(st, nick, "subject", j, out);
        refuse(st, "the subject was not set on IRC: " + j.why, IrcNoteReason::Label, out);
      } else {
        main_->topic(spec_.channel, flot(j.marking, s->text()));
        out.audit.push_back("irc-out topic channel=" + spec_.channel + " from=" + q(nick) + jid_note(st, nick) +
                            " id=" + q(st.attr_or("id")) + marking_note(j.marking) + ": " + s->text());
        flush(0, *main_, now_ms, out);
      }
    }
    return;
  }
  const std::string body = body_of(st);
  if (body.empty() || nick.empty()) return;
  if (type == "groupchat") {
    if (auto k = read_origin(st)) {
      last_by_ = k->by;
      last_id_ = k->id;
    }
  }
  if (st.find_child("delay", kNsDelay) != nullptr) {
    // History stays in the room; but what was said while IRC was away (the
    // backfill our rejoin asked for) goes to the channel, bounded, from the
    // gateway's own connection (the authors' puppets may not be back yet).
    if (!resuming_ || type != "groupchat" || !main_joined_ || !main_) return;
    const IrcLabelJudgement j = labels_->judge(st);
    if (!j.send) {
      // Said while IRC was away, and not for IRC: the archive says so (the
      // author was told nothing then, and is not now: it is history).
      ++backfill_refused_;
      audit_refusal(st, nick, "backfill", j, out);
      return;
    }
    if (backfilled_ >= kMaxBackfillLines) {
      ++backfill_skipped_;
      return;
    }
    ++backfilled_;
    const std::string line = "[" + nick + ", while IRC was away] " + body;
    const irc::SendResult r = main_->privmsg(spec_.channel, line, flot(j.marking, ""));
    out.audit.push_back("irc-out backfill channel=" + spec_.channel + " from=" + q(nick) + jid_note(st, nick) + " as=" +
                        q(main_->current_nick()) + " id=" + q(st.attr_or("id")) + " lines=" + std::to_string(r.lines) +
                        (r.truncated ? " truncated" : "") + marking_note(j.marking) + ": " + body);
    flush(0, *main_, now_ms, out);
    return;
  }
  const IrcLabelJudgement judged = labels_->judge(st);
  if (!judged.send) {
    // IRC carries no label: what the link is not cleared for stays in the room,
    // its author is told why, and the archive holds the decision.
    audit_refusal(st, nick, type == "groupchat" ? "channel" : "private", judged, out);
    refuse(st, judged.why, IrcNoteReason::Label, out);
    return;
  }
  auto p = puppets_.find(nick);
  if (!main_joined_ || p == puppets_.end()) {
    refuse(st, !main_joined_ ? "the IRC channel " + spec_.channel + " is not connected; your message did not reach it"
               : puppet_retry_at_.count(nick) != 0
                   ? "your IRC connection was closed or kicked from " + spec_.channel +
                         "; it comes back shortly; this message did not reach IRC"
               : std::string("no IRC connection for you (the gateway's max-puppets is reached)"),
           !main_joined_ || puppet_retry_at_.count(nick) != 0 ? IrcNoteReason::Away : IrcNoteReason::NoConnection, out);
    return;
  }
  std::string target = spec_.channel;
  if (type == "chat" || type == "normal" || type.empty()) {
    // A private message to an IRC user, through the room.
    const std::string to_nick = resource_of(st.attr_or("to"));
    target.clear();
    for (const auto& [k, u] : irc_users_) {
      if (u.room_nick == to_nick) target = u.nick;
    }
    if (target.empty()) {
      refuse(st, "no IRC user by that nick", IrcNoteReason::NoUser, out);
      return;
    }
  } else if (type != "groupchat") {
    return;
  }
  irc::Client& c = *p->second->client;
  const bool me = body.rfind("/me ", 0) == 0;
  const irc::SendResult r =
      me ? c.action(target, body.substr(4), flot(judged.marking, "")) : c.privmsg(target, body, flot(judged.marking, ""));
  if (!r.ok) {
    refuse(st, "not sent to IRC: " + r.error, IrcNoteReason::NotSent, out);
    return;
  }
  ++counters_.to_irc;
  {
    // One XMPP message, the N IRC lines it became (what the puppet will send).
    std::string rec = "irc-out " + std::string(target == spec_.channel ? "channel=" : "private to=") + q(target) +
                      " from=" + q(nick) + jid_note(st, nick) + " as=" + q(c.current_nick()) + " id=" + q(st.attr_or("id")) +
                      " lines=" + std::to_string(r.lines) + (r.truncated ? " truncated" : "") +
                      marking_note(judged.marking) + ": " + body;
    out.audit.push_back(std::move(rec));
  }
  if (r.truncated) {
    out.events.push_back("a message of " + nick + " was cut to " + std::to_string(r.lines) + " IRC line(s)");
    warn(st,
         "it was cut to " + std::to_string(r.lines) + " IRC line(s) (the link's line-cap is " +
             std::to_string(spec_.line_cap) + "); the rest did not reach IRC",
         static_cast<int>(r.lines), out);
  }
  flush(p->second->conn, c, now_ms, out);
}

void IrcGateway::tick(std::int64_t now_ms, IrcActions& out) {
  if (main_joined_ && !stable_ && now_ms - joined_at_ms_ >= 60000) stable_ = true;
  if (!main_open_ && !credentials_rejected_ && now_ms >= next_connect_ms_) {
    ++counters_.reconnects;
    connect_main(now_ms, out);
  }
  if (main_) flush(0, *main_, now_ms, out);
  for (auto& [n, p] : puppets_) flush(p->conn, *p->client, now_ms, out);
  // Puppets for occupants that arrived while IRC was away.
  if (main_joined_) {
    for (const std::string& n : std::set<std::string>(occupants_)) {
      if (puppets_.count(n) == 0) occupant_available(n, now_ms, out);
    }
  }
  if (join_sent_ && now_ms - last_ping_ms_ >= ping_interval_ms_) {
    // A downstream node keeps its link alive; the room answers.
    last_ping_ms_ = now_ms;
    Element ping(std::string(xmpp::kNsServer), "iq");
    ping.set_attr("from", jid_);
    ping.set_attr("to", room_);
    ping.set_attr("type", "get");
    ping.set_attr("id", "irc-ping-" + std::to_string(++next_id_));
    ping.add_child("urn:xmpp:ping", "ping");
    out.to_room.push_back(std::move(ping));
  }
}

void IrcGateway::shutdown(IrcActions& out) {
  drop_puppets("gateway shutting down", out);
  if (main_ && main_open_) {
    main_->quit("gateway shutting down");
    for (std::string& l : main_->take_output()) out.send.emplace_back(0, std::move(l));
    out.close.push_back(0);
  }
  main_open_ = false;
}

}  // namespace portcullis::rooms
