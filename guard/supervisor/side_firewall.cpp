#include "guard/supervisor/side_firewall.h"

#include <arpa/inet.h>
#include <nftables/libnftables.h>

#include <stdexcept>

namespace portcullis::supervisor {

namespace {

bool is_v6(const std::string& a) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET6, a.c_str(), buf) == 1;
}

bool is_wildcard(const std::string& a) { return a == "0.0.0.0" || a == "::"; }

std::string family(const std::string& a) { return is_v6(a) ? "ip6" : "ip"; }

// Only what the config loader has already checked as numeric addresses reaches
// here; quotes in a comment are the one thing to keep out of the script.
std::string clean(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(c == '"' || c == '\\' || c == '\n' ? '_' : c);
  return out.substr(0, 120);
}

void edge_chain(std::string& s, const FirewallSide& side) {
  s += "  chain edge_" + side.name + " {\n";
  for (const Endpoint& p : side.peers) {
    s += "    " + family(p.address) + " daddr " + p.address + " tcp dport " + std::to_string(p.port) + " accept\n";
  }
  for (const Endpoint& l : side.listen) {
    // What the edge sends on a connection made to its listener: from that
    // address and port, in the reply direction of the connection.
    s += "    ";
    if (!is_wildcard(l.address)) s += family(l.address) + " saddr " + l.address + " ";
    s += "tcp sport " + std::to_string(l.port) + " ct direction reply accept\n";
  }
  s += "    meta l4proto tcp counter reject with tcp reset\n";
  s += "    counter reject\n";
  s += "  }\n";
}

}  // namespace

std::string firewall_table(std::uint32_t low_uid, std::uint32_t high_uid) {
  return "portcullis_u" + std::to_string(low_uid) + "_" + std::to_string(high_uid);
}

std::string firewall_script(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
                            const std::string& comment) {
  const std::string t = firewall_table(low.uid, high.uid);
  // add + delete: removes a stale table of the same name without failing when there is none.
  std::string s = "add table inet " + t + "\ndelete table inet " + t + "\n";
  s += "table inet " + t + " {\n";
  s += "  comment \"" + clean(comment) + "\"\n";
  s += "  chain output {\n";
  s += "    type filter hook output priority filter; policy accept;\n";
  s += "    meta skuid " + std::to_string(low.uid) + " jump edge_" + low.name + "\n";
  s += "    meta skuid " + std::to_string(high.uid) + " jump edge_" + high.name + "\n";
  s += "    meta skuid " + std::to_string(filter_uid) + " counter reject\n";
  s += "  }\n";
  edge_chain(s, low);
  edge_chain(s, high);
  s += "}\n";
  return s;
}

std::string run_nft(const std::string& script) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return "cannot create an nftables context";
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  const int rc = nft_run_cmd_from_buffer(ctx, script.c_str());
  std::string err;
  if (rc != 0) {
    const char* e = nft_ctx_get_error_buffer(ctx);
    err = e != nullptr && *e != '\0' ? e : "nft failed";
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  }
  nft_ctx_free(ctx);
  return err;
}

SideFirewall::SideFirewall(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
                           const std::string& comment)
    : table_(firewall_table(low.uid, high.uid)) {
  const std::string err = run_nft(firewall_script(low, high, filter_uid, comment));
  if (!err.empty()) throw std::runtime_error("cannot install the side firewall (nftables): " + err);
}

SideFirewall::~SideFirewall() { run_nft("delete table inet " + table_ + "\n"); }

}  // namespace portcullis::supervisor
