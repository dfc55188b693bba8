// Replays test/corpus/jid through the JID fuzz target's entry point
// (test/fuzz/fuzz_jid.cpp, linked into this binary), as they are and under a
// fixed set of mutations, so its properties hold in every build, not only
// where libFuzzer is built. A violated property aborts the test binary.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "test/fuzz/corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

TEST_CASE("JID preparation survives the JID corpus and its mutations", "[xmpp][precis][fuzz]") {
  const std::vector<std::string> inputs = portcullis::fuzz::read_corpus("jid");
  REQUIRE(inputs.size() >= 5);
  std::mt19937 rng(20261206);   // fixed seed: the same mutations every run
  std::size_t runs = 0;
  auto run = [&](const std::string& s) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    ++runs;
  };
  for (const auto& base : inputs) {
    run(base);
    for (int m = 0; m < 400; ++m) {
      run(portcullis::fuzz::mutate(base, rng, {.max_edits = 3, .max_erase = 4, .max_copy = 8}));
    }
  }
  CHECK(runs >= 5 * 401);
}
