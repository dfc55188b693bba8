// bench_pipeline: stanzas per second through the full policy pipeline,
// in-process, against raw libxml2 parsing of the same corpus in the same run.
//
// The corpus is a weighted mix of realistic low-to-high S2S stanzas (corpus/,
// one stanza per file; kMix below gives the weights); N stanzas cycle through
// it. Each repetition measures, on the same bytes and interleaved chunk by
// chunk (2000 stanzas) so that machine noise falls on all three alike:
//   (a) libxml2    xmlReadMemory(XML_PARSE_NONET, no entity substitution) +
//                  xmlFreeDoc: the cost of just parsing. NOWARNING/NOERROR
//                  only stop libxml2 printing (it warns that OMEMO's
//                  namespace "eu.siacs.conversations.axolotl" is not an
//                  absolute URI), which would otherwise be timed too.
//   (b) parse      xmpp::parse_element (hardened SAX parser + lossless tree)
//   (c) pipeline   parse_element + Pipeline::run (bench-policy.xml, low to
//                  high, 11 filters) + serialize() of a released stanza that
//                  was transformed: what the filter process does per frame
// and, on a shorter sequence of pre-parsed stanzas, a per-filter breakdown:
// each filter alone in a one-stage pipeline, run on a fresh copy of the
// stanza, minus the same with an empty pipeline (copy + default deny).
// Figures are medians over the repetitions with min and max; ratios are taken
// per repetition (same run) and then the median.
//
// Not a timed test: nothing asserts on speed. It exits non-zero only if the
// policy does not load or a corpus stanza does not parse.
#include <libxml/parser.h>
#include <libxml/xmlversion.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_parser.h"
#include "policy/pipeline.h"
#include "policy/policy_file.h"
#include "policy/registry.h"

namespace {

using portcullis::policy::Decision;
using portcullis::policy::Pipeline;
using portcullis::policy::StanzaContext;
namespace xmpp = portcullis::xmpp;
namespace ipc = portcullis::ipc;
using Clock = std::chrono::steady_clock;

// The mix: how often each corpus stanza appears per cycle (36 stanzas).
// Roughly what a busy federation link carries: chat and chat states,
// receipts, room traffic, presence (most of it rich), pings and disco, a few
// labelled messages, and the odd encrypted or file-transfer message.
struct MixEntry {
  const char* file;   // in corpus/, without .xml
  int weight;
};
constexpr MixEntry kMix[] = {
    {"chat-body", 5},          {"chat-watchword", 1},       {"chat-state", 4},
    {"receipt", 2},            {"groupchat", 4},            {"labelled-ess", 2},
    {"labelled-4774", 1},      {"labelled-ess-secret", 1},  {"presence-rich", 3},
    {"presence-plain", 2},     {"presence-unavailable", 1}, {"muc-join", 1},
    {"iq-ping", 2},            {"iq-ping-result", 2},       {"iq-disco-info", 1},
    {"iq-disco-result", 1},    {"omemo", 1},                {"file-offer", 1},
};

struct Sample {
  std::string name;
  std::string bytes;
  int weight = 0;
  xmpp::Element parsed;   // for the breakdown (pre-parsed once)
  // What the full pipeline did with it (from a first pass).
  std::string outcome, decided_by, transformations;
};

struct Options {
  std::size_t stanzas = 200000;
  std::size_t breakdown_stanzas = 50000;
  int reps = 5;
  bool breakdown = true;
  std::string policy = std::string(PORTCULLIS_BENCH_DIR) + "/bench-policy.xml";
  std::string corpus = std::string(PORTCULLIS_BENCH_DIR) + "/corpus";
  std::string schema_dir = PORTCULLIS_SCHEMA_DIR;
};

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: bench_pipeline [--quick] [--stanzas N] [--reps R]\n"
               "                      [--breakdown-stanzas N | --no-breakdown]\n"
               "                      [--policy FILE] [--corpus DIR] [--schema-dir DIR]\n"
               "  --quick   smoke test: 3000 stanzas, 1000 for the breakdown, 5 repetitions\n"
               "  defaults: --stanzas 200000 --breakdown-stanzas 50000 --reps 5\n");
}

bool parse_count(const char* s, std::size_t& out) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0' || v == 0) return false;
  out = static_cast<std::size_t>(v);
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

// The frame context of a stanza from the low peer: a certificate-authenticated
// TLS link, as the edge would report it.
StanzaContext low_peer_context(std::size_t wire_bytes, std::uint64_t seq) {
  StanzaContext ctx;
  ctx.direction = ipc::Direction::LowToHigh;
  ctx.peer_domain = "low.example";
  ctx.auth = ipc::AuthMethod::SaslExternal;
  ctx.peer_tls = true;
  ctx.cert_identity = "low.example";
  ctx.seq = seq;
  ctx.wire_bytes = wire_bytes;
  return ctx;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Stanzas per chunk (see the measurement loop in main).
constexpr std::size_t kChunk = 2000;
// Stanzas per chunk in the breakdown: ten cycles of the mix.
constexpr std::size_t kBreakdownChunk = 350;

constexpr int kLibxml2Options = XML_PARSE_NONET | XML_PARSE_NOWARNING | XML_PARSE_NOERROR;

// Keeps the optimiser from discarding work whose result is otherwise unused.
volatile std::uint64_t g_sink = 0;

using Span = std::span<const Sample* const>;

// ---- the three measured loops ---------------------------------------------

double run_libxml2(Span seq) {
  std::uint64_t ok = 0;
  auto t0 = Clock::now();
  for (const Sample* s : seq) {
    xmlDocPtr doc = xmlReadMemory(s->bytes.data(), static_cast<int>(s->bytes.size()), nullptr,
                                  nullptr, kLibxml2Options);
    if (doc != nullptr) {
      ++ok;
      xmlFreeDoc(doc);
    }
  }
  double t = seconds_since(t0);
  g_sink = g_sink + ok;
  if (ok != seq.size()) throw std::runtime_error("libxml2 failed to parse a corpus stanza");
  return t;
}

double run_parse(Span seq) {
  std::uint64_t ok = 0;
  auto t0 = Clock::now();
  for (const Sample* s : seq) {
    auto e = xmpp::parse_element(s->bytes);
    if (e) ok += e->children().size() + 1;
  }
  double t = seconds_since(t0);
  g_sink = g_sink + ok;
  return t;
}

double run_pipeline(Span seq, const Pipeline& pipeline) {
  std::uint64_t released = 0, out_bytes = 0, n = 0;
  auto t0 = Clock::now();
  for (const Sample* s : seq) {
    auto e = xmpp::parse_element(s->bytes);
    if (!e) continue;
    Decision d = pipeline.run(*e, low_peer_context(s->bytes.size(), ++n));
    if (d.release) {
      ++released;
      // The filter process forwards the exact bytes unless a transformation
      // changed the stanza; then it serializes the tree.
      out_bytes += d.transformations.empty() ? s->bytes.size() : e->serialize().size();
    }
  }
  double t = seconds_since(t0);
  g_sink = g_sink + released + out_bytes;
  return t;
}

// Breakdown loop: a fresh copy of the pre-parsed stanza through `pipeline`
// (null: copy only). With `serialize_modified`, also what (c) does after run.
double run_on_copies(Span seq, const Pipeline* pipeline,
                     bool serialize_modified = false) {
  std::uint64_t acc = 0, n = 0;
  auto t0 = Clock::now();
  for (const Sample* s : seq) {
    xmpp::Element e = s->parsed;
    if (pipeline != nullptr) {
      Decision d = pipeline->run(e, low_peer_context(s->bytes.size(), ++n));
      acc += d.trail.size() + (d.release ? 1 : 0);
      if (serialize_modified && d.release && !d.transformations.empty())
        acc += e.serialize().size();
    } else {
      acc += e.children().size();
    }
  }
  double t = seconds_since(t0);
  g_sink = g_sink + acc;
  return t;
}

// ---- statistics and printing ----------------------------------------------

struct Stat {
  double median = 0, min = 0, max = 0;
};

Stat stat_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stat s;
  s.min = v.front();
  s.max = v.back();
  std::size_t m = v.size() / 2;
  s.median = v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
  return s;
}

std::string thousands(double v) {
  auto n = static_cast<long long>(v + 0.5);
  std::string digits = std::to_string(n), out;
  int c = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (c > 0 && c % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++c;
  }
  return out;
}

void print_rate_row(const char* label, const std::vector<double>& secs, std::size_t n,
                    double bytes_per_pass) {
  std::vector<double> rates, us;
  for (double t : secs) {
    rates.push_back(static_cast<double>(n) / t);
    us.push_back(t * 1e6 / static_cast<double>(n));
  }
  Stat r = stat_of(rates), u = stat_of(us);
  double mbps = bytes_per_pass / (u.median * static_cast<double>(n) / 1e6) / 1e6;
  std::printf("  %-34s %12s %12s %12s %9.2f %8.1f\n", label, thousands(r.median).c_str(),
              thousands(r.min).c_str(), thousands(r.max).c_str(), u.median, mbps);
}

void print_ratio_row(const char* label, const std::vector<double>& num,
                     const std::vector<double>& den, const char* den_name) {
  std::vector<double> ratio;
  for (std::size_t i = 0; i < num.size(); ++i) ratio.push_back(num[i] / den[i]);
  Stat s = stat_of(ratio);
  std::printf("  %-34s %8.2fx  (min %.2fx, max %.2fx)   rate = %.0f%% of %s\n", label, s.median,
              s.min, s.max, 100.0 / s.median, den_name);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* what) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_pipeline: %s needs a value\n", what);
        std::exit(2);
      }
      return argv[++i];
    };
    std::size_t n = 0;
    if (a == "--quick") {
      opt.stanzas = 3000;
      opt.breakdown_stanzas = 1000;
    } else if (a == "--stanzas") {
      if (!parse_count(value("--stanzas"), n)) return usage(stderr), 2;
      opt.stanzas = n;
    } else if (a == "--breakdown-stanzas") {
      if (!parse_count(value("--breakdown-stanzas"), n)) return usage(stderr), 2;
      opt.breakdown_stanzas = n;
    } else if (a == "--reps") {
      if (!parse_count(value("--reps"), n) || n > 1000) return usage(stderr), 2;
      opt.reps = static_cast<int>(n);
    } else if (a == "--no-breakdown") {
      opt.breakdown = false;
    } else if (a == "--policy") {
      opt.policy = value("--policy");
    } else if (a == "--corpus") {
      opt.corpus = value("--corpus");
    } else if (a == "--schema-dir") {
      opt.schema_dir = value("--schema-dir");
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "bench_pipeline: unknown argument %s\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  xmlInitParser();
  LIBXML_TEST_VERSION

  // ---- load the policy and the corpus (control plane: may throw) ----
  portcullis::policy::LoadedPolicy policy;
  std::vector<Sample> samples;
  try {
    policy = portcullis::policy::load_policy(opt.policy, opt.schema_dir,
                                             portcullis::policy::builtin_filters());
    for (const MixEntry& m : kMix) {
      Sample s;
      s.name = m.file;
      s.weight = m.weight;
      s.bytes = read_file(opt.corpus + "/" + m.file + ".xml");
      std::string why;
      auto e = xmpp::parse_element(s.bytes, {}, &why);
      if (!e) throw std::runtime_error("corpus stanza " + s.name + " does not parse: " + why);
      s.parsed = std::move(*e);
      samples.push_back(std::move(s));
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "bench_pipeline: %s\n", ex.what());
    return 1;
  }
  const Pipeline& pipeline = policy.pipelines.low_to_high;

  // The weighted cycle, interleaved (round-robin over the entries that still
  // have weight left) so that equal stanzas do not come in long runs.
  std::vector<const Sample*> cycle;
  {
    std::vector<int> left;
    for (const Sample& s : samples) left.push_back(s.weight);
    bool any = true;
    while (any) {
      any = false;
      for (std::size_t i = 0; i < samples.size(); ++i) {
        if (left[i] > 0) {
          cycle.push_back(&samples[i]);
          --left[i];
          any = true;
        }
      }
    }
  }
  auto sequence = [&](std::size_t n) {
    std::vector<const Sample*> seq;
    seq.reserve(n);
    for (std::size_t i = 0; i < n; ++i) seq.push_back(cycle[i % cycle.size()]);
    return seq;
  };
  const std::vector<const Sample*> seq = sequence(opt.stanzas);
  const std::vector<const Sample*> bseq = sequence(opt.breakdown_stanzas);
  double seq_bytes = 0, cycle_bytes = 0;
  for (const Sample* s : seq) seq_bytes += static_cast<double>(s->bytes.size());
  for (const Sample* s : cycle) cycle_bytes += static_cast<double>(s->bytes.size());

  // What the pipeline does with each corpus stanza (also a sanity check that
  // the corpus exercises accept, modify and reject paths).
  std::size_t released_per_cycle = 0, modified_per_cycle = 0;
  for (Sample& s : samples) {
    xmpp::Element e = s.parsed;
    Decision d = pipeline.run(e, low_peer_context(s.bytes.size(), 0));
    s.outcome = d.release ? "released" : "rejected";
    for (const auto& t : d.trail)
      if (!t.shadow && (t.verdict.kind == portcullis::policy::VerdictKind::Accept ||
                        t.verdict.kind == portcullis::policy::VerdictKind::Reject))
        s.decided_by = t.filter + "/" + t.verdict.rule_id;
    if (s.decided_by.empty()) s.decided_by = std::string(portcullis::policy::kRuleDefaultDeny);
    for (const auto& t : d.transformations) s.transformations += (s.transformations.empty() ? "" : ",") + t;
    if (d.release) released_per_cycle += static_cast<std::size_t>(s.weight);
    if (d.release && !d.transformations.empty()) modified_per_cycle += static_cast<std::size_t>(s.weight);
  }

  std::printf("bench_pipeline: full policy pipeline vs raw libxml2 parsing, in-process, one thread\n");
  std::printf("  cpu        %s\n", cpu_model().c_str());
  std::printf("  libxml2    %s (runtime %s)\n", LIBXML_DOTTED_VERSION, xmlParserVersion);
#ifdef NDEBUG
  std::printf("  build      optimised (NDEBUG)\n");
#else
  std::printf("  build      NOT optimised for release (no NDEBUG): configure with -DCMAKE_BUILD_TYPE=Release\n");
#endif
  std::printf("  policy     %s (%s), low->high: %zu filters\n", opt.policy.c_str(),
              policy.id().c_str(), pipeline.size());
  std::printf("  corpus     %zu distinct stanzas, cycle of %zu (mean %.0f bytes); %zu stanzas x %d repetitions\n",
              samples.size(), cycle.size(), cycle_bytes / static_cast<double>(cycle.size()),
              opt.stanzas, opt.reps);
  std::printf("             per cycle: %zu released (%zu of them transformed and re-serialized), %zu rejected\n\n",
              released_per_cycle, modified_per_cycle, cycle.size() - released_per_cycle);
  std::printf("  %-22s %5s %6s  %-9s %-38s %s\n", "stanza", "bytes", "weight", "outcome", "decided by",
              "transformations");
  for (const Sample& s : samples)
    std::printf("  %-22s %5zu %6d  %-9s %-38s %s\n", s.name.c_str(), s.bytes.size(), s.weight,
                s.outcome.c_str(), s.decided_by.c_str(), s.transformations.c_str());
  std::printf("\n");
  std::fflush(stdout);

  // One-stage pipelines for the breakdown: each filter alone, and an empty one
  // (copy + the runner's default deny) as their baseline.
  std::vector<Pipeline> alone(pipeline.size());
  for (std::size_t i = 0; i < pipeline.size(); ++i)
    alone[i].add(pipeline.stages()[i].filter, pipeline.stages()[i].shadow);
  const Pipeline empty;

  // Warm-up (page in code, settle the allocator and CPU clocks).
  {
    auto warm = sequence(std::min<std::size_t>(opt.stanzas, 5000));
    run_libxml2(warm);
    run_parse(warm);
    run_pipeline(warm, pipeline);
  }

  // Each repetition walks the sequence in chunks and runs every measurement
  // on a chunk before moving on, so that whatever else the machine does
  // (other builds, frequency changes) falls on all of them alike. Throughput
  // sums a measurement's chunks. The breakdown subtracts two measurements
  // chunk by chunk and takes the median over the chunks of a repetition, so a
  // chunk that lost the CPU does not turn into a negative filter cost.
  auto chunks_of = [](Span all, std::size_t size) {
    std::vector<Span> parts;
    for (std::size_t at = 0; at < all.size(); at += size)
      parts.push_back(all.subspan(at, std::min(size, all.size() - at)));
    return parts;
  };
  const std::vector<Span> parts = chunks_of(seq, kChunk);
  const std::vector<Span> bparts = chunks_of(bseq, kBreakdownChunk);

  // Breakdown rows: 0 copy, 1 runner (empty pipeline), 2.. each filter alone,
  // then the full run and the serialize of transformed releases.
  const std::size_t row_full = 2 + alone.size(), row_ser = row_full + 1;
  std::vector<std::vector<double>> brow(row_ser + 1);   // per repetition, ns/stanza

  std::vector<double> ta, tb, tc;
  auto wall0 = Clock::now();
  try {
    for (int r = 0; r < opt.reps; ++r) {
      double a = 0, b = 0, c = 0;
      for (Span part : parts) {
        a += run_libxml2(part);
        b += run_parse(part);
        c += run_pipeline(part, pipeline);
      }
      ta.push_back(a);
      tb.push_back(b);
      tc.push_back(c);
      if (opt.breakdown) {
        std::vector<std::vector<double>> per_chunk(brow.size());   // ns/stanza per chunk
        std::vector<double> al(alone.size());
        for (Span part : bparts) {
          const double copy = run_on_copies(part, nullptr);
          const double emp = run_on_copies(part, &empty);
          const double full = run_on_copies(part, &pipeline);
          const double full_ser = run_on_copies(part, &pipeline, true);
          for (std::size_t i = 0; i < alone.size(); ++i) al[i] = run_on_copies(part, &alone[i]);
          const double ns = 1e9 / static_cast<double>(part.size());
          per_chunk[0].push_back(copy * ns);
          per_chunk[1].push_back((emp - copy) * ns);
          for (std::size_t i = 0; i < alone.size(); ++i) per_chunk[2 + i].push_back((al[i] - emp) * ns);
          per_chunk[row_full].push_back((full - copy) * ns);
          per_chunk[row_ser].push_back((full_ser - full) * ns);
        }
        for (std::size_t k = 0; k < brow.size(); ++k) brow[k].push_back(stat_of(per_chunk[k]).median);
      }
      std::fprintf(stderr, "  repetition %d/%d done (%.1f s)\n", r + 1, opt.reps, seconds_since(wall0));
    }
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "bench_pipeline: %s\n", ex.what());
    return 1;
  }

  std::printf("Throughput (%zu stanzas per repetition, %d repetitions; median, min, max)\n", opt.stanzas,
              opt.reps);
  std::printf("  %-34s %12s %12s %12s %9s %8s\n", "", "stanzas/s", "min", "max", "us/stanza", "MB/s");
  print_rate_row("(a) libxml2 xmlReadMemory+FreeDoc", ta, opt.stanzas, seq_bytes);
  print_rate_row("(b) xmpp::parse_element", tb, opt.stanzas, seq_bytes);
  print_rate_row("(c) parse + pipeline + serialize", tc, opt.stanzas, seq_bytes);
  std::printf("\nCost relative to raw libxml2 parsing (time per stanza, per repetition, median)\n");
  print_ratio_row("(b) / (a)", tb, ta, "(a)");
  print_ratio_row("(c) / (a)", tc, ta, "(a)");
  print_ratio_row("(c) / (b)", tc, tb, "(b)");

  if (opt.breakdown) {
    std::printf("\nPer-filter cost (%zu pre-parsed stanzas of the same mix; each filter ALONE on a fresh\n"
                "copy, minus the same with an empty pipeline; ns per stanza, median over chunks of %zu;\n"
                "median of the %d repetitions [min, max])\n",
                opt.breakdown_stanzas, kBreakdownChunk, opt.reps);
    auto row = [&](const std::string& label, std::size_t k) {
      Stat s = stat_of(brow[k]);
      std::printf("  %-40s %9.0f  [%6.0f, %6.0f]\n", label.c_str(), s.median, s.min, s.max);
      return s.median;
    };
    row("copy of the parsed stanza (baseline)", 0);
    row("runner, empty pipeline (default deny)", 1);
    double sum = 0;
    for (std::size_t i = 0; i < alone.size(); ++i) {
      const auto& st = pipeline.stages()[i];
      sum += row(std::to_string(i + 1) + ". " + st.filter->name() + " (" + std::string(st.filter->type()) +
                     ")" + (st.shadow ? " [shadow]" : ""),
                 2 + i);
    }
    std::printf("  %-40s %9.0f\n", "sum of the filters alone", sum);
    row("full pipeline run (all filters, runner)", row_full);
    row("serialize of transformed releases", row_ser);
    std::printf("  (the full run is not the sum: there, stanzas rejected early skip the later filters,\n"
                "   and later filters see the stanza as earlier ones modified it, e.g. the mapped label)\n");
  }
  std::printf("\nwall time of the measured repetitions: %.1f s\n", seconds_since(wall0));
  xmlCleanupParser();
  return 0;
}
