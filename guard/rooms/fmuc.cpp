#include "guard/rooms/fmuc.h"

#include <cstdio>
#include <ctime>

namespace portcullis::rooms {

FmucView read_fmuc(const xmpp::Element& stanza) {
  FmucView v;
  const xmpp::Element* f = stanza.find_child("fmuc", kNsFmuc);
  if (f == nullptr) return v;
  if (const xmpp::Element* r = f->find_child("reject", kNsFmuc)) {
    v.kind = FmucKind::Reject;
    v.reject_text = r->text();
  } else if (f->find_child("left", kNsFmuc) != nullptr) {
    v.kind = FmucKind::Left;
  } else {
    v.kind = FmucKind::Relay;
    v.from = f->attr_or("from");
    if (const xmpp::Element* res = f->find_child("resume", kNsFmuc)) {
      const std::string by = res->attr_or("by"), id = res->attr_or("id");
      if (!by.empty() && !id.empty() && by.size() <= 1024 && id.size() <= 128) v.resume = std::pair{by, id};
    }
  }
  return v;
}

bool has_fmuc(const xmpp::Element& stanza) { return stanza.find_child("fmuc", kNsFmuc) != nullptr; }

void set_fmuc_from(xmpp::Element& stanza, const std::string& author) {
  stanza.remove_children("fmuc", kNsFmuc);
  stanza.add_child(std::string(kNsFmuc), "fmuc").set_attr("from", author);
}

void strip_fmuc(xmpp::Element& stanza) { stanza.remove_children("fmuc", kNsFmuc); }

std::optional<OriginKey> read_origin(const xmpp::Element& stanza) {
  const xmpp::Element* s = stanza.find_child("stanza-id", kNsSid);
  if (s == nullptr) return std::nullopt;
  OriginKey k{s->attr_or("by"), s->attr_or("id")};
  if (k.by.empty() || k.id.empty() || k.id.size() > 128 || k.by.size() > 1024) return std::nullopt;
  return k;
}

std::string format_stamp(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(unix_ms % 1000));
  return buf;
}

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<std::int64_t> parse_stamp(std::string_view s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  std::size_t p = 0;
  if (!digits(s, 0, 4, y)) return std::nullopt;
  if (s.size() > 4 && s[4] == '-') {
    if (!digits(s, 5, 2, mo) || s.size() < 8 || s[7] != '-' || !digits(s, 8, 2, d)) return std::nullopt;
    p = 10;
  } else {
    if (!digits(s, 4, 2, mo) || !digits(s, 6, 2, d)) return std::nullopt;   // XEP-0091 legacy
    p = 8;
  }
  if (p >= s.size() || s[p] != 'T') return std::nullopt;
  if (!digits(s, p + 1, 2, h) || s.size() < p + 4 || s[p + 3] != ':' || !digits(s, p + 4, 2, mi) ||
      s.size() < p + 7 || s[p + 6] != ':' || !digits(s, p + 7, 2, se)) {
    return std::nullopt;
  }
  p += 9;
  int ms = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    int scale = 100;
    std::size_t n = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9' && n < 9) {
      ms += (s[p] - '0') * scale;
      scale /= 10;
      ++p;
      ++n;
    }
    if (n == 0) return std::nullopt;
  }
  std::int64_t offset_s = 0;
  if (p < s.size()) {
    if (s[p] == 'Z' && p + 1 == s.size()) {
    } else if ((s[p] == '+' || s[p] == '-') && s.size() == p + 6 && s[p + 3] == ':') {
      int oh = 0, om = 0;
      if (!digits(s, p + 1, 2, oh) || !digits(s, p + 4, 2, om)) return std::nullopt;
      offset_s = (oh * 3600 + om * 60) * (s[p] == '+' ? 1 : -1);
    } else {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  const std::time_t t = timegm(&tm);
  return (static_cast<std::int64_t>(t) - offset_s) * 1000 + ms;
}

std::optional<std::int64_t> read_delay(const xmpp::Element& stanza) {
  const xmpp::Element* d = stanza.find_child("delay", kNsDelay);
  if (d == nullptr) d = stanza.find_child("x", kNsDelay);
  if (d == nullptr) return std::nullopt;
  return parse_stamp(d->attr_or("stamp"));
}

}  // namespace portcullis::rooms
