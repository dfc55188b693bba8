#include "guard/s2s/peering.h"

#include "guard/xmpp/jid.h"

namespace portcullis::s2s {

const config::Peer* PeeringTable::find(std::string_view domain) const {
  for (const auto& row : rows_) {
    if (xmpp::domain_matches(row.domain_pattern, domain)) return &row;
  }
  return nullptr;
}

}  // namespace portcullis::s2s
