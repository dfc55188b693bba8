// Sequential reading of an audit archive for the tools (search, show, export,
// report). Reading does not verify the chain (that is verify.h's job); it
// decodes what it can and reports what it cannot.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "guard/audit/format.h"
#include "guard/audit/record.h"

namespace portcullis::audit {

struct RecordLocation {
  const SegmentFile* segment = nullptr;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// Calls `on_record` for every decodable record in archive order; it returns
// false to stop early. Frames that cannot be read or decoded go to
// `on_problem` (one line each) and reading continues with the next segment or
// frame. Records that a later segment excludes (written after a store failure
// and never acknowledged) are skipped. Returns false with `error` when the
// directory cannot be read or holds no segment.
bool read_archive(const std::string& dir,
                  const std::function<bool(const StoredRecord&, const RecordLocation&)>& on_record,
                  const std::function<void(const std::string&)>& on_problem, std::string* error);

}  // namespace portcullis::audit
