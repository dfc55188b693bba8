#include "test_pki.h"

#include <cstdlib>
#include <stdexcept>

namespace portcullis::net::test {

const std::string& pki_dir() {
  static const std::string dir = [] {
    std::string out = std::string(PORTCULLIS_BINARY_DIR) + "/test-pki";
    std::string cmd = "bash '" + std::string(PORTCULLIS_SOURCE_DIR) + "/test/pki/make-test-pki.sh' '" + out + "'";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-test-pki.sh failed: " + cmd);
    return out;
  }();
  return dir;
}

std::string pki(const std::string& file) { return pki_dir() + "/" + file; }

}  // namespace portcullis::net::test
