#include "guard/daemon/status_report.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>

#include "guard/audit/archive.h"
#include "guard/audit/json.h"
#include "guard/filterproc/filter_process.h"
#include "guard/s2s/edge_server.h"
#include "portcullis_version.h"

namespace portcullis::daemon {

namespace json = audit::json;

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string edge_status(const s2s::EdgeServer& server, std::string_view role) {
  const s2s::EdgeCounters& c = server.counters();
  json::Object counters{
      {"inbound_stanzas", c.inbound_stanzas},       {"released_delivered", c.released_delivered},
      {"bounced_local", c.bounced_local},           {"bounced_via_filter", c.bounced_via_filter},
      {"dropped_errors", c.dropped_errors},         {"rejected_frames", c.rejected_frames},
      {"room_stanzas_in", c.room_stanzas_in},       {"room_relays_out", c.room_relays_out},
      {"flow_pauses", c.flow_pauses},               {"overload_bounced", c.overload_bounced},
      {"refused_here", c.edge_refusals},            {"refused_unrecorded", c.edge_refusals_lost},
  };
  json::Array streams;
  std::uint64_t inbound = 0, outbound = 0;
  for (const s2s::LinkStatus& l : server.link_status(kMaxListedStreams)) {
    streams.push_back(json::Object{
        {"direction", l.inbound ? "inbound" : "outbound"},
        {"local", l.local},
        {"remote", l.remote},
        {"address", l.address},
        {"state", l.state},
        {"auth", l.auth},
        {"tls", l.tls},
        {"since_unix_ms", l.since_unix_ms},
        {"stanzas", l.stanzas},
        {"pending_bytes", l.pending_bytes},
        {"queued", l.queued},
        {"reading", l.reading},
    });
  }
  for (const s2s::LinkStatus& l : server.link_status(static_cast<std::size_t>(-1))) (l.inbound ? inbound : outbound)++;
  json::Array rooms;
  for (const auto& svc : server.room_services()) {
    for (const rooms::Room* r : svc->rooms()) {
      json::Array links;
      for (const auto& [peer, state] : r->federated_links()) {
        links.push_back(json::Object{{"room", peer}, {"state", std::string(rooms::to_string(state))}});
      }
      json::Object room{
          {"jid", r->jid()},
          {"local_occupants", static_cast<std::uint64_t>(r->local_occupants())},
          {"remote_occupants", static_cast<std::uint64_t>(r->remote_occupants())},
          {"messages", r->counters().messages},
          {"relayed_out", r->counters().relayed_out},
          {"links_lost", r->counters().links_lost},
          {"refused_by_peer", r->counters().refused_by_peer},
          {"warned_by_peer", r->counters().warned_by_peer},
          {"refused_from_peer", r->counters().refused_from_peer},
          {"federated", std::move(links)},
      };
      if (const rooms::IrcGateway* g = svc->gateway(r->jid().substr(0, r->jid().find('@')))) {
        room["irc"] = json::Object{{"connected", g->connected()},
                                   {"irc_users", static_cast<std::uint64_t>(g->irc_users())},
                                   {"to_irc", g->counters().to_irc},
                                   {"from_irc", g->counters().from_irc},
                                   {"refused", g->counters().refused},
                                   {"reconnects", g->counters().reconnects}};
      }
      rooms.push_back(std::move(room));
    }
  }
  json::Array domains;
  for (const std::string& f : server.side().fronts) domains.push_back(f);
  json::Object o{
      {"role", std::string(role)},
      {"side", server.side().name},
      {"fronts", std::move(domains)},
      {"filter_link", server.filter_available() ? "up" : "down"},
      {"counters", std::move(counters)},
      {"in_flight", static_cast<std::uint64_t>(server.in_flight())},
      {"in_flight_bytes", static_cast<std::uint64_t>(server.in_flight_bytes())},
      {"held_back", server.gate_closed()},
      {"streams_inbound", inbound},
      {"streams_outbound", outbound},
      {"streams", std::move(streams)},
      {"rooms", std::move(rooms)},
  };
  return json::dump(o);
}

std::string filter_status(const filterproc::FilterProcess& filter, const audit::AuditArchive& archive,
                          const std::string& archive_dir, const PolicyState& policy) {
  const filterproc::FilterCounters& c = filter.counters();
  const audit::ArchiveStats a = archive.stats();
  json::Object audit{
      {"dir", archive_dir},
      {"healthy", a.healthy},
      {"appended", a.appended},
      {"durable", a.durable},
      {"failed", a.failed},
      // Records handed to the writer and not yet durable (or failed): the lag.
      {"lag_records", a.appended >= a.durable + a.failed ? a.appended - a.durable - a.failed : 0},
      {"last_seq", a.last_seq},
      {"checkpoints", a.checkpoints},
      {"syncs", a.syncs},
      {"segments_opened", a.segments_opened},
      {"segments_deleted", a.segments_deleted},
  };
  struct statvfs fs {};
  if (::statvfs(archive_dir.c_str(), &fs) == 0) {
    audit["free_bytes"] = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    audit["size_bytes"] = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
  }
  json::Object o{
      {"role", "filter"},
      {"policy",
       json::Object{{"version", policy.version},
                    {"sha256", policy.sha256},
                    {"file", policy.file},
                    {"loaded_unix_ms", policy.loaded_unix_ms},
                    {"reloads", policy.reloads},
                    {"reload_failures", policy.reload_failures},
                    {"last_reload_error", policy.last_reload_error}}},
      {"counters",
       json::Object{{"released", c.released},
                    {"rejected", c.rejected},
                    {"errors_sent", c.errors_sent},
                    {"refused_frames", c.refused_frames},
                    {"error_texts_removed", c.error_texts_removed},
                    {"guard_blocks", c.guard_blocks},
                    {"audit_failures", c.audit_failures},
                    {"far_confirmed", c.far_confirmed},
                    {"far_delivered", c.far_delivered},
                    {"far_lost", c.far_lost},
                    {"far_in_doubt", c.far_in_doubt},
                    {"unknown_acks", c.unknown_acks},
                    {"near_pauses", c.near_pauses},
                    {"edge_refusals", c.edge_refusals}}},
      // Between decision and action (the guard stage, the audit writer).
      {"deciding", static_cast<std::uint64_t>(filter.pending())},
      // Released, not yet confirmed by the far edge.
      {"awaiting_far", static_cast<std::uint64_t>(filter.awaiting_far())},
      // Taken by the far edge, not yet known delivered or lost.
      {"awaiting_delivery", static_cast<std::uint64_t>(filter.awaiting_delivery())},
      {"audit", std::move(audit)},
  };
  return json::dump(o);
}

std::string appliance_status(const ApplianceInfo& info, const std::vector<supervisor::Supervisor::ChildAnswer>& answers) {
  json::Array children;
  for (const supervisor::Supervisor::ChildAnswer& a : answers) {
    json::Object ch{
        {"role", std::string(supervisor::to_string(a.role))},
        {"state", a.pid > 0 ? "running" : info.stopping ? "stopped" : "restarting"},
        {"pid", static_cast<std::int64_t>(a.pid)},
        {"restarts", static_cast<std::uint64_t>(a.restarts)},
        {"up_ms", a.up_ms},
        {"heartbeat_age_ms", a.heartbeat_age_ms},
        {"last_exit", a.last_exit},
        {"asked", a.asked},
        {"answered", a.answered},
    };
    // The child's own claim, as it sent it: a string the tools parse.
    if (a.answered) ch["report"] = a.reply;
    children.push_back(std::move(ch));
  }
  json::Object o{
      {"portcullis",
       json::Object{{"version", PORTCULLIS_VERSION},
                    {"kind", info.kind},
                    {"mode", info.mode},
                    {"config", info.config_file},
                    {"pid", static_cast<std::int64_t>(::getpid())},
                    {"started_unix_ms", info.started_unix_ms},
                    {"now_unix_ms", unix_now_ms()},
                    {"stopping", info.stopping}}},
      {"children", std::move(children)},
  };
  return json::dump(o);
}

}  // namespace portcullis::daemon
