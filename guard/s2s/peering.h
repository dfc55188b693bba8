// The peering table of one side: which servers on this side Portcullis talks
// to, where they are, and how they must authenticate. Checked before anything
// else; a domain that matches no row is denied (there is no DNS fallback).
#pragma once

#include <string_view>
#include <vector>

#include "guard/config/config.h"

namespace portcullis::s2s {

class PeeringTable {
 public:
  explicit PeeringTable(std::vector<config::Peer> rows) : rows_(std::move(rows)) {}
  // First row whose pattern matches `domain`, or nullptr (deny).
  const config::Peer* find(std::string_view domain) const;
  const std::vector<config::Peer>& rows() const { return rows_; }

 private:
  std::vector<config::Peer> rows_;
};

}  // namespace portcullis::s2s
