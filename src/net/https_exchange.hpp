// One blocking HTTPS request/response, shared by hookvault's outbound clients
// (the Nodit history client, the healthcheck probe).
//
// https_exchange() runs a coroutine on a private io_context: resolve, connect,
// TLS handshake, optional check of the verified peer, write the request, read
// the response (header and body limits). One deadline covers the whole
// exchange, enforced twice: every stream operation expires at it, and the
// io_context runs no longer than it plus a short grace (a backstop for name
// resolution, which Asio cannot cancel; a hung getaddrinfo still delays the
// return).
//
// The TLS context (trust anchors, verify mode, protocol versions) is the
// caller's; so is the request, which should say "Connection: close": the
// connection is closed as soon as the response is read, without waiting for
// the peer's close_notify.
//
// Failures are reported, never thrown: Exchange::failed_stage names the step
// ("resolve", "sni", "connect", "tls_handshake", "peer_check", "write",
// "read", "timeout" when the backstop stopped it, "internal") with its error
// code; an operation that expired at the deadline carries
// boost::beast::error::timeout.
//
// Only src/net includes this (it is Beast).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <string_view>

#include "net/http_framing.hpp"

namespace hookvault::net {

struct HttpsPeer {
  std::string host;  // a DNS name or an IP literal (IPv6 without brackets)
  std::string port;  // digits
  bool host_is_address = false;
  // Check the certificate's names against `host` (RFC 2818). Off only when the
  // trust anchor pins the peer by itself (see healthcheck.hpp).
  bool verify_host_name = true;
  // Called after the handshake with the connection; false fails the exchange
  // at stage "peer_check". May be empty.
  std::function<bool(SSL*)> check_peer;
  // Bytes written on the TCP connection before the TLS handshake (a PROXY v2
  // header for a listener that requires one). Usually empty.
  std::string preamble;
};

struct ExchangeLimits {
  std::uint32_t max_header_bytes = 64 * 1024;  // head, chunk extensions and trailers
  std::uint64_t max_body_bytes = 8ULL * 1024 * 1024;
  std::size_t max_header_count = 256;  // header and trailer fields
};

struct Exchange {
  bool finished = false;
  std::string_view failed_stage;  // empty on success
  boost::system::error_code ec;
  unsigned status = 0;
  std::string body;
};

namespace detail {

template <class Request>
boost::asio::awaitable<void> run_exchange(boost::asio::ssl::context& tls, const HttpsPeer& peer,
                                          const Request& req,
                                          std::chrono::steady_clock::time_point deadline,
                                          ExchangeLimits limits, Exchange& out) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  using tcp = asio::ip::tcp;
  constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  auto [rec, endpoints] = co_await resolver.async_resolve(peer.host, peer.port, kNoThrow);
  if (rec) {
    out.failed_stage = "resolve";
    out.ec = rec;
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(ex, tls);
  if (!peer.host_is_address &&
      SSL_set_tlsext_host_name(stream.native_handle(), peer.host.c_str()) != 1) {
    out.failed_stage = "sni";
    co_return;
  }
  if (peer.verify_host_name) {
    stream.set_verify_callback(asio::ssl::host_name_verification(peer.host));
  }

  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [cec, ep] = co_await beast::get_lowest_layer(stream).async_connect(endpoints, kNoThrow);
  if (cec) {
    out.failed_stage = "connect";
    out.ec = cec;
    co_return;
  }
  if (!peer.preamble.empty()) {
    beast::get_lowest_layer(stream).expires_at(deadline);
    auto [pec, pn] = co_await asio::async_write(beast::get_lowest_layer(stream),
                                                asio::buffer(peer.preamble), kNoThrow);
    if (pec) {
      out.failed_stage = "connect";
      out.ec = pec;
      co_return;
    }
  }
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kNoThrow);
  if (hec) {
    out.failed_stage = "tls_handshake";
    out.ec = hec;
    co_return;
  }
  if (peer.check_peer && !peer.check_peer(stream.native_handle())) {
    out.failed_stage = "peer_check";
    co_return;
  }
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [wec, wn] = co_await http::async_write(stream, req, kNoThrow);
  if (wec) {
    out.failed_stage = "write";
    out.ec = wec;
    co_return;
  }
  const FramingLimits framing{limits.max_header_bytes, limits.max_header_count,
                              limits.max_body_bytes};
  beast::flat_buffer buffer(read_buffer_limit(framing));
  ResponseParser<http::string_body> parser(framing);
  beast::get_lowest_layer(stream).expires_at(deadline);
  auto [rdec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
  if (rdec) {
    out.failed_stage = "read";
    out.ec = rdec;
    co_return;
  }
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  boost::system::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(stream).close();
}

}  // namespace detail

// `Request`: a boost::beast::http::request with an empty body (any fields
// type, e.g. one whose memory is wiped).
template <class Request>
Exchange https_exchange(boost::asio::ssl::context& tls, const HttpsPeer& peer, const Request& req,
                        std::chrono::steady_clock::time_point deadline,
                        ExchangeLimits limits = {}) {
  constexpr auto kBackstopGrace = std::chrono::milliseconds(100);
  Exchange out;
  boost::asio::io_context ioc;
  boost::asio::co_spawn(ioc, detail::run_exchange(tls, peer, req, deadline, limits, out),
                        [&out](const std::exception_ptr& e) {
                          out.finished = e == nullptr;
                          if (e) out.failed_stage = "internal";
                        });
  // The exchange times itself out at the deadline; the grace lets it finish
  // on its own, and the bound stops a resolve that never ends.
  ioc.run_until(deadline + kBackstopGrace);
  if (!out.finished && out.failed_stage.empty()) out.failed_stage = "timeout";
  return out;  // destroying `ioc` destroys an unfinished exchange with its socket
}

}  // namespace hookvault::net
