// Shared fixture for the audit archive tests: a temporary directory with a
// fresh key pair, an event loop, a capturing logger and record makers.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "guard/audit/archive.h"
#include "guard/audit/format.h"
#include "guard/audit/keys.h"
#include "guard/audit/reader.h"
#include "guard/audit/verify.h"
#include "guard/log/log.h"
#include "guard/net/event_loop.h"

namespace audit_test {

using namespace portcullis;
using namespace portcullis::audit;

inline Record decision(int i) {
  DecisionRecord d;
  d.outcome = i % 10 == 9 ? Outcome::Shadow : i % 4 == 1 ? Outcome::Rejected : i % 4 == 2 ? Outcome::Modified : Outcome::Released;
  d.direction = i % 2 ? Direction::HighToLow : Direction::LowToHigh;
  d.peer = PeerInfo{i % 2 ? "high.example" : "low.example", "sasl-external", true, "CN=peer", "TLSv1.3"};
  d.frame_seq = static_cast<std::uint64_t>(i);
  d.from = i % 2 ? "carol@high.example/desk" : "alice@low.example/res";
  d.to = i % 2 ? "alice@low.example" : "bob@high.example";
  d.stanza_kind = "message";
  d.stanza_type = "chat";
  d.stanza_id = "m" + std::to_string(i);
  d.label_original = i % 3 == 0 ? "SECRET" : "UNCLASSIFIED";
  d.label_effective = d.label_original;
  d.label_mapped = i % 3 == 0 ? "NATO SECRET" : "";
  d.filters.push_back(FilterResult{"size", "size-limit", "no-opinion", "", false, "", {}});
  d.filters.push_back(FilterResult{"labels", "label-access",
                                   d.outcome == Outcome::Rejected ? "reject" : d.outcome == Outcome::Modified ? "modify" : "accept",
                                   "rule-" + std::to_string(i % 3), false,
                                   d.outcome == Outcome::Modified ? "label-map" : "",
                                   {{"label.original", d.label_original}}});
  d.guards.push_back(GuardResult{"schema", d.outcome != Outcome::Rejected, ""});
  if (d.outcome == Outcome::Rejected) d.error_condition = "not-authorized";
  d.policy_version = "7";
  d.policy_hash = "abc123";
  d.original = "<message xmlns='jabber:client' from='" + d.from + "' to='" + d.to + "' type='chat' id='" + d.stanza_id +
               "'><body>hello " + std::to_string(i) + "</body></message>";
  if (d.outcome == Outcome::Modified) d.released = "<message xmlns='jabber:client' id='" + d.stanza_id + "'><body>mapped</body></message>";
  return Record{0, std::move(d)};
}

inline Record connection_event(const std::string& kind) {
  ConnectionEvent c;
  c.kind = kind;
  c.text = "peer presented no certificate";
  c.side = "low";
  c.peer = PeerInfo{"evil.example", "none", false, "", ""};
  return Record{0, std::move(c)};
}

inline Record admin_event(const std::string& kind, const std::string& text) {
  AdminEvent a;
  a.kind = kind;
  a.text = text;
  a.fields = {{"hash", "deadbeef"}};
  return Record{0, std::move(a)};
}

struct Harness {
  std::string root;
  net::SteadyClock clock;
  net::EventLoop loop{clock};
  std::vector<std::string> log_lines;
  Logger log{"filter", Logger::Target::Capture, LogLevel::Debug};
  config::AuditConfig cfg;

  Harness() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pcaudit-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    root = tmpl;
    generate_key_pair(root + "/audit.key", root + "/audit.pub");
    cfg.enabled = true;
    cfg.dir = root + "/archive";
    cfg.signing_key_file = root + "/audit.key";
    cfg.public_key_file = root + "/audit.pub";
    cfg.checkpoint_every_records = 10;
    cfg.checkpoint_every_ms = 3600000;
    cfg.segment_max_bytes = 64ull << 20;
    cfg.segment_max_age_s = 0;
    cfg.warn_free_percent = 0;
    cfg.stop_free_percent = 0;
    log.set_capture([this](LogLevel, const std::string& l) { log_lines.push_back(l); });
  }
  ~Harness() {
    std::error_code ec;
    std::filesystem::permissions(root, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(root, ec);
  }

  std::string pubkey() const { return load_public_key(root + "/audit.pub"); }

  // Runs the loop until `done` (fails the test after 60 s: a hang, not a timing assertion).
  void run_until(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      loop.run_once(net::Duration(20));
    }
  }

  std::vector<AppendResult> append_all(AuditArchive& a, std::vector<Record> recs) {
    auto results = std::make_shared<std::vector<AppendResult>>(recs.size());
    auto count = std::make_shared<std::size_t>(0);
    for (std::size_t i = 0; i < recs.size(); ++i)
      a.append(std::move(recs[i]), [results, count, i](AppendResult r) {
        (*results)[i] = std::move(r);
        ++*count;
      });
    run_until([&] { return *count == results->size(); });
    return *results;
  }

  AppendResult append_one(AuditArchive& a, Record r) { return append_all(a, [&] { std::vector<Record> v; v.push_back(std::move(r)); return v; }())[0]; }

  VerifyReport verify(const std::string& dir = {}) {
    VerifyOptions o;
    o.public_keys = {pubkey()};
    return verify_archive(dir.empty() ? cfg.dir : dir, o);
  }

  std::vector<StoredRecord> records(const std::string& dir = {}) {
    std::vector<StoredRecord> out;
    std::string err;
    REQUIRE(read_archive(dir.empty() ? cfg.dir : dir, [&](const StoredRecord& r, const RecordLocation&) {
      out.push_back(r);
      return true;
    }, nullptr, &err));
    return out;
  }

  bool logged(const std::string& needle) const {
    for (const auto& l : log_lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

inline std::string slurp(const std::string& path) {
  std::string s, err;
  REQUIRE(read_whole_file(path, s, &err));
  return s;
}

inline void spit(const std::string& path, const std::string& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(std::fwrite(data.data(), 1, data.size(), f) == data.size());
  std::fclose(f);
}

// Frames of a segment's bytes, in order.
inline std::vector<FrameView> frames_of(const std::string& data) {
  std::vector<FrameView> out;
  std::uint64_t off = kSegmentHeaderBytes;
  FrameView f;
  while (read_frame(data, off, f) == FrameStatus::Ok) {
    out.push_back(f);
    off += f.length;
  }
  return out;
}

inline const Fault* find_fault(const VerifyReport& r, FaultKind k) {
  for (const auto& f : r.faults)
    if (f.kind == k) return &f;
  return nullptr;
}

}  // namespace audit_test
