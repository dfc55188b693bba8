#include "guard/s2s/dialback.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace portcullis::s2s {
namespace {

std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 0xf];
  }
  return out;
}

}  // namespace

std::string dialback_key(std::string_view secret, std::string_view receiving,
                         std::string_view originating, std::string_view stream_id) {
  std::array<unsigned char, 32> digest{};
  unsigned int len = 0;
  EVP_Digest(secret.data(), secret.size(), digest.data(), &len, EVP_sha256(), nullptr);
  // XEP-0185: the HMAC key is the *hex string* of SHA-256(secret), not the raw digest.
  const std::string hmac_key = to_hex(digest.data(), len);
  std::string msg;
  msg.reserve(receiving.size() + originating.size() + stream_id.size() + 2);
  msg.append(receiving).append(" ").append(originating).append(" ").append(stream_id);
  std::array<unsigned char, 32> mac{};
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac.data(), &mac_len);
  return to_hex(mac.data(), mac_len);
}

bool keys_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_stream_id() {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // No entropy means no safe stream id: refuse rather than fall back.
    throw std::runtime_error("RAND_bytes failed: cannot make a stream id");
  }
  return to_hex(bytes.data(), bytes.size());
}

}  // namespace portcullis::s2s
