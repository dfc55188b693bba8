// libFuzzer target: the IRC client library (guard/irc) fed hostile server bytes.
//
// The first byte picks options (SASL or not, a canned welcome first, chunk
// size); the rest is a byte stream from an IRC server. Properties checked:
//  - a line parse_line accepts serializes, and parses back to the same Message;
//  - every line the Client writes (take_output, due) is one CRLF-terminated line
//    of at most 512 bytes that parses, so nothing the server or the XMPP side
//    sends can inject a second line;
//  - every received line, sent back as XMPP text through privmsg/action/topic,
//    yields only lines within the relay budget, with no CTCP or control byte
//    other than the ACTION framing;
//  - split_text, to_xmpp_text, strip_formatting and irc_nick_for keep their
//    contracts on every line.
// Also built into irc_tests (test/unit/irc), which replays test/corpus/irc
// through LLVMFuzzerTestOneInput in every build.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "guard/irc/client.h"
#include "guard/irc/message.h"
#include "guard/irc/nick.h"
#include "guard/irc/split.h"
#include "guard/irc/text.h"

namespace {

using namespace portcullis::irc;

// A violated property is a bug: abort so the fuzzer records the input.
void require(bool ok) {
  if (!ok) std::abort();
}

void check_wire_line(const std::string& line) {
  require(line.size() >= 3 && line.size() <= kMaxLineBytes);
  require(line.compare(line.size() - 2, 2, "\r\n") == 0);
  const std::string_view body(line.data(), line.size() - 2);
  require(body.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
  std::string error;
  require(parse_line(body, &error).has_value());
}

// BUDGET: the largest text_budget the client had while the line was queued (our
// nick or shown user@host may change between queueing and sending).
void check_text_lines(const std::string& line, std::size_t budget) {
  std::string error;
  auto m = parse_line(std::string_view(line.data(), line.size() - 2), &error);
  require(m.has_value());
  if ((m->command != "PRIVMSG" && m->command != "NOTICE") || m->params.size() != 2) return;
  const std::string& text = m->params[1];
  require(text.size() <= budget);
  std::string cmd, args;
  if (parse_ctcp(text, &cmd, &args)) {
    require(cmd == "ACTION" && text.back() == '\x01');
    require(args.size() >= 1);
  }
  // No control byte but TAB and the ACTION framing.
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b == 0x01) require(i == 0 || i + 1 == text.size());
    else require(b >= 0x20 || b == '\t');
  }
}

void drain(Client& c, std::int64_t now, std::size_t budget) {
  for (const auto& l : c.take_output()) check_wire_line(l);
  for (const auto& l : c.due(now)) {
    check_wire_line(l);
    check_text_lines(l, budget);
  }
}

void line_properties(const std::string& line, unsigned char knob) {
  std::string error;
  if (auto m = parse_line(line, &error)) {
    const std::string wire = serialize(*m, &error);
    require(!wire.empty());
    const std::size_t tag_end = m->tags.empty() ? 0 : wire.find(' ') + 1;
    require(wire.size() - tag_end <= kMaxLineBytes);
    auto again = parse_line(std::string_view(wire.data(), wire.size() - 2), &error);
    require(again.has_value() && *again == *m);
  } else {
    require(!error.empty());
  }

  const std::size_t budget = knob % 64;
  const Split s = split_text(line, budget, 1 + knob % 7);
  require(s.lines.size() <= 1u + knob % 7);
  for (const auto& l : s.lines) {
    require(!l.empty() && l.size() <= budget);
    require(l.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    if (is_valid_utf8(line)) require(is_valid_utf8(l));
  }

  const std::string x = to_xmpp_text(line);
  require(is_valid_utf8(x));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto b = static_cast<unsigned char>(x[i]);
    require(b >= 0x20 || b == '\t');
    if (b == 0xEF && i + 2 < x.size()) {
      require(!(static_cast<unsigned char>(x[i + 1]) == 0xBF && static_cast<unsigned char>(x[i + 2]) >= 0xBE));
    }
  }
  const std::string plain = strip_formatting(line);
  require(plain.find_first_of("\x02\x03\x04\x0F\x11\x16\x1D\x1E\x1F") == std::string::npos);
  require(to_valid_utf8(to_valid_utf8(line)) == to_valid_utf8(line));

  const NickRules rules{1 + static_cast<std::size_t>(knob % 30)};
  const std::string nick = irc_nick_for(line, rules);
  require(is_valid_nick(nick, rules));
  require(nick == irc_nick_for(line, rules));
  require(is_valid_nick(with_suffix(nick, knob, rules), rules));
  require(nick_equal(nick_fold(line), line));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned char options = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  // Lines on their own.
  LineReader reader;
  reader.feed(stream);
  while (auto line = reader.next()) {
    require(line->size() <= kMaxTagBytes + kMaxBodyBytes);
    line_properties(*line, static_cast<unsigned char>(line->size() ^ options));
  }

  // The same bytes as a server talking to a client.
  ClientConfig cfg;
  cfg.nick = "gateway";
  cfg.user = "gw";
  cfg.channels = {"#ops", "#dev"};
  if (options & 1) {
    cfg.sasl_user = "gw";
    cfg.sasl_password = "s3cret";
  }
  if (options & 2) cfg.server_password = "pw";
  cfg.max_queued_lines = 64;
  cfg.max_members = 64;
  cfg.max_channels = 8;
  Client c(cfg);
  for (const auto& l : c.start()) check_wire_line(l);
  std::int64_t now = 0;
  std::size_t budget = c.text_budget("PRIVMSG", "#ops");
  if (options & 4) {
    c.feed(":irc.example.net 001 gateway :Welcome gateway!gw@gw.example\r\n");
    drain(c, now, budget);
  }
  const std::size_t chunk = 1 + (options >> 3) * 16;
  LineReader echo;
  for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
    const std::string_view part = stream.substr(pos, chunk);
    const auto events = c.feed(part);
    require(events.size() <= part.size() + 16);
    drain(c, now, budget);
    // Whatever the server said, sent back from the XMPP side.
    echo.feed(part);
    while (auto line = echo.next()) {
      budget = std::max(budget, c.text_budget("PRIVMSG", "#ops"));
      c.privmsg("#ops", *line);
      c.action("#ops", *line);
      c.topic("#ops", *line);
      c.part(*line, *line);
      c.nick(*line);
    }
    now += 1500;
    drain(c, now, budget);
  }
  require(c.queued() <= 64 + 1);
  return 0;
}
