// Replays test/corpus/jid through the JID fuzz target's entry point
// (test/fuzz/fuzz_jid.cpp, linked into this binary), as they are and under a
// fixed set of mutations, so its properties hold in every build, not only
// where libFuzzer is built. A violated property aborts the test binary.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

TEST_CASE("JID preparation survives the JID corpus and its mutations", "[xmpp][precis][fuzz]") {
  std::vector<std::string> inputs;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(PORTCULLIS_SOURCE_DIR) / "test" / "corpus" / "jid")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    inputs.push_back(ss.str());
  }
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
      std::string s = base;
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        const std::size_t at = rng() % s.size();
        switch (rng() % 3) {
          case 0: s[at] = static_cast<char>(rng() & 0xff); break;
          case 1: s.erase(at, 1 + rng() % 4); break;
          default: s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 8)); break;
        }
      }
      run(s);
    }
  }
  CHECK(runs >= 5 * 401);
}
