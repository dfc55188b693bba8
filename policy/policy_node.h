// A parsed element of the policy file, with its position: the generic tree that
// filter factories read. The policy loader (policy/policy_file) validates the
// whole file against schemas/policy/policy.xsd first, so a factory only checks
// meaning (e.g. a SPIF file that does not define a classification) and reports
// it with fail(), which throws config::ConfigError "file:line:column: message".
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guard/config/config.h"

namespace portcullis::policy {

struct PolicyNode {
  std::string name;                                          // local name
  std::string ns;                                            // namespace URI
  std::vector<std::pair<std::string, std::string>> attrs;    // unprefixed attributes, in order
  std::string text;                                          // concatenated character data, trimmed
  std::vector<PolicyNode> children;                          // child elements, in order
  std::string file;                                          // absolute path of the policy file
  int line = 0, column = 0;                                  // position of the start tag

  const std::string* attr(std::string_view key) const {
    for (const auto& [k, v] : attrs)
      if (k == key) return &v;
    return nullptr;
  }
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
  std::vector<const PolicyNode*> children_named(std::string_view local) const {
    std::vector<const PolicyNode*> out;
    for (const auto& c : children)
      if (c.name == local) out.push_back(&c);
    return out;
  }
  const PolicyNode* child(std::string_view local) const {
    for (const auto& c : children)
      if (c.name == local) return &c;
    return nullptr;
  }
  // Resolves a path attribute value relative to the policy file's directory.
  std::string resolve_path(const std::string& path) const {
    if (path.empty() || path[0] == '/') return path;
    const auto slash = file.rfind('/');
    return slash == std::string::npos ? path : file.substr(0, slash + 1) + path;
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw config::ConfigError(file, line, column, message);
  }
};

}  // namespace portcullis::policy
