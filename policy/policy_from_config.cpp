#include "policy/policy_from_config.h"

namespace portcullis::policy {

Pipeline build_pipeline(const config::DirectionPolicy& policy, const FilterRegistry& registry,
                        const std::string& file) {
  // Size first: an oversized stanza is refused before any rule looks at it.
  Pipeline p;
  for (auto [type, name] : {std::pair{kTypeSizeLimit, kFilterSizeLimit},
                            std::pair{kTypeDomainPairAllow, kFilterDomainPairAllow}}) {
    FilterSpec spec;
    spec.type = std::string(type);
    spec.name = std::string(name);
    spec.policy = policy;
    spec.file = file;
    p.add(registry.build(spec), spec.shadow);
  }
  return p;
}

DirectionPipelines build_pipelines(const config::Config& cfg, const FilterRegistry& registry) {
  return DirectionPipelines{build_pipeline(cfg.low_to_high, registry, cfg.file),
                            build_pipeline(cfg.high_to_low, registry, cfg.file)};
}

}  // namespace portcullis::policy
