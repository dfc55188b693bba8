// Registers "label-access" and "label-transform" (see register.h).
#include "policy/labels/register.h"

#include <memory>

#include "policy/labels/label_access.h"
#include "policy/labels/label_transform.h"

namespace portcullis::policy::labels {

namespace {

const PolicyNode& node_of(const FilterSpec& spec) {
  if (spec.node == nullptr)
    throw config::ConfigError(spec.file, spec.line, spec.column,
                              "filter '" + spec.type + "' needs its element from the policy file");
  return *spec.node;
}

}  // namespace

void register_label_filters(FilterRegistry& registry) {
  registry.add(std::string(kTypeLabelAccess), [](const FilterSpec& spec) -> std::shared_ptr<const Filter> {
    return std::make_shared<LabelAccessFilter>(spec.name, LabelAccessFilter::config_from_node(node_of(spec)));
  });
  registry.add(std::string(kTypeLabelTransform), [](const FilterSpec& spec) -> std::shared_ptr<const Filter> {
    return std::make_shared<LabelTransformFilter>(spec.name, LabelTransformFilter::config_from_node(node_of(spec)));
  });
}

}  // namespace portcullis::policy::labels
