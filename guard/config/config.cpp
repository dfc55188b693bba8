// Appliance config loader. Two passes over one in-memory copy of the file:
//  1. Xerces-C++ SAX2 parse with schema validation against the local XSD only
//     (guard/config/xml_tree: no schema hints, no DTD, no entity resolution),
//     building a small positioned element tree;
//  2. semantic checks on that tree, each error at the element it concerns.
// The first error of either pass stops the load with a ConfigError.
#include "guard/config/config.h"

#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "guard/config/access.h"
#include "guard/config/xml_tree.h"
#include "guard/xmpp/jid.h"

namespace portcullis::config {

namespace {

namespace fs = std::filesystem;
using Node = XmlNode;

constexpr std::string_view kSchemaFile = "portcullis-config.xsd";
constexpr std::uintmax_t kMaxConfigBytes = 4 * 1024 * 1024;
constexpr std::size_t kMinDialbackSecretBytes = 16;

XmlNode parse_and_validate(const std::string& file, const std::string& text,
                           const std::string& schema_dir) {
  XmlLoad load;
  load.file = file;
  load.schema_file = (fs::path(schema_dir) / kSchemaFile).string();
  load.root_name = "portcullis";
  load.other_root = "node";
  load.what = "config file";
  load.max_bytes = kMaxConfigBytes;
  return parse_validated_xml(load, text);
}

// ----- semantic pass -----

class Checker {
 public:
  // Relative paths resolve against the config file's directory, made absolute
  // so that a later chdir of the daemon cannot change what they name.
  explicit Checker(const std::string& file)
      : file_(file), base_(fs::absolute(fs::path(file)).parent_path()) {}

  [[noreturn]] void fail(const Node& n, const std::string& message) const {
    throw ConfigError(file_, n.line, n.column, message);
  }
  const std::string& file() const { return file_; }

  std::string domain(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    auto d = xmpp::normalize_domain(v);
    if (!d) fail(n, "<" + n.name + "> " + attr + ": expected a domain name, got '" + v + "'");
    return *d;
  }

  std::string pattern(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    std::string_view rest = v;
    bool wildcard = rest.starts_with("*.");
    if (wildcard) rest.remove_prefix(2);
    auto d = xmpp::normalize_domain(rest);
    if (!d) {
      fail(n, "<" + n.name + "> " + attr +
                  ": expected a domain pattern ('example.org' or '*.example.org'), got '" + v + "'");
    }
    return wildcard ? "*." + *d : *d;
  }

  std::string ip(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    unsigned char buf[16];
    if (::inet_pton(AF_INET, v.c_str(), buf) != 1 && ::inet_pton(AF_INET6, v.c_str(), buf) != 1) {
      fail(n, "<" + n.name + "> " + attr +
                  ": expected a numeric IPv4 or IPv6 address (no DNS names), got '" + v + "'");
    }
    return v;
  }

  // A space-separated list of numeric addresses, each optionally /prefix-length.
  std::vector<std::string> prefixes(const Node& n, const std::string& attr) const {
    std::vector<std::string> out;
    std::istringstream words(n.at(attr));
    for (std::string w; words >> w;) {
      const std::size_t slash = w.find('/');
      const std::string addr = w.substr(0, slash);
      unsigned char buf[16];
      const bool v4 = ::inet_pton(AF_INET, addr.c_str(), buf) == 1;
      const bool v6 = !v4 && ::inet_pton(AF_INET6, addr.c_str(), buf) == 1;
      bool ok = v4 || v6;
      if (ok && slash != std::string::npos) {
        const std::string len = w.substr(slash + 1);
        const int max = v4 ? 32 : 128;
        ok = !len.empty() && len.size() <= 3 && len.find_first_not_of("0123456789") == std::string::npos &&
             std::stoi(len) <= max;
      }
      if (!ok) {
        fail(n, "<" + n.name + "> " + attr +
                    ": expected numeric addresses, each optionally /prefix-length (no DNS names), got '" + w + "'");
      }
      out.push_back(w);
    }
    return out;
  }

  // The XSD has range-checked every number already; this only converts.
  template <typename T>
  T number(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    try {
      std::size_t used = 0;
      unsigned long long x = std::stoull(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return static_cast<T>(x);
    } catch (const std::exception&) {
      fail(n, "<" + n.name + "> " + attr + ": expected a number, got '" + v + "'");
    }
  }

  bool boolean(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    return v == "true" || v == "1";
  }

  // Resolves a path against the config file's directory and checks that it is
  // a readable regular file.
  std::string readable_file(const Node& n, const std::string& attr) const {
    fs::path p(n.at(attr));
    if (p.is_relative()) p = base_ / p;
    std::string s = p.lexically_normal().string();
    struct stat st {};
    if (::stat(s.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(s.c_str(), R_OK) != 0) {
      fail(n, "<" + n.name + "> " + attr + ": expected a readable file, got '" + s + "'");
    }
    return s;
  }

  // A path that need not exist yet (a directory the daemon creates).
  std::string path(const Node& n, const std::string& attr) const {
    fs::path p(n.at(attr));
    if (p.is_relative()) p = base_ / p;
    return p.lexically_normal().string();
  }

  // A private key: readable by us, by nobody else.
  std::string private_key_file(const Node& n, const std::string& attr) const {
    std::string s = readable_file(n, attr);
    struct stat st {};
    ::stat(s.c_str(), &st);
    if ((st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)) != 0) {
      fail(n, "<" + n.name + "> " + attr + ": expected a key readable only by its owner, got '" + s +
                  "' with mode " + mode_string(st.st_mode));
    }
    return s;
  }

  // A password (first line of the file): not world-readable, not empty.
  std::string password_file(const Node& n, const std::string& attr) const {
    std::string s = readable_file(n, attr);
    struct stat st {};
    ::stat(s.c_str(), &st);
    if ((st.st_mode & S_IROTH) != 0) {
      fail(n, "<" + n.name + "> " + attr + ": expected a file that is not world-readable, got '" + s +
                  "' with mode " + mode_string(st.st_mode));
    }
    std::ifstream in(s, std::ios::binary);
    std::string first;
    std::getline(in, first);
    if (!first.empty() && first.back() == '\r') first.pop_back();
    if (first.empty()) fail(n, "<" + n.name + "> " + attr + ": expected a password on the first line, got none in '" + s + "'");
    for (char ch : first) {
      if (ch == '\0' || ch == '\r') fail(n, "<" + n.name + "> " + attr + ": expected a password without NUL or CR, in '" + s + "'");
    }
    return s;
  }

  std::string secret_file(const Node& n, const std::string& attr) const {
    std::string s = readable_file(n, attr);
    struct stat st {};
    ::stat(s.c_str(), &st);
    if ((st.st_mode & S_IROTH) != 0) {
      fail(n, "<" + n.name + "> " + attr + ": expected a file that is not world-readable, got '" +
                  s + "' with mode " + mode_string(st.st_mode));
    }
    std::ifstream in(s, std::ios::binary);
    std::string buf(kMinDialbackSecretBytes, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (static_cast<std::size_t>(in.gcount()) < kMinDialbackSecretBytes) {
      fail(n, "<" + n.name + "> " + attr + ": expected a secret of at least " +
                  std::to_string(kMinDialbackSecretBytes) + " bytes, got " +
                  std::to_string(in.gcount()) + " bytes in '" + s + "'");
    }
    return s;
  }

 private:
  static std::string mode_string(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
  }

  const std::string& file_;
  fs::path base_;
};

// "local@domain", with the domain normalized; fails at `n`.
std::string bare_jid(const Checker& c, const Node& n, const std::string& attr) {
  const std::string& v = n.at(attr);
  auto j = xmpp::parse_jid(v);
  if (!j || j->local.empty() || !j->resource.empty()) {
    c.fail(n, "<" + n.name + "> " + attr + ": expected a bare JID (room@service), got '" + v + "'");
  }
  return j->bare();
}

IrcLinkSpec build_irc(const Checker& c, const Node& n, bool reads) {
  IrcLinkSpec l;
  l.line = n.line;
  l.column = n.column;
  l.server = c.ip(n, "server");
  l.port = c.number<int>(n, "port");
  l.tls = n.at("tls") == "required";
  if (!l.tls && !c.boolean(n, "allow-plaintext")) {
    c.fail(n, "<irc> tls: expected 'required', got 'forbidden' (plaintext IRC needs allow-plaintext='true')");
  }
  if (l.tls) {
    if (n.attr("ca") == nullptr || n.attr("server-name") == nullptr) {
      c.fail(n, "<irc>: expected ca='...' and server-name='...' with tls='required' (the server's certificate "
                "is checked against them), got " + std::string(n.attr("ca") == nullptr ? "no ca" : "no server-name"));
    }
    l.ca_file = reads ? c.readable_file(n, "ca") : c.path(n, "ca");
    l.server_name = c.domain(n, "server-name");
  }
  l.channel = n.at("channel");
  for (char ch : l.channel) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
      c.fail(n, "<irc> channel: expected no control characters, got '" + l.channel + "'");
    }
  }
  const auto secret = [&](const char* attr) {
    if (n.attr(attr) == nullptr) return std::string();
    return reads ? c.password_file(n, attr) : c.path(n, attr);
  };
  l.password_file = secret("password-file");
  l.sasl_password_file = secret("sasl-password-file");
  if (const std::string* u = n.attr("sasl-user")) l.sasl_user = *u;
  if (l.sasl_user.empty() != l.sasl_password_file.empty()) {
    c.fail(n, "<irc>: expected sasl-user and sasl-password-file together, got only " +
                  std::string(l.sasl_user.empty() ? "sasl-password-file" : "sasl-user"));
  }
  l.nick = n.at("nick");
  l.max_nick_length = c.number<std::size_t>(n, "max-nick-length");
  if (l.nick.size() > l.max_nick_length) {
    c.fail(n, "<irc> nick: expected at most max-nick-length (" + std::to_string(l.max_nick_length) +
                  ") characters, got '" + l.nick + "'");
  }
  l.line_cap = c.number<std::size_t>(n, "line-cap");
  l.flood_burst = c.number<std::uint32_t>(n, "flood-burst");
  l.flood_interval_ms = c.number<std::uint32_t>(n, "flood-interval-ms");
  l.retry_ms = c.number<std::uint32_t>(n, "retry-ms");
  l.retry_max_ms = c.number<std::uint32_t>(n, "retry-max-ms");
  l.max_puppets = c.number<std::size_t>(n, "max-puppets");
  if (l.retry_max_ms < l.retry_ms) {
    c.fail(n, "<irc>: expected retry-max-ms >= retry-ms, got " + std::to_string(l.retry_max_ms) + " < " +
                  std::to_string(l.retry_ms));
  }
  // Labels: the names are resolved against the SPIF by guard/rooms/irc_labels
  // (at every start and by --check-config); here only what goes together.
  for (const Node& ch : n.children) {
    if (ch.name == "label") l.label = std::make_shared<const Node>(ch);
    else if (ch.name == "clearance") l.clearance = std::make_shared<const Node>(ch);
    else if (ch.name == "unlabelled") l.unlabelled = std::make_shared<const Node>(ch);
  }
  if (n.attr("spif") != nullptr) {
    l.spif_file = reads ? c.readable_file(n, "spif") : c.path(n, "spif");
    if (!l.label || !l.clearance) {
      c.fail(n, "<irc> spif: expected <label> (what IRC messages carry in the room) and <clearance> (what may be "
                "sent to IRC) with it, got " + std::string(!l.label ? "no <label>" : "no <clearance>"));
    }
  } else if (l.label || l.clearance || l.unlabelled) {
    const Node& first = l.label ? *l.label : l.clearance ? *l.clearance : *l.unlabelled;
    c.fail(first, "<" + first.name + ">: expected spif='...' on <irc> (the policy that names this label), got none");
  }
  return l;
}

RoomServiceSpec build_rooms(const Checker& c, const Node& n, bool reads) {
  RoomServiceSpec svc;
  svc.domain = c.domain(n, "domain");
  svc.ping_interval_ms = c.number<std::uint32_t>(n, "ping-interval-ms");
  svc.retry_ms = c.number<std::uint32_t>(n, "retry-ms");
  svc.line = n.line;
  svc.column = n.column;
  for (const Node& rn : n.children) {
    if (rn.name != "room") continue;
    RoomSpec r;
    r.name = rn.at("name");
    for (const RoomSpec& earlier : svc.rooms) {
      if (earlier.name == r.name) {
        c.fail(rn, "<room> name: expected each room of " + svc.domain + " once, got '" + r.name +
                       "' again (first at line " + std::to_string(earlier.line) + ")");
      }
    }
    if (const std::string* t = rn.attr("title")) r.title = *t;
    r.subject = rn.at("subject");
    if (const std::string* l = rn.attr("label")) r.label = *l;
    r.history = c.number<std::size_t>(rn, "history");
    r.members_only = c.boolean(rn, "members-only");
    r.line = rn.line;
    r.column = rn.column;
    const std::string self = r.name + "@" + svc.domain;
    for (const Node& ch : rn.children) {
      if (ch.name == "federate") {
        r.federate_with = bare_jid(c, ch, "with");
        r.federate_line = ch.line;
        r.federate_column = ch.column;
        if (r.federate_with == self) c.fail(ch, "<federate> with: expected another room, got the room itself");
      } else if (ch.name == "accept") {
        std::string from = bare_jid(c, ch, "from");
        if (from == self) c.fail(ch, "<accept> from: expected another room, got the room itself");
        if (from == r.federate_with) {
          c.fail(ch, "<accept> from: '" + from + "' is the room this one federates with (line " +
                         std::to_string(r.federate_line) + "): a link goes one way, or the two form a cycle");
        }
        if (std::find(r.accept_from.begin(), r.accept_from.end(), from) != r.accept_from.end()) {
          c.fail(ch, "<accept> from: expected each room once, got '" + from + "' twice");
        }
        r.accept_from.push_back(std::move(from));
      } else if (ch.name == "owner") {
        r.owners.push_back(bare_jid(c, ch, "jid"));
      } else if (ch.name == "member") {
        r.members.push_back(bare_jid(c, ch, "jid"));
      } else if (ch.name == "irc") {
        r.irc = build_irc(c, ch, reads);
        if (r.members_only) {
          c.fail(ch, "<irc>: expected a room that is not members-only (IRC users are not members), got room '" +
                         r.name + "' members-only");
        }
        // In a room with a default label an unlabelled message carries that
        // label by policy: the IRC link must be told which one to judge it at.
        if (!r.label.empty() && !r.irc->unlabelled) {
          c.fail(ch, "<irc>: expected spif='...' and an <unlabelled> label (what an unlabelled message of room '" +
                         r.name + "' is judged at before it goes to IRC) in a room with a default label, got " +
                         (r.irc->spif_file.empty() ? "no labels" : "no <unlabelled>"));
        }
      }
    }
    svc.rooms.push_back(std::move(r));
  }
  return svc;
}

// An IRC server is on one side: the edge of the other side may not reach it,
// and it is no host of the other side (an IRC network spanning both sides would
// carry chat around the filter). Only the configuration can be checked: the
// operator must not link the two sides' IRC servers to each other.
void check_irc_sides(const Checker& c, const Config& cfg) {
  for (bool low : {true, false}) {
    const Side& side = low ? cfg.low : cfg.high;
    const Side& other = low ? cfg.high : cfg.low;
    std::vector<std::string> other_hosts;
    for (const Peer& p : other.peers) other_hosts.push_back(p.host);
    for (const Listen& l : other.listen) {
      other_hosts.push_back(l.address);
      for (const std::string& f : l.from) other_hosts.push_back(f.substr(0, f.find('/')));
    }
    for (const RoomServiceSpec& osvc : other.rooms) {
      for (const RoomSpec& r : osvc.rooms) {
        if (r.irc) other_hosts.push_back(r.irc->server);
      }
    }
    for (const RoomServiceSpec& svc : side.rooms) {
      for (const RoomSpec& r : svc.rooms) {
        if (!r.irc) continue;
        if (std::find(other_hosts.begin(), other_hosts.end(), r.irc->server) != other_hosts.end()) {
          throw ConfigError(c.file(), r.irc->line, r.irc->column,
                            "<irc> server: '" + r.irc->server + "' is a host of side '" + other.name +
                                "'; an IRC server of side '" + side.name + "' must be on that side only");
        }
      }
    }
  }
}

// Two listeners cannot bind the same socket; better said here than at startup.
void check_listen_unique(const Checker& c, const std::vector<const Node*>& servers) {
  std::map<std::pair<std::string, std::string>, int> listening;   // (address, port) -> line
  for (const Node* server : servers) {
    for (const Node& ch : server->children) {
      if (ch.name != "listen") continue;
      auto [it, fresh] = listening.emplace(std::pair{ch.at("address"), ch.at("port")}, ch.line);
      if (!fresh) {
        c.fail(ch, "<listen>: expected each address and port once, got " + ch.at("address") + " port " +
                       ch.at("port") + " again (first at line " + std::to_string(it->second) + ")");
      }
    }
  }
}

// How messages name a server: "side 'low'", or "the node".
std::string server_name(const Side& s) { return s.name == "node" ? "the node" : "side '" + s.name + "'"; }

// `reads`: this process reads the side's TLS files and dialback secret (the
// appliance and that side's edge); everyone else only resolves their paths.
Side build_side(const Checker& c, const Node& n, bool reads, const std::string& name = {}) {
  Side s;
  s.name = name.empty() ? n.at("name") : name;
  bool needs_dialback = false;
  const Node* dialback_peer = nullptr;
  std::vector<const Node*> domain_cert_nodes;
  for (const Node& ch : n.children) {
    if (ch.name == "listen") {
      Listen l{c.ip(ch, "address"), c.number<int>(ch, "port"), {}, {}, ch.line, ch.column};
      if (ch.attr("from") != nullptr) l.from = c.prefixes(ch, "from");
      if (const std::string* i = ch.attr("interface")) l.interface = *i;
      l.direct_tls = c.boolean(ch, "direct-tls");
      s.listen.push_back(std::move(l));
    } else if (ch.name == "fronts") {
      std::string d = c.domain(ch, "domain");
      if (std::find(s.fronts.begin(), s.fronts.end(), d) != s.fronts.end()) {
        c.fail(ch, "<fronts> domain: expected each fronted domain once, got '" + d + "' twice");
      }
      s.fronts.push_back(std::move(d));
    } else if (ch.name == "tls") {
      s.tls_line = ch.line;
      s.tls_column = ch.column;
      s.cert_file = reads ? c.readable_file(ch, "certificate") : c.path(ch, "certificate");
      s.key_file = reads ? c.readable_file(ch, "key") : c.path(ch, "key");
      s.ca_file = reads ? c.readable_file(ch, "ca") : c.path(ch, "ca");
      if (ch.attr("crl") != nullptr) s.crl_file = reads ? c.readable_file(ch, "crl") : c.path(ch, "crl");
      s.crl_check_chain = ch.at("crl-check") != "leaf";
      for (const Node& dc : ch.children) {
        if (dc.name != "domain-certificate") continue;
        DomainCertificate d;
        d.domain = c.domain(dc, "domain");
        for (const DomainCertificate& seen : s.domain_certs) {
          if (seen.domain == d.domain) {
            c.fail(dc, "<domain-certificate> domain: expected each domain once, got '" + d.domain +
                           "' again (first at line " + std::to_string(seen.line) + ")");
          }
        }
        d.cert_file = reads ? c.readable_file(dc, "certificate") : c.path(dc, "certificate");
        d.key_file = reads ? c.readable_file(dc, "key") : c.path(dc, "key");
        d.line = dc.line;
        d.column = dc.column;
        s.domain_certs.push_back(std::move(d));
        domain_cert_nodes.push_back(&dc);
      }
    } else if (ch.name == "dialback") {
      s.dialback_secret_file = reads ? c.secret_file(ch, "secret-file") : c.path(ch, "secret-file");
    } else if (ch.name == "timeouts") {
      s.connect_timeout_ms = c.number<std::uint32_t>(ch, "connect-ms");
      s.negotiation_timeout_ms = c.number<std::uint32_t>(ch, "negotiation-ms");
      s.keepalive_interval_ms = c.number<std::uint32_t>(ch, "keepalive-ms");
      s.idle_timeout_ms = c.number<std::uint32_t>(ch, "idle-ms");
      s.queue_timeout_ms = c.number<std::uint32_t>(ch, "queue-ms");
      if (s.keepalive_interval_ms >= s.idle_timeout_ms) {
        c.fail(ch, "<timeouts>: expected keepalive-ms below idle-ms, got " +
                       std::to_string(s.keepalive_interval_ms) + " >= " +
                       std::to_string(s.idle_timeout_ms));
      }
    } else if (ch.name == "limits") {
      s.max_stanza_bytes = c.number<std::size_t>(ch, "max-stanza-bytes");
      s.max_depth = c.number<std::size_t>(ch, "max-depth");
      s.max_attributes = c.number<std::size_t>(ch, "max-attributes");
      s.max_queue = c.number<std::size_t>(ch, "max-queue");
      s.max_inbound = c.number<std::size_t>(ch, "max-inbound");
      s.flow_window = c.number<std::size_t>(ch, "flow-window");
      s.overload_wait_ms = c.number<std::uint32_t>(ch, "overload-wait-ms");
    } else if (ch.name == "peer") {
      Peer p;
      p.domain_pattern = c.pattern(ch, "domain");
      p.host = c.ip(ch, "host");
      p.port = c.number<int>(ch, "port");
      const std::string& auth = ch.at("auth");
      p.auth = auth == "dialback" ? PeerAuth::Dialback
               : auth == "any"    ? PeerAuth::Any
                                  : PeerAuth::SaslExternal;
      const std::string& tls = ch.at("tls");
      p.tls = tls == "optional" ? PeerTls::Optional
              : tls == "forbidden" ? PeerTls::Forbidden
                                   : PeerTls::Required;
      if (p.tls != PeerTls::Required && !c.boolean(ch, "allow-plaintext")) {
        c.fail(ch, "<peer domain='" + p.domain_pattern + "'> tls: expected 'required', got '" + tls +
                       "' (plaintext needs allow-plaintext='true' on this peer)");
      }
      p.direct_tls = c.boolean(ch, "direct-tls");
      if (p.direct_tls && p.tls != PeerTls::Required) {
        c.fail(ch, "<peer domain='" + p.domain_pattern + "'> direct-tls: expected tls='required' with it, got tls='" +
                       tls + "'");
      }
      std::istringstream kinds(ch.at("kinds"));
      p.kinds = StanzaKinds{false, false, false};
      for (std::string k; kinds >> k;) {
        if (k == "message") p.kinds.message = true;
        if (k == "presence") p.kinds.presence = true;
        if (k == "iq") p.kinds.iq = true;
      }
      p.line = ch.line;
      p.column = ch.column;
      if (p.auth != PeerAuth::SaslExternal && dialback_peer == nullptr) {
        needs_dialback = true;
        dialback_peer = &ch;
      }
      s.peers.push_back(std::move(p));
    } else if (ch.name == "rooms") {
      s.rooms.push_back(build_rooms(c, ch, reads));
    }
  }
  if (needs_dialback && s.dialback_secret_file.empty()) {
    c.fail(*dialback_peer, "<peer> auth: expected 'sasl-external', got '" + dialback_peer->at("auth") +
                               "' but " + server_name(s) + " has no <dialback secret-file=.../> element");
  }
  // A domain certificate is for a domain this server presents.
  for (std::size_t i = 0; i < s.domain_certs.size(); ++i) {
    const std::string& d = s.domain_certs[i].domain;
    bool presented = std::find(s.fronts.begin(), s.fronts.end(), d) != s.fronts.end();
    for (const RoomServiceSpec& svc : s.rooms) presented = presented || svc.domain == d;
    if (!presented) {
      c.fail(*domain_cert_nodes[i], "<domain-certificate> domain: expected a domain " + server_name(s) +
                                        " fronts or hosts, got '" + d + "'");
    }
  }
  // A listener without `from` accepts the servers this side peers with.
  for (Listen& l : s.listen) {
    if (!l.from.empty()) continue;
    for (const Peer& p : s.peers) {
      if (std::find(l.from.begin(), l.from.end(), p.host) == l.from.end()) l.from.push_back(p.host);
    }
  }
  return s;
}

// 0.0.0.0, any spelling of ::, or an IPv4-mapped IPv6 address (whose rules
// would be in the wrong family and never match).
bool is_unspecified_or_mapped(const std::string& a) {
  in_addr v4{};
  if (::inet_pton(AF_INET, a.c_str(), &v4) == 1) return v4.s_addr == INADDR_ANY;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, a.c_str(), &v6) != 1) return false;
  return IN6_IS_ADDR_UNSPECIFIED(&v6) || IN6_IS_ADDR_V4MAPPED(&v6);
}

bool is_v6_literal(const std::string& a) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET6, a.substr(0, a.find('/')).c_str(), buf) == 1;
}

// In separated mode the side firewall admits to each listener only its side's
// hosts, so a listener must name its address (a wildcard would also accept on
// the other side's interfaces) and must have someone of its family to admit.
void check_listeners(const Checker& c, const Side& side, const Node& side_node) {
  std::size_t i = 0;
  for (const Node& ch : side_node.children) {
    if (ch.name != "listen") continue;
    const Listen& l = side.listen.at(i++);
    if (is_unspecified_or_mapped(l.address)) {
      c.fail(ch, "<listen> address: expected this side's own address in separated mode (the side firewall "
                 "admits only the hosts of " + server_name(side) + " to it), got the wildcard or IPv4-mapped '" + l.address + "'");
    }
    const bool v6 = is_v6_literal(l.address);
    const bool any = std::any_of(l.from.begin(), l.from.end(), [&](const std::string& f) {
      return is_v6_literal(f) == v6;
    });
    if (!any) {
      c.fail(ch, "<listen> from: expected at least one " + std::string(v6 ? "IPv6" : "IPv4") +
                     " address or prefix allowed to connect to " + l.address + " (given or from the peers of " +
                     server_name(side) + "), got none, so no peer could connect");
    }
  }
}

// Each fronted domain must be deliverable by the other side's peering table,
// and must not route back into its own side (that would be a loop).
void check_fronts(const Checker& c, const Side& side, const Node& side_node, const Side& other) {
  for (const Node& ch : side_node.children) {
    if (ch.name != "fronts") continue;
    std::string d = c.domain(ch, "domain");
    for (const Peer& p : side.peers) {
      if (xmpp::domain_matches(p.domain_pattern, d)) {
        c.fail(ch, "<fronts domain='" + d + "'>: expected a domain of the other side, got one "
                   "that side '" + side.name + "' routes to its own <peer domain='" +
                       p.domain_pattern + "'> (line " + std::to_string(p.line) + ")");
      }
    }
    bool routable = std::any_of(other.peers.begin(), other.peers.end(), [&](const Peer& p) {
      return xmpp::domain_matches(p.domain_pattern, d);
    });
    if (!routable) {
      c.fail(ch, "<fronts domain='" + d + "'>: expected a <peer> on side '" + other.name +
                     "' whose domain matches '" + d + "', got none (traffic to it could never be "
                     "delivered)");
    }
  }
}

// The room services: their domains are neither fronted nor routed to a peer,
// every federation link names a room that exists (on the other side, across
// the boundary) or a domain this side routes to (a node beyond), the twin
// accepts it, and following the upstream links never comes back (a tree).
// `servers`: the appliance's two sides, or a node's one server.
void check_rooms(const Checker& c, const std::vector<std::pair<const Side*, const Node*>>& servers) {
  struct Where {
    const Side* side;
    const RoomServiceSpec* svc;
    const RoomSpec* room;
    const Node* node;
  };
  std::map<std::string, Where> rooms;   // bare JID -> where
  std::map<std::string, std::pair<const Side*, const Node*>> services;
  for (const auto& [side, side_node] : servers) {
    std::size_t si = 0;
    for (const Node& sn : side_node->children) {
      if (sn.name != "rooms") continue;
      const RoomServiceSpec& svc = side->rooms.at(si++);
      auto [it, fresh] = services.emplace(svc.domain, std::pair{side, &sn});
      if (!fresh) {
        c.fail(sn, "<rooms> domain: expected each room service once, got '" + svc.domain + "' again (first at line " +
                       std::to_string(it->second.second->line) + ")");
      }
      for (const auto& [s2, unused] : servers) {
        (void)unused;
        if (std::find(s2->fronts.begin(), s2->fronts.end(), svc.domain) != s2->fronts.end()) {
          c.fail(sn, "<rooms> domain: '" + svc.domain + "' is a domain " + server_name(*s2) +
                         " fronts; a hosted service needs a domain of its own");
        }
        for (const Peer& p : s2->peers) {
          if (xmpp::domain_matches(p.domain_pattern, svc.domain)) {
            c.fail(sn, "<rooms> domain: '" + svc.domain + "' matches " + server_name(*s2) + " <peer domain='" +
                           p.domain_pattern + "'> (line " + std::to_string(p.line) +
                           "); a hosted service needs a domain no peer claims");
          }
        }
      }
      std::size_t ri = 0;
      for (const Node& rn : sn.children) {
        if (rn.name != "room") continue;
        const RoomSpec& r = svc.rooms.at(ri++);
        rooms.emplace(r.name + "@" + svc.domain, Where{side, &svc, &r, &rn});
      }
    }
  }
  // A service with IRC gateways owns "irc.<domain>" too: no peer or fronted
  // domain may claim it (a stranger would speak as the gateway).
  for (const auto& [side, side_node] : servers) {
    (void)side_node;
    for (const RoomServiceSpec& svc : side->rooms) {
      const bool has_irc = std::any_of(svc.rooms.begin(), svc.rooms.end(), [](const RoomSpec& r) { return r.irc.has_value(); });
      if (!has_irc) continue;
      const std::string gw = "irc." + svc.domain;
      for (const auto& [s2, n2] : servers) {
        (void)n2;
        for (const Peer& p : s2->peers) {
          if (xmpp::domain_matches(p.domain_pattern, gw)) {
            throw ConfigError(c.file(), p.line, p.column,
                              "<peer domain='" + p.domain_pattern + "'>: matches '" + gw +
                                  "', the address of the IRC gateways of " + svc.domain + "; a peer may not claim it");
          }
        }
        if (std::find(s2->fronts.begin(), s2->fronts.end(), gw) != s2->fronts.end()) {
          c.fail(*side_node, "<fronts domain='" + gw + "'>: the address of the IRC gateways of " + svc.domain +
                                 " may not be fronted");
        }
      }
    }
  }
  auto child = [](const Node& rn, const std::string& name, const std::string& attr, const std::string& value) {
    for (const Node& ch : rn.children) {
      if (ch.name == name && ch.attr(attr) != nullptr) {
        auto j = xmpp::parse_jid(ch.at(attr));
        if (j && j->bare() == value) return &ch;
      }
    }
    return &rn;
  };
  auto routed = [](const Side& side, const std::string& domain) {
    return std::any_of(side.peers.begin(), side.peers.end(),
                       [&](const Peer& p) { return xmpp::domain_matches(p.domain_pattern, domain); });
  };
  for (const auto& [jid, w] : rooms) {
    // A tree: the chain of upstream links never returns to where it began.
    std::set<std::string> passed{jid};
    std::string next = w.room->federate_with;
    while (!next.empty()) {
      if (!passed.insert(next).second) {
        c.fail(*child(*w.node, "federate", "with", w.room->federate_with),
               "<federate>: the federation links from " + jid + " come back to " + next +
                   " (a cycle); FMUC federation must form a tree");
      }
      auto n = rooms.find(next);
      next = n == rooms.end() ? std::string{} : n->second.room->federate_with;
    }
  }
  for (const auto& [jid, w] : rooms) {
    auto links = w.room->accept_from;
    if (!w.room->federate_with.empty()) links.push_back(w.room->federate_with);
    for (const std::string& other : links) {
      const bool upstream = other == w.room->federate_with;
      const Node& at = *child(*w.node, upstream ? "federate" : "accept", upstream ? "with" : "from", other);
      const std::string domain = other.substr(other.find('@') + 1);
      auto svc = services.find(domain);
      if (svc != services.end()) {
        if (svc->second.first == w.side) {
          c.fail(at, "<" + at.name + ">: '" + other + "' is a room of " +
                         (w.side->name == "node" ? "this node's" : "this side's") + " own service " + domain +
                         "; federation links cross the boundary or reach nodes beyond it");
        }
        auto twin = rooms.find(other);
        if (twin == rooms.end()) {
          c.fail(at, "<" + at.name + ">: expected a room of " + domain + ", got '" + other +
                         "', which that service does not have");
        }
        const RoomSpec& t = *twin->second.room;
        const bool mirrored = upstream ? std::find(t.accept_from.begin(), t.accept_from.end(), jid) != t.accept_from.end()
                                       : t.federate_with == jid;
        if (!mirrored) {
          c.fail(at, "<" + at.name + ">: '" + other + "' (line " + std::to_string(twin->second.node->line) +
                         ") does not " + (upstream ? "<accept from='" + jid + "'/>" : "<federate with='" + jid + "'/>") +
                         "; both halves of a federated pair must name each other");
        }
      } else if (!routed(*w.side, domain)) {
        c.fail(at, "<" + at.name + ">: expected a room of a hosted service or of a domain " +
                       (w.side->name == "node" ? std::string("the node") : "side '" + w.side->name + "'") +
                       " routes to (<peer>), got '" + other + "'");
      }
    }
  }
}

AuditConfig build_audit(const Checker& c, const Node& n, bool reads) {
  AuditConfig a;
  a.enabled = true;
  a.line = n.line;
  a.column = n.column;
  a.dir = c.path(n, "dir");
  if (!reads) {
    a.signing_key_file = c.path(n, "signing-key");
    a.public_key_file = c.path(n, "public-key");
  } else {
    a.signing_key_file = c.private_key_file(n, "signing-key");
    a.public_key_file = c.readable_file(n, "public-key");
  }
  a.checkpoint_every_records = c.number<std::uint32_t>(n, "checkpoint-every-records");
  a.checkpoint_every_ms = c.number<std::uint32_t>(n, "checkpoint-every-ms");
  a.segment_max_bytes = c.number<std::uint64_t>(n, "segment-max-bytes");
  a.segment_max_age_s = c.number<std::uint32_t>(n, "segment-max-age-s");
  a.retention_days = c.number<std::uint32_t>(n, "retention-days");
  a.warn_free_percent = c.number<std::uint32_t>(n, "warn-free-percent");
  a.stop_free_percent = c.number<std::uint32_t>(n, "stop-free-percent");
  a.syslog_summary = c.boolean(n, "syslog-summary");
  if (a.stop_free_percent >= a.warn_free_percent) {
    c.fail(n, "<audit>: expected stop-free-percent below warn-free-percent, got " +
                  std::to_string(a.stop_free_percent) + " >= " + std::to_string(a.warn_free_percent));
  }
  return a;
}

GuardsConfig build_guards(const Checker& c, const Node& n, bool reads) {
  GuardsConfig g;
  const Node* seen[2] = {nullptr, nullptr};
  for (const Node& dir : n.children) {
    const bool up = dir.at("from") == "low";
    if (dir.at("from") == dir.at("to")) {
      c.fail(dir, "<direction>: expected from and to to differ, got '" + dir.at("from") + "' twice");
    }
    if (seen[up ? 0 : 1] != nullptr) {
      c.fail(dir, "<direction>: expected each direction once, got " + dir.at("from") + " to " + dir.at("to") +
                      " again (first at line " + std::to_string(seen[up ? 0 : 1]->line) + ")");
    }
    seen[up ? 0 : 1] = &dir;
    std::vector<GuardSpec>& out = up ? g.low_to_high : g.high_to_low;
    for (const Node& gn : dir.children) {
      GuardSpec spec;
      spec.name = gn.at("name");
      spec.line = gn.line;
      spec.column = gn.column;
      for (const GuardSpec& other : out) {
        if (other.name == spec.name) {
          c.fail(gn, "<" + gn.name + "> name: expected a name unique in its direction, got '" + spec.name +
                         "' again (first at line " + std::to_string(other.line) + ")");
        }
      }
      if (gn.name == "schema") {
        spec.kind = GuardSpec::Kind::Schema;
        spec.profile = reads ? c.readable_file(gn, "profile") : c.path(gn, "profile");
      } else {
        spec.kind = GuardSpec::Kind::External;
        spec.program = reads ? c.readable_file(gn, "program") : c.path(gn, "program");
        if (reads && ::access(spec.program.c_str(), X_OK) != 0) {
          c.fail(gn, "<external> program: expected an executable file, got '" + spec.program + "'");
        }
        spec.timeout_ms = c.number<std::uint32_t>(gn, "timeout-ms");
        if (const std::string* u = gn.attr("run-as-user")) spec.run_as_user = *u;
        for (const Node& arg : gn.children) spec.args.push_back(arg.text);
      }
      out.push_back(std::move(spec));
    }
  }
  return g;
}


const char* direction_name(bool up) { return up ? "low-to-high" : "high-to-low"; }

std::vector<Waiver> build_waivers(const Checker& c, const Node& n, const GuardsConfig& guards) {
  std::vector<Waiver> out;
  for (const Node& wn : n.children) {
    Waiver w;
    w.of = wn.at("of") == "guard-isolation" ? Waiver::Of::GuardIsolation : Waiver::Of::NoGuardStage;
    if (const std::string* d = wn.attr("direction")) w.direction = *d;
    if (const std::string* g = wn.attr("guard")) w.guard = *g;
    w.reason = wn.at("reason");
    w.line = wn.line;
    w.column = wn.column;
    if (w.of == Waiver::Of::NoGuardStage) {
      if (w.direction.empty()) {
        c.fail(wn, "<waiver of='no-guard-stage'>: expected direction='low-to-high' or 'high-to-low', got none");
      }
      if (!w.guard.empty()) c.fail(wn, "<waiver of='no-guard-stage'>: expected no guard attribute, got '" + w.guard + "'");
      const auto& chain = w.direction == "low-to-high" ? guards.low_to_high : guards.high_to_low;
      if (!chain.empty()) {
        c.fail(wn, "<waiver of='no-guard-stage' direction='" + w.direction + "'>: expected a direction without a "
                   "guard stage, got one with " + std::to_string(chain.size()) + " guard(s) (remove the waiver)");
      }
    } else {
      if (w.guard.empty()) c.fail(wn, "<waiver of='guard-isolation'>: expected guard='<guard name>', got none");
      bool found = false;
      for (bool up : {true, false}) {
        if (!w.direction.empty() && w.direction != direction_name(up)) continue;
        for (const GuardSpec& g : up ? guards.low_to_high : guards.high_to_low) {
          if (g.name == w.guard && g.kind == GuardSpec::Kind::External) found = true;
        }
      }
      if (!found) {
        c.fail(wn, "<waiver of='guard-isolation' guard='" + w.guard + "'>: expected the name of an <external> guard" +
                       (w.direction.empty() ? "" : " of direction " + w.direction) + ", got none by that name");
      }
    }
    for (const Waiver& other : out) {
      if (other.of == w.of && other.direction == w.direction && other.guard == w.guard) {
        c.fail(wn, "<waiver>: expected each waiver once, got a repeat of line " + std::to_string(other.line));
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

// Fail closed at start: each direction has a guard stage, or an explicit waiver.
void check_guard_stage(const Checker& c, const Config& cfg, const Node& at) {
  for (bool up : {true, false}) {
    if (!(up ? cfg.guards.low_to_high : cfg.guards.high_to_low).empty()) continue;
    const bool waived = std::any_of(cfg.waivers.begin(), cfg.waivers.end(), [&](const Waiver& w) {
      return w.of == Waiver::Of::NoGuardStage && w.direction == direction_name(up);
    });
    if (!waived) {
      c.fail(at, std::string("direction ") + direction_name(up) + " has no guard stage: expected <guards><direction from='" +
                     (up ? "low' to='high'" : "high' to='low'") + "> with at least one guard, or <waivers><waiver "
                     "of='no-guard-stage' direction='" + direction_name(up) + "' reason='...'/></waivers>");
    }
  }
  if (cfg.supervision.mode != SupervisionMode::Separated) return;
  for (const auto* chain : {&cfg.guards.low_to_high, &cfg.guards.high_to_low}) {
    for (const GuardSpec& g : *chain) {
      if (!g.run_as_user.empty()) {
        throw ConfigError(cfg.file, g.line, g.column,
                          "<external name='" + g.name + "'> run-as-user: expected none in separated mode (the "
                          "filter is not root and cannot change user; its guards run as the filter user in their "
                          "own namespaces), got '" + g.run_as_user + "'");
      }
    }
  }
}

ControlConfig build_control(const Checker& c, const Node& n) {
  ControlConfig cc;
  cc.enabled = true;
  cc.socket = c.path(n, "socket");
  if (cc.socket.size() >= 108) {   // sizeof sockaddr_un::sun_path
    c.fail(n, "<control> socket: expected a path shorter than 108 bytes (a Unix socket address), got " +
                  std::to_string(cc.socket.size()) + " bytes");
  }
  cc.group = n.at("group");
  cc.line = n.line;
  cc.column = n.column;
  return cc;
}

// The operator group must exist, and no child may be in it: a child that
// could connect to the control socket could reload the policy.
void resolve_control_group(const Checker& c, const Node& at, ControlConfig& cc,
                           std::initializer_list<const ProcessUser*> children) {
  if (!cc.enabled || cc.group.empty()) return;
  struct group gr {};
  struct group* found = nullptr;
  char buf[8192];
  if (::getgrnam_r(cc.group.c_str(), &gr, buf, sizeof buf, &found) != 0 || found == nullptr) {
    c.fail(at, "<control> group: expected an existing group, got '" + cc.group +
                   "' (create the operator group, or leave group out to use the supervisor's own)");
  }
  cc.gid = gr.gr_gid;
  for (const ProcessUser* u : children) {
    if (u->uid == 0 && u->gid == 0) continue;   // not resolved (single-user-development)
    if (u->gid == cc.gid) {
      c.fail(at, "<control> group: expected a group that no child runs as, got '" + cc.group + "', the group of '" +
                     u->name + "'");
    }
  }
}

void resolve_user(const Checker& c, const Node& at, const char* attr, ProcessUser& u) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  if (::getpwnam_r(u.name.c_str(), &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
    c.fail(at, std::string("<supervision> ") + attr + ": expected an existing user, got '" + u.name +
                   "' (create the service users, or set mode='single-user-development' for development)");
  }
  if (pw.pw_uid == 0) c.fail(at, std::string("<supervision> ") + attr + ": expected a user other than root, got '" + u.name + "'");
  u.uid = pw.pw_uid;
  u.gid = pw.pw_gid;
}

void resolve_users(const Checker& c, const Node& at, Supervision& s) {
  resolve_user(c, at, "low-edge-user", s.low_edge);
  resolve_user(c, at, "high-edge-user", s.high_edge);
  resolve_user(c, at, "filter-user", s.filter);
  if (s.low_edge.uid == s.high_edge.uid || s.low_edge.uid == s.filter.uid || s.high_edge.uid == s.filter.uid) {
    c.fail(at, "<supervision>: expected three distinct users for low-edge-user, high-edge-user and filter-user, got '" +
                   s.low_edge.name + "', '" + s.high_edge.name + "', '" + s.filter.name + "'");
  }
}

struct SeparationNodes {
  const Node* root;
  const Node* low;
  const Node* high;
  const Node* policy;
  const Node* audit;
  const Node* guards;
};

struct Who {
  std::string role;
  const ProcessUser* user;
  std::string text() const { return role + " (user " + user->name + ")"; }
};

std::string want_words(int want) {
  if (want == kRead) return "read";
  if (want == (kRead | kSearch)) return "read and execute";
  if (want == (kRead | kWrite | kSearch)) return "read, write and enter";
  return "access";
}

void require(const Checker& c, const Node& n, const std::string& what, const std::string& path, const Who& who,
             int want) {
  if (auto why = access_denied(path, who.user->uid, who.user->gid, want)) {
    c.fail(n, what + " '" + path + "': expected " + who.text() + " to be able to " + want_words(want) +
                  " it, but " + *why);
  }
}

void forbid(const Checker& c, const Node& n, const std::string& what, const std::string& path, const Who& who,
            int want) {
  if (!access_denied(path, who.user->uid, who.user->gid, want)) {
    c.fail(n, what + " '" + path + "': expected " + who.text() + " NOT to be able to " + want_words(want) +
                  " it, but it can (tighten the owner or mode)");
  }
}

// No service user (but `owner`, whose own file it is) may be able to change it.
void forbid_tamper(const Checker& c, const Node& n, const std::string& what, const std::string& path,
                   const std::vector<const Who*>& users, const Who* owner = nullptr) {
  for (const Who* w : users) {
    if (w == owner) continue;
    if (auto why = tamper_possible(path, w->user->uid, w->user->gid)) {
      c.fail(n, what + " '" + path + "': expected " + w->text() + " NOT to be able to change it, but " + *why +
                    " (give it and its directories to root, not writable by others)");
    }
  }
}

const Node* child_named(const Node& n, const std::string& name) {
  for (const Node& ch : n.children) {
    if (ch.name == name) return &ch;
  }
  return nullptr;
}

// A side's IRC links: its edge reads the CA and the passwords; nobody else
// reads a password; no service user changes any of them.
void check_irc_files(const Checker& c, const Side& side, const Who& own, const std::vector<const Who*>& others,
                     const std::vector<const Who*>& all) {
  for (const RoomServiceSpec& svc : side.rooms) {
    for (const RoomSpec& r : svc.rooms) {
      if (!r.irc) continue;
      Node at;
      at.name = "irc";
      at.line = r.irc->line;
      at.column = r.irc->column;
      if (!r.irc->ca_file.empty()) {
        require(c, at, "IRC CA file", r.irc->ca_file, own, kRead);
        forbid_tamper(c, at, "IRC CA file", r.irc->ca_file, all);
      }
      for (const std::string* f : {&r.irc->password_file, &r.irc->sasl_password_file}) {
        if (f->empty()) continue;
        require(c, at, "IRC password", *f, own, kRead);
        for (const Who* o : others) forbid(c, at, "IRC password", *f, *o, kRead);
        forbid_tamper(c, at, "IRC password", *f, all, &own);
      }
    }
  }
}

void check_separation(const Checker& c, const Config& cfg, const std::string& schema_dir, const SeparationNodes& n) {
  const Who low{"edge(low)", &cfg.supervision.low_edge};
  const Who high{"edge(high)", &cfg.supervision.high_edge};
  const Who filter{"filter", &cfg.supervision.filter};
  const std::string schema = (fs::path(schema_dir) / kSchemaFile).string();
  const std::vector<const Who*> all{&low, &high, &filter};
  for (const Who* w : all) {
    require(c, *n.root, "the config file", fs::absolute(cfg.file).string(), *w, kRead);
    require(c, *n.root, "the schema directory", schema_dir, *w, kRead | kSearch);
    require(c, *n.root, "the config schema", schema, *w, kRead);
  }
  // What decides what each process does must be beyond every service user's reach.
  forbid_tamper(c, *n.root, "the config file", fs::absolute(cfg.file).string(), all);
  forbid_tamper(c, *n.root, "the schema directory", schema_dir, all);
  forbid_tamper(c, *n.root, "the config schema", schema, all);
  for (bool is_low : {true, false}) {
    const Side& side = is_low ? cfg.low : cfg.high;
    const Who& own = is_low ? low : high;
    const Who& other = is_low ? high : low;
    const Node& side_node = is_low ? *n.low : *n.high;
    if (const Node* tls = child_named(side_node, "tls")) {
      require(c, *tls, "certificate", side.cert_file, own, kRead);
      require(c, *tls, "CA file", side.ca_file, own, kRead);
      if (!side.crl_file.empty()) require(c, *tls, "CRL file", side.crl_file, own, kRead);
      require(c, *tls, "key", side.key_file, own, kRead);
      forbid(c, *tls, "side " + side.name + "'s key", side.key_file, other, kRead);
      forbid(c, *tls, "side " + side.name + "'s key", side.key_file, filter, kRead);
      forbid_tamper(c, *tls, "certificate", side.cert_file, all);
      forbid_tamper(c, *tls, "CA file", side.ca_file, all);
      if (!side.crl_file.empty()) forbid_tamper(c, *tls, "CRL file", side.crl_file, all);
      forbid_tamper(c, *tls, "side " + side.name + "'s key", side.key_file, all, &own);
      for (const Node& dn : tls->children) {
        if (dn.name != "domain-certificate") continue;
        const DomainCertificate* dc = nullptr;
        for (const DomainCertificate& d : side.domain_certs) {
          if (d.line == dn.line && d.column == dn.column) dc = &d;
        }
        if (dc == nullptr) continue;
        const std::string what = dc->domain + "'s key";
        require(c, dn, "certificate", dc->cert_file, own, kRead);
        require(c, dn, "key", dc->key_file, own, kRead);
        forbid(c, dn, what, dc->key_file, other, kRead);
        forbid(c, dn, what, dc->key_file, filter, kRead);
        forbid_tamper(c, dn, "certificate", dc->cert_file, all);
        forbid_tamper(c, dn, what, dc->key_file, all, &own);
      }
    }
    check_irc_files(c, side, own, {&other, &filter}, all);
    if (const Node* db = child_named(side_node, "dialback")) {
      require(c, *db, "dialback secret", side.dialback_secret_file, own, kRead);
      forbid(c, *db, "side " + side.name + "'s dialback secret", side.dialback_secret_file, other, kRead);
      forbid(c, *db, "side " + side.name + "'s dialback secret", side.dialback_secret_file, filter, kRead);
      forbid_tamper(c, *db, "side " + side.name + "'s dialback secret", side.dialback_secret_file, all, &own);
    }
  }
  require(c, *n.policy, "the policy file", cfg.policy_file, filter, kRead);
  forbid_tamper(c, *n.policy, "the policy file", cfg.policy_file, all);
  if (n.audit != nullptr) {
    require(c, *n.audit, "the audit signing key", cfg.audit.signing_key_file, filter, kRead);
    require(c, *n.audit, "the audit public key", cfg.audit.public_key_file, filter, kRead);
    forbid_tamper(c, *n.audit, "the audit signing key", cfg.audit.signing_key_file, all, &filter);
    forbid_tamper(c, *n.audit, "the audit public key", cfg.audit.public_key_file, all);
    for (const Who* w : {&low, &high}) forbid(c, *n.audit, "the audit signing key", cfg.audit.signing_key_file, *w, kRead);
    std::error_code ec;
    if (fs::exists(cfg.audit.dir, ec)) {
      require(c, *n.audit, "the archive directory", cfg.audit.dir, filter, kRead | kWrite | kSearch);
      for (const Who* w : {&low, &high}) {
        forbid(c, *n.audit, "the archive directory", cfg.audit.dir, *w, kRead);
        forbid(c, *n.audit, "the archive directory", cfg.audit.dir, *w, kSearch);
      }
    } else if (auto why = reach_denied(cfg.audit.dir, filter.user->uid, filter.user->gid)) {
      c.fail(*n.audit, "the archive directory '" + cfg.audit.dir + "' (created at start): expected " + filter.text() +
                           " to be able to reach it, but " + *why);
    }
  }
  if (n.guards != nullptr) {
    for (const auto* chain : {&cfg.guards.low_to_high, &cfg.guards.high_to_low}) {
      for (const GuardSpec& g : *chain) {
        Node at;
        at.name = g.kind == GuardSpec::Kind::Schema ? "schema" : "external";
        at.line = g.line;
        at.column = g.column;
        const bool schema_guard = g.kind == GuardSpec::Kind::Schema;
        const std::string& file = schema_guard ? g.profile : g.program;
        const std::string what = schema_guard ? "the guard profile" : "the guard program";
        require(c, at, what, file, filter, schema_guard ? kRead : kRead | kSearch);
        forbid_tamper(c, at, what, file, all);
      }
    }
  }
}

Config build_config(const std::string& file, const std::string& schema_dir, const Node& root, LoadFor who) {
  Checker c(file);
  Config cfg;
  cfg.file = file;
  const Node* low = nullptr;
  const Node* high = nullptr;
  const Node* policy = nullptr;
  const Node* audit = nullptr;
  const Node* guards = nullptr;
  const Node* supervision = nullptr;
  const Node* waivers = nullptr;
  const Node* control = nullptr;
  for (const Node& ch : root.children) {
    if (ch.name == "logging") {
      cfg.log_target = ch.at("target");
      cfg.log_level = ch.at("level");
    } else if (ch.name == "control") {
      control = &ch;
      cfg.control = build_control(c, ch);
    } else if (ch.name == "supervision") {
      cfg.supervision.restart_backoff_ms = c.number<std::uint32_t>(ch, "restart-backoff-ms");
      cfg.supervision.restart_backoff_max_ms = c.number<std::uint32_t>(ch, "restart-backoff-max-ms");
      cfg.supervision.watchdog_ms = c.number<std::uint32_t>(ch, "watchdog-ms");
      cfg.supervision.give_up_after = c.number<std::uint32_t>(ch, "give-up-after");
      cfg.supervision.mode = ch.at("mode") == "single-user-development" ? SupervisionMode::SingleUserDevelopment
                                                                          : SupervisionMode::Separated;
      cfg.supervision.low_edge.name = ch.at("low-edge-user");
      cfg.supervision.high_edge.name = ch.at("high-edge-user");
      cfg.supervision.filter.name = ch.at("filter-user");
      cfg.supervision.line = ch.line;
      cfg.supervision.column = ch.column;
      supervision = &ch;
      if (cfg.supervision.restart_backoff_max_ms < cfg.supervision.restart_backoff_ms) {
        c.fail(ch, "<supervision>: expected restart-backoff-max-ms >= restart-backoff-ms, got " +
                       std::to_string(cfg.supervision.restart_backoff_max_ms) + " < " +
                       std::to_string(cfg.supervision.restart_backoff_ms));
      }
    } else if (ch.name == "side") {
      const Node*& slot = ch.at("name") == "low" ? low : high;
      if (slot != nullptr) {
        c.fail(ch, "<side> name: expected one side 'low' and one side 'high', got a second side '" +
                       ch.at("name") + "' (first at line " + std::to_string(slot->line) + ")");
      }
      slot = &ch;
    } else if (ch.name == "policy") {
      policy = &ch;
    } else if (ch.name == "audit") {
      audit = &ch;
    } else if (ch.name == "guards") {
      guards = &ch;
    } else if (ch.name == "waivers") {
      waivers = &ch;
    }
  }
  if (low == nullptr || high == nullptr || policy == nullptr) {
    c.fail(root, "<portcullis>: expected sides 'low' and 'high' and a <policy>");  // XSD prevents
  }
  const bool appliance = who == LoadFor::Appliance;
  const bool filter = appliance || who == LoadFor::Filter;
  cfg.low = build_side(c, *low, appliance || who == LoadFor::EdgeLow);
  cfg.high = build_side(c, *high, appliance || who == LoadFor::EdgeHigh);
  check_fronts(c, cfg.low, *low, cfg.high);
  check_fronts(c, cfg.high, *high, cfg.low);
  check_rooms(c, {{&cfg.low, low}, {&cfg.high, high}});
  check_irc_sides(c, cfg);

  check_listen_unique(c, {low, high});

  // The security policy is a separate file with its own owner (the security
  // officer); the filter process loads and validates it (policy/policy_file).
  // Here it only has to exist, so a typo in its path stops the config check.
  cfg.policy_file = filter ? c.readable_file(*policy, "file") : c.path(*policy, "file");
  if (audit != nullptr) cfg.audit = build_audit(c, *audit, filter);
  if (guards != nullptr) cfg.guards = build_guards(c, *guards, filter);
  if (waivers != nullptr) cfg.waivers = build_waivers(c, *waivers, cfg.guards);
  if (filter) check_guard_stage(c, cfg, guards != nullptr ? *guards : root);
  if (appliance && cfg.supervision.mode == SupervisionMode::Separated) {
    resolve_users(c, supervision != nullptr ? *supervision : root, cfg.supervision);
    if (control != nullptr) {
      resolve_control_group(c, *control, cfg.control,
                            {&cfg.supervision.low_edge, &cfg.supervision.high_edge, &cfg.supervision.filter});
    }
    SeparationNodes nodes{&root, low, high, policy, audit, guards};
    check_separation(c, cfg, schema_dir, nodes);
    check_listeners(c, cfg.low, *low);
    check_listeners(c, cfg.high, *high);
  } else if (appliance && control != nullptr) {
    resolve_control_group(c, *control, cfg.control, {});
  }
  return cfg;
}

// Separated mode for a node: its user can read what it needs, and changes
// nothing that decides what it does.
void check_node_separation(const Checker& c, const Config& cfg, const std::string& schema_dir, const Node& root,
                           const Node& server) {
  const Who node{"node", &cfg.supervision.node};
  const std::vector<const Who*> all{&node};
  const std::string schema = (fs::path(schema_dir) / kSchemaFile).string();
  require(c, root, "the config file", fs::absolute(cfg.file).string(), node, kRead);
  require(c, root, "the schema directory", schema_dir, node, kRead | kSearch);
  require(c, root, "the config schema", schema, node, kRead);
  forbid_tamper(c, root, "the config file", fs::absolute(cfg.file).string(), all);
  forbid_tamper(c, root, "the schema directory", schema_dir, all);
  forbid_tamper(c, root, "the config schema", schema, all);
  const Side& side = cfg.node;
  if (const Node* tls = child_named(server, "tls")) {
    require(c, *tls, "certificate", side.cert_file, node, kRead);
    require(c, *tls, "CA file", side.ca_file, node, kRead);
    if (!side.crl_file.empty()) require(c, *tls, "CRL file", side.crl_file, node, kRead);
    require(c, *tls, "key", side.key_file, node, kRead);
    for (const DomainCertificate& dc : side.domain_certs) {
      require(c, *tls, "certificate", dc.cert_file, node, kRead);
      require(c, *tls, "key", dc.key_file, node, kRead);
      forbid_tamper(c, *tls, "certificate", dc.cert_file, all);
    }
    forbid_tamper(c, *tls, "certificate", side.cert_file, all);
    forbid_tamper(c, *tls, "CA file", side.ca_file, all);
    if (!side.crl_file.empty()) forbid_tamper(c, *tls, "CRL file", side.crl_file, all);
  }
  if (const Node* db = child_named(server, "dialback")) {
    require(c, *db, "dialback secret", side.dialback_secret_file, node, kRead);
  }
  check_irc_files(c, side, node, {}, all);
}

Config build_node_config(const std::string& file, const std::string& schema_dir, const Node& root, LoadFor who) {
  Checker c(file);
  Config cfg;
  cfg.file = file;
  cfg.kind = ConfigKind::Node;
  if (who == LoadFor::Filter || who == LoadFor::EdgeLow || who == LoadFor::EdgeHigh) {
    c.fail(root, "<node>: a standalone FMUC node has no filter and no sides; this process expected an appliance "
                 "config (<portcullis>)");
  }
  const Node* server = nullptr;
  const Node* supervision = nullptr;
  const Node* control = nullptr;
  for (const Node& ch : root.children) {
    if (ch.name == "logging") {
      cfg.log_target = ch.at("target");
      cfg.log_level = ch.at("level");
    } else if (ch.name == "control") {
      control = &ch;
      cfg.control = build_control(c, ch);
    } else if (ch.name == "supervision") {
      Supervision& sup = cfg.supervision;
      sup.restart_backoff_ms = c.number<std::uint32_t>(ch, "restart-backoff-ms");
      sup.restart_backoff_max_ms = c.number<std::uint32_t>(ch, "restart-backoff-max-ms");
      sup.watchdog_ms = c.number<std::uint32_t>(ch, "watchdog-ms");
      sup.give_up_after = c.number<std::uint32_t>(ch, "give-up-after");
      sup.mode = ch.at("mode") == "single-user-development" ? SupervisionMode::SingleUserDevelopment
                                                             : SupervisionMode::Separated;
      sup.node.name = ch.at("node-user");
      sup.line = ch.line;
      sup.column = ch.column;
      supervision = &ch;
      if (sup.restart_backoff_max_ms < sup.restart_backoff_ms) {
        c.fail(ch, "<supervision>: expected restart-backoff-max-ms >= restart-backoff-ms, got " +
                       std::to_string(sup.restart_backoff_max_ms) + " < " + std::to_string(sup.restart_backoff_ms));
      }
    } else if (ch.name == "server") {
      server = &ch;
    }
  }
  if (server == nullptr) c.fail(root, "<node>: expected a <server>");   // XSD prevents
  cfg.node = build_side(c, *server, /*reads=*/true, "node");
  check_listen_unique(c, {server});
  if (cfg.node.rooms.empty()) {
    c.fail(*server, "<server>: expected at least one <rooms domain=...> (a standalone node exists to host "
                    "federated rooms), got none");
  }
  check_rooms(c, {{&cfg.node, server}});
  if (who == LoadFor::Appliance && cfg.supervision.mode == SupervisionMode::Separated) {
    const Node& at = supervision != nullptr ? *supervision : root;
    resolve_user(c, at, "node-user", cfg.supervision.node);
    if (control != nullptr) resolve_control_group(c, *control, cfg.control, {&cfg.supervision.node});
    check_node_separation(c, cfg, schema_dir, root, *server);
    check_listeners(c, cfg.node, *server);
  } else if (who == LoadFor::Appliance && control != nullptr) {
    resolve_control_group(c, *control, cfg.control, {});
  }
  return cfg;
}

}  // namespace

ConfigError::ConfigError(const std::string& file, int line, int column, const std::string& message)
    : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                         message),
      file_(file),
      line_(line),
      column_(column),
      message_(message) {}

const Waiver* isolation_waiver(const Config& cfg, const std::string& direction, const std::string& guard) {
  for (const Waiver& w : cfg.waivers) {
    if (w.of == Waiver::Of::GuardIsolation && w.guard == guard && (w.direction.empty() || w.direction == direction)) {
      return &w;
    }
  }
  return nullptr;
}

const RoomServiceSpec* hosted_service(const Side& side, std::string_view domain) {
  for (const RoomServiceSpec& s : side.rooms) {
    if (s.domain == domain) return &s;
  }
  return nullptr;
}

Config load_config(const std::string& file, const std::string& schema_dir, LoadFor who) {
  const std::string text = read_file_capped(file, kMaxConfigBytes, "config file");
  Node root = parse_and_validate(file, text, schema_dir);
  if (root.name == "node") return build_node_config(file, schema_dir, root, who);
  if (who == LoadFor::Node) {
    root.fail("<portcullis>: this process runs a standalone node and expected a <node> config");
  }
  return build_config(file, schema_dir, root, who);
}

}  // namespace portcullis::config
