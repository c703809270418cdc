// The HTTP/1.1 side of one connection: the keep-alive loop that reads a
// request (fresh parser each time, header and body limits, header count,
// 100-continue), hands it to the RequestHandler as a Delivery, and writes the
// Reply. server.cpp runs it on a net::TlsStream after the TLS handshake; the
// request fuzzer (tests/fuzz/fuzz_request.cpp) runs the same code on an
// in-memory stream, so what it fuzzes is what the listener runs.
//
// A Stream is an Asio AsyncReadStream and AsyncWriteStream with, as
// net::TlsStream has them:
//   expires_after(duration)      the deadline of the operations that follow
//   async_wait_data(token)       void(error_code): decrypted data is readable
//   read_some(buffers, ec)       what is readable now, without waiting
//
// Timeouts: `idle_timeout` while waiting for the first byte of a request,
// `header_timeout` for the rest of the head, `body_timeout` for the body.
// Oversized bodies get 413, oversized heads 431, a malformed head 400; then
// the connection closes. A timeout, a reset or malformed chunking in the body
// closes it with no answer.
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

namespace hookvault::net {

// Who sent a request: the connection's peer, or the client a PROXY header or
// a trusted proxy's X-Forwarded-For names.
struct Client {
  IpAddress ip{};
  std::string text;  // the address, no port
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
  RequestHandler& handler;
  const std::string listener;
  const std::atomic<bool>& draining;
  // Connections cut off while waiting for a request, its head or its body, or
  // writing an answer.
  MetricSeries& idle_timeouts;
  MetricSeries& header_timeouts;
  MetricSeries& body_timeouts;
  MetricSeries& write_timeouts;

  // 32 hex digits: this process's random boot id and a request counter.
  std::string next_request_id();
  // The request's metrics and (at info) its log line.
  void log_request(const std::string& request_id, const std::string& peer, std::string_view client,
                   std::string_view method, std::string_view target, unsigned status,
                   std::chrono::steady_clock::time_point started, const Reply* reply);

 private:
  MetricFamily& requests_;
  MetricSeries& latency_;
  std::uint64_t boot_id_ = 0;
  std::atomic<std::uint64_t> next_request_{0};
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
      [&target](auto handler, Delivery d) {
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

}  // namespace detail

// The keep-alive loop. `busy` is false while the connection waits for a
// request (a draining listener may then cut it). Returns when the connection
// should close; the caller shuts TLS down and closes the socket. `ctx`, `s`
// and `busy` must outlive the loop; the strings are taken by value, into the
// coroutine's frame (a reference to a caller's temporary would dangle after
// the first suspension: the request fuzzer found that in its own first draft).
template <class Stream>
boost::asio::awaitable<void> serve_requests(HttpSessionContext& ctx, Stream& s, bool& busy,
                                            std::string peer, Client client,
                                            std::string client_cn) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  using detail::kNoThrow;
  const ServerConfig& cfg = ctx.cfg;
  beast::flat_buffer buffer;
  for (;;) {
    // Draining or not, a connection waits for its next request: one already
    // on its way is answered (with "Connection: close", which ends the
    // loop); close_idle_connections() cuts those that stay idle.
    busy = false;
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
      const std::size_t n = s.read_some(buffer.prepare(detail::kFirstReadBytes), rec);
      if (rec) co_return;
      buffer.commit(n);
    }
    busy = true;
    const auto started = std::chrono::steady_clock::now();
    const std::string request_id = ctx.next_request_id();

    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
    parser.body_limit(cfg.max_body_bytes);
    s.expires_after(cfg.header_timeout);
    auto [hec, hn] = co_await http::async_read_header(s, buffer, parser, kNoThrow);
    if (hec == http::error::body_limit) {
      co_await detail::reply_and_close(ctx, s, 413, "body_too_large", request_id);
      ctx.log_request(request_id, peer, client.text, "", "", 413, started, nullptr);
      co_return;
    }
    if (hec == http::error::header_limit) {
      co_await detail::reply_and_close(ctx, s, 431, "header_too_large", request_id);
      ctx.log_request(request_id, peer, client.text, "", "", 431, started, nullptr);
      co_return;
    }
    if (hec) {
      // A head that does not arrive in time (a slow client) is cut off
      // without an answer, as are a closed or reset connection.
      if (hec == beast::error::timeout) ctx.header_timeouts.inc();
      if (hec != beast::error::timeout && hec != http::error::end_of_stream &&
          hec != asio::ssl::error::stream_truncated && hec != asio::error::operation_aborted) {
        co_await detail::reply_and_close(ctx, s, 400, "bad_request", request_id);
      }
      co_return;
    }
    auto& head = parser.get();
    if (static_cast<std::size_t>(std::distance(head.begin(), head.end())) > cfg.max_header_count) {
      co_await detail::reply_and_close(ctx, s, 431, "too_many_headers", request_id);
      ctx.log_request(request_id, peer, client.text, head.method_string(), head.target(), 431,
                      started, nullptr);
      co_return;
    }
    if (beast::iequals(head[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      if (!co_await detail::write(ctx, s, cont)) co_return;
    }
    s.expires_after(cfg.body_timeout);
    auto [bec, bn] = co_await http::async_read(s, buffer, parser, kNoThrow);
    if (bec == http::error::body_limit) {
      co_await detail::reply_and_close(ctx, s, 413, "body_too_large", request_id);
      ctx.log_request(request_id, peer, client.text, head.method_string(), head.target(), 413,
                      started, nullptr);
      co_return;
    }
    if (bec == beast::error::timeout) ctx.body_timeouts.inc();
    if (bec) co_return;  // timeout, reset, malformed chunking: nothing to answer

    auto req = parser.release();
    Delivery d;
    d.method = req.method_string();
    d.target = req.target();
    d.content_type = req[http::field::content_type];
    d.header = [&req](std::string_view name) { return req[name]; };
    d.body = std::move(req.body());
    d.request_id = request_id;
    d.peer = peer;
    Client who = client;
    if (!cfg.trusted_proxies.empty() && any_contains(cfg.trusted_proxies, client.ip)) {
      // Several X-Forwarded-For fields read as one list, in order.
      std::string xff;
      auto [first, last] = req.equal_range("X-Forwarded-For");
      for (; first != last; ++first) {
        if (!xff.empty()) xff += ',';
        xff += first->value();
      }
      who = forwarded_client(client, xff, cfg.trusted_proxies);
    }
    d.client_ip = who.ip;
    d.client = who.text;
    d.client_cn = client_cn;
    Reply reply = co_await detail::async_handle(ctx.handler, std::move(d), asio::use_awaitable);

    const bool keep = req.keep_alive() && !ctx.draining;
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
    ctx.log_request(request_id, peer, who.text, req.method_string(), req.target(), reply.status,
                    started, &reply);
    if (!written || !keep) co_return;
  }
}

}  // namespace hookvault::net
