#include "test/fuzz/fuzz_targets.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>

#include "guard/config/config.h"
#include "guard/ipc/frame.h"
#include "guard/rooms/room_service.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_parser.h"
#include "policy/registry.h"
#include "policy/labels/ess_label.h"
#include "policy/labels/security_label.h"
#include "policy/labels/spif.h"
#include "policy/labels/stanza_labels.h"
#include "policy/policy_file.h"

namespace portcullis::fuzz {
namespace {

// A violated property is a bug: abort so the fuzzer records the input.
void require(bool ok) {
  if (!ok) std::abort();
}

class CountingHandler : public xmpp::StreamHandler {
 public:
  int errors = 0;
  void on_stream_open(const xmpp::StreamHeader&) override {}
  void on_element(xmpp::Element e, std::size_t) override {
    const std::string once = e.serialize();
    std::string err;
    // Serializing may add namespace declarations (one on the element itself
    // at least): parsed again with the limits the filter and far edge use.
    xmpp::ParserLimits again_limits;
    again_limits.max_depth = 256;
    again_limits.max_attributes = 1024;
    again_limits.max_stanza_bytes = once.size() + 1;
    auto again = xmpp::parse_element(once, again_limits, &err);
    require(again.has_value());
    require(again->serialize() == once);
  }
  void on_stream_close() override {}
  void on_stream_error(xmpp::StreamErrorCondition, std::string) override { ++errors; }
};

}  // namespace

void stream_parser_one_input(const std::uint8_t* data, std::size_t size) {
  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = 16 * 1024;
  limits.max_depth = 16;
  CountingHandler h;
  xmpp::StreamParser parser(h, limits);
  // The first byte picks the chunk size, so splits at every boundary get explored.
  const std::size_t chunk = size ? (data[0] % 64) + 1 : 1;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  for (std::size_t at = 0; at < all.size(); at += chunk) {
    if (!parser.feed(all.substr(at, chunk))) break;
  }
  require(h.errors <= 1);
}

void frame_decoder_one_input(const std::uint8_t* data, std::size_t size) {
  ipc::FrameLimits limits;
  limits.max_body = 64 * 1024;
  ipc::FrameDecoder dec(limits);
  dec.append(std::string_view(reinterpret_cast<const char*>(data), size));
  std::size_t consumed = 0;
  while (auto f = dec.next()) {
    const std::string bytes = ipc::encode(*f);
    require(bytes.size() <= size - consumed);
    require(std::string_view(reinterpret_cast<const char*>(data) + consumed, bytes.size()) == bytes);
    consumed += bytes.size();
  }
}

namespace {

bool has_fmuc_anywhere(const xmpp::Element& e) {
  if (e.ns() == rooms::kNsFmuc) return true;
  for (const auto& c : e.children()) {
    if (c.is_element() && has_fmuc_anywhere(*c.element)) return true;
  }
  return false;
}

// Every output of `svc`: from the service or one of its rooms; FMUC only to
// `twin_domain`; nothing carrying <fmuc/> to anyone else.
void check_outputs(const rooms::Outputs& out, const std::string& domain, const std::string& twin_domain) {
  for (const auto& o : out) {
    auto from = xmpp::parse_jid(o.stanza.attr_or("from"));
    auto to = xmpp::parse_jid(o.stanza.attr_or("to"));
    require(from.has_value() && from->domain == domain);
    require(to.has_value());
    if (o.to_peer) {
      // To a node: the twin, or an error reply (no FMUC in it) to whoever sent the refused stanza.
      require(to->domain == twin_domain || (o.stanza.attr_or("type") == "error" && !has_fmuc_anywhere(o.stanza)));
    } else {
      // To a user: never to a room domain (but an error goes back to whoever sent the stanza), never FMUC.
      require(to->domain != domain);
      require(to->domain != twin_domain || o.stanza.attr_or("type") == "error");
      require(!has_fmuc_anywhere(o.stanza));
    }
  }
}

}  // namespace

void room_one_input(const std::uint8_t* data, std::size_t size) {
  config::RoomServiceSpec low_spec, high_spec;
  low_spec.domain = "rooms.low.test";
  high_spec.domain = "rooms.high.test";
  config::RoomSpec low_room, high_room;
  low_room.name = high_room.name = "ops";
  low_room.history = high_room.history = 8;
  low_room.federate_with = "ops@rooms.high.test";
  high_room.accept_from = {"ops@rooms.low.test"};
  low_spec.rooms = {low_room};
  high_spec.rooms = {high_room};
  rooms::RoomService low(low_spec, "fuzz-key-0123456789abcdef"), high(high_spec, "fuzz-key-0123456789abcdef");
  std::int64_t now = 1'700'000'000'000;
  bool link_up = true;
  // Delivers what one service sent to the other (while the link is up), bounded.
  auto pump = [&](rooms::Outputs out, bool from_low) {
    for (int round = 0; round < 8 && !out.empty(); ++round) {
      check_outputs(out, from_low ? low.domain() : high.domain(), from_low ? high.domain() : low.domain());
      rooms::Outputs next;
      for (auto& o : out) {
        if (o.to_peer && link_up) (from_low ? high : low).on_federated(o.stanza, now, next);
      }
      out = std::move(next);
      from_low = !from_low;
    }
  };
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t lines = 0;
  while (!all.empty() && lines++ < 64) {
    const std::size_t nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
    if (line.empty()) continue;
    const unsigned char op = static_cast<unsigned char>(line[0]);
    std::string_view xml = line.substr(1);
    rooms::Outputs out;
    std::string err;
    xmpp::ParserLimits limits;
    limits.max_stanza_bytes = 8192;
    limits.max_depth = 12;
    switch (op % 8) {
      case 0: link_up = false; low.links_lost([](const std::string&) { return true; }, "fuzz", now, out); pump(std::move(out), true); break;
      case 1: link_up = true; now += 6000; low.tick(now, out); pump(std::move(out), true); break;
      case 2: now += 1000 + (op >> 3) * 1000; high.tick(now, out); pump(std::move(out), false); break;
      default: {
        auto st = xmpp::parse_element(xml, limits, &err);
        if (!st) break;
        const std::size_t before = out.size();
        switch (op % 8) {
          case 3: low.on_local(*st, now, out); break;
          case 4: high.on_local(*st, now, out); break;
          case 5: low.on_federated(*st, now, out); break;
          case 6: high.on_federated(*st, now, out); break;
          default: low.tick(now, out); break;
        }
        // One stanza in: a bounded number out (a join answers with the room's occupants and history).
        require(out.size() - before <= 2 * 5000 + 64);
        pump(std::move(out), op % 2 == 1);
      }
    }
  }
}

namespace {

namespace fs = std::filesystem;

const fs::path& source_dir() {
  static const fs::path dir = PORTCULLIS_SOURCE_DIR;
  return dir;
}

// A directory of this process's own holding the two sample SPIFs, so a fuzzed
// policy that names them by relative path finds them.
const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("portcullis-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    for (const char* f : {"spif-low-nation.xml", "spif-nato.xml"}) {
      fs::copy_file(source_dir() / "test/corpus/labels" / f, d / f, fs::copy_options::overwrite_existing);
    }
    return d;
  }();
  return dir;
}

// The labelled and unlabelled messages of the label corpus, parsed once.
const std::vector<xmpp::Element>& sample_stanzas() {
  static const std::vector<xmpp::Element> all = [] {
    std::vector<xmpp::Element> out;
    for (const char* f : {"msg-ess-low-confidential-rel-gbr.xml", "msg-ess-low-secret.xml",
                          "msg-nato-secret-rel-gbr.xml", "presence-labelled.xml"}) {
      std::ifstream in(source_dir() / "test/corpus/labels" / f, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto e = xmpp::parse_element(text);
      require(e.has_value());
      out.push_back(std::move(*e));
    }
    return out;
  }();
  return all;
}

policy::StanzaContext context(ipc::Direction d) {
  policy::StanzaContext ctx;
  ctx.direction = d;
  ctx.peer_domain = d == ipc::Direction::LowToHigh ? "low.example" : "high.example";
  ctx.auth = ipc::AuthMethod::SaslExternal;
  ctx.peer_tls = true;
  return ctx;
}

void check_decision(const policy::Decision& d) {
  // Every decision is named: the archive records the rule that ended it.
  require(!d.final_verdict.rule_id.empty());
  if (!d.release) require(d.final_verdict.kind != policy::VerdictKind::Accept || !d.trail.empty());
}

// Lines as XML counts them (XML 1.0 section 2.11): CR LF, a lone CR and a lone
// LF each end one. The parser reports positions in these lines.
std::size_t line_count(std::string_view text) {
  std::size_t n = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') ++n;
    else if (text[i] == '\r') {
      ++n;
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    }
  }
  return n;
}

bool in_label_namespace(const xmpp::Element& e) {
  return e.ns().starts_with("urn:xmpp:sec-label") || e.ns().starts_with("urn:nato:stanag:4774:");
}

// Label-namespace elements anywhere in `e`, not counting the insides of the
// top-level <securitylabel/>s (which are the label itself).
std::size_t stray_labels(const xmpp::Element& e) {
  std::size_t n = 0;
  for (const xmpp::Element* c : e.child_elements()) {
    if (in_label_namespace(*c)) ++n;
    n += stray_labels(*c);
  }
  return n;
}

}  // namespace

bool policy_one_input(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool spif = text.substr(0, 512).find("SPIF") != std::string_view::npos;
  const fs::path file = scratch_dir() / (spif ? "input-spif.xml" : "input-policy.xml");
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    require(static_cast<bool>(out));
  }
  static const policy::FilterRegistry registry = policy::builtin_filters();
  const std::string schemas = (source_dir() / "schemas").string();
  try {
    if (spif) {
      const auto s = policy::labels::Spif::load(file.string());
      require(!s.policy_id().empty() || !s.policy_name().empty());
      return true;
    }
    const policy::LoadedPolicy p = policy::load_policy(file.string(), schemas, registry);
    require(p.sha256.size() == 64);
    require(!p.id().empty());
    for (const auto& stanza : sample_stanzas()) {
      xmpp::Element up = stanza, down = stanza;
      check_decision(p.pipelines.low_to_high.run(up, context(ipc::Direction::LowToHigh)));
      check_decision(p.pipelines.high_to_low.run(down, context(ipc::Direction::HighToLow)));
    }
    return true;
  } catch (const config::ConfigError& e) {
    // The officer is told where: a file, a position in it, and what is wrong.
    require(!e.file().empty());
    require(!e.message().empty());
    require(e.line() >= 0 && e.column() >= 0);
    if (fs::path(e.file()) == file) require(static_cast<std::size_t>(e.line()) <= line_count(text) + 1);
  }
  return false;
  // Anything else thrown escapes and the fuzzer reports it: a bad file must be a ConfigError.
}

int label_one_input(const std::uint8_t* data, std::size_t size) {
  using namespace policy::labels;
  if (size == 0) return 0;
  const std::uint8_t first = data[0];
  if (first == 0x30 || first == 0x31) {   // a DER SEQUENCE or SET
    std::string why;
    const auto label = decode_ess(data, size, &why);
    if (!label) {
      require(!why.empty());
      return 0;
    }
    const auto der = encode_ess(*label, &why);
    if (!der) return 0;   // e.g. a label without a policy OID: decoded, but not writable
    const auto again = decode_ess(*der, &why);
    require(again.has_value());
    const auto der2 = encode_ess(*again, &why);
    require(der2.has_value() && *der2 == *der);
    require(again->policy_id == label->policy_id && again->classification == label->classification);
    return 0;
  }
  if (first != '<' && first != ' ' && first != '\n' && first != '\t') {
    const auto bytes = base64_decode(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!bytes) return 0;
    const auto back = base64_decode(base64_encode(*bytes));
    require(back.has_value() && *back == *bytes);
    return 0;
  }
  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = 64 * 1024;
  limits.max_depth = 32;
  std::string err;
  auto stanza = xmpp::parse_element(std::string_view(reinterpret_cast<const char*>(data), size), limits, &err);
  if (!stanza) return 0;
  const LabelScan scan = scan_stanza_labels(*stanza);
  for (const auto& c : scan.candidates) {
    const auto written = label_element(c.label);
    if (!written) continue;
    const DecodedLabel d = decode_label_element(*written);
    require(d.status == DecodedLabel::Status::Ok);
    require(d.label.format == c.label.format && d.label.classification == c.label.classification);
  }
  static const std::shared_ptr<const policy::LoadedPolicy> sample = [] {
    static const policy::FilterRegistry registry = policy::builtin_filters();
    return std::make_shared<const policy::LoadedPolicy>(
        policy::load_policy((source_dir() / "test/corpus/labels/policy-labels.xml").string(),
                            (source_dir() / "schemas").string(), registry));
  }();
  int released = 0;
  for (const auto dir : {ipc::Direction::LowToHigh, ipc::Direction::HighToLow}) {
    xmpp::Element s = *stanza;
    const auto& pipe = dir == ipc::Direction::LowToHigh ? sample->pipelines.low_to_high : sample->pipelines.high_to_low;
    const policy::Decision d = pipe.run(s, context(dir));
    check_decision(d);
    if (!d.release) continue;
    ++released;
    // What crosses is labelled in the one place receivers look, or not at all.
    require(find_security_labels(s).size() <= 1);
    std::size_t top_level = 0;
    for (const xmpp::Element* c : s.child_elements()) {
      if (c->ns() == kNsSecLabel && c->name() == "securitylabel") {
        ++top_level;
        continue;
      }
      if (s.name() != "iq") require(!in_label_namespace(*c) && stray_labels(*c) == 0);
    }
    require(top_level <= 1);
  }
  return released;
}

}  // namespace portcullis::fuzz
