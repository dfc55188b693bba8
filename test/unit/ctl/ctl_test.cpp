// portcullisctl's views of a status reply. The children's reports are built
// here as a compromised child could write them: the views must neither let a
// report speak for another side, nor inject metrics, nor drive the terminal.
#include <catch2/catch.hpp>

#include <string>

#include "guard/audit/json.h"
#include "tools/ctl/ctl.h"

namespace json = portcullis::audit::json;
namespace ctl = portcullis::ctl;

namespace {

std::string edge_report(const std::string& side, const std::string& counters, const std::string& extra = "") {
  return R"({"role":"x","side":")" + side + R"(","fronts":[],"filter_link":"up","counters":{)" + counters +
         R"(},"in_flight":0,"in_flight_bytes":0,"held_back":false,"streams_inbound":0,"streams_outbound":0,)"
         R"("streams":[)" + extra + R"(],"rooms":[]})";
}

// A supervisor reply with these three report texts (as the supervisor passes
// them on: strings, never parsed by it).
json::Value reply(const std::string& low, const std::string& filter, const std::string& high) {
  json::Object p{{"version", "1"}, {"kind", "sandwich"}, {"mode", "separated"}, {"pid", 1},
                 {"started_unix_ms", 1000}, {"now_unix_ms", 2000}, {"config", "/etc/portcullis/portcullis.xml"}};
  json::Array children;
  for (const auto& [role, rep] : {std::pair<std::string, std::string>{"edge(low)", low},
                                  {"filter", filter}, {"edge(high)", high}}) {
    children.push_back(json::Object{{"role", role}, {"state", "running"}, {"pid", 2}, {"up_ms", 5},
                                    {"heartbeat_age_ms", 1}, {"restarts", 0}, {"last_exit", ""},
                                    {"answered", true}, {"report", rep}});
  }
  return ctl::unpack(json::Value(json::Object{{"portcullis", std::move(p)}, {"children", std::move(children)}}));
}

const std::string kFilter =
    R"({"policy":{"version":"p-1","sha256":"ab","file":"/p.xml","loaded_unix_ms":1,"reloads":0,)"
    R"("reload_failures":0,"last_reload_error":""},"counters":{"released":7,"rejected":1},"deciding":0,)"
    R"("awaiting_far":0,"audit":{"dir":"/a","healthy":true,"last_seq":3,"lag_records":0,"failed":0,"checkpoints":0}})";

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("metrics: each side's counters under its own side label", "[ctl]") {
  const json::Value st = reply(edge_report("low", R"("inbound_stanzas":25)"), kFilter,
                               edge_report("high", R"("inbound_stanzas":4)"));
  const std::string m = ctl::render_metrics(&st);
  CHECK(m.find("portcullis_edge_inbound_stanzas_total{side=\"low\"} 25\n") != std::string::npos);
  CHECK(m.find("portcullis_edge_inbound_stanzas_total{side=\"high\"} 4\n") != std::string::npos);
  CHECK(m.find("portcullis_filter_released_total 7\n") != std::string::npos);
  CHECK(m.substr(m.size() - 6) == "# EOF\n");
}

TEST_CASE("an edge that claims the other side is shown under its own, and flagged", "[ctl]") {
  // edge(high) says it is "low": its figures must not pass for the low side's.
  const json::Value st = reply(edge_report("low", R"("inbound_stanzas":25)"), kFilter,
                               edge_report("low", R"("inbound_stanzas":999)"));
  const std::string m = ctl::render_metrics(&st);
  CHECK(m.find("portcullis_edge_inbound_stanzas_total{side=\"high\"} 999\n") != std::string::npos);
  CHECK(count(m, "{side=\"low\"} ") == count(m, "{side=\"high\"} "));
  CHECK(m.find("portcullis_child_answered{role=\"edge(high)\"} 0\n") != std::string::npos);
  bool degraded = false;
  const std::string s = ctl::render_status(st, degraded);
  CHECK(degraded);
  CHECK(s.find("BAD REPORT: the edge(high) reports side 'low'") != std::string::npos);
}

TEST_CASE("a counter name cannot inject samples or take over another family", "[ctl]") {
  const std::string forged =
      R"("inbound_stanzas":1,"x_total{side=\"low\"} 5\nportcullis_up":1,"in_flight":77,"Bad-Name":3,)"
      R"("9lives":2,"filter_link_up":0)";
  const json::Value st = reply(edge_report("low", forged), kFilter, edge_report("high", R"("inbound_stanzas":2)"));
  const std::string m = ctl::render_metrics(&st);
  // Only the lawful name is exposed; every line is a sample, a comment or the end.
  CHECK(m.find("portcullis_edge_inbound_stanzas_total{side=\"low\"} 1\n") != std::string::npos);
  CHECK(m.find("x_total") == std::string::npos);
  CHECK(m.find("Bad-Name") == std::string::npos);
  CHECK(m.find("9lives") == std::string::npos);
  CHECK(count(m, "# TYPE portcullis_up ") == 1);
  CHECK(count(m, "\nportcullis_up ") == 1);
  // "in_flight" and "filter_link_up" name fixed gauges: the forged counters
  // are refused, the gauges keep their own values and types.
  CHECK(count(m, "# TYPE portcullis_edge_in_flight ") == 1);
  CHECK(m.find("# TYPE portcullis_edge_in_flight gauge") != std::string::npos);
  CHECK(m.find("portcullis_edge_in_flight_total") == std::string::npos);
  CHECK(m.find("portcullis_edge_in_flight{side=\"low\"} 0\n") != std::string::npos);
  CHECK(m.find("portcullis_edge_filter_link_up{side=\"low\"} 1\n") != std::string::npos);
  CHECK(m.find("portcullis_edge_filter_link_up_total") == std::string::npos);
  // The high edge has no such counters: no made-up zeros for it.
  CHECK(m.find("portcullis_edge_inbound_stanzas_total{side=\"high\"} 2\n") != std::string::npos);
}

TEST_CASE("a counter missing on one side gives no sample for it", "[ctl]") {
  const json::Value st = reply(edge_report("low", R"("room_relays_out":3)"), kFilter, edge_report("high", ""));
  const std::string m = ctl::render_metrics(&st);
  CHECK(m.find("portcullis_edge_room_relays_out_total{side=\"low\"} 3\n") != std::string::npos);
  CHECK(m.find("portcullis_edge_room_relays_out_total{side=\"high\"}") == std::string::npos);
}

TEST_CASE("control characters in a report never reach the terminal", "[ctl]") {
  // A remote name with an escape sequence (clear screen, retitle), a C1 CSI
  // (U+009B) and a newline that would forge a line of its own.
  const std::string stream =
      R"({"direction":"inbound","local":"a.example","remote":"evil\u001b[2J\u001b]0;pwned\u0007",)"
      R"("address":"127.0.0.1:5\u009b1m","state":"open\nfilter: released 0","auth":"","tls":"",)"
      R"("since_unix_ms":1,"stanzas":1,"pending_bytes":0,"queued":0,"reading":true})";
  const json::Value st = reply(edge_report("low", "", stream), kFilter, edge_report("high", ""));
  bool degraded = false;
  for (const std::string& view : {ctl::render_peers(st), ctl::render_status(st, degraded), ctl::render_rooms(st)}) {
    for (std::size_t i = 0; i < view.size(); ++i) {
      const auto c = static_cast<unsigned char>(view[i]);
      INFO("byte " << i << " of: " << view);
      CHECK((c >= 0x20 || c == '\n'));
      CHECK(c != 0x7f);
      if (c == 0xc2 && i + 1 < view.size()) CHECK(static_cast<unsigned char>(view[i + 1]) > 0x9f);
    }
  }
  const std::string peers = ctl::render_peers(st);
  CHECK(peers.find("evil?[2J?]0;pwned?") != std::string::npos);
  CHECK(peers.find("open?filter: released 0") != std::string::npos);
  CHECK(count(peers, "\n") == 2);  // the header and one stream
}

TEST_CASE("a report that is not JSON is flagged, not shown", "[ctl]") {
  const json::Value st = reply("{\"side\":\"low\"", kFilter, edge_report("high", ""));
  bool degraded = false;
  const std::string s = ctl::render_status(st, degraded);
  CHECK(degraded);
  CHECK(s.find("BAD REPORT: the child's report is not a JSON object") != std::string::npos);
}

TEST_CASE("no answer from the socket: portcullis_up 0 and nothing else", "[ctl]") {
  CHECK(ctl::render_metrics(nullptr) ==
        "# TYPE portcullis_up gauge\n# HELP portcullis_up 1 when portcullisd's control socket answered this "
        "scrape, else 0.\nportcullis_up 0\n# EOF\n");
}
