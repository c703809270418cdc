// Server (include/hookvault/server.hpp): the public calls, the shards and
// run(). What a Server holds, and which file does which job:
// net/server_impl.hpp.
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "net/server_impl.hpp"
#include "net/tls.hpp"

namespace hookvault {
namespace {

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

// A file's bytes ("" when it cannot be read: loading it failed before).
std::string file_bytes(const std::filesystem::path& file) {
  if (file.empty()) return {};
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

Server::Impl::Impl(const ServerConfig& c, RequestHandler& h, ListenerOptions o)
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

MetricSeries& Server::Impl::refused(Metrics& metrics, const std::string& listener,
                                    std::string_view reason) {
  return metrics
      .counter("hookvault_connections_refused_total",
               "Connections closed at once, before TLS, by reason (cap: max_connections were "
               "open and none could make room; untrusted_proxy: proxy_protocol is on and the "
               "peer is not in trusted_proxies; setup: the connection could not be set up)",
               {"listener", "reason"})
      .with({listener, reason});
}

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
