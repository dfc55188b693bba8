// Preflight: what would break the appliance once running, checked from the
// loaded config before any child starts (at every start, and by
// `portcullisd --check-config`): each side's certificate, key and CA file
// (guard/net/tls_files.h) and the audit key pair. An error throws a
// config::ConfigError with the position of the element that names the file;
// warnings (a certificate expiring within 30 days) and a one-line summary per
// part come back for the log or the check's output.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "guard/config/config.h"

namespace portcullis::daemon {

struct PreflightReport {
  std::vector<std::string> summary;    // "side low: certificate names b.test, ...; key matches; ..."
  std::vector<std::string> warnings;
};

// With `schema_dir` and in separated mode, also: every file the policy names
// (SPIFs, keyword lists) must be readable by the filter and changeable by no
// service user (the error is at the naming element in the policy file), and so
// must every schema file below `schema_dir`.
PreflightReport preflight(const config::Config& cfg, std::time_t now, const std::string& schema_dir = {});

}  // namespace portcullis::daemon
