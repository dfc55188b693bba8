// Replays test/corpus/irc through the fuzz target's entry point
// (test/fuzz/fuzz_irc_line.cpp, linked into this binary), as they are and
// under a fixed set of mutations, so its properties hold in every build, not
// only where libFuzzer is built. A violated property aborts the test binary.
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

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> out;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(PORTCULLIS_SOURCE_DIR) / "test" / "corpus" / "irc")) {
    if (entry.path().extension() != ".irc") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

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
      std::string s = base;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !s.empty(); ++e) {
        const std::size_t at = rng() % s.size();
        switch (rng() % 4) {
          case 0: s[at] = static_cast<char>(rng() & 0xff); break;
          case 1: s.erase(at, 1 + rng() % 8); break;
          case 2: s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 16)); break;
          default: s.insert(at, std::string(1 + rng() % 600, static_cast<char>(rng() & 0xff))); break;
        }
      }
      run(s);
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
