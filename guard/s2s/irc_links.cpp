#include "guard/s2s/irc_links.h"

#include <unistd.h>

#include <chrono>

namespace portcullis::s2s {

struct IrcLinks::Link {
  std::uint64_t gen = 0;     // which open() made it: late callbacks of an older one are ignored
  std::unique_ptr<net::Connection> conn;
  bool up = false;           // TCP (and TLS) established, gateway told
  bool closing = false;
  std::string pending;       // sent before the connection was up
};

IrcLinks::IrcLinks(net::EventLoop& loop, Logger& log, rooms::RoomService& service, Deliver deliver)
    : loop_(loop), log_(log), service_(service), deliver_(std::move(deliver)) {
  // Every TLS context now, at start: once the edge runs under its seccomp
  // allow-list it can open no file (the CA), and a context made later would fail.
  for (const config::IrcLinkSpec* spec : service_.irc_links()) {
    if (!spec->tls || tls_.count(spec->ca_file) != 0) continue;
    net::TlsConfig tc;
    tc.ca_file = spec->ca_file;
    tc.max_send_fragment = 512;   // a record is at most an IRC line long (see TlsConfig)
    tls_[spec->ca_file] = std::make_unique<net::TlsContext>(tc);   // throws: the edge does not start
  }
}

IrcLinks::~IrcLinks() { *alive_ = false; }

std::int64_t IrcLinks::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void IrcLinks::open(const std::string& room, int conn, const config::IrcLinkSpec& spec) {
  const Key key{room, conn};
  links_.erase(key);
  links_[key] = std::make_unique<Link>();
  const std::uint64_t gen = ++next_gen_;
  links_[key]->gen = gen;
  std::weak_ptr<bool> token = alive_;
  const net::Endpoint to{spec.server, spec.port};
  net::connect_tcp(loop_, to, std::chrono::milliseconds(10000), [this, token, key, gen, to, spec](int fd, std::string error) {
    if (token.expired()) {
      if (fd >= 0) ::close(fd);
      return;
    }
    auto it = links_.find(key);
    if (it == links_.end() || it->second->gen != gen) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      closed(key, gen, error);
      return;
    }
    Link& l = *it->second;
    l.conn = std::make_unique<net::Connection>(loop_, fd, to);
    net::Connection::Callbacks cb;
    cb.on_data = [this, key](std::string_view bytes) {
      deliver_(service_, [&](rooms::Outputs& out) { service_.irc_data(key.first, key.second, bytes, now(), out); });
    };
    const bool tls = spec.tls;
    const std::string name = spec.server_name;
    cb.on_tls_established = [this, key, gen, name](const net::TlsSessionInfo& info) {
      auto i = links_.find(key);
      if (i == links_.end() || i->second->gen != gen) return;
      // An IRC server is named by a DNS-ID (or the CN of a certificate with no
      // SAN): not by the XMPP identities certificate_matches_domain also takes.
      net::CertIdentities dns_only;
      dns_only.dns_names = info.peer.dns_names;
      dns_only.common_names = info.peer.common_names;
      if (!info.peer_cert_trusted || !net::certificate_matches_domain(dns_only, name)) {
        const std::string why = !info.peer_cert_trusted ? "the IRC server's certificate is not trusted: " + info.verify_error
                                                        : "the IRC server's certificate does not name " + name;
        LogLine(log_, LogLevel::Error) << "IRC " << key.first << "#" << key.second << ": " << why;
        i->second->conn->close_now(why);
        return;
      }
      i->second->up = true;
      deliver_(service_, [&](rooms::Outputs& out) { service_.irc_connected(key.first, key.second, now(), out); });
      if (auto j = links_.find(key); j != links_.end() && !j->second->pending.empty()) {
        j->second->conn->send(j->second->pending);
        j->second->pending.clear();
      }
    };
    cb.on_closed = [this, key, gen](const std::string& why) {
      std::weak_ptr<bool> t = alive_;
      loop_.post([this, t, key, gen, why] {
        if (!t.expired()) closed(key, gen, why);
      });
    };
    l.conn->set_callbacks(std::move(cb));
    l.conn->start();
    if (tls) {
      auto ctx = tls_.find(spec.ca_file);
      if (ctx == tls_.end()) {
        l.conn->close_now("no TLS context for " + spec.ca_file);
        return;
      }
      l.conn->start_tls_client(*ctx->second, name);
      return;
    }
    l.up = true;
    deliver_(service_, [&](rooms::Outputs& out) { service_.irc_connected(key.first, key.second, now(), out); });
    if (auto j = links_.find(key); j != links_.end() && !j->second->pending.empty() && j->second->conn) {
      j->second->conn->send(j->second->pending);
      j->second->pending.clear();
    }
  });
}

void IrcLinks::send(const std::string& room, int conn, const std::string& bytes) {
  auto it = links_.find({room, conn});
  if (it == links_.end()) return;
  Link& l = *it->second;
  if (l.up && l.conn) {
    l.conn->send(bytes);
  } else if (l.pending.size() < 65536) {
    l.pending += bytes;
  }
}

void IrcLinks::close(const std::string& room, int conn) {
  auto it = links_.find({room, conn});
  if (it == links_.end()) return;
  Link& l = *it->second;
  l.closing = true;
  if (l.conn) {
    l.conn->close_after_flush();
  } else {
    links_.erase(it);
  }
}

void IrcLinks::closed(const Key& key, std::uint64_t gen, const std::string& why) {
  auto it = links_.find(key);
  if (it == links_.end() || it->second->gen != gen) return;   // an older connection of the same number
  const bool by_us = it->second->closing;
  // Destroyed later: we may be inside one of its callbacks' posts only.
  std::unique_ptr<Link> gone = std::move(it->second);
  links_.erase(it);
  if (!by_us) {
    LogLine(log_, LogLevel::Info) << "IRC connection " << key.first << "#" << key.second << " closed: " << why;
    deliver_(service_, [&](rooms::Outputs& out) { service_.irc_closed(key.first, key.second, why, now(), out); });
  }
  loop_.post([g = std::shared_ptr<Link>(std::move(gone))] {});
}

void IrcLinks::close_all() {
  for (auto& [k, l] : links_) {
    l->closing = true;
    if (l->conn) l->conn->close_after_flush();
  }
}

}  // namespace portcullis::s2s
