// An HTTPS listener (Boost.Beast over Asio, C++20 coroutines): the public
// webhook listener (handler: the Pipeline) and the mutual-TLS admin listener
// (handler: the AdminApi) are two Servers.
//
// One coroutine per connection: TLS handshake, then a keep-alive loop of
// read request (fresh parser each time; header, body, chunk-extension and
// trailer limits; RFC 9112 framing, see src/net/http_framing.hpp), hand it to
// the RequestHandler, write the Reply. Timeouts: `idle_timeout` while waiting
// for the first byte of a request, `header_timeout` for the rest of the head
// (a client trickling bytes is cut off), `body_timeout` for the body.
// Oversized bodies get 413; oversized heads, chunk extensions or trailers
// 431; a transfer coding other than chunked 501; malformed framing 400; then
// the connection closes. A timeout gets no answer: the connection is closed.
// Only header fields reach the handler (trailers are counted and dropped).
//
// Connection cap (`max_connections`): when that many connections are open, a
// new one is served if an open one can make room without losing anything
// acknowledged: the listener closes, first, a connection without a client
// certificate on a mutual-TLS listener, else an idle one of the client
// address (IPv4, or IPv6 /64) that holds the most connections, else the one
// that has been opening or reading its request the longest
// (src/net/connection_table.hpp). A connection whose request is with the
// handler is never closed. When none
// can make room, the new connection is closed at once, before TLS (the
// client sees its handshake fail). Both are counted and logged at most once
// per 10 s. The public and the admin listener each have their own cap. Each
// connection holds a file descriptor: the process's RLIMIT_NOFILE must allow
// for the caps (files_needed() in config.hpp). When accept() fails for want
// of descriptors anyway, the listener pauses for 100 ms instead of spinning.
// No failure to set up or handle one connection stops the listener: that
// connection is closed, counted and logged.
//
// PROXY protocol (`proxy_protocol`): a header is required on every
// connection and believed only from a peer in `trusted_proxies`; any other
// peer is closed before a byte is read. The client address it names is then
// the connection's, for allow_from, the logs and the cap's client groups.
//
// Mutual TLS (`ListenerOptions::client_ca` set): a client certificate is asked
// for and, when sent, must chain to that CA (and, with `client_crl`, not be
// revoked) or the handshake fails; its subject CN reaches the handler as
// Delivery::client_cn. A client that sends none gets through the handshake
// with an empty client_cn, so the handler can answer 401 clearly; the
// connection closes after that one answer.
//
// TLS settings on reload: load_tls() loads a certificate, key, client CA and
// CRL without touching the listener; use_tls() then makes new connections use
// them (see there).
//
// Metrics (families hookvault_http_*, hookvault_tls_*, hookvault_open_*,
// hookvault_connection*): requests by listener/source/event/status, request
// latency, open connections (hookvault_open_connections) and the cap
// (hookvault_max_connections), connections closed to make room at the cap
// (hookvault_connections_evicted_total{phase="unauthenticated", "idle",
// "opening" or "reading"}), connections refused before TLS
// (hookvault_connections_refused_total{reason="cap", "untrusted_proxy" or
// "setup"}), connections closed by a failure in their own handling
// (hookvault_connection_errors_total), connections cut off by a timeout
// (hookvault_connection_timeouts_total{timeout="handshake", "idle", "header",
// "body" or "write"}), failed TLS handshakes, bad PROXY headers.
//
// SIGHUP calls ListenerOptions::on_hangup (reload) when run() handles signals.
//
// Shutdown (stop(), SIGTERM, SIGINT): the handler turns not-ready, the
// acceptor closes, idle connections close, in-flight requests finish and are
// answered with "Connection: close"; after `shutdown_grace` whatever is left is
// cut. run() returns when everything has stopped.
//
// Nothing here knows about webhooks; nothing outside src/net knows Beast.
//
// Thread-safety: stop() and post() are safe from any thread (stop() also from
// a signal, via the built-in signal handling); everything else is called from
// one thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/handler.hpp"
#include "hookvault/metrics.hpp"

namespace hookvault {

struct ListenerOptions {
  std::string name = "public";      // in log lines and metric labels
  std::filesystem::path client_ca;  // not empty: mutual TLS against this CA
  Metrics* metrics = nullptr;       // null: the server keeps its own registry
  // Called on an I/O thread for each SIGHUP when run() handles signals; must
  // not throw.
  std::function<void()> on_hangup;
  // Called once when graceful shutdown begins (SIGTERM, SIGINT, stop()),
  // before anything closes, on an I/O thread; must not throw.
  std::function<void()> on_shutdown;
  // Optional, with client_ca: revoked client certificates (PEM CRLs).
  std::filesystem::path client_crl;
};

class Server {
 public:
  // Binds the listener and loads the TLS certificate (and client CA and CRL).
  // Throws std::runtime_error (control plane) naming the address or file on
  // failure.
  Server(const ServerConfig& config, RequestHandler& handler, ListenerOptions options = {});

  // A listener's TLS settings, loaded and checked but not in use.
  struct Tls;
  // The certificate, key and TLS version of `config` and, with `client_ca`,
  // mutual TLS against it and `client_crl` (src/net/tls.hpp). Throws
  // std::runtime_error naming the file.
  static std::shared_ptr<Tls> load_tls(const ServerConfig& config,
                                       const std::filesystem::path& client_ca,
                                       const std::filesystem::path& client_crl);
  // New connections use `tls` from now on (a reload: a renewed certificate, a
  // new client CA or CRL). Open connections keep what they were accepted
  // with, except on a mutual-TLS listener whose client CA or CRL changed: a
  // connection whose client was verified against the old ones is closed once
  // it is idle, and after kRetireGrace whatever it is doing, so a revoked
  // client keeps no connection. New settings come with an empty session cache
  // and new session ticket keys: no earlier TLS session resumes, every client
  // is verified again. Safe from any thread.
  void use_tls(std::shared_ptr<Tls> tls);
  static constexpr std::chrono::seconds kRetireGrace{5};
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound endpoint (the real port when the config asked for port 0).
  Endpoint local_endpoint() const;

  // Runs the I/O threads until shutdown completes. When `handle_signals`,
  // SIGTERM and SIGINT start a graceful shutdown.
  void run(bool handle_signals = true);
  void stop();
  // Runs `fn` on an I/O thread once run() is running (never after it returns).
  // Safe from any thread.
  void post(std::function<void()> fn);

  // Tests only (the daemon never sets it); before run(). `hook` is called
  // as each accepted connection is set up, before its TLS object is made;
  // what it throws fails that connection's setup the way a failing SSL_new
  // does.
  void set_connection_setup_hook(std::function<void()> hook);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hookvault
