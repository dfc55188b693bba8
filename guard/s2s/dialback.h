// Server Dialback keys (XEP-0185) and stream ids.
#pragma once

#include <string>
#include <string_view>

namespace portcullis::s2s {

// key = hex(HMAC-SHA256(key = hex(SHA256(secret)), msg = receiving + ' ' +
// originating + ' ' + stream_id)), lower-case hex (XEP-0185 §3).
std::string dialback_key(std::string_view secret, std::string_view receiving,
                         std::string_view originating, std::string_view stream_id);

// Constant-time comparison of two keys (no early exit on the first difference).
bool keys_equal(std::string_view a, std::string_view b);

// 128 random bits from the OS CSPRNG as 32 hex digits: unpredictable stream ids
// (RFC 6120 §4.7.3; they are an input to the dialback key).
std::string random_stream_id();

}  // namespace portcullis::s2s
