// DirectionPipelines (both directions' pipelines, as the policy file loader
// policy/policy_file.h returns them), and the LEGACY first-version builder:
// the appliance config no longer has a <filter> section (the policy file
// replaced it), so build_pipeline(s) below only serve code and tests that fill
// a config::DirectionPolicy by hand. Each direction gets, in this order:
//   1. "size-limit"        (size_limit):        the direction's max-stanza-bytes;
//   2. "domain-pair-allow" (domain_pair_allow): the direction's allow list;
// and the runner's default deny after them. Control plane: may throw
// config::ConfigError (from the registry's factories).
#pragma once

#include "guard/config/config.h"
#include "policy/pipeline.h"
#include "policy/registry.h"

namespace portcullis::policy {

inline constexpr std::string_view kFilterSizeLimit = "size-limit";
inline constexpr std::string_view kFilterDomainPairAllow = "domain-pair-allow";

struct DirectionPipelines {
  Pipeline low_to_high;
  Pipeline high_to_low;
};

// One direction's pipeline from its policy. `file` is used in error messages.
Pipeline build_pipeline(const config::DirectionPolicy& policy, const FilterRegistry& registry,
                        const std::string& file = {});

// Both pipelines from a loaded config.
DirectionPipelines build_pipelines(const config::Config& cfg, const FilterRegistry& registry);

}  // namespace portcullis::policy
