#include "guard/audit/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "guard/audit/format.h"
#include "guard/audit/record.h"

namespace portcullis::audit {

namespace {

constexpr std::string_view kSecretTag = "portcullis-audit-ed25519-secret-v1 ";
constexpr std::string_view kPublicTag = "portcullis-audit-ed25519-public-v1 ";

void init_sodium() {
  if (sodium_init() < 0) throw AuditKeyError("libsodium initialisation failed");
}

std::string read_key_line(const std::string& path, std::string_view tag, std::size_t bytes, struct stat* st_out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw AuditKeyError(path + ": cannot open key file: " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw AuditKeyError(path + ": not a regular file");
  }
  if (st_out) *st_out = st;
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n < 0) throw AuditKeyError(path + ": cannot read key file: " + std::strerror(errno));
  std::string_view text(buf, static_cast<std::size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (text.substr(0, tag.size()) != tag)
    throw AuditKeyError(path + ": not a portcullis audit key file of this kind (expected \"" +
                        std::string(tag.substr(0, tag.size() - 1)) + " ...\")");
  auto raw = from_hex(text.substr(tag.size()));
  if (!raw || raw->size() != bytes) throw AuditKeyError(path + ": malformed key (bad hex or length)");
  return *raw;
}

void write_new_file(const std::string& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) throw AuditKeyError(path + ": cannot create key file: " + std::strerror(errno));
  // O_CREAT's mode is filtered by the umask: set it exactly.
  if (::fchmod(fd, mode) != 0 || ::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
      ::fsync(fd) != 0) {
    const std::string e = std::strerror(errno);
    ::close(fd);
    ::unlink(path.c_str());
    throw AuditKeyError(path + ": cannot write key file: " + e);
  }
  ::close(fd);
}

}  // namespace

SigningKey load_signing_key(const std::string& path) {
  init_sodium();
  struct stat st{};
  SigningKey k;
  k.secret = read_key_line(path, kSecretTag, crypto_sign_SECRETKEYBYTES, &st);
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw AuditKeyError(path + ": signing key is accessible by group or others (mode " + mode +
                        "); it must be readable only by the audit writer (chmod 600)");
  }
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_ed25519_sk_to_pk(pk, reinterpret_cast<const unsigned char*>(k.secret.data()));
  unsigned char seed[crypto_sign_SEEDBYTES];
  crypto_sign_ed25519_sk_to_seed(seed, reinterpret_cast<const unsigned char*>(k.secret.data()));
  unsigned char pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk2, sk2, seed);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(sk2, sizeof sk2);
  if (std::memcmp(pk, pk2, sizeof pk) != 0) throw AuditKeyError(path + ": corrupt signing key (public half does not match seed)");
  k.public_key.assign(reinterpret_cast<const char*>(pk), sizeof pk);
  return k;
}

std::string load_public_key(const std::string& path) {
  init_sodium();
  return read_key_line(path, kPublicTag, crypto_sign_PUBLICKEYBYTES, nullptr);
}

void generate_key_pair(const std::string& secret_path, const std::string& public_path) {
  init_sodium();
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  std::string secret_line = std::string(kSecretTag) + to_hex(std::string_view(reinterpret_cast<char*>(sk), sizeof sk)) + "\n";
  sodium_memzero(sk, sizeof sk);
  const std::string public_line = std::string(kPublicTag) + to_hex(std::string_view(reinterpret_cast<char*>(pk), sizeof pk)) + "\n";
  if (::access(public_path.c_str(), F_OK) == 0) throw AuditKeyError(public_path + ": exists; refusing to overwrite");
  write_new_file(secret_path, secret_line, 0600);
  sodium_memzero(secret_line.data(), secret_line.size());
  try {
    write_new_file(public_path, public_line, 0644);
  } catch (...) {
    ::unlink(secret_path.c_str());
    throw;
  }
}

std::string key_id(std::string_view public_key) { return to_hex(public_key.substr(0, 8)); }

std::string sign_detached(const SigningKey& key, std::string_view message) {
  unsigned char sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       reinterpret_cast<const unsigned char*>(key.secret.data()));
  return std::string(reinterpret_cast<const char*>(sig), sizeof sig);
}

bool verify_detached(std::string_view public_key, std::string_view message, std::string_view signature) {
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES || signature.size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                                     reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

}  // namespace portcullis::audit
