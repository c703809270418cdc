// One connection (server_impl.hpp): the PROXY v2 header when the listener
// requires one, the TLS handshake, the requests (net/http_session.hpp), the
// TLS shutdown.
#include <boost/beast/core/error.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "hookvault/log.hpp"
#include "net/server_impl.hpp"
#include "net/tls.hpp"

namespace hookvault {
namespace {

using net::Client;
using net::ConnectionPhase;
using net::to_ip;
using net::what;
using net::detail::kNoThrow;
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);

}  // namespace

// The PROXY v2 header, read from the TCP stream before TLS without
// consuming a byte past it. nullopt: none, malformed, or too slow.
asio::awaitable<std::optional<ProxyHeader>> Server::Impl::read_proxy_header(Conn& c) {
  c.stream.expires_after(cfg.header_timeout);
  std::array<std::uint8_t, kProxyV2PrefixBytes> prefix{};
  auto [ec, n] = co_await c.stream.async_read_raw(asio::buffer(prefix), kNoThrow);
  if (ec) co_return std::nullopt;
  const auto length = proxy_v2_length(prefix);
  if (!length) co_return std::nullopt;
  // At most kProxyV2MaxLength: nothing on the heap, whatever was announced.
  std::array<std::uint8_t, kProxyV2MaxLength> rest{};
  auto [rec, rn] = co_await c.stream.async_read_raw(asio::buffer(rest.data(), *length), kNoThrow);
  if (rec) co_return std::nullopt;
  co_return parse_proxy_v2(prefix, std::span<const std::uint8_t>(rest.data(), *length));
}

// One connection, from accept to forget(). Whatever its handling throws
// (memory ran out) ends this connection only, counted and logged.
asio::awaitable<void> Server::Impl::session(std::shared_ptr<Conn> conn, tcp::endpoint ep) {
  Conn& c = *conn;
  try {
    co_await proxy_handshake_and_serve(c, ep);
  } catch (...) {
    connection_errors.inc();
    std::uint64_t n = 0;
    bool due = false;
    {
      std::lock_guard lock(error_warning_mu);
      due = error_warning.due(n);
    }
    if (due) {
      log(LogLevel::warn, "connection failed; connection closed",
          {{"listener", options.name}, {"error", what(std::current_exception())}, {"failures", n}});
    }
  }
  boost::system::error_code ignored;
  c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  c.stream.close();
  c.ended = true;
  forget(&c);
}

// The PROXY header when the listener requires one, then the rest.
asio::awaitable<void> Server::Impl::proxy_handshake_and_serve(Conn& c, const tcp::endpoint& ep) {
  Client client{to_ip(ep.address()), ep.address().to_string()};
  const std::string peer = client.text + ":" + std::to_string(ep.port());
  if (cfg.proxy_protocol) {
    auto header = co_await read_proxy_header(c);
    if (!header) {
      if (c.phase.get() != ConnectionPhase::evicted) {
        proxy_failures.inc();
        log(LogLevel::warn, "connection without a valid PROXY v2 header closed",
            {{"listener", options.name}, {"peer", peer}});
      }
      co_return;
    }
    if (header->source) {
      client = Client{*header->source, ip_to_string(*header->source)};
      conns.regroup(&c, client.ip);
    }
  }
  co_await handshake_and_serve(c, peer, client);
}

// TLS handshake, the keep-alive loop, TLS shutdown.
asio::awaitable<void> Server::Impl::handshake_and_serve(Conn& c, const std::string& peer,
                                                        const Client& client) {
  c.stream.expires_after(cfg.header_timeout);
  auto [hs_ec] = co_await c.stream.async_handshake(kNoThrow);
  if (hs_ec) {
    if (c.phase.get() == ConnectionPhase::evicted) co_return;
    handshake_failures.inc();
    if (hs_ec == boost::beast::error::timeout) handshake_timeouts.inc();
    log(LogLevel::debug, "TLS handshake failed",
        {{"listener", options.name}, {"peer", peer}, {"error", hs_ec.message()}});
    co_return;
  }
  net::Peer who{peer, client, {}, false};
  if (!options.client_ca.empty()) {
    who.client_cn = net::verified_client_cn(c.stream.native_handle());
    // Without a certificate its one answer is 401: then it goes, and at
    // the cap it is the first to make room.
    who.answer_once = who.client_cn.empty();
    c.unauthenticated = who.answer_once;
  }
  co_await net::serve_requests(sessions, c.stream, c.phase, std::move(who));
  c.stream.expires_after(kTlsShutdownTimeout);
  auto [sd_ec] = co_await c.stream.async_shutdown(kNoThrow);
  (void)sd_ec;
}

}  // namespace hookvault
