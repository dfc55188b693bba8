#include "guard/daemon/preflight.h"

#include <stdexcept>

#include "guard/audit/keys.h"
#include "guard/net/tls_files.h"

namespace portcullis::daemon {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void check_side(const config::Config& cfg, const config::Side& side, std::time_t now, PreflightReport& r) {
  const net::TlsFilesReport t = net::inspect_tls_files(side.cert_file, side.key_file, side.ca_file, side.fronts, now);
  for (const net::TlsFilesFinding& f : t.findings) {
    if (f.error) throw config::ConfigError(cfg.file, side.tls_line, side.tls_column, "<tls> of side " + side.name + ": " + f.text);
    r.warnings.push_back("side " + side.name + ": " + f.text);
  }
  std::vector<std::string> names = t.certificate.dns_names;
  for (const std::string& s : t.certificate.srv_names) names.push_back("_xmpp-server." + s);
  for (const std::string& x : t.certificate.xmpp_addrs) names.push_back("xmppAddr " + x);
  if (names.empty()) names = t.certificate.common_names;
  r.summary.push_back("side " + side.name + ": certificate names " + join(names) + ", valid until " + t.not_after +
                      " (" + std::to_string(t.days_left) + " days); key matches; CA file " +
                      std::to_string(t.ca_certificates) + " certificate(s)" +
                      (side.crl_file.empty() ? std::string("; no CRL") : "; CRL " + side.crl_file) + "; " +
                      std::to_string(side.peers.size()) + " peer row(s), " + std::to_string(side.listen.size()) +
                      " listener(s)");
}

}  // namespace

PreflightReport preflight(const config::Config& cfg, std::time_t now) {
  PreflightReport r;
  check_side(cfg, cfg.low, now, r);
  check_side(cfg, cfg.high, now, r);
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
  return r;
}

}  // namespace portcullis::daemon
