// `portcullis-audit report`: one self-contained HTML page (inline CSS, inline
// SVG, no script, no external resource) with the counts an accreditor asks
// for, over time, and the archive's verification status.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "guard/audit/keys.h"
#include "guard/audit/reader.h"
#include "guard/audit/verify.h"
#include "tools/audit/query.h"

namespace portcullis::audit::tool {

namespace {

constexpr const char* kPalette[] = {"#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#6a1b9a",
                                    "#00838f", "#ad1457", "#9e9d24", "#4e342e", "#546e7a"};

std::string esc(std::string_view s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

using Series = std::map<std::string, std::vector<std::uint64_t>>;

// (count, name) pairs: largest count first, then by name, so tables and
// legends come out in the same order every run.
struct ByCountDesc {
  template <typename Pair>
  bool operator()(const Pair& a, const Pair& b) const {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  }
};


struct Bucketing {
  std::uint64_t start_us = 0, width_us = 60000000;
  std::size_t count = 1;
  std::size_t index(std::uint64_t t) const {
    return std::min<std::size_t>(count - 1, static_cast<std::size_t>((t - start_us) / width_us));
  }
};

Bucketing choose_buckets(std::uint64_t first, std::uint64_t last) {
  static const std::uint64_t kWidths[] = {60ull, 300ull, 900ull, 3600ull, 21600ull, 86400ull, 604800ull, 2592000ull};
  Bucketing b;
  for (std::uint64_t w : kWidths) {
    b.width_us = w * 1000000;
    b.start_us = first / b.width_us * b.width_us;
    b.count = static_cast<std::size_t>((last - b.start_us) / b.width_us) + 1;
    if (b.count <= 48) break;
  }
  return b;
}

std::string width_name(std::uint64_t us) {
  const std::uint64_t s = us / 1000000;
  if (s % 86400 == 0) return std::to_string(s / 86400) + " day(s)";
  if (s % 3600 == 0) return std::to_string(s / 3600) + " hour(s)";
  return std::to_string(s / 60) + " minute(s)";
}

// Keeps the `n` largest series and folds the rest into "(other)".
Series top_series(const Series& s, std::size_t n) {
  std::vector<std::pair<std::uint64_t, std::string>> tot;
  for (const auto& [k, v] : s) {
    std::uint64_t t = 0;
    for (auto x : v) t += x;
    tot.emplace_back(t, k);
  }
  std::sort(tot.begin(), tot.end(), ByCountDesc{});
  Series out;
  for (std::size_t i = 0; i < tot.size(); ++i) {
    const auto& v = s.at(tot[i].second);
    if (i < n) {
      out[tot[i].second] = v;
    } else {
      auto& o = out["(other)"];
      o.resize(v.size());
      for (std::size_t j = 0; j < v.size(); ++j) o[j] += v[j];
    }
  }
  return out;
}

// Verdicts keep the colours a reader expects (released green, rejected red, ...);
// every other series takes the palette in order, after those two.
const char* series_colour(const std::string& name, std::size_t index) {
  if (name == "released") return "#2e7d32";
  if (name == "rejected") return "#c62828";
  if (name == "modified") return "#1565c0";
  if (name == "shadow") return "#ef6c00";
  if (name == "(not verified)") return "#9e9e9e";
  return kPalette[(index + 2) % 10];
}

// Stacked bar chart, one bar per time bucket.
std::string stacked_chart(const std::string& title, const Series& series, const Bucketing& b) {
  const int W = 760, H = 220, left = 50, bottom = 40, top = 10;
  const int plot_w = W - left - 10, plot_h = H - bottom - top;
  std::vector<std::uint64_t> totals(b.count, 0);
  for (const auto& [k, v] : series)
    for (std::size_t i = 0; i < v.size(); ++i) totals[i] += v[i];
  const std::uint64_t max = std::max<std::uint64_t>(1, *std::max_element(totals.begin(), totals.end()));
  std::ostringstream o;
  o << "<figure><figcaption>" << esc(title) << " (per " << width_name(b.width_us) << ")</figcaption>\n";
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" role=\"img\" aria-label=\""
    << esc(title) << "\">\n";
  o << "<line x1=\"" << left << "\" y1=\"" << top + plot_h << "\" x2=\"" << left + plot_w << "\" y2=\"" << top + plot_h
    << "\" stroke=\"#333\"/>\n";
  o << "<text x=\"" << left - 4 << "\" y=\"" << top + 10 << "\" text-anchor=\"end\" font-size=\"10\">" << max << "</text>\n";
  o << "<text x=\"" << left - 4 << "\" y=\"" << top + plot_h << "\" text-anchor=\"end\" font-size=\"10\">0</text>\n";
  const double bw = static_cast<double>(plot_w) / static_cast<double>(b.count);
  std::vector<double> base(b.count, 0.0);
  std::size_t ci = 0;
  for (const auto& [name, v] : series) {
    const char* color = series_colour(name, ci++);
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!v[i]) continue;
      const double h = static_cast<double>(v[i]) * plot_h / static_cast<double>(max);
      const double y = top + plot_h - base[i] - h;
      o << "<rect x=\"" << left + bw * static_cast<double>(i) + 1 << "\" y=\"" << y << "\" width=\"" << std::max(1.0, bw - 2)
        << "\" height=\"" << h << "\" fill=\"" << color << "\"><title>" << esc(name) << ": " << v[i] << "</title></rect>\n";
      base[i] += h;
    }
  }
  const std::size_t step = std::max<std::size_t>(1, b.count / 6);
  for (std::size_t i = 0; i < b.count; i += step) {
    const std::string t = format_time_us(b.start_us + i * b.width_us).substr(0, 16);
    o << "<text x=\"" << left + bw * static_cast<double>(i) << "\" y=\"" << H - bottom + 14 << "\" font-size=\"9\">"
      << esc(t) << "</text>\n";
  }
  ci = 0;
  double lx = left;
  for (const auto& [name, v] : series) {
    o << "<rect x=\"" << lx << "\" y=\"" << H - 14 << "\" width=\"10\" height=\"10\" fill=\"" << series_colour(name, ci++) << "\"/>"
      << "<text x=\"" << lx + 13 << "\" y=\"" << H - 5 << "\" font-size=\"10\">" << esc(name) << "</text>\n";
    lx += 20 + 6.0 * static_cast<double>(std::min<std::size_t>(name.size(), 24));
  }
  o << "</svg></figure>\n";
  return o.str();
}

// A count, and how much of it comes from records the verification does not
// vouch for (after the last valid signature or at and after the first fault).
struct Count {
  std::uint64_t n = 0, untrusted = 0;
  void add(bool trusted) {
    ++n;
    if (!trusted) ++untrusted;
  }
};

std::string cell(const Count& c) {
  std::ostringstream o;
  o << "<td class=\"num" << (c.untrusted ? " untrusted" : "") << "\">" << c.n;
  if (c.untrusted) o << " <span class=\"untr\">(" << c.untrusted << " unverified)</span>";
  o << "</td>";
  return o.str();
}

std::string count_table(const std::string& title, const std::map<std::string, Count>& m, const std::string& cls) {
  std::vector<std::pair<std::uint64_t, std::string>> v;
  for (const auto& [k, c] : m) v.emplace_back(c.n, k);
  std::sort(v.begin(), v.end(), ByCountDesc{});
  std::ostringstream o;
  o << "<table class=\"" << cls << "\"><caption>" << esc(title) << "</caption><tr><th>value</th><th>count</th></tr>\n";
  if (v.empty()) o << "<tr><td colspan=\"2\">(none)</td></tr>\n";
  for (const auto& [n, k] : v) o << "<tr><td>" << esc(k) << "</td>" << cell(m.at(k)) << "</tr>\n";
  o << "</table>\n";
  return o.str();
}

std::string seq_cell(std::uint64_t seq) { return "<td class=\"num\">" + (seq ? std::to_string(seq) : std::string("-")) + "</td>"; }

std::string bare(const std::string& jid) {
  const std::size_t slash = jid.find('/');
  return slash == std::string::npos ? jid : jid.substr(0, slash);
}

std::string side_of(Direction d) {
  switch (d) {
    case Direction::LowToHigh: return "low";
    case Direction::HighToLow: return "high";
    default: return "local";
  }
}

// One row per peer domain and side.
struct PeerRow {
  Count decisions, released, rejected, modified, shadow, auth_ok, auth_fail, other_events;
  std::uint64_t first_fail_seq = 0, last_fail_seq = 0;
};

struct SenderRow {
  Count decisions, released, rejected;
};

struct Refusal {
  std::uint64_t seq = 0, time_us = 0;
  bool trusted = false;
  std::string direction, from, to, kind, rule, condition;
};

// A policy version and hash, from its load record and the decisions made under it.
struct PolicySpan {
  std::string version, hash, how;
  std::uint64_t loaded_seq = 0, loaded_us = 0, first_seq = 0, last_seq = 0, first_us = 0, last_us = 0;
  bool load_trusted = true;
  Count decisions;
};

struct ShadowRow {
  Count would_reject, would_modify;
  std::uint64_t first_seq = 0, last_seq = 0;
};

struct KeyRow {
  Count checkpoints;
  std::uint64_t first_covered = 0, last_covered = 0;
};

struct Stats {
  std::uint64_t total = 0, untrusted = 0, decisions = 0, connections = 0, admins = 0, checkpoints = 0;
  std::uint64_t first_us = 0, last_us = 0, first_seq = 0, last_seq = 0;
  std::map<std::string, Count> by_verdict, by_direction, by_rule, by_label, by_conn_event;
  std::map<std::pair<std::string, std::string>, PeerRow> peers;     // (domain, side)
  std::map<std::string, SenderRow> senders;                         // bare JID
  std::vector<Refusal> refusals;
  std::uint64_t refusals_total = 0;
  std::vector<PolicySpan> policies;
  std::map<std::pair<std::string, std::string>, ShadowRow> shadow;  // (rule id, filter)
  std::map<std::string, KeyRow> keys;
  std::vector<std::string> admin_lines;

  PolicySpan& policy(const std::string& version, const std::string& hash) {
    for (auto& p : policies)
      if (p.version == version && p.hash == hash) return p;
    policies.push_back(PolicySpan{version, hash, "", 0, 0, 0, 0, 0, 0, true, {}});
    return policies.back();
  }
};

constexpr std::size_t kMaxRefusals = 500, kMaxSenders = 50, kMaxPeers = 200;

void account(Stats& st, const StoredRecord& r, bool trusted) {
  if (st.total == 0) {
    st.first_us = r.time_us;
    st.first_seq = r.seq;
  }
  st.total++;
  if (!trusted) st.untrusted++;
  st.first_us = std::min(st.first_us, r.time_us);
  st.last_us = std::max(st.last_us, r.time_us);
  st.last_seq = r.seq;
  if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
    st.decisions++;
    const std::string verdict(to_string(d->outcome));
    st.by_verdict[verdict].add(trusted);
    st.by_direction[std::string(to_string(d->direction))].add(trusted);
    const auto rules = deciding_rules(*d);
    for (const auto& rule : rules) st.by_rule[rule].add(trusted);
    st.by_label[d->label_effective.empty() ? "(no label)" : d->label_effective].add(trusted);
    PeerRow& p = st.peers[{d->peer.domain.empty() ? "(none)" : d->peer.domain, side_of(d->direction)}];
    p.decisions.add(trusted);
    SenderRow& s = st.senders[d->from.empty() ? "(none)" : bare(d->from)];
    s.decisions.add(trusted);
    switch (d->outcome) {
      case Outcome::Released: p.released.add(trusted); s.released.add(trusted); break;
      case Outcome::Rejected: p.rejected.add(trusted); s.rejected.add(trusted); break;
      case Outcome::Modified: p.modified.add(trusted); s.released.add(trusted); break;
      case Outcome::Shadow: p.shadow.add(trusted); s.released.add(trusted); break;
    }
    if (d->outcome == Outcome::Rejected) {
      st.refusals_total++;
      if (st.refusals.size() < kMaxRefusals) {
        // What refused it: the rejecting filter (with its rule id, if any) or
        // the failing guard; the pipeline's default deny has neither.
        std::string rule;
        for (const auto& f : d->filters) {
          if (f.shadow || f.verdict != "reject") continue;
          rule = f.filter + " (" + f.type + ")" + (f.rule_id.empty() ? "" : " rule " + f.rule_id);
          break;
        }
        for (const auto& g : d->guards) {
          if (!rule.empty()) break;
          if (!g.pass) rule = "guard " + g.name + (g.reason.empty() ? "" : ": " + g.reason);
        }
        if (rule.empty()) rule = "(default deny)";
        st.refusals.push_back(Refusal{r.seq, r.time_us, trusted, std::string(to_string(d->direction)), d->from, d->to,
                                      d->stanza_kind + (d->stanza_type.empty() ? "" : "/" + d->stanza_type), rule,
                                      d->error_condition});
      }
    }
    // An edge's own refusal was not decided by the policy: not counted under one.
    const bool by_edge = d->filters.size() == 1 && d->filters[0].type == "edge";
    if (!by_edge) {
      PolicySpan& ps = st.policy(d->policy_version, d->policy_hash);
      ps.decisions.add(trusted);
      if (!ps.first_seq) {
        ps.first_seq = r.seq;
        ps.first_us = r.time_us;
      }
      ps.last_seq = r.seq;
      ps.last_us = r.time_us;
    }
    for (const auto& f : d->filters) {
      if (!f.shadow || (f.verdict != "reject" && f.verdict != "modify")) continue;
      ShadowRow& h = st.shadow[{f.rule_id.empty() ? "(no rule id)" : f.rule_id, f.filter}];
      (f.verdict == "reject" ? h.would_reject : h.would_modify).add(trusted);
      if (!h.first_seq) h.first_seq = r.seq;
      h.last_seq = r.seq;
    }
  } else if (const auto* c = std::get_if<ConnectionEvent>(&r.body)) {
    st.connections++;
    st.by_conn_event[c->kind].add(trusted);
    if (c->kind.rfind("irc-", 0) == 0) return;   // room traffic, not a peer's
    PeerRow& p = st.peers[{c->peer.domain.empty() ? "(not named)" : c->peer.domain, c->side.empty() ? "?" : c->side}];
    if (c->kind == "auth-success") {
      p.auth_ok.add(trusted);
    } else if (c->kind == "auth-failure") {
      p.auth_fail.add(trusted);
      if (!p.first_fail_seq) p.first_fail_seq = r.seq;
      p.last_fail_seq = r.seq;
    } else {
      p.other_events.add(trusted);
    }
  } else if (const auto* a = std::get_if<AdminEvent>(&r.body)) {
    st.admins++;
    if (a->kind == "policy-load" || a->kind == "policy-reload") {
      PolicySpan& ps = st.policy(a->field("version"), a->field("sha256"));
      if (!ps.loaded_seq) {
        ps.loaded_seq = r.seq;
        ps.loaded_us = r.time_us;
        ps.how = a->kind == "policy-load" ? "at start" : "reload " + a->field("requested");
        ps.load_trusted = trusted;
      }
    }
    if (a->kind != "segment-open" && st.admin_lines.size() < 200)
      st.admin_lines.push_back(format_time_us(r.time_us) + " seq " + std::to_string(r.seq) + " " + a->kind + ": " + a->text +
                               (trusted ? "" : "   [unverified]"));
  } else if (const auto* k = std::get_if<CheckpointRecord>(&r.body)) {
    st.checkpoints++;
    KeyRow& kr = st.keys[k->key_id];
    kr.checkpoints.add(trusted);
    if (!kr.first_covered) kr.first_covered = k->covered_seq;
    kr.last_covered = k->covered_seq;
  }
}

std::string tr_class(bool trusted) { return trusted ? "<tr>" : "<tr class=\"untrusted\">"; }

std::string peers_table(const Stats& st) {
  std::vector<std::pair<std::uint64_t, std::pair<std::string, std::string>>> order;
  for (const auto& [k, p] : st.peers) order.emplace_back(p.decisions.n + p.auth_ok.n + p.auth_fail.n + p.other_events.n, k);
  std::sort(order.begin(), order.end(), ByCountDesc{});
  std::ostringstream o;
  o << "<table id=\"peers\"><caption>Per peer (decisions on stanzas it sent; its connection events)</caption>\n"
       "<tr><th>peer domain</th><th>side</th><th>decisions</th><th>released</th><th>rejected</th><th>modified</th>"
       "<th>shadow</th><th>auth ok</th><th>auth failures</th><th>other events</th></tr>\n";
  if (order.empty()) o << "<tr><td colspan=\"10\">(none)</td></tr>\n";
  for (std::size_t i = 0; i < order.size() && i < kMaxPeers; ++i) {
    const auto& key = order[i].second;
    const PeerRow& p = st.peers.at(key);
    o << "<tr><td>" << esc(key.first) << "</td><td>" << esc(key.second) << "</td>" << cell(p.decisions) << cell(p.released)
      << cell(p.rejected) << cell(p.modified) << cell(p.shadow) << cell(p.auth_ok) << cell(p.auth_fail)
      << cell(p.other_events) << "</tr>\n";
  }
  o << "</table>\n";
  if (order.size() > kMaxPeers) o << "<p>" << order.size() - kMaxPeers << " more peers not shown.</p>\n";
  return o.str();
}

std::string auth_failures_table(const Stats& st) {
  std::ostringstream o;
  o << "<table id=\"authfail\"><caption>Authentication failures per peer (the domain it claimed)</caption>\n"
       "<tr><th>peer domain</th><th>side</th><th>failures</th><th>first seq</th><th>last seq</th></tr>\n";
  bool any = false;
  for (const auto& [k, p] : st.peers) {
    if (!p.auth_fail.n) continue;
    any = true;
    o << "<tr><td>" << esc(k.first) << "</td><td>" << esc(k.second) << "</td>" << cell(p.auth_fail) << seq_cell(p.first_fail_seq)
      << seq_cell(p.last_fail_seq) << "</tr>\n";
  }
  if (!any) o << "<tr><td colspan=\"5\">(none)</td></tr>\n";
  o << "</table>\n";
  return o.str();
}

std::string senders_table(const Stats& st) {
  std::vector<std::pair<std::uint64_t, std::string>> order;
  for (const auto& [k, s] : st.senders) order.emplace_back(s.decisions.n, k);
  std::sort(order.begin(), order.end(), ByCountDesc{});
  std::ostringstream o;
  o << "<table id=\"senders\"><caption>Per sender (bare JID; the " << kMaxSenders << " busiest)</caption>\n"
       "<tr><th>sender</th><th>decisions</th><th>released or modified</th><th>rejected</th></tr>\n";
  if (order.empty()) o << "<tr><td colspan=\"4\">(none)</td></tr>\n";
  for (std::size_t i = 0; i < order.size() && i < kMaxSenders; ++i) {
    const SenderRow& s = st.senders.at(order[i].second);
    o << "<tr><td>" << esc(order[i].second) << "</td>" << cell(s.decisions) << cell(s.released) << cell(s.rejected) << "</tr>\n";
  }
  o << "</table>\n";
  if (order.size() > kMaxSenders) o << "<p>" << order.size() - kMaxSenders << " more senders not shown.</p>\n";
  return o.str();
}

std::string refusals_table(const Stats& st) {
  std::ostringstream o;
  o << "<table id=\"refusals\"><caption>Refusals (rejected decisions; <code>portcullis-audit show DIR SEQ</code> prints one in full)</caption>\n"
       "<tr><th>seq</th><th>time (UTC)</th><th>direction</th><th>from</th><th>to</th><th>stanza</th><th>refused by</th>"
       "<th>error sent</th></tr>\n";
  if (st.refusals.empty()) o << "<tr><td colspan=\"8\">(none)</td></tr>\n";
  for (const Refusal& f : st.refusals) {
    o << tr_class(f.trusted) << seq_cell(f.seq) << "<td>" << esc(format_time_us(f.time_us)) << "</td><td>" << esc(f.direction)
      << "</td><td>" << esc(f.from) << "</td><td>" << esc(f.to) << "</td><td>" << esc(f.kind) << "</td><td>" << esc(f.rule)
      << "</td><td>" << esc(f.condition) << (f.trusted ? "" : " <span class=\"untr\">(unverified)</span>") << "</td></tr>\n";
  }
  o << "</table>\n";
  if (st.refusals_total > st.refusals.size())
    o << "<p>" << st.refusals_total - st.refusals.size()
      << " more refusals not shown (<code>portcullis-audit search DIR --verdict rejected</code> lists them all).</p>\n";
  return o.str();
}

std::string policies_table(const Stats& st) {
  std::ostringstream o;
  o << "<table id=\"policies\"><caption>Policy in force over time</caption>\n"
       "<tr><th>version</th><th>sha256</th><th>loaded</th><th>load record</th><th>decisions</th><th>first decision</th>"
       "<th>last decision</th></tr>\n";
  if (st.policies.empty()) o << "<tr><td colspan=\"7\">(none)</td></tr>\n";
  for (const PolicySpan& p : st.policies) {
    o << tr_class(p.load_trusted) << "<td>" << esc(p.version.empty() ? "(none)" : p.version) << "</td><td><code>"
      << esc(p.hash.substr(0, 16)) << (p.hash.size() > 16 ? "…" : "") << "</code></td><td>"
      << (p.loaded_seq ? esc(format_time_us(p.loaded_us) + " " + p.how) : std::string("(no load record in this selection)"))
      << "</td>" << seq_cell(p.loaded_seq) << cell(p.decisions) << "<td>"
      << (p.first_seq ? "seq " + std::to_string(p.first_seq) + ", " + esc(format_time_us(p.first_us)) : std::string("-"))
      << "</td><td>"
      << (p.last_seq ? "seq " + std::to_string(p.last_seq) + ", " + esc(format_time_us(p.last_us)) : std::string("-"))
      << "</td></tr>\n";
  }
  o << "</table>\n";
  return o.str();
}

std::string shadow_table(const Stats& st) {
  std::ostringstream o;
  o << "<table id=\"shadow\"><caption>Shadow-rule hits (what a rule under trial would have done; not enforced)</caption>\n"
       "<tr><th>rule</th><th>filter</th><th>would reject</th><th>would modify</th><th>first seq</th><th>last seq</th></tr>\n";
  if (st.shadow.empty()) o << "<tr><td colspan=\"6\">(none)</td></tr>\n";
  for (const auto& [k, h] : st.shadow) {
    o << "<tr><td>" << esc(k.first) << "</td><td>" << esc(k.second) << "</td>" << cell(h.would_reject) << cell(h.would_modify)
      << seq_cell(h.first_seq) << seq_cell(h.last_seq) << "</tr>\n";
  }
  o << "</table>\n";
  return o.str();
}

std::string keys_table(const Stats& st, const std::vector<std::string>& given_ids) {
  std::ostringstream o;
  o << "<table id=\"keys\"><caption>Signing keys (checkpoints by key id: hex of the public key's first 8 bytes)</caption>\n"
       "<tr><th>key id</th><th>checkpoints</th><th>first covered seq</th><th>last covered seq</th><th>given with --pubkey</th></tr>\n";
  if (st.keys.empty()) o << "<tr><td colspan=\"5\">(no checkpoint)</td></tr>\n";
  for (const auto& [id, k] : st.keys) {
    const bool given = std::find(given_ids.begin(), given_ids.end(), id) != given_ids.end();
    o << "<tr><td><code>" << esc(id) << "</code></td>" << cell(k.checkpoints) << seq_cell(k.first_covered)
      << seq_cell(k.last_covered) << "<td>" << (given ? "yes" : "<strong>no</strong>") << "</td></tr>\n";
  }
  o << "</table>\n";
  return o.str();
}

}  // namespace

int run_report(const std::string& dir, const std::string& html_file, const std::vector<std::string>& keyfiles,
               const Query& q) {
  // Verification first: it says which records the figures may rest on. A
  // record is trusted when a valid signature covers it and no fault comes
  // before it; without a key, no record is.
  std::string vclass = "unverified", vline = "NOT VERIFIED: no public key given (use --pubkey KEY)";
  std::vector<std::string> vdetails, given_ids;
  bool fault = false;
  std::uint64_t trusted_through = 0;
  // Where the first fault sits in archive order (segment file, offset): any
  // record read at or after it is untrusted whatever seq it claims (a record
  // inserted later in the file may claim an early seq).
  bool cut_at_position = false;
  std::string cut_file;
  std::uint64_t cut_offset = 0;
  if (!keyfiles.empty()) {
    VerifyOptions vo;
    for (const auto& k : keyfiles) {
      vo.public_keys.push_back(load_public_key(k));
      given_ids.push_back(key_id(vo.public_keys.back()));
    }
    const VerifyReport rep = verify_archive(dir, vo);
    vline = rep.summary_line();
    // An unauthenticated end (UNVERIFIED) fails like a fault, in its own colour.
    vclass = rep.verified() ? "ok" : rep.ok() ? "unverified" : "fault";
    fault = !rep.verified();
    trusted_through = rep.covered_through_seq;
    for (const Fault& f : rep.faults) {
      // The lowest seq any fault touches. A chain break at seq k may be the
      // sign of a forged k-1 whose own hash was recomputed: k-1 is not trusted
      // either. A fault with no seq leaves nothing trusted.
      std::uint64_t at = f.range_first ? std::min(f.range_first, f.seq ? f.seq : f.range_first) : f.seq;
      if (at != 0 && f.kind == FaultKind::ChainBreak) at -= 1;
      trusted_through = at ? std::min(trusted_through, at - 1) : 0;
      if (!f.file.empty() &&
          (!cut_at_position || f.file < cut_file || (f.file == cut_file && f.offset < cut_offset))) {
        cut_at_position = true;
        cut_file = f.file;
        cut_offset = f.offset;
      }
    }
    for (std::size_t i = 0; i < rep.faults.size() && i < 50; ++i) vdetails.push_back(rep.faults[i].describe());
    for (const auto& n : rep.notes) vdetails.push_back("note: " + n);
  }
  auto trusted = [&](const StoredRecord& r, const RecordLocation& loc) {
    if (r.seq > trusted_through) return false;
    if (cut_at_position && loc.segment != nullptr &&
        (loc.segment->name > cut_file || (loc.segment->name == cut_file && loc.offset >= cut_offset)))
      return false;
    return true;
  };

  // First pass: totals, tables and time range; second pass: time series.
  Stats st;
  std::vector<std::string> problems;
  auto on_problem = [&](const std::string& p) { problems.push_back(p); };
  std::string err;
  auto pass1 = [&](const StoredRecord& r, const RecordLocation& loc) {
    if (!q.matches(r) && !(r.type == RecordType::Checkpoint && !q.type)) return true;
    account(st, r, trusted(r, loc));
    return true;
  };
  if (!read_archive(dir, pass1, on_problem, &err)) throw InputError{err};
  const Bucketing b = choose_buckets(st.first_us, std::max(st.first_us, st.last_us));
  // Records the verification does not vouch for are charted as one grey
  // series of their own, never inside the series they claim to belong to.
  const std::string kUntrusted = "(not verified)";
  Series verdict_s, dir_s, rule_s, label_s;
  auto add = [&](Series& s, const std::string& k, std::size_t i) {
    auto& v = s[k];
    if (v.empty()) v.assign(b.count, 0);
    v[i]++;
  };
  read_archive(dir, [&](const StoredRecord& r, const RecordLocation& loc) {
    const auto* d = std::get_if<DecisionRecord>(&r.body);
    if (!d || !q.matches(r)) return true;
    const std::size_t i = b.index(r.time_us);
    if (!trusted(r, loc)) {
      for (Series* s : {&verdict_s, &dir_s, &rule_s, &label_s}) add(*s, kUntrusted, i);
      return true;
    }
    add(verdict_s, std::string(to_string(d->outcome)), i);
    add(dir_s, std::string(to_string(d->direction)), i);
    for (const auto& rule : deciding_rules(*d)) add(rule_s, rule, i);
    add(label_s, d->label_effective.empty() ? "(no label)" : d->label_effective, i);
    return true;
  }, nullptr, &err);
  // The grey series stays out of the top-N folding.
  auto top = [&](const Series& s, std::size_t n) {
    Series rest = s;
    rest.erase(kUntrusted);
    Series out = top_series(rest, n);
    if (s.count(kUntrusted)) out[kUntrusted] = s.at(kUntrusted);
    return out;
  };

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
       "<title>Portcullis audit report</title>\n<style>\n"
       "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}\n"
       "h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}\n"
       "table{border-collapse:collapse;margin:0.5em 1.5em 1em 0;display:inline-table;vertical-align:top}\n"
       "td,th{border:1px solid #bbb;padding:2px 8px;font-size:0.9em}td.num{text-align:right}\n"
       "caption{font-weight:bold;text-align:left}\n"
       ".status{padding:0.8em;border-radius:4px;font-weight:bold}\n"
       ".ok{background:#e8f5e9;border:2px solid #2e7d32}.fault{background:#ffebee;border:2px solid #c62828}\n"
       ".unverified{background:#fff8e1;border:2px solid #ef6c00}\n"
       ".untrusted{background:repeating-linear-gradient(45deg,#fff3e0,#fff3e0 4px,#ffe0b2 4px,#ffe0b2 8px)}\n"
       ".untr{color:#b71c1c;font-size:0.85em;font-weight:bold}\n"
       ".trust{padding:0.6em;border:2px dashed #c62828;background:#fff3e0}\n"
       "figure{margin:1em 0}figcaption{font-weight:bold;margin-bottom:0.3em}\n"
       "pre{background:#f5f5f5;padding:0.5em;white-space:pre-wrap;font-size:0.85em}\n"
       "</style></head><body>\n";
  h << "<h1>Portcullis audit report</h1>\n";
  h << "<p>Archive: <code>" << esc(dir) << "</code><br>Records " << st.first_seq << " to " << st.last_seq << ", "
    << esc(format_time_us(st.first_us)) << " to " << esc(format_time_us(st.last_us)) << " (UTC)<br>Generated "
    << esc(format_time_us(wall_clock_us())) << "</p>\n";
  h << "<h2>Verification status</h2>\n<p class=\"status " << vclass << "\" id=\"verification\">" << esc(vline) << "</p>\n";
  if (!vdetails.empty()) {
    h << "<pre>";
    for (const auto& d : vdetails) h << esc(d) << "\n";
    h << "</pre>\n";
  }
  if (!problems.empty()) {
    h << "<p>Unreadable parts while reading:</p><pre>";
    for (const auto& p : problems) h << esc(p) << "\n";
    h << "</pre>\n";
  }
  if (st.untrusted) {
    h << "<p class=\"trust\" id=\"trust\">" << st.untrusted << " of the " << st.total << " records below ";
    if (keyfiles.empty()) {
      h << "(all of them) are not verified: no public key was given, so none is authenticated.";
    } else if (trusted_through == 0) {
      h << "(all of them) are not verified: no valid signature covers any record before the first fault.";
    } else {
      h << "come after seq " << trusted_through
        << " (the last record a valid signature covers, short of every fault and the record before a chain break) "
           "or lie after the first fault in the files: they are not verified.";
    }
    h << " Figures from them are marked <span class=\"untr\">(N unverified)</span> on a hatched ground and charted as "
         "<em>" << esc(kUntrusted) << "</em>; they may have been altered or forged.</p>\n";
  }
  h << "<h2>Totals</h2>\n<table id=\"totals\"><tr><th>records</th><td class=\"num\">" << st.total
    << "</td></tr><tr><th>decisions</th><td class=\"num\">" << st.decisions
    << "</td></tr><tr><th>connection events</th><td class=\"num\">" << st.connections
    << "</td></tr><tr><th>administrative events</th><td class=\"num\">" << st.admins
    << "</td></tr><tr><th>checkpoints</th><td class=\"num\">" << st.checkpoints
    << "</td></tr><tr><th>not verified</th><td class=\"num" << (st.untrusted ? " untrusted" : "") << "\">" << st.untrusted
    << "</td></tr></table>\n";
  h << count_table("Decisions by verdict", st.by_verdict, "verdict");
  h << count_table("Decisions by direction", st.by_direction, "direction");
  h << count_table("Decisions by deciding rule", st.by_rule, "rule");
  h << count_table("Decisions by effective label", st.by_label, "label");
  h << count_table("Connection events", st.by_conn_event, "connection");
  h << "<h2>Peers</h2>\n" << peers_table(st) << auth_failures_table(st);
  h << "<h2>Senders</h2>\n" << senders_table(st);
  h << "<h2>Refusals</h2>\n" << refusals_table(st);
  h << "<h2>Policy</h2>\n" << policies_table(st) << shadow_table(st);
  h << "<h2>Signing keys</h2>\n" << keys_table(st, given_ids);
  h << "<h2>Over time</h2>\n";
  if (st.decisions == 0) {
    h << "<p>No decisions in this selection.</p>\n";
  } else {
    h << stacked_chart("Decisions by verdict", verdict_s, b);
    h << stacked_chart("Decisions by direction", dir_s, b);
    if (!rule_s.empty()) h << stacked_chart("Decisions by deciding rule (top 8)", top(rule_s, 8), b);
    h << stacked_chart("Decisions by effective label (top 8)", top(label_s, 8), b);
  }
  h << "<h2>Administrative events</h2>\n<pre>";
  for (const auto& l : st.admin_lines) h << esc(l) << "\n";
  if (st.admin_lines.empty()) h << "(none)\n";
  h << "</pre>\n</body></html>\n";

  std::ofstream out(html_file, std::ios::binary | std::ios::trunc);
  out << h.str();
  out.close();
  if (!out) throw InputError{"report: cannot write " + html_file};
  std::cout << "wrote " << html_file << ": " << st.decisions << " decisions, " << vline << "\n";
  return fault ? 1 : 0;
}

}  // namespace portcullis::audit::tool
