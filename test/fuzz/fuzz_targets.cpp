#include "test/fuzz/fuzz_targets.h"

#include <cstdlib>
#include <string>
#include <string_view>

#include "guard/ipc/frame.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::fuzz {
namespace {

// A violated property is a bug: abort so the fuzzer records the input.
void require(bool ok) {
  if (!ok) std::abort();
}

class CountingHandler : public xmpp::StreamHandler {
 public:
  int errors = 0;
  void on_stream_open(const xmpp::StreamHeader&) override {}
  void on_element(xmpp::Element e, std::size_t) override {
    const std::string once = e.serialize();
    std::string err;
    auto again = xmpp::parse_element(once, {}, &err);
    require(again.has_value());
    require(again->serialize() == once);
  }
  void on_stream_close() override {}
  void on_stream_error(xmpp::StreamErrorCondition, std::string) override { ++errors; }
};

}  // namespace

void stream_parser_one_input(const std::uint8_t* data, std::size_t size) {
  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = 16 * 1024;
  limits.max_depth = 16;
  CountingHandler h;
  xmpp::StreamParser parser(h, limits);
  // The first byte picks the chunk size, so splits at every boundary get explored.
  const std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = 0; at < all.size(); at += chunk) {
    if (!parser.feed(all.substr(at, chunk))) break;
  }
  require(h.errors <= 1);
}

void frame_decoder_one_input(const std::uint8_t* data, std::size_t size) {
  ipc::FrameLimits limits;
  limits.max_body = 64 * 1024;
  ipc::FrameDecoder dec(limits);
  dec.append(std::string_view(reinterpret_cast<const char*>(data), size));
  std::size_t consumed = 0;
  while (auto f = dec.next()) {
    const std::string bytes = ipc::encode(*f);
    require(bytes.size() <= size - consumed);
    require(std::string_view(reinterpret_cast<const char*>(data) + consumed, bytes.size()) == bytes);
    consumed += bytes.size();
  }
}

}  // namespace portcullis::fuzz
