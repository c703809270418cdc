// The signals and the shutdown phases (server_impl.hpp, and server.hpp for
// the contract): draining, then the listener closed, idle connections closed,
// busy ones given shutdown_grace.
#include <algorithm>
#include <csignal>

#include "hookvault/log.hpp"
#include "net/server_impl.hpp"

namespace hookvault {
namespace {

using net::ConnectionPhase;
// After the listener closed: how long a connection may stay idle before it is
// closed (a request already on its way, or a handshake, arrives meanwhile).
constexpr auto kIdleLinger = std::chrono::seconds(1);

}  // namespace

// SIGHUP: the owner's reload (file reads and key parsing: milliseconds, on
// this one I/O thread; the others serve). SIGTERM/SIGINT: graceful shutdown;
// a second one during the drain delay closes the listener at once.
void Server::Impl::wait_for_signal() {
  signals.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      options.on_hangup();
    } else if (!draining) {
      begin_shutdown();
    } else {
      close_listener();
    }
    if (!listener_closed) wait_for_signal();
  });
}

// Connections still opening or waiting for a request are closed; those
// reading or handling one finish it.
void Server::Impl::close_idle_connections() {
  for (auto& tracked : conns.all()) {
    auto conn = std::static_pointer_cast<Conn>(tracked);
    if (!conn->phase.evict(ConnectionPhase::idle)) continue;
    // Cancelled, not closed: the loop ends, and TLS is shut down cleanly.
    asio::post(conn->stream.get_executor(), [conn] { conn->stream.cancel(); });
  }
}

// Shutdown, first phase: not ready any more (readyz 503, every answer
// "Connection: close"), still accepting for drain_delay so a load balancer
// notices before connections are refused.
void Server::Impl::begin_shutdown() {
  if (draining.exchange(true)) return;
  if (options.on_shutdown) options.on_shutdown();
  log(LogLevel::info, "draining",
      {{"listener", options.name},
       {"drain_delay_ms", cfg.drain_delay.count()},
       {"grace_ms", cfg.shutdown_grace.count()}});
  handler.set_draining();
  if (cfg.drain_delay.count() <= 0) {
    close_listener();
    return;
  }
  drain.expires_after(cfg.drain_delay);
  drain.async_wait([this](boost::system::error_code) { close_listener(); });
}

// Second phase: the listener closes. A connection that is idle a moment
// later (kIdleLinger: long enough for a request already on its way, or a
// handshake in progress, to arrive) is closed; busy ones finish their
// request, answered with "Connection: close", within shutdown_grace;
// whatever is left then is cut.
void Server::Impl::close_listener() {
  if (listener_closed.exchange(true)) return;
  log(LogLevel::info, "listener closed", {{"listener", options.name}});
  boost::system::error_code ec;
  drain.cancel();
  acceptor.close(ec);
  signals.cancel(ec);
  if (conns.size() == 0) return;
  idle_cut.expires_after(
      std::min<std::chrono::steady_clock::duration>(kIdleLinger, cfg.shutdown_grace));
  idle_cut.async_wait([this](boost::system::error_code wec) {
    if (!wec) close_idle_connections();
  });
  grace.expires_after(cfg.shutdown_grace);
  grace.async_wait([this](boost::system::error_code wec) {
    if (!wec) {
      log(LogLevel::warn, "shutdown grace expired; closing remaining connections");
      for (auto& shard : shards) shard->stop();
    }
  });
}

}  // namespace hookvault
