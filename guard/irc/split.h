// Fitting XMPP message bodies into IRC lines.
//
// A PRIVMSG we send is relayed by the server to every other member as
//   ":nick!user@host PRIVMSG target :text\r\n"
// and that line, with the full prefix the server puts in front, must fit 512
// bytes, or the server (or the receiving clients) truncate it. The budget for
// the text is therefore computed with the prefix the others will see, not with
// the (empty) prefix of the line we write.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::irc {

// Bytes left for TEXT in ":SOURCE_PREFIX COMMAND TARGET :TEXT\r\n" within 512;
// 0 when even the empty text would not fit. An empty SOURCE_PREFIX means a
// line without prefix (no ':' and no space for it).
std::size_t payload_budget(std::string_view source_prefix, std::string_view command, std::string_view target);

struct Split {
  std::vector<std::string> lines;  // each non-empty, at most the budget, no CR, LF or NUL
  bool truncated = false;          // more text (or lines) than max_lines could carry, or a
                                   // character longer than the budget: the rest is dropped
};

// Splits UTF8 into at most MAX_LINES lines of at most BUDGET bytes each. Each
// LF starts a new line; CR and NUL are dropped; an empty line (two LFs in a
// row) yields nothing. A line too long is cut at the last space that leaves at
// most BUDGET bytes before it (that space is dropped), else at the last UTF-8
// character boundary within BUDGET: a multi-byte character is never split (a
// stray continuation byte of ill-formed input counts as a character of its own
// once three bytes back give no boundary). Non-empty input never yields an empty
// line. For a /me, pass the budget minus kActionOverhead (guard/irc/text.h).
Split split_text(std::string_view utf8, std::size_t budget, std::size_t max_lines);

}  // namespace portcullis::irc
