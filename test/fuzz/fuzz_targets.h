// Fuzz entry points shared by the libFuzzer binaries (PORTCULLIS_FUZZ=ON, clang)
// and by the corpus-replay unit test that runs in every build.
#pragma once

#include <cstddef>
#include <cstdint>

namespace portcullis::fuzz {

// Feeds the bytes to a stream parser in chunks whose sizes come from the input
// itself, then round-trips every element it produced. Must never crash, leak or
// hang, and must report an error at most once.
void stream_parser_one_input(const std::uint8_t* data, std::size_t size);

// Feeds the bytes to a frame decoder; every decoded frame must re-encode to the
// bytes it came from.
void frame_decoder_one_input(const std::uint8_t* data, std::size_t size);

// Splits the bytes into stanzas (one per line; the first byte of a line picks
// what it is: a user's stanza, a federated node's, a link loss, a clock tick)
// and drives two federated rooms with them, the FMUC codec and each room's
// stanza handling. Properties: no crash; every stanza a room sends is from the
// room (or one of its occupant JIDs); FMUC goes only to the configured twin,
// and no <fmuc/> ever reaches a user; one input stanza makes a bounded number
// of outputs.
void room_one_input(const std::uint8_t* data, std::size_t size);

}  // namespace portcullis::fuzz
