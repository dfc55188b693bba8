// Private to guard/net: glue between TlsContext (tls.cpp) and Connection
// (connection.cpp). Not part of the module's contract.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <string>

namespace portcullis::net::detail {

// Filled by the verify callback of both TlsContext SSL_CTXs: the first chain
// error seen (the callback itself accepts the handshake regardless). The
// Connection owns one per SSL and hands it over with SSL_set_app_data.
struct VerifyRecord {
  int first_error = X509_V_OK;
  int error_depth = -1;
  // Client side: why the OCSP response the server stapled makes its
  // certificate untrusted (revoked, or a response that does not check out);
  // empty when none was stapled or it says "good".
  std::string ocsp_error;
};

// Drains the calling thread's OpenSSL error queue into one readable line
// ("unsupported protocol", ...); `fallback` when the queue is empty.
std::string openssl_error_text(const char* fallback = "unknown OpenSSL error");

}  // namespace portcullis::net::detail
