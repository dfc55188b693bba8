// What the corpus-replay tests share: reading a corpus directory, and the
// deterministic mutations they replay on top of it (a fixed-seed generator,
// so every run tries the same inputs and a failure reproduces).
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace portcullis::fuzz {

// Every file of test/corpus/DIR whose extension is EXT ("" = any).
inline std::vector<std::string> read_corpus(const std::string& dir, const std::string& ext = {}) {
  std::vector<std::string> out;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(PORTCULLIS_SOURCE_DIR) / "test" / "corpus" / dir)) {
    if (!ext.empty() && entry.path().extension() != ext) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  return out;
}

struct MutationShape {
  unsigned max_edits = 4;   // 1..max_edits edits per input
  unsigned max_erase = 8;   // an erased run is 1..max_erase bytes
  unsigned max_copy = 16;   // a copied run is 1..max_copy bytes
  unsigned max_fill = 0;    // >0: also insert runs of one byte, 1..max_fill long
};

// One to `max_edits` random edits of `s`: a byte replaced, a run erased, a run
// of the input copied elsewhere, and (with max_fill) a run of one byte inserted.
inline std::string mutate(std::string s, std::mt19937& rng, const MutationShape& shape = {}) {
  const unsigned edits = 1 + static_cast<unsigned>(rng() % shape.max_edits);
  for (unsigned e = 0; e < edits && !s.empty(); ++e) {
    const std::size_t at = rng() % s.size();
    switch (rng() % (shape.max_fill ? 4 : 3)) {
      case 0: s[at] = static_cast<char>(rng() & 0xff); break;
      case 1: s.erase(at, 1 + rng() % shape.max_erase); break;
      case 2: s.insert(at, s.substr(rng() % s.size(), 1 + rng() % shape.max_copy)); break;
      default: s.insert(at, std::string(1 + rng() % shape.max_fill, static_cast<char>(rng() & 0xff))); break;
    }
  }
  return s;
}

}  // namespace portcullis::fuzz
