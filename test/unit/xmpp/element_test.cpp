// Element tree and serializer: construction, escaping, the round-trip property.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "guard/xmpp/element.h"
#include "guard/xmpp/stream_parser.h"

using namespace portcullis::xmpp;

TEST_CASE("element: constructed trees serialize with the namespaces they need", "[xmpp][element]") {
  Element m(std::string(kNsServer), "message");
  m.set_attr("to", "v@b.example");
  m.set_attr("type", "chat");
  m.add_child(std::string(kNsServer), "body").add_text("hi");
  Element& x = m.add_child("urn:example:x", "x");
  x.add_child("urn:example:x", "y");
  x.add_child(std::string(kNsServer), "z");
  CHECK(m.serialize() ==
        "<message xmlns='jabber:server' to='v@b.example' type='chat'><body>hi</body>"
        "<x xmlns='urn:example:x'><y/><z xmlns='jabber:server'/></x></message>");

  Element db(std::string(kNsDialback), "result");
  db.set_prefix("db");
  db.set_attr("from", "a.example");
  db.add_text("key");
  CHECK(db.serialize() ==
        "<db:result xmlns:db='jabber:server:dialback' from='a.example'>key</db:result>");

  // An element in no namespace under one with a default namespace undeclares it.
  Element outer("urn:o", "o");
  outer.add_child("", "plain");
  CHECK(outer.serialize() == "<o xmlns='urn:o'><plain xmlns=''/></o>");
  CHECK(Element("", "bare").serialize() == "<bare/>");
}

TEST_CASE("element: escaping of text and attribute values", "[xmpp][element]") {
  CHECK(escape_text("a<b>c&d'e\"f") == "a&lt;b&gt;c&amp;d'e\"f");
  CHECK(escape_attr("a<b>c&d'e\"f") == "a&lt;b&gt;c&amp;d&apos;e&quot;f");
  CHECK(escape_attr("t\tn\nr\r") == "t&#9;n&#10;r&#13;");
  CHECK(escape_text("line\r\nnext") == "line&#13;\nnext");

  Element e("urn:e", "e");
  e.set_attr("v", "it's \"<&>\"\n");
  e.add_text("1 < 2 && 3 > 2 ]]>");
  const std::string s = e.serialize();
  CHECK(s ==
        "<e xmlns='urn:e' v='it&apos;s &quot;&lt;&amp;&gt;&quot;&#10;'>"
        "1 &lt; 2 &amp;&amp; 3 &gt; 2 ]]&gt;</e>");
  auto back = parse_element(s);
  REQUIRE(back.has_value());
  CHECK(*back->attr("v") == "it's \"<&>\"\n");
  CHECK(back->text() == "1 < 2 && 3 > 2 ]]>");
}

TEST_CASE("element: entities and character references on the wire are resolved",
          "[xmpp][element]") {
  auto e = parse_element(
      "<m xmlns='urn:m' a=\"&amp;&lt;&gt;&apos;&quot;&#38;&#x26;#38;\" b='x&#9;y&#10;z'>"
      "&amp;&lt;&gt;&apos;&quot;&#65;&#x42;<![CDATA[<raw & cdata>]]></m>");
  REQUIRE(e.has_value());
  CHECK(*e->attr("a") == "&<>'\"&&#38;");
  CHECK(*e->attr("b") == "x\ty\nz");
  CHECK(e->text() == "&<>'\"AB<raw & cdata>");
  auto again = parse_element(e->serialize());
  REQUIRE(again.has_value());
  CHECK(*again->attr("a") == *e->attr("a"));
  CHECK(*again->attr("b") == *e->attr("b"));
  CHECK(again->text() == e->text());
}

TEST_CASE("element: round-trip property on a corpus of stanzas", "[xmpp][element]") {
  const std::vector<std::string> corpus = {
      "<message xmlns='jabber:server' from='a@b/c' to='d@e' type='chat' id='1'><body>hi</body></message>",
      "<message to='x@y'><body>a &amp; b &lt; c</body><thread>t</thread></message>",
      "<iq type='set' id='x' xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item jid='a@b' "
      "name=\"O'Brien\"/></query></iq>",
      "<db:result xmlns:db='jabber:server:dialback' from='a' to='b'>abc</db:result>",
      "<db:verify xmlns:db='jabber:server:dialback' xmlns='jabber:server' from='a' to='b' "
      "id='i'>k</db:verify>",
      "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls "
      "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><dialback "
      "xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>",
      "<message xmlns='jabber:server' to='r@muc'><securitylabel xmlns='urn:xmpp:sec-label:0'>"
      "<displaymarking fgcolor='black' bgcolor='red'>SECRET</displaymarking><label>"
      "<esssecuritylabel xmlns='urn:xmpp:sec-label:ess:0'>MQYCAQQGASk=</esssecuritylabel>"
      "</label></securitylabel></message>",
      "<presence xmlns='jabber:server'><x xmlns='http://jabber.org/protocol/muc#user'><item "
      "affiliation='none' role='participant'/><status code='110'/></x></presence>",
      "<a xmlns='urn:a' xmlns:p='urn:p' p:attr='1'><p:b><c xmlns=''>mixed<d/>text</c></p:b></a>",
      "<m xmlns='urn:m'>  leading and trailing  \n\t</m>",
      "<m xmlns='urn:m' xml:lang='de'>\xe2\x82\xac \xf0\x9f\x98\x80</m>",
      "<m>&#13;&#x0D;\r\n</m>",
      "<?xml version='1.0'?><m a='&#9;&#10;&#13;'/>",
      "<m><![CDATA[a]]>b<![CDATA[<c>]]></m>",
      // '&' in a namespace name (found by mutation fuzzing).
      "<p:m xmlns:p='urn:a&amp;b' xmlns='urn:&#38;' p:x='&amp;'><n/></p:m>",
  };
  for (const auto& input : corpus) {
    INFO(input);
    std::string error;
    auto e = parse_element(input, {}, &error);
    REQUIRE(e.has_value());
    const std::string once = e->serialize();
    auto e2 = parse_element(once, {}, &error);
    REQUIRE(e2.has_value());
    CHECK(e2->serialize() == once);
    // Copies are deep and serialize identically.
    Element copy = *e2;
    CHECK(copy.serialize() == once);
  }
}

TEST_CASE("element: '&' in namespace names is resolved like in attribute values",
          "[xmpp][element]") {
  auto e = parse_element("<p:m xmlns:p='urn:a&amp;b' p:x='1'/>");
  REQUIRE(e.has_value());
  CHECK(e->ns() == "urn:a&b");
  CHECK(e->attributes()[0].ns == "urn:a&b");
  CHECK(e->serialize() == "<p:m xmlns:p='urn:a&amp;b' p:x='1'/>");
}

TEST_CASE("element: accessors and mutation", "[xmpp][element]") {
  auto e = parse_element(
      "<message xmlns='jabber:server' to='a' xmlns:x='urn:x' x:to='b'>one<body>b</body>two"
      "<x:body/><body>c</body></message>");
  REQUIRE(e.has_value());
  CHECK(*e->attr("to") == "a");
  CHECK(*e->attr("to", "urn:x") == "b");
  CHECK(e->attr("from") == nullptr);
  CHECK(e->attr_or("from", "none") == "none");
  CHECK(e->text() == "onetwo");
  CHECK(e->child_elements().size() == 3);
  CHECK(e->find_child("body", "urn:x") != nullptr);
  CHECK(e->find_child("body")->text() == "b");
  e->set_attr("to", "z");
  e->set_attr("id", "n");
  CHECK(e->attributes().size() == 3);
  CHECK(*e->attr("to") == "z");
  CHECK(e->remove_attr("to", "urn:x"));
  CHECK_FALSE(e->remove_attr("to", "urn:x"));
  CHECK(e->remove_children("body", "jabber:server") == 2);
  CHECK(e->serialize() ==
        "<message xmlns='jabber:server' xmlns:x='urn:x' to='z' id='n'>onetwo<x:body/></message>");

  // Deep copy: changing the copy leaves the original alone.
  Element copy = *e;
  copy.find_child("body", "urn:x")->set_attr("k", "v");
  CHECK(e->find_child("body", "urn:x")->attributes().empty());
  Element assigned;
  assigned = copy;
  CHECK(assigned.serialize() == copy.serialize());

  // Adjacent text merges into one node.
  Element t("urn:t", "t");
  t.add_text("a");
  t.add_text("b");
  CHECK(t.children().size() == 1);
  CHECK(t.text() == "ab");
}

TEST_CASE("element: adopt_namespace_decls takes only what the subtree needs", "[xmpp][element]") {
  Element top(std::string(kNsServer), "message");
  Element& c = top.add_child(std::string(kNsDialback), "thing");
  c.set_prefix("db");
  const std::vector<NamespaceDecl> outer = {{"", "jabber:server"},
                                            {"stream", std::string(kNsStream)},
                                            {"db", std::string(kNsDialback)}};
  adopt_namespace_decls(top, outer);
  REQUIRE(top.namespace_decls().size() == 2);
  CHECK(top.namespace_decls()[0].prefix.empty());
  CHECK(top.namespace_decls()[1].prefix == "db");
  CHECK(top.serialize() ==
        "<message xmlns='jabber:server' xmlns:db='jabber:server:dialback'><db:thing/></message>");
}
