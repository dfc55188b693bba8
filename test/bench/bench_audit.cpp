// bench_audit: what "audit before release" costs.
//
// Measures, in one run on the same filesystem:
//   1. group commit: records/s with up to W records in flight (the filter
//      keeps releasing as callbacks arrive), records per fdatasync;
//   2. baseline: one record in flight at a time through the same archive, so
//      every record gets its own fdatasync (what a naive "fsync per stanza"
//      design costs), plus a raw write+fdatasync loop without the archive;
//   3. the latency one append adds to one stanza in flight (append -> durable
//      callback on the event loop), p50/p99, and the latency under load.
//
// usage: bench_audit [--dir DIR] [--records N] [--baseline N] [--window W] [--size BYTES]
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "guard/audit/archive.h"
#include "guard/audit/keys.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"

using namespace portcullis;
using namespace portcullis::audit;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string dir;
  int records = 50000;
  int baseline = 2000;
  int window = 1000;
  std::size_t size = 512;
};

Record make_record(int i, std::size_t size) {
  DecisionRecord d;
  d.outcome = Outcome::Released;
  d.direction = Direction::LowToHigh;
  d.peer = PeerInfo{"low.example", "sasl-external", true, "CN=low.example", ""};
  d.from = "alice@low.example/res";
  d.to = "bob@high.example";
  d.stanza_kind = "message";
  d.stanza_type = "chat";
  d.stanza_id = "id" + std::to_string(i);
  d.label_effective = "UNCLASSIFIED";
  d.filters.push_back(FilterResult{"labels", "label-access", "accept", "allow-unclassified", false, "", {}});
  d.guards.push_back(GuardResult{"schema", true, ""});
  d.policy_version = "1";
  std::string body(size > 120 ? size - 120 : 1, 'x');
  d.original = "<message xmlns='jabber:server' from='alice@low.example/res' to='bob@high.example' type='chat' id='id" +
               std::to_string(i) + "'><body>" + body + "</body></message>";
  return Record{0, std::move(d)};
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

struct Result {
  double seconds = 0;
  int records = 0;
  std::uint64_t syncs = 0;
  std::vector<double> latency_us;
};

// Appends `n` records keeping at most `window` in flight.
Result run_archive(const config::AuditConfig& cfg, int n, int window, std::size_t size) {
  net::SteadyClock clock;
  net::EventLoop loop(clock);
  Logger log("bench", Logger::Target::Stderr, LogLevel::Warning);
  AuditArchive a(loop, cfg, log);
  const auto syncs0 = a.stats().syncs;
  std::vector<Record> recs;
  recs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) recs.push_back(make_record(i, size));
  Result r;
  r.records = n;
  r.latency_us.reserve(static_cast<std::size_t>(n));
  int next = 0, done = 0, in_flight = 0, failed = 0;
  const auto t0 = Clock::now();
  while (done < n) {
    while (next < n && in_flight < window) {
      const auto start = Clock::now();
      in_flight++;
      a.append(std::move(recs[static_cast<std::size_t>(next++)]), [&, start](AppendResult res) {
        r.latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        in_flight--;
        done++;
        failed += !res.ok;
      });
    }
    loop.run_once(net::Duration(100));
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.syncs = a.stats().syncs - syncs0;
  if (failed) std::fprintf(stderr, "bench_audit: %d appends failed\n", failed);
  return r;
}

// write + fdatasync per record, no archive: the floor of a per-record design.
Result run_raw(const std::string& path, int n, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::string rec(size, 'r');
  Result r;
  r.records = n;
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    const auto s = Clock::now();
    if (::write(fd, rec.data(), rec.size()) != static_cast<ssize_t>(rec.size()) || ::fdatasync(fd) != 0) {
      std::perror("raw");
      break;
    }
    r.latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.syncs = static_cast<std::uint64_t>(n);
  ::close(fd);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_audit: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") o.dir = val();
    else if (a == "--records") o.records = std::stoi(val());
    else if (a == "--baseline") o.baseline = std::stoi(val());
    else if (a == "--window") o.window = std::stoi(val());
    else if (a == "--size") o.size = static_cast<std::size_t>(std::stoul(val()));
    else {
      std::fprintf(stderr, "usage: bench_audit [--dir DIR] [--records N] [--baseline N] [--window W] [--size BYTES]\n");
      return 2;
    }
  }
  bool own_dir = false;
  if (o.dir.empty()) {
    std::string tmpl = "/var/tmp/bench-audit-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      return 2;
    }
    o.dir = tmpl;
    own_dir = true;
  }
  generate_key_pair(o.dir + "/bench.key", o.dir + "/bench.pub");
  config::AuditConfig cfg;
  cfg.enabled = true;
  cfg.signing_key_file = o.dir + "/bench.key";
  cfg.public_key_file = o.dir + "/bench.pub";
  cfg.checkpoint_every_records = 1000;
  cfg.checkpoint_every_ms = 5000;
  cfg.warn_free_percent = 0;
  cfg.stop_free_percent = 0;

  cfg.dir = o.dir + "/group";
  const Result group = run_archive(cfg, o.records, o.window, o.size);
  cfg.dir = o.dir + "/group64";
  const Result group64 = run_archive(cfg, std::min(o.records, 20000), 64, o.size);
  cfg.dir = o.dir + "/single";
  const Result single = run_archive(cfg, o.baseline, 1, o.size);
  const Result raw = run_raw(o.dir + "/raw.dat", o.baseline, o.size);

  const double g_rps = group.records / group.seconds, s_rps = single.records / single.seconds,
               r_rps = raw.records / raw.seconds;
  std::printf("bench_audit: stanza ~%zu bytes, dir %s\n\n", o.size, o.dir.c_str());
  std::printf("%-44s %10s %12s %10s %10s %10s\n", "mode", "records", "records/s", "rec/sync", "p50 us", "p99 us");
  std::printf("%-44s %10d %12.0f %10.1f %10.0f %10.0f\n", ("group commit (window " + std::to_string(o.window) + ")").c_str(),
              group.records, g_rps, double(group.records) / double(std::max<std::uint64_t>(1, group.syncs)),
              pct(group.latency_us, 50), pct(group.latency_us, 99));
  std::printf("%-44s %10d %12.0f %10.1f %10.0f %10.0f\n", "group commit (window 64)", group64.records,
              group64.records / group64.seconds,
              double(group64.records) / double(std::max<std::uint64_t>(1, group64.syncs)), pct(group64.latency_us, 50),
              pct(group64.latency_us, 99));
  std::printf("%-44s %10d %12.0f %10.1f %10.0f %10.0f\n", "archive, one in flight (fdatasync per record)", single.records,
              s_rps, double(single.records) / double(std::max<std::uint64_t>(1, single.syncs)), pct(single.latency_us, 50),
              pct(single.latency_us, 99));
  std::printf("%-44s %10d %12.0f %10.1f %10.0f %10.0f\n", "raw write+fdatasync per record (no archive)", raw.records, r_rps,
              1.0, pct(raw.latency_us, 50), pct(raw.latency_us, 99));
  std::printf("\nratios: group commit / fdatasync-per-record = %.1fx; group commit / raw per-record = %.1fx\n",
              g_rps / s_rps, g_rps / r_rps);
  std::printf("latency audit-before-release adds to one stanza in flight: p50 %.0f us, p99 %.0f us "
              "(raw fdatasync alone: p50 %.0f us)\n",
              pct(single.latency_us, 50), pct(single.latency_us, 99), pct(raw.latency_us, 50));
  if (own_dir) std::filesystem::remove_all(o.dir);
  return 0;
}
