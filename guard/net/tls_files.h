// What a side's TLS files would do at start, checked before any edge runs:
// the certificate parses and its key matches, the CA file holds certificates
// only, the certificate names every domain the side presents, and no
// certificate is expired or not yet valid (expiry within 30 days: a warning).
// Used by `portcullisd --check-config` and at every start, so a broken file is
// a config error with its position instead of an edge restarting forever.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "guard/net/tls.h"

namespace portcullis::net {

struct TlsFilesFinding {
  bool error = true;     // false: a warning
  std::string text;
};

struct TlsFilesReport {
  std::vector<TlsFilesFinding> findings;
  CertIdentities certificate;     // of the side's own certificate
  std::string not_after;          // YYYY-MM-DD (UTC)
  long days_left = 0;
  int ca_certificates = 0;
};

constexpr long kExpiryWarningDays = 30;

// `names`: the domains the certificate must name (the side's fronts).
TlsFilesReport inspect_tls_files(const std::string& cert_file, const std::string& key_file,
                                 const std::string& ca_file, const std::vector<std::string>& names,
                                 std::time_t now);

}  // namespace portcullis::net
