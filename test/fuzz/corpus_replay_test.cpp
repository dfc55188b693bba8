// Runs the fuzz entry points over the checked-in corpus (test/corpus/xml) and a
// deterministic set of mutations of it, in every build, so the properties the
// fuzzers check hold in CI even where libFuzzer is not built.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test/fuzz/fuzz_targets.h"

namespace {

// Every file of test/corpus/DIR with extension EXT.
std::vector<std::string> corpus(const std::string& dir = "xml", const std::string& ext = ".xml") {
  std::vector<std::string> out;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(PORTCULLIS_SOURCE_DIR) / "test" / "corpus" / dir)) {
    if (entry.path().extension() != ext) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

}  // namespace

TEST_CASE("the stream parser survives the hostile corpus and its mutations", "[fuzz]") {
  const auto inputs = corpus();
  REQUIRE(inputs.size() >= 20);
  std::mt19937 rng(20261125);   // fixed seed: the same mutations every run
  std::size_t runs = 0;
  for (const auto& base : inputs) {
    portcullis::fuzz::stream_parser_one_input(reinterpret_cast<const std::uint8_t*>(base.data()), base.size());
    ++runs;
    for (int m = 0; m < 200; ++m) {
      std::string s = base;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        const std::size_t at = rng() % s.size();
        switch (rng() % 3) {
          case 0: s[at] = static_cast<char>(rng() & 0xff); break;
          case 1: s.erase(at, 1 + rng() % 8); break;
          default: s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 16)); break;
        }
      }
      portcullis::fuzz::stream_parser_one_input(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
      portcullis::fuzz::frame_decoder_one_input(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
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
