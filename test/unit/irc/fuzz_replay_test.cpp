// Replays test/corpus/irc through the fuzz target's entry point
// (test/fuzz/fuzz_irc_line.cpp, linked into this binary), as they are and
// under a fixed set of mutations, so its properties hold in every build, not
// only where libFuzzer is built. A violated property aborts the test binary.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test/fuzz/corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

std::vector<std::string> corpus() { return portcullis::fuzz::read_corpus("irc", ".irc"); }

void run(const std::string& s) { LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

}  // namespace

TEST_CASE("the IRC library survives the IRC corpus and its mutations", "[irc][fuzz]") {
  const auto inputs = corpus();
  REQUIRE(inputs.size() >= 8);
  std::mt19937 rng(20261203);  // fixed seed: the same mutations every run
  std::size_t runs = 0;
  for (const auto& base : inputs) {
    run(base);
    ++runs;
    for (int m = 0; m < 150; ++m) {
      run(portcullis::fuzz::mutate(base, rng, {.max_edits = 4, .max_erase = 8, .max_copy = 16, .max_fill = 600}));
      ++runs;
    }
    // Every option byte on the unmutated stream.
    for (int opt = 0; opt < 256; opt += 7) {
      std::string s = base;
      s[0] = static_cast<char>(opt);
      run(s);
    }
  }
  // The whole corpus as one conversation.
  std::string all(1, '\x05');
  for (const auto& base : inputs) all += base.substr(1);
  run(all);
  CHECK(runs >= 8 * 151);
}
