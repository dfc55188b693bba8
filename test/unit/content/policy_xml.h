// Test helper: turns a policy XML snippet (or file) into a PolicyNode tree, the
// way the policy loader (policy/policy_file) will hand it to filter factories,
// and builds filters from it through a registry with the content filters. No
// schema validation here: the tests check what the factories do with meaning.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "guard/xmpp/element.h"
#include "policy/filter.h"
#include "policy/policy_node.h"
#include "policy/registry.h"

namespace portcullis::test {

// Parses `xml` (one element, any namespace; default: the policy namespace is
// not required) into a PolicyNode with positions; `file` is recorded as the
// node's file. Throws std::runtime_error if the XML is not well-formed.
policy::PolicyNode policy_node(std::string_view xml, const std::string& file = "/policies/test.xml");
policy::PolicyNode policy_file_node(const std::string& path);

// A spec for `node` as the policy loader would make it (type = element name).
policy::FilterSpec spec_for(const policy::PolicyNode& node);

// A registry with the content filters, and the filter it builds from `node`.
policy::FilterRegistry content_registry();
std::shared_ptr<const policy::Filter> build_filter(const policy::PolicyNode& node);

// Parses a stanza (the frame-body form: xmlns='jabber:server' on the root);
// throws std::runtime_error if it does not parse.
xmpp::Element stanza(std::string_view xml);

// The value of the first note with `key`, or "" if none; how many notes have it.
std::string note(const policy::Verdict& v, std::string_view key);
std::size_t note_count(const policy::Verdict& v, std::string_view key);

}  // namespace portcullis::test
