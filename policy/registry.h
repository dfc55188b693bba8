// Filter registry: maps a filter type name to the factory that builds it.
//
// There is no global registry. The daemon, the tools and the tests each build
// their own object (usually with builtin_filters()) and may add or replace
// factories (tests inject fakes). Factories run on the control plane: they
// validate their part of the config and may throw config::ConfigError; the
// filters they return are immutable and shared.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "guard/config/config.h"
#include "policy/filter.h"
#include "policy/policy_node.h"

namespace portcullis::policy {

// What a factory gets: the instance to build and the direction's policy. The
// position (file/line/column) is where the instance comes from, for errors.
struct FilterSpec {
  std::string type;                  // registry key, e.g. "domain_pair_allow"
  std::string name;                  // instance name, recorded in the trail
  bool shadow = false;               // decide and record, do not enforce
  config::DirectionPolicy policy;    // the direction's policy (first version)
  // The filter's element in the policy file (policy/policy_file): factories of
  // the policy-file filters read their settings from here. Null for filters
  // built from the first-version appliance config.
  const PolicyNode* node = nullptr;
  ipc::Direction direction = ipc::Direction::LowToHigh;
  std::string file;
  int line = 0, column = 0;
};

using FilterFactory = std::function<std::shared_ptr<const Filter>(const FilterSpec&)>;

class FilterRegistry {
 public:
  // Registers `factory` under `type`. Throws std::logic_error if `type` is
  // already registered (a double registration is a programming error).
  void add(std::string type, FilterFactory factory);
  // Replaces (or adds) the factory for `type`: the test injection point.
  void replace(std::string type, FilterFactory factory);
  bool contains(std::string_view type) const;
  std::vector<std::string> types() const;   // sorted

  // Builds the filter for `spec`. Throws config::ConfigError at the spec's
  // position if the type is unknown, the factory throws ConfigError itself,
  // or the factory returns null.
  std::shared_ptr<const Filter> build(const FilterSpec& spec) const;

 private:
  std::map<std::string, FilterFactory, std::less<>> factories_;
};

// Type names of the built-in filters.
inline constexpr std::string_view kTypeSizeLimit = "size_limit";
inline constexpr std::string_view kTypeDomainPairAllow = "domain_pair_allow";

// A registry holding every built-in filter.
FilterRegistry builtin_filters();

}  // namespace portcullis::policy
