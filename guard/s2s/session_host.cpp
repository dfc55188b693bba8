#include "guard/s2s/session_host.h"

#include <openssl/evp.h>

#include <chrono>
#include <vector>

namespace portcullis::s2s {

std::string s2s_stream_header(std::string_view from, std::string_view to, std::string_view id) {
  std::string h = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='http://etherx.jabber.org/streams' "
                  "xmlns:db='jabber:server:dialback'";
  if (!from.empty()) h.append(" from='").append(xmpp::escape_attr(from)).append("'");
  if (!to.empty()) h.append(" to='").append(xmpp::escape_attr(to)).append("'");
  if (!id.empty()) h.append(" id='").append(xmpp::escape_attr(id)).append("'");
  h += " version='1.0' xml:lang='en'>";
  return h;
}

xmpp::ParserLimits parser_limits(const config::Side& side) {
  xmpp::ParserLimits l;
  l.max_stanza_bytes = side.max_stanza_bytes;
  l.max_depth = side.max_depth;
  l.max_attributes = side.max_attributes;
  return l;
}

std::uint64_t unix_now_us() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string base64_encode(std::string_view in) {
  std::vector<unsigned char> out(4 * ((in.size() + 2) / 3) + 1);
  int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  return std::string(reinterpret_cast<char*>(out.data()), static_cast<std::size_t>(n));
}

bool base64_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 != 0) return false;
  if (in.empty()) { out.clear(); return true; }
  std::vector<unsigned char> buf(3 * (in.size() / 4) + 1);
  int n = EVP_DecodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock keeps the padding bytes as zeros: drop them.
  std::size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (in.size() >= 2 && in[in.size() - 2] == '=') ++pad;
  out.assign(reinterpret_cast<char*>(buf.data()), static_cast<std::size_t>(n) - pad);
  return true;
}

}  // namespace portcullis::s2s
