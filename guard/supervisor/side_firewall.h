// The side firewall: the kernel keeps each edge to its own side's network.
//
// In separated mode every edge runs as its own uid, so an nftables rule set
// can judge each packet an edge sends by the uid of its socket (meta skuid, on
// the output hook). For edge(S) it accepts only
//   - packets to a peer of S's peering table (its host and port), the only
//     connections the edge ever opens, and
//   - replies on connections that one of S's hosts made to one of S's own
//     listeners (conntrack's original tuple, not just a source port);
// anything else is rejected (TCP reset, ICMP otherwise), and a SYN the edge
// sends to anyone but a peer is refused before the reply rule is consulted, so
// a compromised edge(low) that tries to open a stream to a high-side server, to
// answer a connection made to some other port, or to ride a half-open
// connection a far host started (simultaneous open), fails at once. The filter's
// uid is rejected outright (it lives in an empty network namespace anyway).
//
// On the input hook, each listener admits only its `from` hosts (by default the
// side's peers) and, if named, only on its interface: a host of the other side
// cannot even reach edge(low)'s listener, so it cannot hand a compromised edge a
// connection to talk over.
//
// The rule set is one table of its own, named after the two edge uids (two
// appliances cannot share users), replaced whole at start and deleted at stop.
// A lock file held for the table's lifetime keeps a second portcullisd with the
// same users from replacing, or at its stop deleting, a running one's table.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace portcullis::supervisor {

struct Endpoint {
  std::string address;   // numeric IPv4 or IPv6
  int port = 0;
};

struct Listener {
  std::string address;             // numeric, never a wildcard (the config check refuses it)
  int port = 0;
  std::vector<std::string> from;   // who may connect: addresses or address/prefix-length
  std::string interface;           // empty: any
};

struct FirewallSide {
  std::string name;                // "low" / "high"
  std::uint32_t uid = 0;           // the edge's uid
  std::vector<Endpoint> peers;     // what it may connect to
  std::vector<Listener> listen;    // where it accepts connections, and from whom
};

// The table's name for these edge uids.
std::string firewall_table(std::uint32_t low_uid, std::uint32_t high_uid);

// The nft script that (re)creates the table: pure, for tests and logs.
std::string firewall_script(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
                            const std::string& comment);

// A standalone FMUC node's table (one server, the same chains as one side of
// the appliance's: it reaches only its peers, its listeners admit only their
// `from` hosts), named after the node's uid.
std::string node_firewall_table(std::uint32_t node_uid);
std::string node_firewall_script(const FirewallSide& node, const std::string& comment);

class SideFirewall {
 public:
  // Takes the table's lock in lock_dir, then installs the rule set (replacing a
  // stale table of the same name). Throws std::runtime_error with a readable
  // reason (another portcullisd holds the lock; nft's message) when it cannot.
  SideFirewall(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
               const std::string& comment, const std::string& lock_dir = "/run/lock");
  // The same for a standalone node's server.
  SideFirewall(const FirewallSide& node, const std::string& comment, const std::string& lock_dir = "/run/lock");
  // Deletes the table, then releases the lock.
  ~SideFirewall();
  SideFirewall(const SideFirewall&) = delete;
  SideFirewall& operator=(const SideFirewall&) = delete;

  const std::string& table() const { return table_; }

 private:
  void install(const std::string& script, const std::string& lock_dir);

  std::string table_;
  int lock_fd_ = -1;
};

// Runs an nft script through libnftables; returns nft's error text, empty on success.
std::string run_nft(const std::string& script);

}  // namespace portcullis::supervisor
