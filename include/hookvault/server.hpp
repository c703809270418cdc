// An HTTPS listener (Boost.Beast over Asio, C++20 coroutines): the public
// webhook listener (handler: the Pipeline) and the mutual-TLS admin listener
// (handler: the AdminApi) are two Servers.
//
// One coroutine per connection: TLS handshake, then a keep-alive loop of
// read request (fresh parser each time, header and body limits), hand it to the
// RequestHandler, write the Reply. Timeouts: `idle_timeout` while waiting for the
// first byte of a request, `header_timeout` for the rest of the head (a client
// trickling bytes is cut off), `body_timeout` for the body.
// Oversized bodies get 413, oversized heads 431, then the connection closes.
// A timeout gets no answer: the connection is closed.
//
// Connection cap (`max_connections`): while that many connections are open,
// a new one is accepted and closed at once, before TLS (the client sees its
// handshake fail), counted and logged at most once per 10 s. Connections
// already open are never touched; a slot frees when one closes. The public
// and the admin listener each have their own cap. Each connection holds a
// file descriptor: the process's RLIMIT_NOFILE must allow for the caps
// (files_needed() in config.hpp). When accept() fails for want of
// descriptors anyway, the listener pauses for 100 ms instead of spinning.
//
// Mutual TLS (`ListenerOptions::client_ca` set): a client certificate is asked
// for and, when sent, must chain to that CA (and, with `client_crl`, not be
// revoked) or the handshake fails; its subject CN reaches the handler as
// Delivery::client_cn. A client that sends none gets through the handshake
// with an empty client_cn, so the handler can answer 401 clearly.
//
// TLS settings on reload: load_tls() loads a certificate, key, client CA and
// CRL without touching the listener; use_tls() then makes new connections use
// them (see there).
//
// Metrics (families hookvault_http_*, hookvault_tls_*, hookvault_open_*,
// hookvault_connection*): requests by listener/source/event/status, request
// latency, open connections (hookvault_open_connections) and the cap
// (hookvault_max_connections), connections refused at the cap
// (hookvault_connections_refused_total{reason="cap"}), connections cut off by
// a timeout (hookvault_connection_timeouts_total{timeout="handshake", "idle",
// "header", "body" or "write"}), failed TLS handshakes.
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hookvault
