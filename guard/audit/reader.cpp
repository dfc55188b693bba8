#include "guard/audit/reader.h"

#include <algorithm>
#include <exception>

namespace portcullis::audit {

bool read_archive(const std::string& dir,
                  const std::function<bool(const StoredRecord&, const RecordLocation&)>& on_record,
                  const std::function<void(const std::string&)>& on_problem, std::string* error) {
  std::vector<SegmentFile> segs;
  try {
    segs = list_segments(dir);
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return false;
  }
  if (segs.empty()) {
    if (error) *error = dir + ": no audit segments in this directory";
    return false;
  }
  auto problem = [&](const std::string& s) {
    if (on_problem) on_problem(s);
  };
  std::string data, next_data, err;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    if (!read_whole_file(segs[i].path, data, &err)) {
      problem(err);
      continue;
    }
    if (!decode_segment_header(data, &err)) {
      problem(segs[i].name + ": " + err);
      continue;
    }
    // Where the chain of this segment ends, according to the next one.
    std::uint64_t end = data.size();
    if (i + 1 < segs.size() && read_whole_file(segs[i + 1].path, next_data, &err)) {
      if (auto nh = decode_segment_header(next_data, &err); nh && nh->prev_segment_no == segs[i].segment_no)
        end = std::min<std::uint64_t>(end, nh->prev_end_offset);
    }
    std::uint64_t off = kSegmentHeaderBytes;
    while (off < end) {
      FrameView f;
      const FrameStatus st = read_frame(data, off, f);
      if (st != FrameStatus::Ok) {
        if (st != FrameStatus::End)
          problem(segs[i].name + " offset " + std::to_string(off) + ": " + std::string(to_string(st)));
        break;
      }
      StoredRecord r;
      r.seq = f.seq;
      r.time_us = f.time_us;
      r.type = f.type;
      if (!decode_payload(f.type, f.payload, r.body, r.meta_json, &err)) {
        problem(segs[i].name + " offset " + std::to_string(off) + " seq " + std::to_string(f.seq) + ": " + err);
      } else if (!on_record(r, RecordLocation{&segs[i], off, f.length})) {
        return true;
      }
      off += f.length;
    }
  }
  return true;
}

}  // namespace portcullis::audit
