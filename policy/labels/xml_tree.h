// Reads an XML file (a SPIF, or a policy file in the tests) into a PolicyNode
// tree with the parser's positions. Control plane only.
//
// The reader is libxml2's xmlTextReader with no network, no entity expansion
// and no DTD: a document type declaration, an entity reference or a parse
// error stops the load with config::ConfigError "file:line:column: message"
// (the position libxml2 reports). Files over kMaxXmlFileBytes and documents
// nested deeper than kMaxXmlDepth are refused too.
#pragma once

#include <cstddef>
#include <string>

#include "policy/policy_node.h"

namespace portcullis::policy::labels {

inline constexpr std::size_t kMaxXmlFileBytes = 16u << 20;
inline constexpr int kMaxXmlDepth = 64;

// Throws config::ConfigError on any problem.
PolicyNode read_xml_tree(const std::string& path);

}  // namespace portcullis::policy::labels
