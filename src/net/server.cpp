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
#include <unordered_map>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/cidr.hpp"
#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "hookvault/proxy_protocol.hpp"
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
// first is logged, then at most one line per kWarningInterval. Used from one
// coroutine (the accept loop), so unsynchronized.
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
  struct Conn {
    Conn(tcp::socket socket, std::shared_ptr<Server::Tls> settings)
        : tls(std::move(settings)), stream(std::move(socket), tls->context.native_handle()) {}
    const std::shared_ptr<Server::Tls> tls;  // what it was accepted with
    Stream stream;
    bool busy = false;  // touched only on the connection's shard
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
        refused_at_cap(metrics
                           .counter("hookvault_connections_refused_total",
                                    "Connections closed at once, before TLS, by reason (cap: "
                                    "max_connections were open)",
                                    {"listener", "reason"})
                           .with({options.name, "cap"})),
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
  ThrottledWarning refusal_warning;  // accept loop only
  ThrottledWarning accept_warning;   // accept loop only
  asio::signal_set signals;
  asio::steady_timer drain;     // drain_delay: readyz is 503, the listener still accepts
  asio::steady_timer idle_cut;  // kIdleLinger after the listener closed: idle connections go
  asio::steady_timer grace;     // shutdown_grace: in-flight requests finish
  std::atomic<bool> draining{false};
  std::atomic<bool> listener_closed{false};
  net::HttpSessionContext sessions;  // after draining: it keeps a reference

  // Accepted connections not yet forgotten, for max_connections (the gauge
  // open_connections is a double, for /metrics).
  std::atomic<std::size_t> open_count{0};
  std::mutex conns_mu;
  std::unordered_map<Conn*, std::weak_ptr<Conn>> conns;

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

  // Accepts until the listener closes. At max_connections a new connection
  // is closed at once, before a byte of TLS: it costs a descriptor for a
  // moment and nothing else, and the connections already open are not
  // touched. A slot frees when a connection is forgotten (forget()).
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
      if (open_count.load() >= cfg.max_connections) {
        refuse(socket);
        continue;
      }
      next_shard = (next_shard + 1) % shards.size();
      socket.set_option(tcp::no_delay(true), ec);
      auto conn = std::make_shared<Conn>(std::move(socket), current_tls());
      ++open_count;
      open_connections.inc();
      {
        std::lock_guard lock(conns_mu);
        conns.emplace(conn.get(), conn);
      }
      auto ex = conn->stream.get_executor();
      asio::co_spawn(ex, session(conn), asio::detached);
    }
  }

  // Closes a connection over the cap. The client sees its handshake fail:
  // a FIN, or a reset when its ClientHello had already arrived (the kernel
  // resets a socket closed with unread data).
  template <class Socket>
  void refuse(Socket& socket) {
    boost::system::error_code ignored;
    socket.close(ignored);
    refused_at_cap.inc();
    if (std::uint64_t n = 0; refusal_warning.due(n)) {
      log(LogLevel::warn, "connections refused: max_connections are open",
          {{"listener", options.name}, {"max_connections", cfg.max_connections}, {"refused", n}});
    }
  }

  std::shared_ptr<Server::Tls> current_tls() {
    std::lock_guard lock(tls_mu);
    return tls;
  }

  // use_tls(): closes each connection accepted with `old` once it is idle,
  // or at `deadline` whatever it does, polling every kRetirePoll on its shard.
  void retire_connections(const Server::Tls* old) {
    const auto deadline = std::chrono::steady_clock::now() + kRetireGrace;
    std::vector<std::shared_ptr<Conn>> accepted_with_old;
    {
      std::lock_guard lock(conns_mu);
      for (auto& [ptr, weak] : conns) {
        auto c = weak.lock();
        if (c && c->tls.get() == old) accepted_with_old.push_back(std::move(c));
      }
    }
    for (auto& conn : accepted_with_old) retire_when_idle(std::move(conn), deadline);
  }

  void retire_when_idle(std::shared_ptr<Conn> conn,
                        std::chrono::steady_clock::time_point deadline) {
    auto ex = conn->stream.get_executor();
    asio::post(ex, [this, conn = std::move(conn), deadline]() mutable {
      if (!conn->busy) {
        conn->stream.cancel();
        return;
      }
      if (std::chrono::steady_clock::now() >= deadline) conn->stream.cancel();
      auto timer = std::make_shared<asio::steady_timer>(conn->stream.get_executor(), kRetirePoll);
      timer->async_wait([this, conn, deadline, timer](boost::system::error_code ec) {
        if (!ec) retire_when_idle(conn, deadline);
      });
    });
  }

  void forget(Conn* c) {
    bool last = false;
    {
      std::lock_guard lock(conns_mu);
      conns.erase(c);
      last = conns.empty();
    }
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
    std::vector<std::uint8_t> rest(*length);
    auto [rec, rn] = co_await c.stream.async_read_raw(asio::buffer(rest), kNoThrow);
    if (rec) co_return std::nullopt;
    co_return parse_proxy_v2(prefix, rest);
  }

  asio::awaitable<void> session(std::shared_ptr<Conn> conn) {
    Conn& c = *conn;
    std::string peer;
    Client client;
    {
      boost::system::error_code ec;
      auto ep = c.stream.socket().remote_endpoint(ec);
      if (!ec) {
        client = Client{to_ip(ep.address()), ep.address().to_string()};
        peer = client.text + ":" + std::to_string(ep.port());
      }
    }
    bool admitted = true;
    if (cfg.proxy_protocol) {
      auto header = co_await read_proxy_header(c);
      admitted = header.has_value();
      if (!header) {
        proxy_failures.inc();
        log(LogLevel::warn, "connection without a valid PROXY v2 header closed",
            {{"listener", options.name}, {"peer", peer}});
      } else if (header->source) {
        client = Client{*header->source, ip_to_string(*header->source)};
      }
    }
    if (admitted) co_await handshake_and_serve(c, peer, client);
    boost::system::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c.stream.close();
    forget(&c);
  }

  // TLS handshake, the keep-alive loop, TLS shutdown.
  asio::awaitable<void> handshake_and_serve(Conn& c, const std::string& peer,
                                            const Client& client) {
    c.stream.expires_after(cfg.header_timeout);
    auto [hs_ec] = co_await c.stream.async_handshake(kNoThrow);
    if (hs_ec) {
      handshake_failures.inc();
      if (hs_ec == boost::beast::error::timeout) handshake_timeouts.inc();
      log(LogLevel::debug, "TLS handshake failed",
          {{"listener", options.name}, {"peer", peer}, {"error", hs_ec.message()}});
      co_return;
    }
    const std::string client_cn = options.client_ca.empty()
                                      ? std::string()
                                      : net::verified_client_cn(c.stream.native_handle());
    co_await net::serve_requests(sessions, c.stream, c.busy, peer, client, client_cn);
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

  void close_idle_connections() {
    std::vector<std::shared_ptr<Conn>> live;
    {
      std::lock_guard lock(conns_mu);
      for (auto& [ptr, weak] : conns) {
        if (auto c = weak.lock()) live.push_back(std::move(c));
      }
    }
    for (auto& conn : live) {
      asio::post(conn->stream.get_executor(), [conn] {
        if (!conn->busy) conn->stream.cancel();
      });
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
    bool live = false;
    {
      std::lock_guard lock(conns_mu);
      live = !conns.empty();
    }
    if (!live) return;
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

}  // namespace hookvault
