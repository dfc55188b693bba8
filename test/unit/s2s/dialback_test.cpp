#include <catch2/catch.hpp>

#include "guard/s2s/dialback.h"
#include "guard/s2s/peering.h"
#include "guard/s2s/session_host.h"

using namespace portcullis;

TEST_CASE("dialback keys match the XEP-0185 and XEP-0220 vectors", "[s2s][dialback]") {
  // protocols.md §3.5: the HMAC key is the hex string of SHA-256(secret).
  CHECK(s2s::dialback_key("s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F") ==
        "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
  CHECK(s2s::dialback_key("s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F") ==
        "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3");
}

TEST_CASE("dialback keys depend on every input", "[s2s][dialback]") {
  const auto k = s2s::dialback_key("secret-secret-secret", "a.test", "b.test", "id1");
  CHECK(k != s2s::dialback_key("secret-secret-secreT", "a.test", "b.test", "id1"));
  CHECK(k != s2s::dialback_key("secret-secret-secret", "b.test", "a.test", "id1"));
  CHECK(k != s2s::dialback_key("secret-secret-secret", "a.test", "b.test", "id2"));
  CHECK(s2s::keys_equal(k, k));
  CHECK_FALSE(s2s::keys_equal(k, k.substr(1)));
  std::string flipped = k;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  CHECK_FALSE(s2s::keys_equal(k, flipped));
}

TEST_CASE("stream ids are 128 random bits in hex and do not repeat", "[s2s]") {
  const auto a = s2s::random_stream_id();
  const auto b = s2s::random_stream_id();
  CHECK(a.size() == 32);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

TEST_CASE("base64 for SASL EXTERNAL authzid", "[s2s]") {
  CHECK(s2s::base64_encode("capulet.lit") == "Y2FwdWxldC5saXQ=");
  std::string out;
  REQUIRE(s2s::base64_decode("Y2FwdWxldC5saXQ=", out));
  CHECK(out == "capulet.lit");
  REQUIRE(s2s::base64_decode("YS50ZXN0", out));
  CHECK(out == "a.test");
  CHECK_FALSE(s2s::base64_decode("abc", out));
  CHECK_FALSE(s2s::base64_decode("a*==", out));
}

TEST_CASE("peering table: first matching row wins, no row denies", "[s2s][peering]") {
  config::Peer exact;
  exact.domain_pattern = "a.test";
  exact.host = "127.0.0.2";
  config::Peer sub;
  sub.domain_pattern = "*.a.test";
  sub.host = "127.0.0.9";
  s2s::PeeringTable t({exact, sub});
  REQUIRE(t.find("a.test") != nullptr);
  CHECK(t.find("a.test")->host == "127.0.0.2");
  REQUIRE(t.find("conference.a.test") != nullptr);
  CHECK(t.find("conference.a.test")->host == "127.0.0.9");
  CHECK(t.find("b.test") == nullptr);
  CHECK(t.find("evila.test") == nullptr);
}

TEST_CASE("our stream header binds the stream and dialback prefixes", "[s2s]") {
  const auto h = s2s::s2s_stream_header("b.test", "a.test", "abc");
  CHECK(h.find("xmlns='jabber:server'") != std::string::npos);
  CHECK(h.find("xmlns:db='jabber:server:dialback'") != std::string::npos);
  CHECK(h.find("from='b.test' to='a.test' id='abc' version='1.0'") != std::string::npos);
}
