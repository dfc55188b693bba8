// Shared helpers of the label tests: corpus files, the sample policy's filter
// elements (read with the labels library's own XML reader until the policy
// file loader lands), and stanza parsing.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_parser.h"
#include "policy/labels/xml_tree.h"
#include "policy/policy_node.h"

namespace labels_test {

inline std::string corpus(const std::string& name) {
  return std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/labels/" + name;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline portcullis::xmpp::Element stanza(const std::string& xml) {
  std::string error;
  auto e = portcullis::xmpp::parse_element(xml, {}, &error);
  if (!e) throw std::runtime_error("test stanza does not parse: " + error);
  return std::move(*e);
}

inline portcullis::xmpp::Element corpus_stanza(const std::string& name) {
  std::string xml = read_file(corpus(name));
  while (!xml.empty() && (xml.back() == '\n' || xml.back() == '\r')) xml.pop_back();
  return stanza(xml);
}

// The sample policy, and the filter element named `name` in it.
struct SamplePolicy {
  portcullis::policy::PolicyNode root =
      portcullis::policy::labels::read_xml_tree(corpus("policy-labels.xml"));
  const portcullis::policy::PolicyNode& filter(const std::string& name) const {
    for (const auto& dir : root.children)
      for (const auto& f : dir.children)
        if (f.attr_or("name", "") == name) return f;
    throw std::runtime_error("no filter " + name);
  }
};

// Writes `text` to a fresh file in the build tree and returns its path.
inline std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = std::string(PORTCULLIS_BINARY_DIR) + "/labels-test-" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

inline bool has_note(const std::vector<std::pair<std::string, std::string>>& notes, const std::string& key,
                     const std::string& value) {
  for (const auto& [k, v] : notes)
    if (k == key && v == value) return true;
  return false;
}

inline std::string note(const std::vector<std::pair<std::string, std::string>>& notes, const std::string& key) {
  for (const auto& [k, v] : notes)
    if (k == key) return v;
  return "(absent)";
}

}  // namespace labels_test
