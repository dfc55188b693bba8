// libFuzzer target: the frame decoder of the sandwich's socketpairs.
#include "test/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  portcullis::fuzz::frame_decoder_one_input(data, size);
  return 0;
}
