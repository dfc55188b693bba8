// JID parsing (RFC 7622 structure) and domain patterns.
#include <catch2/catch.hpp>

#include <string>

#include "guard/xmpp/jid.h"

using namespace portcullis::xmpp;

TEST_CASE("jid: valid forms", "[xmpp][jid]") {
  auto j = parse_jid("juliet@Example.COM/balcony");
  REQUIRE(j.has_value());
  CHECK(j->local == "juliet");
  CHECK(j->domain == "example.com");
  CHECK(j->resource == "balcony");
  CHECK(j->bare() == "juliet@example.com");
  CHECK(j->full() == "juliet@example.com/balcony");

  j = parse_jid("example.com");
  REQUIRE(j.has_value());
  CHECK(j->local.empty());
  CHECK(j->resource.empty());
  CHECK(j->full() == "example.com");

  j = parse_jid("example.com/res/with/slashes@and@ats");
  REQUIRE(j.has_value());
  CHECK(j->domain == "example.com");
  CHECK(j->resource == "res/with/slashes@and@ats");

  j = parse_jid("room@muc.example.com/Nick Name \xc3\xa9");
  REQUIRE(j.has_value());
  CHECK(j->resource == "Nick Name \xc3\xa9");

  CHECK(parse_jid("user@192.0.2.1")->domain == "192.0.2.1");
  CHECK(parse_jid("user@[2001:DB8::1]/r")->domain == "[2001:db8::1]");
  CHECK(parse_jid("example.com.")->domain == "example.com");
  CHECK(parse_jid("a_b.example")->domain == "a_b.example");
  CHECK(parse_jid("caf\xc3\xa9@example.com")->local == "caf\xc3\xa9");
  CHECK(parse_jid(std::string(1023, 'l') + "@example.com").has_value());
  CHECK(parse_jid("example.com/" + std::string(1023, 'r')).has_value());
  CHECK(*parse_jid("a@b/c") == Jid{"a", "b", "c"});
}

TEST_CASE("jid: malformed forms", "[xmpp][jid]") {
  for (const std::string bad : {
           "", "@example.com", "user@", "example.com/", "user@example.com/", "a@b@c",
           "us er@example.com", "us\"er@example.com", "us&er@example.com", "us'er@example.com",
           "us:er@example.com", "us<er@example.com", "us>er@example.com",
           "exa mple.com", "-bad.example", "bad-.example", "a..b", ".example", "ex!ample.com",
           "caf\xc3\xa9.example", "999.1.1.1", "1.2.3", "[::1", "[not-ipv6]", "[]",
           "user@example.com/\x01", "us\xc3(er@example.com"}) {
    INFO(bad);
    CHECK_FALSE(parse_jid(bad).has_value());
  }
  CHECK_FALSE(parse_jid(std::string(1024, 'l') + "@example.com").has_value());
  CHECK_FALSE(parse_jid("example.com/" + std::string(1024, 'r')).has_value());
  CHECK_FALSE(parse_jid(std::string(64, 'a') + ".example").has_value());
  std::string long_domain;
  for (int i = 0; i < 64; ++i) long_domain += "abc.";
  long_domain += "example";
  CHECK_FALSE(parse_jid(long_domain).has_value());
}

TEST_CASE("jid: normalize_domain and domain_matches", "[xmpp][jid]") {
  CHECK(normalize_domain("EXAMPLE.org") == "example.org");
  CHECK_FALSE(normalize_domain("bad domain").has_value());

  CHECK(domain_matches("example.org", "example.org"));
  CHECK(domain_matches("example.org", "EXAMPLE.ORG"));
  CHECK(domain_matches("Example.org", "example.org."));
  CHECK_FALSE(domain_matches("example.org", "sub.example.org"));
  CHECK(domain_matches("*.example.org", "sub.example.org"));
  CHECK(domain_matches("*.example.org", "a.b.example.org"));
  CHECK_FALSE(domain_matches("*.example.org", "example.org"));
  CHECK_FALSE(domain_matches("*.example.org", "badexample.org"));
  CHECK_FALSE(domain_matches("*.example.org", "example.org.evil"));
  CHECK_FALSE(domain_matches("*", "example.org"));
  CHECK_FALSE(domain_matches("*.", "example.org"));
  CHECK_FALSE(domain_matches("example.org", "bad domain"));
  CHECK(domain_matches("192.0.2.1", "192.0.2.1"));
  CHECK(domain_matches("[::1]", "[0:0::1]") == false);   // compared textually after lower-casing
}
