#include "guard/daemon/preflight.h"

#include <filesystem>
#include <stdexcept>

#include "guard/audit/keys.h"
#include "guard/config/access.h"
#include "guard/config/xml_tree.h"
#include "guard/net/tls_files.h"
#include "guard/rooms/irc_labels.h"
#include "guard/s2s/edge_server.h"
#include "policy/policy_file.h"

namespace portcullis::daemon {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void check_side(const config::Config& cfg, const config::Side& side, std::time_t now, PreflightReport& r) {
  // The certificate must name every domain the server presents: what it
  // fronts and the room services it hosts.
  const std::string label = side.name == "node" ? std::string("node") : "side " + side.name;
  // A domain with a certificate of its own is that certificate's to name.
  std::vector<std::string> presented;
  auto own_certificate = [&side](const std::string& d) {
    for (const config::DomainCertificate& dc : side.domain_certs) {
      if (dc.domain == d) return true;
    }
    return false;
  };
  for (const std::string& d : side.fronts) {
    if (!own_certificate(d)) presented.push_back(d);
  }
  for (const config::RoomServiceSpec& svc : side.rooms) {
    if (!own_certificate(svc.domain)) presented.push_back(svc.domain);
  }
  const net::TlsFilesReport t = net::inspect_tls_files(side.cert_file, side.key_file, side.ca_file, presented, now);
  for (const net::TlsFilesFinding& f : t.findings) {
    if (f.error) throw config::ConfigError(cfg.file, side.tls_line, side.tls_column, "<tls> of " + label + ": " + f.text);
    r.warnings.push_back(label + ": " + f.text);
  }
  for (const config::DomainCertificate& dc : side.domain_certs) {
    const net::TlsFilesReport d = net::inspect_tls_files(dc.cert_file, dc.key_file, side.ca_file, {dc.domain}, now);
    for (const net::TlsFilesFinding& f : d.findings) {
      if (f.error) {
        throw config::ConfigError(cfg.file, dc.line, dc.column, "<domain-certificate domain='" + dc.domain + "'> of " + label + ": " + f.text);
      }
      r.warnings.push_back(label + " (" + dc.domain + "): " + f.text);
    }
    r.summary.push_back(label + ": " + dc.domain + " has its own certificate, valid until " + d.not_after);
  }
  // Then everything else the edge's TLS context would refuse (a CRL file that
  // does not load, a chain that does not), with the same words.
  try {
    net::TlsContext ctx(s2s::tls_config_for(side));
  } catch (const std::exception& e) {
    throw config::ConfigError(cfg.file, side.tls_line, side.tls_column, "<tls> of " + label + ": " + e.what());
  }
  std::vector<std::string> names = t.certificate.dns_names;
  for (const std::string& s : t.certificate.srv_names) names.push_back("_xmpp-server." + s);
  for (const std::string& x : t.certificate.xmpp_addrs) names.push_back("xmppAddr " + x);
  if (names.empty()) names = t.certificate.common_names;
  r.summary.push_back(label + ": certificate names " + join(names) + ", valid until " + t.not_after +
                      " (" + std::to_string(t.days_left) + " days); key matches; CA file " +
                      std::to_string(t.ca_certificates) + " certificate(s)" +
                      (side.crl_file.empty() ? std::string("; no CRL") : "; CRL " + side.crl_file) + "; " +
                      std::to_string(side.peers.size()) + " peer row(s), " + std::to_string(side.listen.size()) +
                      " listener(s)");
}

struct User {
  std::string role;
  const config::ProcessUser* user;
};

void forbid_changes(const config::XmlNode& at, const std::string& what, const std::string& path,
                    const std::vector<User>& users) {
  for (const User& u : users) {
    if (auto why = config::tamper_possible(path, u.user->uid, u.user->gid)) {
      at.fail(what + " '" + path + "': expected " + u.role + " (user " + u.user->name +
              ") NOT to be able to change it, but " + *why + " (give it and its directories to root)");
    }
  }
}

// The attributes of the policy language that name files (schemas/policy: the
// label filters' SPIFs, the keyword filter's word lists).
constexpr const char* kFileAttributes[] = {"spif", "from-spif", "to-spif", "file", "key-file"};

void check_policy_files(const config::XmlNode& n, const config::Supervision& s, const std::vector<User>& users,
                        unsigned& count) {
  for (const char* a : kFileAttributes) {
    const std::string* v = n.attr(a);
    if (v == nullptr || v->empty()) continue;
    const std::string path = n.resolve_path(*v);
    if (auto why = config::access_denied(path, s.filter.uid, s.filter.gid, config::kRead)) {
      n.fail("<" + n.name + "> " + a + " '" + path + "': expected filter (user " + s.filter.name +
             ") to be able to read it, but " + *why);
    }
    forbid_changes(n, "<" + n.name + "> " + a, path, users);
    ++count;
  }
  for (const config::XmlNode& c : n.children) check_policy_files(c, s, users, count);
}

// Every schema file below `schema_dir`: changeable by none of `users`; returns their number.
unsigned check_schema_files(const std::string& schema_dir, const std::vector<User>& users) {
  unsigned schemas = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(schema_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    config::XmlNode at;
    at.file = it->path().string();
    at.name = "schema";
    forbid_changes(at, "schema file", it->path().string(), users);
    ++schemas;
  }
  return schemas;
}

void check_separated_files(const config::Config& cfg, const std::string& schema_dir, PreflightReport& r) {
  const config::Supervision& s = cfg.supervision;
  const std::vector<User> users{{"edge(low)", &s.low_edge}, {"edge(high)", &s.high_edge}, {"filter", &s.filter}};
  config::XmlLoad load;
  load.file = cfg.policy_file;
  load.schema_file = (std::filesystem::path(schema_dir) / policy::kPolicySchemaFile).string();
  load.root_name = "policy";
  load.what = "policy file";
  const config::XmlNode policy = config::load_validated_xml(load);
  unsigned named = 0;
  check_policy_files(policy, s, users, named);
  // Every schema file (the config's, the policy's and its includes, the
  // guard profiles' imports), not just the directory.
  const unsigned schemas = check_schema_files(schema_dir, users);
  r.summary.push_back("separated: " + std::to_string(named) + " file(s) the policy names and " +
                      std::to_string(schemas) + " schema file(s) readable by the filter where needed and changeable "
                      "by no service user");
}

// Each IRC link's labels resolved against its SPIF (a name it does not define
// stops here at file:line:column, as it would stop the edge); in separated
// mode the SPIF must be readable by the side's edge (`reader`) and
// changeable by no service user.
void check_irc_labels(const config::Side& side, const std::string& label, const config::ProcessUser* reader,
                      const std::vector<User>& users, PreflightReport& r) {
  for (const config::RoomServiceSpec& svc : side.rooms) {
    for (const config::RoomSpec& room : svc.rooms) {
      if (!room.irc || room.irc->spif_file.empty()) continue;
      const rooms::IrcLabels labels(*room.irc);
      if (reader != nullptr) {
        const config::XmlNode& at = *room.irc->label;   // <label> follows spif='...' on <irc>
        if (auto why = config::access_denied(room.irc->spif_file, reader->uid, reader->gid, config::kRead)) {
          throw config::ConfigError(at.file, room.irc->line, room.irc->column,
                                    "<irc> spif '" + room.irc->spif_file + "': expected " + label + " (user " +
                                        reader->name + ") to be able to read it, but " + *why);
        }
        config::XmlNode irc_at = at;
        irc_at.line = room.irc->line;
        irc_at.column = room.irc->column;
        forbid_changes(irc_at, "<irc> spif", room.irc->spif_file, users);
      }
      r.summary.push_back(label + ": IRC link of " + room.name + "@" + svc.domain + " " + room.irc->channel + ": " +
                          labels.summary());
    }
  }
}

// A node: its server's TLS files, and in separated mode no schema file the
// node user could change.
PreflightReport preflight_node(const config::Config& cfg, std::time_t now, const std::string& schema_dir) {
  PreflightReport r;
  check_side(cfg, cfg.node, now, r);
  const bool separated_node = cfg.supervision.mode == config::SupervisionMode::Separated;
  check_irc_labels(cfg.node, "node", separated_node ? &cfg.supervision.node : nullptr,
                   {{"node", &cfg.supervision.node}}, r);
  std::size_t rooms = 0;
  for (const config::RoomServiceSpec& svc : cfg.node.rooms) rooms += svc.rooms.size();
  r.summary.push_back("node: " + std::to_string(cfg.node.rooms.size()) + " room service(s), " + std::to_string(rooms) +
                      " room(s); no boundary, no filter, no audit archive");
  if (schema_dir.empty() || cfg.supervision.mode != config::SupervisionMode::Separated) return r;
  const std::vector<User> users{{"node", &cfg.supervision.node}};
  const unsigned schemas = check_schema_files(schema_dir, users);
  r.summary.push_back("separated: " + std::to_string(schemas) + " schema file(s) changeable by no service user");
  return r;
}

}  // namespace

PreflightReport preflight(const config::Config& cfg, std::time_t now, const std::string& schema_dir) {
  if (cfg.kind == config::ConfigKind::Node) return preflight_node(cfg, now, schema_dir);
  PreflightReport r;
  check_side(cfg, cfg.low, now, r);
  check_side(cfg, cfg.high, now, r);
  {
    const config::Supervision& s = cfg.supervision;
    const bool separated = s.mode == config::SupervisionMode::Separated;
    const std::vector<User> users{{"edge(low)", &s.low_edge}, {"edge(high)", &s.high_edge}, {"filter", &s.filter}};
    check_irc_labels(cfg.low, "edge(low)", separated ? &s.low_edge : nullptr, users, r);
    check_irc_labels(cfg.high, "edge(high)", separated ? &s.high_edge : nullptr, users, r);
  }
  if (cfg.audit.enabled && !cfg.audit.public_key_file.empty()) {
    try {
      const audit::SigningKey key = audit::load_signing_key(cfg.audit.signing_key_file);
      if (audit::load_public_key(cfg.audit.public_key_file) != key.public_key) {
        throw std::runtime_error("public key '" + cfg.audit.public_key_file + "' does not match the signing key '" +
                                 cfg.audit.signing_key_file + "' (verifiers would reject every checkpoint)");
      }
      r.summary.push_back("audit: signing key matches public key, key id " + audit::key_id(key.public_key) +
                          "; archive " + cfg.audit.dir);
    } catch (const config::ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw config::ConfigError(cfg.file, cfg.audit.line, cfg.audit.column, std::string("<audit>: ") + e.what());
    }
  }
  if (!schema_dir.empty() && cfg.supervision.mode == config::SupervisionMode::Separated) {
    check_separated_files(cfg, schema_dir, r);
  }
  return r;
}

}  // namespace portcullis::daemon
