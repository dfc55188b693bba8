#include "guard/irc/message.h"

namespace portcullis::irc {
namespace {

void set_error(std::string* error, std::string_view why) {
  if (error) *error = std::string(why);
}

bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// IRCv3 message-tags: key = [ '+' ] [ vendor '/' ] 1*( letter / digit / '-' ),
// vendor a host name. Checked loosely: the characters, not the structure.
bool valid_tag_key(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '/' && c != '.' && c != '+') return false;
  }
  return true;
}

std::string unescape_tag_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
      continue;
    }
    if (++i == v.size()) break;  // a lone trailing backslash is dropped
    switch (v[i]) {
      case ':': out += ';'; break;
      case 's': out += ' '; break;
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      default: out += v[i]; break;  // "\\" -> '\', "\x" -> 'x'
    }
  }
  return out;
}

void escape_tag_value(std::string_view v, std::string& out) {
  for (char c : v) {
    switch (c) {
      case ';': out += "\\:"; break;
      case ' ': out += "\\s"; break;
      case '\\': out += "\\\\"; break;
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      default: out += c; break;
    }
  }
}

void put_tag(std::vector<std::pair<std::string, std::string>>& tags, std::string key, std::string value) {
  for (auto& t : tags) {
    if (t.first == key) {
      t.second = std::move(value);  // the last value wins
      return;
    }
  }
  tags.emplace_back(std::move(key), std::move(value));
}

bool parse_tags(std::string_view section, Message& m, std::string* error) {
  std::size_t pos = 0;
  while (pos <= section.size()) {
    std::size_t end = section.find(';', pos);
    if (end == std::string_view::npos) end = section.size();
    const std::string_view item = section.substr(pos, end - pos);
    if (!item.empty()) {  // "@a;;b" and a trailing ';' are tolerated
      const std::size_t eq = item.find('=');
      const std::string_view key = item.substr(0, eq);
      if (!valid_tag_key(key)) {
        set_error(error, "malformed tag key");
        return false;
      }
      put_tag(m.tags, std::string(key),
              eq == std::string_view::npos ? std::string() : unescape_tag_value(item.substr(eq + 1)));
    }
    pos = end + 1;
  }
  return true;
}

bool valid_command(std::string_view c) {
  if (c.empty()) return false;
  if (is_digit(c[0])) return c.size() == 3 && is_digit(c[1]) && is_digit(c[2]);
  for (char ch : c) {
    if (!is_alpha(ch)) return false;
  }
  return true;
}

bool has_unsafe_byte(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace

std::string Message::nick() const {
  const std::size_t end = prefix.find_first_of("!@");
  return prefix.substr(0, end);
}

bool Message::from_server() const {
  if (prefix.empty()) return true;
  return prefix.find_first_of("!@") == std::string::npos && prefix.find('.') != std::string::npos;
}

std::optional<Message> parse_line(std::string_view line, std::string* error) {
  if (line.empty()) {
    set_error(error, "empty line");
    return std::nullopt;
  }
  if (line.find('\0') != std::string_view::npos) {
    set_error(error, "NUL in line");
    return std::nullopt;
  }
  if (line.find_first_of("\r\n") != std::string_view::npos) {
    set_error(error, "CR or LF inside the line");
    return std::nullopt;
  }
  Message m;
  std::string_view rest = line;
  if (rest.front() == '@') {
    const std::size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) {
      set_error(error, "tags without a command");
      return std::nullopt;
    }
    if (sp + 1 > kMaxTagBytes) {
      set_error(error, "tag section over 8191 bytes");
      return std::nullopt;
    }
    if (!parse_tags(rest.substr(1, sp - 1), m, error)) return std::nullopt;
    rest.remove_prefix(sp + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  if (rest.size() > kMaxBodyBytes) {
    set_error(error, "line over 512 bytes");
    return std::nullopt;
  }
  if (!rest.empty() && rest.front() == ':') {
    const std::size_t sp = rest.find(' ');
    const std::string_view prefix = rest.substr(1, sp == std::string_view::npos ? std::string_view::npos : sp - 1);
    if (prefix.empty()) {
      set_error(error, "empty prefix");
      return std::nullopt;
    }
    m.prefix = std::string(prefix);
    rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  {
    const std::size_t sp = rest.find(' ');
    const std::string_view command = rest.substr(0, sp);
    if (command.empty()) {
      set_error(error, "no command");
      return std::nullopt;
    }
    if (!valid_command(command)) {
      set_error(error, "malformed command");
      return std::nullopt;
    }
    m.command = std::string(command);
    for (char& c : m.command) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp);
  }
  for (;;) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) break;
    if (m.params.size() == kMaxParams) {
      set_error(error, "more than 15 parameters");
      return std::nullopt;
    }
    if (rest.front() == ':') {
      m.params.emplace_back(rest.substr(1));
      m.trailing = true;
      break;
    }
    const std::size_t sp = rest.find(' ');
    m.params.emplace_back(rest.substr(0, sp));
    rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp);
  }
  return m;
}

std::string serialize(const Message& m, std::string* error) {
  std::string out;
  if (!m.tags.empty()) {
    out += '@';
    bool first = true;
    for (const auto& [key, value] : m.tags) {
      if (!valid_tag_key(key)) {
        set_error(error, "malformed tag key");
        return {};
      }
      if (value.find('\0') != std::string::npos) {
        set_error(error, "NUL in a tag value");
        return {};
      }
      if (!first) out += ';';
      first = false;
      out += key;
      if (!value.empty()) {
        out += '=';
        escape_tag_value(value, out);
      }
    }
    out += ' ';
    if (out.size() > kMaxTagBytes) {
      set_error(error, "tag section over 8191 bytes");
      return {};
    }
  }
  const std::size_t body_start = out.size();
  if (!m.prefix.empty()) {
    if (has_unsafe_byte(m.prefix) || m.prefix.find(' ') != std::string::npos) {
      set_error(error, "prefix with a space, CR, LF or NUL");
      return {};
    }
    out += ':';
    out += m.prefix;
    out += ' ';
  }
  if (!valid_command(m.command)) {
    set_error(error, m.command.empty() ? "empty command" : "malformed command");
    return {};
  }
  out += m.command;
  if (m.params.size() > kMaxParams) {
    set_error(error, "more than 15 parameters");
    return {};
  }
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    const std::string& p = m.params[i];
    if (has_unsafe_byte(p)) {
      set_error(error, "CR, LF or NUL in a parameter");
      return {};
    }
    const bool needs_colon = p.empty() || p.find(' ') != std::string::npos || p.front() == ':';
    out += ' ';
    if (i + 1 < m.params.size()) {
      if (needs_colon) {
        set_error(error, "a parameter other than the last is empty, has a space or starts with ':'");
        return {};
      }
    } else if (needs_colon || m.trailing) {
      out += ':';
    }
    out += p;
  }
  out += "\r\n";
  if (out.size() - body_start > kMaxLineBytes) {
    set_error(error, "line over 512 bytes");
    return {};
  }
  return out;
}

std::string serialize(const Message& m) { return serialize(m, nullptr); }

void LineReader::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t lf = bytes.find('\n');
    const std::string_view chunk = bytes.substr(0, lf);
    if (!discarding_) {
      // The longest line parse_line may accept; one more byte may be held for a
      // CR whose LF has not arrived yet. Nothing beyond that is ever copied.
      const char first = !partial_.empty() ? partial_.front() : (chunk.empty() ? '\0' : chunk.front());
      const std::size_t limit = first == '@' ? kMaxTagBytes + kMaxBodyBytes : kMaxBodyBytes;
      if (partial_.size() + chunk.size() > limit + 1) {
        partial_.clear();
        ++overlong_;
        discarding_ = lf == std::string_view::npos;
      } else {
        partial_.append(chunk);
        if (lf != std::string_view::npos) {
          if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
          if (partial_.size() > limit) {
            ++overlong_;
          } else if (!partial_.empty()) {
            ready_.push_back(partial_);
          }
          partial_.clear();
        }
      }
    } else if (lf != std::string_view::npos) {
      discarding_ = false;  // the overlong line ends here
    }
    if (lf == std::string_view::npos) break;
    bytes.remove_prefix(lf + 1);
  }
}

std::optional<std::string> LineReader::next() {
  if (ready_.empty()) return std::nullopt;
  std::string line = std::move(ready_.front());
  ready_.pop_front();
  return line;
}

}  // namespace portcullis::irc
