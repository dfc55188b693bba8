#include "policy/policy_file.h"

#include <openssl/evp.h>

#include <filesystem>
#include <map>

namespace portcullis::policy {

namespace {

namespace fs = std::filesystem;

constexpr std::uintmax_t kMaxPolicyBytes = 16 * 1024 * 1024;

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0x0f]);
  }
  return out;
}

bool boolean(const std::string& v) { return v == "true" || v == "1"; }

Pipeline build_direction(const PolicyNode& dir, ipc::Direction direction,
                         const FilterRegistry& registry) {
  Pipeline p;
  std::map<std::string, const PolicyNode*, std::less<>> names;
  bool pseudonyms_before = false;
  for (const PolicyNode& f : dir.children) {
    // room-federation's accept ends the pipeline: FMUC traffic must have had
    // its real addresses replaced by then (issue 8: no real JID crosses in it).
    if (f.name == "fmuc-pseudonyms" && f.attr_or("shadow", "false") == "false") pseudonyms_before = true;
    if (f.name == "room-federation" && !pseudonyms_before) {
      f.fail("<room-federation>: expected an enforced <fmuc-pseudonyms> before it in this direction (its accept "
             "ends the pipeline, and no real address may cross in FMUC traffic)");
    }
    FilterSpec spec;
    spec.type = filter_type_for_element(f.name);
    spec.name = f.required("name");
    if (auto [it, fresh] = names.emplace(spec.name, &f); !fresh) {
      f.fail("<" + f.name + "> name: expected a filter name unique in this direction, got '" +
             spec.name + "' a second time (first at line " + std::to_string(it->second->line) +
             ")");
    }
    spec.shadow = boolean(f.attr_or("shadow", "false"));
    spec.node = &f;
    spec.direction = direction;
    spec.file = f.file;
    spec.line = f.line;
    spec.column = f.column;
    std::shared_ptr<const Filter> filter;
    try {
      filter = registry.build(spec);
    } catch (const config::ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      // A factory must report with fail(); anything else still stops the load here.
      f.fail("<" + f.name + " name='" + spec.name + "'>: cannot build the filter: " + e.what());
    }
    p.add(std::move(filter), spec.shadow);
  }
  return p;
}

}  // namespace

std::string LoadedPolicy::id() const { return version + "/" + sha256.substr(0, 12); }

std::string filter_type_for_element(std::string_view element_name) {
  if (element_name == kFilterSizeLimit) return std::string(kTypeSizeLimit);
  if (element_name == kFilterDomainPairAllow) return std::string(kTypeDomainPairAllow);
  return std::string(element_name);
}

LoadedPolicy load_policy(const std::string& file, const std::string& schema_dir,
                         const FilterRegistry& registry) {
  LoadedPolicy out;
  // Absolute, so paths inside the policy (SPIF files...) resolve the same
  // whatever the daemon's working directory is later.
  out.file = fs::absolute(fs::path(file)).lexically_normal().string();

  config::XmlLoad load;
  load.file = out.file;
  load.schema_file = (fs::path(schema_dir) / kPolicySchemaFile).string();
  load.root_name = "policy";
  load.what = "policy file";
  load.max_bytes = kMaxPolicyBytes;
  // One read: the hash is of exactly the bytes that were validated and built.
  const std::string text = config::read_file_capped(out.file, load.max_bytes, load.what);
  out.sha256 = sha256_hex(text);
  std::shared_ptr<PolicyNode> tree;
  try {
    tree = std::make_shared<PolicyNode>(config::parse_validated_xml(load, text));
  } catch (const config::ConfigError& e) {
    // Xerces names an unknown element only; an officer also wants the choices.
    if (e.message().find("no declaration found for element") == std::string::npos) throw;
    std::string known;
    for (const std::string& type : registry.types()) {
      std::string element = type == kTypeSizeLimit          ? std::string(kFilterSizeLimit)
                            : type == kTypeDomainPairAllow ? std::string(kFilterDomainPairAllow)
                                                           : type;
      known += (known.empty() ? "" : ", ") + element;
    }
    throw config::ConfigError(e.file(), e.line(), e.column(),
                              e.message() + " (a filter is one of: " + known + ")");
  }
  if (tree->ns != kPolicyNamespace) {
    tree->fail("expected the namespace '" + std::string(kPolicyNamespace) + "', got '" + tree->ns +
               "'");   // the XSD prevents this; kept so nothing else can be mistaken for a policy
  }
  out.version = tree->required("version");

  const PolicyNode* l2h = nullptr;
  const PolicyNode* h2l = nullptr;
  for (const PolicyNode& d : tree->children) {
    if (d.name != "direction") continue;
    const std::string& from = d.required("from");
    const std::string& to = d.required("to");
    if (from == to) {
      d.fail("<direction>: expected from and to to name different sides, got '" + from + "' -> '" +
             to + "'");
    }
    const PolicyNode*& slot = from == "low" ? l2h : h2l;
    if (slot != nullptr) {
      d.fail("<direction>: expected each direction once, got '" + from + "' -> '" + to +
             "' a second time (first at line " + std::to_string(slot->line) + ")");
    }
    slot = &d;
  }
  if (l2h == nullptr || h2l == nullptr) {
    tree->fail("<policy>: expected directions low->high and high->low");   // XSD + above prevent
  }
  out.pipelines.low_to_high = build_direction(*l2h, ipc::Direction::LowToHigh, registry);
  out.pipelines.high_to_low = build_direction(*h2l, ipc::Direction::HighToLow, registry);
  out.tree = std::move(tree);
  return out;
}

}  // namespace portcullis::policy
