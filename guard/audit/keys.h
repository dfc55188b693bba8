// Ed25519 key files for audit checkpoints (libsodium).
//
// Both files are one text line:
//   secret: "portcullis-audit-ed25519-secret-v1 <128 hex digits>\n" (libsodium's
//           64-byte secret key: seed || public key), mode 0600, owned by the writer
//   public: "portcullis-audit-ed25519-public-v1 <64 hex digits>\n"
// Loading is control plane: errors throw AuditKeyError with the path and reason.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace portcullis::audit {

class AuditKeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SigningKey {
  std::string secret;       // 64 bytes
  std::string public_key;   // 32 bytes
};

// Reads a secret key file. Refuses (throws) a file that is group- or
// world-accessible, not a regular file, malformed, or whose embedded public key
// does not match its seed.
SigningKey load_signing_key(const std::string& path);

// Reads a public key file (32 bytes). Throws on a missing or malformed file.
std::string load_public_key(const std::string& path);

// Creates a fresh key pair: the secret file with mode 0600, the public file
// with mode 0644. Never overwrites an existing file (throws instead).
void generate_key_pair(const std::string& secret_path, const std::string& public_path);

// Short identifier of a public key, stored in each checkpoint: hex of its
// first 8 bytes.
std::string key_id(std::string_view public_key);

// Ed25519 over `message`; 64 raw bytes.
std::string sign_detached(const SigningKey& key, std::string_view message);
bool verify_detached(std::string_view public_key, std::string_view message, std::string_view signature);

}  // namespace portcullis::audit
