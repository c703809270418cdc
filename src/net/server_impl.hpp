// What a Server (include/hookvault/server.hpp) holds, shared by its files,
// one job each:
//   server.cpp              the public calls, the shards (one io_context per
//                           I/O thread) and run()
//   server_accept.cpp       the acceptor and max_connections: accept, admit,
//                           make room, refuse
//   server_connections.cpp  the connection registry: forget, retire after a
//                           change of client trust
//   server_session.cpp      one connection: PROXY header, TLS, requests
//   server_shutdown.cpp     the signals and the shutdown phases
// Private to src/net (Asio and Beast appear here).
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/cidr.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/proxy_protocol.hpp"
#include "hookvault/server.hpp"
#include "net/connection_table.hpp"
#include "net/http_session.hpp"
#include "net/tls_stream.hpp"

namespace hookvault {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Stream = net::TlsStream;
// A socket as the accept loop receives it (on the shard's io_context).
using AcceptedSocket = tcp::socket::rebind_executor<asio::io_context::executor_type>::other;

namespace net {

// Repeated warnings (refusals at the cap, failed accepts) are logged at most
// once per interval, each line counting the events since the previous one.
constexpr auto kWarningInterval = std::chrono::seconds(10);

// A warning that may repeat thousands of times a second under a flood: the
// first is logged, then at most one line per kWarningInterval.
// Unsynchronized: each is used from one coroutine (the accept loop) or under
// a mutex.
class ThrottledWarning {
 public:
  // Counts one event; true when a line should be written now, with
  // `events` set to the events since the last line (this one included).
  bool due(std::uint64_t& events) {
    ++events_;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) return false;
    next_ = now + kWarningInterval;
    events = events_;
    events_ = 0;
    return true;
  }

 private:
  std::chrono::steady_clock::time_point next_{};
  std::uint64_t events_ = 0;
};

// The message of a caught exception.
inline std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

inline IpAddress to_ip(const asio::ip::address& a) {
  return a.is_v6() ? a.to_v6().to_bytes() : ipv4_mapped(a.to_v4().to_bytes().data());
}

}  // namespace net

struct Server::Tls {
  ssl::context context{ssl::context::tls_server};
  // The client CA and CRL files' bytes: what verified the clients.
  std::string client_trust;
};

struct Server::Impl {
  struct Conn : net::TrackedConnection {
    // Throws (SSL_new, the socket) like TlsStream's constructor.
    Conn(tcp::socket socket, std::shared_ptr<Server::Tls> settings)
        : tls(std::move(settings)), stream(std::move(socket), tls->context.native_handle()) {}
    const std::shared_ptr<Server::Tls> tls;  // what it was accepted with
    Stream stream;
    // Its session has finished (set on its shard just before forget()): a
    // retirement still looking at it stops.
    bool ended = false;
  };

  Impl(const ServerConfig& c, RequestHandler& h, ListenerOptions o);

  // server_accept.cpp
  void listen();
  asio::awaitable<void> accept_loop();
  void admit(tcp::socket socket, const tcp::endpoint& peer);
  bool make_room(const IpAddress& client);
  template <class Socket>
  static void close_socket(Socket& socket) {
    boost::system::error_code ignored;
    socket.close(ignored);
  }
  void refuse(AcceptedSocket& socket);
  void refuse_untrusted_proxy(AcceptedSocket& socket, const tcp::endpoint& peer);
  // server_connections.cpp
  std::shared_ptr<Server::Tls> current_tls();
  void retire_connections(const Server::Tls* old);
  void retire_when_idle(std::shared_ptr<Conn> conn, std::chrono::steady_clock::time_point deadline);
  void forget(Conn* c);
  // server_session.cpp
  asio::awaitable<std::optional<ProxyHeader>> read_proxy_header(Conn& c);
  asio::awaitable<void> session(std::shared_ptr<Conn> conn, tcp::endpoint ep);
  asio::awaitable<void> proxy_handshake_and_serve(Conn& c, const tcp::endpoint& ep);
  asio::awaitable<void> handshake_and_serve(Conn& c, const std::string& peer,
                                            const net::Client& client);
  // server_shutdown.cpp
  void wait_for_signal();
  void close_idle_connections();
  void begin_shutdown();
  void close_listener();
  static MetricSeries& refused(Metrics& metrics, const std::string& listener,
                               std::string_view reason);

  const ServerConfig cfg;
  RequestHandler& handler;
  const ListenerOptions options;
  std::unique_ptr<Metrics> own_metrics;
  Metrics& metrics;
  MetricSeries& open_connections;
  MetricSeries& handshake_failures;
  MetricSeries& proxy_failures;
  MetricSeries& refused_at_cap;
  MetricSeries& refused_untrusted_proxy;
  MetricSeries& refused_setup;
  MetricFamily& evicted;
  MetricSeries& connection_errors;
  MetricSeries& handshake_timeouts;
  // The I/O threads' shards: each runs one io_context on its own thread, and
  // a connection lives on one shard (round-robin at accept) for its whole
  // life, so its handlers run in order with no strand, and a request never
  // wakes another I/O thread. Shard 0 (`ioc`) also runs the acceptor, the
  // signals and the shutdown timers.
  std::vector<std::unique_ptr<asio::io_context>> shards;
  asio::io_context& ioc;
  std::size_t next_shard = 0;  // accept loop only
  std::mutex tls_mu;
  std::shared_ptr<Server::Tls> tls;  // guarded by tls_mu; for new connections
  tcp::acceptor acceptor;
  asio::steady_timer accept_backoff;
  net::ThrottledWarning refusal_warning;   // accept loop only
  net::ThrottledWarning eviction_warning;  // accept loop only
  net::ThrottledWarning proxy_warning;     // accept loop only
  net::ThrottledWarning setup_warning;     // accept loop only
  net::ThrottledWarning accept_warning;    // accept loop only
  std::mutex error_warning_mu;             // sessions, on every shard
  net::ThrottledWarning error_warning;     // under error_warning_mu
  asio::signal_set signals;
  asio::steady_timer drain;     // drain_delay: readyz is 503, the listener still accepts
  asio::steady_timer idle_cut;  // kIdleLinger after the listener closed: idle connections go
  asio::steady_timer grace;     // shutdown_grace: in-flight requests finish
  std::atomic<bool> draining{false};
  std::atomic<bool> listener_closed{false};
  net::HttpSessionContext sessions;  // after draining: it keeps a reference

  // Accepted connections not yet forgotten, for max_connections (the gauge
  // open_connections is a double, for /metrics), and whom to close at it.
  std::atomic<std::size_t> open_count{0};
  net::ConnectionTable conns;
  std::function<void()> connection_setup_hook;  // tests only
};

}  // namespace hookvault
