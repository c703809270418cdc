// Many TLS client connections to the daemon, driven from one thread with
// non-blocking sockets and epoll (OpenSSL used directly): for floods of idle
// or slow clients, and for thousands of requests in flight at once. One
// thread keeps the test's own load on the machine small, so what is measured
// is the daemon. The server certificate is not verified.
//
// open() makes connections and completes their handshakes; send() queues
// bytes on one; pump() writes what is queued, reads what arrives (decrypted,
// into Conn::received) and notices closes. HTTP/1.1 answers are cut out of
// the received bytes with take_responses().
//
// Thread-safety: none; one thread at a time drives a fleet.
#pragma once

#include <openssl/ssl.h>
#include <signal.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace hookvault::testing {

// OpenSSL's socket BIO writes with write(2): a write to a connection the
// daemon has closed (a record, or the alert OpenSSL sends when a handshake
// meets EOF) raises SIGPIPE. While this object lives, SIGPIPE is blocked on
// the calling thread, and one that became pending is taken before it is
// unblocked, so the test process never sees it (and the daemon, a child
// spawned outside such a scope, inherits neither the mask nor an ignored
// SIGPIPE). The fleet uses it in every call that may write.
class SigpipeBlocked {
 public:
  SigpipeBlocked();
  ~SigpipeBlocked();
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t saved_{};
};

// One HTTP/1.1 answer (Content-Length framed, as the daemon sends them).
struct RawResponse {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;
};

// Cuts the complete answers off the front of `bytes`; what is left is an
// incomplete one. A malformed head ends the parse (status 0 in the last).
std::vector<RawResponse> take_responses(std::string& bytes);

class TlsFleet {
 public:
  using Clock = std::chrono::steady_clock;

  struct Conn {
    int fd = -1;
    SSL* ssl = nullptr;
    bool connected = false;          // TCP connect completed
    bool handshaken = false;         // TLS handshake completed
    bool failed = false;             // connect or handshake failed
    bool closed = false;             // closed by the peer (EOF, reset, alert) after the handshake
    std::string out;                 // plaintext queued for SSL_write
    std::string received;            // plaintext read so far
    std::size_t received_total = 0;  // bytes of plaintext ever read
    Clock::time_point closed_at{};
  };

  explicit TlsFleet(std::uint16_t port);
  ~TlsFleet();
  TlsFleet(const TlsFleet&) = delete;
  TlsFleet& operator=(const TlsFleet&) = delete;

  // Makes `n` more connections and completes their handshakes, with at most
  // `parallel` in progress at once (a flood that arrives faster than the
  // daemon accepts only fills the listen backlog). Gives up after `timeout`.
  // Returns the index of the first new connection.
  std::size_t open(std::size_t n, std::size_t parallel, std::chrono::milliseconds timeout);

  std::size_t size() const { return conns_.size(); }
  Conn& operator[](std::size_t i) { return conns_[i]; }
  const Conn& operator[](std::size_t i) const { return conns_[i]; }

  // Queues `bytes` on connection `i`; pump() writes them.
  void send(std::size_t i, const std::string& bytes);
  // One round of the event loop: waits at most `wait` for events, handles
  // them. Returns how many connections had events.
  std::size_t pump(std::chrono::milliseconds wait);
  // pump() until `done()` is true or `timeout` passes; returns done().
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

  // Handshaken and not closed.
  std::size_t open_count() const;
  // Closes connection `i` from this side (a FIN).
  void close(std::size_t i);

 private:
  void start_connect(Conn& c);
  void step(std::size_t i, std::uint32_t events);
  void advance_handshake(Conn& c);
  void read_all(Conn& c);
  void write_queued(Conn& c);
  void watch(std::size_t i);
  void mark_closed(Conn& c);

  std::uint16_t port_;
  int epoll_ = -1;
  SSL_CTX* ctx_ = nullptr;
  std::vector<Conn> conns_;
  std::size_t handshaking_ = 0;
};

}  // namespace hookvault::testing
