// The public HTTPS listener (Boost.Beast over Asio, C++20 coroutines).
//
// One coroutine per connection: TLS handshake, then a keep-alive loop of
// read request (fresh parser each time, header and body limits), hand it to the
// Pipeline, write the Reply. Timeouts: `idle_timeout` while waiting for the
// first byte of a request, `header_timeout` for the rest of the head (a client
// trickling bytes is cut off), `body_timeout` for the body.
// Oversized bodies get 413, oversized heads 431, then the connection closes.
//
// Shutdown (stop(), SIGTERM, SIGINT): the pipeline turns not-ready, the
// acceptor closes, idle connections close, in-flight requests finish and are
// answered with "Connection: close"; after `shutdown_grace` whatever is left is
// cut. run() returns when everything has stopped.
//
// Nothing here knows about webhooks; nothing outside src/net knows Beast.
//
// Thread-safety: stop() is safe from any thread (and from a signal, via the
// built-in signal handling); everything else is called from one thread.
#pragma once

#include <memory>

#include "hookvault/config.hpp"
#include "hookvault/pipeline.hpp"

namespace hookvault {

class Server {
 public:
  // Binds the listener and loads the TLS certificate. Throws std::runtime_error
  // (control plane) naming the address or file on failure.
  Server(const ServerConfig& config, Pipeline& pipeline);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound endpoint (the real port when the config asked for port 0).
  Endpoint local_endpoint() const;

  // Runs the I/O threads until shutdown completes. When `handle_signals`,
  // SIGTERM and SIGINT start a graceful shutdown.
  void run(bool handle_signals = true);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hookvault
