#include "tools/ctl/ctl.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <set>
#include <vector>

namespace portcullis::ctl {

namespace json = audit::json;

namespace {

constexpr std::size_t kMaxReplyBytes = 16 * 1024 * 1024;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string fmt(const char* f, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

std::string duration(std::int64_t ms) {
  if (ms < 0) return "-";
  const std::int64_t s = ms / 1000;
  if (s < 60) return fmt("%lld.%llds", static_cast<long long>(s), static_cast<long long>((ms % 1000) / 100));
  if (s < 3600) return fmt("%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  if (s < 86400) return fmt("%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  return fmt("%lldd%02lldh", static_cast<long long>(s / 86400), static_cast<long long>(s / 3600 % 24));
}

std::string bytes(std::uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt("%llu B", static_cast<unsigned long long>(b)) : fmt("%.1f %s", v, units[u]);
}

std::string utc(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The report of the child with this role ("edge(low)", "filter", ...), or null.
const json::Value* report_of(const json::Value& status, std::string_view role) {
  for (const json::Value& c : status["children"].as_array()) {
    if (c["role"].as_string() == role && c["report"].is_object()) return &c["report"];
  }
  return nullptr;
}

std::vector<const json::Value*> edge_reports(const json::Value& status) {
  std::vector<const json::Value*> out;
  for (const json::Value& c : status["children"].as_array()) {
    if (c["role"].as_string() != "filter" && c["report"].is_object()) out.push_back(&c["report"]);
  }
  return out;
}

}  // namespace

std::optional<json::Value> ask(const std::string& path, const std::string& command, std::string& error,
                               int timeout_ms) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path) {
    error = "control socket path empty or too long: " + path;
    return std::nullopt;
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  Fd s;
  s.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    error = "cannot reach the control socket " + path + ": " + std::strerror(e) +
            (e == EACCES ? " (is this user in the operator group?)"
             : e == ENOENT || e == ECONNREFUSED ? " (is portcullisd running, with <control> in its config?)"
                                                : "");
    return std::nullopt;
  }
  const std::string line = command + "\n";
  if (::send(s.fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    error = "cannot send to the control socket " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{s.fd, POLLIN, 0};
    const int r = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      error = "no answer from the control socket " + path + " within " + std::to_string(timeout_ms / 1000) + " s";
      return std::nullopt;
    }
    char buf[65536];
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "reading the control socket " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
    if (reply.size() > kMaxReplyBytes) {
      error = "the control socket's answer is longer than " + std::to_string(kMaxReplyBytes) + " bytes";
      return std::nullopt;
    }
  }
  std::string perr;
  std::optional<json::Value> v = json::parse(reply, &perr);
  if (!v || !v->is_object()) {
    error = "the control socket's answer is not a JSON object" + (perr.empty() ? "" : ": " + perr);
    return std::nullopt;
  }
  if ((*v)["error"].is_string()) {
    error = "portcullisd: " + (*v)["error"].as_string();
    return std::nullopt;
  }
  return v;
}

namespace {

// A child's report is its own claim and may carry text from remote peers:
// control characters (C0, DEL and the UTF-8 encoded C1 range, which
// terminals act on) become '?' so no view can move the cursor or retitle
// the operator's terminal.
std::string printable(const std::string& in) {
  std::string o;
  o.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x20 || c == 0x7f) {
      o += '?';
    } else if (c == 0xc2 && i + 1 < in.size() && static_cast<unsigned char>(in[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(in[i + 1]) <= 0x9f) {
      o += '?';
      ++i;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o;
}

void make_printable(json::Value& v) {
  if (v.is_string()) {
    v = json::Value(printable(v.as_string()));
  } else if (v.is_array()) {
    for (json::Value& e : v.array()) make_printable(e);
  } else if (v.is_object()) {
    for (auto& [k, e] : v.object()) make_printable(e);
  }
}

// The side a child of this role serves: the supervisor started it, so its
// role, not the report, says which side a figure belongs to.
std::string side_of_role(const std::string& role) {
  if (role == "edge(low)") return "low";
  if (role == "edge(high)") return "high";
  if (role == "node") return "node";
  return "";
}

}  // namespace

json::Value unpack(const json::Value& reply) {
  json::Value out = reply;
  if (!out.is_object() || !out.object().count("children")) return out;
  json::Value& children = out.object().find("children")->second;
  if (!children.is_array()) return out;
  for (json::Value& c : children.array()) {
    if (!c.is_object() || !c["report"].is_string()) continue;
    std::string err;
    std::optional<json::Value> r = json::parse(c["report"].as_string(), &err);
    if (r && r->is_object()) {
      make_printable(*r);
      const std::string role = c["role"].as_string();
      const std::string side = side_of_role(role);
      if (role != "filter") {
        if (r->has("side") && (*r)["side"].as_string() != side) {
          c.object()["report_error"] = "the " + role + " reports side '" + (*r)["side"].as_string() +
                                       "'; its figures are shown under side '" + side + "'";
        }
        r->object()["side"] = side;
      }
      r->object()["role"] = role;
      c.object()["report"] = std::move(*r);
    } else {
      c.object()["report_error"] = printable("the child's report is not a JSON object: " + err);
      c.object().erase("report");
    }
  }
  return out;
}

std::string render_status(const json::Value& st, bool& degraded) {
  degraded = false;
  std::string o;
  const json::Value& p = st["portcullis"];
  o += fmt("portcullis %s, %s (%s), pid %lld, up %s, config %s\n", p["version"].as_string().c_str(),
           p["kind"].as_string().c_str(), p["mode"].as_string().c_str(), static_cast<long long>(p["pid"].as_int()),
           duration(p["now_unix_ms"].as_int() - p["started_unix_ms"].as_int()).c_str(),
           p["config"].as_string().c_str());
  if (p["stopping"].as_bool()) {
    o += "STOPPING\n";
    degraded = true;
  }
  o += "children:\n";
  for (const json::Value& c : st["children"].as_array()) {
    const bool running = c["state"].as_string() == "running";
    std::string line = fmt("  %-11s %-10s", c["role"].as_string().c_str(), c["state"].as_string().c_str());
    if (running) {
      line += fmt(" pid %-7lld up %-8s heartbeat %s ago", static_cast<long long>(c["pid"].as_int()),
                  duration(c["up_ms"].as_int()).c_str(), duration(c["heartbeat_age_ms"].as_int()).c_str());
    }
    line += fmt("  restarts %llu", static_cast<unsigned long long>(c["restarts"].as_uint()));
    if (!c["last_exit"].as_string().empty()) line += " (last: " + c["last_exit"].as_string() + ")";
    if (running && !c["answered"].as_bool()) line += "  NO ANSWER";
    if (c["report_error"].is_string()) line += "  BAD REPORT: " + c["report_error"].as_string();
    if (!running || !c["answered"].as_bool() || c["report_error"].is_string()) degraded = true;
    o += line + "\n";
  }
  if (const json::Value* f = report_of(st, "filter")) {
    const json::Value& pol = (*f)["policy"];
    o += fmt("policy %s sha256 %s, loaded %s from %s; reloads %llu, failed %llu\n", pol["version"].as_string().c_str(),
             pol["sha256"].as_string().c_str(), utc(pol["loaded_unix_ms"].as_int()).c_str(),
             pol["file"].as_string().c_str(), static_cast<unsigned long long>(pol["reloads"].as_uint()),
             static_cast<unsigned long long>(pol["reload_failures"].as_uint()));
    if (!pol["last_reload_error"].as_string().empty()) o += "  last reload error: " + pol["last_reload_error"].as_string() + "\n";
    const json::Value& a = (*f)["audit"];
    o += fmt("audit %s: %s, last record #%llu, lag %llu records, %llu failed", a["dir"].as_string().c_str(),
             a["healthy"].as_bool() ? "healthy" : "NOT HEALTHY", static_cast<unsigned long long>(a["last_seq"].as_uint()),
             static_cast<unsigned long long>(a["lag_records"].as_uint()),
             static_cast<unsigned long long>(a["failed"].as_uint()));
    if (a.has("free_bytes")) {
      o += ", free " + bytes(a["free_bytes"].as_uint()) + " of " + bytes(a["size_bytes"].as_uint());
    }
    o += "\n";
    if (!a["healthy"].as_bool()) degraded = true;
    const json::Value& c = (*f)["counters"];
    o += fmt("filter: released %llu, rejected %llu, guard blocks %llu, far confirmed %llu, delivered %llu, "
             "in doubt %llu; deciding %llu, awaiting the far edge %llu, awaiting delivery %llu\n",
             static_cast<unsigned long long>(c["released"].as_uint()),
             static_cast<unsigned long long>(c["rejected"].as_uint()),
             static_cast<unsigned long long>(c["guard_blocks"].as_uint()),
             static_cast<unsigned long long>(c["far_confirmed"].as_uint()),
             static_cast<unsigned long long>(c["far_delivered"].as_uint()),
             static_cast<unsigned long long>(c["far_in_doubt"].as_uint()),
             static_cast<unsigned long long>((*f)["deciding"].as_uint()),
             static_cast<unsigned long long>((*f)["awaiting_far"].as_uint()),
             static_cast<unsigned long long>((*f)["awaiting_delivery"].as_uint()));
  }
  for (const json::Value* e : edge_reports(st)) {
    const json::Value& r = *e;
    const json::Value& c = r["counters"];
    o += fmt("side %s (%s): %llu inbound and %llu outbound streams; filter link %s; in flight %llu (%s)%s\n",
             r["side"].as_string().c_str(), r["role"].as_string().c_str(),
             static_cast<unsigned long long>(r["streams_inbound"].as_uint()),
             static_cast<unsigned long long>(r["streams_outbound"].as_uint()), r["filter_link"].as_string().c_str(),
             static_cast<unsigned long long>(r["in_flight"].as_uint()), bytes(r["in_flight_bytes"].as_uint()).c_str(),
             r["held_back"].as_bool() ? ", senders held back" : "");
    o += fmt("  stanzas in %llu, delivered %llu, bounced %llu here + %llu via the filter, overload %llu, "
             "flow pauses %llu\n",
             static_cast<unsigned long long>(c["inbound_stanzas"].as_uint()),
             static_cast<unsigned long long>(c["released_delivered"].as_uint()),
             static_cast<unsigned long long>(c["bounced_local"].as_uint()),
             static_cast<unsigned long long>(c["bounced_via_filter"].as_uint()),
             static_cast<unsigned long long>(c["overload_bounced"].as_uint()),
             static_cast<unsigned long long>(c["flow_pauses"].as_uint()));
    if (c["room_stanzas_in"].as_uint() + c["room_relays_out"].as_uint() > 0 || !r["rooms"].as_array().empty()) {
      std::uint64_t here = 0, elsewhere = 0;
      for (const json::Value& room : r["rooms"].as_array()) {
        here += room["local_occupants"].as_uint();
        elsewhere += room["remote_occupants"].as_uint();
      }
      o += fmt("  rooms: %zu hosted, %llu occupants here, %llu elsewhere; room stanzas in %llu, relayed out %llu\n",
               r["rooms"].as_array().size(), static_cast<unsigned long long>(here),
               static_cast<unsigned long long>(elsewhere),
               static_cast<unsigned long long>(c["room_stanzas_in"].as_uint()),
               static_cast<unsigned long long>(c["room_relays_out"].as_uint()));
    }
    if (r["filter_link"].as_string() != "up" && r["role"].as_string() != "node") degraded = true;
  }
  return o;
}

std::string render_peers(const json::Value& st) {
  std::string o = fmt("%-5s %-8s %-24s %-24s %-22s %-14s %-13s %-8s %-20s %9s %9s %6s\n", "SIDE", "DIR", "LOCAL",
                      "REMOTE", "ADDRESS", "STATE", "AUTH", "TLS", "SINCE", "STANZAS", "PENDING", "QUEUE");
  for (const json::Value* e : edge_reports(st)) {
    for (const json::Value& l : (*e)["streams"].as_array()) {
      std::string state = l["state"].as_string();
      if (!l["reading"].as_bool(true)) state += "(held)";
      o += fmt("%-5s %-8s %-24s %-24s %-22s %-14s %-13s %-8s %-20s %9llu %9llu %6llu\n",
               (*e)["side"].as_string().c_str(), l["direction"].as_string().c_str(),
               l["local"].as_string().empty() ? "-" : l["local"].as_string().c_str(),
               l["remote"].as_string().empty() ? "-" : l["remote"].as_string().c_str(),
               l["address"].as_string().c_str(), state.c_str(),
               l["auth"].as_string().empty() ? "-" : l["auth"].as_string().c_str(),
               l["tls"].as_string().empty() ? "plain" : l["tls"].as_string().c_str(),
               utc(l["since_unix_ms"].as_int()).c_str(), static_cast<unsigned long long>(l["stanzas"].as_uint()),
               static_cast<unsigned long long>(l["pending_bytes"].as_uint()),
               static_cast<unsigned long long>(l["queued"].as_uint()));
    }
    const std::uint64_t total = (*e)["streams_inbound"].as_uint() + (*e)["streams_outbound"].as_uint();
    const std::size_t shown = (*e)["streams"].as_array().size();
    if (shown < total) o += fmt("(%s: %zu of %llu streams shown)\n", (*e)["side"].as_string().c_str(), shown,
                               static_cast<unsigned long long>(total));
  }
  return o;
}

std::string render_rooms(const json::Value& st) {
  std::string o;
  for (const json::Value* e : edge_reports(st)) {
    for (const json::Value& r : (*e)["rooms"].as_array()) {
      o += fmt("%s (side %s): %llu here, %llu elsewhere; %llu messages, %llu relayed out, %llu links lost\n",
               r["jid"].as_string().c_str(), (*e)["side"].as_string().c_str(),
               static_cast<unsigned long long>(r["local_occupants"].as_uint()),
               static_cast<unsigned long long>(r["remote_occupants"].as_uint()),
               static_cast<unsigned long long>(r["messages"].as_uint()),
               static_cast<unsigned long long>(r["relayed_out"].as_uint()),
               static_cast<unsigned long long>(r["links_lost"].as_uint()));
      for (const json::Value& l : r["federated"].as_array()) {
        o += "  federated with " + l["room"].as_string() + ": " + l["state"].as_string() + "\n";
      }
      if (r["irc"].is_object()) {
        const json::Value& g = r["irc"];
        o += fmt("  IRC: %s, %llu IRC users, %llu to IRC, %llu from IRC, %llu refused, %llu reconnects\n",
                 g["connected"].as_bool() ? "connected" : "NOT CONNECTED",
                 static_cast<unsigned long long>(g["irc_users"].as_uint()),
                 static_cast<unsigned long long>(g["to_irc"].as_uint()),
                 static_cast<unsigned long long>(g["from_irc"].as_uint()),
                 static_cast<unsigned long long>(g["refused"].as_uint()),
                 static_cast<unsigned long long>(g["reconnects"].as_uint()));
      }
    }
  }
  if (o.empty()) o = "no rooms\n";
  return o;
}

namespace {

// OpenMetrics: label values escape \, " and newline.
std::string label_value(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

class Exposition {
 public:
  // A family: its TYPE and HELP lines are written once, before its first sample.
  // A name declared before (a child's counter named like a fixed family)
  // is refused: its samples are dropped rather than mixed into the other.
  bool family(const std::string& name, const char* type, const char* help) {
    current_ = name;
    skip_ = !declared_.insert(name).second;
    if (skip_) return false;
    out_ += "# TYPE " + name + " " + type + "\n# HELP " + name + " " + help + "\n";
    counter_ = std::string(type) == "counter";
    return true;
  }
  void sample(const std::vector<std::pair<std::string, std::string>>& labels, const std::string& value,
              const char* suffix = nullptr) {
    if (skip_) return;
    out_ += current_ + (suffix ? suffix : counter_ ? "_total" : "");
    if (!labels.empty()) {
      out_ += "{";
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i) out_ += ",";
        out_ += labels[i].first + "=\"" + label_value(labels[i].second) + "\"";
      }
      out_ += "}";
    }
    out_ += " " + value + "\n";
  }
  void sample(const std::vector<std::pair<std::string, std::string>>& labels, std::uint64_t v) {
    sample(labels, std::to_string(v));
  }
  std::string finish() { return out_ + "# EOF\n"; }

 private:
  std::string out_;
  std::string current_;
  bool counter_ = false;
  bool skip_ = false;
  std::set<std::string> declared_;
};

// A child's counter name becomes part of a metric name: only
// [a-z_][a-z0-9_]*, at most 64 characters; anything else is left out.
bool metric_name_ok(std::string_view n) {
  if (n.empty() || n.size() > 64 || (n[0] >= '0' && n[0] <= '9')) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string seconds(std::int64_t ms) { return fmt("%.3f", static_cast<double>(ms) / 1000.0); }

}  // namespace

std::string render_metrics(const json::Value* st) {
  Exposition x;
  x.family("portcullis_up", "gauge", "1 when portcullisd's control socket answered this scrape, else 0.");
  x.sample({}, st ? 1 : 0);
  if (st == nullptr) return x.finish();
  const json::Value& p = (*st)["portcullis"];
  x.family("portcullis_build", "info", "The running portcullisd: version, kind and supervision mode.");
  x.sample({{"version", p["version"].as_string()}, {"kind", p["kind"].as_string()}, {"mode", p["mode"].as_string()}},
           "1", "_info");
  x.family("portcullis_start_time_seconds", "gauge", "When portcullisd started (Unix time).");
  x.sample({}, seconds(p["started_unix_ms"].as_int()));
  // Children, as the supervisor sees them.
  const auto children = (*st)["children"].as_array();
  x.family("portcullis_child_running", "gauge", "1 while the child process runs, 0 while it waits for its restart.");
  for (const json::Value& c : children) x.sample({{"role", c["role"].as_string()}}, c["state"].as_string() == "running" ? 1 : 0);
  x.family("portcullis_child_answered", "gauge", "1 when the child answered the supervisor's status question in time.");
  for (const json::Value& c : children) x.sample({{"role", c["role"].as_string()}}, c["answered"].as_bool() && !c["report_error"].is_string() ? 1 : 0);
  x.family("portcullis_child_restarts", "counter", "Restarts of the child since portcullisd started.");
  for (const json::Value& c : children) x.sample({{"role", c["role"].as_string()}}, c["restarts"].as_uint());
  x.family("portcullis_child_heartbeat_age_seconds", "gauge", "Time since the child's last heartbeat.");
  for (const json::Value& c : children) {
    if (c["heartbeat_age_ms"].as_int(-1) >= 0) x.sample({{"role", c["role"].as_string()}}, seconds(c["heartbeat_age_ms"].as_int()));
  }
  x.family("portcullis_child_uptime_seconds", "gauge", "Time since the child's last (re)start.");
  for (const json::Value& c : children) {
    if (c["up_ms"].as_int(-1) >= 0) x.sample({{"role", c["role"].as_string()}}, seconds(c["up_ms"].as_int()));
  }
  if (const json::Value* f = report_of(*st, "filter")) {
    const json::Value& pol = (*f)["policy"];
    x.family("portcullis_policy", "info", "The policy in force: its version and the SHA-256 of its file.");
    x.sample({{"version", pol["version"].as_string()}, {"sha256", pol["sha256"].as_string()}}, "1", "_info");
    x.family("portcullis_policy_loaded_time_seconds", "gauge", "When the policy in force was loaded (Unix time).");
    x.sample({}, seconds(pol["loaded_unix_ms"].as_int()));
    x.family("portcullis_policy_reloads", "counter", "Successful policy reloads since the filter started.");
    x.sample({}, pol["reloads"].as_uint());
    x.family("portcullis_policy_reload_failures", "counter", "Failed policy reloads (the running policy was kept).");
    x.sample({}, pol["reload_failures"].as_uint());
    x.family("portcullis_filter_deciding", "gauge", "Stanzas between the filter's decision and its action.");
    x.sample({}, (*f)["deciding"].as_uint());
    x.family("portcullis_filter_awaiting_far", "gauge", "Released stanzas the far edge has not confirmed yet.");
    x.sample({}, (*f)["awaiting_far"].as_uint());
    x.family("portcullis_filter_awaiting_delivery", "gauge",
             "Released stanzas the far edge took, not yet known delivered or lost.");
    x.sample({}, (*f)["awaiting_delivery"].as_uint());
    // The counters after the fixed families, so a counter named like one of
    // them is the one refused.
    for (const auto& [name, v] : (*f)["counters"].as_object()) {
      if (!metric_name_ok(name) || !v.is_int()) continue;
      if (x.family("portcullis_filter_" + name, "counter", "Filter counter (see portcullisctl(1)).")) x.sample({}, v.as_uint());
    }
    const json::Value& a = (*f)["audit"];
    x.family("portcullis_audit_healthy", "gauge", "1 while the audit archive accepts and syncs records.");
    x.sample({}, a["healthy"].as_bool() ? 1 : 0);
    x.family("portcullis_audit_last_seq", "gauge", "Sequence number of the last audit record written.");
    x.sample({}, a["last_seq"].as_uint());
    x.family("portcullis_audit_lag_records", "gauge", "Audit records handed to the writer, not yet durable.");
    x.sample({}, a["lag_records"].as_uint());
    x.family("portcullis_audit_records_failed", "counter", "Audit records that could not be made durable.");
    x.sample({}, a["failed"].as_uint());
    x.family("portcullis_audit_checkpoints", "counter", "Signed checkpoints written since the filter started.");
    x.sample({}, a["checkpoints"].as_uint());
    if (a.has("free_bytes")) {
      x.family("portcullis_audit_free_bytes", "gauge", "Free space on the archive's filesystem.");
      x.sample({}, a["free_bytes"].as_uint());
      x.family("portcullis_audit_size_bytes", "gauge", "Size of the archive's filesystem.");
      x.sample({}, a["size_bytes"].as_uint());
    }
  }
  const auto edges = edge_reports(*st);
  x.family("portcullis_edge_filter_link_up", "gauge", "1 while the edge's channel to the filter is up.");
  for (const json::Value* e : edges) {
    // A standalone node has no filter: no sample rather than a false 0.
    if ((*e)["role"].as_string() == "node") continue;
    x.sample({{"side", (*e)["side"].as_string()}}, (*e)["filter_link"].as_string() == "up" ? 1 : 0);
  }
  x.family("portcullis_edge_in_flight", "gauge", "Stanzas sent to the filter and not yet acknowledged.");
  for (const json::Value* e : edges) x.sample({{"side", (*e)["side"].as_string()}}, (*e)["in_flight"].as_uint());
  x.family("portcullis_edge_in_flight_bytes", "gauge", "Bytes of the stanzas in flight.");
  for (const json::Value* e : edges) x.sample({{"side", (*e)["side"].as_string()}}, (*e)["in_flight_bytes"].as_uint());
  x.family("portcullis_edge_held_back", "gauge", "1 while the edge has stopped reading its senders (flow control).");
  for (const json::Value* e : edges) x.sample({{"side", (*e)["side"].as_string()}}, (*e)["held_back"].as_bool() ? 1 : 0);
  x.family("portcullis_edge_streams", "gauge", "S2S streams of the side, by direction.");
  for (const json::Value* e : edges) {
    x.sample({{"side", (*e)["side"].as_string()}, {"direction", "inbound"}}, (*e)["streams_inbound"].as_uint());
    x.sample({{"side", (*e)["side"].as_string()}, {"direction", "outbound"}}, (*e)["streams_outbound"].as_uint());
  }
  x.family("portcullis_stream_stanzas", "counter",
           "Stanzas per listed S2S stream (inbound: received, outbound: written); at most 200 streams per side.");
  for (const json::Value* e : edges) {
    for (const json::Value& l : (*e)["streams"].as_array()) {
      x.sample({{"side", (*e)["side"].as_string()}, {"direction", l["direction"].as_string()},
                {"local", l["local"].as_string()}, {"remote", l["remote"].as_string()},
                {"address", l["address"].as_string()}},
               l["stanzas"].as_uint());
    }
  }
  x.family("portcullis_stream_pending_bytes", "gauge", "Bytes written to a listed stream, not yet taken by its peer.");
  for (const json::Value* e : edges) {
    for (const json::Value& l : (*e)["streams"].as_array()) {
      x.sample({{"side", (*e)["side"].as_string()}, {"direction", l["direction"].as_string()},
                {"local", l["local"].as_string()}, {"remote", l["remote"].as_string()},
                {"address", l["address"].as_string()}},
               l["pending_bytes"].as_uint());
    }
  }
  x.family("portcullis_room_occupants", "gauge", "Occupants of a hosted room, here (this node) or elsewhere (federated).");
  for (const json::Value* e : edges) {
    for (const json::Value& r : (*e)["rooms"].as_array()) {
      x.sample({{"side", (*e)["side"].as_string()}, {"room", r["jid"].as_string()}, {"where", "here"}},
               r["local_occupants"].as_uint());
      x.sample({{"side", (*e)["side"].as_string()}, {"room", r["jid"].as_string()}, {"where", "elsewhere"}},
               r["remote_occupants"].as_uint());
    }
  }
  x.family("portcullis_room_messages", "counter", "Groupchat messages accepted into a hosted room.");
  for (const json::Value* e : edges) {
    for (const json::Value& r : (*e)["rooms"].as_array()) {
      x.sample({{"side", (*e)["side"].as_string()}, {"room", r["jid"].as_string()}}, r["messages"].as_uint());
    }
  }
  // The edges' counters last (see the filter's above); an edge without a
  // counter the other has gives no sample, not a 0.
  std::set<std::string> counter_names;
  for (const json::Value* e : edges) {
    for (const auto& [name, v] : (*e)["counters"].as_object()) {
      if (metric_name_ok(name) && v.is_int()) counter_names.insert(name);
    }
  }
  for (const std::string& name : counter_names) {
    if (!x.family("portcullis_edge_" + name, "counter", "Edge counter, per side (see portcullisctl(1)).")) continue;
    for (const json::Value* e : edges) {
      const json::Value& v = (*e)["counters"][name];
      if (v.is_int()) x.sample({{"side", (*e)["side"].as_string()}}, v.as_uint());
    }
  }
  return x.finish();
}

}  // namespace portcullis::ctl
