// The security policy file: loading, validation and the pipelines it defines.
//
//   <policy xmlns="urn:portcullis:policy:1" version="2024-06-01.3">
//     <direction from="low" to="high">
//       <size-limit name="size" max-bytes="65536"/>
//       <domain-pair-allow name="pairs">
//         <allow id="a-to-b" from="a.test" to="b.test"/>
//       </domain-pair-allow>
//     </direction>
//     <direction from="high" to="low"/>      <!-- no filters: denies everything -->
//   </policy>
//
// load_policy() reads the file once, hashes exactly the bytes it parses
// (SHA-256), validates them with Xerces-C++ against policy.xsd from the local
// schema directory only (which includes the filter fragments), then checks
// meaning: both directions once each, filter names unique per direction, and
// every filter built by its factory from its element. Each filter element's
// local name is its registry type, except the two first-version filters
// (size-limit -> kTypeSizeLimit, domain-pair-allow -> kTypeDomainPairAllow).
// The first error stops the load: config::ConfigError "file:line:column: what
// was expected". Control plane only; nothing is half-loaded.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "policy/policy_from_config.h"
#include "policy/policy_node.h"
#include "policy/registry.h"

namespace portcullis::policy {

inline constexpr std::string_view kPolicyNamespace = "urn:portcullis:policy:1";
inline constexpr std::string_view kPolicySchemaFile = "policy/policy.xsd";   // in the schema dir

struct LoadedPolicy {
  std::string file;                        // absolute path it was loaded from
  std::string version;                     // the officer's version attribute
  std::string sha256;                      // lower-case hex of the file's bytes
  DirectionPipelines pipelines;
  // The element tree the filters were built from. Filters may keep pointers
  // into it, so whoever runs the pipelines keeps this alive as long as they do.
  std::shared_ptr<const PolicyNode> tree;

  // "<version>/<first 12 hex digits of sha256>": what every decision names.
  std::string id() const;
};

// Loads `file` (see above). `schema_dir` is the directory holding policy/policy.xsd
// (the same directory as portcullis-config.xsd). Throws config::ConfigError.
LoadedPolicy load_policy(const std::string& file, const std::string& schema_dir,
                         const FilterRegistry& registry);

// The registry type of a filter element's local name.
std::string filter_type_for_element(std::string_view element_name);

}  // namespace portcullis::policy
