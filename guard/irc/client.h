// One IRC client connection as a sans-IO state machine: the caller owns the
// socket and the clock, feeds what the server sent and writes what the client
// returns. No sockets, threads or timers inside; every call returns at once.
//
//   Client c(config);
//   write(c.start());                        // CAP LS 302 / PASS / NICK / USER
//   for each chunk read:  handle(c.feed(chunk)); write(c.take_output());
//   at any time:          write(c.due(now_ms));   // paced lines (JOIN, PRIVMSG, ...)
//                         arm a timer for c.next_due_ms(now_ms)
//
// Two output paths:
//  - take_output(): protocol lines that must go at once (registration, CAP and
//    AUTHENTICATE, PONG, QUIT). Not paced.
//  - due(now_ms): every other line the caller asked for (privmsg, action, notice,
//    join, part, topic, nick) and the configured JOINs, in the order asked, under
//    a token bucket (guard/irc/pacing.h), and only once registered.
//
// Authentication fails closed: with SASL configured, the client never completes
// registration without a 903; any refusal of the credentials (464, 465, 902,
// 904, 905, 906, a server without SASL PLAIN) yields CredentialsRejected, a QUIT
// in take_output() and state Closed. The caller must not reconnect with the same
// credentials after CredentialsRejected (the server may lock the account).
//
// Every string in an Event is IRC octets exactly as the server sent them (so it
// can address the server again); the bridge must pass text, nicks and channel
// names through to_xmpp_text (guard/irc/text.h) before they go into a stanza.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guard/irc/message.h"
#include "guard/irc/nick.h"
#include "guard/irc/pacing.h"
#include "guard/irc/server_view.h"

namespace portcullis::irc {

struct ClientConfig {
  std::string nick;                     // wanted nick: is_valid_nick under nick_rules
  std::string user;                     // USER's username; empty: the nick
  std::string realname;                 // USER's realname; empty: the nick
  std::string server_password;          // sent as PASS first; empty: no PASS
  std::string sasl_user;                // SASL PLAIN authentication identity; empty: no SASL
  std::string sasl_password;            // required with sasl_user
  NickRules nick_rules;
  unsigned max_nick_attempts = 9;       // during registration, suffixes 1..N after 432/433/436/437
  std::vector<std::string> channels;    // joined once registered (001)
  PacingRules pacing;
  std::size_t max_queued_lines = 256;   // paced lines waiting; a send that would overflow is refused whole
  std::size_t max_lines_per_message = 5;  // an XMPP body becomes at most this many lines
  std::size_t max_channels = 64;        // channels whose membership is tracked
  std::size_t max_members = 4096;       // members tracked per channel
};

// Why CONFIG cannot be used, or an empty string when it can: an invalid nick; a
// user with a space, '@', CR, LF or NUL; a realname or password with CR, LF or
// NUL; a SASL identity without a password or either with NUL; an invalid channel
// name; a burst of 0, a negative interval, or a limit of 0.
std::string check_config(const ClientConfig& config);

enum class EventKind {
  Registered,           // 001: nick is the nick the server gave us
  LoggedIn,             // 900: text is the account name
  CredentialsRejected,  // code: "464", "465", "902", "904", "905", "906" or "no-sasl"; text: the server's words
  NickUnavailable,      // registration: every nick attempt was refused; QUIT sent, state Closed
  NickChanged,          // nick -> new_nick; self; channels: where it was seen
  NickRejected,         // after registration, our NICK new_nick was refused (code 432/433/436/437)
  Joined,               // nick joined channel (self: we did)
  JoinRefused,          // our JOIN of channel was refused (code 403/405/437/471/473-477/489)
  Parted,               // nick left channel, text: reason
  Kicked,               // nick was kicked from channel by `by`, text: reason (self: we were)
  Quit,                 // nick quit, text: reason, netsplit, channels: the channels it was in
  Names,                // end of NAMES for channel (366); names: the members with their prefixes
  Topic,                // channel topic is text (332, or TOPIC by `by`; 331: empty)
  TopicSetBy,           // 333: topic of channel set by `by` at `time` (Unix seconds)
  Message,              // PRIVMSG from nick to channel, or to us (private_message); action for /me
  Notice,               // NOTICE, same fields as Message; from_server for server notices
  Ctcp,                 // a CTCP other than ACTION: ctcp_command, text = arguments; notice for replies
  Mode,                 // MODE on channel (or on us: channel empty) by `by`, modes parsed; 324 too
  SendRefused,          // our PRIVMSG/NOTICE to channel (or nick) was refused (401, 404)
  Refused,              // another error numeric (400-599) about one of our commands: code, text, channel
  Closed,               // ERROR from the server: text; state Closed
};

struct Event {
  EventKind kind{};
  std::string channel;       // the channel concerned, or empty
  std::string nick;          // who the event is about (joiner, quitter, sender, kicked, old nick)
  std::string new_nick;      // NickChanged, NickRejected
  std::string by;            // Kicked: kicker; Topic/TopicSetBy: setter; Mode: setter
  std::string text;          // message text (CTCP ACTION unwrapped), reason, topic
  std::string code;          // numeric of a refusal
  std::string ctcp_command;  // Ctcp
  std::int64_t time = 0;     // TopicSetBy
  bool self = false;         // the event is about this client itself
  bool action = false;       // Message/Notice: a /me (CTCP ACTION)
  bool private_message = false;  // Message/Notice/Ctcp: addressed to us, not a channel
  bool notice = false;       // Ctcp: carried by NOTICE (a reply)
  bool from_server = false;  // the source is a server, not a user
  bool netsplit = false;     // Quit: the reason is two server names ("a.b c.d")
  std::vector<std::string> channels;  // Quit, NickChanged
  std::vector<std::string> names;     // Names: "@nick", "+nick", "nick" as the server listed them
  std::vector<ModeChange> modes;      // Mode
};

enum class ClientState { Idle, Registering, Registered, Closed };

struct Member {
  std::string nick;
  std::string modes;  // prefix modes held ("o", "v", "ov"), in PREFIX rank order

  bool operator==(const Member&) const = default;
};

// The outcome of a send method: lines queued (0 when refused), whether text was
// cut (more than max_lines_per_message, or longer than a single-line command
// allows), and why a send was refused.
struct SendResult {
  bool ok = false;
  std::size_t lines = 0;
  bool truncated = false;
  std::string error;
};

struct ClientCounters {
  std::uint64_t lines_in = 0;      // lines handled by on_line
  std::uint64_t malformed = 0;     // lines feed() could not parse (dropped)
  std::uint64_t ignored = 0;       // lines with too few parameters for their command (dropped)
  std::uint64_t sends_refused = 0;
  std::uint64_t tracking_capped = 0;  // channels or members not tracked (max_channels, max_members)
  std::uint64_t dropped_at_quit = 0;  // paced lines still queued when quit() was called
};

class Client {
 public:
  // Throws std::invalid_argument with check_config's reason (control plane).
  explicit Client(ClientConfig config);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  // The first lines to send: CAP LS 302 (with SASL), PASS, NICK, USER. Only the
  // first call returns lines; later calls return nothing.
  std::vector<std::string> start();

  // One message from the server. Returns what it means; lines to send in
  // reply wait in take_output(). Never throws on what the server sends.
  std::vector<Event> on_line(const Message& message);
  // Bytes from the server: split (LineReader), parsed, handled as on_line.
  std::vector<Event> feed(std::string_view bytes);

  // The unpaced lines to send now (each ending in CR LF), emptied by the call.
  std::vector<std::string> take_output();
  // The paced lines that may go at NOW_MS, emptied from the queue. Nothing
  // before registration or after Closed.
  std::vector<std::string> due(std::int64_t now_ms);
  // When due() will next release a line; nullopt when none is waiting (or
  // not registered yet).
  std::optional<std::int64_t> next_due_ms(std::int64_t now_ms);
  std::size_t queued() const;

  // Send methods: check, split and queue for due(). TARGET is a channel (of the
  // server's CHANTYPES) or a nick; never a mask, a list or anything with a space.
  // Text loses CR, NUL and every other C0 control but TAB (no CTCP, formatting
  // or line break can be injected), then each LF starts a new line; lines are
  // split to fit the budget others see (text_budget).
  // `lead` (e.g. a security marking) starts every line the text becomes.
  SendResult privmsg(std::string_view target, std::string_view text, std::string_view lead = {});
  SendResult notice(std::string_view target, std::string_view text);
  SendResult action(std::string_view target, std::string_view text, std::string_view lead = {});  // /me, each line framed
  SendResult join(std::string_view channel, std::string_view key = {});
  SendResult part(std::string_view channel, std::string_view reason = {});  // reason on one line, cut
  SendResult topic(std::string_view channel, std::string_view text);       // one line, cut to TOPICLEN too
  SendResult nick(std::string_view new_nick);                              // is_valid_nick under NICKLEN
  // QUIT in take_output(), at once (the caller closes the connection after
  // it). Paced lines still waiting are dropped and counted (dropped_at_quit):
  // a caller that wants them out first waits for queued() == 0. Nothing else
  // may be sent afterwards.
  SendResult quit(std::string_view reason = {});

  ClientState state() const;
  const std::string& current_nick() const;
  // nick!user@host as the server shows us to others (from 001, 396, 900 or
  // our own JOIN), or empty while not known.
  std::string self_prefix() const;
  const std::string& account() const;  // from 900; empty when not logged in
  const ServerView& server() const;
  // Joined channels, as the server spelled them, sorted by folded name.
  std::vector<std::string> channels() const;
  // Members of CHANNEL sorted by folded nick (empty when not joined).
  std::vector<Member> members(std::string_view channel) const;
  std::string channel_topic(std::string_view channel) const;
  // Bytes of text that fit in "COMMAND TARGET :text" as the server relays it,
  // with our full prefix (self_prefix, or a worst case of "~user" and a 63-byte
  // host while it is unknown).
  std::size_t text_budget(std::string_view command, std::string_view target) const;
  const ClientCounters& counters() const;
  std::size_t overlong_lines() const;  // lines feed() dropped for length

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace portcullis::irc
