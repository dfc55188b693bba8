#include "guard/net/tls_files.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

#include "guard/net/tls_internal.h"

namespace portcullis::net {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// Whole days from now to `t` (negative: in the past), and t as YYYY-MM-DD.
long days_until(const ASN1_TIME* t, std::time_t now, std::string* date) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  if (date != nullptr) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    *date = buf;
  }
  const std::time_t when = timegm(&tm);
  return static_cast<long>((when - now) / 86400);
}

void check_validity(TlsFilesReport& r, X509* x, const std::string& what, std::time_t now, std::string* date,
                    long* left) {
  std::string until;
  const long days = days_until(X509_get0_notAfter(x), now, &until);
  if (date != nullptr) *date = until;
  if (left != nullptr) *left = days;
  std::time_t t = now;
  if (X509_cmp_time(X509_get0_notAfter(x), &t) < 0) {
    r.findings.push_back({true, what + " expired on " + until});
  } else if (X509_cmp_time(X509_get0_notBefore(x), &t) > 0) {
    std::string from;
    days_until(X509_get0_notBefore(x), now, &from);
    r.findings.push_back({true, what + " is not valid before " + from});
  } else if (days < kExpiryWarningDays) {
    r.findings.push_back({false, what + " expires on " + until + " (in " + std::to_string(days) + " days)"});
  }
}

}  // namespace

TlsFilesReport inspect_tls_files(const std::string& cert_file, const std::string& key_file,
                                 const std::string& ca_file, const std::vector<std::string>& names,
                                 std::time_t now) {
  TlsFilesReport r;
  ERR_clear_error();
  X509Ptr cert;
  if (BioPtr b{BIO_new_file(cert_file.c_str(), "r")}) {
    cert.reset(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  }
  if (!cert) {
    r.findings.push_back({true, "certificate '" + cert_file + "' is not a PEM certificate (" +
                                    detail::openssl_error_text("unreadable") + ")"});
  }
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  if (BioPtr b{BIO_new_file(key_file.c_str(), "r")}) {
    key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  }
  if (!key) {
    r.findings.push_back({true, "key '" + key_file + "' is not a PEM private key (" +
                                    detail::openssl_error_text("unreadable") + ")"});
  }
  if (cert) {
    r.certificate = certificate_identities(cert.get());
    if (key && X509_check_private_key(cert.get(), key.get()) != 1) {
      r.findings.push_back({true, "key '" + key_file + "' does not match certificate '" + cert_file + "'"});
    }
    for (const std::string& d : names) {
      if (!certificate_matches_domain(r.certificate, d)) {
        r.findings.push_back({true, "certificate '" + cert_file + "' does not name '" + d +
                                        "', a domain this server presents (peers would refuse it)"});
      }
    }
    check_validity(r, cert.get(), "certificate '" + cert_file + "'", now, &r.not_after, &r.days_left);
  }
  // The CA file: certificates and nothing else (a private key here is a
  // leaked key and a trust anchor missing).
  if (BioPtr b{BIO_new_file(ca_file.c_str(), "r")}) {
    for (;;) {
      char* name = nullptr;
      char* header = nullptr;
      unsigned char* data = nullptr;
      long len = 0;
      if (PEM_read_bio(b.get(), &name, &header, &data, &len) != 1) break;
      const std::string kind = name != nullptr ? name : "";
      if (kind == "CERTIFICATE" || kind == "TRUSTED CERTIFICATE") {
        const unsigned char* p = data;
        X509Ptr ca(d2i_X509(nullptr, &p, len));
        if (!ca) {
          r.findings.push_back({true, "CA file '" + ca_file + "' holds a certificate that does not parse"});
        } else {
          ++r.ca_certificates;
          check_validity(r, ca.get(), "CA certificate " + certificate_identities(ca.get()).subject + " in '" +
                                          ca_file + "'", now, nullptr, nullptr);
        }
      } else {
        r.findings.push_back({true, "CA file '" + ca_file + "' holds a " + kind +
                                        ", expected certificates only"});
      }
      OPENSSL_free(name);
      OPENSSL_free(header);
      OPENSSL_free(data);
    }
  }
  ERR_clear_error();
  if (r.ca_certificates == 0) {
    r.findings.push_back({true, "CA file '" + ca_file + "' holds no certificate (no peer could ever be trusted)"});
  }
  return r;
}

}  // namespace portcullis::net
