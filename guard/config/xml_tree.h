// A validated, positioned XML element tree: what the appliance config loader
// (config.cpp) and the policy file loader (policy/policy_file) read.
//
// load_validated_xml() parses one file with Xerces-C++ SAX2 and validates it
// against ONE local XSD (and the files it xs:includes from the same
// directory). It never touches the network or any other file: no DOCTYPE, no
// DTD, no external entities, and schemaLocation hints in the document are
// ignored. The first error (well-formedness, schema, refused resource) stops
// the load with a ConfigError "file:line:column: what was expected".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guard/config/config.h"

namespace portcullis::config {

// One element, with the position of the '<' of its start tag.
struct XmlNode {
  std::string name;                                          // local name
  std::string ns;                                            // namespace URI
  std::vector<std::pair<std::string, std::string>> attrs;    // unprefixed attributes, in order,
                                                             // schema defaults included
  std::string text;                                          // concatenated character data, trimmed
  std::vector<XmlNode> children;                             // child elements, in order
  std::string file;                                          // the file it was loaded from
  int line = 0, column = 0;                                  // position of the start tag

  const std::string* attr(std::string_view key) const {
    for (const auto& [k, v] : attrs)
      if (k == key) return &v;
    return nullptr;
  }
  // The attribute's value, or "" when absent.
  const std::string& at(std::string_view key) const {
    static const std::string empty;
    const std::string* v = attr(key);
    return v ? *v : empty;
  }
  bool has(std::string_view key) const { return attr(key) != nullptr; }
  std::string attr_or(std::string_view key, std::string fallback) const {
    const std::string* v = attr(key);
    return v ? *v : std::move(fallback);
  }
  // The attribute, or fail() saying it is required.
  const std::string& required(std::string_view key) const {
    const std::string* v = attr(key);
    if (!v) fail("<" + name + "> needs the attribute '" + std::string(key) + "'");
    return *v;
  }
  std::vector<const XmlNode*> children_named(std::string_view local) const {
    std::vector<const XmlNode*> out;
    for (const auto& c : children)
      if (c.name == local) out.push_back(&c);
    return out;
  }
  const XmlNode* child(std::string_view local) const {
    for (const auto& c : children)
      if (c.name == local) return &c;
    return nullptr;
  }
  // Resolves a path attribute value relative to the file's directory.
  std::string resolve_path(const std::string& path) const {
    if (path.empty() || path[0] == '/') return path;
    const auto slash = file.rfind('/');
    return slash == std::string::npos ? path : file.substr(0, slash + 1) + path;
  }
  // Throws ConfigError "file:line:column: message" at this element.
  [[noreturn]] void fail(const std::string& message) const {
    throw ConfigError(file, line, column, message);
  }
};

struct XmlLoad {
  std::string file;              // the file to read (also the name in messages and nodes)
  std::string schema_file;       // the XSD: its directory is the only place includes come from
  std::string root_name;         // expected document element, for messages ("portcullis")
  std::string other_root;        // a second document element the schema allows ("node"), or empty
  std::string what = "file";     // how messages call the file ("config file", "policy file")
  std::uintmax_t max_bytes = 4 * 1024 * 1024;
};

// Reads `load.file` (refusing files above max_bytes), validates it and returns
// its document element. Throws ConfigError (first error only).
XmlNode load_validated_xml(const XmlLoad& load);

// The same on text already read (`load.file` names it in messages only).
XmlNode parse_validated_xml(const XmlLoad& load, const std::string& text);

// Reads a whole file, capped at max_bytes. Throws ConfigError(file, 0, 0, ...).
std::string read_file_capped(const std::string& file, std::uintmax_t max_bytes,
                             const std::string& what);

}  // namespace portcullis::config
