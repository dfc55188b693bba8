// libFuzzer target: JID parsing and PRECIS/IDNA2008 preparation checks
// (guard/xmpp/jid.h, guard/xmpp/precis.h) on arbitrary bytes.
//
// Each input is split on '\n' into candidate addresses. Properties checked:
//  - no crash, no hang, no sanitizer report;
//  - a JID that parses re-serializes (full()) to a string that parses back to
//    the same JID (the boundary compares what it parsed);
//  - a JID found prepared is prepared again after that round trip, and each of
//    its parts passes the part checks on its own (the checks are functions of
//    the parts only);
//  - a prepared localpart has no ASCII upper case, no U+200B..U+200F, U+202A..
//    U+202E or U+2060..U+206F, and no private-use code point: the classes of
//    look-alikes the boundary must refuse.
// Also built into xmpp_tests (test/unit/xmpp), which replays test/corpus/jid
// through LLVMFuzzerTestOneInput in every build.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "guard/xmpp/jid.h"
#include "guard/xmpp/precis.h"

namespace {

using namespace portcullis::xmpp;

void require(bool ok) {
  if (!ok) std::abort();
}

// Decodes UTF-8 (already known valid for a prepared part) one code point at a time.
bool has_lookalike(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::uint32_t c = b;
    std::size_t n = 1;
    if (b >= 0xF0) { c = b & 0x07; n = 4; }
    else if (b >= 0xE0) { c = b & 0x0F; n = 3; }
    else if (b >= 0xC0) { c = b & 0x1F; n = 2; }
    for (std::size_t k = 1; k < n && i + k < s.size(); ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    if (c >= 'A' && c <= 'Z') return true;
    if ((c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x206F)) return true;
    if ((c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000) return true;
  }
  return false;
}

void one(std::string_view text) {
  const auto jid = parse_jid(text);
  if (!jid) return;
  const std::string full = jid->full();
  const auto again = parse_jid(full);
  require(again.has_value() && *again == *jid);
  const auto problem = jid_prepared_problem(*jid);
  if (problem) {
    require(!problem->empty());
    return;
  }
  require(!jid_prepared_problem(*again));
  if (!jid->local.empty()) {
    require(!precis_localpart_problem(jid->local));
    // The zero-width joiner is admitted after a virama only (RFC 5892 A.2), so
    // U+200C/U+200D are not checked here.
    std::string no_joiners;
    for (std::size_t i = 0; i < jid->local.size(); ++i) {
      if (jid->local.compare(i, 3, "\xe2\x80\x8c") == 0 || jid->local.compare(i, 3, "\xe2\x80\x8d") == 0) {
        i += 2;
        continue;
      }
      no_joiners += jid->local[i];
    }
    require(!has_lookalike(no_joiners));
  }
  if (!jid->resource.empty()) require(!precis_resource_problem(jid->resource));
  require(!idna_domain_problem(jid->domain));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t start = 0;
  while (start <= all.size()) {
    std::size_t nl = all.find('\n', start);
    if (nl == std::string_view::npos) nl = all.size();
    one(all.substr(start, nl - start));
    start = nl + 1;
  }
  return 0;
}
