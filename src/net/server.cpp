#include "hookvault/server.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/error.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/cidr.hpp"
#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "hookvault/proxy_protocol.hpp"
#include "net/connection_table.hpp"
#include "net/http_session.hpp"
#include "net/tls.hpp"
#include "net/tls_stream.hpp"

namespace hookvault {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Stream = net::TlsStream;

namespace {

using net::Client;
using net::ConnectionPhase;
using net::detail::kNoThrow;
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);
constexpr auto kIdleLinger = std::chrono::seconds(1);
// Repeated warnings (refusals at the cap, failed accepts) are logged at most
// once per interval, each line counting the events since the previous one.
constexpr auto kWarningInterval = std::chrono::seconds(10);
// After accept() failed for want of descriptors or memory: the connection
// stays in the backlog, so accepting again at once would spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

// The I/O threads: `threads`, or one per core.
unsigned io_threads(const ServerConfig& cfg) {
  const unsigned n = cfg.threads != 0 ? cfg.threads : std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

// One io_context per I/O thread, each told it has one thread.
std::vector<std::unique_ptr<asio::io_context>> make_shards(unsigned n) {
  std::vector<std::unique_ptr<asio::io_context>> shards;
  for (unsigned i = 0; i < n; ++i) shards.push_back(std::make_unique<asio::io_context>(1));
  return shards;
}

IpAddress to_ip(const asio::ip::address& a) {
  return a.is_v6() ? a.to_v6().to_bytes() : ipv4_mapped(a.to_v4().to_bytes().data());
}

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
std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

// accept() failed for want of descriptors or memory.
bool out_of_resources(const boost::system::error_code& ec) {
  namespace errc = boost::system::errc;
  return ec == errc::too_many_files_open || ec == errc::too_many_files_open_in_system ||
         ec == errc::no_buffer_space || ec == errc::not_enough_memory;
}

// How often a connection to be closed (use_tls) is looked at until it is idle.
constexpr auto kRetirePoll = std::chrono::milliseconds(100);

// A file's bytes ("" when it cannot be read: loading it failed before).
std::string file_bytes(const std::filesystem::path& file) {
  if (file.empty()) return {};
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

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
  };

  Impl(const ServerConfig& c, RequestHandler& h, ListenerOptions o)
      : cfg(c),
        handler(h),
        options(std::move(o)),
        own_metrics(options.metrics ? nullptr : std::make_unique<Metrics>()),
        metrics(options.metrics ? *options.metrics : *own_metrics),
        open_connections(
            metrics.gauge("hookvault_open_connections", "Open client connections", {"listener"})
                .with({options.name})),
        handshake_failures(metrics
                               .counter("hookvault_tls_handshake_failures_total",
                                        "TLS handshakes that failed", {"listener"})
                               .with({options.name})),
        proxy_failures(metrics
                           .counter("hookvault_proxy_protocol_failures_total",
                                    "Connections closed for a missing or malformed PROXY v2 header",
                                    {"listener"})
                           .with({options.name})),
        refused_at_cap(refused(metrics, options.name, "cap")),
        refused_untrusted_proxy(refused(metrics, options.name, "untrusted_proxy")),
        refused_setup(refused(metrics, options.name, "setup")),
        evicted(metrics.counter("hookvault_connections_evicted_total",
                                "Connections closed at max_connections to make room for a new one, "
                                "by what they were doing (unauthenticated, idle, opening, reading)",
                                {"listener", "phase"})),
        connection_errors(metrics
                              .counter("hookvault_connection_errors_total",
                                       "Connections closed by an unexpected failure in their own "
                                       "handling (memory)",
                                       {"listener"})
                              .with({options.name})),
        handshake_timeouts(net::connection_timeouts(metrics).with({options.name, "handshake"})),
        shards(make_shards(io_threads(cfg))),
        ioc(*shards.front()),
        acceptor(ioc),
        accept_backoff(ioc),
        signals(ioc),
        drain(ioc),
        idle_cut(ioc),
        grace(ioc),
        sessions(cfg, handler, options.name, metrics, draining) {
    metrics.gauge("hookvault_max_connections", "The listener's max_connections", {"listener"})
        .with({options.name})
        .set(static_cast<double>(cfg.max_connections));
  }

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
  ThrottledWarning refusal_warning;   // accept loop only
  ThrottledWarning eviction_warning;  // accept loop only
  ThrottledWarning proxy_warning;     // accept loop only
  ThrottledWarning setup_warning;     // accept loop only
  ThrottledWarning accept_warning;    // accept loop only
  std::mutex error_warning_mu;        // sessions, on every shard
  ThrottledWarning error_warning;     // under error_warning_mu
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

  static MetricSeries& refused(Metrics& metrics, const std::string& listener,
                               std::string_view reason) {
    return metrics
        .counter("hookvault_connections_refused_total",
                 "Connections closed at once, before TLS, by reason (cap: max_connections were "
                 "open and none could make room; untrusted_proxy: proxy_protocol is on and the "
                 "peer is not in trusted_proxies; setup: the connection could not be set up)",
                 {"listener", "reason"})
        .with({listener, reason});
  }

  void listen() {
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
  asio::awaitable<void> accept_loop() {
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
  void admit(tcp::socket socket, const tcp::endpoint& peer) {
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
            {{"listener", options.name},
             {"error", what(std::current_exception())},
             {"failures", n}});
      }
      return;
    }
    next_shard = (next_shard + 1) % shards.size();
  }

  // At the cap: closes the connection ConnectionTable::evict_for() chooses
  // for a newcomer from `client`. Its slot is free once its shard has
  // closed it; until then the listener holds one connection more than the
  // cap (the descriptor goes at once: kReservedFiles covers the moment).
  bool make_room(const IpAddress& client) {
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

  template <class Socket>
  static void close_socket(Socket& socket) {
    boost::system::error_code ignored;
    socket.close(ignored);
  }

  // Closes a connection over the cap. The client sees its handshake fail:
  // a FIN, or a reset when its ClientHello had already arrived (the kernel
  // resets a socket closed with unread data).
  template <class Socket>
  void refuse(Socket& socket) {
    refused_at_cap.inc();  // first: once the client sees the close, it is counted
    close_socket(socket);
    if (std::uint64_t n = 0; refusal_warning.due(n)) {
      log(LogLevel::warn, "connections refused: max_connections are open",
          {{"listener", options.name}, {"max_connections", cfg.max_connections}, {"refused", n}});
    }
  }

  // proxy_protocol: only a trusted proxy may say who its client is.
  template <class Socket>
  void refuse_untrusted_proxy(Socket& socket, const tcp::endpoint& peer) {
    refused_untrusted_proxy.inc();
    close_socket(socket);
    if (std::uint64_t n = 0; proxy_warning.due(n)) {
      log(LogLevel::warn, "connection from a peer outside trusted_proxies closed (proxy_protocol)",
          {{"listener", options.name}, {"peer", peer.address().to_string()}, {"refused", n}});
    }
  }

  std::shared_ptr<Server::Tls> current_tls() {
    std::lock_guard lock(tls_mu);
    return tls;
  }

  // use_tls(): closes each connection accepted with `old` once it is idle
  // (or still opening), or at `deadline` whatever it does, polling every
  // kRetirePoll on its shard.
  void retire_connections(const Server::Tls* old) {
    const auto deadline = std::chrono::steady_clock::now() + kRetireGrace;
    for (auto& tracked : conns.all()) {
      auto c = std::static_pointer_cast<Conn>(tracked);
      if (c->tls.get() == old) retire_when_idle(std::move(c), deadline);
    }
  }

  void retire_when_idle(std::shared_ptr<Conn> conn,
                        std::chrono::steady_clock::time_point deadline) {
    auto ex = conn->stream.get_executor();
    asio::post(ex, [this, conn = std::move(conn), deadline]() mutable {
      if (conn->phase.evict(net::ConnectionPhase::idle)) {
        conn->stream.close();
        return;
      }
      if (conn->phase.get() == net::ConnectionPhase::evicted) return;
      if (std::chrono::steady_clock::now() >= deadline) conn->stream.cancel();
      auto timer = std::make_shared<asio::steady_timer>(conn->stream.get_executor(), kRetirePoll);
      timer->async_wait([this, conn, deadline, timer](boost::system::error_code ec) {
        if (!ec) retire_when_idle(conn, deadline);
      });
    });
  }

  void forget(Conn* c) {
    const bool last = conns.remove(c);
    --open_count;  // first: once the gauge shows a free slot, it is free
    open_connections.dec();
    if (last && listener_closed) {
      asio::post(ioc, [this] {
        idle_cut.cancel();
        grace.cancel();
      });
    }
  }

  // The PROXY v2 header, read from the TCP stream before TLS without
  // consuming a byte past it. nullopt: none, malformed, or too slow.
  asio::awaitable<std::optional<ProxyHeader>> read_proxy_header(Conn& c) {
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
  asio::awaitable<void> session(std::shared_ptr<Conn> conn, tcp::endpoint ep) {
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
            {{"listener", options.name},
             {"error", what(std::current_exception())},
             {"failures", n}});
      }
    }
    boost::system::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c.stream.close();
    forget(&c);
  }

  // The PROXY header when the listener requires one, then the rest.
  asio::awaitable<void> proxy_handshake_and_serve(Conn& c, const tcp::endpoint& ep) {
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
  asio::awaitable<void> handshake_and_serve(Conn& c, const std::string& peer,
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

  // SIGHUP: the owner's reload (file reads and key parsing: milliseconds, on
  // this one I/O thread; the others serve). SIGTERM/SIGINT: graceful shutdown;
  // a second one during the drain delay closes the listener at once.
  void wait_for_signal() {
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
  void close_idle_connections() {
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
  void begin_shutdown() {
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
  void close_listener() {
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
};

Server::Server(const ServerConfig& config, RequestHandler& handler, ListenerOptions options)
    : impl_(std::make_unique<Impl>(config, handler, std::move(options))) {
  impl_->tls = load_tls(config, impl_->options.client_ca, impl_->options.client_crl);
  impl_->listen();
}

std::shared_ptr<Server::Tls> Server::load_tls(const ServerConfig& config,
                                              const std::filesystem::path& client_ca,
                                              const std::filesystem::path& client_crl) {
  auto tls = std::make_shared<Tls>();
  net::configure_server_tls(tls->context, config.tls_cert, config.tls_key, config.tls_min_version);
  if (!client_ca.empty()) {
    net::require_client_certificates(tls->context, client_ca, client_crl);
    tls->client_trust = file_bytes(client_ca) + '\0' + file_bytes(client_crl);
  }
  return tls;
}

void Server::use_tls(std::shared_ptr<Tls> tls) {
  std::shared_ptr<Tls> old;
  {
    std::lock_guard lock(impl_->tls_mu);
    old = std::exchange(impl_->tls, std::move(tls));
  }
  if (impl_->options.client_ca.empty() || old == nullptr) return;
  if (old->client_trust == impl_->current_tls()->client_trust) return;
  // On the accept loop's thread: a connection it accepted with `old` just
  // before the swap is in `conns` by then.
  asio::post(impl_->ioc, [impl = impl_.get(), old] { impl->retire_connections(old.get()); });
}

Server::~Server() = default;

Endpoint Server::local_endpoint() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return Endpoint{ep.address().to_string(), ep.port()};
}

void Server::run(bool handle_signals) {
  Impl& impl = *impl_;
  if (handle_signals) {
    impl.signals.add(SIGTERM);
    impl.signals.add(SIGINT);
    if (impl.options.on_hangup) impl.signals.add(SIGHUP);
    impl.wait_for_signal();
  }
  asio::co_spawn(impl.acceptor.get_executor(), impl.accept_loop(), asio::detached);
  const auto ep = local_endpoint();
  log(LogLevel::info, "listening",
      {{"listener", impl.options.name}, {"address", ep.host}, {"port", ep.port}});
  // Shards 1.. keep running, with or without connections, until shard 0
  // (the listener, the shutdown) is done; then they finish what they hold.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep;
  std::vector<std::thread> threads;
  const std::string thread_name = "hv-" + impl.options.name;
  const auto run_shard = [&thread_name](asio::io_context& shard) {
    name_this_thread(thread_name);
    shard.run();
  };
  for (std::size_t i = 1; i < impl.shards.size(); ++i) {
    keep.push_back(asio::make_work_guard(*impl.shards[i]));
    threads.emplace_back(run_shard, std::ref(*impl.shards[i]));
  }
  run_shard(impl.ioc);
  keep.clear();
  for (auto& t : threads) t.join();
}

void Server::stop() {
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->begin_shutdown(); });
}

void Server::post(std::function<void()> fn) { asio::post(impl_->ioc, std::move(fn)); }

void Server::set_connection_setup_hook(std::function<void()> hook) {
  impl_->connection_setup_hook = std::move(hook);
}

}  // namespace hookvault
