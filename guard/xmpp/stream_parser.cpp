#include "guard/xmpp/stream_parser.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace portcullis::xmpp {

namespace {

// libxml2 must be initialised once per process before contexts are created in
// several threads; everything else we use is per context (no global defaults
// such as xmlSubstituteEntitiesDefault are touched).
void init_libxml_once() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

// Slices handed to libxml2 are bounded so a limit is noticed soon after it is
// crossed and libxml2 never buffers much beyond our own limits.
constexpr std::size_t kMaxSlice = 16 * 1024;

std::string_view sv(const xmlChar* s) {
  return s == nullptr ? std::string_view{} : std::string_view(reinterpret_cast<const char*>(s));
}

std::string str(const xmlChar* s) { return std::string(sv(s)); }

bool is_xml_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Incremental check of every '&' outside CDATA sections: it must start a
// character reference (&#N; / &#xH;) or an entity reference (&name;). libxml2's
// push parser waits for the ';' of a bare '&' ("fish & chips", "&amp ") until
// one arrives, stalling the stream with no error; this check answers at once,
// at the first byte that cannot continue a reference.
class ReferenceCheck {
 public:
  // The index of the first byte of `s` that makes a bad reference, or npos.
  std::size_t scan(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto b = static_cast<unsigned char>(s[i]);
      switch (state_) {
        case State::Text:
          if (b == '&') {
            state_ = State::Amp;
            length_ = 0;
            match_ = 0;
          } else if (b == static_cast<unsigned char>(kCdataOpen[match_])) {
            if (++match_ == sizeof kCdataOpen - 1) {
              state_ = State::Cdata;
              match_ = 0;
            }
          } else {
            match_ = b == '<' ? 1 : 0;
          }
          break;
        case State::Cdata:
          // "]]>" ends it; "]]]>" too.
          if (b == ']') match_ = match_ < 2 ? match_ + 1 : 2;
          else if (b == '>' && match_ == 2) state_ = State::Text, match_ = 0;
          else match_ = 0;
          break;
        case State::Amp:
          if (b == '#') state_ = State::Hash;
          else if (name_start(b)) state_ = State::Name;
          else return i;
          break;
        case State::Name:
          if (b == ';') state_ = State::Text;
          else if (!name_char(b) || ++length_ > kMaxName) return i;
          break;
        case State::Hash:
          if (b == 'x') state_ = State::HexStart;
          else if (b >= '0' && b <= '9') state_ = State::Dec;
          else return i;
          break;
        case State::Dec:
          if (b == ';') state_ = State::Text;
          else if (b < '0' || b > '9' || ++length_ > kMaxName) return i;
          break;
        case State::HexStart:
        case State::Hex:
          if (b == ';' && state_ == State::Hex) state_ = State::Text;
          else if (!std::isxdigit(b) || ++length_ > kMaxName) return i;
          else state_ = State::Hex;
          break;
      }
    }
    return std::string_view::npos;
  }

 private:
  enum class State { Text, Cdata, Amp, Name, Hash, Dec, HexStart, Hex };
  static constexpr std::size_t kMaxName = 64;
  static bool name_start(unsigned char b) {
    return (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b == '_' || b == ':' || b >= 0x80;
  }
  static bool name_char(unsigned char b) {
    return name_start(b) || (b >= '0' && b <= '9') || b == '.' || b == '-';
  }
  static constexpr char kCdataOpen[] = "<![CDATA[";
  State state_ = State::Text;
  std::size_t length_ = 0;
  std::size_t match_ = 0;   // bytes of "<![CDATA[" (in text) or of "]]" (in CDATA) just seen
};

// Incremental UTF-8 check (RFC 3629: no overlongs, no surrogates, <= U+10FFFF)
// that also refuses the C0 controls XML 1.0 forbids. Running it before libxml2
// makes the verdict on bad encodings ours and deterministic, whatever libxml2's
// own (lenient, charset-switching) recovery would do; it also refuses UTF-16 and
// UCS-4 without a BOM (they contain NULs) and with one (invalid UTF-8).
class Utf8Check {
 public:
  // Returns how many leading bytes of `s` are acceptable; a result < s.size()
  // means the byte at that index is bad. A sequence cut at the end of `s` is
  // acceptable so far and continues in the next call.
  std::size_t scan(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (need_ > 0) {
        if (b < lo_ || b > hi_) return i;
        lo_ = 0x80;
        hi_ = 0xBF;
        --need_;
        continue;
      }
      if (b < 0x80) {
        if (b < 0x20 && b != '\t' && b != '\n' && b != '\r') return i;
        continue;
      }
      if (b >= 0xC2 && b <= 0xDF) {
        need_ = 1;
      } else if (b == 0xE0) {
        need_ = 2, lo_ = 0xA0;
      } else if (b == 0xED) {
        need_ = 2, hi_ = 0x9F;   // no UTF-16 surrogates
      } else if (b >= 0xE1 && b <= 0xEF) {
        need_ = 2;
      } else if (b == 0xF0) {
        need_ = 3, lo_ = 0x90;
      } else if (b >= 0xF1 && b <= 0xF3) {
        need_ = 3;
      } else if (b == 0xF4) {
        need_ = 3, hi_ = 0x8F;   // <= U+10FFFF
      } else {
        return i;
      }
    }
    return s.size();
  }

 private:
  int need_ = 0;
  unsigned char lo_ = 0x80;
  unsigned char hi_ = 0xBF;
};

struct ContextDeleter {
  void operator()(xmlParserCtxt* c) const { xmlFreeParserCtxt(c); }
};
using ContextPtr = std::unique_ptr<xmlParserCtxt, ContextDeleter>;

// What the SAX callbacks found, delivered to the handler only after
// xmlParseChunk() returned: the handler may then call reset() (or anything
// else) without pulling the context out from under libxml2.
struct Event {
  enum class Kind { Open, Element, Close, Error } kind = Kind::Error;
  StreamHeader header;
  Element element;
  std::size_t wire_bytes = 0;
  StreamErrorCondition condition = StreamErrorCondition::UndefinedCondition;
  std::string text;
};

// The parser proper, shared by StreamParser and parse_element().
struct ParserCore {
  // handler == nullptr: standalone-element mode (parse_element), the first
  // element is the top-level element and there is no stream header.
  ParserCore(StreamHandler* h, ParserLimits l, std::string content_ns)
      : handler(h), limits(l), expected_content_ns(std::move(content_ns)) {
    init_libxml_once();
    start();
  }

  StreamHandler* handler;
  ParserLimits limits;
  std::string expected_content_ns;

  ContextPtr ctxt;
  bool failed = false;             // this stream is dead (error recorded)
  bool header_seen = false;        // stream mode: root start tag read
  std::size_t depth = 0;           // open elements, the stream root included
  std::size_t fed = 0;             // bytes handed to libxml2 on this stream
  std::size_t boundary = 0;        // stream offset of the last element boundary
  std::unique_ptr<Element> top;    // top-level element under construction
  std::vector<Element*> stack;     // open elements of `top`
  std::vector<NamespaceDecl> header_decls;
  std::vector<Event> events;
  Utf8Check utf8;
  ReferenceCheck refs;
  std::uint64_t generation = 0;    // bumped by reset()

  // Standalone-element mode results.
  std::optional<Element> result;
  std::string error_text;

  bool element_mode() const { return handler == nullptr; }

  void start() {
    xmlSAXHandler sax;
    std::memset(&sax, 0, sizeof sax);
    // Our own handler from scratch: none of libxml2's default SAX2 callbacks
    // (which build a tree and resolve entities) are installed.
    sax.initialized = XML_SAX2_MAGIC;
    sax.startDocument = &ParserCore::on_start_document;
    sax.startElementNs = &ParserCore::on_start_element;
    sax.endElementNs = &ParserCore::on_end_element;
    sax.characters = &ParserCore::on_characters;
    sax.ignorableWhitespace = &ParserCore::on_characters;
    sax.cdataBlock = &ParserCore::on_characters;
    sax.comment = &ParserCore::on_comment;
    sax.processingInstruction = &ParserCore::on_pi;
    sax.internalSubset = &ParserCore::on_subset;
    sax.externalSubset = &ParserCore::on_subset;
    sax.entityDecl = &ParserCore::on_entity_decl;
    sax.notationDecl = &ParserCore::on_notation_decl;
    sax.unparsedEntityDecl = &ParserCore::on_unparsed_entity_decl;
    sax.elementDecl = &ParserCore::on_element_decl;
    sax.attributeDecl = &ParserCore::on_attribute_decl;
    sax.getEntity = &ParserCore::on_get_entity;
    sax.getParameterEntity = &ParserCore::on_get_parameter_entity;
    sax.reference = &ParserCore::on_reference;
    sax.resolveEntity = &ParserCore::on_resolve_entity;
    sax.serror = &ParserCore::on_structured_error;
    // Unstructured channels only matter if serror is bypassed; keep them
    // silent (no stderr) — the wellFormed check after each chunk catches those.
    sax.warning = &ParserCore::on_silent;
    sax.error = &ParserCore::on_silent;
    sax.fatalError = &ParserCore::on_silent;

    // The push parser's input buffer starts at twice libxml2's default buffer
    // size (4096, so 8 KB a stream) and grows with what is fed; an idle
    // stream needs little. The setting is this thread's (the process's, in the
    // main thread) and stays: other libxml2 buffers made here (the policy's
    // xmlReader) start smaller too and grow the same way.
    xmlDefaultBufferSize = 256;
    ctxt.reset(xmlCreatePushParserCtxt(&sax, this, nullptr, 0, nullptr));
    if (!ctxt) {
      fail(StreamErrorCondition::InternalServerError, "cannot create XML parser");
      return;
    }
    // NONET; deliberately not NOENT (no entity substitution), not DTDLOAD,
    // DTDATTR or DTDVALID, not HUGE (libxml2's own size caps stay on),
    // not RECOVER.
    xmlCtxtUseOptions(ctxt.get(), XML_PARSE_NONET | XML_PARSE_NOCDATA);
    ctxt->replaceEntities = 0;
    ctxt->loadsubset = 0;
    ctxt->validate = 0;
  }

  void reset_state() {
    ++generation;
    ctxt.reset();
    failed = false;
    header_seen = false;
    depth = 0;
    fed = 0;
    boundary = 0;
    top.reset();
    stack.clear();
    header_decls.clear();
    events.clear();
    utf8 = Utf8Check{};
    refs = ReferenceCheck{};
    result.reset();
    error_text.clear();
    start();
  }

  static ParserCore& self(void* ctx) { return *static_cast<ParserCore*>(ctx); }

  // Stream offset of libxml2's read position (bytes, since we only ever feed
  // UTF-8 and refuse any other encoding before the content starts).
  std::size_t offset() const {
    const xmlParserInput* in = ctxt ? ctxt->input : nullptr;
    if (in == nullptr || in->cur == nullptr || in->base == nullptr) return fed;
    return static_cast<std::size_t>(in->consumed) + static_cast<std::size_t>(in->cur - in->base);
  }

  // Records the first error and stops libxml2. Every callback checks `failed`
  // first, because libxml2 may still call back within the same xmlParseChunk.
  void fail(StreamErrorCondition c, std::string text) {
    if (failed) return;
    failed = true;
    Event e;
    e.kind = Event::Kind::Error;
    e.condition = c;
    e.text = std::move(text);
    events.push_back(std::move(e));
    top.reset();
    stack.clear();
    if (ctxt) xmlStopParser(ctxt.get());
  }

  bool name_too_long(const xmlChar* s) const {
    return s != nullptr && std::strlen(reinterpret_cast<const char*>(s)) > limits.max_name_bytes;
  }

  // ---- SAX callbacks --------------------------------------------------------

  static void on_start_document(void* ctx) {
    ParserCore& p = self(ctx);
    if (p.failed) return;
    // The XML declaration has been read; libxml2 would transcode any other
    // declared encoding. XMPP is UTF-8 only (RFC 6120 §11.6).
    xmlParserCtxt* c = p.ctxt.get();
    // XML 1.0 only (RFC 6120 §11.2 speaks of XML 1.0; expat, which Prosody and
    // ejabberd parse with, refuses any other version, so nothing else may cross).
    if (c->version != nullptr && sv(c->version) != "1.0") {
      p.fail(StreamErrorCondition::NotWellFormed,
             "the XML declaration names version " + std::string(sv(c->version)) + "; only XML 1.0 is accepted");
      return;
    }
    std::string_view enc = sv(c->encoding);
    if (enc.empty() && c->input != nullptr) enc = sv(c->input->encoding);
    if (!enc.empty()) {
      std::string lower(enc);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (lower != "utf-8" && lower != "utf8") {
        p.fail(StreamErrorCondition::UnsupportedEncoding,
               "only UTF-8 is supported, the XML declaration names another encoding");
      }
    }
  }

  static void on_start_element(void* ctx, const xmlChar* localname, const xmlChar* prefix,
                               const xmlChar* uri, int nb_namespaces, const xmlChar** namespaces,
                               int nb_attributes, int /*nb_defaulted*/, const xmlChar** attributes) {
    ParserCore& p = self(ctx);
    if (p.failed) return;
    p.start_element(localname, prefix, uri, nb_namespaces, namespaces, nb_attributes, attributes);
  }

  void start_element(const xmlChar* localname, const xmlChar* prefix, const xmlChar* uri,
                     int nb_namespaces, const xmlChar** namespaces, int nb_attributes,
                     const xmlChar** attributes) {
    // Limits first: nothing of an over-limit element is kept.
    if (name_too_long(localname) || name_too_long(prefix)) {
      fail(StreamErrorCondition::PolicyViolation, "element name exceeds " +
                                                      std::to_string(limits.max_name_bytes) +
                                                      " bytes");
      return;
    }
    const auto n_attr = static_cast<std::size_t>(std::max(nb_attributes, 0));
    const auto n_ns = static_cast<std::size_t>(std::max(nb_namespaces, 0));
    // Namespace declarations are attributes in XML 1.0 terms; both count.
    if (n_attr + n_ns > limits.max_attributes) {
      fail(StreamErrorCondition::PolicyViolation,
           "element has more than " + std::to_string(limits.max_attributes) + " attributes");
      return;
    }
    for (std::size_t i = 0; i < n_ns; ++i) {
      if (name_too_long(namespaces[2 * i])) {
        fail(StreamErrorCondition::PolicyViolation, "namespace prefix exceeds " +
                                                        std::to_string(limits.max_name_bytes) +
                                                        " bytes");
        return;
      }
    }
    for (std::size_t i = 0; i < n_attr; ++i) {
      if (name_too_long(attributes[5 * i]) || name_too_long(attributes[5 * i + 1])) {
        fail(StreamErrorCondition::PolicyViolation, "attribute name exceeds " +
                                                        std::to_string(limits.max_name_bytes) +
                                                        " bytes");
        return;
      }
    }

    if (!element_mode() && depth == 0) {
      open_stream(localname, prefix, uri, n_ns, namespaces, n_attr, attributes);
      ++depth;
      return;
    }

    // A second stream header inside the stream is refused at once, not taken
    // for a stanza that swallows everything until it closes.
    if (!element_mode() && sv(localname) == "stream" && ns_name(uri) == kNsStream) {
      fail(StreamErrorCondition::InvalidNamespace, "a <stream:stream> header inside the stream");
      return;
    }
    // Level of the new element: 1 = top-level (a stanza).
    const std::size_t level = element_mode() ? depth + 1 : depth;
    if (level > limits.max_depth) {
      fail(StreamErrorCondition::PolicyViolation,
           "element nesting exceeds " + std::to_string(limits.max_depth) + " levels");
      return;
    }
    if (level == 1 && !element_mode() && !sv(prefix).empty() &&
        ns_name(uri) == expected_content_ns) {
      fail(StreamErrorCondition::BadNamespacePrefix,
           "the content namespace must not be used with a prefix");
      return;
    }

    Element* e = nullptr;
    if (level == 1) {
      top = std::make_unique<Element>(ns_name(uri), str(localname));
      stack.clear();
      e = top.get();
    } else {
      e = &stack.back()->add_child(ns_name(uri), str(localname));
    }
    e->set_prefix(str(prefix));
    for (std::size_t i = 0; i < n_ns; ++i) {
      e->namespace_decls().push_back({str(namespaces[2 * i]), ns_name(namespaces[2 * i + 1])});
    }
    for (std::size_t i = 0; i < n_attr; ++i) {
      const xmlChar** a = attributes + 5 * i;
      e->attributes().push_back(
          Attribute{str(a[1]), str(a[0]), ns_name(a[2]), attribute_value(a[3], a[4])});
    }
    stack.push_back(e);
    ++depth;
  }

  // Without entity substitution libxml2 hands '&' in attribute values over as
  // the character reference "&#38;" (for a later tree builder to re-parse).
  // A literal '&' cannot otherwise appear there, so every "&#38;" is one '&'.
  // Namespace names are attribute values too and arrive encoded the same way.
  std::string attribute_value(const xmlChar* begin, const xmlChar* end) const {
    return decode_amp(std::string_view(reinterpret_cast<const char*>(begin),
                                       static_cast<std::size_t>(end - begin)));
  }
  std::string ns_name(const xmlChar* uri) const { return decode_amp(sv(uri)); }

  std::string decode_amp(std::string_view raw) const {
    if (ctxt->replaceEntities != 0 || raw.find('&') == std::string_view::npos) {
      return std::string(raw);
    }
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size();) {
      if (raw.compare(i, 5, "&#38;") == 0) {
        out += '&';
        i += 5;
      } else {
        out += raw[i++];
      }
    }
    return out;
  }

  void open_stream(const xmlChar* localname, const xmlChar* prefix, const xmlChar* uri,
                   std::size_t n_ns, const xmlChar** namespaces, std::size_t n_attr,
                   const xmlChar** attributes) {
    if (ns_name(uri) != kNsStream || sv(localname) != "stream") {
      fail(StreamErrorCondition::InvalidNamespace,
           "the root element must be <stream> in namespace http://etherx.jabber.org/streams");
      return;
    }
    if (sv(prefix).empty()) {
      // The streams namespace as default namespace: the stream element needs a
      // prefix (RFC 6120 §4.9.3.2).
      fail(StreamErrorCondition::BadNamespacePrefix,
           "the stream element must carry a prefix bound to the streams namespace");
      return;
    }
    StreamHeader h;
    bool content_prefixed = false;
    for (std::size_t i = 0; i < n_ns; ++i) {
      NamespaceDecl d{str(namespaces[2 * i]), ns_name(namespaces[2 * i + 1])};
      if (d.prefix.empty()) h.content_ns = d.uri;
      if (!d.prefix.empty() && d.uri == expected_content_ns) content_prefixed = true;
      if (d.uri == kNsDialback) h.has_dialback_ns = true;
      h.namespace_decls.push_back(std::move(d));
    }
    if (h.content_ns != expected_content_ns) {
      if (h.content_ns.empty() && content_prefixed) {
        fail(StreamErrorCondition::BadNamespacePrefix,
             "the content namespace is declared with a prefix");
      } else {
        fail(StreamErrorCondition::InvalidNamespace,
             "the content namespace must be " + expected_content_ns);
      }
      return;
    }
    for (std::size_t i = 0; i < n_attr; ++i) {
      const xmlChar** a = attributes + 5 * i;
      const std::string_view local = sv(a[0]);
      const std::string ans = ns_name(a[2]);
      std::string value = attribute_value(a[3], a[4]);
      if (ans.empty()) {
        if (local == "from") h.from = std::move(value);
        else if (local == "to") h.to = std::move(value);
        else if (local == "id") h.id = std::move(value);
        else if (local == "version") h.version = std::move(value);
      } else if (ans == kNsXml && local == "lang") {
        h.lang = std::move(value);
      }
    }
    header_decls = h.namespace_decls;
    header_seen = true;
    // libxml2 reports a start tag before consuming its closing '>'.
    boundary = offset();
    const xmlParserInput* in = ctxt->input;
    if (in != nullptr && in->cur != nullptr && in->cur < in->end && *in->cur == '>') ++boundary;
    Event e;
    e.kind = Event::Kind::Open;
    e.header = std::move(h);
    events.push_back(std::move(e));
  }

  static void on_end_element(void* ctx, const xmlChar* /*localname*/, const xmlChar* /*prefix*/,
                             const xmlChar* /*uri*/) {
    ParserCore& p = self(ctx);
    if (p.failed) return;
    p.end_element();
  }

  void end_element() {
    if (depth == 0) return;
    --depth;
    const std::size_t level = element_mode() ? depth + 1 : depth;
    if (!element_mode() && depth == 0) {
      Event e;
      e.kind = Event::Kind::Close;
      events.push_back(std::move(e));
      boundary = offset();
      return;
    }
    if (level > 1) {
      stack.pop_back();
      return;
    }
    // A complete top-level element.
    const std::size_t end = offset();
    const std::size_t wire = end > boundary ? end - boundary : 0;
    if (wire > limits.max_stanza_bytes) {
      fail(StreamErrorCondition::PolicyViolation,
           "stanza of " + std::to_string(wire) + " bytes exceeds the limit of " +
               std::to_string(limits.max_stanza_bytes) + " bytes");
      return;
    }
    stack.clear();
    Element done = std::move(*top);
    top.reset();
    adopt_namespace_decls(done, header_decls);
    boundary = end;
    Event e;
    e.kind = Event::Kind::Element;
    e.element = std::move(done);
    e.wire_bytes = wire;
    events.push_back(std::move(e));
  }

  static void on_characters(void* ctx, const xmlChar* ch, int len) {
    ParserCore& p = self(ctx);
    if (p.failed || len <= 0) return;
    std::string_view text(reinterpret_cast<const char*>(ch), static_cast<std::size_t>(len));
    if (!p.stack.empty()) {
      p.stack.back()->add_text(std::string(text));
      return;
    }
    if (!p.element_mode() && p.depth == 1) {
      // Between top-level elements only whitespace (keepalives) is allowed.
      if (!std::all_of(text.begin(), text.end(), is_xml_space)) {
        p.fail(StreamErrorCondition::NotWellFormed, "character data at stream level");
        return;
      }
      p.boundary = p.offset();
    }
  }

  static void restricted(void* ctx, const char* what) {
    self(ctx).fail(StreamErrorCondition::RestrictedXml,
                   std::string(what) + " is not allowed in XMPP (RFC 6120 §11.1)");
  }

  static void on_comment(void* ctx, const xmlChar*) { restricted(ctx, "a comment"); }
  static void on_pi(void* ctx, const xmlChar*, const xmlChar*) {
    restricted(ctx, "a processing instruction");
  }
  static void on_subset(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    restricted(ctx, "a document type declaration");
  }
  static void on_entity_decl(void* ctx, const xmlChar*, int, const xmlChar*, const xmlChar*,
                             xmlChar*) {
    restricted(ctx, "an entity declaration");
  }
  static void on_notation_decl(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    restricted(ctx, "a notation declaration");
  }
  static void on_unparsed_entity_decl(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*,
                                      const xmlChar*) {
    restricted(ctx, "an entity declaration");
  }
  static void on_element_decl(void* ctx, const xmlChar*, int, xmlElementContentPtr) {
    restricted(ctx, "an element declaration");
  }
  static void on_attribute_decl(void* ctx, const xmlChar*, const xmlChar*, int, int,
                                const xmlChar*, xmlEnumerationPtr tree) {
    xmlFreeEnumeration(tree);   // the callback owns it
    restricted(ctx, "an attribute-list declaration");
  }
  static xmlEntityPtr on_get_entity(void* ctx, const xmlChar* name) {
    // libxml2 resolves the five predefined entities before asking; be safe anyway.
    xmlEntityPtr predefined = xmlGetPredefinedEntity(name);
    if (predefined != nullptr) return predefined;
    restricted(ctx, "an entity reference");
    return nullptr;
  }
  static xmlEntityPtr on_get_parameter_entity(void* ctx, const xmlChar*) {
    restricted(ctx, "a parameter entity reference");
    return nullptr;
  }
  static void on_reference(void* ctx, const xmlChar*) {
    restricted(ctx, "an entity reference");
  }
  static xmlParserInputPtr on_resolve_entity(void* ctx, const xmlChar*, const xmlChar*) {
    restricted(ctx, "an external entity");
    return nullptr;
  }

  static void on_structured_error(void* ctx, xmlErrorPtr err) {
    ParserCore& p = self(ctx);
    if (p.failed || err == nullptr || err->level < XML_ERR_ERROR) return;   // warnings are fine
    std::string msg = err->message != nullptr ? err->message : "XML error";
    while (!msg.empty() && is_xml_space(msg.back())) msg.pop_back();
    StreamErrorCondition c = StreamErrorCondition::NotWellFormed;
    switch (err->code) {
      case XML_ERR_UNSUPPORTED_ENCODING:
      case XML_ERR_INVALID_ENCODING:
        c = StreamErrorCondition::UnsupportedEncoding;
        break;
      case XML_ERR_UNDECLARED_ENTITY:
      case XML_WAR_UNDECLARED_ENTITY:
      case XML_ERR_ENTITY_LOOP:
      case XML_ERR_ENTITY_BOUNDARY:
      case XML_ERR_ENTITY_PE_INTERNAL:
      case XML_ERR_EXT_ENTITY_STANDALONE:
        c = StreamErrorCondition::RestrictedXml;
        break;
      default:
        break;
    }
    p.fail(c, (c == StreamErrorCondition::NotWellFormed ? "not well-formed: " : "") + msg);
  }

  static void on_silent(void*, const char*, ...) {}

  // ---- feeding --------------------------------------------------------------

  void parse(const char* data, std::size_t n, bool terminate) {
    if (failed || !ctxt) return;
    xmlParseChunk(ctxt.get(), data, static_cast<int>(n), terminate ? 1 : 0);
    fed += n;
    if (failed) return;
    // Belt and braces: an error that reached libxml2's unstructured channels.
    if (ctxt->wellFormed == 0 || ctxt->nsWellFormed == 0) {
      fail(StreamErrorCondition::NotWellFormed, "not well-formed");
      return;
    }
    if (ctxt->dict != nullptr &&
        static_cast<std::size_t>(xmlDictSize(ctxt->dict)) > limits.max_distinct_names) {
      // libxml2 interns every name for the life of the context; a peer inventing
      // names forever would grow it without bound.
      fail(StreamErrorCondition::PolicyViolation,
           "more than " + std::to_string(limits.max_distinct_names) + " distinct XML names");
      return;
    }
    check_size_limits();
  }

  void check_size_limits() {
    const bool in_header = !element_mode() && !header_seen;
    const std::size_t pending = fed - std::min(fed, boundary);
    if (in_header && fed > limits.max_header_bytes) {
      fail(StreamErrorCondition::PolicyViolation,
           "stream header exceeds " + std::to_string(limits.max_header_bytes) + " bytes");
    } else if (!in_header && pending > limits.max_stanza_bytes) {
      fail(StreamErrorCondition::PolicyViolation,
           "stanza exceeds the limit of " + std::to_string(limits.max_stanza_bytes) +
               " bytes (" + std::to_string(pending) + " bytes without an end)");
    }
  }

  // How many more bytes may go to libxml2 before a limit can be crossed:
  // exactly one byte past the limit, so an unterminated element is caught as
  // soon as it is over, and libxml2 never holds more than the limit + a slice.
  std::size_t budget() const {
    const bool in_header = !element_mode() && !header_seen;
    const std::size_t limit = in_header ? limits.max_header_bytes : limits.max_stanza_bytes;
    const std::size_t used = in_header ? fed : fed - std::min(fed, boundary);
    return used <= limit ? limit - used + 1 : 1;
  }

  // Delivers queued events. Returns false if the handler reset the parser
  // (the remaining events belong to the old stream and are dropped).
  bool dispatch() {
    if (events.empty()) return true;
    std::vector<Event> batch = std::move(events);
    events.clear();
    const std::uint64_t gen = generation;
    for (auto& e : batch) {
      if (element_mode()) {
        if (e.kind == Event::Kind::Element && !result) result = std::move(e.element);
        if (e.kind == Event::Kind::Error && error_text.empty()) {
          error_text = std::string(to_string(e.condition)) + ": " + e.text;
        }
        continue;
      }
      switch (e.kind) {
        case Event::Kind::Open: handler->on_stream_open(e.header); break;
        case Event::Kind::Element: handler->on_element(std::move(e.element), e.wire_bytes); break;
        case Event::Kind::Close: handler->on_stream_close(); break;
        case Event::Kind::Error: handler->on_stream_error(e.condition, std::move(e.text)); break;
      }
      if (generation != gen) return false;
    }
    return true;
  }

  bool feed(std::string_view bytes) {
    if (failed) return false;
    std::size_t pos = 0;
    while (pos < bytes.size() && !failed) {
      const std::size_t n = std::min({bytes.size() - pos, budget(), kMaxSlice});
      const std::string_view slice = bytes.substr(pos, n);
      const std::size_t good = utf8.scan(slice);
      const std::size_t bad_ref = refs.scan(slice.substr(0, good));
      if (bad_ref != std::string_view::npos) {
        // What came before is parsed (and complete stanzas dispatched) first.
        if (bad_ref > 0) parse(slice.data(), bad_ref, false);
        if (!failed) fail(StreamErrorCondition::NotWellFormed, "'&' that starts no character or entity reference");
      } else {
        if (good > 0) parse(slice.data(), good, false);
        if (good < n) {
          fail(StreamErrorCondition::NotWellFormed, "invalid UTF-8 or a forbidden control character");
        }
      }
      // A reset() from the handler discards the rest of this input: bytes that
      // followed <proceed/> or <success/> in the same read were sent before
      // the peer could know the outcome (STARTTLS command injection).
      if (!dispatch()) return true;
      pos += n;
    }
    return !failed;
  }
};

}  // namespace

struct StreamParser::Impl : ParserCore {
  using ParserCore::ParserCore;
};

StreamParser::StreamParser(StreamHandler& handler, ParserLimits limits,
                           std::string_view expected_content_ns)
    : impl_(std::make_unique<Impl>(&handler, limits, std::string(expected_content_ns))) {
  impl_->dispatch();   // an initialisation failure is reported like any other
}

StreamParser::~StreamParser() = default;

bool StreamParser::feed(std::string_view bytes) { return impl_->feed(bytes); }

void StreamParser::reset() {
  impl_->reset_state();
  impl_->dispatch();
}

bool StreamParser::failed() const { return impl_->failed; }

std::optional<Element> parse_element(std::string_view bytes, const ParserLimits& limits,
                                     std::string* error) {
  auto set_error = [&](std::string text) {
    if (error != nullptr) *error = std::move(text);
  };
  if (bytes.size() > limits.max_stanza_bytes) {
    set_error("policy-violation: element of " + std::to_string(bytes.size()) +
              " bytes exceeds the limit of " + std::to_string(limits.max_stanza_bytes) + " bytes");
    return std::nullopt;
  }
  ParserCore p(nullptr, limits, {});
  p.feed(bytes);
  if (!p.failed) {
    // End of input: lets libxml2 report an unterminated element or trailing junk.
    p.parse(nullptr, 0, true);
    p.dispatch();
  }
  if (p.failed) {
    set_error(p.error_text.empty() ? "not-well-formed" : p.error_text);
    return std::nullopt;
  }
  if (!p.result) {
    set_error("not-well-formed: no element");
    return std::nullopt;
  }
  return std::move(p.result);
}

}  // namespace portcullis::xmpp
