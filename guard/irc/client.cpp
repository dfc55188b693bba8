#include "guard/irc/client.h"

#include <sodium.h>

#include <algorithm>
#include <deque>
#include <map>
#include <stdexcept>
#include <utility>

#include "guard/irc/split.h"
#include "guard/irc/text.h"

namespace portcullis::irc {
namespace {

constexpr std::size_t kSaslChunk = 400;        // IRCv3 SASL: AUTHENTICATE payloads of at most 400 bytes
constexpr std::size_t kWorstHostBytes = 63;    // a host name label limit; used while our host is unknown
constexpr std::size_t kMaxChannelName = 200;   // RFC 1459
constexpr std::string_view kAnyChantypes = "#&+!";  // what a config may name before 005 is known

bool has_byte(std::string_view s, std::string_view set) { return s.find_first_of(set) != std::string_view::npos; }
bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }
bool has_crlfnul(std::string_view s) { return has_byte(s, std::string_view("\r\n\0", 3)); }

bool valid_channel_name(std::string_view s, std::string_view chantypes) {
  if (s.size() < 2 || s.size() > kMaxChannelName) return false;
  if (chantypes.find(s.front()) == std::string_view::npos) return false;
  return !has_byte(s, std::string_view(" ,:\x07\r\n\0", 8));
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::vector<std::string_view> split_on(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t end = s.find(sep, pos);
    if (end == std::string_view::npos) end = s.size();
    if (end > pos) out.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}


bool server_name_like(std::string_view s) {
  if (s.empty() || s.find('.') == std::string_view::npos || s.front() == '.' || s.back() == '.') return false;
  if (s.find("..") != std::string_view::npos) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '*' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// A QUIT reason of two server names ("hub.example.net leaf.example.net") is how
// servers announce users lost in a netsplit. Servers prefix ordinary quit
// messages ("Quit: ...", or quotes in ngIRCd), so a user cannot easily fake it.
bool looks_like_netsplit(std::string_view reason) {
  const std::size_t sp = reason.find(' ');
  if (sp == std::string_view::npos) return false;
  return server_name_like(reason.substr(0, sp)) && server_name_like(reason.substr(sp + 1));
}

// Outgoing text from XMPP: valid UTF-8, and no C0 control but TAB and LF, so
// nothing can end the line early, open a CTCP or carry formatting.
std::string outgoing_text(std::string_view text) {
  std::string valid = to_valid_utf8(text);
  std::string out;
  out.reserve(valid.size());
  for (char c : valid) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') continue;
    out += c;
  }
  return out;
}

std::string one_line(std::string_view text) {
  std::string out = outgoing_text(text);
  for (char& c : out) {
    if (c == '\n') c = ' ';
  }
  return out;
}

Message make(std::string command, std::vector<std::string> params, bool trailing = false) {
  Message m;
  m.command = std::move(command);
  m.params = std::move(params);
  m.trailing = trailing;
  return m;
}

}  // namespace

std::string check_config(const ClientConfig& c) {
  if (!is_valid_nick(c.nick, c.nick_rules)) return "nick is not a valid IRC nick within max_len";
  if (has_byte(c.user, std::string_view(" @\r\n\0", 5))) return "user has a space, '@', CR, LF or NUL";
  if (has_crlfnul(c.realname)) return "realname has CR, LF or NUL";
  if (has_crlfnul(c.server_password)) return "server password has CR, LF or NUL";
  if (!c.sasl_user.empty() && c.sasl_password.empty()) return "SASL user without a password";
  if (c.sasl_user.empty() && !c.sasl_password.empty()) return "SASL password without a user";
  if (has_nul(c.sasl_user) || has_nul(c.sasl_password)) return "SASL credentials have NUL";
  for (const auto& ch : c.channels) {
    if (!valid_channel_name(ch, kAnyChantypes)) return "invalid channel name: " + ch;
  }
  if (c.pacing.burst == 0) return "pacing burst is 0";
  if (c.pacing.interval_ms < 0) return "pacing interval is negative";
  if (c.max_queued_lines == 0 || c.max_lines_per_message == 0 || c.max_channels == 0 || c.max_members == 0) {
    return "a limit is 0";
  }
  return {};
}

struct Client::State {
  explicit State(ClientConfig c) : cfg(std::move(c)), bucket(cfg.pacing) {
    if (cfg.user.empty()) cfg.user = cfg.nick;
    if (cfg.realname.empty()) cfg.realname = cfg.nick;
    nick = cfg.nick;
  }

  enum class Sasl { Off, WaitLs, WaitAck, WaitPlus, WaitResult, Done };

  struct Channel {
    std::string name;
    std::string topic;
    std::map<std::string, Member> members;  // by folded nick
  };
  struct PendingNames {
    std::map<std::string, Member> members;
    std::vector<std::string> raw;
  };

  ClientConfig cfg;
  ClientState state = ClientState::Idle;
  Sasl sasl = Sasl::Off;
  bool sasl_offered = false;
  bool sasl_plain = false;
  unsigned attempts = 0;
  std::string nick;
  std::string pending_nick;
  std::string shown_user, shown_host;
  std::string account;
  bool quitting = false;
  ServerView view;
  LineReader reader;
  std::vector<std::string> out;
  std::deque<std::string> paced;
  TokenBucket bucket;
  std::map<std::string, Channel> chans;
  std::map<std::string, PendingNames> names;
  ClientCounters counters;

  std::string fold(std::string_view s) const { return nick_fold(s, view.casemapping); }
  bool is_me(std::string_view n) const { return nick_equal(n, nick, view.casemapping); }
  bool is_channel(std::string_view s) const {
    return !s.empty() && view.chantypes.find(s.front()) != std::string::npos;
  }
  Channel* chan(std::string_view name) {
    auto it = chans.find(fold(name));
    return it == chans.end() ? nullptr : &it->second;
  }

  void send_now(const Message& m) {
    std::string line = serialize(m);
    if (!line.empty()) out.push_back(std::move(line));
  }

  void close() {
    state = ClientState::Closed;
    paced.clear();
    names.clear();
  }

  void refuse_credentials(std::vector<Event>& ev, std::string code, std::string text) {
    Event e;
    e.kind = EventKind::CredentialsRejected;
    e.code = std::move(code);
    e.text = std::move(text);
    ev.push_back(std::move(e));
    send_now(make("QUIT", {}));
    close();
  }

  // --- our own prefix, as the others see it --------------------------------
  void learn_mask(std::string_view mask) {
    const std::size_t bang = mask.find('!'), at = mask.find('@');
    if (bang == std::string_view::npos || at == std::string_view::npos || at < bang) return;
    if (!is_me(mask.substr(0, bang))) return;
    shown_user = std::string(mask.substr(bang + 1, at - bang - 1));
    shown_host = std::string(mask.substr(at + 1));
  }

  std::string budget_prefix() const {
    const std::string user = shown_user.empty() ? "~" + cfg.user : shown_user;
    const std::string host = shown_host.empty() ? std::string(kWorstHostBytes, 'x') : shown_host;
    return nick + "!" + user + "@" + host;
  }

  // --- membership --------------------------------------------------------------
  void add_mode(Member& m, char mode) {
    if (m.modes.find(mode) != std::string::npos) return;
    m.modes += mode;
    const std::string& rank = view.prefix_modes;
    std::sort(m.modes.begin(), m.modes.end(), [&](char a, char b) { return rank.find(a) < rank.find(b); });
  }

  void add_member(Channel& c, std::string_view n) {
    const std::string key = fold(n);
    auto it = c.members.find(key);
    if (it != c.members.end()) {
      it->second.nick = std::string(n);
      return;
    }
    if (c.members.size() >= cfg.max_members) {
      ++counters.tracking_capped;
      return;
    }
    c.members.emplace(key, Member{std::string(n), {}});
  }

  // A NAMES entry: "@+nick" or, with userhost-in-names, "@nick!user@host".
  std::optional<Member> names_entry(std::string_view entry) {
    Member m;
    std::size_t i = 0;
    while (i < entry.size() && view.prefix_symbols.find(entry[i]) != std::string::npos) {
      add_mode(m, view.prefix_modes[view.prefix_symbols.find(entry[i])]);
      ++i;
    }
    std::string_view n = entry.substr(i);
    n = n.substr(0, n.find('!'));
    if (n.empty()) return std::nullopt;
    m.nick = std::string(n);
    return m;
  }

  void rekey() {
    std::map<std::string, Channel> again;
    for (auto& [key, c] : chans) {
      std::map<std::string, Member> members;
      for (auto& [k, m] : c.members) members.emplace(fold(m.nick), std::move(m));
      c.members = std::move(members);
      again.emplace(fold(c.name), std::move(c));
    }
    chans = std::move(again);
    names.clear();
  }

  // --- MODE --------------------------------------------------------------------
  // Applies the prefix modes among CHANGES to CHANNEL's members.
  void apply_member_modes(Channel& channel, const std::vector<ModeChange>& changes) {
    for (const ModeChange& mc : changes) {
      if (mc.param.empty() || view.prefix_modes.find(mc.mode) == std::string::npos) continue;
      auto it = channel.members.find(fold(mc.param));
      if (it == channel.members.end()) continue;
      if (mc.add) {
        add_mode(it->second, mc.mode);
      } else {
        auto& ms = it->second.modes;
        ms.erase(std::remove(ms.begin(), ms.end(), mc.mode), ms.end());
      }
    }
  }

  // --- registration ------------------------------------------------------------
  void sasl_payload() {
    std::string plain;
    plain += cfg.sasl_user;  // authzid = authcid, as most clients send it
    plain += '\0';
    plain += cfg.sasl_user;
    plain += '\0';
    plain += cfg.sasl_password;
    std::string b64(sodium_base64_ENCODED_LEN(plain.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    b64.resize(b64.find('\0'));
    sodium_memzero(plain.data(), plain.size());
    for (std::size_t pos = 0; pos < b64.size(); pos += kSaslChunk) {
      send_now(make("AUTHENTICATE", {b64.substr(pos, kSaslChunk)}));
    }
    if (b64.size() % kSaslChunk == 0) send_now(make("AUTHENTICATE", {"+"}));
    sodium_memzero(b64.data(), b64.size());
  }

  void cap(const Message& m, std::vector<Event>& ev) {
    if (m.params.size() < 3) {
      ++counters.ignored;
      return;
    }
    const std::string sub = upper(m.params[1]);
    if (sub == "LS" && sasl == Sasl::WaitLs) {
      const bool more = m.params.size() >= 4 && m.params[2] == "*";
      for (std::string_view c : split_on(m.params.back(), ' ')) {
        const std::size_t eq = c.find('=');
        if (c.substr(0, eq) != "sasl") continue;
        sasl_offered = true;
        if (eq == std::string_view::npos) {
          sasl_plain = true;  // no mechanism list: try PLAIN, the server says 904/908 if not
        } else {
          for (std::string_view mech : split_on(c.substr(eq + 1), ',')) sasl_plain = sasl_plain || upper(mech) == "PLAIN";
        }
      }
      if (more) return;
      if (!sasl_offered || !sasl_plain) {
        refuse_credentials(ev, "no-sasl", "the server offers no SASL PLAIN");
        return;
      }
      send_now(make("CAP", {"REQ", "sasl"}, true));
      sasl = Sasl::WaitAck;
    } else if (sub == "ACK" && sasl == Sasl::WaitAck) {
      const auto caps = split_on(m.params.back(), ' ');
      if (std::find(caps.begin(), caps.end(), std::string_view("sasl")) == caps.end()) return;
      send_now(make("AUTHENTICATE", {"PLAIN"}));
      sasl = Sasl::WaitPlus;
    } else if (sub == "NAK" && sasl == Sasl::WaitAck) {
      refuse_credentials(ev, "no-sasl", "the server refused the sasl capability");
    }
  }

  void joins_after_welcome() {
    // The configured channels go first, batched into as few JOINs as fit.
    std::vector<std::string> lines;
    std::string list;
    for (const auto& c : cfg.channels) {
      if (!list.empty() && list.size() + 1 + c.size() > kMaxBodyBytes - 10) {
        lines.push_back(serialize(make("JOIN", {list})));
        list.clear();
      }
      if (!list.empty()) list += ',';
      list += c;
    }
    if (!list.empty()) lines.push_back(serialize(make("JOIN", {list})));
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      if (!it->empty()) paced.push_front(*it);
    }
  }

  void nick_refused(const Message& m, std::vector<Event>& ev) {
    if (state == ClientState::Registering) {
      if (++attempts > cfg.max_nick_attempts) {
        Event e;
        e.kind = EventKind::NickUnavailable;
        e.nick = cfg.nick;
        e.code = m.command;
        ev.push_back(std::move(e));
        send_now(make("QUIT", {}));
        close();
        return;
      }
      nick = with_suffix(cfg.nick, attempts, cfg.nick_rules);
      send_now(make("NICK", {nick}));
      return;
    }
    if (m.params.size() < 2) {
      ++counters.ignored;
      return;
    }
    Event e;
    e.code = m.command;
    e.text = m.params.back();
    if (m.command == "437" && is_channel(m.params[1])) {
      e.kind = EventKind::JoinRefused;
      e.channel = m.params[1];
    } else {
      e.kind = EventKind::NickRejected;
      e.nick = nick;
      e.new_nick = m.params[1];
      pending_nick.clear();
    }
    ev.push_back(std::move(e));
  }

  void numeric(const Message& m, std::vector<Event>& ev) {
    const std::string& c = m.command;
    const auto need = [&](std::size_t n) {
      if (m.params.size() >= n) return true;
      ++counters.ignored;
      return false;
    };
    if (c == "001") {
      if (state != ClientState::Registering) return;  // a second welcome changes nothing (and queues no JOINs)
      if (sasl != Sasl::Off && sasl != Sasl::Done) {
        refuse_credentials(ev, "no-sasl", "the server registered us without SASL");
        return;
      }
      if (!m.params.empty() && !m.params[0].empty() && m.params[0] != "*") nick = m.params[0];
      if (!m.params.empty()) {
        const std::string& welcome = m.params.back();
        learn_mask(std::string_view(welcome).substr(welcome.rfind(' ') == std::string::npos ? 0 : welcome.rfind(' ') + 1));
      }
      state = ClientState::Registered;
      joins_after_welcome();
      Event e;
      e.kind = EventKind::Registered;
      e.nick = nick;
      e.self = true;
      ev.push_back(std::move(e));
    } else if (c == "005") {
      if (need(2) && apply_isupport(view, m)) rekey();
    } else if (c == "900") {
      if (!need(3)) return;
      learn_mask(m.params[1]);
      account = m.params[2];
      Event e;
      e.kind = EventKind::LoggedIn;
      e.text = account;
      e.self = true;
      ev.push_back(std::move(e));
    } else if (c == "903") {
      if (sasl == Sasl::WaitResult) {
        sasl = Sasl::Done;
        send_now(make("CAP", {"END"}));
      }
    } else if (c == "902" || c == "904" || c == "905" || c == "906") {
      if (sasl != Sasl::Off && sasl != Sasl::Done) {
        refuse_credentials(ev, c, m.params.empty() ? std::string() : m.params.back());
      }
    } else if (c == "464" || c == "465") {
      refuse_credentials(ev, c, m.params.empty() ? std::string() : m.params.back());
    } else if (c == "432" || c == "433" || c == "436" || c == "437") {
      nick_refused(m, ev);
    } else if (c == "331" || c == "332") {
      if (!need(2)) return;
      Event e;
      e.kind = EventKind::Topic;
      e.channel = m.params[1];
      e.text = c == "332" && m.params.size() >= 3 ? m.params[2] : std::string();
      if (Channel* ch = chan(e.channel)) ch->topic = e.text;
      ev.push_back(std::move(e));
    } else if (c == "333") {
      if (!need(4)) return;
      Event e;
      e.kind = EventKind::TopicSetBy;
      e.channel = m.params[1];
      e.by = m.params[2];
      e.time = static_cast<std::int64_t>(small_number(m.params[3], 12).value_or(0));
      ev.push_back(std::move(e));
    } else if (c == "353") {
      if (!need(3)) return;
      const std::string key = fold(m.params[m.params.size() - 2]);
      auto it = names.find(key);
      if (it == names.end()) {
        if (names.size() >= cfg.max_channels) {
          ++counters.tracking_capped;
          return;
        }
        it = names.emplace(key, PendingNames{}).first;
      }
      for (std::string_view entry : split_on(m.params.back(), ' ')) {
        auto member = names_entry(entry);
        if (!member) continue;
        if (it->second.raw.size() >= cfg.max_members) {
          ++counters.tracking_capped;
          break;
        }
        it->second.raw.emplace_back(entry);
        it->second.members[fold(member->nick)] = std::move(*member);
      }
    } else if (c == "366") {
      if (!need(2)) return;
      Event e;
      e.kind = EventKind::Names;
      e.channel = m.params[1];
      auto it = names.find(fold(e.channel));
      if (it != names.end()) {
        if (Channel* ch = chan(e.channel)) ch->members = it->second.members;
        e.names = std::move(it->second.raw);
        names.erase(it);
      }
      ev.push_back(std::move(e));
    } else if (c == "396") {
      if (need(2) && m.params[1].find_first_of(" \r\n") == std::string::npos) shown_host = m.params[1];
    } else if (c == "324") {
      if (!need(3)) return;
      Event e;
      e.kind = EventKind::Mode;
      e.channel = m.params[1];
      e.modes = parse_modes(view, m.params, 2, true);
      ev.push_back(std::move(e));
    } else if (c == "401" || c == "404") {
      if (!need(2)) return;
      Event e;
      e.kind = EventKind::SendRefused;
      e.code = c;
      (is_channel(m.params[1]) ? e.channel : e.nick) = m.params[1];
      e.text = m.params.back();
      ev.push_back(std::move(e));
    } else if (c == "403" || c == "405" || c == "471" || c == "473" || c == "474" || c == "475" || c == "476" ||
               c == "477" || c == "489") {
      if (!need(2)) return;
      Event e;
      e.kind = EventKind::JoinRefused;
      e.code = c;
      e.channel = m.params[1];
      e.text = m.params.back();
      ev.push_back(std::move(e));
    } else if (c[0] == '4' || c[0] == '5') {
      Event e;
      e.kind = EventKind::Refused;
      e.code = c;
      if (m.params.size() >= 3 && is_channel(m.params[1])) e.channel = m.params[1];
      if (!m.params.empty()) e.text = m.params.back();
      ev.push_back(std::move(e));
    }
  }

  // --- channel and user traffic ------------------------------------------------
  void message(const Message& m, std::vector<Event>& ev) {
    if (m.params.size() < 2) {
      ++counters.ignored;
      return;
    }
    Event e;
    const bool is_notice = m.command == "NOTICE";
    e.kind = is_notice ? EventKind::Notice : EventKind::Message;
    e.nick = m.nick();
    e.from_server = m.from_server();
    e.self = !e.from_server && is_me(e.nick);
    if (is_channel(m.params[0])) {
      e.channel = m.params[0];
    } else {
      e.private_message = true;
    }
    e.text = m.params[1];
    std::string cmd, args;
    if (parse_ctcp(e.text, &cmd, &args)) {
      if (cmd == "ACTION") {
        e.action = true;
        e.text = std::move(args);
      } else {
        e.kind = EventKind::Ctcp;
        e.notice = is_notice;
        e.ctcp_command = std::move(cmd);
        e.text = std::move(args);
      }
    }
    ev.push_back(std::move(e));
  }

  void join(const Message& m, std::vector<Event>& ev) {
    if (m.params.empty()) {
      ++counters.ignored;
      return;
    }
    const std::string who = m.nick();
    const bool self = is_me(who);
    for (std::string_view name : split_on(m.params[0], ',')) {
      Channel* ch = chan(name);
      if (self && !ch) {
        if (chans.size() >= cfg.max_channels) {
          ++counters.tracking_capped;
        } else {
          ch = &chans[fold(name)];
          ch->name = std::string(name);
        }
      }
      if (ch) add_member(*ch, who);
      Event e;
      e.kind = EventKind::Joined;
      e.channel = std::string(name);
      e.nick = who;
      e.self = self;
      ev.push_back(std::move(e));
    }
  }

  void part(const Message& m, std::vector<Event>& ev) {
    if (m.params.empty()) {
      ++counters.ignored;
      return;
    }
    const std::string who = m.nick();
    const bool self = is_me(who);
    for (std::string_view name : split_on(m.params[0], ',')) {
      if (self) {
        chans.erase(fold(name));
      } else if (Channel* ch = chan(name)) {
        ch->members.erase(fold(who));
      }
      Event e;
      e.kind = EventKind::Parted;
      e.channel = std::string(name);
      e.nick = who;
      e.self = self;
      if (m.params.size() >= 2) e.text = m.params[1];
      ev.push_back(std::move(e));
    }
  }

  void kick(const Message& m, std::vector<Event>& ev) {
    if (m.params.size() < 2) {
      ++counters.ignored;
      return;
    }
    Event e;
    e.kind = EventKind::Kicked;
    e.channel = m.params[0];
    e.nick = m.params[1];
    e.by = m.nick();
    e.self = is_me(e.nick);
    if (m.params.size() >= 3) e.text = m.params[2];
    if (e.self) {
      chans.erase(fold(e.channel));
    } else if (Channel* ch = chan(e.channel)) {
      ch->members.erase(fold(e.nick));
    }
    ev.push_back(std::move(e));
  }

  void quit_of(const Message& m, std::vector<Event>& ev) {
    Event e;
    e.kind = EventKind::Quit;
    e.nick = m.nick();
    e.self = is_me(e.nick);
    if (!m.params.empty()) e.text = m.params[0];
    e.netsplit = looks_like_netsplit(e.text);
    const std::string key = fold(e.nick);
    for (auto& [k, ch] : chans) {
      if (ch.members.erase(key) > 0) e.channels.push_back(ch.name);
    }
    ev.push_back(std::move(e));
  }

  void nick_change(const Message& m, std::vector<Event>& ev) {
    if (m.params.empty() || m.params[0].empty()) {
      ++counters.ignored;
      return;
    }
    Event e;
    e.kind = EventKind::NickChanged;
    e.nick = m.nick();
    e.new_nick = m.params[0];
    e.self = is_me(e.nick);
    const std::string old_key = fold(e.nick);
    for (auto& [k, ch] : chans) {
      auto it = ch.members.find(old_key);
      if (it == ch.members.end()) continue;
      Member member = std::move(it->second);
      ch.members.erase(it);
      member.nick = e.new_nick;
      ch.members[fold(e.new_nick)] = std::move(member);
      e.channels.push_back(ch.name);
    }
    if (e.self) {
      nick = e.new_nick;
      pending_nick.clear();
    }
    ev.push_back(std::move(e));
  }

  void topic_change(const Message& m, std::vector<Event>& ev) {
    if (m.params.empty()) {
      ++counters.ignored;
      return;
    }
    Event e;
    e.kind = EventKind::Topic;
    e.channel = m.params[0];
    e.by = m.nick();
    if (m.params.size() >= 2) e.text = m.params[1];
    if (Channel* ch = chan(e.channel)) ch->topic = e.text;
    ev.push_back(std::move(e));
  }

  void mode(const Message& m, std::vector<Event>& ev) {
    if (m.params.size() < 2) {
      ++counters.ignored;
      return;
    }
    Event e;
    e.kind = EventKind::Mode;
    e.by = m.nick();
    if (is_channel(m.params[0])) {
      e.channel = m.params[0];
      e.modes = parse_modes(view, m.params, 1, true);
      if (Channel* ch = chan(e.channel)) apply_member_modes(*ch, e.modes);
    } else {
      e.nick = m.params[0];
      e.self = is_me(e.nick);
      e.modes = parse_modes(view, m.params, 1, false);
    }
    ev.push_back(std::move(e));
  }

  // --- sending -----------------------------------------------------------------
  bool valid_target(std::string_view t) const {
    if (valid_channel_name(t, view.chantypes)) return true;
    return is_valid_nick(t, NickRules{std::max(view.nicklen, cfg.nick_rules.max_len)});
  }

  SendResult refuse(std::string why) {
    ++counters.sends_refused;
    SendResult r;
    r.error = std::move(why);
    return r;
  }

  std::optional<std::string> closed_reason() const {
    if (state == ClientState::Closed) return std::string("connection closed");
    if (quitting) return std::string("QUIT already queued");
    return std::nullopt;
  }

  SendResult queue(std::vector<Message> lines, bool truncated) {
    if (paced.size() + lines.size() > cfg.max_queued_lines) return refuse("send queue full");
    std::vector<std::string> wire;
    for (const Message& m : lines) {
      std::string error;
      std::string line = serialize(m, &error);
      if (line.empty()) return refuse(error);
      wire.push_back(std::move(line));
    }
    for (auto& l : wire) paced.push_back(std::move(l));
    SendResult r;
    r.ok = true;
    r.lines = lines.size();
    r.truncated = truncated;
    return r;
  }

  SendResult text(std::string_view command, std::string_view target, std::string_view body, bool is_action,
                  std::string_view lead = {}) {
    if (auto why = closed_reason()) return refuse(*why);
    if (!valid_target(target)) return refuse("invalid target");
    std::size_t budget = payload_budget(budget_prefix(), command, target);
    if (is_action) budget = budget > kActionOverhead ? budget - kActionOverhead : 0;
    const std::string lead_text = one_line(lead);
    budget = budget > lead_text.size() + 16 ? budget - lead_text.size() : 0;
    const Split split = split_text(outgoing_text(body), budget, cfg.max_lines_per_message);
    if (split.lines.empty()) return refuse(split.truncated ? "text does not fit a line" : "empty text");
    std::vector<Message> lines;
    for (const auto& l0 : split.lines) {
      const std::string l = lead_text + l0;   // every line leads with it (a marking is on each line IRC shows)
      lines.push_back(make(std::string(command), {std::string(target), is_action ? make_action(l) : l}, true));
    }
    return queue(std::move(lines), split.truncated);
  }

  // TEXT on one line, cut to BUDGET (and LIMIT when not 0) bytes.
  static std::pair<std::string, bool> cut_line(std::string_view text, std::size_t budget, std::size_t limit) {
    const std::string flat = one_line(text);
    if (limit != 0) budget = std::min(budget, limit);
    const Split s = split_text(flat, budget, 1);
    return {s.lines.empty() ? std::string() : s.lines.front(), s.truncated};
  }
};

Client::Client(ClientConfig config) {
  const std::string why = check_config(config);
  if (!why.empty()) throw std::invalid_argument("IRC client config: " + why);
  s_ = std::make_unique<State>(std::move(config));
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

std::vector<std::string> Client::start() {
  if (s_->state != ClientState::Idle) return {};
  s_->state = ClientState::Registering;
  if (!s_->cfg.sasl_user.empty()) {
    s_->sasl = State::Sasl::WaitLs;
    s_->send_now(make("CAP", {"LS", "302"}));
  }
  if (!s_->cfg.server_password.empty()) s_->send_now(make("PASS", {s_->cfg.server_password}));
  s_->send_now(make("NICK", {s_->cfg.nick}));
  s_->send_now(make("USER", {s_->cfg.user, "0", "*", s_->cfg.realname}, true));
  return take_output();
}

std::vector<Event> Client::on_line(const Message& m) {
  std::vector<Event> ev;
  ++s_->counters.lines_in;
  if (s_->state == ClientState::Closed) return ev;
  State& s = *s_;
  if (m.prefix.find('!') != std::string::npos) s.learn_mask(m.prefix);
  const std::string& c = m.command;
  if (c.size() == 3 && c[0] >= '0' && c[0] <= '9') {
    s.numeric(m, ev);
  } else if (c == "PING") {
    s.send_now(m.params.empty() ? make("PONG", {}) : make("PONG", {m.params.back()}, true));
  } else if (c == "ERROR") {
    Event e;
    e.kind = EventKind::Closed;
    if (!m.params.empty()) e.text = m.params.back();
    ev.push_back(std::move(e));
    s.close();
  } else if (c == "CAP") {
    s.cap(m, ev);
  } else if (c == "AUTHENTICATE") {
    if (s.sasl != State::Sasl::WaitPlus) return ev;
    if (!m.params.empty() && m.params[0] == "+") {
      s.sasl_payload();
      s.sasl = State::Sasl::WaitResult;
    } else {
      s.send_now(make("AUTHENTICATE", {"*"}));
      s.refuse_credentials(ev, "no-sasl", "unexpected SASL PLAIN challenge");
    }
  } else if (c == "PRIVMSG" || c == "NOTICE") {
    s.message(m, ev);
  } else if (c == "JOIN") {
    s.join(m, ev);
  } else if (c == "PART") {
    s.part(m, ev);
  } else if (c == "KICK") {
    s.kick(m, ev);
  } else if (c == "QUIT") {
    s.quit_of(m, ev);
  } else if (c == "NICK") {
    s.nick_change(m, ev);
  } else if (c == "TOPIC") {
    s.topic_change(m, ev);
  } else if (c == "MODE") {
    s.mode(m, ev);
  }
  return ev;
}

std::vector<Event> Client::feed(std::string_view bytes) {
  std::vector<Event> all;
  s_->reader.feed(bytes);
  while (auto line = s_->reader.next()) {
    std::string error;
    auto m = parse_line(*line, &error);
    if (!m) {
      ++s_->counters.malformed;
      continue;
    }
    auto ev = on_line(*m);
    for (auto& e : ev) all.push_back(std::move(e));
  }
  return all;
}

std::vector<std::string> Client::take_output() { return std::exchange(s_->out, {}); }

std::vector<std::string> Client::due(std::int64_t now_ms) {
  std::vector<std::string> lines;
  if (s_->state != ClientState::Registered) return lines;
  while (!s_->paced.empty() && s_->bucket.take(now_ms)) {
    lines.push_back(std::move(s_->paced.front()));
    s_->paced.pop_front();
  }
  return lines;
}

std::optional<std::int64_t> Client::next_due_ms(std::int64_t now_ms) {
  if (s_->state != ClientState::Registered || s_->paced.empty()) return std::nullopt;
  return s_->bucket.next_token_ms(now_ms);
}

std::size_t Client::queued() const { return s_->paced.size(); }

SendResult Client::privmsg(std::string_view target, std::string_view text, std::string_view lead) {
  return s_->text("PRIVMSG", target, text, false, lead);
}
SendResult Client::notice(std::string_view target, std::string_view text) {
  return s_->text("NOTICE", target, text, false);
}
SendResult Client::action(std::string_view target, std::string_view text, std::string_view lead) {
  return s_->text("PRIVMSG", target, text, true, lead);
}

SendResult Client::join(std::string_view channel, std::string_view key) {
  if (auto why = s_->closed_reason()) return s_->refuse(*why);
  if (!valid_channel_name(channel, s_->view.chantypes)) return s_->refuse("invalid channel name");
  std::vector<std::string> params{std::string(channel)};
  if (!key.empty()) {
    if (has_byte(key, std::string_view(" ,\r\n\0", 5)) || key.front() == ':') return s_->refuse("invalid channel key");
    params.emplace_back(key);
  }
  return s_->queue({make("JOIN", std::move(params))}, false);
}

SendResult Client::part(std::string_view channel, std::string_view reason) {
  if (auto why = s_->closed_reason()) return s_->refuse(*why);
  if (!valid_channel_name(channel, s_->view.chantypes)) return s_->refuse("invalid channel name");
  auto [line, cut] = State::cut_line(reason, text_budget("PART", channel), 0);
  std::vector<std::string> params{std::string(channel)};
  const bool has_reason = !line.empty();
  if (has_reason) params.push_back(std::move(line));
  return s_->queue({make("PART", std::move(params), has_reason)}, cut);
}

SendResult Client::topic(std::string_view channel, std::string_view text) {
  if (auto why = s_->closed_reason()) return s_->refuse(*why);
  if (!valid_channel_name(channel, s_->view.chantypes)) return s_->refuse("invalid channel name");
  auto [line, cut] = State::cut_line(text, text_budget("TOPIC", channel), s_->view.topiclen);
  if (line.empty() && !one_line(text).empty()) return s_->refuse("topic does not fit a line");
  return s_->queue({make("TOPIC", {std::string(channel), std::move(line)}, true)}, cut);
}

SendResult Client::nick(std::string_view new_nick) {
  if (auto why = s_->closed_reason()) return s_->refuse(*why);
  if (!is_valid_nick(new_nick, NickRules{s_->view.nicklen})) return s_->refuse("invalid nick");
  SendResult r = s_->queue({make("NICK", {std::string(new_nick)})}, false);
  if (r.ok) s_->pending_nick = std::string(new_nick);
  return r;
}

SendResult Client::quit(std::string_view reason) {
  if (auto why = s_->closed_reason()) return s_->refuse(*why);
  auto [line, cut] = State::cut_line(reason, text_budget("QUIT", ""), 0);
  s_->counters.dropped_at_quit += s_->paced.size();
  s_->paced.clear();
  s_->send_now(line.empty() ? make("QUIT", {}) : make("QUIT", {std::move(line)}, true));
  s_->quitting = true;
  SendResult r;
  r.ok = true;
  r.lines = 1;
  r.truncated = cut;
  return r;
}

ClientState Client::state() const { return s_->state; }
const std::string& Client::current_nick() const { return s_->nick; }
std::string Client::self_prefix() const {
  if (s_->shown_user.empty() || s_->shown_host.empty()) return {};
  return s_->nick + "!" + s_->shown_user + "@" + s_->shown_host;
}
const std::string& Client::account() const { return s_->account; }
const ServerView& Client::server() const { return s_->view; }

std::vector<std::string> Client::channels() const {
  std::vector<std::string> out;
  for (const auto& [k, c] : s_->chans) out.push_back(c.name);
  return out;
}

std::vector<Member> Client::members(std::string_view channel) const {
  std::vector<Member> out;
  auto it = s_->chans.find(s_->fold(channel));
  if (it == s_->chans.end()) return out;
  for (const auto& [k, m] : it->second.members) out.push_back(m);
  return out;
}

std::string Client::channel_topic(std::string_view channel) const {
  auto it = s_->chans.find(s_->fold(channel));
  return it == s_->chans.end() ? std::string() : it->second.topic;
}

std::size_t Client::text_budget(std::string_view command, std::string_view target) const {
  return payload_budget(s_->budget_prefix(), command, target);
}

const ClientCounters& Client::counters() const { return s_->counters; }
std::size_t Client::overlong_lines() const { return s_->reader.overlong(); }

}  // namespace portcullis::irc
