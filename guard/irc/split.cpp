#include "guard/irc/split.h"

#include "guard/irc/message.h"

namespace portcullis::irc {
namespace {

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The largest cut <= BUDGET (and < P.size()) that does not fall inside a
// UTF-8 sequence; 0 when the first character is longer than BUDGET.
std::size_t boundary_at_most(std::string_view p, std::size_t budget) {
  std::size_t cut = budget;
  for (int back = 0; back < 3 && cut > 0 && is_continuation(p[cut]); ++back) --cut;
  if (cut > 0 && is_continuation(p[cut])) {
    // Three continuation bytes back and still no lead byte: no well-formed
    // sequence spans this point, so any cut is as good as another.
    return budget;
  }
  return cut;
}

}  // namespace

std::size_t payload_budget(std::string_view source_prefix, std::string_view command, std::string_view target) {
  std::size_t used = command.size() + 1 + target.size() + 2 + 2;  // " target", " :", CRLF
  if (!source_prefix.empty()) used += 1 + source_prefix.size() + 1;  // ':' prefix ' '
  return used >= kMaxLineBytes ? 0 : kMaxLineBytes - used;
}

Split split_text(std::string_view utf8, std::size_t budget, std::size_t max_lines) {
  Split out;
  std::size_t start = 0;
  while (start <= utf8.size()) {
    std::size_t lf = utf8.find('\n', start);
    if (lf == std::string_view::npos) lf = utf8.size();
    std::string para;
    for (char c : utf8.substr(start, lf - start)) {
      if (c != '\r' && c != '\0') para += c;
    }
    start = lf + 1;
    std::string_view p = para;
    while (!p.empty()) {
      if (out.lines.size() == max_lines || budget == 0) {
        out.truncated = true;
        return out;
      }
      if (p.size() <= budget) {
        out.lines.emplace_back(p);
        break;
      }
      // The last space at index <= budget: the text before it fits.
      const std::size_t sp = p.substr(0, budget + 1).rfind(' ');
      if (sp != std::string_view::npos && sp > 0) {
        out.lines.emplace_back(p.substr(0, sp));
        p.remove_prefix(sp + 1);
        continue;
      }
      const std::size_t cut = boundary_at_most(p, budget);
      if (cut == 0) {  // one character is longer than the whole budget
        out.truncated = true;
        return out;
      }
      out.lines.emplace_back(p.substr(0, cut));
      p.remove_prefix(cut);
    }
  }
  return out;
}

}  // namespace portcullis::irc
