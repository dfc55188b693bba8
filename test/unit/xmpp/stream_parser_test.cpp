// Happy paths of the stream parser: header, chunking, keepalives, close,
// restart, namespaces carried onto top-level elements, several parsers at once.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "guard/xmpp/stream_parser.h"
#include "parser_test_support.h"

using namespace portcullis::xmpp;
using portcullis::xmpp::test::kHeader;
using portcullis::xmpp::test::Recorder;

namespace {

const std::string kStanzas =
    "<message from='u@a.example/r' to='v@b.example' type='chat' id='m1'>"
    "<body>Hello &amp; &lt;welcome&gt; &#x263A; caf\xc3\xa9</body></message>"
    "\n "
    "<iq from='a.example' to='b.example' type='get' id='i1'>"
    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    " "
    "<db:result from='a.example' to='b.example'>c2VjcmV0</db:result>"
    "<presence from='u@a.example/r' to='room@muc.b.example/nick'>"
    "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>";

std::vector<std::string> serialize_all(const Recorder& r) {
  std::vector<std::string> out;
  for (const auto& e : r.elements) out.push_back(e.serialize());
  return out;
}

}  // namespace

TEST_CASE("stream parser: header fields", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader));
  REQUIRE(r.opens.size() == 1);
  const StreamHeader& h = r.opens[0];
  CHECK(h.content_ns == "jabber:server");
  CHECK(h.from == "a.example");
  CHECK(h.to == "b.example");
  CHECK(h.id == "s1");
  CHECK(h.version == "1.0");
  CHECK(h.lang == "en");
  CHECK(h.has_dialback_ns);
  REQUIRE(h.namespace_decls.size() == 3);
  CHECK(h.namespace_decls[0].prefix.empty());
  CHECK(h.namespace_decls[0].uri == "jabber:server");
  CHECK(h.namespace_decls[1].prefix == "stream");
  CHECK(h.namespace_decls[2].prefix == "db");
  CHECK(r.errors.empty());
}

TEST_CASE("stream parser: dialback namespace under another prefix, none at all",
          "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed("<s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams' "
                 "xmlns:dbk='jabber:server:dialback' to='b.example'>"));
  REQUIRE(r.opens.size() == 1);
  CHECK(r.opens[0].has_dialback_ns);
  CHECK(r.opens[0].from.empty());
  REQUIRE(p.feed("<dbk:verify from='a.example' to='b.example' id='x'>k</dbk:verify></s:stream>"));
  REQUIRE(r.elements.size() == 1);
  CHECK(r.elements[0].serialize() ==
        "<dbk:verify xmlns:dbk='jabber:server:dialback' from='a.example' to='b.example' "
        "id='x'>k</dbk:verify>");
  CHECK(r.closes == 1);

  Recorder r2;
  StreamParser p2(r2);
  REQUIRE(p2.feed("<stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams'>"));
  REQUIRE(r2.opens.size() == 1);
  CHECK_FALSE(r2.opens[0].has_dialback_ns);
}

TEST_CASE("stream parser: content namespace is a constructor option", "[xmpp][parser]") {
  const std::string client_header =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
  Recorder r;
  StreamParser p(r, {}, kNsClient);
  REQUIRE(p.feed(client_header + "<message to='x@y'/>"));
  REQUIRE(r.elements.size() == 1);
  CHECK(r.elements[0].ns() == "jabber:client");
  CHECK(r.elements[0].serialize() == "<message xmlns='jabber:client' to='x@y'/>");

  Recorder r2;
  StreamParser p2(r2);   // expects jabber:server
  CHECK_FALSE(p2.feed(client_header));
  REQUIRE(r2.errors.size() == 1);
  CHECK(r2.errors[0].first == StreamErrorCondition::InvalidNamespace);
}

TEST_CASE("stream parser: stanzas are self-contained and keep prefixes", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader + kStanzas));
  REQUIRE(r.errors.empty());
  const auto s = serialize_all(r);
  REQUIRE(s.size() == 4);
  CHECK(s[0] ==
        "<message xmlns='jabber:server' from='u@a.example/r' to='v@b.example' type='chat' "
        "id='m1'><body>Hello &amp; &lt;welcome&gt; \xe2\x98\xba caf\xc3\xa9</body></message>");
  CHECK(s[1] ==
        "<iq xmlns='jabber:server' from='a.example' to='b.example' type='get' id='i1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  CHECK(s[2] ==
        "<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>"
        "c2VjcmV0</db:result>");
  CHECK(r.elements[2].prefix() == "db");
  CHECK(r.elements[2].ns() == "jabber:server:dialback");
  CHECK(s[3] ==
        "<presence xmlns='jabber:server' from='u@a.example/r' to='room@muc.b.example/nick'>"
        "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>");
  CHECK(r.elements[0].find_child("body")->text() == "Hello & <welcome> \xe2\x98\xba caf\xc3\xa9");
  // Each one parses on its own to the same bytes.
  for (const auto& bytes : s) {
    auto again = parse_element(bytes);
    REQUIRE(again.has_value());
    CHECK(again->serialize() == bytes);
  }
}

TEST_CASE("stream parser: arbitrary chunk boundaries give the same elements", "[xmpp][parser]") {
  const std::string all = kHeader + kStanzas + "</stream:stream>";
  Recorder whole;
  {
    StreamParser p(whole);
    REQUIRE(p.feed(all));
  }
  REQUIRE(whole.elements.size() == 4);
  REQUIRE(whole.closes == 1);

  SECTION("byte by byte") {
    Recorder r;
    StreamParser p(r);
    for (char c : all) REQUIRE(p.feed(std::string_view(&c, 1)));
    CHECK(serialize_all(r) == serialize_all(whole));
    CHECK(r.wire_sizes == whole.wire_sizes);
    CHECK(r.closes == 1);
    CHECK(r.errors.empty());
  }
  SECTION("pseudo-random chunks") {
    std::uint32_t seed = 12345;
    for (int run = 0; run < 50; ++run) {
      Recorder r;
      StreamParser p(r);
      std::size_t pos = 0;
      while (pos < all.size()) {
        seed = seed * 1103515245u + 12345u;
        const std::size_t n = std::min<std::size_t>(all.size() - pos, 1 + (seed >> 16) % 97);
        REQUIRE(p.feed(std::string_view(all).substr(pos, n)));
        pos += n;
      }
      CHECK(serialize_all(r) == serialize_all(whole));
      CHECK(r.closes == 1);
    }
  }
}

TEST_CASE("stream parser: wire_bytes is the element's size on the wire", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  const std::string a = "<message to='v@b.example'/>";
  const std::string b = "<iq to='b.example' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>";
  REQUIRE(p.feed(kHeader + a + "   " + b));
  REQUIRE(r.wire_sizes.size() == 2);
  CHECK(r.wire_sizes[0] == a.size());
  CHECK(r.wire_sizes[1] == b.size());
}

TEST_CASE("stream parser: whitespace keepalives are fine at stream level", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader));
  for (int i = 0; i < 2000; ++i) REQUIRE(p.feed(i % 2 ? " " : "\r\n\t"));
  // Far more keepalive bytes than a (small) stanza limit would allow.
  REQUIRE(p.feed(std::string(600 * 1024, ' ')));
  REQUIRE(p.feed("<message to='v@b.example'/> "));
  CHECK(r.elements.size() == 1);
  CHECK(r.errors.empty());
  CHECK_FALSE(p.failed());
}

TEST_CASE("stream parser: stream close", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader + "<message to='v@b.example'/></stream:stream>"));
  CHECK(r.elements.size() == 1);
  CHECK(r.closes == 1);
  CHECK(r.errors.empty());
  // Anything but whitespace after the close is not well-formed.
  CHECK(p.feed("  "));
  CHECK_FALSE(p.feed("<message/>"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].first == StreamErrorCondition::NotWellFormed);
}

TEST_CASE("stream parser: restart from a handler after <success/>", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  r.on_element_hook = [&](const Element& e) {
    if (e.name() == "success" && e.ns() == kNsSasl) p.reset();
  };
  // Bytes that follow <success/> in the same read are dropped by the reset
  // (they cannot legitimately belong to the new stream).
  REQUIRE(p.feed(kHeader + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
                           "<message to='v@b.example' id='injected'/>"));
  REQUIRE(r.elements.size() == 1);
  CHECK(r.elements[0].serialize() == "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
  CHECK_FALSE(p.failed());
  // New stream with a new header (an XML declaration is allowed again).
  REQUIRE(p.feed(kHeader + "<message to='v@b.example' id='after'/>"));
  REQUIRE(r.opens.size() == 2);
  REQUIRE(r.elements.size() == 2);
  CHECK(r.elements[1].attr_or("id") == "after");
  CHECK(r.errors.empty());
}

TEST_CASE("stream parser: reset between feeds and after a failure", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader + "<message to='v@b.example'><bo"));
  p.reset();
  REQUIRE(p.feed(kHeader + "<message to='v@b.example' id='2'/>"));
  REQUIRE(r.elements.size() == 1);
  CHECK(r.elements[0].attr_or("id") == "2");
  // Text at stream level is caught when the next markup arrives (libxml2 holds
  // short character runs until it sees '<').
  CHECK_FALSE(p.feed("oops<message/>"));
  CHECK(p.failed());
  p.reset();
  CHECK_FALSE(p.failed());
  REQUIRE(p.feed(kHeader));
  CHECK(r.opens.size() == 3);
  CHECK(r.errors.size() == 1);
}

TEST_CASE("stream parser: several parsers alive at once do not interfere", "[xmpp][parser]") {
  const std::string all = kHeader + kStanzas;
  Recorder r1, r2, r3;
  StreamParser p1(r1), p2(r2), p3(r3);
  for (std::size_t i = 0; i < all.size(); ++i) {
    REQUIRE(p1.feed(all.substr(i, 1)));
    if (i == 200) CHECK_FALSE(p2.feed("<!-- evil -->"));
    REQUIRE(p3.feed(all.substr(i, 1)));
  }
  CHECK(r1.elements.size() == 4);
  CHECK(r3.elements.size() == 4);
  CHECK(serialize_all(r1) == serialize_all(r3));
  CHECK(r2.errors.size() == 1);
}

TEST_CASE("stream parser: namespace declarations inside stanzas are kept where written",
          "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader +
                 "<message xmlns:x='urn:example:x' to='v@b.example' x:flag='1'>"
                 "<x:data><db:inner/><item xmlns='urn:example:y' xml:lang='fr'>t</item></x:data>"
                 "</message>"));
  REQUIRE(r.elements.size() == 1);
  const std::string s = r.elements[0].serialize();
  CHECK(s ==
        "<message xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
        "xmlns:x='urn:example:x' to='v@b.example' x:flag='1'><x:data><db:inner/>"
        "<item xmlns='urn:example:y' xml:lang='fr'>t</item></x:data></message>");
  const Element* item = r.elements[0].find_child("data")->find_child("item", "urn:example:y");
  REQUIRE(item != nullptr);
  CHECK(*item->attr("lang", kNsXml) == "fr");
  CHECK(r.elements[0].attr("flag", "urn:example:x") != nullptr);
}

TEST_CASE("stream parser: references with their ';' and '&' inside CDATA are fine", "[xmpp][parser]") {
  Recorder r;
  StreamParser p(r);
  REQUIRE(p.feed(kHeader));
  REQUIRE(p.feed("<message to='v@b.example' type='a&amp;b'><body>&amp;&lt;&#65;&#x42;<![CDATA[fish & chips ]]]></body>"
                 "</message>"));
  REQUIRE(r.elements.size() == 1);
  CHECK(r.errors.empty());
  CHECK(r.elements[0].find_child("body")->text() == "&<AB" "fish & chips ]");
}
