// A non-blocking TCP connection on the event loop, plain or TLS, that can be
// upgraded to TLS in place (STARTTLS) as client or server.
//
// Writes are buffered; the connection flushes when the socket is writable.
// Reads are delivered to on_data as they arrive (plaintext after TLS).
// Exactly one on_closed call ends the connection's life, with a reason.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guard/net/event_loop.h"
#include "guard/net/tls.h"

namespace portcullis::net {

struct Endpoint {
  std::string host;   // numeric IPv4/IPv6 literal only (no DNS on the appliance)
  int port = 0;
  std::string to_string() const;
};

class Connection {
 public:
  struct Callbacks {
    // Bytes as they arrive (plaintext after TLS). If on_data calls
    // start_tls_*, no further plaintext is read: bytes after the STARTTLS
    // command in the SAME chunk are still in the chunk being delivered and the
    // stream layer must discard them (pre-TLS injection, RFC 6120 §5.3.3).
    std::function<void(std::string_view)> on_data;
    // Called once the TLS handshake completes (after start_tls_*). The info
    // records the chain verdict; the handshake is never aborted for an
    // untrusted or missing peer certificate: the caller decides.
    std::function<void(const TlsSessionInfo&)> on_tls_established;
    // Called once; after it the object may be destroyed by the owner (not from
    // inside the callback: post the destruction). It is called from the loop
    // (I/O error, EOF, handshake failure, linger end) or synchronously from
    // inside close_now() / a callback that called close_now(). Reasons are
    // human readable: "peer closed", "closed by us", "TLS handshake failed:
    // <OpenSSL reason>", "read failed: ECONNRESET (...)", ...
    // When the peer closes its side while we still have output buffered, that
    // output is flushed first (bounded by 3 s), then on_closed("peer closed").
    // Destroying a Connection that is still open closes it WITHOUT on_closed.
    // Destroy every Connection before its EventLoop.
    std::function<void(const std::string& reason)> on_closed;
    // Called once, from the loop, when the bytes buffered for the peer fall to
    // the mark given to arm_drain() (flow control: the owner holds its senders
    // back until the peer has taken what it was given).
    std::function<void()> on_drained;
  };

  // Takes ownership of a connected, non-blocking socket.
  Connection(EventLoop& loop, int fd, Endpoint peer);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void set_callbacks(Callbacks cb);
  void start();                               // begin reading

  // Buffers; the loop writes when the socket is writable (never writes or
  // calls back from inside send). Ignored once closing or closed.
  void send(std::string_view bytes);
  // Flushes what is buffered (then TLS close_notify, then FIN), waits up to 3 s
  // for the peer to close, then closes; on_closed("closed by us") unless the
  // connection fails first. Reading continues meanwhile (on_data still called).
  void close_after_flush();
  // Closes at once, discarding buffered output; calls on_closed(reason) now.
  void close_now(const std::string& reason);

  // Flow control. set_reading(false) stops reading the socket (the kernel's
  // receive window then fills and TCP slows the peer); bytes that OpenSSL has
  // already decrypted stay there until set_reading(true), which delivers them
  // from the loop. A reset or socket error (EPOLLHUP/EPOLLERR) is still
  // handled while paused; a peer's FIN is read, after its bytes, on resume.
  // Reading stops at once, also inside on_data for the rest of a read burst.
  void set_reading(bool on);
  bool reading() const;
  // on_drained fires once pending_output() is at or below `mark` (at once,
  // from the loop, if it already is).
  void arm_drain(std::size_t mark);

  // Upgrades in place. Bytes already buffered for sending are flushed in plain
  // text first. For the server side, request and verify the client certificate
  // per `ctx`. For the client side, `sni` is the expected server name.
  // The SSL object is made at once (`ctx` may go away afterwards); the
  // handshake runs from the loop and ends in on_tls_established or
  // on_closed("TLS handshake failed: <reason>"). Bytes sent after this call
  // are queued and go out encrypted. Bound the handshake with your own timer.
  void start_tls_server(TlsContext& ctx);
  // `alpn`: one protocol to offer (direct TLS, XEP-0368: "xmpp-server"); empty: none.
  void start_tls_client(TlsContext& ctx, const std::string& sni, std::string_view alpn = {});

  // True once start_tls_* was called (TLS pending, handshaking or established).
  bool is_tls() const;
  bool is_tls_established() const;
  // True if the TLS handshake ended because the peer closed the connection
  // (EOF before it finished: a probe, a health check), not by an error.
  bool handshake_ended_by_peer() const;
  // The session info once the handshake completed, else nullptr.
  const TlsSessionInfo* tls_info() const;
  bool is_open() const;
  const Endpoint& peer() const { return peer_; }
  std::size_t pending_output() const;
  // Bytes ever given to send().
  std::uint64_t bytes_sent() const;
  // At most how many of those the peer's TCP has not acknowledged: what is
  // buffered here plus the kernel's send queue (SIOCOUTQ: not yet sent, or
  // sent and not acknowledged); TLS only adds bytes, so of the bytes given to
  // send(), all but the last this many have reached the peer's kernel (whether
  // its application read them is another matter). nullopt: unknown.
  std::optional<std::uint64_t> unacknowledged_bytes() const;

 private:
  struct Impl;
  Endpoint peer_;
  std::unique_ptr<Impl> impl_;
};

class Listener {
 public:
  // Binds and listens (SO_REUSEADDR, numeric address only, IPv6 sockets are
  // V6ONLY); throws std::runtime_error on failure (control plane). on_accept
  // gets a non-blocking CLOEXEC fd it owns; it may destroy the Listener.
  Listener(EventLoop& loop, const Endpoint& at,
           std::function<void(int fd, Endpoint peer)> on_accept);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  // The bound address (the real port when bound to port 0).
  Endpoint local() const;

 private:
  void rewatch();
  void accept_ready();

  EventLoop& loop_;
  int fd_ = -1;
  std::function<void(int, Endpoint)> on_accept_;
  TimerId pause_timer_ = 0;                              // accept back-off when out of fds
  std::shared_ptr<char> alive_ = std::make_shared<char>(0);  // detects destruction from on_accept
};

// Starts a non-blocking connect; `done` gets the fd (>= 0) or -1 and the error.
// A deadline bounds the attempt. Numeric addresses only. `done` is always
// called later from the loop, never from inside connect_tcp. Errors read like
// "ECONNREFUSED (Connection refused) connecting to 127.0.0.1:5269",
// "connect timeout (127.0.0.1:5269)", "not a numeric IP address: ...".
void connect_tcp(EventLoop& loop, const Endpoint& to, Duration timeout,
                 std::function<void(int fd, std::string error)> done);

}  // namespace portcullis::net
