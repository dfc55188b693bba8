#include "guard/supervisor/side_firewall.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace portcullis::supervisor {

namespace {

bool is_v6(const std::string& a) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET6, a.substr(0, a.find('/')).c_str(), buf) == 1;
}

std::string family(const std::string& a) { return is_v6(a) ? "ip6" : "ip"; }

// Only what the config loader has already checked as numeric addresses reaches
// here; quotes in a comment are the one thing to keep out of the script.
std::string clean(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(c == '"' || c == '\\' || c == '\n' ? '_' : c);
  return out.substr(0, 120);
}

// "{ a, b/24 }" of the entries of the listener's own family (the config check
// makes sure there is at least one).
std::string source_set(const Listener& l) {
  std::string set;
  for (const std::string& f : l.from) {
    if (is_v6(f) != is_v6(l.address)) continue;
    set += (set.empty() ? "{ " : ", ") + f;
  }
  return set.empty() ? std::string() : set + " }";
}

void edge_chain(std::string& s, const FirewallSide& side) {
  s += "  chain edge_" + side.name + " {\n";
  for (const Endpoint& p : side.peers) {
    s += "    " + family(p.address) + " daddr " + p.address + " tcp dport " + std::to_string(p.port) + " accept\n";
  }
  // The edge opens connections to its peers only: any other SYN is refused
  // before the reply rule, so a half-open connection a far host started cannot
  // be answered by a socket the edge binds to its listener's port.
  s += "    tcp flags & (syn | ack) == syn counter reject with tcp reset\n";
  for (const Listener& l : side.listen) {
    // What the edge sends on a connection one of its hosts made to its
    // listener: judged by the connection's original tuple.
    const std::string f = family(l.address);
    const std::string from = source_set(l);
    if (from.empty()) continue;
    s += "    meta l4proto tcp ct direction reply ct original " + f + " daddr " + l.address + " ct original proto-dst " +
         std::to_string(l.port) + " ct original " + f + " saddr " + from + " accept\n";
  }
  s += "    meta l4proto tcp counter reject with tcp reset\n";
  s += "    counter reject\n";
  s += "  }\n";
}

// Input: each listener admits its side's hosts (on its interface) and no one else.
void input_chain(std::string& s, const std::vector<const FirewallSide*>& sides) {
  s += "  chain input {\n";
  s += "    type filter hook input priority filter; policy accept;\n";
  for (const FirewallSide* side : sides) {
    for (const Listener& l : side->listen) {
      const std::string f = family(l.address);
      const std::string to = f + " daddr " + l.address + " tcp dport " + std::to_string(l.port);
      const std::string from = source_set(l);
      if (!from.empty()) {
        s += "    " + to + (l.interface.empty() ? "" : " iifname \"" + clean(l.interface) + "\"") + " " + f +
             " saddr " + from + " accept\n";
      }
      // Only new connections are judged: the resets this table sends the
      // edge's own refused SYNs arrive on the listener's address too.
      s += "    " + to + " ct state new counter reject with tcp reset comment \"edge_" + side->name + " listener\"\n";
    }
  }
  s += "  }\n";
}

}  // namespace

std::string firewall_table(std::uint32_t low_uid, std::uint32_t high_uid) {
  return "portcullis_u" + std::to_string(low_uid) + "_" + std::to_string(high_uid);
}

std::string node_firewall_table(std::uint32_t node_uid) { return "portcullis_node_u" + std::to_string(node_uid); }

namespace {

// The table for `sides` (each server's uid judged by its own chain), and the
// filter's uid rejected outright when it has one.
std::string script_for(const std::string& t, const std::vector<const FirewallSide*>& sides, const std::uint32_t* filter_uid,
                       const std::string& comment) {
  // add + delete: removes a stale table of the same name without failing when there is none.
  std::string s = "add table inet " + t + "\ndelete table inet " + t + "\n";
  s += "table inet " + t + " {\n";
  s += "  comment \"" + clean(comment) + "\"\n";
  s += "  chain output {\n";
  s += "    type filter hook output priority filter; policy accept;\n";
  for (const FirewallSide* side : sides) {
    s += "    meta skuid " + std::to_string(side->uid) + " jump edge_" + side->name + "\n";
  }
  if (filter_uid != nullptr) s += "    meta skuid " + std::to_string(*filter_uid) + " counter reject\n";
  s += "  }\n";
  for (const FirewallSide* side : sides) edge_chain(s, *side);
  input_chain(s, sides);
  s += "}\n";
  return s;
}

}  // namespace

std::string firewall_script(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
                            const std::string& comment) {
  return script_for(firewall_table(low.uid, high.uid), {&low, &high}, &filter_uid, comment);
}

std::string node_firewall_script(const FirewallSide& node, const std::string& comment) {
  return script_for(node_firewall_table(node.uid), {&node}, nullptr, comment);
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
                           const std::string& comment, const std::string& lock_dir)
    : table_(firewall_table(low.uid, high.uid)) {
  install(firewall_script(low, high, filter_uid, comment), lock_dir);
}

SideFirewall::SideFirewall(const FirewallSide& node, const std::string& comment, const std::string& lock_dir)
    : table_(node_firewall_table(node.uid)) {
  install(node_firewall_script(node, comment), lock_dir);
}

void SideFirewall::install(const std::string& script, const std::string& lock_dir) {
  const std::string lock = lock_dir + "/" + table_ + ".lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock_fd_ < 0) {
    throw std::runtime_error("cannot open the side firewall's lock " + lock + ": " + std::strerror(errno));
  }
  // In a world-writable /run/lock anyone could have made the file first.
  struct stat st {};
  if (::fstat(lock_fd_, &st) != 0 || st.st_uid != ::geteuid() || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    ::close(lock_fd_);
    throw std::runtime_error("the side firewall's lock " + lock + " is not a plain file of this user's; remove it");
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
    ::close(lock_fd_);
    if (e == EWOULDBLOCK) {
      std::string holder = n > 0 ? std::string(pid, static_cast<std::size_t>(n)) : std::string("?");
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      throw std::runtime_error("another portcullisd (pid " + holder + ") runs with these service users and holds " +
                               lock + "; refusing to replace its side firewall");
    }
    throw std::runtime_error("cannot lock " + lock + ": " + std::strerror(e));
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  // The pid is only for the message a second instance prints; the lock holds without it.
  if (::ftruncate(lock_fd_, 0) == 0) (void)!::pwrite(lock_fd_, me.data(), me.size(), 0);
  const std::string err = run_nft(script);
  if (!err.empty()) {
    ::close(lock_fd_);
    throw std::runtime_error("cannot install the side firewall (nftables): " + err);
  }
}

SideFirewall::~SideFirewall() {
  run_nft("delete table inet " + table_ + "\n");
  ::close(lock_fd_);
}

}  // namespace portcullis::supervisor
