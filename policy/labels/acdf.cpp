// ACDF (see acdf.h).
#include "policy/labels/acdf.h"

#include <map>
#include <set>

namespace portcullis::policy::labels {

AcdfResult acdf(const Spif& spif, const Clearance& clearance, const Label& label) {
  if (clearance.policy_id.empty()) return {false, "nil clearance"};
  if (clearance.policy_id != spif.policy_id()) return {false, "clearance is under another policy"};
  if (!label.canonical || label.policy_id != spif.policy_id() || !label.classification)
    return {false, "label is not a valid label of policy " + spif.policy_name()};
  if (!clearance.classifications.count(*label.classification))
    return {false, "classification " + label.classification_name + " not in clearance"};
  // tag set -> (any permissive category of the label held by the clearance?)
  std::map<std::string, std::pair<bool, std::string>> permissive;
  for (const LabelCategory& c : label.categories) {
    switch (c.kind) {
      case TagKind::Restrictive:
        if (!clearance.categories.count(c.key()))
          return {false, "restrictive category " + c.name + " of " + c.tag_set_name + " not in clearance"};
        break;
      case TagKind::Permissive: {
        auto& [held, name] = permissive[c.tag_set_id];
        name = c.tag_set_name;
        held = held || clearance.categories.count(c.key()) > 0;
        break;
      }
      case TagKind::Informative:
        break;
      case TagKind::Unknown:
        return {false, "category of unknown kind"};
    }
  }
  for (const auto& [id, entry] : permissive)
    if (!entry.first) return {false, "no permissive category of " + entry.second + " in clearance"};
  return {true, {}};
}

}  // namespace portcullis::policy::labels
