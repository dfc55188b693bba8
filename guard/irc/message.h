// One IRC protocol line (RFC 1459 / RFC 2812 grammar, IRCv3 message tags
// tolerated) and the splitting of a byte stream into lines. Pure functions and
// one bounded buffer: no sockets, no clock.
//
// Limits (named, never implicit):
//  - the body (prefix, command, params) is at most 512 bytes including the CRLF
//    that ends it, so at most kMaxBodyBytes = 510 bytes on its own;
//  - an IRCv3 tag section ('@' up to and including the space after it) is at
//    most kMaxTagBytes = 8191 bytes, on top of the body;
//  - at most kMaxParams = 15 parameters.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portcullis::irc {

inline constexpr std::size_t kMaxLineBytes = 512;                  // body incl. CRLF
inline constexpr std::size_t kMaxBodyBytes = kMaxLineBytes - 2;    // body without CRLF
inline constexpr std::size_t kMaxTagBytes = 8191;                  // "@tags " incl. '@' and the space
inline constexpr std::size_t kMaxParams = 15;

struct Message {
  // IRCv3 tags in arrival order, values unescaped ("\s" -> ' ', "\:" -> ';',
  // "\\" -> '\', "\r", "\n"); a key given twice keeps its last value. A tag
  // without '=' has an empty value.
  std::vector<std::pair<std::string, std::string>> tags;
  std::string prefix;                // without ':'; empty when the line had none
  std::string command;               // upper-cased letters, or exactly three digits
  std::vector<std::string> params;   // the trailing parameter without its ':'
  // The last parameter was (parse) or must be (serialize) written as a
  // trailing ":param" even when it would not need it. serialize adds the ':'
  // anyway when the last parameter is empty, has a space or starts with ':'.
  bool trailing = false;

  // The nick of a "nick!user@host" prefix (the part before '!' or '@'); a
  // server-name prefix is returned whole; empty without a prefix.
  std::string nick() const;
  // The prefix names a server (no '!' and no '@', and a '.' in it), or there
  // is no prefix at all (the server we are connected to).
  bool from_server() const;

  bool operator==(const Message&) const = default;
};

// Parses one line given without its CR LF. Refuses, saying why in *error (when
// not null): an empty line, NUL, CR or LF anywhere, a malformed or oversized tag
// section, an empty prefix, an empty or malformed command (not letters, not
// three digits), more than kMaxParams parameters, a body over kMaxBodyBytes.
// Any run of spaces separates parameters; a trailing space adds no parameter.
std::optional<Message> parse_line(std::string_view line, std::string* error);

// The line for MESSAGE, ending in CR LF, or an empty string when it cannot be
// sent safely, saying why in *error (when not null): CR, LF or NUL anywhere
// outside tag values (tag values are escaped), an empty command or one that is
// not letters or three digits, a prefix with a space, a parameter other than the
// last that is empty, holds a space or starts with ':', more than kMaxParams
// parameters, a body over kMaxLineBytes with its CR LF, a tag key that is empty
// or not [A-Za-z0-9/.+-], or a tag section over kMaxTagBytes.
std::string serialize(const Message& message, std::string* error);
std::string serialize(const Message& message);

// Splits received bytes into lines on LF (a CR just before the LF is removed).
// Memory is bounded: a partial line is kept only up to the longest line
// parse_line could accept (kMaxBodyBytes, or kMaxTagBytes + kMaxBodyBytes when
// it starts with '@'); a longer line is dropped whole, up to and including its
// LF, and counted in overlong(). Empty lines are skipped (RFC 2812 2.3.1).
// Complete lines wait in the reader until next() takes them, so a caller takes
// them all after each feed().
class LineReader {
 public:
  void feed(std::string_view bytes);
  // The next complete line, without CR LF; nullopt when none is complete.
  std::optional<std::string> next();
  // Lines dropped because they were longer than the limit.
  std::size_t overlong() const { return overlong_; }
  // Bytes of the current partial line held (for tests of the bound).
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::string partial_;
  bool discarding_ = false;  // inside an overlong line: drop up to the next LF
  std::deque<std::string> ready_;
  std::size_t overlong_ = 0;
};

}  // namespace portcullis::irc
