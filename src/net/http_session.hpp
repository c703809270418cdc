// The HTTP/1.1 side of one connection: the keep-alive loop that reads a
// request (fresh parser each time, the framing rules and limits of
// http_framing.hpp, 100-continue), hands it to the RequestHandler as a
// Delivery, and writes the Reply. server.cpp runs it on a net::TlsStream after
// the TLS handshake; the request fuzzer (tests/fuzz/fuzz_request.cpp) runs the
// same code on an in-memory stream, so what it fuzzes is what the listener
// runs.
//
// A Stream is an Asio AsyncReadStream and AsyncWriteStream with, as
// net::TlsStream has them:
//   expires_after(duration)      the deadline of the operations that follow
//   async_wait_data(token)       void(error_code): decrypted data is readable
//   read_some(buffers, ec)       what is readable now, without waiting
//
// Timeouts: `idle_timeout` while waiting for the first byte of a request,
// `header_timeout` for the rest of the head, `body_timeout` for the body.
// A request that cannot be read is answered as refusal() says (413 for an
// oversized body; 431 for an oversized head, chunk extensions or trailers;
// 501 for a transfer coding other than chunked; 400 for malformed framing),
// then the connection closes. A timeout, a reset or a close closes it with
// no answer.
//
// Thread-safety: one loop per connection, on the connection's executor; the
// HttpSessionContext is shared by every connection of a listener.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "hookvault/cidr.hpp"
#include "hookvault/config.hpp"
#include "hookvault/handler.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/secret.hpp"
#include "net/connection_phase.hpp"
#include "net/http_framing.hpp"

namespace hookvault::net {

// Who sent a request: the connection's peer, or the client a PROXY header or
// a trusted proxy's X-Forwarded-For names.
struct Client {
  IpAddress ip{};
  std::string text;  // the address, no port
};

// One connection's other end, as the loop tells the handler about it.
struct Peer {
  std::string address;  // the TCP peer, "address:port"
  Client client;        // the peer, or the client its PROXY header named
  // Mutual TLS: the verified client certificate's CN; empty without one.
  std::string client_cn;
  // Answer one request, then close: a client without a certificate on a
  // mutual-TLS listener, whose one answer is 401.
  bool answer_once = false;
};

// X-Forwarded-For from a trusted peer: the rightmost address that is not
// itself a trusted proxy (each proxy appends the address it saw, so anything
// left of the first untrusted hop may be forged). A malformed entry stops the
// walk at the last address that parsed.
Client forwarded_client(const Client& peer, std::string_view xff, std::span<const Cidr> trusted);

// hookvault_connection_timeouts_total{listener, timeout}: connections cut off
// by a timeout, by what they were doing (handshake, idle, header, body, write).
MetricFamily& connection_timeouts(Metrics& metrics);

// What every connection of one listener shares.
class HttpSessionContext {
 public:
  // `metrics` must outlive the context; `draining` is read by every loop.
  HttpSessionContext(const ServerConfig& cfg, RequestHandler& handler, std::string listener,
                     Metrics& metrics, const std::atomic<bool>& draining);

  const ServerConfig& cfg;
  const FramingLimits limits;  // from cfg
  RequestHandler& handler;
  const std::string listener;
  const std::atomic<bool>& draining;
  // Connections cut off while waiting for a request, its head or its body, or
  // writing an answer.
  MetricSeries& idle_timeouts;
  MetricSeries& header_timeouts;
  MetricSeries& body_timeouts;
  MetricSeries& write_timeouts;

  // 32 hex digits, all from the CSPRNG: unpredictable, and unique enough to
  // find a request's log lines (128 bits).
  std::string next_request_id();
  // The request's metrics and (at info) its log line.
  void log_request(const std::string& request_id, const std::string& peer, std::string_view client,
                   std::string_view method, std::string_view target, unsigned status,
                   std::chrono::steady_clock::time_point started, const Reply* reply);

 private:
  MetricFamily& requests_;
  MetricSeries& latency_;
  std::atomic<std::uint64_t> fallback_ids_{0};  // only if the CSPRNG fails
};

namespace detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
inline constexpr std::size_t kFirstReadBytes = 4096;
inline constexpr auto kWriteTimeout = std::chrono::seconds(30);

using SecretBody = http::vector_body<char, WipingAllocator<char>>;

// Bridges RequestHandler::handle's callback to an awaitable that resumes on
// the connection's executor.
template <class Token>
auto async_handle(RequestHandler& target, Delivery delivery, Token&& token) {
  return asio::async_initiate<Token, void(Reply)>(
      [&target](auto handler, Delivery&& d) {
        using Handler = decltype(handler);
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        auto shared = std::make_shared<Handler>(std::move(handler));
        target.handle(std::move(d), [shared, work](Reply reply) mutable {
          auto ex = work.get_executor();
          asio::post(ex,
                     [shared, reply = std::move(reply)]() mutable { (*shared)(std::move(reply)); });
          work.reset();
        });
      },
      token, std::move(delivery));
}

template <class Body>
void prepare(http::response<Body>& res, const Reply& reply, const std::string& request_id,
             bool keep) {
  res.set(http::field::content_type, reply.content_type);
  res.set("X-Request-Id", request_id);
  if (reply.retry_after_s > 0) {
    res.set(http::field::retry_after, std::to_string(reply.retry_after_s));
  }
  res.keep_alive(keep);
  res.prepare_payload();
}

template <class Stream, class Body>
asio::awaitable<bool> write(HttpSessionContext& ctx, Stream& s, http::response<Body>& res) {
  s.expires_after(kWriteTimeout);
  auto [ec, n] = co_await http::async_write(s, res, kNoThrow);
  if (ec == beast::error::timeout) ctx.write_timeouts.inc();
  co_return !ec;
}

template <class Stream>
asio::awaitable<void> reply_and_close(HttpSessionContext& ctx, Stream& s, unsigned status,
                                      std::string_view error, const std::string& request_id) {
  http::response<http::string_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "application/json");
  res.set("X-Request-Id", request_id);
  res.keep_alive(false);
  res.body() = "{\"error\":\"" + std::string(error) + "\"}";
  res.prepare_payload();
  co_await write(ctx, s, res);
}

// A request that could not be read: answered as refusal() says (and logged),
// or not at all when nobody is there to answer.
template <class Stream, class Parser>
asio::awaitable<void> refuse(HttpSessionContext& ctx, Stream& s, boost::system::error_code ec,
                             const Parser& parser, const Peer& who, const std::string& request_id,
                             std::chrono::steady_clock::time_point started) {
  const auto answer = refusal(ec);
  if (!answer) co_return;
  co_await reply_and_close(ctx, s, answer->status, answer->error, request_id);
  std::string_view method;
  std::string_view target;
  if (parser.is_header_done()) {
    method = parser.get().method_string();
    target = parser.get().target();
  }
  ctx.log_request(request_id, who.address, who.client.text, method, target, answer->status, started,
                  nullptr);
}

}  // namespace detail

// The keep-alive loop. `phase` tells the listener what the connection is
// doing (idle: a draining listener may cut it; anything but handling: the
// listener may evict it at its cap); once evicted, the loop stops at its next
// move. Returns when the connection should close; the caller shuts TLS down
// and closes the socket. `ctx`, `s` and `phase` must outlive the loop; `who`
// is taken by value, into the coroutine's frame (a reference to a caller's
// temporary would dangle after the first suspension: the request fuzzer
// found that in its own first draft).
template <class Stream>
boost::asio::awaitable<void> serve_requests(HttpSessionContext& ctx, Stream& s,
                                            ConnectionPhase& phase, Peer who) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  using detail::kNoThrow;
  const ServerConfig& cfg = ctx.cfg;
  // What the parser may hold unparsed is bounded by the buffer's max_size()
  // (http_framing.hpp): a line or section that outgrows it fails the read.
  beast::flat_buffer buffer(read_buffer_limit(ctx.limits));
  for (;;) {
    // Draining or not, a connection waits for its next request: one already
    // on its way is answered (with "Connection: close", which ends the
    // loop); close_idle_connections() cuts those that stay idle.
    if (!phase.enter(ConnectionPhase::idle)) co_return;
    // Wait for the first byte of the next request under the idle timeout,
    // holding no buffer meanwhile (4 KiB per idle connection otherwise):
    // the buffer is allocated once decrypted data is there, and read_some()
    // then takes it without waiting.
    if (buffer.size() == 0) {
      buffer.shrink_to_fit();  // frees it: nothing is buffered
      s.expires_after(cfg.idle_timeout);
      auto [ec] = co_await s.async_wait_data(kNoThrow);
      if (ec == beast::error::timeout) ctx.idle_timeouts.inc();
      if (ec) co_return;
      boost::system::error_code rec;
      const std::size_t n =
          s.read_some(buffer.prepare(std::min(detail::kFirstReadBytes, buffer.max_size())), rec);
      if (rec) co_return;
      buffer.commit(n);
    }
    if (!phase.enter(ConnectionPhase::reading)) co_return;
    const auto started = std::chrono::steady_clock::now();
    const std::string request_id = ctx.next_request_id();

    RequestParser<http::string_body> parser(ctx.limits);
    s.expires_after(cfg.header_timeout);
    auto [hec, hn] = co_await http::async_read_header(s, buffer, parser, kNoThrow);
    if (hec) {
      // A head that does not arrive in time (a slow client) is cut off
      // without an answer, as are a closed or reset connection.
      if (hec == beast::error::timeout) ctx.header_timeouts.inc();
      co_await detail::refuse(ctx, s, hec, parser, who, request_id, started);
      co_return;
    }
    if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      if (!co_await detail::write(ctx, s, cont)) co_return;
    }
    s.expires_after(cfg.body_timeout);
    auto [bec, bn] = co_await http::async_read(s, buffer, parser, kNoThrow);
    if (bec) {
      if (bec == beast::error::timeout) ctx.body_timeouts.inc();
      co_await detail::refuse(ctx, s, bec, parser, who, request_id, started);
      co_return;
    }
    if (!phase.enter(ConnectionPhase::handling)) co_return;

    // Only header fields reach the handler: trailers were counted and
    // dropped by the parser.
    auto req = parser.release();
    Delivery d;
    d.method = req.method_string();
    d.target = req.target();
    d.content_type = req[http::field::content_type];
    d.header = [&req](std::string_view name) { return req[name]; };
    d.body = std::move(req.body());
    d.request_id = request_id;
    d.peer = who.address;
    Client client = who.client;
    if (!cfg.trusted_proxies.empty() && any_contains(cfg.trusted_proxies, client.ip)) {
      // Several X-Forwarded-For fields read as one list, in order.
      std::string xff;
      auto [first, last] = req.equal_range("X-Forwarded-For");
      for (; first != last; ++first) {
        if (!xff.empty()) xff += ',';
        xff += first->value();
      }
      client = forwarded_client(client, xff, cfg.trusted_proxies);
    }
    d.client_ip = client.ip;
    d.client = client.text;
    d.client_cn = who.client_cn;
    Reply reply = co_await detail::async_handle(ctx.handler, std::move(d), asio::use_awaitable);

    const bool keep = req.keep_alive() && !ctx.draining && !who.answer_once;
    bool written = false;
    if (reply.secret_body.empty()) {
      http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
      res.body() = std::move(reply.body);
      detail::prepare(res, reply, request_id, keep);
      written = co_await detail::write(ctx, s, res);
    } else {
      http::response<detail::SecretBody> res{static_cast<http::status>(reply.status), 11};
      res.body() = std::move(reply.secret_body);
      detail::prepare(res, reply, request_id, keep);
      written = co_await detail::write(ctx, s, res);
    }
    ctx.log_request(request_id, who.address, client.text, req.method_string(), req.target(),
                    reply.status, started, &reply);
    if (!written || !keep) co_return;
  }
}

}  // namespace hookvault::net
