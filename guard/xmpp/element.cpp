#include "guard/xmpp/element.h"

#include <algorithm>
#include <utility>

namespace portcullis::xmpp {

namespace {

// One prefix binding as seen while walking a tree. Scopes are small (a handful
// of bindings), so a vector searched from the back is faster than a map and
// naturally models shadowing.
struct Binding {
  std::string_view prefix;
  std::string_view uri;
};

using Scope = std::vector<Binding>;

const std::string_view* lookup(const Scope& scope, std::string_view prefix) {
  for (auto it = scope.rbegin(); it != scope.rend(); ++it) {
    if (it->prefix == prefix) return &it->uri;
  }
  return nullptr;
}

bool is_bound(const Scope& scope, std::string_view prefix, std::string_view uri) {
  if (prefix == "xml") return true;   // fixed binding, never declared
  const std::string_view* bound = lookup(scope, prefix);
  if (bound != nullptr) return *bound == uri;
  return prefix.empty() && uri.empty();   // no default namespace in scope = ""
}

// The declarations to write on one element: its explicit ones first (as
// recorded, so parsed trees keep their order), then whatever the element's own
// name and its prefixed attributes need that is not in scope. A needed binding
// whose prefix is declared explicitly with another URI wins (the tree was
// edited); this keeps the output well-formed whatever the caller did.
std::vector<NamespaceDecl> decls_for(const Element& e, const Scope& scope) {
  std::vector<NamespaceDecl> out;
  for (const auto& d : e.namespace_decls()) {
    auto same = std::find_if(out.begin(), out.end(),
                             [&](const NamespaceDecl& o) { return o.prefix == d.prefix; });
    if (same == out.end()) out.push_back(d);
  }
  auto need = [&](const std::string& prefix, const std::string& uri) {
    if (prefix == "xml") return;
    auto same = std::find_if(out.begin(), out.end(),
                             [&](const NamespaceDecl& o) { return o.prefix == prefix; });
    if (same != out.end()) {
      same->uri = uri;
      return;
    }
    if (!is_bound(scope, prefix, uri)) out.push_back({prefix, uri});
  };
  need(e.prefix(), e.ns());
  for (const auto& a : e.attributes()) {
    if (!a.prefix.empty()) need(a.prefix, a.ns);
  }
  return out;
}

void append_qname(std::string& out, const std::string& prefix, const std::string& local) {
  if (!prefix.empty()) {
    out += prefix;
    out += ':';
  }
  out += local;
}

void serialize_into(const Element& e, Scope& scope, std::string& out) {
  const std::vector<NamespaceDecl> decls = decls_for(e, scope);
  const std::size_t scope_mark = scope.size();
  out += '<';
  append_qname(out, e.prefix(), e.name());
  for (const auto& d : decls) {
    out += d.prefix.empty() ? " xmlns='" : " xmlns:";
    if (!d.prefix.empty()) {
      out += d.prefix;
      out += "='";
    }
    out += escape_attr(d.uri);
    out += '\'';
    scope.push_back({d.prefix, d.uri});
  }
  for (const auto& a : e.attributes()) {
    out += ' ';
    append_qname(out, a.prefix, a.local);
    out += "='";
    out += escape_attr(a.value);
    out += '\'';
  }
  if (e.children().empty()) {
    out += "/>";
  } else {
    out += '>';
    for (const auto& child : e.children()) {
      if (child.is_element()) {
        serialize_into(*child.element, scope, out);
      } else {
        out += escape_text(child.text);
      }
    }
    out += "</";
    append_qname(out, e.prefix(), e.name());
    out += '>';
  }
  scope.resize(scope_mark);
}

// Collects prefixes used in the subtree and not declared by the subtree itself.
void collect_free_prefixes(const Element& e, Scope& scope, std::vector<std::string>& free) {
  const std::size_t scope_mark = scope.size();
  for (const auto& d : e.namespace_decls()) scope.push_back({d.prefix, d.uri});
  auto use = [&](const std::string& prefix) {
    if (prefix == "xml" || lookup(scope, prefix) != nullptr) return;
    if (std::find(free.begin(), free.end(), prefix) == free.end()) free.push_back(prefix);
  };
  use(e.prefix());
  for (const auto& a : e.attributes()) {
    if (!a.prefix.empty()) use(a.prefix);
  }
  for (const auto& child : e.children()) {
    if (child.is_element()) collect_free_prefixes(*child.element, scope, free);
  }
  scope.resize(scope_mark);
}

bool matches(const Element& e, std::string_view local, std::string_view ns) {
  return e.name() == local && (ns.empty() || e.ns() == ns);
}

}  // namespace

Element::Element(std::string ns, std::string local) : ns_(std::move(ns)), local_(std::move(local)) {}

Element::Element(const Element& other)
    : ns_(other.ns_),
      local_(other.local_),
      prefix_(other.prefix_),
      attrs_(other.attrs_),
      nsdecls_(other.nsdecls_) {
  children_.reserve(other.children_.size());
  for (const auto& c : other.children_) {
    Node n;
    if (c.is_element()) {
      n.element = std::make_unique<Element>(*c.element);
    } else {
      n.text = c.text;
    }
    children_.push_back(std::move(n));
  }
}

Element& Element::operator=(const Element& other) {
  if (this != &other) {
    Element copy(other);
    *this = std::move(copy);
  }
  return *this;
}

Element::~Element() = default;

const std::string* Element::attr(std::string_view local, std::string_view ns) const {
  for (const auto& a : attrs_) {
    if (a.local == local && a.ns == ns) return &a.value;
  }
  return nullptr;
}

std::string Element::attr_or(std::string_view local, std::string_view fallback) const {
  const std::string* v = attr(local);
  return v != nullptr ? *v : std::string(fallback);
}

void Element::set_attr(std::string_view local, std::string value) {
  for (auto& a : attrs_) {
    if (a.local == local && a.ns.empty()) {
      a.value = std::move(value);
      return;
    }
  }
  attrs_.push_back(Attribute{{}, std::string(local), {}, std::move(value)});
}

bool Element::remove_attr(std::string_view local, std::string_view ns) {
  auto it = std::find_if(attrs_.begin(), attrs_.end(),
                         [&](const Attribute& a) { return a.local == local && a.ns == ns; });
  if (it == attrs_.end()) return false;
  attrs_.erase(it);
  return true;
}

Element& Element::add_child(std::string ns, std::string local) {
  return add_child(Element(std::move(ns), std::move(local)));
}

Element& Element::add_child(Element child) {
  Node n;
  n.element = std::make_unique<Element>(std::move(child));
  children_.push_back(std::move(n));
  return *children_.back().element;
}

void Element::add_text(std::string text) {
  if (text.empty()) return;
  // Adjacent text runs are one XML text node; merging keeps the tree canonical
  // however the bytes were chunked on the wire.
  if (!children_.empty() && !children_.back().is_element()) {
    children_.back().text += text;
    return;
  }
  Node n;
  n.text = std::move(text);
  children_.push_back(std::move(n));
}

const Element* Element::find_child(std::string_view local, std::string_view ns) const {
  for (const auto& c : children_) {
    if (c.is_element() && matches(*c.element, local, ns)) return c.element.get();
  }
  return nullptr;
}

Element* Element::find_child(std::string_view local, std::string_view ns) {
  for (auto& c : children_) {
    if (c.is_element() && matches(*c.element, local, ns)) return c.element.get();
  }
  return nullptr;
}

std::vector<const Element*> Element::child_elements() const {
  std::vector<const Element*> out;
  for (const auto& c : children_) {
    if (c.is_element()) out.push_back(c.element.get());
  }
  return out;
}

std::size_t Element::remove_children(std::string_view local, std::string_view ns) {
  const std::size_t before = children_.size();
  children_.erase(std::remove_if(children_.begin(), children_.end(),
                                 [&](const Node& c) {
                                   return c.is_element() && matches(*c.element, local, ns);
                                 }),
                  children_.end());
  return before - children_.size();
}

std::string Element::text() const {
  std::string out;
  for (const auto& c : children_) {
    if (!c.is_element()) out += c.text;
  }
  return out;
}

std::string Element::serialize() const {
  std::string out;
  Scope scope;
  serialize_into(*this, scope, out);
  return out;
}

void adopt_namespace_decls(Element& top, const std::vector<NamespaceDecl>& outer_scope) {
  Scope scope;
  std::vector<std::string> free;
  collect_free_prefixes(top, scope, free);
  if (free.empty()) return;
  std::vector<NamespaceDecl> adopted;
  for (const auto& prefix : free) {
    // The last declaration of a prefix in the outer scope is the one in force.
    for (auto it = outer_scope.rbegin(); it != outer_scope.rend(); ++it) {
      if (it->prefix == prefix) {
        adopted.push_back(*it);
        break;
      }
    }
  }
  auto& decls = top.namespace_decls();
  decls.insert(decls.begin(), adopted.begin(), adopted.end());
}

std::string escape_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      // A literal CR would be normalised away by the next parser.
      case '\r': out += "&#13;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string escape_attr(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      // Attribute-value normalisation turns literal whitespace into spaces.
      case '\t': out += "&#9;"; break;
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace portcullis::xmpp
