// Runs the fuzz entry points over the checked-in corpus (test/corpus/xml) and a
// deterministic set of mutations of it, in every build, so the properties the
// fuzzers check hold in CI even where libFuzzer is not built.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "test/fuzz/corpus.h"
#include "test/fuzz/fuzz_targets.h"

namespace {

using portcullis::fuzz::mutate;

std::vector<std::string> corpus(const std::string& dir = "xml", const std::string& ext = ".xml") {
  return portcullis::fuzz::read_corpus(dir, ext);
}

const std::uint8_t* bytes(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

}  // namespace

TEST_CASE("the stream parser survives the hostile corpus and its mutations", "[fuzz]") {
  const auto inputs = corpus();
  REQUIRE(inputs.size() >= 20);
  std::mt19937 rng(20261125);   // fixed seed: the same mutations every run
  std::size_t runs = 0;
  for (const auto& base : inputs) {
    portcullis::fuzz::stream_parser_one_input(bytes(base), base.size());
    ++runs;
    for (int m = 0; m < 200; ++m) {
      const std::string s = mutate(base, rng);
      portcullis::fuzz::stream_parser_one_input(bytes(s), s.size());
      portcullis::fuzz::frame_decoder_one_input(bytes(s), s.size());
      ++runs;
    }
  }
  CHECK(runs > 4000);
}

namespace {

// Each corpus line, with an operation byte in front of it (user of either side,
// node of either side, loss, ticks), in orders drawn from a fixed seed.
std::string room_script(const std::vector<std::string>& lines, std::mt19937& rng) {
  std::string s;
  const int n = 4 + static_cast<int>(rng() % 24);
  for (int i = 0; i < n; ++i) {
    const std::string& l = lines[rng() % lines.size()];
    const unsigned char op = static_cast<unsigned char>(rng() & 0xff);
    s += static_cast<char>(op);
    s += l;
    s += '\n';
  }
  return s;
}

}  // namespace

TEST_CASE("two federated rooms survive the FMUC corpus, shuffled and mutated", "[fuzz][fmuc]") {
  std::vector<std::string> lines;
  for (const auto& file : corpus("fmuc")) {
    std::istringstream in(file);
    for (std::string l; std::getline(in, l);) {
      if (!l.empty()) lines.push_back(l);
    }
  }
  REQUIRE(lines.size() >= 10);
  // Scripts the fuzzer once failed on (op byte + stanza per line), replayed as they are.
  std::size_t scripts = 0;
  for (const std::string& script : corpus("fmuc", ".script")) {
    portcullis::fuzz::room_one_input(reinterpret_cast<const std::uint8_t*>(script.data()), script.size());
    ++scripts;
  }
  CHECK(scripts >= 1);
  std::mt19937 rng(20261203);
  std::size_t runs = 0;
  for (int i = 0; i < 600; ++i) {
    std::string s = room_script(lines, rng);
    if (i % 2 == 1) {
      for (int e = 0; e < 3 && !s.empty(); ++e) {
        const std::size_t at = rng() % s.size();
        if (s[at] != '\n') s[at] = static_cast<char>(rng() & 0xff);
      }
    }
    portcullis::fuzz::room_one_input(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    ++runs;
  }
  CHECK(runs == 600);
}

TEST_CASE("the policy and SPIF loaders answer every corpus file and mutation with a position or a policy",
          "[fuzz][policy]") {
  std::vector<std::string> inputs = corpus("policyfile");
  for (const auto& f : corpus("labels")) {
    if (f.find("<policy") != std::string::npos || f.find("SPIF") != std::string::npos) inputs.push_back(f);
  }
  REQUIRE(inputs.size() >= 18);
  std::mt19937 rng(20261206);
  std::size_t runs = 0, loaded = 0;
  for (const auto& base : inputs) {
    loaded += portcullis::fuzz::policy_one_input(bytes(base), base.size());
    for (int m = 0; m < 20; ++m) {
      const std::string s = mutate(base, rng);
      loaded += portcullis::fuzz::policy_one_input(bytes(s), s.size());
      ++runs;
    }
  }
  CHECK(runs >= 360);
  // Both outcomes were exercised: the valid files (and some mutations) load, the rest are refused.
  CHECK(loaded >= 5);
  CHECK(loaded < runs / 2);
}

TEST_CASE("the label parsers and the sample label policy survive the label corpus and its mutations",
          "[fuzz][labels]") {
  std::vector<std::string> inputs = corpus("labels");
  for (const char* ext : {".der", ".b64"}) {
    for (auto& f : corpus("labels", ext)) inputs.push_back(std::move(f));
  }
  REQUIRE(inputs.size() >= 10);
  std::mt19937 rng(20261207);
  std::size_t runs = 0, released = 0;
  for (const auto& base : inputs) {
    released += static_cast<std::size_t>(portcullis::fuzz::label_one_input(bytes(base), base.size()));
    for (int m = 0; m < 150; ++m) {
      const std::string s = mutate(base, rng);
      released += static_cast<std::size_t>(portcullis::fuzz::label_one_input(bytes(s), s.size()));
      ++runs;
    }
  }
  CHECK(runs >= 1500);
  // The released-stanza property was checked on real releases, not only on refusals.
  CHECK(released >= 10);
}
