#include "net/http_session.hpp"

#include <charconv>

#include "hookvault/bytes.hpp"
#include "hookvault/log.hpp"
#include "hookvault/random.hpp"

namespace hookvault::net {

Client forwarded_client(const Client& peer, std::string_view xff, std::span<const Cidr> trusted) {
  Client out = peer;
  while (!xff.empty()) {
    const auto comma = xff.rfind(',');
    const std::string_view entry =
        trim_ows(comma == std::string_view::npos ? xff : xff.substr(comma + 1));
    xff = comma == std::string_view::npos ? std::string_view() : xff.substr(0, comma);
    auto ip = parse_ip(entry);
    if (!ip) break;
    out = Client{*ip, ip_to_string(*ip)};
    if (!any_contains(trusted, *ip)) break;
  }
  return out;
}

MetricFamily& connection_timeouts(Metrics& metrics) {
  return metrics.counter("hookvault_connection_timeouts_total",
                         "Connections cut off by a timeout, by what they were doing "
                         "(handshake, idle, header, body, write)",
                         {"listener", "timeout"});
}

HttpSessionContext::HttpSessionContext(const ServerConfig& c, RequestHandler& h, std::string name,
                                       Metrics& metrics, const std::atomic<bool>& d)
    : cfg(c),
      limits{c.max_header_bytes, c.max_header_count, c.max_body_bytes},
      handler(h),
      listener(std::move(name)),
      draining(d),
      idle_timeouts(connection_timeouts(metrics).with({listener, "idle"})),
      header_timeouts(connection_timeouts(metrics).with({listener, "header"})),
      body_timeouts(connection_timeouts(metrics).with({listener, "body"})),
      write_timeouts(connection_timeouts(metrics).with({listener, "write"})),
      requests_(metrics.counter("hookvault_http_requests_total",
                                "HTTP requests answered, by listener, source, event and status",
                                {"listener", "source", "event", "status"})),
      latency_(metrics
                   .histogram("hookvault_http_request_duration_seconds",
                              "Time from the first byte of a request to its answer", {"listener"})
                   .with({listener})) {}

std::string HttpSessionContext::next_request_id() {
  std::uint8_t raw[16];
  if (!random_bytes(raw)) {
    // The CSPRNG failed (and the request will most likely fail too): a
    // process-wide count keeps ids unique, with a leading zero half that
    // tells such an id apart.
    const std::uint64_t n = ++fallback_ids_;
    for (int i = 0; i < 8; ++i) raw[i] = 0;
    for (int i = 0; i < 8; ++i) raw[8 + i] = static_cast<std::uint8_t>(n >> (56 - 8 * i));
  }
  return to_hex(ByteView(raw, sizeof raw));
}

void HttpSessionContext::log_request(const std::string& request_id, const std::string& peer,
                                     std::string_view client, std::string_view method,
                                     std::string_view target, unsigned status,
                                     std::chrono::steady_clock::time_point started,
                                     const Reply* reply) {
  const auto elapsed = std::chrono::steady_clock::now() - started;
  latency_.observe(std::chrono::duration<double>(elapsed).count());
  char status_text[8];
  auto [end, ec] = std::to_chars(status_text, status_text + sizeof status_text, status);
  requests_
      .with({listener, reply ? std::string_view(reply->source) : "",
             reply ? std::string_view(reply->event_name) : "",
             std::string_view(status_text, static_cast<std::size_t>(end - status_text))})
      .inc();
  if (!log_enabled(LogLevel::info)) return;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  const std::string_view path = target.substr(0, target.find('?'));
  log(LogLevel::info, "request",
      {{"request_id", request_id},
       {"listener", listener},
       {"peer", peer},
       {"client", client},
       {"method", method},
       {"path", path},
       {"status", status},
       {"source", reply ? std::string_view(reply->source) : ""},
       {"event", reply ? std::string_view(reply->event_name) : ""},
       {"event_id", reply ? std::string_view(reply->event_id) : ""},
       {"latency_us", us}});
}

}  // namespace hookvault::net
