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

namespace portcullis::fuzz {

// The officer's files: the bytes are written to a file and loaded as a SPIF if
// "SPIF" is in their first 512 bytes, else as a policy file. Properties:
// the only failure is a config::ConfigError naming a file, with a position that
// lies inside the file it names (line 1.. its line count + 1) and a message; a
// policy that loads has an id, and both its pipelines decide the sample
// stanzas without crashing, each decision ending in a verdict named by a rule.
// Returns whether the file loaded.
bool policy_one_input(const std::uint8_t* data, std::size_t size);

// The label parsers: input starting with 0x30/0x31 is ESS DER, with '<' or
// white space a stanza, anything else base64. DER that decodes re-encodes, and the encoding is a fixed
// point (decode(encode(x)) encodes to the same bytes); base64 round-trips; a
// stanza is scanned for labels, every decoded label is written back and decodes
// again, and the sample label policy (test/corpus/labels/policy-labels.xml) is
// run on it in both directions: a released stanza carries at most one
// <securitylabel/> and no element of a label namespace anywhere else.
// Returns the number of directions (0-2) that released the input as a stanza.
int label_one_input(const std::uint8_t* data, std::size_t size);

}  // namespace portcullis::fuzz
