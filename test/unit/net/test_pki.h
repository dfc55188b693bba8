// Test PKI for the net tests: generated once per build tree by
// test/pki/make-test-pki.sh (idempotent, safe to run concurrently).
#pragma once

#include <string>

namespace portcullis::net::test {

// Directory holding ca-low.pem, a.test.pem/.key, ...; fails the test (throws)
// when the script fails.
const std::string& pki_dir();
std::string pki(const std::string& file);

}  // namespace portcullis::net::test
