// The side firewall: the kernel keeps each edge to its own side's network.
//
// In separated mode every edge runs as its own uid, so an nftables rule set
// can judge each packet an edge sends by the uid of its socket (meta skuid, on
// the output hook). For edge(S) it accepts only
//   - packets to a peer of S's peering table (its host and port), the only
//     connections the edge ever opens, and
//   - replies on connections made to one of S's own listeners;
// anything else is rejected (TCP reset, ICMP otherwise), so a compromised
// edge(low) that tries to open a stream to a high-side server, or to answer
// a connection made to some other port, fails at once. The filter's uid is
// rejected outright (it lives in an empty network namespace anyway).
//
// The rule set is one table of its own, named after the two edge uids (two
// appliances cannot share users), replaced whole at start and deleted at stop.
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

struct FirewallSide {
  std::string name;                // "low" / "high"
  std::uint32_t uid = 0;           // the edge's uid
  std::vector<Endpoint> peers;     // what it may connect to
  std::vector<Endpoint> listen;    // where it accepts connections
};

// The table's name for these edge uids.
std::string firewall_table(std::uint32_t low_uid, std::uint32_t high_uid);

// The nft script that (re)creates the table: pure, for tests and logs.
std::string firewall_script(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
                            const std::string& comment);

class SideFirewall {
 public:
  // Installs the rule set (replacing a stale table of the same name). Throws
  // std::runtime_error with nft's message when it cannot.
  SideFirewall(const FirewallSide& low, const FirewallSide& high, std::uint32_t filter_uid,
               const std::string& comment);
  // Deletes the table.
  ~SideFirewall();
  SideFirewall(const SideFirewall&) = delete;
  SideFirewall& operator=(const SideFirewall&) = delete;

  const std::string& table() const { return table_; }

 private:
  std::string table_;
};

// Runs an nft script through libnftables; returns nft's error text, empty on success.
std::string run_nft(const std::string& script);

}  // namespace portcullis::supervisor
