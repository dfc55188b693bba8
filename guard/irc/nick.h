// IRC nicknames: the deterministic mapping of an XMPP (MUC) nick to an IRC
// nick, collision suffixes, and comparison under the server's case mapping.
//
// RFC 2812 2.3.1: nickname = ( letter / special ) *( letter / digit / special / "-" ),
// special = "[" "]" "\" "`" "_" "^" "{" "|" "}". The length limit is the
// server's (NICKLEN in 005; ngIRCd's MaxNickLength defaults to 9, as RFC 2812).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace portcullis::irc {

struct NickRules {
  std::size_t max_len = 9;  // bytes; treated as at least 1
};

// How the server folds case (005 CASEMAPPING). rfc1459 (the RFC default):
// A-Z and []\~ are the upper case of a-z and {}|^; strict-rfc1459: without ~^;
// ascii (ngIRCd's): A-Z only.
enum class CaseMapping { Rfc1459, StrictRfc1459, Ascii };

// NICK is a valid IRC nickname of at most RULES.max_len bytes.
bool is_valid_nick(std::string_view nick, const NickRules& rules);

// The IRC nick for an XMPP nick; the same input always gives the same nick.
// Letters, digits, '-' and the specials are kept; a space, '.', or any other
// ASCII punctuation becomes '_' (a run of them one '_'); other ASCII controls
// are dropped; Latin letters with diacritics and ligatures (U+00C0-U+017F) and
// basic Cyrillic are transliterated ("é" -> "e", "ß" -> "ss", "Ж" -> "Zh"); any
// other character is dropped. A nick starting with a digit or '-' gets a '_' in
// front. The result is cut to RULES.max_len. When nothing remains that is a
// letter or a digit (e.g. an all-CJK nick), the nick is 'x' followed by hex
// digits of a fixed hash (FNV-1a) of the XMPP nick, so distinct such nicks
// still differ. Never empty; always is_valid_nick. Two XMPP nicks may map to
// the same IRC nick: the caller resolves that with with_suffix.
std::string irc_nick_for(std::string_view xmpp_nick, const NickRules& rules);

// NICK with the decimal suffix N, cut so that the whole fits RULES.max_len:
// with_suffix("alexander", 2, {9}) == "alexande2". N == 0 gives NICK itself
// (cut). At least the first character of NICK is kept; when max_len cannot hold
// it and all the digits, the leading digits of N are dropped (so distinct N may
// then collide). NICK is expected to be valid (irc_nick_for's result).
std::string with_suffix(std::string_view nick, unsigned n, const NickRules& rules);

// NICK folded to lower case under MAPPING, for comparisons and map keys.
std::string nick_fold(std::string_view nick, CaseMapping mapping = CaseMapping::Rfc1459);

// A and B are the same nick (or channel name) under MAPPING.
bool nick_equal(std::string_view a, std::string_view b, CaseMapping mapping = CaseMapping::Rfc1459);

}  // namespace portcullis::irc
