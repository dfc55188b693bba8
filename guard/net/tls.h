// TLS contexts (OpenSSL) and RFC 6125 certificate identity matching for XMPP
// S2S (RFC 6120 §13.7.1.4, XEP-0178).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct x509_st;  // OpenSSL's X509, so this header does not pull in OpenSSL

namespace portcullis::net {

// A certificate of its own for one domain this side presents (fronts or hosts):
// shown to a peer whose SNI names the domain, and by links from the domain.
struct TlsIdentity {
  std::string domain;           // lowercase, exact
  std::string cert_file, key_file;
};

struct TlsConfig {
  std::string cert_file;        // PEM chain presented by this side
  std::string key_file;         // PEM private key
  std::string ca_file;          // PEM bundle trusted for peers of this side
  // TLS 1.2 is the floor and cannot be lowered.
  bool allow_tls12 = true;      // false = TLS 1.3 only
  std::string crl_file;         // PEM CRLs for those peers (empty: no revocation check)
  bool crl_check_chain = true;  // every level below the anchor; false: the leaf only
  std::vector<TlsIdentity> identities;   // per-domain certificates (same CA, CRL, floor)
  // Largest plaintext per TLS record sent (0: OpenSSL's 16 KiB; else 512..16384).
  // IRC links use 512: ngIRCd (GnuTLS) reads at most 2 KiB at a time and looks
  // at the socket again only when more bytes arrive, so the rest of a bigger
  // record waited there until the next message.
  std::size_t max_send_fragment = 0;
};

// Identities a peer certificate asserts for XMPP S2S: SAN dNSName (incl.
// wildcards), SRVName (_xmpp-server.<domain>), id-on-xmppAddr. The subject CN is
// used only when the certificate has no SAN at all (RFC 6125 §6.4.4).
struct CertIdentities {
  std::vector<std::string> dns_names;
  std::vector<std::string> srv_names;     // domain part of _xmpp-server.<domain>
  std::vector<std::string> xmpp_addrs;
  std::vector<std::string> common_names;  // only filled when no SAN present
  std::string subject;                    // one-line subject, for logs and audit
  std::string sha256_fingerprint;         // hex, for logs and audit
};

struct TlsSessionInfo {
  std::string protocol;         // e.g. "TLSv1.3"
  std::string cipher;
  std::string sni;              // the server name asked for (server side) or sent (client side); may be empty
  std::string alpn;             // the application protocol agreed (ALPN), empty: none
  std::string local_cert_sha256;    // the certificate we presented (hex), empty: none
  bool peer_cert_present = false;
  bool peer_cert_trusted = false;   // chain verified against the CA bundle
  std::string verify_error;         // when not trusted: why (OpenSSL text)
  CertIdentities peer;              // identities of the peer certificate
};

// One line for logs and connection events: "TLSv1.3 <cipher>, direct TLS,
// ALPN xmpp-server, SNI b.test, our certificate sha256:<hex>" (parts that do
// not apply left out; `direct`: XEP-0368, else STARTTLS).
std::string describe_tls(const TlsSessionInfo& info, bool direct);

// True when `domain` is asserted by the identities (RFC 6125 §6.4: exact
// dNSName, left-most-label '*' wildcard matching exactly one label, SRVName
// for _xmpp-server, xmppAddr exact; case-insensitive ASCII).
bool certificate_matches_domain(const CertIdentities& ids, std::string_view domain);

// Extracts the XMPP identities of a certificate (dNSName; otherName SRVName
// 1.3.6.1.5.5.7.8.7 "_xmpp-server.<domain>"; otherName id-on-xmppAddr
// 1.3.6.1.5.5.7.8.5; CN only when none of these is present), the one-line
// subject (RFC 2253) and the SHA-256 fingerprint (lowercase hex, no separators).
// Names with embedded NULs or of the wrong ASN.1 type are ignored.
CertIdentities certificate_identities(const x509_st* cert);

// Same, for the first certificate of a PEM file (tools, tests). Throws
// std::runtime_error naming the file and the OpenSSL reason.
CertIdentities certificate_identities_from_file(const std::string& pem_file);

class TlsContext {
 public:
  // Loads files; throws std::runtime_error with the file and OpenSSL reason.
  // Both contexts present cert_file/key_file (S2S clients authenticate with
  // their certificate too); cert_file and key_file may both be empty (no
  // certificate presented). ca_file empty = no peer is ever trusted.
  // Both contexts verify the peer chain against ca_file but never abort the
  // handshake on a bad chain: the result is reported in TlsSessionInfo and the
  // S2S layer decides. Floor TLS 1.2 (1.3 if !allow_tls12), no renegotiation,
  // no compression, no session resumption (every handshake verifies the cert).
  explicit TlsContext(const TlsConfig& cfg);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  void* native_server();   // SSL_CTX* for accepting (requests client certs)
  void* native_client();   // SSL_CTX* for connecting

  // The context that presents `domain`'s own certificate (TlsConfig::identities,
  // ASCII case-insensitive), else this one. Accepting with any of them, a
  // ClientHello whose SNI names a domain with its own certificate is answered
  // with that certificate; other names (or none) keep the context's own. A
  // ClientHello offering ALPN protocols none of which is "xmpp-server" is
  // refused (RFC 7301 §3.2: no_application_protocol).
  TlsContext& for_domain(std::string_view domain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::net
