// ESS security label codec: known DER, round trips, and hostile input.
#include <catch2/catch.hpp>

#include <random>

#include "policy/labels/ess_label.h"

using namespace portcullis::policy::labels;

namespace {

// LOW-NATION CONFIDENTIAL, Releasable To {GBR}, built by hand:
//   31 29                      SET (ESSSecurityLabel), 41 bytes
//     02 01 0d                 INTEGER 13 (security-classification)
//     06 04 2a 03 04 01        OID 1.2.3.4.1 (security-policy-identifier; 2a = 1*40+2)
//     31 1e                    SET OF SecurityCategory, 30 bytes
//       30 1c                  SEQUENCE SecurityCategory
//         80 0a 60 86 48 01 65 02 01 08 03 01
//                              [0] IMPLICIT OID 2.16.840.1.101.2.1.8.3.1 (enumerated
//                              attributes; 60 = 2*40+16, 86 48 = 840 in base 128)
//         a1 0e                [1] EXPLICIT
//           30 0c              SEQUENCE { tagName, attributeList }
//             06 05 2a 03 04 01 02    OID 1.2.3.4.1.2 (the tag set "Releasable To")
//             31 03 02 01 01          SET OF INTEGER { 1 } (GBR)
const Bytes kConfidentialRelGbr = {
    0x31, 0x29, 0x02, 0x01, 0x0d, 0x06, 0x04, 0x2a, 0x03, 0x04, 0x01, 0x31, 0x1e, 0x30,
    0x1c, 0x80, 0x0a, 0x60, 0x86, 0x48, 0x01, 0x65, 0x02, 0x01, 0x08, 0x03, 0x01, 0xa1,
    0x0e, 0x30, 0x0c, 0x06, 0x05, 0x2a, 0x03, 0x04, 0x01, 0x02, 0x31, 0x03, 0x02, 0x01, 0x01};

Label confidential_rel_gbr() {
  Label l;
  l.policy_id = "1.2.3.4.1";
  l.classification = 13;
  LabelCategory c;
  c.tag_set_id = "1.2.3.4.1.2";
  c.kind = TagKind::Permissive;
  c.syntax = TagSyntax::Enumerated;
  c.lacv = 1;
  l.categories.push_back(c);
  return l;
}

}  // namespace

TEST_CASE("a known ESS label decodes to its policy, classification and category", "[labels][ess]") {
  std::string why;
  const auto label = decode_ess(kConfidentialRelGbr, &why);
  REQUIRE(label);
  CHECK(label->policy_id == "1.2.3.4.1");
  CHECK(label->classification == 13);
  CHECK(label->privacy_mark.empty());
  REQUIRE(label->categories.size() == 1);
  CHECK(label->categories[0].tag_set_id == "1.2.3.4.1.2");
  CHECK(label->categories[0].kind == TagKind::Unknown);   // enumerated: the SPIF says which
  CHECK(label->categories[0].syntax == TagSyntax::Enumerated);
  CHECK(label->categories[0].lacv == 1);
}

TEST_CASE("encoding the label gives exactly the hand-built DER", "[labels][ess]") {
  const auto der = encode_ess(confidential_rel_gbr());
  REQUIRE(der);
  CHECK(*der == kConfidentialRelGbr);
  CHECK(base64_encode(*der) == "MSkCAQ0GBCoDBAExHjAcgApghkgBZQIBCAMBoQ4wDAYFKgMEAQIxAwIBAQ==");
}

TEST_CASE("decode then encode is the identity on DER", "[labels][ess]") {
  const auto label = decode_ess(kConfidentialRelGbr);
  REQUIRE(label);
  const auto der = encode_ess(*label);
  REQUIRE(der);
  CHECK(*der == kConfidentialRelGbr);
}

TEST_CASE("the XEP-0258 example labels decode, padding or not", "[labels][ess]") {
  // MQYCAQQGASk= = 31 06 02 01 04 06 01 29: SET { INTEGER 4, OID 1.1 }
  const auto secret = base64_decode("MQYCAQQGASk=");
  REQUIRE(secret);
  const auto l = decode_ess(*secret);
  REQUIRE(l);
  CHECK(l->policy_id == "1.1");
  CHECK(l->classification == 4);
  // The catalog example lacks its padding; it still decodes (classification 3).
  const auto conf = base64_decode("MQYC\n AQMGASk");
  REQUIRE(conf);
  CHECK(decode_ess(*conf)->classification == 3);
}

TEST_CASE("the XEP's equivalentlabel example has no policy OID and is refused", "[labels][ess]") {
  const auto der = base64_decode("MRUCAgD9DA9BcXVhIChvYnNvbGV0ZSk=");
  REQUIRE(der);
  std::string why;
  CHECK_FALSE(decode_ess(*der, &why));
  CHECK(why == "no security-policy-identifier");
}

TEST_CASE("bitmaps encode most significant bit first and DER orders the SET", "[labels][ess]") {
  Label l;
  l.policy_id = "1.2.3.4.2";
  l.classification = 2;
  l.privacy_mark = "EXERCISE";
  for (long v : {0L, 1L}) {
    LabelCategory c;
    c.tag_set_id = "1.2.3.4.2.2";
    c.kind = TagKind::Permissive;
    c.syntax = TagSyntax::Bitmap;
    c.lacv = v;
    l.categories.push_back(c);
  }
  const auto der = encode_ess(l);
  REQUIRE(der);
  // INTEGER 2, OID, then the categories SET (tag 17) BEFORE the PrintableString (tag 19).
  const Bytes expected = {
      0x31, 0x32,                                   // SET, 50 bytes
      0x02, 0x01, 0x02,                             // classification 2
      0x06, 0x04, 0x2a, 0x03, 0x04, 0x02,           // policy 1.2.3.4.2
      0x31, 0x1d, 0x30, 0x1b,                       // categories
      0x80, 0x0a, 0x60, 0x86, 0x48, 0x01, 0x65, 0x02, 0x01, 0x08, 0x03, 0x02,   // permissive bitmap
      0xa1, 0x0d, 0x30, 0x0b, 0x06, 0x05, 0x2a, 0x03, 0x04, 0x02, 0x02,
      0x03, 0x02, 0x06, 0xc0,                       // BIT STRING, 6 unused bits, bits 0 and 1
      0x13, 0x08, 'E', 'X', 'E', 'R', 'C', 'I', 'S', 'E'};   // PrintableString privacy mark
  CHECK(*der == expected);
  const auto back = decode_ess(*der);
  REQUIRE(back);
  CHECK(back->privacy_mark == "EXERCISE");
  REQUIRE(back->categories.size() == 2);
  CHECK(back->categories[0].kind == TagKind::Permissive);
  CHECK(back->categories[0].lacv == 0);
  CHECK(back->categories[1].lacv == 1);
}

TEST_CASE("a privacy mark outside PrintableString is written as UTF8String", "[labels][ess]") {
  Label l;
  l.policy_id = "1.2.3.4.2";
  l.privacy_mark = "caf\xc3\xa9";
  const auto der = encode_ess(l);
  REQUIRE(der);
  CHECK((*der)[8] == 0x0c);
  CHECK(decode_ess(*der)->privacy_mark == "caf\xc3\xa9");
}

TEST_CASE("every truncation of a valid label is refused", "[labels][ess][hostile]") {
  for (std::size_t n = 0; n < kConfidentialRelGbr.size(); ++n) {
    INFO("length " << n);
    CHECK_FALSE(decode_ess(kConfidentialRelGbr.data(), n));
  }
}

TEST_CASE("hostile DER is refused with a reason and no crash", "[labels][ess][hostile]") {
  struct Case {
    const char* what;
    Bytes der;
  };
  const std::vector<Case> cases = {
      {"SEQUENCE instead of SET", {0x30, 0x03, 0x06, 0x01, 0x29}},
      {"huge length", {0x31, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x01, 0x29}},
      {"length longer than the data", {0x31, 0x7f, 0x06, 0x01, 0x29}},
      {"indefinite length", {0x31, 0x80, 0x06, 0x01, 0x29, 0x00, 0x00}},
      {"trailing bytes", {0x31, 0x03, 0x06, 0x01, 0x29, 0x00}},
      {"two policy OIDs", {0x31, 0x06, 0x06, 0x01, 0x29, 0x06, 0x01, 0x29}},
      {"negative classification", {0x31, 0x06, 0x02, 0x01, 0xff, 0x06, 0x01, 0x29}},
      {"classification over 256", {0x31, 0x07, 0x02, 0x02, 0x01, 0x01, 0x06, 0x01, 0x29}},
      {"non-minimal INTEGER", {0x31, 0x07, 0x02, 0x02, 0x00, 0x01, 0x06, 0x01, 0x29}},
      {"empty OID", {0x31, 0x02, 0x06, 0x00}},
      {"OID with 0x80 padding", {0x31, 0x04, 0x06, 0x02, 0x80, 0x01}},
      {"unterminated OID arc", {0x31, 0x03, 0x06, 0x01, 0x81}},
      {"empty categories", {0x31, 0x05, 0x06, 0x01, 0x29, 0x31, 0x00}},
      {"category of unknown syntax",
       {0x31, 0x14, 0x06, 0x01, 0x29, 0x31, 0x0f, 0x30, 0x0d, 0x80, 0x02, 0x2a, 0x03, 0xa1, 0x07,
        0x30, 0x05, 0x06, 0x01, 0x29, 0x31, 0x00}},
      {"nested garbage", {0x31, 0x08, 0x31, 0x06, 0x31, 0x04, 0x31, 0x02, 0x31, 0x00}},
      {"bad PrintableString", {0x31, 0x06, 0x06, 0x01, 0x29, 0x13, 0x01, '*'}},
      {"bad UTF-8", {0x31, 0x06, 0x06, 0x01, 0x29, 0x0c, 0x01, 0xc0}},
      {"high tag number form", {0x31, 0x04, 0x1f, 0x81, 0x00, 0x00}},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    std::string why;
    CHECK_FALSE(decode_ess(c.der, &why));
    CHECK_FALSE(why.empty());
  }
  // A label bigger than the limit is refused before parsing.
  Bytes big(kMaxEssBytes + 1, 0x31);
  CHECK_FALSE(decode_ess(big));
}

TEST_CASE("base64 refuses what is not base64", "[labels][ess][hostile]") {
  CHECK_FALSE(base64_decode("MQYC*QQGASk="));
  CHECK_FALSE(base64_decode("MQYCAQQGASk=A"));    // data after padding
  CHECK_FALSE(base64_decode("M"));                // impossible length
  CHECK_FALSE(base64_decode("MQ==="));            // too much padding
  CHECK(base64_decode("")->empty());
}

TEST_CASE("random and mutated DER never crashes the decoder", "[labels][ess][hostile][fuzz]") {
  std::mt19937 rng(4774);   // fixed seed: the same inputs every run
  std::uniform_int_distribution<int> byte(0, 255);
  std::size_t decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes input = kConfidentialRelGbr;
    const int mode = i % 3;
    if (mode == 0) {
      // Flip a few bytes of a valid label.
      for (int k = 0; k < 1 + i % 4; ++k) input[static_cast<std::size_t>(byte(rng)) % input.size()] = static_cast<std::uint8_t>(byte(rng));
    } else if (mode == 1) {
      // Random bytes behind a SET header of random length.
      input.assign(static_cast<std::size_t>(2 + byte(rng) % 64), 0);
      for (auto& b : input) b = static_cast<std::uint8_t>(byte(rng));
      input[0] = 0x31;
    } else {
      // Splice: insert random bytes at a random position.
      const auto pos = static_cast<std::size_t>(byte(rng)) % input.size();
      input.insert(input.begin() + static_cast<long>(pos), static_cast<std::uint8_t>(byte(rng)));
    }
    if (const auto l = decode_ess(input)) {
      ++decoded;
      (void)encode_ess(*l);   // whatever decodes must also re-encode without trouble
    }
  }
  CHECK(decoded < 20000);
}
