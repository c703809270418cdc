// The acceptor and max_connections (server_impl.hpp): accept, set up a
// connection, make room for it at the cap or refuse it.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "hookvault/log.hpp"
#include "net/server_impl.hpp"

namespace hookvault {
namespace {

using net::to_ip;
using net::what;
using net::detail::kNoThrow;

// After accept() failed for want of descriptors or memory: the connection
// stays in the backlog, so accepting again at once would spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

// accept() failed for want of descriptors or memory.
bool out_of_resources(const boost::system::error_code& ec) {
  namespace errc = boost::system::errc;
  return ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
         ec == errc::no_buffer_space || ec == errc::not_enough_memory;
}

}  // namespace

void Server::Impl::listen() {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(cfg.listen.host, ec);
  if (ec) throw std::runtime_error("bad listen address '" + cfg.listen.host + "'");
  tcp::endpoint ep(address, cfg.listen.port);
  acceptor.open(ep.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  if (ep.address().is_v6()) acceptor.set_option(asio::ip::v6_only(false), ec);
  acceptor.bind(ep, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + cfg.listen.host + ":" +
                             std::to_string(cfg.listen.port) + ": " + ec.message());
  }
  acceptor.listen(asio::socket_base::max_listen_connections);
}

// Accepts until the listener closes. A peer that may not send the PROXY
// header the listener requires is closed at once. At max_connections a
// new connection is served when an open one can make room for it
// (ConnectionTable::evict_for: one that loses nothing acknowledged), and
// closed at once, before a byte of TLS, when none can. No failure of one
// connection stops the loop: it is closed, counted and logged.
asio::awaitable<void> Server::Impl::accept_loop() {
  for (;;) {
    asio::io_context& shard = *shards[next_shard];
    auto [ec, socket] = co_await acceptor.async_accept(shard, kNoThrow);
    if (ec) {
      if (listener_closed || ec == asio::error::operation_aborted) co_return;
      if (std::uint64_t n = 0; accept_warning.due(n)) {
        log(LogLevel::warn, "accept failed",
            {{"listener", options.name}, {"error", ec.message()}, {"failures", n}});
      }
      if (out_of_resources(ec)) {
        accept_backoff.expires_after(kAcceptBackoff);
        auto [wec] = co_await accept_backoff.async_wait(kNoThrow);
        (void)wec;
      }
      continue;
    }
    const auto peer = socket.remote_endpoint(ec);
    if (ec) {  // already gone (reset before we looked)
      close_socket(socket);
      continue;
    }
    const IpAddress peer_ip = to_ip(peer.address());
    if (cfg.proxy_protocol && !any_contains(cfg.trusted_proxies, peer_ip)) {
      refuse_untrusted_proxy(socket, peer);
      continue;
    }
    if (open_count.load() >= cfg.max_connections && !make_room(peer_ip)) {
      refuse(socket);
      continue;
    }
    admit(std::move(socket), peer);
  }
}

// Sets up and starts a connection. A failure (SSL_new under memory
// pressure, the socket) closes this connection only.
void Server::Impl::admit(tcp::socket socket, const tcp::endpoint& peer) {
  std::shared_ptr<Conn> conn;
  bool counted = false;
  try {
    if (connection_setup_hook) connection_setup_hook();
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    conn = std::make_shared<Conn>(std::move(socket), current_tls());
    conns.add(conn, to_ip(peer.address()));
    ++open_count;
    open_connections.inc();
    counted = true;
    auto ex = conn->stream.get_executor();
    asio::co_spawn(ex, session(conn, peer), asio::detached);
  } catch (...) {
    if (counted) {
      conns.remove(conn.get());
      --open_count;
      open_connections.dec();
    }
    refused_setup.inc();
    close_socket(socket);  // a no-op once the stream owns (and closes) it
    if (std::uint64_t n = 0; setup_warning.due(n)) {
      log(LogLevel::warn, "connection setup failed; connection closed",
          {{"listener", options.name}, {"error", what(std::current_exception())}, {"failures", n}});
    }
    return;
  }
  next_shard = (next_shard + 1) % shards.size();
}

// At the cap: closes the connection ConnectionTable::evict_for() chooses
// for a newcomer from `client`. Its slot is free once its shard has
// closed it; until then the listener holds one connection more than the
// cap (the descriptor goes at once: kReservedFiles covers the moment).
bool Server::Impl::make_room(const IpAddress& client) {
  auto victim = conns.evict_for(client);
  if (!victim.conn) return false;
  auto conn = std::static_pointer_cast<Conn>(victim.conn);
  evicted.with({options.name, victim.reason}).inc();
  asio::post(conn->stream.get_executor(), [conn] { conn->stream.close(); });
  if (std::uint64_t n = 0; eviction_warning.due(n)) {
    log(LogLevel::warn, "max_connections are open: closed a connection to make room",
        {{"listener", options.name}, {"max_connections", cfg.max_connections}, {"closed", n}});
  }
  return true;
}

// Closes a connection over the cap. The client sees its handshake fail:
// a FIN, or a reset when its ClientHello had already arrived (the kernel
// resets a socket closed with unread data).
void Server::Impl::refuse(AcceptedSocket& socket) {
  refused_at_cap.inc();  // first: once the client sees the close, it is counted
  close_socket(socket);
  if (std::uint64_t n = 0; refusal_warning.due(n)) {
    log(LogLevel::warn, "connections refused: max_connections are open",
        {{"listener", options.name}, {"max_connections", cfg.max_connections}, {"refused", n}});
  }
}

// proxy_protocol: only a trusted proxy may say who its client is.
void Server::Impl::refuse_untrusted_proxy(AcceptedSocket& socket, const tcp::endpoint& peer) {
  refused_untrusted_proxy.inc();
  close_socket(socket);
  if (std::uint64_t n = 0; proxy_warning.due(n)) {
    log(LogLevel::warn, "connection from a peer outside trusted_proxies closed (proxy_protocol)",
        {{"listener", options.name}, {"peer", peer.address().to_string()}, {"refused", n}});
  }
}

}  // namespace hookvault
