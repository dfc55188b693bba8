// Hardened XMPP stream parser: a libxml2 SAX2 push parser, one per connection.
//
// Bytes from the socket go in through feed(); the parser calls the handler for
// the stream header, for each complete top-level element (depth 1 under
// <stream:stream>), and for the stream close. Restricted XML (RFC 6120 §11) is
// enforced at the SAX layer: a DTD, an entity reference other than the five
// predefined ones, a comment or a processing instruction stops the parser with
// a StreamErrorCondition; so do limit violations, invalid UTF-8, unbound
// prefixes, a wrong stream namespace and text at stream level.
//
// Conditions reported (first problem wins, reported exactly once):
//   restricted-xml       DOCTYPE (internal or external subset; so billion laughs
//                        and XXE stop at the DOCTYPE before any declaration is
//                        read), entity/notation/element/attlist declarations,
//                        any entity reference but the five predefined ones (in
//                        text or attribute values), comments, processing
//                        instructions (anywhere, including before the header)
//   unsupported-encoding an XML declaration naming an encoding other than UTF-8
//   not-well-formed      libxml2 errors (syntax, tag mismatch, unbound element or
//                        attribute prefix, a second XML declaration), invalid
//                        UTF-8 (overlongs, surrogates, stray bytes), C0 control
//                        characters (so NUL, and UTF-16/UCS-4 without a
//                        declaration), non-whitespace text at stream level
//   invalid-namespace    root not {http://etherx.jabber.org/streams}stream (any
//                        other name or namespace, including a stream: prefix
//                        bound to another URI); header default namespace missing
//                        or not the expected content namespace
//   bad-namespace-prefix stream element unprefixed (streams namespace as the
//                        default); content namespace declared only with a
//                        prefix; a top-level element using a prefix for it
//   policy-violation     limits: stanza bytes (also a stanza that never ends:
//                        bytes fed since the last top-level boundary are
//                        counted, libxml2 never gets more than limit + 1 of
//                        them), depth, attributes (namespace declarations
//                        count), name length, header size, distinct names.
//                        The text names the limit; adding <stanza-too-big
//                        xmlns='urn:xmpp:errors'/> is the caller's business.
//
// After an error the parser is dead: feed() returns false and does nothing.
// reset() starts a new stream (after STARTTLS or SASL success).
//
// Text at stream level is seen when the next '<' arrives (libxml2 holds short
// character runs back); the stanza byte limit bounds what can pile up first.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_error.h"

namespace portcullis::xmpp {

struct ParserLimits {
  std::size_t max_stanza_bytes = 256 * 1024;   // bytes of one top-level element
  std::size_t max_depth = 32;                  // element nesting below the stream root
  std::size_t max_attributes = 64;             // per element
  std::size_t max_name_bytes = 256;            // element/attribute names and prefixes
  std::size_t max_header_bytes = 4096;         // the stream header
  // Distinct element/attribute names and prefixes libxml2 has interned on one
  // stream (its dictionary lives as long as the stream): bounds memory against
  // a peer that invents new names forever.
  std::size_t max_distinct_names = 50000;
};

struct StreamHeader {
  std::string content_ns;   // default namespace declared on the header (jabber:server)
  std::string from, to, id, version, lang;
  std::vector<NamespaceDecl> namespace_decls;   // as declared on the header
  bool has_dialback_ns = false;                 // xmlns:db='jabber:server:dialback'
};

// Callbacks are made from inside feed() (and reset()), after libxml2 has
// returned, in stream order. A callback may call reset(); it must not destroy
// the parser (defer that to after feed() returns).
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // The <stream:stream> start tag was read.
  virtual void on_stream_open(const StreamHeader& header) = 0;
  // A complete top-level element. `wire_bytes` is its size as received (for limits
  // and accounting); the element holds the in-scope namespace declarations needed
  // to serialize it on its own.
  virtual void on_element(Element element, std::size_t wire_bytes) = 0;
  // </stream:stream> was read.
  virtual void on_stream_close() = 0;
  // The stream is unusable; the caller sends the stream error and closes.
  virtual void on_stream_error(StreamErrorCondition condition, std::string text) = 0;
};

class StreamParser {
 public:
  // `expected_content_ns` is the default namespace the stream header must
  // declare: jabber:server for S2S (jabber:client lets tests and other uses
  // parse client streams).
  StreamParser(StreamHandler& handler, ParserLimits limits = {},
               std::string_view expected_content_ns = kNsServer);
  ~StreamParser();
  StreamParser(const StreamParser&) = delete;
  StreamParser& operator=(const StreamParser&) = delete;

  // Feeds received bytes. Returns false once the parser has failed (the handler
  // has been told, exactly once).
  bool feed(std::string_view bytes);
  // Discards all state and expects a new stream header (stream restart). May be
  // called from a handler callback: the rest of the bytes of the feed() call in
  // progress are then discarded too (bytes that followed <proceed/> or
  // <success/> in the same read are an injection, never the new stream).
  // Also revives a failed parser.
  void reset();
  bool failed() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses one self-contained serialized element (a frame body, a file). Used by
// the filter, the tools and the tests. Same restrictions and limits as the stream
// parser. Returns nullopt and sets *error (if given) on failure.
std::optional<Element> parse_element(std::string_view bytes, const ParserLimits& limits = {},
                                     std::string* error = nullptr);

}  // namespace portcullis::xmpp
