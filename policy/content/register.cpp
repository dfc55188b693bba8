#include "policy/content/register.h"

#include "policy/content/chat_mode.h"
#include "policy/content/keywords.h"
#include "policy/content/payload_filter.h"
#include "policy/content/peer_requirements.h"
#include "policy/content/presence_scrub.h"
#include "policy/content/stanza_kinds.h"
#include "policy/content/users.h"

namespace portcullis::policy::content {

void register_content_filters(FilterRegistry& registry) {
  registry.add(std::string(kTypePresenceScrub), &PresenceScrubFilter::from_spec);
  registry.add(std::string(kTypeStanzaKinds), &StanzaKindsFilter::from_spec);
  registry.add(std::string(kTypePayloadFilter), &PayloadFilter::from_spec);
  registry.add(std::string(kTypeChatMode), &ChatModeFilter::from_spec);
  registry.add(std::string(kTypeUsers), &UsersFilter::from_spec);
  registry.add(std::string(kTypePeerRequirements), &PeerRequirementsFilter::from_spec);
  registry.add(std::string(kTypeKeywords), &KeywordsFilter::from_spec);
}

}  // namespace portcullis::policy::content
