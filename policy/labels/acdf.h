// The access control decision function (protocols.md §2.7, X.841 / SDN.801c
// style, as Spiffing's Spif::acdf): may the holder of `clearance` see data
// carrying `label`? Both must be under the same policy.
//
//  0. a nil clearance (no policy) or a label that is not canonical under
//     `spif` -> Deny;
//  1. the clearance must list the label's classification;
//  2. every restrictive category of the label (bitmap or enumerated) must be
//     in the clearance;
//  3. for each tag set with permissive categories in the label, the clearance
//     must hold at least one of the label's categories of that tag set;
//  4. informative categories never affect the decision.
#pragma once

#include <string>

#include "policy/labels/label.h"
#include "policy/labels/spif.h"

namespace portcullis::policy::labels {

struct AcdfResult {
  bool grant = false;
  std::string reason;   // why it denied, in policy terms (for the audit, never for the sender)
};

AcdfResult acdf(const Spif& spif, const Clearance& clearance, const Label& label);

}  // namespace portcullis::policy::labels
