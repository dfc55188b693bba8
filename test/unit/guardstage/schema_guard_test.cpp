// SchemaGuard against the shipped application profiles (schemas/xmpp): the
// stanza corpus (good and hostile), strict vs broad, and the checks beyond the
// XSD (document element, xsi attributes, namespace declarations, DOCTYPE,
// comments, processing instructions).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "guard/config/config.h"
#include "policy/guard/schema_guard.h"

using portcullis::policy::GuardResult;
using portcullis::policy::SchemaGuard;
using portcullis::policy::StanzaContext;
namespace fs = std::filesystem;

namespace {

const std::string kSchemas = std::string(PORTCULLIS_SOURCE_DIR) + "/schemas/xmpp/";
const std::string kCorpus = std::string(PORTCULLIS_SOURCE_DIR) + "/test/unit/guardstage/stanzas";

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loading a profile costs a few ms; share one instance of each per process.
SchemaGuard& strict_guard() {
  static SchemaGuard g("schema-strict", kSchemas + "strict.xsd");
  return g;
}
SchemaGuard& broad_guard() {
  static SchemaGuard g("schema-broad", kSchemas + "broad.xsd");
  return g;
}

const std::string kS = "xmlns='jabber:server' from='a@low.example/r' to='b@high.example'";

}  // namespace

TEST_CASE("every corpus stanza gets the verdict its name promises, in both profiles", "[schema_guard]") {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    const fs::path p = entry.path();
    if (p.extension() != ".xml") continue;
    const std::string expect = p.stem().extension().string();  // ".both", ".broad", ".none"
    const std::string bytes = read(p);
    const GuardResult s = strict_guard().validate(bytes);
    const GuardResult b = broad_guard().validate(bytes);
    INFO(p.filename().string() << "\nstrict: " << s.reason << "\nbroad: " << b.reason);
    CHECK(s.pass == (expect == ".both"));
    CHECK(b.pass == (expect == ".both" || expect == ".broad"));
    CHECK(s.guard == "schema-strict");
    if (!s.pass) {
      CHECK(s.reason.rfind("strict.xsd: 1:", 0) == 0);
      CHECK(s.reason.size() < 400);
    }
    ++checked;
  }
  CHECK(checked >= 40);
}

TEST_CASE("the shipped profiles pass the everyday stanzas", "[schema_guard]") {
  for (const char* file : {"chat-label.both.xml", "groupchat.both.xml", "muc-join.both.xml", "ping.both.xml",
                           "message-error.both.xml"}) {
    INFO(file);
    const GuardResult r = strict_guard().validate(read(fs::path(kCorpus) / file));
    CHECK(r.pass);
    CHECK(r.reason.empty());
  }
}

TEST_CASE("blocks name the position and what was wrong, never the stanza", "[schema_guard]") {
  SECTION("unknown element") {
    const GuardResult r = strict_guard().validate("<message " + kS + " type='chat'><body>x</body><blink/></message>");
    CHECK_FALSE(r.pass);
    CHECK(r.reason.rfind("strict.xsd: 1:", 0) == 0);
    CHECK(r.reason.find("blink") != std::string::npos);
  }
  SECTION("payload in an unknown namespace") {
    const GuardResult r = strict_guard().validate(
        "<message " + kS + "><body>x</body><data xmlns='urn:example:exfil'>c2VjcmV0IHBsYW5z</data></message>");
    CHECK_FALSE(r.pass);
    CHECK(r.reason.find("c2VjcmV0IHBsYW5z") == std::string::npos);
  }
  SECTION("wrong type enumeration") {
    const GuardResult r = strict_guard().validate("<message " + kS + " type='covert'><body>x</body></message>");
    CHECK_FALSE(r.pass);
    CHECK(r.reason.find("covert") != std::string::npos);  // Xerces quotes the short value: acceptable
  }
  SECTION("extra child in body") {
    const GuardResult r = strict_guard().validate("<message " + kS + "><body>top <b>secret</b> text</body></message>");
    CHECK_FALSE(r.pass);
    CHECK(r.reason.find("top secret text") == std::string::npos);
  }
  SECTION("bad attribute value") {
    const GuardResult r = strict_guard().validate(
        "<presence " + kS + "><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='god'/></x></presence>");
    CHECK_FALSE(r.pass);
  }
  SECTION("not well-formed") {
    const GuardResult r = strict_guard().validate("<message " + kS + "><body>x</message>");
    CHECK_FALSE(r.pass);
    CHECK_FALSE(r.reason.empty());
  }
  SECTION("empty input") {
    CHECK_FALSE(strict_guard().validate("").pass);
  }
}

TEST_CASE("strict and broad differ exactly where documented", "[schema_guard]") {
  const std::string disco = "<iq " + kS + " id='d' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>";
  const std::string subscribe = "<presence " + kS + " type='subscribe'/>";
  const std::string caps = "<presence " + kS +
                           "><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>";
  const std::string fmuc = "<message " + kS +
                           " type='groupchat'><body>x</body><fmuc xmlns='http://isode.com/protocol/fmuc' "
                           "from='h@low.example/r'/></message>";
  for (const auto& s : {disco, subscribe, caps, fmuc}) {
    INFO(s);
    CHECK_FALSE(strict_guard().validate(s).pass);
    CHECK(broad_guard().validate(s).pass);
  }
}

TEST_CASE("checks beyond the grammar", "[schema_guard]") {
  SECTION("document element must be a jabber:server stanza") {
    // A global element of an imported schema would validate on its own.
    const GuardResult r = strict_guard().validate("<ping xmlns='urn:xmpp:ping'/>");
    CHECK_FALSE(r.pass);
    CHECK(r.reason.find("document element") != std::string::npos);
    CHECK_FALSE(strict_guard().validate("<message xmlns='jabber:client' from='a@b' to='c@d'/>").pass);
  }
  SECTION("xsi attributes") {
    const GuardResult r = strict_guard().validate(
        "<message " + kS + " xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
        "xsi:schemaLocation='jabber:server http://evil.example/x.xsd'><body>x</body></message>");
    CHECK_FALSE(r.pass);
  }
  SECTION("unused declaration of a foreign namespace is a covert payload") {
    const GuardResult r = strict_guard().validate(
        "<message " + kS + " xmlns:leak='urn:secret:the-plans-are-in-the-shed'><body>x</body></message>");
    CHECK_FALSE(r.pass);
    CHECK(r.reason.find("outside the profile") != std::string::npos);
  }
  SECTION("declarations of profile namespaces are fine, prefixed or not") {
    CHECK(strict_guard()
              .validate("<message " + kS + " xmlns:r='urn:xmpp:receipts'><body>x</body><r:request/></message>")
              .pass);
  }
  SECTION("DOCTYPE, entities, comments, processing instructions") {
    const GuardResult dtd = strict_guard().validate(
        "<!DOCTYPE message [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><message " + kS + "><body>&x;</body></message>");
    CHECK_FALSE(dtd.pass);
    CHECK(dtd.reason.find("passwd") == std::string::npos);
    CHECK_FALSE(strict_guard().validate("<message " + kS + "><!-- hi --><body>x</body></message>").pass);
    CHECK_FALSE(strict_guard().validate("<message " + kS + "><?pi x?><body>x</body></message>").pass);
  }
  SECTION("the guard keeps working after a block (reader reuse)") {
    CHECK_FALSE(strict_guard().validate("<message " + kS + "><blink/></message>").pass);
    CHECK(strict_guard().validate("<message " + kS + "><body>x</body></message>").pass);
  }
}

TEST_CASE("check() is synchronous and names the guard", "[schema_guard]") {
  bool called = false;
  strict_guard().check("<message " + kS + "><body>x</body></message>", StanzaContext{}, [&](GuardResult r) {
    called = true;
    CHECK(r.pass);
    CHECK(r.guard == "schema-strict");
  });
  CHECK(called);
}

TEST_CASE("profiles load only from local files; bad profiles stop the load", "[schema_guard]") {
  const fs::path dir = fs::temp_directory_path() / ("guardstage-xsd-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
  };
  SECTION("missing file") {
    CHECK_THROWS_AS(SchemaGuard("g", (dir / "nope.xsd").string()), portcullis::config::ConfigError);
  }
  SECTION("an import from the network is refused") {
    write("net.xsd",
          "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema' targetNamespace='jabber:server'>"
          "<xs:import namespace='urn:x' schemaLocation='http://127.0.0.1:9/x.xsd'/>"
          "<xs:element name='message'/></xs:schema>");
    try {
      SchemaGuard g("g", (dir / "net.xsd").string());
      FAIL("loaded a profile importing from the network");
    } catch (const portcullis::config::ConfigError& e) {
      CHECK(std::string(e.what()).find("own directory") != std::string::npos);
    }
  }
  SECTION("an import outside the profile directory is refused") {
    write("up.xsd",
          "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema' targetNamespace='jabber:server'>"
          "<xs:import namespace='urn:x' schemaLocation='../x.xsd'/>"
          "<xs:element name='message'/></xs:schema>");
    CHECK_THROWS_AS(SchemaGuard("g", (dir / "up.xsd").string()), portcullis::config::ConfigError);
  }
  SECTION("a profile without jabber:server is refused") {
    write("other.xsd",
          "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema' targetNamespace='urn:other'>"
          "<xs:element name='message'/></xs:schema>");
    CHECK_THROWS_AS(SchemaGuard("g", (dir / "other.xsd").string()), portcullis::config::ConfigError);
  }
  SECTION("a broken schema names the file") {
    write("broken.xsd", "<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><xs:element/>");
    try {
      SchemaGuard g("g", (dir / "broken.xsd").string());
      FAIL("loaded a broken profile");
    } catch (const portcullis::config::ConfigError& e) {
      CHECK(e.file().find("broken.xsd") != std::string::npos);
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("the profile's namespaces are what it imports", "[schema_guard]") {
  const auto& ns = strict_guard().namespaces();
  auto has = [&](const std::string& n) { return std::find(ns.begin(), ns.end(), n) != ns.end(); };
  CHECK(has("jabber:server"));
  CHECK(has("urn:xmpp:sec-label:0"));
  CHECK(has("urn:nato:stanag:4774:confidentialitymetadatalabel:1:0"));
  CHECK_FALSE(has("http://jabber.org/protocol/disco#info"));
  const auto& bns = broad_guard().namespaces();
  CHECK(std::find(bns.begin(), bns.end(), "http://isode.com/protocol/fmuc") != bns.end());
}
