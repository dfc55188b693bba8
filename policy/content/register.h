// Registers the content and traffic filters (presence scrubbing, stanza kinds
// and sizes, payload stripping, MUC/1:1 blocking, users, peer requirements,
// keywords) in a filter registry, each under its policy element name:
//   presence-scrub     PresenceScrubFilter      (policy/content/presence_scrub.h)
//   stanza-kinds       StanzaKindsFilter        (policy/content/stanza_kinds.h)
//   payload-filter     PayloadFilter            (policy/content/payload_filter.h)
//   chat-mode          ChatModeFilter           (policy/content/chat_mode.h)
//   users              UsersFilter              (policy/content/users.h)
//   peer-requirements  PeerRequirementsFilter   (policy/content/peer_requirements.h)
//   keywords           KeywordsFilter           (policy/content/keywords.h)
// Their factories read FilterSpec::node (the element in the policy file) and
// throw config::ConfigError when it is missing or makes no sense. The schema
// is schemas/policy/filters-content.xsd.
#pragma once

#include "policy/registry.h"

namespace portcullis::policy::content {

void register_content_filters(FilterRegistry& registry);

}  // namespace portcullis::policy::content
