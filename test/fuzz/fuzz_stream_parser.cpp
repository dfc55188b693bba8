// libFuzzer target: the hardened XMPP stream parser.
#include "test/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  portcullis::fuzz::stream_parser_one_input(data, size);
  return 0;
}
