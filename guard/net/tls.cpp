#include "guard/net/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>

#include "guard/net/tls_internal.h"

namespace portcullis::net {

namespace detail {

std::string openssl_error_text(const char* fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    std::string part;
    if (reason) {
      part = reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      part = buf;
    }
    // The same reason is often queued several times on the way up the stack.
    if (out.find(part) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += part;
  }
  return out.empty() ? std::string(fallback) : out;
}

}  // namespace detail

namespace {

constexpr const char* kOidXmppAddr = "1.3.6.1.5.5.7.8.5";
constexpr const char* kOidSrvName = "1.3.6.1.5.5.7.8.7";
constexpr std::string_view kXmppServerSrv = "_xmpp-server.";

std::string ascii_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return r;
}

// Lowercase, one trailing dot dropped (absolute form), so "A.Test." == "a.test".
std::string normalize_domain(std::string_view s) {
  std::string r = ascii_lower(s);
  if (!r.empty() && r.back() == '.') r.pop_back();
  return r;
}

// Text of an ASN.1 string; nothing when it holds an embedded NUL (the classic
// "good.example\0.evil.example" trick) or is empty.
std::optional<std::string> asn1_text(const ASN1_STRING* s) {
  if (!s) return std::nullopt;
  const unsigned char* data = ASN1_STRING_get0_data(s);
  int len = ASN1_STRING_length(s);
  if (!data || len <= 0) return std::nullopt;
  if (std::memchr(data, 0, static_cast<std::size_t>(len))) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(len));
}

std::string oid_text(const ASN1_OBJECT* obj) {
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof buf, obj, 1);
  if (n <= 0 || n >= static_cast<int>(sizeof buf)) return {};
  return buf;
}

bool dns_id_matches(std::string_view pattern_raw, const std::string& domain) {
  std::string pattern = normalize_domain(pattern_raw);
  if (pattern.empty()) return false;
  if (pattern == domain) return true;
  // Wildcard: only "*" as the whole left-most label, and at least two labels
  // after it (no "*.test"-style wildcards over a whole top-level zone).
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return false;
  std::string_view rest = std::string_view(pattern).substr(2);
  if (rest.find('*') != std::string_view::npos || rest.find('.') == std::string_view::npos) return false;
  auto dot = domain.find('.');
  if (dot == std::string::npos || dot == 0) return false;  // the bare parent never matches
  // Exactly one label: everything after the first dot must equal the rest.
  return std::string_view(domain).substr(dot + 1) == rest;
}

}  // namespace

bool certificate_matches_domain(const CertIdentities& ids, std::string_view domain_raw) {
  std::string domain = normalize_domain(domain_raw);
  if (domain.empty() || domain.find('*') != std::string::npos || domain.front() == '.') return false;
  for (const auto& d : ids.dns_names) {
    if (dns_id_matches(d, domain)) return true;
  }
  for (const auto& s : ids.srv_names) {
    if (normalize_domain(s) == domain) return true;
  }
  for (const auto& x : ids.xmpp_addrs) {
    if (normalize_domain(x) == domain) return true;
  }
  // CN-ID only as the last resort when no SAN identity exists (RFC 6125 §6.4.4);
  // exact match only, no wildcards in CNs.
  if (ids.dns_names.empty() && ids.srv_names.empty() && ids.xmpp_addrs.empty()) {
    for (const auto& cn : ids.common_names) {
      if (normalize_domain(cn) == domain) return true;
    }
  }
  return false;
}

CertIdentities certificate_identities(const x509_st* cert_in) {
  CertIdentities ids;
  if (!cert_in) return ids;
  // Several OpenSSL 3.0 getters are not const-correct; nothing here mutates.
  X509* cert = const_cast<X509*>(cert_in);

  // Any application identifier (DNS, SRV, URI, xmppAddr) suppresses the CN.
  bool has_san_identity = false;
  auto* gens = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (gens) {
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
      if (g->type == GEN_DNS) {
        has_san_identity = true;
        if (auto t = asn1_text(g->d.dNSName)) ids.dns_names.push_back(ascii_lower(*t));
      } else if (g->type == GEN_URI) {
        has_san_identity = true;
      } else if (g->type == GEN_OTHERNAME && g->d.otherName && g->d.otherName->value) {
        const OTHERNAME* on = g->d.otherName;
        std::string oid = oid_text(on->type_id);
        if (oid == kOidXmppAddr) {
          has_san_identity = true;
          if (on->value->type == V_ASN1_UTF8STRING) {
            if (auto t = asn1_text(on->value->value.utf8string)) ids.xmpp_addrs.push_back(*t);
          }
        } else if (oid == kOidSrvName) {
          has_san_identity = true;
          if (on->value->type == V_ASN1_IA5STRING) {
            auto t = asn1_text(on->value->value.ia5string);
            if (t && t->size() > kXmppServerSrv.size() &&
                ascii_lower(t->substr(0, kXmppServerSrv.size())) == kXmppServerSrv) {
              ids.srv_names.push_back(ascii_lower(t->substr(kXmppServerSrv.size())));
            }
          }
        }
      }
    }
    GENERAL_NAMES_free(gens);
  }

  X509_NAME* subject = X509_get_subject_name(cert);
  if (!has_san_identity && subject) {
    int idx = -1;
    while ((idx = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >= 0) {
      ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
      unsigned char* utf8 = nullptr;
      int len = ASN1_STRING_to_UTF8(&utf8, data);
      if (len > 0 && !std::memchr(utf8, 0, static_cast<std::size_t>(len))) {
        ids.common_names.emplace_back(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
      }
      OPENSSL_free(utf8);
    }
  }

  if (subject) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio) {
      if (X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253) >= 0) {
        char* p = nullptr;
        long n = BIO_get_mem_data(bio, &p);
        if (p && n > 0) ids.subject.assign(p, static_cast<std::size_t>(n));
      }
      BIO_free(bio);
    }
  }

  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    ids.sha256_fingerprint.reserve(md_len * 2);
    for (unsigned int i = 0; i < md_len; ++i) {
      ids.sha256_fingerprint += kHex[md[i] >> 4];
      ids.sha256_fingerprint += kHex[md[i] & 0xf];
    }
  }
  return ids;
}

CertIdentities certificate_identities_from_file(const std::string& pem_file) {
  ERR_clear_error();
  BIO* bio = BIO_new_file(pem_file.c_str(), "r");
  if (!bio) {
    throw std::runtime_error("cannot open certificate '" + pem_file + "': " + detail::openssl_error_text());
  }
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!cert) {
    throw std::runtime_error("cannot read certificate '" + pem_file + "': " + detail::openssl_error_text());
  }
  CertIdentities ids = certificate_identities(cert);
  X509_free(cert);
  return ids;
}

namespace {

// Accept the handshake whatever the chain looks like, but remember the first
// problem: the S2S layer decides (and logs why) from TlsSessionInfo.
int accept_and_record(int ok, X509_STORE_CTX* store) {
  if (!ok) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* rec = ssl ? static_cast<detail::VerifyRecord*>(SSL_get_app_data(ssl)) : nullptr;
    if (rec && rec->first_error == X509_V_OK) {
      rec->first_error = X509_STORE_CTX_get_error(store);
      rec->error_depth = X509_STORE_CTX_get_error_depth(store);
    }
  }
  return 1;
}

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

SslCtxPtr make_ctx(const TlsConfig& cfg, bool server) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) throw std::runtime_error("cannot create TLS context: " + detail::openssl_error_text());
  SSL_CTX* c = ctx.get();

  // Never below TLS 1.2, whatever the system openssl.cnf says.
  if (SSL_CTX_set_min_proto_version(c, cfg.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION) != 1) {
    throw std::runtime_error("cannot set TLS minimum version: " + detail::openssl_error_text());
  }
  if (SSL_CTX_get_security_level(c) < 2) SSL_CTX_set_security_level(c, 2);
  long opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET;
  if (server) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  SSL_CTX_set_options(c, opts);
  // No resumption: every connection goes through a full certificate check.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (server) SSL_CTX_set_num_tickets(c, 0);
  // Non-blocking writes from a buffer that grows (and may be reallocated).
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  if (cfg.max_send_fragment != 0 &&
      SSL_CTX_set_max_send_fragment(c, static_cast<long>(cfg.max_send_fragment)) != 1) {
    throw std::runtime_error("TLS: max_send_fragment must be 512..16384, not " + std::to_string(cfg.max_send_fragment));
  }
  // Server: request (not require) the client certificate; client: check the server's.
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, accept_and_record);
  SSL_CTX_set_verify_depth(c, 8);

  if (cfg.cert_file.empty() != cfg.key_file.empty()) {
    throw std::runtime_error("TLS: cert_file and key_file must be given together");
  }
  if (!cfg.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c, cfg.cert_file.c_str()) != 1) {
      throw std::runtime_error("cannot load certificate chain '" + cfg.cert_file +
                               "': " + detail::openssl_error_text());
    }
    if (SSL_CTX_use_PrivateKey_file(c, cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("cannot load private key '" + cfg.key_file + "': " + detail::openssl_error_text());
    }
    if (SSL_CTX_check_private_key(c) != 1) {
      throw std::runtime_error("private key '" + cfg.key_file + "' does not match certificate '" +
                               cfg.cert_file + "': " + detail::openssl_error_text());
    }
  }
  if (!cfg.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, cfg.ca_file.c_str(), nullptr) != 1) {
      throw std::runtime_error("cannot load CA bundle '" + cfg.ca_file + "': " + detail::openssl_error_text());
    }
  }
  if (!cfg.crl_file.empty()) {
    // Revocation: a certificate whose issuer's CRL lists it, or that no current
    // CRL covers, fails verification (X509_V_ERR_CERT_REVOKED, ..._UNABLE_TO_GET_CRL,
    // ..._CRL_HAS_EXPIRED) and so is not trusted.
    X509_STORE* store = SSL_CTX_get_cert_store(c);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr ||
        X509_load_crl_file(lookup, cfg.crl_file.c_str(), X509_FILETYPE_PEM) <= 0) {
      throw std::runtime_error("cannot load CRL file '" + cfg.crl_file + "': " + detail::openssl_error_text());
    }
    X509_STORE_set_flags(store, cfg.crl_check_chain ? (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL)
                                                    : X509_V_FLAG_CRL_CHECK);
  }
  return ctx;
}

// Client side: the server may staple an OCSP response (we ask for one). None:
// nothing to add (the CRL, if any, has spoken). One that says "revoked", or
// that does not verify, cover this certificate or is out of date: recorded, so
// the certificate is not trusted. The handshake goes on either way, as with
// the chain: the S2S layer refuses and says why.
// A response without nextUpdate is taken for this long after its thisUpdate,
// so an old "good" cannot be replayed forever after a revocation.
constexpr long kOcspMaxAgeS = 7L * 86400;

// The leaf's issuer: from the chain the handshake verified (an intermediate
// the peer sent), else from the side's trust store. On success `issuer` holds
// a reference the caller frees.
bool issuer_of(SSL* ssl, X509* leaf, STACK_OF(X509)* chain, X509_STORE* store, X509_STORE_CTX*& sctx,
               X509*& issuer) {
  STACK_OF(X509)* verified = SSL_get0_verified_chain(ssl);
  if (verified != nullptr && sk_X509_num(verified) >= 2 && X509_check_issued(sk_X509_value(verified, 1), leaf) == X509_V_OK) {
    issuer = sk_X509_value(verified, 1);
    X509_up_ref(issuer);
    return true;
  }
  return (sctx = X509_STORE_CTX_new()) != nullptr && X509_STORE_CTX_init(sctx, store, leaf, chain) == 1 &&
         X509_STORE_CTX_get1_issuer(&issuer, sctx, leaf) == 1;
}

std::string check_stapled_ocsp(SSL* ssl) {
  const unsigned char* p = nullptr;
  const long len = SSL_get_tlsext_status_ocsp_resp(ssl, &p);
  if (len <= 0 || p == nullptr) return {};
  std::string error;
  OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, len);
  OCSP_BASICRESP* basic = nullptr;
  X509_STORE_CTX* sctx = nullptr;
  X509* issuer = nullptr;
  OCSP_CERTID* id = nullptr;
  STACK_OF(X509)* signers = nullptr;
  X509* leaf = SSL_get0_peer_certificate(ssl);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  X509_STORE* store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
  int status = V_OCSP_CERTSTATUS_UNKNOWN, reason = 0;
  ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
  if (resp == nullptr) {
    error = "stapled OCSP response unreadable";
  } else if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    error = std::string("stapled OCSP response: ") + OCSP_response_status_str(OCSP_response_status(resp));
  } else if ((basic = OCSP_response_get1_basic(resp)) == nullptr) {
    error = "stapled OCSP response has no basic response";
  } else if (leaf == nullptr || !issuer_of(ssl, leaf, chain, store, sctx, issuer)) {
    error = "stapled OCSP response: the certificate's issuer is not trusted";
  } else if ((signers = sk_X509_new_null()) == nullptr || sk_X509_push(signers, issuer) <= 0 ||
             OCSP_basic_verify(basic, signers, store, 0) != 1) {
    error = "stapled OCSP response does not verify (" + detail::openssl_error_text("signature") + ")";
  } else if ((id = OCSP_cert_to_id(nullptr, leaf, issuer)) == nullptr ||
             OCSP_resp_find_status(basic, id, &status, &reason, &revoked_at, &this_update, &next_update) != 1) {
    error = "stapled OCSP response does not cover the certificate";
  } else if (OCSP_check_validity(this_update, next_update, 300, next_update != nullptr ? -1 : kOcspMaxAgeS) != 1) {
    error = "stapled OCSP response is out of date";
  } else if (status == V_OCSP_CERTSTATUS_REVOKED) {
    error = std::string("certificate revoked (stapled OCSP response, reason ") +
            (reason >= 0 ? OCSP_crl_reason_str(reason) : "unspecified") + ")";
  } else if (status != V_OCSP_CERTSTATUS_GOOD) {
    error = "stapled OCSP response: certificate status unknown";
  }
  ERR_clear_error();
  OCSP_CERTID_free(id);
  sk_X509_free(signers);   // issuer is freed below
  X509_free(issuer);
  X509_STORE_CTX_free(sctx);
  OCSP_BASICRESP_free(basic);
  OCSP_RESPONSE_free(resp);
  return error;
}

int record_stapled_ocsp(SSL* ssl, void* /*arg*/) {
  auto* rec = static_cast<detail::VerifyRecord*>(SSL_get_app_data(ssl));
  if (rec != nullptr) rec->ocsp_error = check_stapled_ocsp(ssl);
  return 1;
}

// The per-domain server contexts of a TlsContext and its own, for the SNI callback.
struct SniTable {
  std::map<std::string, std::unique_ptr<TlsContext>> by_domain;
  SSL_CTX* side = nullptr;
};

// Server side, at the ClientHello: the certificate of the domain the SNI
// names, or the side's for any other name; no SNI keeps the context's own.
// A name that is not a DNS host name (RFC 6066 §3: ASCII, letters, digits,
// hyphens and dots; IDNs as A-labels) is refused: it would otherwise reach the
// logs and the archive, which an unauthenticated client must not write into.
bool sni_is_host_name(std::string_view n) {
  if (n.empty() || n.size() > 253) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

int choose_by_sni(SSL* ssl, int* alert, void* arg) {
  const auto* table = static_cast<const SniTable*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  if (!sni_is_host_name(name)) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  std::string key = ascii_lower(name);
  if (key.size() > 1 && key.back() == '.') key.pop_back();   // "b.test." names b.test
  auto it = table->by_domain.find(key);
  SSL_CTX* chosen = it != table->by_domain.end() ? static_cast<SSL_CTX*>(it->second->native_server()) : table->side;
  if (SSL_get_SSL_CTX(ssl) != chosen && SSL_set_SSL_CTX(ssl, chosen) != chosen) return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

// Server side: XMPP S2S speaks "xmpp-server" (XEP-0368); a client offering
// only other protocols is talking to the wrong port.
int choose_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* /*arg*/) {
  static const unsigned char kProto[] = "\x0bxmpp-server";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kProto, sizeof kProto - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::string describe_tls(const TlsSessionInfo& info, bool direct) {
  std::string d = info.protocol + " " + info.cipher + (direct ? ", direct TLS" : ", STARTTLS");
  if (!info.alpn.empty()) d += ", ALPN " + info.alpn;
  if (!info.sni.empty()) d += ", SNI " + info.sni.substr(0, 255);
  if (!info.local_cert_sha256.empty()) d += ", our certificate sha256:" + info.local_cert_sha256;
  return d;
}

struct TlsContext::Impl {
  SslCtxPtr server;
  SslCtxPtr client;
  SniTable sni;   // per-domain certificates (empty in a per-domain context)
  void serve(SniTable* table) {
    SSL_CTX_set_tlsext_servername_callback(server.get(), choose_by_sni);
    SSL_CTX_set_tlsext_servername_arg(server.get(), table);
    SSL_CTX_set_alpn_select_cb(server.get(), choose_alpn, nullptr);
  }
};

TlsContext::TlsContext(const TlsConfig& cfg) : impl_(std::make_unique<Impl>()) {
  impl_->server = make_ctx(cfg, true);
  impl_->client = make_ctx(cfg, false);
  // Ask every server for a stapled OCSP response, and judge one if it comes.
  SSL_CTX_set_tlsext_status_type(impl_->client.get(), TLSEXT_STATUSTYPE_ocsp);
  SSL_CTX_set_tlsext_status_cb(impl_->client.get(), record_stapled_ocsp);
  for (const TlsIdentity& id : cfg.identities) {
    TlsConfig one = cfg;
    one.identities.clear();
    one.cert_file = id.cert_file;
    one.key_file = id.key_file;
    const std::string domain = ascii_lower(id.domain);
    if (domain.empty() || impl_->sni.by_domain.count(domain) != 0) {
      throw std::runtime_error("TLS: expected one certificate per domain, got '" + id.domain + "' " +
                               (domain.empty() ? "(empty)" : "twice"));
    }
    impl_->sni.by_domain.emplace(domain, std::make_unique<TlsContext>(one));
  }
  // Every server context chooses by SNI from this table (the per-domain ones
  // too: a session started with a domain's context still follows the SNI).
  impl_->sni.side = impl_->server.get();
  impl_->serve(&impl_->sni);
  for (auto& [domain, child] : impl_->sni.by_domain) child->impl_->serve(&impl_->sni);
}

TlsContext::~TlsContext() = default;

void* TlsContext::native_server() { return impl_->server.get(); }
void* TlsContext::native_client() { return impl_->client.get(); }

TlsContext& TlsContext::for_domain(std::string_view domain) {
  auto it = impl_->sni.by_domain.find(ascii_lower(domain));
  return it == impl_->sni.by_domain.end() ? *this : *it->second;
}

}  // namespace portcullis::net
