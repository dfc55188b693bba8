// Message text between IRC and XMPP: mIRC formatting, CTCP framing, and the
// repair that IRC octets need before they may go into an XML stanza.
//
// IRC text is octets in no declared encoding, with formatting control codes;
// XMPP text is UTF-8 that XML 1.0 accepts (no C0 control but TAB, LF and CR, no
// U+FFFE or U+FFFF). Text going IRC -> XMPP passes to_xmpp_text; text going
// XMPP -> IRC is split and checked by guard/irc/split.h and the Client.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace portcullis::irc {

// TEXT without mIRC formatting: bold \x02, italics \x1D, underline \x1F,
// strikethrough \x1E, monospace \x11, reverse \x16, reset \x0F; colour \x03
// with an optional foreground of 1-2 digits and an optional ",background" of
// 1-2 digits (a ',' not followed by a digit stays text); hex colour \x04 with an
// optional RRGGBB and an optional ",RRGGBB". Everything else is kept as it is.
std::string strip_formatting(std::string_view text);

// TEXT is a CTCP message: it starts with \x01 and has a command. The closing
// \x01 is optional (some clients omit it). *command gets the command
// upper-cased, *args what follows the first space (without the closing \x01);
// either may be null. Returns false, leaving both untouched, for plain text.
bool parse_ctcp(std::string_view text, std::string* command, std::string* args);

// "\x01ACTION " TEXT "\x01": a /me. The framing costs kActionOverhead bytes.
std::string make_action(std::string_view text);
inline constexpr std::size_t kActionOverhead = 9;

// TEXT with every ill-formed UTF-8 sequence replaced by U+FFFD (one per maximal
// ill-formed subpart, as Unicode 15 §3.9 recommends): stray continuation bytes,
// truncated sequences, overlong forms, surrogates, code points over U+10FFFF.
// Valid UTF-8 comes back unchanged.
std::string to_valid_utf8(std::string_view text);

// TEXT as it may go into an XMPP stanza: to_valid_utf8, then strip_formatting,
// then every C0 control but TAB removed (CTCP \x01, BEL, ...; CR and LF cannot
// be in an IRC line) and U+FFFE / U+FFFF replaced by U+FFFD. The result is
// valid UTF-8 made only of XML 1.0 characters.
std::string to_xmpp_text(std::string_view text);

// TEXT is well-formed UTF-8.
bool is_valid_utf8(std::string_view text);

}  // namespace portcullis::irc
