// A parsed element of the policy file, with its position: the generic tree that
// filter factories read. The policy loader (policy/policy_file) validates the
// whole file against schemas/policy/policy.xsd first, so a factory only checks
// meaning (e.g. a SPIF file that does not define a classification) and reports
// it with fail(), which throws config::ConfigError "file:line:column: message".
//
// It is the generic validated XML tree of guard/config/xml_tree.h (the
// appliance config is read into the same tree): name, ns, attrs, text,
// children, file (absolute path of the policy file), line, column, and
// attr(), attr_or(), required(), children_named(), child(), resolve_path(),
// fail().
#pragma once

#include "guard/config/xml_tree.h"

namespace portcullis::policy {

using PolicyNode = config::XmlNode;

}  // namespace portcullis::policy
