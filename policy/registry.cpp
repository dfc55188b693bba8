#include "policy/registry.h"

#include <stdexcept>

#include "policy/filters/domain_pair_allow.h"
#include "policy/filters/size_limit.h"

namespace portcullis::policy {

void FilterRegistry::add(std::string type, FilterFactory factory) {
  if (factories_.count(type) != 0) {
    throw std::logic_error("filter type registered twice: " + type);
  }
  factories_.emplace(std::move(type), std::move(factory));
}

void FilterRegistry::replace(std::string type, FilterFactory factory) {
  factories_.insert_or_assign(std::move(type), std::move(factory));
}

bool FilterRegistry::contains(std::string_view type) const {
  return factories_.find(type) != factories_.end();
}

std::vector<std::string> FilterRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& [type, factory] : factories_) out.push_back(type);
  return out;
}

std::shared_ptr<const Filter> FilterRegistry::build(const FilterSpec& spec) const {
  auto it = factories_.find(spec.type);
  if (it == factories_.end()) {
    throw config::ConfigError(spec.file, spec.line, spec.column,
                              "expected a known filter type, got '" + spec.type + "'");
  }
  std::shared_ptr<const Filter> f = it->second(spec);
  if (!f) {
    throw config::ConfigError(spec.file, spec.line, spec.column,
                              "filter factory for '" + spec.type + "' built nothing");
  }
  return f;
}

}  // namespace portcullis::policy
