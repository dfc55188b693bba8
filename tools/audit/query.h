// Record selection shared by `search`, `export` and `report`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guard/audit/format.h"
#include "guard/audit/record.h"

namespace portcullis::audit::tool {

// Thrown for a wrong command line; main prints the message on one line and exits 2.
struct UsageError {
  std::string message;
};

// Thrown when an input cannot be read or holds no answer (archive, key file,
// record number); main prints the message on one line and exits 1.
struct InputError {
  std::string message;
};

struct Query {
  std::optional<std::uint64_t> from_us, to_us;   // [from, to)
  std::string jid, domain, rule, label;
  std::optional<Direction> direction;
  std::optional<Outcome> verdict;
  std::optional<RecordType> type;
  bool include_checkpoints = false;

  bool decision_only() const { return !jid.empty() || !rule.empty() || !label.empty() || direction || verdict; }
  bool matches(const StoredRecord& r) const;
};

// Consumes a query option at args[i] (and its value); returns false if args[i]
// is not a query option. Throws UsageError on a bad value.
bool parse_query_option(const std::vector<std::string>& args, std::size_t& i, Query& q);

// "2024-05-01", "2024-05-01T10:00:00Z", "2024-05-01T10:00Z", "@1714557600" (Unix seconds).
std::optional<std::uint64_t> parse_time(std::string_view s);

// The rule ids that decided something (verdict other than no-opinion), in order.
std::vector<std::string> deciding_rules(const DecisionRecord& d);

std::string one_line(const StoredRecord& r);

}  // namespace portcullis::audit::tool
