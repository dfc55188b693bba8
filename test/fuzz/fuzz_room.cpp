// libFuzzer target: two federated rooms (guard/rooms) fed stanzas from users and nodes.
#include "test/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  portcullis::fuzz::room_one_input(data, size);
  return 0;
}
