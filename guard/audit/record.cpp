#include "guard/audit/record.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace portcullis::audit {

namespace {

constexpr std::string_view kTypeNames[] = {"", "decision", "connection", "admin", "checkpoint"};
constexpr std::string_view kOutcomeNames[] = {"released", "rejected", "modified", "shadow"};
constexpr std::string_view kDirectionNames[] = {"low-to-high", "high-to-low", "local", "none"};

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

bool get_u32(std::string_view in, std::size_t& p, std::uint32_t& v) {
  if (in.size() - p < 4 || p > in.size()) return false;
  v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(in[p + static_cast<std::size_t>(i)]);
  p += 4;
  return true;
}

json::Value notes_json(const Notes& n) {
  json::Array a;
  for (const auto& [k, v] : n) a.push_back(json::Array{json::Value(k), json::Value(v)});
  return a;
}

Notes notes_from(const json::Value& v) {
  Notes n;
  for (const auto& e : v.as_array()) {
    const auto& pair = e.as_array();
    if (pair.size() == 2) n.emplace_back(pair[0].as_string(), pair[1].as_string());
  }
  return n;
}

json::Value peer_json(const PeerInfo& p) {
  json::Object o;
  o["domain"] = p.domain;
  o["auth"] = p.auth;
  o["tls"] = p.tls;
  o["cert"] = p.cert_identity;
  if (!p.tls_params.empty()) o["tls_params"] = p.tls_params;
  return o;
}

PeerInfo peer_from(const json::Value& v) {
  PeerInfo p;
  p.domain = v["domain"].as_string();
  p.auth = v["auth"].as_string();
  p.tls = v["tls"].as_bool();
  p.cert_identity = v["cert"].as_string();
  p.tls_params = v["tls_params"].as_string();
  return p;
}

struct ToJson {
  json::Value operator()(const DecisionRecord& d) const {
    json::Object o;
    o["outcome"] = to_string(d.outcome);
    o["direction"] = to_string(d.direction);
    o["peer"] = peer_json(d.peer);
    o["frame_seq"] = d.frame_seq;
    o["stream_id"] = d.stream_id;
    o["from"] = d.from;
    o["to"] = d.to;
    o["stanza"] = json::Object{{"kind", d.stanza_kind}, {"type", d.stanza_type}, {"id", d.stanza_id}};
    o["labels"] = json::Object{{"original", d.label_original}, {"effective", d.label_effective},
                               {"mapped", d.label_mapped}};
    json::Array fs;
    for (const auto& f : d.filters) {
      json::Object fo;
      fo["filter"] = f.filter;
      fo["type"] = f.type;
      fo["verdict"] = f.verdict;
      fo["rule"] = f.rule_id;
      fo["shadow"] = f.shadow;
      if (!f.transformation.empty()) fo["transformation"] = f.transformation;
      if (!f.notes.empty()) fo["notes"] = notes_json(f.notes);
      fs.push_back(std::move(fo));
    }
    o["filters"] = std::move(fs);
    json::Array gs;
    for (const auto& g : d.guards) gs.push_back(json::Object{{"name", g.name}, {"pass", g.pass}, {"reason", g.reason}});
    o["guards"] = std::move(gs);
    if (!d.error_condition.empty()) o["error"] = d.error_condition;
    o["policy"] = json::Object{{"version", d.policy_version}, {"hash", d.policy_hash}};
    if (!d.notes.empty()) o["notes"] = notes_json(d.notes);
    o["original_sha256"] = d.original_sha256;
    o["original_len"] = static_cast<std::uint64_t>(d.original.size());
    if (!d.released_sha256.empty()) {
      o["released_sha256"] = d.released_sha256;
      o["released_same"] = !d.released.has_value();
    }
    return o;
  }
  json::Value operator()(const ConnectionEvent& c) const {
    json::Object o;
    o["event"] = c.kind;
    o["text"] = c.text;
    o["side"] = c.side;
    o["peer"] = peer_json(c.peer);
    if (!c.notes.empty()) o["notes"] = notes_json(c.notes);
    return o;
  }
  json::Value operator()(const AdminEvent& a) const {
    json::Object o;
    o["event"] = a.kind;
    o["text"] = a.text;
    if (!a.fields.empty()) o["fields"] = notes_json(a.fields);
    return o;
  }
  json::Value operator()(const CheckpointRecord& c) const {
    json::Object o;
    o["segment"] = c.segment_no;
    o["covered_seq"] = c.covered_seq;
    o["covered_hash"] = to_hex(c.covered_hash);
    o["key_id"] = c.key_id;
    o["sig"] = to_hex(c.signature);
    return o;
  }
};

}  // namespace

std::string_view to_string(RecordType t) {
  const auto i = static_cast<std::size_t>(t);
  return i >= 1 && i <= 4 ? kTypeNames[i] : std::string_view("unknown");
}
std::string_view to_string(Outcome o) { return kOutcomeNames[static_cast<std::size_t>(o)]; }
std::string_view to_string(Direction d) { return kDirectionNames[static_cast<std::size_t>(d)]; }

std::optional<RecordType> parse_record_type(std::string_view s) {
  for (std::size_t i = 1; i <= 4; ++i)
    if (kTypeNames[i] == s) return static_cast<RecordType>(i);
  return std::nullopt;
}
std::optional<Outcome> parse_outcome(std::string_view s) {
  for (std::size_t i = 0; i < 4; ++i)
    if (kOutcomeNames[i] == s) return static_cast<Outcome>(i);
  return std::nullopt;
}
std::optional<Direction> parse_direction(std::string_view s) {
  for (std::size_t i = 0; i < 4; ++i)
    if (kDirectionNames[i] == s) return static_cast<Direction>(i);
  return std::nullopt;
}

std::string AdminEvent::field(std::string_view key) const {
  for (const auto& [k, v] : fields)
    if (k == key) return v;
  return {};
}

RecordType Record::type() const { return static_cast<RecordType>(body.index() + 1); }

json::Value to_json(const RecordBody& body) { return std::visit(ToJson{}, body); }

std::string decision_meta_reference(const DecisionRecord& d) {
  // The hashes are computed here, from the bytes actually stored, never taken
  // from the caller.
  auto obj = ToJson{}(d);
  auto& o = obj.object();
  o["original_sha256"] = to_hex(sha256(d.original));
  if (d.outcome != Outcome::Rejected) {
    o["released_sha256"] = to_hex(sha256(d.released ? *d.released : d.original));
    o["released_same"] = !d.released.has_value();
  } else {
    o.erase("released_sha256");
    o.erase("released_same");
  }
  return json::dump(obj);
}

namespace {

// The same bytes as decision_meta_reference, written straight into the buffer
// (no Value tree: the tree's maps and strings were a fifth of the audit
// writer's time under a flood). Keys go in the dump's lexicographic order;
// integers as json::Value holds them (int64). A unit test holds the two equal.
struct MetaWriter {
  std::string& out;
  bool first = true;
  void key(std::string_view k) {
    out += first ? "" : ",";
    first = false;
    json::dump_string(k, out);
    out += ':';
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    json::dump_string(v, out);
  }
  void boolean(std::string_view k, bool v) {
    key(k);
    out += v ? "true" : "false";
  }
  void integer(std::string_view k, std::uint64_t v) {
    key(k);
    out += std::to_string(static_cast<std::int64_t>(v));
  }
  template <typename F>
  void object(std::string_view k, F&& body) {
    key(k);
    out += '{';
    MetaWriter inner{out};
    body(inner);
    out += '}';
  }
  // An array of objects, one per element of `items`, each written by `body`.
  template <typename T, typename F>
  void objects(std::string_view k, const std::vector<T>& items, F&& body) {
    key(k);
    out += '[';
    for (std::size_t i = 0; i < items.size(); ++i) {
      out += i == 0 ? "{" : ",{";
      MetaWriter inner{out};
      body(inner, items[i]);
      out += '}';
    }
    out += ']';
  }
};

void write_notes(std::string& out, const Notes& n) {
  out += '[';
  bool first = true;
  for (const auto& [k, v] : n) {
    out += first ? "[" : ",[";
    first = false;
    json::dump_string(k, out);
    out += ',';
    json::dump_string(v, out);
    out += ']';
  }
  out += ']';
}

std::string decision_meta(const DecisionRecord& d) {
  std::string out;
  out.reserve(1024);
  out += '{';
  MetaWriter w{out};
  w.str("direction", to_string(d.direction));
  if (!d.error_condition.empty()) w.str("error", d.error_condition);
  w.objects("filters", d.filters, [&](MetaWriter& fw, const FilterResult& f) {
    fw.str("filter", f.filter);
    if (!f.notes.empty()) {
      fw.key("notes");
      write_notes(out, f.notes);
    }
    fw.str("rule", f.rule_id);
    fw.boolean("shadow", f.shadow);
    if (!f.transformation.empty()) fw.str("transformation", f.transformation);
    fw.str("type", f.type);
    fw.str("verdict", f.verdict);
  });
  w.integer("frame_seq", d.frame_seq);
  w.str("from", d.from);
  w.objects("guards", d.guards, [](MetaWriter& gw, const GuardResult& g) {
    gw.str("name", g.name);
    gw.boolean("pass", g.pass);
    gw.str("reason", g.reason);
  });
  w.object("labels", [&](MetaWriter& l) {
    l.str("effective", d.label_effective);
    l.str("mapped", d.label_mapped);
    l.str("original", d.label_original);
  });
  if (!d.notes.empty()) {
    w.key("notes");
    write_notes(out, d.notes);
  }
  w.integer("original_len", d.original.size());
  const std::string original_hex = to_hex(sha256(d.original));
  w.str("original_sha256", original_hex);
  w.str("outcome", to_string(d.outcome));
  w.object("peer", [&](MetaWriter& p) {
    p.str("auth", d.peer.auth);
    p.str("cert", d.peer.cert_identity);
    p.str("domain", d.peer.domain);
    p.boolean("tls", d.peer.tls);
    if (!d.peer.tls_params.empty()) p.str("tls_params", d.peer.tls_params);
  });
  w.object("policy", [&](MetaWriter& p) {
    p.str("hash", d.policy_hash);
    p.str("version", d.policy_version);
  });
  if (d.outcome != Outcome::Rejected) {
    w.boolean("released_same", !d.released.has_value());
    w.str("released_sha256", d.released ? to_hex(sha256(*d.released)) : original_hex);   // unchanged: hashed once
  }
  w.object("stanza", [&](MetaWriter& s) {
    s.str("id", d.stanza_id);
    s.str("kind", d.stanza_kind);
    s.str("type", d.stanza_type);
  });
  w.str("stream_id", d.stream_id);
  w.str("to", d.to);
  out += '}';
  return out;
}

}  // namespace

std::string encode_payload(const Record& r) {
  std::string meta;
  std::vector<std::string_view> blobs;
  if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
    meta = decision_meta(*d);
    blobs.push_back(d->original);
    if (d->released && d->outcome != Outcome::Rejected) blobs.push_back(*d->released);
  } else {
    meta = json::dump(to_json(r.body));
  }
  std::string out;
  std::size_t total = 8 + meta.size();
  for (auto b : blobs) total += 4 + b.size();
  out.reserve(total);
  put_u32(out, static_cast<std::uint32_t>(meta.size()));
  out += meta;
  put_u32(out, static_cast<std::uint32_t>(blobs.size()));
  for (auto b : blobs) {
    put_u32(out, static_cast<std::uint32_t>(b.size()));
    out.append(b);
  }
  return out;
}

bool decode_payload(RecordType type, std::string_view payload, RecordBody& out, std::string& meta_json,
                    std::string* error) {
  auto fail = [&](std::string m) {
    if (error) *error = std::move(m);
    return false;
  };
  std::size_t p = 0;
  std::uint32_t mlen = 0;
  if (!get_u32(payload, p, mlen) || payload.size() - p < mlen) return fail("payload: bad metadata length");
  meta_json = std::string(payload.substr(p, mlen));
  p += mlen;
  std::uint32_t nblobs = 0;
  if (!get_u32(payload, p, nblobs) || nblobs > 2) return fail("payload: bad blob count");
  std::vector<std::string> blobs;
  for (std::uint32_t i = 0; i < nblobs; ++i) {
    std::uint32_t blen = 0;
    if (!get_u32(payload, p, blen) || payload.size() - p < blen) return fail("payload: bad blob length");
    blobs.emplace_back(payload.substr(p, blen));
    p += blen;
  }
  if (p != payload.size()) return fail("payload: trailing bytes");
  std::string jerr;
  auto meta = json::parse(meta_json, &jerr);
  if (!meta || !meta->is_object()) return fail("payload: metadata is not a JSON object: " + jerr);
  const json::Value& m = *meta;
  switch (type) {
    case RecordType::Decision: {
      DecisionRecord d;
      auto oc = parse_outcome(m["outcome"].as_string());
      auto dir = parse_direction(m["direction"].as_string());
      if (!oc || !dir) return fail("decision: bad outcome or direction");
      d.outcome = *oc;
      d.direction = *dir;
      d.peer = peer_from(m["peer"]);
      d.frame_seq = m["frame_seq"].as_uint();
      d.stream_id = m["stream_id"].as_string();
      d.from = m["from"].as_string();
      d.to = m["to"].as_string();
      d.stanza_kind = m["stanza"]["kind"].as_string();
      d.stanza_type = m["stanza"]["type"].as_string();
      d.stanza_id = m["stanza"]["id"].as_string();
      d.label_original = m["labels"]["original"].as_string();
      d.label_effective = m["labels"]["effective"].as_string();
      d.label_mapped = m["labels"]["mapped"].as_string();
      for (const auto& f : m["filters"].as_array()) {
        FilterResult fr;
        fr.filter = f["filter"].as_string();
        fr.type = f["type"].as_string();
        fr.verdict = f["verdict"].as_string();
        fr.rule_id = f["rule"].as_string();
        fr.shadow = f["shadow"].as_bool();
        fr.transformation = f["transformation"].as_string();
        fr.notes = notes_from(f["notes"]);
        d.filters.push_back(std::move(fr));
      }
      for (const auto& g : m["guards"].as_array())
        d.guards.push_back(GuardResult{g["name"].as_string(), g["pass"].as_bool(), g["reason"].as_string()});
      d.error_condition = m["error"].as_string();
      d.policy_version = m["policy"]["version"].as_string();
      d.policy_hash = m["policy"]["hash"].as_string();
      d.notes = notes_from(m["notes"]);
      d.original_sha256 = m["original_sha256"].as_string();
      d.released_sha256 = m["released_sha256"].as_string();
      if (blobs.empty()) return fail("decision: original bytes missing");
      d.original = std::move(blobs[0]);
      if (to_hex(sha256(d.original)) != d.original_sha256) return fail("decision: original_sha256 does not match the stored bytes");
      if (blobs.size() == 2) d.released = std::move(blobs[1]);
      if (!d.released_sha256.empty()) {
        const std::string& rel = d.released ? *d.released : d.original;
        if (to_hex(sha256(rel)) != d.released_sha256) return fail("decision: released_sha256 does not match the stored bytes");
      }
      out = std::move(d);
      return true;
    }
    case RecordType::Connection: {
      ConnectionEvent c;
      c.kind = m["event"].as_string();
      c.text = m["text"].as_string();
      c.side = m["side"].as_string();
      c.peer = peer_from(m["peer"]);
      c.notes = notes_from(m["notes"]);
      out = std::move(c);
      return true;
    }
    case RecordType::Admin: {
      AdminEvent a;
      a.kind = m["event"].as_string();
      a.text = m["text"].as_string();
      a.fields = notes_from(m["fields"]);
      out = std::move(a);
      return true;
    }
    case RecordType::Checkpoint: {
      CheckpointRecord c;
      c.segment_no = m["segment"].as_uint();
      c.covered_seq = m["covered_seq"].as_uint();
      auto h = from_hex(m["covered_hash"].as_string());
      auto s = from_hex(m["sig"].as_string());
      if (!h || h->size() != 32 || !s || s->size() != 64) return fail("checkpoint: bad hash or signature field");
      c.covered_hash = std::move(*h);
      c.signature = std::move(*s);
      c.key_id = m["key_id"].as_string();
      out = std::move(c);
      return true;
    }
  }
  return fail("unknown record type");
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return std::nullopt;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int a = nib(hex[i]), b = nib(hex[i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    out += static_cast<char>(a * 16 + b);
  }
  return out;
}

namespace {

// OpenSSL's SHA-256 (SHA-NI or AVX2 where the CPU has them): libsodium's
// portable one was a fifth of the filter's time under a flood, hashing each
// stanza three times (original, released, chain). The digest is fetched once,
// at load, before any sandbox is entered.
struct Sha256 {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  ~Sha256() { EVP_MD_free(md); }
};
const Sha256 g_sha256;

struct CtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

std::string sha256(std::string_view a, std::string_view b) {
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (g_sha256.md != nullptr && ctx && EVP_DigestInit_ex2(ctx.get(), g_sha256.md, nullptr) == 1 &&
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) == 1 && EVP_DigestUpdate(ctx.get(), b.data(), b.size()) == 1 &&
      EVP_DigestFinal_ex(ctx.get(), h, &n) == 1 && n == crypto_hash_sha256_BYTES) {
    return std::string(reinterpret_cast<const char*>(h), n);
  }
  // OpenSSL could not (no provider, no memory): libsodium's SHA-256 gives the
  // same digest, slower, and cannot fail; the archive writer never throws here.
  ERR_clear_error();
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  crypto_hash_sha256_update(&st, reinterpret_cast<const unsigned char*>(b.data()), b.size());
  crypto_hash_sha256_final(&st, h);
  return std::string(reinterpret_cast<const char*>(h), crypto_hash_sha256_BYTES);
}

std::string sha256(std::string_view bytes) { return sha256(bytes, {}); }

}  // namespace portcullis::audit
