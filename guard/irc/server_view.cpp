#include "guard/irc/server_view.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

namespace portcullis::irc {
namespace {

bool has_byte(std::string_view s, std::string_view set) { return s.find_first_of(set) != std::string_view::npos; }

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}


// ISUPPORT values escape bytes as \xHH (draft-hardy-irc-isupport).
std::string unescape_isupport(std::string_view v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 3 < v.size() && v[i + 1] == 'x') {
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int h = hex(v[i + 2]), l = hex(v[i + 3]);
      if (h >= 0 && l >= 0) {
        out += static_cast<char>(h * 16 + l);
        i += 3;
        continue;
      }
    }
    out += v[i];
  }
  return out;
}

}  // namespace

bool apply_isupport(ServerView& view, const Message& m) {
  const ServerView defaults;
  const CaseMapping before = view.casemapping;
  for (std::size_t i = 1; i + 1 < m.params.size(); ++i) {
    std::string_view tok = m.params[i];
    const bool negate = !tok.empty() && tok.front() == '-';
    if (negate) tok.remove_prefix(1);
    const std::size_t eq = tok.find('=');
    const std::string key = upper(tok.substr(0, eq));
    const std::string value = eq == std::string_view::npos ? std::string() : unescape_isupport(tok.substr(eq + 1));
    if (key == "NETWORK") {
      view.network = negate ? defaults.network : value.substr(0, 64);
    } else if (key == "NICKLEN" || key == "MAXNICKLEN") {
      const auto n = small_number(value, 3);
      if (negate) view.nicklen = defaults.nicklen;
      else if (n && *n > 0) view.nicklen = static_cast<std::size_t>(*n);
    } else if (key == "TOPICLEN") {
      const auto n = small_number(value, 5);
      if (negate) view.topiclen = defaults.topiclen;
      else if (n) view.topiclen = static_cast<std::size_t>(*n);
    } else if (key == "CASEMAPPING") {
      if (negate) view.casemapping = defaults.casemapping;
      else if (value == "ascii") view.casemapping = CaseMapping::Ascii;
      else if (value == "rfc1459") view.casemapping = CaseMapping::Rfc1459;
      else if (value == "strict-rfc1459") view.casemapping = CaseMapping::StrictRfc1459;
      // anything else (rfc7613, ...): keep rfc1459, the widest ASCII folding
    } else if (key == "CHANTYPES") {
      if (negate) {
        view.chantypes = defaults.chantypes;
      } else if (!value.empty() && value.size() <= 8 && !has_byte(value, std::string_view(" ,:\x07\0", 5))) {
        view.chantypes = value;
      }
    } else if (key == "PREFIX") {
      if (negate) {
        view.prefix_modes = defaults.prefix_modes;
        view.prefix_symbols = defaults.prefix_symbols;
      } else if (value.empty()) {
        view.prefix_modes.clear();
        view.prefix_symbols.clear();
      } else if (value.front() == '(') {
        const std::size_t close = value.find(')');
        if (close != std::string::npos) {
          const std::string modes = value.substr(1, close - 1), symbols = value.substr(close + 1);
          if (modes.size() == symbols.size() && modes.size() <= 16 && !has_byte(symbols, std::string_view(" ,\0", 3))) {
            view.prefix_modes = modes;
            view.prefix_symbols = symbols;
          }
        }
      }
    } else if (key == "CHANMODES") {
      if (negate) {
        view.chanmodes_list = defaults.chanmodes_list;
        view.chanmodes_param = defaults.chanmodes_param;
        view.chanmodes_param_when_set = defaults.chanmodes_param_when_set;
        view.chanmodes_flag = defaults.chanmodes_flag;
      } else {
        std::vector<std::string> groups;
        std::size_t pos = 0;
        for (int g = 0; g < 4; ++g) {
          const std::size_t comma = value.find(',', pos);
          groups.push_back(value.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
          if (comma == std::string::npos) break;
          pos = comma + 1;
        }
        if (groups.size() == 4 && std::all_of(groups.begin(), groups.end(), [](const std::string& g) {
              return g.size() <= 64 && std::all_of(g.begin(), g.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                     });
            })) {
          view.chanmodes_list = groups[0];
          view.chanmodes_param = groups[1];
          view.chanmodes_param_when_set = groups[2];
          view.chanmodes_flag = groups[3];
        }
      }
    }
  }
  return view.casemapping != before;
}


std::vector<ModeChange> parse_modes(const ServerView& view, const std::vector<std::string>& params,
                                    std::size_t modestring, bool channel_modes) {
  std::vector<ModeChange> changes;
  if (modestring >= params.size()) return changes;
  std::size_t arg = modestring + 1;
  bool add = true;
  for (char c : params[modestring]) {
    if (c == '+' || c == '-') {
      add = c == '+';
      continue;
    }
    ModeChange mc;
    mc.add = add;
    mc.mode = c;
    const bool takes = channel_modes && (view.prefix_modes.find(c) != std::string::npos ||
                                         view.chanmodes_list.find(c) != std::string::npos ||
                                         view.chanmodes_param.find(c) != std::string::npos ||
                                         (add && view.chanmodes_param_when_set.find(c) != std::string::npos));
    if (takes && arg < params.size()) mc.param = params[arg++];
    changes.push_back(std::move(mc));
  }
  return changes;
}

std::optional<std::uint64_t> small_number(std::string_view s, std::size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace portcullis::irc
