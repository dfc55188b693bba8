#include "tools/audit/query.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

namespace portcullis::audit::tool {

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  std::transform(o.begin(), o.end(), o.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return o;
}

std::string domain_of(std::string_view jid) {
  auto at = jid.find('@');
  std::string_view rest = at == std::string_view::npos ? jid : jid.substr(at + 1);
  auto slash = rest.find('/');
  return lower(rest.substr(0, slash));
}

// "a@b" matches "a@b" and "a@b/res"; "a@b/res" matches only itself.
bool jid_matches(std::string_view want, std::string_view have) {
  const std::string w = lower(want), h = lower(have);
  if (h == w) return true;
  return w.find('/') == std::string::npos && h.size() > w.size() && h.compare(0, w.size(), w) == 0 && h[w.size()] == '/';
}

std::string quote_if_needed(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \"") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  return o + "\"";
}

}  // namespace

std::optional<std::uint64_t> parse_time(std::string_view s) {
  if (!s.empty() && s[0] == '@') {
    std::uint64_t v = 0;
    if (s.size() < 2 || s.size() > 12) return std::nullopt;
    for (char c : s.substr(1)) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v * 1000000;
  }
  std::tm tm{};
  int y, mo, d, h = 0, mi = 0, sec = 0;
  char z = 0;
  const std::string str(s);
  int n = 0;
  if (std::sscanf(str.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && static_cast<std::size_t>(n) == str.size()) {
  } else if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c%n", &y, &mo, &d, &h, &mi, &sec, &z, &n) == 7 && z == 'Z' &&
             static_cast<std::size_t>(n) == str.size()) {
  } else if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d%c%n", &y, &mo, &d, &h, &mi, &z, &n) == 6 && z == 'Z' &&
             static_cast<std::size_t>(n) == str.size()) {
  } else {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  if (t < 0) return std::nullopt;
  return static_cast<std::uint64_t>(t) * 1000000;
}

bool parse_query_option(const std::vector<std::string>& args, std::size_t& i, Query& q) {
  const std::string& a = args[i];
  static const char* kOpts[] = {"--from", "--to", "--jid", "--domain", "--direction", "--verdict", "--rule", "--label", "--type"};
  if (std::find(std::begin(kOpts), std::end(kOpts), a) == std::end(kOpts)) return false;
  if (i + 1 >= args.size()) throw UsageError{a + " needs a value"};
  const std::string& v = args[++i];
  if (a == "--from" || a == "--to") {
    auto t = parse_time(v);
    if (!t) throw UsageError{a + ": bad time \"" + v + "\" (use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or @UNIXSECONDS)"};
    (a == "--from" ? q.from_us : q.to_us) = *t;
  } else if (a == "--jid") {
    q.jid = v;
  } else if (a == "--domain") {
    q.domain = lower(v);
  } else if (a == "--direction") {
    q.direction = parse_direction(v);
    if (!q.direction || (*q.direction != Direction::LowToHigh && *q.direction != Direction::HighToLow))
      throw UsageError{"--direction: expected low-to-high or high-to-low, got \"" + v + "\""};
  } else if (a == "--verdict") {
    q.verdict = parse_outcome(v);
    if (!q.verdict) throw UsageError{"--verdict: expected released, rejected, modified or shadow, got \"" + v + "\""};
  } else if (a == "--rule") {
    q.rule = v;
  } else if (a == "--label") {
    q.label = v;
  } else if (a == "--type") {
    q.type = parse_record_type(v);
    if (!q.type) throw UsageError{"--type: expected decision, connection, admin or checkpoint, got \"" + v + "\""};
    if (*q.type == RecordType::Checkpoint) q.include_checkpoints = true;
  }
  return true;
}

std::vector<std::string> deciding_rules(const DecisionRecord& d) {
  std::vector<std::string> out;
  for (const auto& f : d.filters)
    if (f.verdict != "no-opinion" && !f.rule_id.empty()) out.push_back(f.rule_id);
  return out;
}

bool Query::matches(const StoredRecord& r) const {
  if (r.type == RecordType::Checkpoint && !include_checkpoints) return false;
  if (type && r.type != *type) return false;
  if (from_us && r.time_us < *from_us) return false;
  if (to_us && r.time_us >= *to_us) return false;
  const auto* d = std::get_if<DecisionRecord>(&r.body);
  if (decision_only() && !d) return false;
  if (!domain.empty()) {
    if (d) {
      if (lower(d->peer.domain) != domain && domain_of(d->from) != domain && domain_of(d->to) != domain) return false;
    } else if (const auto* c = std::get_if<ConnectionEvent>(&r.body)) {
      if (lower(c->peer.domain) != domain) return false;
    } else {
      return false;
    }
  }
  if (!d) return true;
  if (!jid.empty() && !jid_matches(jid, d->from) && !jid_matches(jid, d->to)) return false;
  if (direction && d->direction != *direction) return false;
  if (verdict && d->outcome != *verdict) return false;
  if (!rule.empty()) {
    bool any = false;
    for (const auto& f : d->filters) any = any || f.rule_id == rule;
    if (!any) return false;
  }
  if (!label.empty() && d->label_original.find(label) == std::string::npos &&
      d->label_effective.find(label) == std::string::npos && d->label_mapped.find(label) == std::string::npos)
    return false;
  return true;
}

std::string one_line(const StoredRecord& r) {
  // Built with append() only: GCC 12 -O3 reports a false -Wrestrict on chains
  // of "literal" + std::string temporaries.
  std::string s = std::to_string(r.seq);
  auto add = [&s](std::string_view a, std::string_view b = {}) {
    s.append(a);
    s.append(b);
  };
  add(" ", format_time_us(r.time_us));
  add(" ", to_string(r.type));
  if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
    add(" ", to_string(d->outcome));
    add(" ", to_string(d->direction));
    add(" peer=", quote_if_needed(d->peer.domain));
    add(" ", d->stanza_kind.empty() ? std::string_view("?") : std::string_view(d->stanza_kind));
    if (!d->stanza_type.empty()) add("/", d->stanza_type);
    add(" from=", quote_if_needed(d->from));
    add(" to=", quote_if_needed(d->to));
    if (!d->stanza_id.empty()) add(" id=", quote_if_needed(d->stanza_id));
    std::string rules;
    for (const auto& x : deciding_rules(*d)) {
      if (!rules.empty()) rules += ',';
      rules += x;
    }
    if (!rules.empty()) add(" rules=", quote_if_needed(rules));
    if (!d->label_effective.empty()) add(" label=", quote_if_needed(d->label_effective));
    if (!d->error_condition.empty()) add(" error=", d->error_condition);
  } else if (const auto* c = std::get_if<ConnectionEvent>(&r.body)) {
    add(" ", c->kind);
    add(" peer=", quote_if_needed(c->peer.domain));
    add(" ", quote_if_needed(c->text));
  } else if (const auto* a = std::get_if<AdminEvent>(&r.body)) {
    add(" ", a->kind);
    add(" ", quote_if_needed(a->text));
  } else if (const auto* k = std::get_if<CheckpointRecord>(&r.body)) {
    add(" segment=", std::to_string(k->segment_no));
    add(" covers=", std::to_string(k->covered_seq));
    add(" key=", k->key_id);
  }
  return s;
}

}  // namespace portcullis::audit::tool
