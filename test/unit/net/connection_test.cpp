// Connection, Listener and connect_tcp over loopback: plain echo, STARTTLS
// in place with certificate verdicts, TLS version floor, TLS 1.3 KeyUpdate,
// large transfers, connect errors. Loops run with run_once until a condition
// holds or 5 s of real time pass; no sleeping.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "guard/net/connection.h"
#include "guard/sandbox/seccomp.h"
#include "test/unit/sandbox/sandboxed_child.h"
#include "test_pki.h"

using namespace portcullis::net;
using namespace std::chrono_literals;
using portcullis::net::test::pki;

namespace {

template <class Pred>
bool run_until(EventLoop& loop, Pred pred, std::chrono::seconds limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    loop.run_once(20ms);
  }
  return true;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TlsConfig tls_config(const std::string& name, const std::string& ca, bool allow_tls12 = true) {
  TlsConfig c;
  if (!name.empty()) {
    c.cert_file = pki(name + ".pem");
    c.key_file = pki(name + ".key");
  }
  c.ca_file = pki(ca + ".pem");
  c.allow_tls12 = allow_tls12;
  return c;
}

// One end of a test connection: what it received and how it ended.
struct End {
  std::unique_ptr<Connection> conn;
  std::string data;
  std::optional<TlsSessionInfo> tls;
  std::optional<std::string> closed;
  int closed_calls = 0;
  int drained = 0;
  std::function<void(End&, std::string_view)> on_data;
};

// A listener on 127.0.0.1:0 and one client connected to it through connect_tcp.
struct Pair {
  SteadyClock clock;
  EventLoop loop{clock};
  std::unique_ptr<Listener> listener;
  End server;
  End client;

  Pair() {
    ::signal(SIGPIPE, SIG_IGN);  // OpenSSL writes with write(2); the daemon ignores SIGPIPE too
    listener = std::make_unique<Listener>(loop, Endpoint{"127.0.0.1", 0}, [this](int fd, Endpoint peer) {
      server.conn = std::make_unique<Connection>(loop, fd, peer);
      wire(server);
      server.conn->start();
    });
  }

  void wire(End& e) {
    Connection::Callbacks cb;
    cb.on_data = [&e](std::string_view d) {
      e.data.append(d);
      if (e.on_data) e.on_data(e, d);
    };
    cb.on_tls_established = [&e](const TlsSessionInfo& info) { e.tls = info; };
    cb.on_closed = [&e](const std::string& reason) {
      e.closed = reason;
      ++e.closed_calls;
    };
    cb.on_drained = [&e] { ++e.drained; };
    e.conn->set_callbacks(std::move(cb));
  }

  void connect() {
    std::string error = "pending";
    Endpoint to = listener->local();
    connect_tcp(loop, to, 2000ms, [&, to](int fd, std::string err) {
      error = err;
      if (fd >= 0) {
        client.conn = std::make_unique<Connection>(loop, fd, to);
        wire(client);
        client.conn->start();
      }
    });
    REQUIRE(run_until(loop, [&] { return client.conn && server.conn; }));
    REQUIRE(error.empty());
  }
};

// Runs the XMPP-like STARTTLS exchange in plain text, then upgrades both ends.
void starttls(Pair& p, TlsContext& server_ctx, TlsContext& client_ctx, const std::string& sni) {
  p.server.on_data = [&](End& e, std::string_view) {
    if (contains(e.data, "<starttls/>") && !e.conn->is_tls()) {
      e.conn->send("<proceed/>");
      e.conn->start_tls_server(server_ctx);
    }
  };
  p.client.on_data = [&](End& e, std::string_view) {
    if (contains(e.data, "<proceed/>") && !e.conn->is_tls()) e.conn->start_tls_client(client_ctx, sni);
  };
  p.client.conn->send("<stream><starttls/>");
  REQUIRE(run_until(p.loop, [&] {
    return (p.server.tls && p.client.tls) || p.server.closed || p.client.closed;
  }));
  p.server.on_data = nullptr;
  p.client.on_data = nullptr;
  p.server.data.clear();
  p.client.data.clear();
}

// One STARTTLS handshake over a fresh pair: what each end saw of the other.
struct Seen {
  TlsSessionInfo server, client;
};
Seen handshake(TlsContext& server_ctx, TlsContext& client_ctx, const std::string& sni) {
  Pair p;
  p.connect();
  starttls(p, server_ctx, client_ctx, sni);
  REQUIRE(p.server.tls);
  REQUIRE(p.client.tls);
  return {*p.server.tls, *p.client.tls};
}

// A connected pair upgraded with STARTTLS, each end trusting the other
// (server guard-low, client a.test, both under ca-low).
struct TrustedTls {
  TlsContext server_ctx{tls_config("guard-low", "ca-low")};
  TlsContext client_ctx{tls_config("a.test", "ca-low")};
  Pair p;
  TrustedTls() {
    p.connect();
    starttls(p, server_ctx, client_ctx, "b.test");
    REQUIRE(p.server.tls);
    REQUIRE(p.client.tls);
  }
};

}  // namespace

TEST_CASE("plaintext echo over loopback, graceful close on both ends", "[connection]") {
  Pair p;
  Endpoint local = p.listener->local();
  CHECK(local.host == "127.0.0.1");
  CHECK(local.port > 0);
  p.connect();
  p.server.on_data = [](End& e, std::string_view d) { e.conn->send(d); };
  p.client.conn->send("hello ");
  p.client.conn->send("world");
  REQUIRE(run_until(p.loop, [&] { return p.client.data == "hello world"; }));
  CHECK(p.server.data == "hello world");
  CHECK_FALSE(p.client.conn->is_tls());
  CHECK(p.client.conn->pending_output() == 0);

  p.client.conn->send("bye");
  p.client.conn->close_after_flush();
  p.client.conn->send("ignored after close_after_flush");
  REQUIRE(run_until(p.loop, [&] { return p.server.closed && p.client.closed; }));
  CHECK(p.server.data == "hello worldbye");
  CHECK(*p.server.closed == "peer closed");
  CHECK(*p.client.closed == "closed by us");
  CHECK(p.client.data == "hello worldbye");  // the echo of "bye" arrived before the close
  CHECK(p.server.closed_calls == 1);
  CHECK(p.client.closed_calls == 1);
  CHECK_FALSE(p.client.conn->is_open());
}

TEST_CASE("close_now from inside on_data ends the connection once; the owner is destroyed from a post", "[connection]") {
  Pair p;
  p.connect();
  bool destroyed = false;
  p.server.on_data = [&](End& e, std::string_view) {
    e.conn->close_now("policy says no");
    e.conn->close_now("twice");  // no second on_closed
    p.loop.post([&] {
      p.server.conn.reset();
      destroyed = true;
    });
  };
  p.client.conn->send("anything");
  REQUIRE(run_until(p.loop, [&] { return destroyed && p.client.closed.has_value(); }));
  CHECK(*p.server.closed == "policy says no");
  CHECK(p.server.closed_calls == 1);
  CHECK(*p.client.closed == "peer closed");
}

TEST_CASE("STARTTLS in place: trusted client and server certificates", "[connection][tls]") {
  TrustedTls t;
  Pair& p = t.p;
  REQUIRE_FALSE(p.server.closed);

  const TlsSessionInfo& s = *p.server.tls;
  CHECK((s.protocol == "TLSv1.3" || s.protocol == "TLSv1.2"));
  CHECK_FALSE(s.cipher.empty());
  CHECK(s.sni == "b.test");
  CHECK(s.peer_cert_present);
  CHECK(s.peer_cert_trusted);
  CHECK(s.verify_error.empty());
  CHECK(certificate_matches_domain(s.peer, "a.test"));
  CHECK(certificate_matches_domain(s.peer, "conference.a.test"));
  CHECK_FALSE(certificate_matches_domain(s.peer, "b.test"));
  CHECK(s.peer.sha256_fingerprint.size() == 64);

  const TlsSessionInfo& c = *p.client.tls;
  CHECK(c.protocol == s.protocol);
  CHECK(c.peer_cert_present);
  CHECK(c.peer_cert_trusted);
  CHECK(certificate_matches_domain(c.peer, "b.test"));
  CHECK_FALSE(certificate_matches_domain(c.peer, "a.test"));

  REQUIRE(p.server.conn->tls_info() != nullptr);
  CHECK(p.server.conn->tls_info()->peer_cert_trusted);
  CHECK(p.server.conn->is_tls_established());

  // Application data now flows through TLS, both ways.
  p.server.on_data = [](End& e, std::string_view d) { e.conn->send(d); };
  p.client.conn->send("<stream restart/>");
  REQUIRE(run_until(p.loop, [&] { return p.client.data == "<stream restart/>"; }));
  CHECK(p.server.data == "<stream restart/>");

  p.client.conn->close_after_flush();
  REQUIRE(run_until(p.loop, [&] { return p.server.closed && p.client.closed; }));
  CHECK(*p.server.closed == "peer closed");  // close_notify received
  CHECK(*p.client.closed == "closed by us");
}

TEST_CASE("SNI chooses a domain's own certificate; otherwise the side's", "[connection][tls][sni]") {
  TlsConfig sc = tls_config("guard-low", "ca-low");
  sc.identities.push_back({"conference.b.test", pki("conference.b.test-own.pem"), pki("conference.b.test-own.key")});
  TlsContext server_ctx(sc);
  TlsContext client_ctx(tls_config("a.test", "ca-low"));
  const std::string own = certificate_identities_from_file(pki("conference.b.test-own.pem")).sha256_fingerprint;
  const std::string side = certificate_identities_from_file(pki("guard-low.pem")).sha256_fingerprint;
  REQUIRE(own != side);

  SECTION("SNI of the domain, any case: its certificate, trusted") {
    for (const char* sni : {"conference.b.test", "Conference.B.Test"}) {
      const Seen s = handshake(server_ctx, client_ctx, sni);
      CHECK(s.client.peer.sha256_fingerprint == own);
      CHECK(s.client.peer_cert_trusted);
      CHECK(s.server.local_cert_sha256 == own);
      CHECK(s.server.sni == sni);
      CHECK(s.server.peer_cert_trusted);   // client authentication unchanged by the switch
    }
  }
  SECTION("another SNI, or none: the side's certificate") {
    for (const char* sni : {"b.test", ""}) {
      const Seen s = handshake(server_ctx, client_ctx, sni);
      CHECK(s.client.peer.sha256_fingerprint == side);
      CHECK(s.server.local_cert_sha256 == side);
      CHECK(s.client.sni == sni);
    }
  }
  SECTION("started with the domain's context (the stream's 'to'): SNI still wins") {
    TlsContext& dom = server_ctx.for_domain("CONFERENCE.b.test");
    REQUIRE(&dom != &server_ctx);
    CHECK(handshake(dom, client_ctx, "").client.peer.sha256_fingerprint == own);
    CHECK(handshake(dom, client_ctx, "b.test").client.peer.sha256_fingerprint == side);
  }
  SECTION("a domain without a certificate of its own is the context itself") {
    CHECK(&server_ctx.for_domain("b.test") == &server_ctx);
    CHECK(&server_ctx.for_domain("") == &server_ctx);
  }
  SECTION("a client presents its local domain's certificate") {
    TlsConfig cc = tls_config("", "ca-low");
    cc.identities.push_back({"a.test", pki("a.test.pem"), pki("a.test.key")});
    TlsContext no_default(cc);
    const Seen bare = handshake(server_ctx, no_default, "b.test");
    CHECK_FALSE(bare.server.peer_cert_present);
    const Seen as_a = handshake(server_ctx, no_default.for_domain("a.test"), "b.test");
    CHECK(as_a.server.peer_cert_trusted);
    CHECK(certificate_matches_domain(as_a.server.peer, "a.test"));
  }
  SECTION("two certificates for one domain are refused at load") {
    TlsConfig twice = sc;
    twice.identities.push_back({"CONFERENCE.B.TEST", pki("guard-low.pem"), pki("guard-low.key")});
    CHECK_THROWS_WITH(TlsContext(twice), Catch::Contains("expected one certificate per domain"));
  }
}

TEST_CASE("direct TLS ALPN: xmpp-server is agreed, another protocol alone is refused", "[connection][tls][alpn]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  TlsContext client_ctx(tls_config("a.test", "ca-low"));
  auto direct = [&](const char* alpn) {
    auto p = std::make_unique<Pair>();
    p->connect();
    p->server.conn->start_tls_server(server_ctx);
    p->client.conn->start_tls_client(client_ctx, "b.test", alpn);
    REQUIRE(run_until(p->loop, [&] {
      return (p->server.tls && p->client.tls) || p->server.closed || p->client.closed;
    }));
    return p;
  };
  SECTION("xmpp-server") {
    auto p = direct("xmpp-server");
    REQUIRE(p->server.tls);
    REQUIRE(p->client.tls);
    CHECK(p->server.tls->alpn == "xmpp-server");
    CHECK(p->client.tls->alpn == "xmpp-server");
    CHECK(describe_tls(*p->server.tls, true).find(", direct TLS, ALPN xmpp-server, SNI b.test, our certificate sha256:") !=
          std::string::npos);
  }
  SECTION("none offered (STARTTLS peers): no ALPN, handshake fine") {
    auto p = direct("");
    REQUIRE(p->server.tls);
    CHECK(p->server.tls->alpn.empty());
  }
  SECTION("h2 only: the wrong port, refused") {
    auto p = direct("h2");
    REQUIRE(run_until(p->loop, [&] { return p->server.closed && p->client.closed; }));
    CHECK_FALSE(p->server.tls);
    CHECK_THAT(*p->server.closed, Catch::StartsWith("TLS handshake failed"));
    CHECK_THAT(*p->client.closed, Catch::Contains("no application protocol"));
    CHECK_FALSE(p->server.conn->handshake_ended_by_peer());   // a refusal, not a peer leaving
  }
}

TEST_CASE("a peer that leaves during the TLS handshake is told apart from a refused handshake", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  Pair p;
  p.connect();
  p.server.conn->start_tls_server(server_ctx);
  SECTION("EOF before any byte (a probe)") {
    p.client.conn->close_now("probe");
  }
  SECTION("EOF after half a ClientHello") {
    p.client.conn->send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
    p.client.conn->close_after_flush();
  }
  REQUIRE(run_until(p.loop, [&] { return p.server.closed.has_value(); }));
  CHECK_THAT(*p.server.closed, Catch::StartsWith("TLS handshake failed"));
  CHECK(p.server.conn->handshake_ended_by_peer());
}

TEST_CASE("an SNI that is not a host name is refused; a trailing dot names the domain", "[connection][tls][sni]") {
  TlsConfig sc = tls_config("guard-low", "ca-low");
  sc.identities.push_back({"conference.b.test", pki("conference.b.test-own.pem"), pki("conference.b.test-own.key")});
  TlsContext server_ctx(sc);
  TlsContext client_ctx(tls_config("a.test", "ca-low"));
  auto direct = [&](const std::string& sni) {
    auto p = std::make_unique<Pair>();
    p->connect();
    p->server.conn->start_tls_server(server_ctx);
    p->client.conn->start_tls_client(client_ctx, sni, "xmpp-server");
    REQUIRE(run_until(p->loop, [&] {
      return (p->server.tls && p->client.tls) || (p->server.closed && p->client.closed);
    }));
    return p;
  };
  SECTION("a newline (a forged log line), a space, a NUL-free control byte: refused") {
    for (const std::string& sni : std::vector<std::string>{"x\ninjected: y.test", "b test", "b\x01.test", std::string(254, 'a')}) {
      INFO(sni);
      auto p = direct(sni);
      CHECK_FALSE(p->server.tls);
      REQUIRE(p->client.closed);
      CHECK_THAT(*p->client.closed, Catch::Contains("unrecognized name"));
    }
  }
  SECTION("conference.b.test. (a trailing dot): that domain's certificate") {
    auto p = direct("conference.b.test.");
    REQUIRE(p->client.tls);
    CHECK(p->client.tls->peer.sha256_fingerprint ==
          certificate_identities_from_file(pki("conference.b.test-own.pem")).sha256_fingerprint);
  }
}

TEST_CASE("a paused reader holds its sender back; resumed, every byte arrives in order", "[connection][tls][flow]") {
  TrustedTls t;
  Pair& p = t.p;
  // The server stops reading in the middle of its first burst (as an edge
  // does when its stream's window is full): nothing more is delivered.
  p.server.on_data = [](End& e, std::string_view) { e.conn->set_reading(false); };
  std::string big;
  for (int i = 0; big.size() < 8 * 1024 * 1024; ++i) big += "<message id='" + std::to_string(i) + "'/>";
  p.client.conn->send(big);
  REQUIRE(run_until(p.loop, [&] { return !p.server.data.empty(); }));
  const std::size_t first = p.server.data.size();
  CHECK_FALSE(p.server.conn->reading());
  p.client.conn->arm_drain(0);
  for (int i = 0; i < 50; ++i) p.loop.run_once(Duration(5));
  CHECK(p.server.data.size() == first);
  // TCP holds the rest back at the sender: its buffer does not drain.
  CHECK(p.client.conn->pending_output() > 0);
  CHECK(p.client.drained == 0);
  p.server.on_data = nullptr;
  p.server.conn->set_reading(true);
  REQUIRE(run_until(p.loop, [&] { return p.server.data.size() == big.size(); }));
  CHECK(p.server.data == big);
  REQUIRE(run_until(p.loop, [&] { return p.client.drained == 1; }));
  CHECK(p.client.conn->pending_output() == 0);
  CHECK_FALSE(p.server.closed);
}

TEST_CASE("a paused plain reader loses nothing the peer sent before it closed", "[connection][flow]") {
  Pair p;
  p.connect();
  p.server.conn->set_reading(false);
  p.client.conn->send("bytes before the close");
  p.client.conn->close_after_flush();
  for (int i = 0; i < 40; ++i) p.loop.run_once(Duration(5));
  // Paused: neither the bytes nor the FIN behind them are read (and the loop
  // does not spin on them); they wait in the kernel.
  CHECK(p.server.data.empty());
  CHECK_FALSE(p.server.closed.has_value());
  p.server.conn->set_reading(true);
  REQUIRE(run_until(p.loop, [&] { return p.server.closed.has_value(); }));
  CHECK(p.server.data == "bytes before the close");
}

TEST_CASE("STARTTLS: an impostor's certificate is accepted at TLS level but recorded untrusted", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  TlsContext rogue_ctx(tls_config("rogue-a.test", "ca-low"));
  Pair p;
  p.connect();
  starttls(p, server_ctx, rogue_ctx, "b.test");
  REQUIRE(p.server.tls);
  const TlsSessionInfo& s = *p.server.tls;
  CHECK(s.peer_cert_present);
  CHECK_FALSE(s.peer_cert_trusted);
  CHECK_FALSE(s.verify_error.empty());
  CHECK(contains(s.verify_error, "issuer"));
  // The names still match: only the chain verdict tells the impostor apart.
  CHECK(certificate_matches_domain(s.peer, "a.test"));
  REQUIRE(p.client.tls);
  CHECK(p.client.tls->peer_cert_trusted);  // the guard's cert is fine for the rogue
}

TEST_CASE("STARTTLS: with a CRL, a revoked peer certificate is recorded untrusted, as revoked", "[connection][tls][crl]") {
  auto with_crl = [](const std::string& crl, bool chain) {
    TlsConfig c = tls_config("guard-low", "ca-low");
    c.crl_file = pki(crl);
    c.crl_check_chain = chain;
    return c;
  };
  TlsContext client_ctx(tls_config("a.test", "ca-low"));
  SECTION("a CRL that revokes nothing: trusted") {
    TlsContext server_ctx(with_crl("ca-low.crl", true));
    CHECK(handshake(server_ctx, client_ctx, "b.test").server.peer_cert_trusted);
  }
  for (bool chain : {true, false}) {
    DYNAMIC_SECTION("the CRL revokes a.test (crl-check " << (chain ? "chain" : "leaf") << ")") {
      TlsContext server_ctx(with_crl("ca-low-revoked-a.test.crl", chain));
      const TlsSessionInfo seen = handshake(server_ctx, client_ctx, "b.test").server;
      CHECK(seen.peer_cert_present);
      CHECK_FALSE(seen.peer_cert_trusted);
      CHECK(contains(seen.verify_error, "certificate revoked"));
    }
  }
  SECTION("a peer of another CA with no CRL of its issuer: not trusted under crl-check chain") {
    // ca-high's leaf, trusted CA bundle ca-high, but only ca-low's CRL loaded.
    TlsConfig c = tls_config("guard-high", "ca-high");
    c.crl_file = pki("ca-low.crl");
    TlsContext server_ctx(c);
    TlsContext b_ctx(tls_config("b.test", "ca-high"));
    const TlsSessionInfo seen = handshake(server_ctx, b_ctx, "a.test").server;
    CHECK_FALSE(seen.peer_cert_trusted);
    CHECK(contains(seen.verify_error, "CRL"));
  }
  SECTION("a file that is not a CRL is a load error naming it") {
    TlsConfig c = tls_config("guard-low", "ca-low");
    c.crl_file = pki("ca-low.pem");
    try {
      TlsContext bad(c);
      FAIL("loaded a certificate as a CRL");
    } catch (const std::runtime_error& e) {
      CHECK(contains(e.what(), "cannot load CRL file"));
      CHECK(contains(e.what(), "ca-low.pem"));
    }
  }
}

namespace {

// The server staples the bytes at `arg` (a std::string) as its OCSP response.
int staple(SSL* ssl, void* arg) {
  const auto* der = static_cast<const std::string*>(arg);
  auto* copy = static_cast<unsigned char*>(OPENSSL_memdup(der->data(), der->size()));
  if (copy == nullptr) return SSL_TLSEXT_ERR_ALERT_FATAL;
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(der->size()));
  return SSL_TLSEXT_ERR_OK;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("STARTTLS: an OCSP response the server staples is judged; revoked means untrusted", "[connection][tls][crl][ocsp]") {
  // We dial a.test (the edge as TLS client, as for an outbound link); a.test staples.
  TlsContext client_ctx(tls_config("guard-low", "ca-low"));
  TlsContext server_ctx(tls_config("a.test", "ca-low"));
  std::string response;
  auto* server = static_cast<SSL_CTX*>(server_ctx.native_server());
  SSL_CTX_set_tlsext_status_cb(server, staple);
  SSL_CTX_set_tlsext_status_arg(server, &response);
  auto dial = [&]() {
    const TlsSessionInfo seen = handshake(server_ctx, client_ctx, "a.test").client;
    CHECK(seen.peer_cert_present);
    return seen;
  };
  SECTION("stapled good: trusted") {
    response = file_bytes(pki("a.test-ocsp-good.der"));
    REQUIRE_FALSE(response.empty());
    const auto info = dial();
    CHECK(info.peer_cert_trusted);
    CHECK(info.verify_error.empty());
  }
  SECTION("stapled revoked: untrusted, with the reason") {
    response = file_bytes(pki("a.test-ocsp-revoked.der"));
    const auto info = dial();
    CHECK_FALSE(info.peer_cert_trusted);
    CHECK(contains(info.verify_error, "certificate revoked (stapled OCSP response, reason keyCompromise)"));
  }
  SECTION("a response signed by an untrusted CA: untrusted") {
    response = file_bytes(pki("a.test-ocsp-rogue.der"));
    const auto info = dial();
    CHECK_FALSE(info.peer_cert_trusted);
    CHECK(contains(info.verify_error, "stapled OCSP response does not verify"));
  }
  SECTION("garbage stapled: untrusted") {
    response = "not DER at all";
    const auto info = dial();
    CHECK_FALSE(info.peer_cert_trusted);
    CHECK(contains(info.verify_error, "stapled OCSP response unreadable"));
  }
  SECTION("nothing stapled: the chain alone decides (trusted)") {
    SSL_CTX_set_tlsext_status_cb(server, nullptr);
    const auto info = dial();
    CHECK(info.peer_cert_trusted);
  }
}

TEST_CASE("STARTTLS under the edge's seccomp allow-list: the side's CRL still refuses a revoked peer",
          "[connection][tls][crl][sandbox]") {
  // An edge loads its CRL with its TLS context, before the allow-list goes on
  // (edge_main.cpp); verifying a peer afterwards must need no file (open is
  // EACCES there), or revocation would quietly stop working.
  const int code = portcullis::sandbox::testing::in_child([] { return true; }, [] {
    try {
      TlsConfig with_crl = tls_config("guard-low", "ca-low");
      with_crl.crl_file = pki("ca-low-revoked-a.test.crl");
      TlsContext server_ctx(with_crl);
      TlsContext client_ctx(tls_config("a.test", "ca-low"));
      Pair p;   // the listener is bound before the filter, as an edge's are
      std::string err;
      if (!portcullis::sandbox::install_edge_allowlist({}, err)) return 100;
      p.connect();
      starttls(p, server_ctx, client_ctx, "b.test");
      if (!p.server.tls || !p.server.tls->peer_cert_present) return 1;
      if (p.server.tls->peer_cert_trusted) return 2;
      return contains(p.server.tls->verify_error, "certificate revoked") ? 0 : 3;
    } catch (...) {   // a failed REQUIRE in the child, or a load error
      return 4;
    }
  });
  CHECK(code == 0);
}

TEST_CASE("STARTTLS: client verifies the server chain and records a wrong CA", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  TlsContext client_ctx(tls_config("a.test", "ca-high"));  // trusts the wrong CA
  Pair p;
  p.connect();
  starttls(p, server_ctx, client_ctx, "b.test");
  REQUIRE(p.client.tls);
  CHECK(p.client.tls->peer_cert_present);
  CHECK_FALSE(p.client.tls->peer_cert_trusted);
  CHECK_FALSE(p.client.tls->verify_error.empty());
}

TEST_CASE("STARTTLS: a client without certificate is recorded as such; TLS 1.3 only", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low", /*allow_tls12=*/false));
  TlsContext client_ctx(tls_config("", "ca-low"));
  Pair p;
  p.connect();
  starttls(p, server_ctx, client_ctx, "b.test");
  REQUIRE(p.server.tls);
  CHECK(p.server.tls->protocol == "TLSv1.3");
  CHECK_FALSE(p.server.tls->peer_cert_present);
  CHECK_FALSE(p.server.tls->peer_cert_trusted);
  CHECK(p.server.tls->peer.dns_names.empty());
}

TEST_CASE("a large transfer through TLS arrives intact in both directions", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  TlsContext client_ctx(tls_config("a.test", "ca-low"));
  Pair p;
  p.connect();
  starttls(p, server_ctx, client_ctx, "b.test");
  REQUIRE(p.server.tls);

  auto pattern = [](std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    unsigned x = seed;
    for (auto& c : s) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 16);
    }
    return s;
  };
  const std::string down = pattern(6 * 1024 * 1024 + 17, 1);
  const std::string up = pattern(5 * 1024 * 1024 + 3, 2);
  // Several sends, so the buffer grows while SSL_write is mid-record.
  for (std::size_t off = 0; off < down.size(); off += 1000003) p.server.conn->send(std::string_view(down).substr(off, 1000003));
  p.client.conn->send(up);
  CHECK(p.server.conn->pending_output() > 0);
  REQUIRE(run_until(p.loop, [&] {
    return (p.client.data.size() >= down.size() && p.server.data.size() >= up.size()) || p.client.closed ||
           p.server.closed;
  }, 20s));
  CHECK_FALSE(p.client.closed);
  CHECK_FALSE(p.server.closed);
  CHECK(p.client.data.size() == down.size());
  CHECK(p.client.data == down);
  CHECK(p.server.data.size() == up.size());
  CHECK(p.server.data == up);
  CHECK(p.server.conn->pending_output() == 0);
}

namespace {

// A blocking OpenSSL client in a thread (the test's foreign peer).
struct RawClient {
  std::thread thread;
  std::string result;

  static int connect_blocking(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
};

}  // namespace

TEST_CASE("a TLS 1.1 client is refused", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  Pair p;
  p.server.on_data = nullptr;
  // Direct TLS on accept (no STARTTLS exchange needed for this check).
  p.listener = std::make_unique<Listener>(p.loop, Endpoint{"127.0.0.1", 0}, [&](int fd, Endpoint peer) {
    p.server.conn = std::make_unique<Connection>(p.loop, fd, peer);
    p.wire(p.server);
    p.server.conn->start();
    p.server.conn->start_tls_server(server_ctx);
  });
  int port = p.listener->local().port;
  int client_rc = 99;
  std::thread client([&] {
    int fd = RawClient::connect_blocking(port);
    if (fd < 0) return;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    client_rc = SSL_connect(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
  });
  bool done = run_until(p.loop, [&] { return p.server.closed.has_value(); });
  client.join();
  REQUIRE(done);
  CHECK(client_rc != 1);
  CHECK_FALSE(p.server.tls);
  CHECK(contains(*p.server.closed, "TLS handshake failed"));
  CHECK(contains(*p.server.closed, "unsupported protocol"));
}

TEST_CASE("TLS 1.3 KeyUpdate (post-handshake message) from the peer is handled", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  Pair p;
  p.listener = std::make_unique<Listener>(p.loop, Endpoint{"127.0.0.1", 0}, [&](int fd, Endpoint peer) {
    p.server.conn = std::make_unique<Connection>(p.loop, fd, peer);
    p.wire(p.server);
    p.server.on_data = [](End& e, std::string_view d) { e.conn->send(d); };
    p.server.conn->start();
    p.server.conn->start_tls_server(server_ctx);
  });
  int port = p.listener->local().port;
  std::string echoed;
  bool client_done = false;
  std::thread client([&] {
    int fd = RawClient::connect_blocking(port);
    if (fd < 0) return;
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    auto read_n = [&](std::size_t n) {
      char buf[256];
      while (echoed.size() < n) {
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0) return;
        echoed.append(buf, static_cast<std::size_t>(r));
      }
    };
    if (SSL_connect(ssl) == 1) {
      SSL_write(ssl, "one;", 4);
      read_n(4);
      SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED);  // server must answer with its own
      SSL_write(ssl, "two;", 4);
      read_n(8);
      SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED);
      SSL_write(ssl, "three;", 6);
      read_n(14);
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
    client_done = true;
  });
  bool done = run_until(p.loop, [&] { return p.server.closed.has_value(); });
  client.join();
  REQUIRE(done);
  CHECK(client_done);
  CHECK(echoed == "one;two;three;");
  CHECK(p.server.data == "one;two;three;");
  REQUIRE(p.server.tls);
  CHECK(p.server.tls->protocol == "TLSv1.3");
  CHECK(*p.server.closed == "peer closed");
}

TEST_CASE("a peer that drops the connection mid-handshake gives a readable reason", "[connection][tls]") {
  TlsContext server_ctx(tls_config("guard-low", "ca-low"));
  Pair p;
  p.connect();
  p.server.conn->start_tls_server(server_ctx);
  p.client.conn->send("this is not a ClientHello\r\n");
  REQUIRE(run_until(p.loop, [&] { return p.server.closed.has_value(); }));
  CHECK(contains(*p.server.closed, "TLS handshake failed: "));
  CHECK(p.server.closed_calls == 1);
}

TEST_CASE("connect_tcp to a closed port reports the error", "[connect]") {
  SteadyClock clock;
  EventLoop loop(clock);
  // Find a free port: bind without listening, note the port, close.
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  socklen_t len = sizeof sa;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  int port = ntohs(sa.sin_port);
  ::close(s);

  std::optional<std::pair<int, std::string>> result;
  connect_tcp(loop, Endpoint{"127.0.0.1", port}, 2000ms, [&](int fd, std::string err) { result.emplace(fd, err); });
  CHECK_FALSE(result);  // never completes synchronously
  REQUIRE(run_until(loop, [&] { return result.has_value(); }));
  CHECK(result->first == -1);
  CHECK(contains(result->second, "ECONNREFUSED"));
  CHECK(contains(result->second, "127.0.0.1:" + std::to_string(port)));
}

TEST_CASE("connect_tcp and Listener refuse host names without resolving them", "[connect]") {
  SteadyClock clock;
  EventLoop loop(clock);
  std::optional<std::pair<int, std::string>> result;
  connect_tcp(loop, Endpoint{"localhost", 5269}, 2000ms, [&](int fd, std::string err) { result.emplace(fd, err); });
  CHECK_FALSE(result);
  loop.run_once(0ms);
  REQUIRE(result);
  CHECK(result->first == -1);
  CHECK(contains(result->second, "not a numeric IP address"));
  CHECK(contains(result->second, "localhost"));

  CHECK_THROWS_WITH(Listener(loop, Endpoint{"localhost", 0}, [](int, Endpoint) {}),
                    Catch::Contains("not a numeric IP address"));
}

TEST_CASE("IPv6 loopback works too", "[connection]") {
  SteadyClock clock;
  EventLoop loop(clock);
  std::unique_ptr<Listener> listener;
  try {
    listener = std::make_unique<Listener>(loop, Endpoint{"::1", 0}, [](int fd, Endpoint) { ::close(fd); });
  } catch (const std::runtime_error& e) {
    WARN("no IPv6 loopback here: " << e.what());
    return;
  }
  Endpoint at = listener->local();
  CHECK(at.host == "::1");
  CHECK(at.to_string() == "[::1]:" + std::to_string(at.port));
  std::optional<std::pair<int, std::string>> result;
  connect_tcp(loop, at, 2000ms, [&](int fd, std::string err) { result.emplace(fd, err); });
  REQUIRE(run_until(loop, [&] { return result.has_value(); }));
  CHECK(result->second.empty());
  REQUIRE(result->first >= 0);
  ::close(result->first);
}

TEST_CASE("connect_tcp times out per the loop's clock", "[connect]") {
  // A listener with a full backlog: the kernel drops further SYNs, so a
  // connect stays pending. Time is a fake clock: no real waiting.
  struct FakeClock final : ClockSource {
    TimePoint t{};
    TimePoint now() const override { return t; }
  } clock;
  EventLoop loop(clock);
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(ls, 0) == 0);
  socklen_t len = sizeof sa;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len);
  int port = ntohs(sa.sin_port);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    [[maybe_unused]] int r = ::connect(f, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    fillers.push_back(f);
  }

  std::optional<std::pair<int, std::string>> result;
  connect_tcp(loop, Endpoint{"127.0.0.1", port}, 3000ms, [&](int fd, std::string err) { result.emplace(fd, err); });
  loop.run_once(0ms);
  loop.run_once(0ms);
  CHECK_FALSE(result);
  clock.t += 2999ms;
  loop.run_once(0ms);
  CHECK_FALSE(result);
  clock.t += 1ms;
  loop.run_once(0ms);
  REQUIRE(result);
  CHECK(result->first == -1);
  CHECK(contains(result->second, "connect timeout"));
  for (int f : fillers) ::close(f);
  ::close(ls);
}
