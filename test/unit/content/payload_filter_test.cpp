// payload-filter (policy/content/payload_filter.h) on real XEP payloads.
#include <catch2/catch.hpp>

#include "policy/content/payload_filter.h"
#include "policy_xml.h"

using namespace portcullis;
using policy::VerdictKind;
using test::note;
using test::note_count;
using xmpp::StanzaErrorCondition;

namespace {

// XEP-0384 (OMEMO 0.3 as Conversations sends it), with EME and fallback body.
constexpr std::string_view kOmemoMessage =
    "<message xmlns='jabber:server' to='juliet@high.example' from='romeo@low.example/orchard' id='send1' type='chat'>"
    "<encrypted xmlns='eu.siacs.conversations.axolotl'>"
    "<header sid='27183'><key rid='31415'>MwohBZD3PmKgT5CUJCtw0oCl8YO1/cOOxG0jhQpMW6E8</key>"
    "<key prekey='true' rid='12321'>MwohBf3EYz2Q8EAJmm0sFFa6XDxJ7Gk6Ur0TcAMwbGcc</key>"
    "<iv>u4chQcmp5ZkA8HGq</iv></header>"
    "<payload>fNw7dULKufAhi+7WfUWF1p4L</payload></encrypted>"
    "<encryption xmlns='urn:xmpp:eme:0' name='OMEMO' namespace='eu.siacs.conversations.axolotl'/>"
    "<body>I sent you an OMEMO encrypted message but your client doesn't seem to support that.</body>"
    "<store xmlns='urn:xmpp:hints'/>"
    "</message>";

// XEP-0384 OMEMO 2: no fallback body.
constexpr std::string_view kOmemo2Message =
    "<message xmlns='jabber:server' to='juliet@high.example' from='romeo@low.example/orchard' id='send2' type='chat'>"
    "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='27183'><keys jid='juliet@high.example'>"
    "<key rid='31415'>b64</key></keys></header><payload>b64</payload></encrypted>"
    "<store xmlns='urn:xmpp:hints'/></message>";

// XEP-0363 §5 + XEP-0066: sharing an uploaded file (URL in body and OOB).
constexpr std::string_view kUploadShare =
    "<message xmlns='jabber:server' from='romeo@low.example/garden' to='juliet@high.example' type='chat' id='u1'>"
    "<body>https://upload.low.example/4a771ac1-f0b2-4a4a-9700-f2a26fa2bb67/tr%C3%A8s%20cool.jpg</body>"
    "<x xmlns='jabber:x:oob'><url>https://upload.low.example/4a771ac1-f0b2-4a4a-9700-f2a26fa2bb67/tr%C3%A8s%20cool.jpg</url></x>"
    "</message>";

// XEP-0066 with a real message besides the link.
constexpr std::string_view kOobWithText =
    "<message xmlns='jabber:server' from='stpeter@low.example/work' to='MaineBoy@high.example/home' type='chat' id='o1'>"
    "<body>Yeah, but do you have a license to Jabber?</body>"
    "<x xmlns='jabber:x:oob'><url>http://www.jabber.org/images/psa-license.jpg</url></x>"
    "</message>";

// XEP-0234 §4 example 1: a Jingle file-transfer offer.
constexpr std::string_view kJingleOffer =
    "<iq xmlns='jabber:server' from='romeo@low.example/dr4hcr0st3lup4c' id='nzu25s8' to='juliet@high.example/yn0cl4bnw0yr3vym' type='set'>"
    "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' initiator='romeo@low.example/dr4hcr0st3lup4c' sid='851ba2'>"
    "<content creator='initiator' name='a-file-offer' senders='initiator'>"
    "<description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file>"
    "<date>1969-07-21T02:56:15Z</date><desc>This is a test. If this were a real file...</desc>"
    "<media-type>text/plain</media-type><name>test.txt</name><range/><size>6144</size>"
    "<hash xmlns='urn:xmpp:hashes:2' algo='sha-1'>w0mcJylzCn+AfvuGdqkty2+KP48=</hash>"
    "</file></description>"
    "<transport xmlns='urn:xmpp:jingle:transports:s5b:1' mode='tcp' sid='vj3hs98y'/>"
    "</content></jingle></iq>";

// XEP-0363 §4: slot request.
constexpr std::string_view kSlotRequest =
    "<iq xmlns='jabber:server' from='romeo@low.example/garden' id='step_03' to='upload.high.example' type='get'>"
    "<request xmlns='urn:xmpp:http:upload:0' filename='cool.jpg' size='23456' content-type='image/jpeg'/></iq>";

// XEP-0385 SIMS with a caption.
constexpr std::string_view kSims =
    "<message xmlns='jabber:server' to='juliet@high.example' from='romeo@low.example/resource' type='chat' id='s1'>"
    "<body>The summit</body>"
    "<reference xmlns='urn:xmpp:reference:0' type='data' uri='https://download.low.example/summit.jpg'>"
    "<media-sharing xmlns='urn:xmpp:sims:1'>"
    "<file xmlns='urn:xmpp:jingle:apps:file-transfer:5'><media-type>image/jpeg</media-type>"
    "<name>summit.jpg</name><size>3032449</size></file>"
    "<sources><reference xmlns='urn:xmpp:reference:0' type='data' uri='https://download.low.example/summit.jpg'/></sources>"
    "</media-sharing></reference></message>";

// XEP-0447 stateless file sharing.
constexpr std::string_view kSfs =
    "<message xmlns='jabber:server' from='juliet@low.example/balcony' to='romeo@high.example' id='sfs1' type='chat'>"
    "<file-sharing xmlns='urn:xmpp:sfs:0' disposition='inline'>"
    "<file xmlns='urn:xmpp:file:metadata:0'><media-type>image/jpeg</media-type><name>summit.jpg</name></file>"
    "<sources><url-data xmlns='http://jabber.org/protocol/url-data' target='https://download.low.example/summit.jpg'/></sources>"
    "</file-sharing><body>Summit photo</body></message>";

// XEP-0384: fetching a peer's OMEMO bundle over PubSub.
constexpr std::string_view kBundleFetch =
    "<iq xmlns='jabber:server' type='get' from='romeo@low.example/o' to='juliet@high.example' id='fetch1'>"
    "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='eu.siacs.conversations.axolotl.bundles:31415'/></pubsub></iq>";

constexpr std::string_view kPlain =
    "<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat' id='p'>"
    "<body>See https://example.org/report.pdf</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>";

struct PayloadFixture {
  // The default: strip file offers, reject encryption.
  policy::PolicyNode node = test::policy_node(
      "<payload-filter name='payloads'>"
      "<rule id='ft' class='file-transfer' action='strip'/>"
      "<rule id='e2e' class='encrypted' action='reject'/>"
      "</payload-filter>");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

struct StripAllFixture {
  policy::PolicyNode node = test::policy_node(
      "<payload-filter name='payloads'>"
      "<rule id='ft' class='file-transfer' action='strip'/>"
      "<rule id='e2e' class='encrypted' action='strip'/>"
      "</payload-filter>");
  std::shared_ptr<const policy::Filter> filter = test::build_filter(node);
  policy::StanzaContext ctx;
};

}  // namespace

TEST_CASE_METHOD(PayloadFixture, "an OMEMO message is rejected", "[content][payload-filter]") {
  auto m = test::stanza(kOmemoMessage);
  const std::string before = m.serialize();
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "e2e");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "encrypted content is not allowed across this boundary");
  CHECK(note(v, "class") == "encrypted");
  CHECK(m.serialize() == before);
}

TEST_CASE_METHOD(PayloadFixture, "an OMEMO 2 message is rejected", "[content][payload-filter]") {
  auto m = test::stanza(kOmemo2Message);
  CHECK(filter->evaluate(m, ctx).rule_id == "e2e");
}

TEST_CASE_METHOD(PayloadFixture, "fetching an OMEMO bundle is rejected", "[content][payload-filter]") {
  auto iq = test::stanza(kBundleFetch);
  const auto v = filter->evaluate(iq, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "e2e");
}

TEST_CASE_METHOD(PayloadFixture, "an OTR query in a body is rejected", "[content][payload-filter]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat'>"
                        "<body>?OTRv23? Bob has requested an Off-the-Record private conversation.</body></message>");
  CHECK(filter->evaluate(m, ctx).rule_id == "e2e");
}

TEST_CASE_METHOD(PayloadFixture, "the OTR whitespace tag in a body is rejected", "[content][payload-filter]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat'>"
                        "<body>Hello \t  \t\t\t\t \t \t \t    \t\t  \t\t</body></message>");
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "e2e");
}

TEST_CASE_METHOD(PayloadFixture, "an OOB link beside real text is stripped, the text kept", "[content][payload-filter]") {
  auto m = test::stanza(kOobWithText);
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "ft");
  CHECK(v.transformation == "payload-strip");
  CHECK(note(v, "class") == "file-transfer");
  CHECK(note(v, "removed") == "{jabber:x:oob}x");
  CHECK(note_count(v, "removed") == 1);
  CHECK(m.serialize() ==
        "<message xmlns='jabber:server' from='stpeter@low.example/work' to='MaineBoy@high.example/home' type='chat' id='o1'>"
        "<body>Yeah, but do you have a license to Jabber?</body></message>");
}

TEST_CASE_METHOD(PayloadFixture, "an HTTP upload share loses body and OOB, so it is rejected", "[content][payload-filter]") {
  auto m = test::stanza(kUploadShare);
  const std::string before = m.serialize();
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "ft");
  CHECK(v.error->condition == StanzaErrorCondition::PolicyViolation);
  CHECK(v.error->text == "file transfer is not allowed across this boundary");
  CHECK(note(v, "check") == "empty-after-strip");
  CHECK(m.serialize() == before);
}

TEST_CASE_METHOD(PayloadFixture, "an aesgcm:// link body is a file transfer", "[content][payload-filter]") {
  auto m = test::stanza("<message xmlns='jabber:server' from='a@low.example/r' to='b@high.example' type='chat'>"
                        "<body>aesgcm://upload.low.example/abc/photo.jpg#0123456789abcdef</body></message>");
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(note(v, "check") == "empty-after-strip");
}

TEST_CASE_METHOD(PayloadFixture, "a Jingle file offer cannot be stripped from an iq: rejected", "[content][payload-filter]") {
  auto iq = test::stanza(kJingleOffer);
  const auto v = filter->evaluate(iq, ctx);
  REQUIRE(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "ft");
  CHECK(note(v, "class") == "file-transfer");
  CHECK(note(v, "check") == "iq-payload-not-strippable");
}

TEST_CASE_METHOD(PayloadFixture, "an HTTP upload slot request is rejected", "[content][payload-filter]") {
  auto iq = test::stanza(kSlotRequest);
  CHECK(filter->evaluate(iq, ctx).rule_id == "ft");
}

TEST_CASE_METHOD(PayloadFixture, "a SIMS reference is stripped, the caption kept", "[content][payload-filter]") {
  auto m = test::stanza(kSims);
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  CHECK(note(v, "removed") == "{urn:xmpp:reference:0}reference");
  CHECK(m.serialize() ==
        "<message xmlns='jabber:server' to='juliet@high.example' from='romeo@low.example/resource' type='chat' id='s1'>"
        "<body>The summit</body></message>");
}

TEST_CASE_METHOD(PayloadFixture, "an SFS file-sharing element is stripped", "[content][payload-filter]") {
  auto m = test::stanza(kSfs);
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  CHECK(note(v, "removed") == "{urn:xmpp:sfs:0}file-sharing");
  CHECK(m.find_child("body", "jabber:server") != nullptr);
}

TEST_CASE_METHOD(PayloadFixture, "a plain message with a typed link gets no opinion", "[content][payload-filter]") {
  auto m = test::stanza(kPlain);
  const std::string before = m.serialize();
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.notes.empty());
  CHECK(m.serialize() == before);
}

TEST_CASE_METHOD(StripAllFixture, "stripping OMEMO keeps the fallback body", "[content][payload-filter]") {
  auto m = test::stanza(kOmemoMessage);
  const auto v = filter->evaluate(m, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "e2e");
  CHECK(note_count(v, "removed") == 2);
  CHECK(m.serialize() ==
        "<message xmlns='jabber:server' to='juliet@high.example' from='romeo@low.example/orchard' id='send1' type='chat'>"
        "<body>I sent you an OMEMO encrypted message but your client doesn't seem to support that.</body>"
        "<store xmlns='urn:xmpp:hints'/></message>");
}

TEST_CASE_METHOD(StripAllFixture, "stripping OMEMO 2 leaves no body: rejected instead", "[content][payload-filter]") {
  auto m = test::stanza(kOmemo2Message);
  const auto v = filter->evaluate(m, ctx);
  CHECK(v.kind == VerdictKind::Reject);
  CHECK(v.rule_id == "e2e");
  CHECK(note(v, "check") == "empty-after-strip");
}

TEST_CASE_METHOD(StripAllFixture, "a signed presence loses its signature", "[content][payload-filter]") {
  auto p = test::stanza("<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'>"
                        "<x xmlns='jabber:x:signed'>iQA/AwUBOjU5dnol3d88qZ77EQI2JACfRngLJ045brNnaCX78ykKNUZaTIoAoPHI2uJxPMGR73EBIvEpcv0LRSy+</x>"
                        "</presence>");
  const auto v = filter->evaluate(p, ctx);
  REQUIRE(v.kind == VerdictKind::Modify);
  CHECK(note(v, "removed") == "{jabber:x:signed}x");
  CHECK(p.serialize() == "<presence xmlns='jabber:server' from='a@low.example/r' to='b@high.example'/>");
}

TEST_CASE("a shadow rule records the decision and changes nothing", "[content][payload-filter]") {
  const auto node = test::policy_node(
      "<payload-filter name='p'><rule id='ft-trial' class='file-transfer' action='reject' shadow='true'/></payload-filter>");
  const auto filter = test::build_filter(node);
  auto m = test::stanza(kOobWithText);
  const std::string before = m.serialize();
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::NoOpinion);
  CHECK(v.rule_id == "ft-trial");
  CHECK(note(v, "shadow") == "ft-trial would reject: policy-violation");
  CHECK(m.serialize() == before);
}

TEST_CASE("a shadow reject before an enforcing strip: both recorded", "[content][payload-filter]") {
  const auto node = test::policy_node(
      "<payload-filter name='p'>"
      "<rule id='trial' class='file-transfer' action='reject' shadow='true'/>"
      "<rule id='ft' class='file-transfer' action='strip'/>"
      "</payload-filter>");
  const auto filter = test::build_filter(node);
  auto m = test::stanza(kOobWithText);
  const auto v = filter->evaluate(m, {});
  CHECK(v.kind == VerdictKind::Modify);
  CHECK(v.rule_id == "ft");
  REQUIRE_FALSE(v.notes.empty());
  CHECK(v.notes.front() == std::pair<std::string, std::string>{"shadow", "trial would reject: policy-violation"});
}

TEST_CASE("payload-filter with no rule stops the load", "[content][payload-filter][config]") {
  const auto node = test::policy_node("<payload-filter name='p'/>");
  CHECK_THROWS_AS(test::build_filter(node), config::ConfigError);
}

TEST_CASE("element_in_class knows later protocol versions", "[content][payload-filter]") {
  CHECK(policy::content::element_in_class(xmpp::Element("urn:xmpp:jingle:apps:file-transfer:3", "description"),
                                          policy::content::PayloadClass::FileTransfer));
  CHECK(policy::content::element_in_class(xmpp::Element("urn:xmpp:openpgp:0", "openpgp"),
                                          policy::content::PayloadClass::Encrypted));
  CHECK(policy::content::element_in_class(xmpp::Element("jabber:x:encrypted", "x"),
                                          policy::content::PayloadClass::Encrypted));
  CHECK_FALSE(policy::content::element_in_class(xmpp::Element("urn:xmpp:receipts", "request"),
                                                policy::content::PayloadClass::Encrypted));
}
