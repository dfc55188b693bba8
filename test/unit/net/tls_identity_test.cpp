// RFC 6125 identity extraction and matching for XMPP S2S certificates, and
// TlsContext loading errors.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "guard/net/tls.h"
#include "test_pki.h"

using namespace portcullis::net;
using portcullis::net::test::pki;

TEST_CASE("identities of a per-domain certificate", "[tls][identity]") {
  CertIdentities ids = certificate_identities_from_file(pki("a.test.pem"));
  CHECK(ids.dns_names == std::vector<std::string>{"a.test", "conference.a.test"});
  CHECK(ids.srv_names.empty());
  CHECK(ids.xmpp_addrs.empty());
  CHECK(ids.common_names.empty());  // SAN present: CN is not an identity
  CHECK(ids.subject.find("CN=a.test") != std::string::npos);
  CHECK(ids.sha256_fingerprint.size() == 64);

  CHECK(certificate_matches_domain(ids, "a.test"));
  CHECK(certificate_matches_domain(ids, "A.Test"));
  CHECK(certificate_matches_domain(ids, "a.test."));
  CHECK(certificate_matches_domain(ids, "conference.a.test"));
  CHECK_FALSE(certificate_matches_domain(ids, "b.test"));
  CHECK_FALSE(certificate_matches_domain(ids, "x.a.test"));
  CHECK_FALSE(certificate_matches_domain(ids, "test"));
  CHECK_FALSE(certificate_matches_domain(ids, ""));
}

TEST_CASE("wildcard, SRVName and xmppAddr identities", "[tls][identity]") {
  CertIdentities ids = certificate_identities_from_file(pki("wildcard.pem"));
  CHECK(ids.dns_names == std::vector<std::string>{"*.w.test"});
  CHECK(ids.srv_names == std::vector<std::string>{"srv.test"});
  CHECK(ids.xmpp_addrs == std::vector<std::string>{"x.test"});
  CHECK(ids.common_names.empty());

  CHECK(certificate_matches_domain(ids, "foo.w.test"));
  CHECK(certificate_matches_domain(ids, "FOO.W.TEST"));
  CHECK_FALSE(certificate_matches_domain(ids, "w.test"));       // never the bare parent
  CHECK_FALSE(certificate_matches_domain(ids, "a.foo.w.test"));  // exactly one label
  CHECK_FALSE(certificate_matches_domain(ids, ".w.test"));
  CHECK_FALSE(certificate_matches_domain(ids, "*.w.test"));
  CHECK(certificate_matches_domain(ids, "srv.test"));            // via SRVName
  CHECK_FALSE(certificate_matches_domain(ids, "foo.srv.test"));
  CHECK(certificate_matches_domain(ids, "x.test"));              // via xmppAddr
  CHECK_FALSE(certificate_matches_domain(ids, "y.x.test"));
  CHECK_FALSE(certificate_matches_domain(ids, "wildcard.test"));  // CN ignored when SAN present
}

TEST_CASE("matching rules on hand-built identities", "[tls][identity]") {
  CertIdentities ids;
  SECTION("wildcards only as the whole left-most label") {
    ids.dns_names = {"f*.w.test", "a.*.test", "*.test"};
    CHECK_FALSE(certificate_matches_domain(ids, "foo.w.test"));
    CHECK_FALSE(certificate_matches_domain(ids, "a.b.test"));
    CHECK_FALSE(certificate_matches_domain(ids, "x.test"));  // no wildcard over a whole TLD
  }
  SECTION("CN only when no SAN identity at all, exact") {
    ids.common_names = {"cn.test"};
    CHECK(certificate_matches_domain(ids, "cn.test"));
    CHECK_FALSE(certificate_matches_domain(ids, "x.cn.test"));
    ids.dns_names = {"other.test"};
    CHECK_FALSE(certificate_matches_domain(ids, "cn.test"));
  }
  SECTION("SRVName and xmppAddr are exact") {
    ids.srv_names = {"srv.test"};
    ids.xmpp_addrs = {"x.test"};
    CHECK(certificate_matches_domain(ids, "SRV.test"));
    CHECK_FALSE(certificate_matches_domain(ids, "a.srv.test"));
    CHECK_FALSE(certificate_matches_domain(ids, "test"));
  }
}

TEST_CASE("TlsContext names the file and the OpenSSL reason on load errors", "[tls]") {
  TlsConfig good{pki("a.test.pem"), pki("a.test.key"), pki("ca-low.pem"), true, "", true, {}};
  REQUIRE_NOTHROW(TlsContext(good));

  auto message_of = [](const TlsConfig& cfg) {
    try {
      TlsContext ctx(cfg);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };

  TlsConfig missing_cert = good;
  missing_cert.cert_file = "/nonexistent/cert.pem";
  std::string m = message_of(missing_cert);
  CHECK(m.find("/nonexistent/cert.pem") != std::string::npos);
  CHECK(m.find("certificate") != std::string::npos);

  TlsConfig wrong_key = good;
  wrong_key.key_file = pki("b.test.key");
  m = message_of(wrong_key);
  CHECK(m.find("b.test.key") != std::string::npos);
  CHECK(m.find("mismatch") != std::string::npos);

  TlsConfig bad_ca = good;
  bad_ca.ca_file = pki("a.test.key");  // not a certificate
  m = message_of(bad_ca);
  CHECK(m.find("a.test.key") != std::string::npos);
  CHECK(m.find("CA bundle") != std::string::npos);

  CHECK_THROWS_AS(certificate_identities_from_file("/nonexistent/x.pem"), std::runtime_error);
}
