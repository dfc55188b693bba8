// What a client knows of its server from 005 ISUPPORT, and the parsing of
// MODE changes by it (which modes take a parameter depends on PREFIX and
// CHANMODES). Pure functions, used by the Client (guard/irc/client.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <cstddef>
#include <string>
#include <vector>

#include "guard/irc/message.h"
#include "guard/irc/nick.h"

namespace portcullis::irc {

// What the server announced in 005 ISUPPORT (defaults: RFC 1459/2811 values).
struct ServerView {
  std::string network;                   // NETWORK
  std::size_t nicklen = 9;               // NICKLEN (or MAXNICKLEN)
  std::size_t topiclen = 0;              // TOPICLEN; 0: not announced
  CaseMapping casemapping = CaseMapping::Rfc1459;  // CASEMAPPING (ngIRCd: ascii)
  std::string chantypes = "#&";          // CHANTYPES
  std::string prefix_modes = "ov";       // PREFIX=(ov)@+, highest rank first
  std::string prefix_symbols = "@+";
  // CHANMODES=A,B,C,D: list modes, modes with a parameter, modes with a
  // parameter only when set, flag modes.
  std::string chanmodes_list = "beI";
  std::string chanmodes_param = "k";
  std::string chanmodes_param_when_set = "l";
  std::string chanmodes_flag = "imnpst";
};

struct ModeChange {
  bool add = true;
  char mode = 0;
  std::string param;  // empty for a mode without a parameter

  bool operator==(const ModeChange&) const = default;
};

// Applies the tokens of a 005 line (params[1] up to the last, which is text)
// to VIEW: NETWORK, NICKLEN/MAXNICKLEN, TOPICLEN, CASEMAPPING, CHANTYPES,
// PREFIX, CHANMODES; values unescaped (\xHH); "-KEY" restores the default. A
// value that does not parse, or is out of bounds, leaves the field as it was.
// Returns whether the case mapping changed (the caller re-keys what it folded).
bool apply_isupport(ServerView& view, const Message& isupport);

// The changes of "MODE target MODESTRING args..." with the modestring at
// PARAMS[MODESTRING]: for channel modes, prefix modes and list/parameter modes
// (CHANMODES A, B) take the next argument, C only when set, D none; user modes
// (CHANNEL_MODES false) take none. A missing argument leaves param empty.
std::vector<ModeChange> parse_modes(const ServerView& view, const std::vector<std::string>& params,
                                    std::size_t modestring, bool channel_modes);

// S as a decimal number of at most MAX_DIGITS digits, or nullopt.
std::optional<std::uint64_t> small_number(std::string_view s, std::size_t max_digits);

}  // namespace portcullis::irc
