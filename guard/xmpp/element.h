// Lossless XML element tree for one top-level XMPP element (a stanza or a
// stream-negotiation element).
//
// "Lossless" means: every element, attribute (in document order), namespace
// declaration (as written, with its prefix), and character data (exact text,
// entities already resolved to characters) is kept. serialize() writes a
// self-contained, deterministic form: the namespace declarations that were in
// scope from the stream header and are used by the element are written on the
// top element, so the bytes parse on their own (they travel in frames and into
// the audit archive). Parsing serialize()'s output and serializing again gives
// the same bytes (the round-trip property the unit tests check).
//
// Typed views (JID, label, MUC parsers) read this tree; they never own a copy.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::xmpp {

struct Attribute {
  std::string prefix;     // as written; empty if none
  std::string local;      // local name
  std::string ns;         // namespace URI of the attribute ("" for unprefixed)
  std::string value;      // value with entities resolved
};

struct NamespaceDecl {
  std::string prefix;     // empty = default namespace
  std::string uri;
};

class Element;

// A child node: either an element or a run of character data.
struct Node {
  std::unique_ptr<Element> element;   // set for element nodes
  std::string text;                   // set for text nodes (element == nullptr)
  bool is_element() const { return element != nullptr; }
};

class Element {
 public:
  Element() = default;
  Element(std::string ns, std::string local);
  Element(const Element& other);
  Element& operator=(const Element& other);
  Element(Element&&) noexcept = default;
  Element& operator=(Element&&) noexcept = default;
  ~Element();

  const std::string& name() const { return local_; }
  const std::string& ns() const { return ns_; }
  const std::string& prefix() const { return prefix_; }
  void set_prefix(std::string p) { prefix_ = std::move(p); }

  // Attribute access by (namespace, local name); unprefixed attributes have ns "".
  const std::string* attr(std::string_view local, std::string_view ns = {}) const;
  std::string attr_or(std::string_view local, std::string_view fallback = {}) const;
  void set_attr(std::string_view local, std::string value);   // unprefixed; replaces or appends
  bool remove_attr(std::string_view local, std::string_view ns = {});
  const std::vector<Attribute>& attributes() const { return attrs_; }
  std::vector<Attribute>& attributes() { return attrs_; }

  const std::vector<NamespaceDecl>& namespace_decls() const { return nsdecls_; }
  std::vector<NamespaceDecl>& namespace_decls() { return nsdecls_; }

  const std::vector<Node>& children() const { return children_; }
  std::vector<Node>& children() { return children_; }

  // Appends and returns a new child element; the child inherits no prefix.
  Element& add_child(std::string ns, std::string local);
  Element& add_child(Element child);
  void add_text(std::string text);

  // First child element with this local name and namespace (ns "" = any).
  const Element* find_child(std::string_view local, std::string_view ns = {}) const;
  Element* find_child(std::string_view local, std::string_view ns = {});
  std::vector<const Element*> child_elements() const;
  // Removes every direct child element matching local/ns; returns how many.
  std::size_t remove_children(std::string_view local, std::string_view ns);

  // Concatenated direct text children.
  std::string text() const;

  // Self-contained serialization (see file comment).
  std::string serialize() const;

 private:
  std::string ns_;
  std::string local_;
  std::string prefix_;
  std::vector<Attribute> attrs_;
  std::vector<NamespaceDecl> nsdecls_;
  std::vector<Node> children_;
};

// Adds to `top` the declarations from `outer_scope` (the declarations in scope
// around it, e.g. those of the stream header) for every prefix that `top` or a
// descendant uses without the subtree declaring it itself. The stream parser
// calls this for each top-level element so serialize() is self-contained and
// keeps the prefixes as written. Declarations go first, before `top`'s own.
void adopt_namespace_decls(Element& top, const std::vector<NamespaceDecl>& outer_scope);

// Well-known fixed binding of the `xml` prefix (never declared).
inline constexpr std::string_view kNsXml = "http://www.w3.org/XML/1998/namespace";

// Escapes character data / attribute values for XML output. Text escapes
// & < > and CR; attribute values (written in single quotes) also escape
// ' " TAB LF so that attribute-value normalisation cannot change them.

std::string escape_text(std::string_view s);
std::string escape_attr(std::string_view s);

// Well-known namespaces.
inline constexpr std::string_view kNsStream = "http://etherx.jabber.org/streams";
inline constexpr std::string_view kNsServer = "jabber:server";
inline constexpr std::string_view kNsClient = "jabber:client";
inline constexpr std::string_view kNsDialback = "jabber:server:dialback";
inline constexpr std::string_view kNsTls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view kNsSasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr std::string_view kNsStreams = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr std::string_view kNsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";
inline constexpr std::string_view kNsSm = "urn:xmpp:sm:3";   // XEP-0198 stream management
inline constexpr std::string_view kNsDialbackFeature = "urn:xmpp:features:dialback";
inline constexpr std::string_view kNsXmppErrors = "urn:xmpp:errors";

}  // namespace portcullis::xmpp
