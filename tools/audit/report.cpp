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

struct Stats {
  std::uint64_t total = 0, decisions = 0, connections = 0, admins = 0, checkpoints = 0;
  std::uint64_t first_us = 0, last_us = 0, first_seq = 0, last_seq = 0;
  std::map<std::string, std::uint64_t> by_verdict, by_direction, by_rule, by_label, by_conn_event;
  std::vector<std::string> admin_lines;
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
  std::sort(tot.begin(), tot.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
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

std::string count_table(const std::string& title, const std::map<std::string, std::uint64_t>& m, const std::string& cls) {
  std::vector<std::pair<std::uint64_t, std::string>> v;
  for (const auto& [k, n] : m) v.emplace_back(n, k);
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  std::ostringstream o;
  o << "<table class=\"" << cls << "\"><caption>" << esc(title) << "</caption><tr><th>value</th><th>count</th></tr>\n";
  if (v.empty()) o << "<tr><td colspan=\"2\">(none)</td></tr>\n";
  for (const auto& [n, k] : v) o << "<tr><td>" << esc(k) << "</td><td class=\"num\">" << n << "</td></tr>\n";
  o << "</table>\n";
  return o.str();
}

}  // namespace

int run_report(const std::string& dir, const std::string& html_file, const std::vector<std::string>& keyfiles,
               const Query& q) {
  // First pass: totals and time range; second pass: time series.
  Stats st;
  std::vector<std::string> problems;
  auto on_problem = [&](const std::string& p) { problems.push_back(p); };
  std::string err;
  auto pass1 = [&](const StoredRecord& r, const RecordLocation&) {
    if (!q.matches(r) && !(r.type == RecordType::Checkpoint && !q.type)) return true;
    if (st.total == 0) {
      st.first_us = r.time_us;
      st.first_seq = r.seq;
    }
    st.total++;
    st.first_us = std::min(st.first_us, r.time_us);
    st.last_us = std::max(st.last_us, r.time_us);
    st.last_seq = r.seq;
    if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
      st.decisions++;
      st.by_verdict[std::string(to_string(d->outcome))]++;
      st.by_direction[std::string(to_string(d->direction))]++;
      for (const auto& rule : deciding_rules(*d)) st.by_rule[rule]++;
      st.by_label[d->label_effective.empty() ? "(no label)" : d->label_effective]++;
    } else if (const auto* c = std::get_if<ConnectionEvent>(&r.body)) {
      st.connections++;
      st.by_conn_event[c->kind]++;
    } else if (const auto* a = std::get_if<AdminEvent>(&r.body)) {
      st.admins++;
      if (a->kind != "segment-open" && st.admin_lines.size() < 200)
        st.admin_lines.push_back(format_time_us(r.time_us) + " seq " + std::to_string(r.seq) + " " + a->kind + ": " + a->text);
    } else {
      st.checkpoints++;
    }
    return true;
  };
  if (!read_archive(dir, pass1, on_problem, &err)) throw InputError{err};
  const Bucketing b = choose_buckets(st.first_us, std::max(st.first_us, st.last_us));
  Series verdict_s, dir_s, rule_s, label_s;
  auto add = [&](Series& s, const std::string& k, std::size_t i) {
    auto& v = s[k];
    if (v.empty()) v.assign(b.count, 0);
    v[i]++;
  };
  read_archive(dir, [&](const StoredRecord& r, const RecordLocation&) {
    const auto* d = std::get_if<DecisionRecord>(&r.body);
    if (!d || !q.matches(r)) return true;
    const std::size_t i = b.index(r.time_us);
    add(verdict_s, std::string(to_string(d->outcome)), i);
    add(dir_s, std::string(to_string(d->direction)), i);
    for (const auto& rule : deciding_rules(*d)) add(rule_s, rule, i);
    add(label_s, d->label_effective.empty() ? "(no label)" : d->label_effective, i);
    return true;
  }, nullptr, &err);

  // Verification status.
  std::string vclass = "unverified", vline = "NOT VERIFIED: no public key given (use --pubkey KEY)";
  std::vector<std::string> vdetails;
  bool fault = false;
  if (!keyfiles.empty()) {
    VerifyOptions vo;
    for (const auto& k : keyfiles) vo.public_keys.push_back(load_public_key(k));
    const VerifyReport rep = verify_archive(dir, vo);
    vline = rep.summary_line();
    // An unauthenticated end (UNVERIFIED) fails like a fault, in its own colour.
    vclass = rep.verified() ? "ok" : rep.ok() ? "unverified" : "fault";
    fault = !rep.verified();
    for (std::size_t i = 0; i < rep.faults.size() && i < 50; ++i) vdetails.push_back(rep.faults[i].describe());
    for (const auto& n : rep.notes) vdetails.push_back("note: " + n);
  }

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
  h << "<h2>Totals</h2>\n<table id=\"totals\"><tr><th>records</th><td class=\"num\">" << st.total
    << "</td></tr><tr><th>decisions</th><td class=\"num\">" << st.decisions
    << "</td></tr><tr><th>connection events</th><td class=\"num\">" << st.connections
    << "</td></tr><tr><th>administrative events</th><td class=\"num\">" << st.admins
    << "</td></tr><tr><th>checkpoints</th><td class=\"num\">" << st.checkpoints << "</td></tr></table>\n";
  h << count_table("Decisions by verdict", st.by_verdict, "verdict");
  h << count_table("Decisions by direction", st.by_direction, "direction");
  h << count_table("Decisions by deciding rule", st.by_rule, "rule");
  h << count_table("Decisions by effective label", st.by_label, "label");
  h << count_table("Connection events", st.by_conn_event, "connection");
  h << "<h2>Over time</h2>\n";
  if (st.decisions == 0) {
    h << "<p>No decisions in this selection.</p>\n";
  } else {
    h << stacked_chart("Decisions by verdict", verdict_s, b);
    h << stacked_chart("Decisions by direction", dir_s, b);
    if (!rule_s.empty()) h << stacked_chart("Decisions by deciding rule (top 8)", top_series(rule_s, 8), b);
    h << stacked_chart("Decisions by effective label (top 8)", top_series(label_s, 8), b);
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
