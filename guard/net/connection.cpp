#include "guard/net/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "guard/net/tls_internal.h"

namespace portcullis::net {

namespace {

constexpr std::size_t kReadChunk = 16384;
// Per readiness event, so one busy peer cannot starve the others.
constexpr std::size_t kReadBudget = 256 * 1024;
// After close_after_flush has sent everything (and FIN), how long we wait for
// the peer to close its side before dropping the socket.
constexpr Duration kCloseLinger{3000};
// Listener back-off when out of fds (level-triggered accept would spin).
constexpr Duration kAcceptPause{100};

std::string errno_name(int e) {
  const char* name = ::strerrorname_np(e);
  std::string r = name ? name : ("errno " + std::to_string(e));
  r += " (";
  r += std::strerror(e);
  r += ")";
  return r;
}

// Parses a numeric IPv4/IPv6 literal ("[::1]" accepted); never resolves names.
bool parse_numeric(const Endpoint& ep, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  if (ep.port < 0 || ep.port > 65535) return false;
  std::string host = ep.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(ep.port));
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(ep.port));
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

Endpoint endpoint_of(const sockaddr_storage& ss) {
  Endpoint ep;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
    ep.port = ntohs(v4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    ep.port = ntohs(v6->sin6_port);
  }
  ep.host = buf;
  return ep;
}

std::string not_numeric_error(const Endpoint& ep) {
  return "not a numeric IP address: '" + ep.host + "' port " + std::to_string(ep.port) +
         " (the guard never resolves DNS names)";
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

}  // namespace

std::string Endpoint::to_string() const {
  if (host.find(':') != std::string::npos && host.front() != '[') {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

// ---------------------------------------------------------------------------
// Connection

struct Connection::Impl {
  enum class State { Created, Open, Closing, Closed };
  enum class Tls { None, Pending, Handshaking, Established };

  EventLoop& loop;
  int fd;
  Endpoint peer;
  Callbacks cb;
  State state = State::Created;
  Tls tls = Tls::None;
  std::unique_ptr<SSL, SslFree> ssl;
  detail::VerifyRecord verify;
  TlsSessionInfo info;

  // Raw bytes for the socket while in plain text.
  std::string out;
  std::size_t out_off = 0;
  // Application bytes waiting for SSL_write once TLS is up.
  std::string app_out;
  std::size_t app_off = 0;
  std::uint64_t sent_total = 0;   // bytes ever given to send() (delivery accounting)

  bool hs_wants_write = false;      // handshake blocked on a writable socket
  bool read_wants_write = false;    // SSL_read needs to send (TLS 1.3 KeyUpdate reply...)
  bool write_wants_read = false;    // SSL_write needs to receive first
  bool tls_shutdown_pending = false;  // close_notify still to be sent
  bool fin_sent = false;              // shutdown(SHUT_WR) done, lingering for the peer's close
  TimerId linger_timer = 0;
  bool doomed = false;  // a close is already posted; ignore I/O until then
  bool peer_eof = false;  // the peer closed its side; stop reading
  bool handshake_eof = false;   // the handshake ended by the peer's EOF
  bool paused = false;    // flow control: the owner stopped reading (set_reading)
  bool drain_armed = false;
  std::size_t drain_mark = 0;
  std::string eof_reason;  // set when we flush our last bytes after the peer's EOF

  Impl(EventLoop& l, int f, Endpoint p) : loop(l), fd(f), peer(std::move(p)) {}

  ~Impl() {
    if (linger_timer) loop.cancel_timer(linger_timer);
    if (fd >= 0) {
      loop.unwatch(fd);
      if (ssl) loop.return_free_memory_soon();   // destroyed open (close_now asks otherwise)
      ssl.reset();
      ::close(fd);
    }
  }

  bool closed() const { return state == State::Closed; }

  static void compact(std::string& buf, std::size_t& off) {
    if (off == buf.size()) {
      // A written buffer is given back, so an idle stream holds no send buffer
      // (about 1 KiB each, measured) and one idle after a flood does not keep
      // its high-water mark. The next send allocates again: once per loop turn
      // with output, which bench_guard's flood does not tell apart.
      std::string().swap(buf);
      off = 0;
    } else if (off > 65536 && off * 2 > buf.size()) {
      buf.erase(0, off);
      off = 0;
    }
  }

  bool out_pending() const { return out_off < out.size(); }
  bool app_pending() const { return app_off < app_out.size(); }

  void update_interest() {
    if (closed() || doomed || state == State::Created) return;
    std::uint32_t want = 0;
    switch (tls) {
      case Tls::None:
        want = (peer_eof || paused ? 0u : kReadable) | (out_pending() ? kWritable : 0u);
        break;
      case Tls::Pending:
        // Stop reading: what the peer sends next is its TLS handshake.
        want = kWritable;
        break;
      case Tls::Handshaking:
        want = hs_wants_write ? kWritable : kReadable;
        break;
      case Tls::Established:
        want = peer_eof || paused ? 0u : kReadable;
        // Ask for writability only when a write can make progress, never just
        // because the socket is writable (that would spin on EPOLLOUT).
        if ((app_pending() && !write_wants_read) || read_wants_write || tls_shutdown_pending) want |= kWritable;
        break;
    }
    loop.modify(fd, want);
  }

  void close_now(const std::string& reason) {
    if (closed()) return;
    state = State::Closed;
    if (linger_timer) {
      loop.cancel_timer(linger_timer);
      linger_timer = 0;
    }
    loop.unwatch(fd);
    // A TLS stream's state (SSL object, session, peer certificate) is freed now.
    if (ssl) loop.return_free_memory_soon();
    ssl.reset();  // SSL_set_fd's BIO does not close the fd
    ::close(fd);
    fd = -1;
    std::string().swap(out);
    std::string().swap(app_out);
    out_off = app_off = 0;
    auto on_closed = std::move(cb.on_closed);
    cb.on_closed = nullptr;
    if (on_closed) on_closed(reason);
  }

  void on_io(std::uint32_t ev) {
    if (closed() || doomed) return;
    switch (tls) {
      case Tls::None:
        if (ev & kWritable) flush_plain();
        // Paused, a hangup is still read: it ends in the EOF or the error
        // (and epoll would otherwise report it again and again).
        if (!closed() && !peer_eof && ((ev & kHangup) || (!paused && (ev & kReadable)))) read_plain(ev & kHangup);
        break;
      case Tls::Pending:
        flush_plain();
        if (!closed() && !out_pending()) {
          if (state == State::Closing) {
            close_now("closed by us");
          } else {
            tls = Tls::Handshaking;
            drive_handshake();
          }
        }
        break;
      case Tls::Handshaking:
        drive_handshake();
        break;
      case Tls::Established:
        // Try both directions: either may be unblocked by the other
        // (WANT_READ in a write, WANT_WRITE in a read).
        if (!peer_eof && (!paused || (ev & kHangup))) tls_read(ev & kHangup);
        if (!closed()) tls_write();
        break;
    }
    if (!closed()) update_interest();
    if (!closed()) check_drain();
  }

  std::size_t pending() const { return (out.size() - out_off) + (app_out.size() - app_off); }

  void check_drain() {
    if (!drain_armed || pending() > drain_mark) return;
    drain_armed = false;
    if (cb.on_drained) {
      auto f = cb.on_drained;  // the owner may replace the callbacks inside
      f();
    }
  }

  void flush_plain() {
    while (out_pending()) {
      ssize_t n = ::send(fd, out.data() + out_off, out.size() - out_off, MSG_NOSIGNAL);
      if (n > 0) {
        out_off += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      close_now("write failed: " + errno_name(errno));
      return;
    }
    compact(out, out_off);
    if (!out_pending() && state == State::Closing && tls == Tls::None) finish_close();
  }

  void read_plain(bool hangup = false) {
    char buf[kReadChunk];
    std::size_t total = 0;
    while (total < kReadBudget && (!paused || hangup)) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        total += static_cast<std::size_t>(n);
        if (cb.on_data) cb.on_data(std::string_view(buf, static_cast<std::size_t>(n)));
        if (closed()) return;
        // STARTTLS was requested from on_data: whatever follows on the wire
        // belongs to TLS, so stop reading plain text now.
        if (tls != Tls::None) return;
        continue;
      }
      if (n == 0) {
        on_eof("peer closed");
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close_now("read failed: " + errno_name(errno));
      return;
    }
  }

  // The peer finished sending. If we still owe it bytes (say the reply to its
  // closing tag), deliver them first, bounded by the linger timer.
  void on_eof(const std::string& reason) {
    if (peer_eof) return;
    peer_eof = true;
    if (state == State::Closing) {
      close_now("closed by us");
      return;
    }
    if (!out_pending() && !app_pending()) {
      send_close_notify();
      close_now(reason);
      return;
    }
    state = State::Closing;
    eof_reason = reason;
    linger_timer = loop.add_timer(kCloseLinger, [this] {
      linger_timer = 0;
      close_now(eof_reason);
    });
  }

  // Answers the peer's close with ours, best effort (non-blocking, once), so
  // the peer sees a clean TLS end rather than a truncation.
  void send_close_notify() {
    if (tls != Tls::Established || !ssl) return;
    ERR_clear_error();
    SSL_shutdown(ssl.get());
    ERR_clear_error();
  }

  // Sends FIN once everything is out, then waits (bounded) for the peer's
  // close so that our last bytes are not destroyed by an RST.
  void finish_close() {
    if (fin_sent || closed()) return;
    if (!eof_reason.empty()) {
      send_close_notify();
      close_now(eof_reason);  // the peer is gone already; nothing to wait for
      return;
    }
    if (tls == Tls::Established && tls_shutdown_pending) {
      ERR_clear_error();
      int r = SSL_shutdown(ssl.get());
      if (r < 0) {
        int err = SSL_get_error(ssl.get(), r);
        if (err == SSL_ERROR_WANT_WRITE) return;  // retried when writable
      }
      tls_shutdown_pending = false;
    }
    fin_sent = true;
    ::shutdown(fd, SHUT_WR);
    linger_timer = loop.add_timer(kCloseLinger, [this] {
      linger_timer = 0;
      close_now("closed by us");
    });
  }

  void start_tls(SSL_CTX* ctx, bool server, const std::string& sni, std::string_view alpn = {}) {
    if (closed()) return;
    if (tls != Tls::None) {
      close_now("TLS requested twice on one connection");
      return;
    }
    ERR_clear_error();
    ssl.reset(ctx ? SSL_new(ctx) : nullptr);
    std::string alpn_wire;   // one length-prefixed protocol name
    if (!alpn.empty() && alpn.size() < 256) alpn_wire = std::string(1, static_cast<char>(alpn.size())) + std::string(alpn);
    if (!ssl || SSL_set_fd(ssl.get(), fd) != 1 ||
        // SSL_set_alpn_protos returns 0 on success, unlike the rest of OpenSSL.
        (!alpn_wire.empty() && SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                                                   static_cast<unsigned>(alpn_wire.size())) != 0)) {
      ssl.reset();
      // Deferred: never call on_closed from inside the caller's own call.
      std::string reason = "TLS setup failed: " + detail::openssl_error_text();
      doomed = true;
      state = State::Closing;
      loop.modify(fd, 0);
      loop.post([this_alive = alive, this_ptr = this, reason] {
        if (!this_alive.expired()) this_ptr->close_now(reason);
      });
      return;
    }
    SSL_set_app_data(ssl.get(), &verify);
    if (server) {
      SSL_set_accept_state(ssl.get());
    } else {
      if (!sni.empty()) SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
      SSL_set_connect_state(ssl.get());
    }
    // The handshake begins from the loop once plain output is flushed, so that
    // on_closed is never called from inside this call.
    tls = Tls::Pending;
    update_interest();
  }

  std::string ssl_failure_text(int err, int saved_errno) {
    if (err == SSL_ERROR_SYSCALL) {
      std::string queued = detail::openssl_error_text("");
      if (!queued.empty()) return queued;
      if (saved_errno != 0) return errno_name(saved_errno);
      return "peer closed the connection";
    }
    if (err == SSL_ERROR_ZERO_RETURN) return "peer sent close_notify";
    return detail::openssl_error_text();
  }

  void drive_handshake() {
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(ssl.get());
    if (r == 1) {
      tls = Tls::Established;
      hs_wants_write = false;
      // The handshake's scratch (certificates, key shares, transcript) is
      // freed now, in holes between the live state of the streams.
      loop.return_free_memory_soon();
      fill_session_info();
      if (cb.on_tls_established) cb.on_tls_established(info);
      if (closed()) return;
      // Application data may have arrived with the last handshake flight and
      // sit in OpenSSL's buffer where epoll cannot see it.
      tls_read();
      if (!closed()) tls_write();
      return;
    }
    int saved_errno = errno;
    int err = SSL_get_error(ssl.get(), r);
    if (err == SSL_ERROR_WANT_READ) {
      hs_wants_write = false;
    } else if (err == SSL_ERROR_WANT_WRITE) {
      hs_wants_write = true;
    } else {
      const unsigned long first = ERR_peek_error();
      handshake_eof = (err == SSL_ERROR_SYSCALL && first == 0 && saved_errno == 0) ||
                      (err == SSL_ERROR_SSL && ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
      close_now("TLS handshake failed: " + ssl_failure_text(err, saved_errno));
    }
  }

  void fill_session_info() {
    SSL* s = ssl.get();
    info = TlsSessionInfo{};
    info.protocol = SSL_get_version(s);
    if (const char* c = SSL_get_cipher_name(s)) info.cipher = c;
    // Server: the name the client asked for; client: the name we sent.
    // The SNI callback refuses names that are not host names; kept printable
    // here too, since it goes to logs and the archive.
    if (const char* sn = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name)) {
      for (const char* c = sn; *c != '\0' && info.sni.size() < 253; ++c) info.sni += (*c > 0x20 && *c < 0x7f) ? *c : '?';
    }
    const unsigned char* proto = nullptr;
    unsigned proto_len = 0;
    SSL_get0_alpn_selected(s, &proto, &proto_len);
    if (proto != nullptr) info.alpn.assign(reinterpret_cast<const char*>(proto), proto_len);
    if (X509* own = SSL_get_certificate(s)) info.local_cert_sha256 = certificate_identities(own).sha256_fingerprint;
    X509* peer_cert = SSL_get0_peer_certificate(s);
    info.peer_cert_present = peer_cert != nullptr;
    if (!peer_cert) {
      info.verify_error = "peer presented no certificate";
      return;
    }
    info.peer = certificate_identities(peer_cert);
    long result = SSL_get_verify_result(s);
    int err = verify.first_error != X509_V_OK ? verify.first_error : static_cast<int>(result);
    info.peer_cert_trusted = err == X509_V_OK;
    if (!info.peer_cert_trusted) {
      info.verify_error = X509_verify_cert_error_string(err);
      if (verify.error_depth >= 0) info.verify_error += " (at depth " + std::to_string(verify.error_depth) + ")";
    } else if (!verify.ocsp_error.empty()) {
      info.peer_cert_trusted = false;
      info.verify_error = verify.ocsp_error;
    }
  }

  void tls_read(bool hangup = false) {
    char buf[kReadChunk];
    std::size_t total = 0;
    // Past the budget, keep going only while OpenSSL holds already-received
    // bytes: epoll would never report those (set_reading(true) posts a read
    // for what a pause left there).
    while ((total < kReadBudget || SSL_has_pending(ssl.get())) && (!paused || hangup)) {
      ERR_clear_error();
      errno = 0;
      int n = SSL_read(ssl.get(), buf, sizeof buf);
      if (n > 0) {
        read_wants_write = false;
        total += static_cast<std::size_t>(n);
        if (cb.on_data) cb.on_data(std::string_view(buf, static_cast<std::size_t>(n)));
        if (closed()) return;
        continue;
      }
      int saved_errno = errno;
      int err = SSL_get_error(ssl.get(), n);
      if (err == SSL_ERROR_WANT_READ) {
        read_wants_write = false;
        return;
      }
      if (err == SSL_ERROR_WANT_WRITE) {
        read_wants_write = true;
        return;
      }
      if (err == SSL_ERROR_ZERO_RETURN) {
        on_eof("peer closed");
        return;
      }
      // OpenSSL 3 reports a TCP close without close_notify as an SSL error.
      if ((err == SSL_ERROR_SYSCALL && saved_errno == 0 && ERR_peek_error() == 0) ||
          (err == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        ERR_clear_error();
        on_eof("peer closed without TLS close_notify");
        return;
      }
      close_now("TLS read failed: " + ssl_failure_text(err, saved_errno));
      return;
    }
  }

  void tls_write() {
    while (app_pending()) {
      std::size_t len = std::min<std::size_t>(app_out.size() - app_off, INT_MAX / 2);
      ERR_clear_error();
      errno = 0;
      int n = SSL_write(ssl.get(), app_out.data() + app_off, static_cast<int>(len));
      if (n > 0) {
        write_wants_read = false;
        app_off += static_cast<std::size_t>(n);
        continue;
      }
      int saved_errno = errno;
      int err = SSL_get_error(ssl.get(), n);
      if (err == SSL_ERROR_WANT_WRITE) {
        write_wants_read = false;
        break;
      }
      if (err == SSL_ERROR_WANT_READ) {
        write_wants_read = true;
        break;
      }
      close_now("TLS write failed: " + ssl_failure_text(err, saved_errno));
      return;
    }
    compact(app_out, app_off);
    if (!app_pending() && state == State::Closing) finish_close();
  }

  // Lets a posted callback find out whether this Impl still exists.
  std::shared_ptr<char> alive_token = std::make_shared<char>(0);
  std::weak_ptr<char> alive = alive_token;
};

Connection::Connection(EventLoop& loop, int fd, Endpoint peer)
    : peer_(peer), impl_(std::make_unique<Impl>(loop, fd, std::move(peer))) {
  // Small stanzas must not wait for Nagle (40 ms stalls); harmless on non-TCP fds.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Connection::~Connection() = default;

void Connection::set_callbacks(Callbacks cb) { impl_->cb = std::move(cb); }

void Connection::start() {
  auto& im = *impl_;
  if (im.state != Impl::State::Created) return;
  im.state = Impl::State::Open;
  Impl* p = impl_.get();
  try {
    im.loop.watch(im.fd, kReadable, [p](std::uint32_t ev) { p->on_io(ev); });
  } catch (const std::exception& e) {
    // Kernel out of resources: report through on_closed, from the loop.
    std::string reason = std::string("cannot watch socket: ") + e.what();
    im.loop.post([alive = im.alive, p, reason] {
      if (!alive.expired()) p->close_now(reason);
    });
    return;
  }
  im.update_interest();
}

void Connection::send(std::string_view bytes) {
  auto& im = *impl_;
  if (im.state == Impl::State::Closed || im.state == Impl::State::Closing || bytes.empty()) return;
  im.sent_total += bytes.size();
  if (im.tls == Impl::Tls::None) {
    im.out.append(bytes);
  } else {
    im.app_out.append(bytes);
  }
  im.update_interest();
}

void Connection::close_after_flush() {
  auto& im = *impl_;
  if (im.state != Impl::State::Open) {
    if (im.state == Impl::State::Created) close_now("closed by us");
    return;
  }
  im.state = Impl::State::Closing;
  switch (im.tls) {
    case Impl::Tls::None:
      if (!im.out_pending()) im.finish_close();
      break;
    case Impl::Tls::Pending:
      break;  // on_io closes once the plain bytes are out
    case Impl::Tls::Handshaking:
      // Nothing of ours can be delivered before the handshake; finish it quickly.
      im.loop.post([alive = im.alive, p = impl_.get()] {
        if (!alive.expired()) p->close_now("closed by us");
      });
      break;
    case Impl::Tls::Established:
      im.tls_shutdown_pending = true;
      if (!im.app_pending()) im.finish_close();
      break;
  }
  im.update_interest();
}

void Connection::close_now(const std::string& reason) { impl_->close_now(reason); }

void Connection::set_reading(bool on) {
  auto& im = *impl_;
  if (im.paused == !on) return;
  im.paused = !on;
  if (im.closed()) return;
  im.update_interest();
  if (on && im.tls == Impl::Tls::Established && im.ssl && SSL_has_pending(im.ssl.get())) {
    // Decrypted bytes wait in OpenSSL where epoll cannot see them.
    im.loop.post([alive = im.alive, p = impl_.get()] {
      if (alive.expired() || p->closed() || p->doomed || p->paused || p->peer_eof) return;
      p->tls_read();
      if (!p->closed()) p->tls_write();
      if (!p->closed()) p->update_interest();
    });
  }
}

bool Connection::reading() const { return !impl_->paused; }

void Connection::arm_drain(std::size_t mark) {
  auto& im = *impl_;
  im.drain_mark = mark;
  im.drain_armed = true;
  if (im.pending() <= mark) {
    im.loop.post([alive = im.alive, p = impl_.get()] {
      if (!alive.expired() && !p->closed()) p->check_drain();
    });
  }
}

void Connection::start_tls_server(TlsContext& ctx) {
  impl_->start_tls(static_cast<SSL_CTX*>(ctx.native_server()), true, {});
}

void Connection::start_tls_client(TlsContext& ctx, const std::string& sni, std::string_view alpn) {
  impl_->start_tls(static_cast<SSL_CTX*>(ctx.native_client()), false, sni, alpn);
}

bool Connection::is_tls() const { return impl_->tls != Impl::Tls::None; }

bool Connection::is_tls_established() const { return impl_->tls == Impl::Tls::Established; }
bool Connection::handshake_ended_by_peer() const { return impl_->handshake_eof; }

const TlsSessionInfo* Connection::tls_info() const {
  return impl_->tls == Impl::Tls::Established ? &impl_->info : nullptr;
}

bool Connection::is_open() const {
  return impl_->state == Impl::State::Open || impl_->state == Impl::State::Created;
}

std::size_t Connection::pending_output() const {
  const auto& im = *impl_;
  return (im.out.size() - im.out_off) + (im.app_out.size() - im.app_off);
}

std::uint64_t Connection::bytes_sent() const { return impl_->sent_total; }

std::optional<std::uint64_t> Connection::unacknowledged_bytes() const {
  const auto& im = *impl_;
  if (im.fd < 0) return std::nullopt;
  int outq = 0;   // bytes in the send queue: not yet sent, or sent and not acknowledged
  if (::ioctl(im.fd, SIOCOUTQ, &outq) != 0 || outq < 0) return std::nullopt;
  return pending_output() + static_cast<std::uint64_t>(outq);
}

// ---------------------------------------------------------------------------
// Listener

Listener::Listener(EventLoop& loop, const Endpoint& at, std::function<void(int fd, Endpoint peer)> on_accept)
    : loop_(loop), on_accept_(std::move(on_accept)) {
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!parse_numeric(at, ss, len)) throw std::runtime_error("cannot listen: " + not_numeric_error(at));
  fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("cannot listen on " + at.to_string() + ": socket: " + errno_name(errno));
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) < 0 || ::listen(fd_, 128) < 0) {
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("cannot listen on " + at.to_string() + ": " + errno_name(e));
  }
  try {
    rewatch();
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

Listener::~Listener() {
  if (pause_timer_) loop_.cancel_timer(pause_timer_);
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    ::close(fd_);
  }
}

void Listener::rewatch() {
  loop_.watch(fd_, kReadable, [this](std::uint32_t) { accept_ready(); });
}

void Listener::accept_ready() {
  std::weak_ptr<char> alive = alive_;
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;  // that one connection is gone
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        // Out of resources: stop watching for a moment instead of spinning.
        loop_.unwatch(fd_);
        pause_timer_ = loop_.add_timer(kAcceptPause, [this] {
          pause_timer_ = 0;
          rewatch();
        });
      }
      return;  // EAGAIN or an error we cannot act on
    }
    // Copy: the callback may destroy this Listener (and on_accept_ with it).
    auto cb = on_accept_;
    if (cb) {
      cb(fd, endpoint_of(ss));
    } else {
      ::close(fd);
    }
    if (alive.expired()) return;
  }
}

Endpoint Listener::local() const {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  std::memset(&ss, 0, sizeof ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return {};
  return endpoint_of(ss);
}

// ---------------------------------------------------------------------------
// connect_tcp

namespace {

struct ConnectAttempt {
  EventLoop& loop;
  int fd = -1;
  TimerId timer = 0;
  bool done = false;
  std::string target;
  std::function<void(int, std::string)> cb;

  ConnectAttempt(EventLoop& l, std::string t, std::function<void(int, std::string)> c)
      : loop(l), target(std::move(t)), cb(std::move(c)) {}
  ~ConnectAttempt() {
    if (fd >= 0) {
      loop.unwatch(fd);
      ::close(fd);
    }
  }

  // Always called from a loop callback (watch or timer), never from connect_tcp.
  void finish(bool ok, const std::string& error) {
    if (done) return;
    done = true;
    if (timer) loop.cancel_timer(timer);
    timer = 0;
    int result = -1;
    if (fd >= 0) {
      loop.unwatch(fd);
      if (ok) {
        result = fd;
      } else {
        ::close(fd);
      }
      fd = -1;
    }
    auto done_cb = std::move(cb);
    done_cb(result, ok ? std::string() : error);
  }
};

}  // namespace

void connect_tcp(EventLoop& loop, const Endpoint& to, Duration timeout,
                 std::function<void(int fd, std::string error)> done) {
  sockaddr_storage ss;
  socklen_t len = 0;
  // Completion is always asynchronous, so callers see one code path.
  auto fail_later = [&loop, &done](std::string error) {
    loop.post([cb = std::move(done), error = std::move(error)] { cb(-1, error); });
  };
  if (!parse_numeric(to, ss, len) || to.port == 0) {
    fail_later(not_numeric_error(to));
    return;
  }
  auto attempt = std::make_shared<ConnectAttempt>(loop, to.to_string(), std::move(done));
  attempt->fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (attempt->fd < 0) {
    std::string err = "socket: " + errno_name(errno) + " connecting to " + attempt->target;
    loop.post([attempt, err] { attempt->finish(false, err); });
    return;
  }
  int r;
  do {
    r = ::connect(attempt->fd, reinterpret_cast<sockaddr*>(&ss), len);
  } while (r < 0 && errno == EINTR);
  if (r == 0) {
    loop.post([attempt] { attempt->finish(true, {}); });
    return;
  }
  if (errno != EINPROGRESS) {
    std::string err = errno_name(errno) + " connecting to " + attempt->target;
    loop.post([attempt, err] { attempt->finish(false, err); });
    return;
  }
  try {
    loop.watch(attempt->fd, kWritable, [attempt](std::uint32_t) {
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (::getsockopt(attempt->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
      if (soerr == 0) {
        attempt->finish(true, {});
      } else {
        attempt->finish(false, errno_name(soerr) + " connecting to " + attempt->target);
      }
    });
  } catch (const std::exception& e) {
    std::string err = std::string("cannot watch socket: ") + e.what();
    loop.post([attempt, err] { attempt->finish(false, err); });
    return;
  }
  attempt->timer = loop.add_timer(timeout, [attempt] {
    attempt->timer = 0;
    attempt->finish(false, "connect timeout (" + attempt->target + ")");
  });
}

}  // namespace portcullis::net
