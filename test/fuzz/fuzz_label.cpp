// libFuzzer target: see label_one_input in fuzz_targets.h for what it feeds and
// the properties it checks. Replayed over its corpus in every build by
// fuzz_corpus_replay.
#include "test/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  portcullis::fuzz::label_one_input(data, size);
  return 0;
}
