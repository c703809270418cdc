// The daemon's start, run and shutdown order (contract in daemon.hpp); the
// reload policy is in reload.cpp.
#include "hookvault/daemon.hpp"

#include <string>
#include <thread>
#include <utility>

#include "daemon/daemon_impl.hpp"
#include "hookvault/collectors.hpp"
#include "hookvault/log.hpp"
#include "hookvault/ops.hpp"
#include "hookvault/process.hpp"

namespace hookvault {
namespace {

// Steps 1 to 3 of the start: the checks and the process, before anything is
// loaded. Returns `config`.
const Config& prepare_process(const Config& config) {
  if (auto problems = check_config(config); !problems.empty()) {
    throw StartRefused(std::move(problems));
  }
  // Key material lives in this process: no core dumps, no ptrace by peers,
  // secrets in locked memory.
  const HardeningReport hardening = harden_process();
  log(hardening.note.empty() ? LogLevel::info : LogLevel::warn, "process hardening",
      {{"core_dumps_disabled", hardening.core_dumps_disabled},
       {"secret_memory_locked", hardening.secret_memory_locked},
       {"note", hardening.note}});
  // A descriptor per connection up to the caps, and our own files; check_config
  // made sure the hard limit allows it.
  const std::uint64_t files = files_needed(config);
  const FileLimit before = file_limit();
  const FileLimit limit = raise_file_limit(files);
  if (limit.soft < files) {
    throw StartRefused(
        {"cannot raise the open-file limit (RLIMIT_NOFILE) to what "
         "max_connections needs: needed " +
         std::to_string(files) + ", soft limit " + std::to_string(limit.soft) + ", hard limit " +
         std::to_string(limit.hard)});
  }
  log(LogLevel::info, "open-file limit",
      {{"needed", files},
       {"soft_limit", limit.soft},
       {"raised_from", before.soft},
       {"hard_limit", limit.hard},
       {"max_connections", config.server.max_connections},
       {"admin_max_connections",
        config.admin.enabled ? config.admin.max_connections : std::size_t{0}}});
  return config;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& line : lines) all += (all.empty() ? "" : "; ") + line;
  return all;
}

}  // namespace

StartRefused::StartRefused(std::vector<std::string> problems)
    : std::runtime_error(joined(problems)), problems_(std::move(problems)) {}

Daemon::Impl::Impl(const Config& c, DaemonOptions o)
    : config(prepare_process(c)),
      options(o),
      reloads(metrics.counter("hookvault_config_reloads_total", "SIGHUP reloads, by result",
                              {"result"})),
      last_reload_ok(
          metrics
              .gauge("hookvault_config_last_reload_successful",
                     "1 when the last SIGHUP reload applied the config file, 0 when it failed")
              .with({})),
      running(c) {
  last_reload_ok.set(1);
  // Step 4: keys, store, sources, the pipeline.
  kek = open_kek(config);
  store = open_store(config, kek, StoreRole::daemon, &metrics);
  // Not ready while the database references a KEK version this keyring lacks
  // (another instance rotated, or a version was removed here): checked now,
  // before anything serves, and on the refresher's thread after each refresh.
  kek_coverage = std::make_unique<KekCoverage>(*kek, *store, metrics);
  kek_coverage->check();
  // The KEK follows its keyring by itself (and at once on SIGHUP): a version
  // `keys rotate` added is used for new records within refresh_interval.
  kek_refresher = std::make_unique<KekRefresher>(kek, config.kek.refresh_interval, metrics,
                                                 [this] { kek_coverage->check(); });
  sources = load_sources(config);
  const unsigned cores = std::thread::hardware_concurrency();
  pool = std::make_unique<WorkPool>(cores == 0 ? 1 : cores, config.server.worker_queue, &metrics);
  pipeline = std::make_unique<Pipeline>(sources, *store, *pool, metrics);
  pipeline->require_kek_coverage(*kek_coverage);

  // Step 5: the public listener.
  ListenerOptions listener{"public", {}, &metrics, {}, {}, {}};
  listener.on_hangup = [this] { reload(); };
  listener.on_shutdown = [this] { service_manager.stopping(); };
  server = std::make_unique<Server>(config.server, *pipeline, std::move(listener));
  collect_store_metrics(metrics, *store);
  collect_nodit_metrics(metrics, *store, sources);

  // Step 6: the mutual-TLS admin listener for signers and operators.
  if (config.admin.enabled) {
    admin = std::make_unique<AdminApi>(config.admin, *pipeline, *store, *pool, metrics);
    admin_server = std::make_unique<Server>(
        admin_listener_config(config), *admin,
        ListenerOptions{
            "admin", config.admin.client_ca, &metrics, {}, {}, config.admin.client_crl});
  }

  // Step 7: Nodit gap detection and backfill through the history API.
  std::vector<std::pair<std::string, const Backfiller*>> backfill_views;
  for (const auto& source : sources) {
    if (!source->config.history) continue;
    const HistoryConfig& h = *source->config.history;
    auto client = std::make_unique<NoditHistoryClient>(HistoryClientOptions{
        h.api_base_url, h.chain, h.network, load_secret(h.api_key), h.ca_file, h.request_timeout});
    auto* fetcher = client.get();
    history_clients.push_back(std::move(client));
    backfillers.push_back(std::make_unique<Backfiller>(
        source, *store, [fetcher](const HistoryQuery& q) { return fetcher->fetch(q); }));
    backfill_views.emplace_back(source->config.name, backfillers.back().get());
  }
  collect_backfill_metrics(metrics, std::move(backfill_views));
  for (auto& b : backfillers) b->start();
}

Daemon::Impl::~Impl() { shut_down(); }

void Daemon::Impl::shut_down() {
  if (shut) return;
  shut = true;
  if (admin_server) {
    admin_server->stop();
    if (admin_thread.joinable()) admin_thread.join();
  }
  for (auto& b : backfillers) b->stop();
  kek_refresher->stop();
  pool->stop();    // queued decryptions still reach the store
  store->close();  // commits what is queued
  if (ran) log(LogLevel::info, "stopped");
}

Daemon::Daemon(const Config& config, DaemonOptions options)
    : impl_(std::make_unique<Impl>(config, options)) {}

Daemon::~Daemon() = default;

Endpoint Daemon::public_endpoint() const { return impl_->server->local_endpoint(); }

std::optional<Endpoint> Daemon::admin_endpoint() const {
  if (!impl_->admin_server) return std::nullopt;
  return impl_->admin_server->local_endpoint();
}

void Daemon::run() {
  Impl& d = *impl_;
  d.ran = true;
  if (d.admin_server) d.admin_thread = std::thread([&d] { d.admin_server->run(false); });
  // Both listeners are bound and the store is open: READY=1 once the public
  // I/O loop runs. The watchdog pings only while that loop answers.
  d.server->post([&d] { d.service_manager.ready(); });
  d.service_manager.start_watchdog(
      [&d](std::function<void()> probe) { d.server->post(std::move(probe)); });
  d.server->run(d.options.handle_signals);
  d.service_manager.stop_watchdog();  // before the server goes: the probes are posted to it
  d.shut_down();
}

void Daemon::stop() { impl_->server->stop(); }

ReloadOutcome Daemon::reload() { return impl_->reload(); }

Metrics& Daemon::metrics() { return impl_->metrics; }

int serve(const Config& config) {
  init_logging(config.log.format, config.log.level);
  try {
    Daemon daemon(config);
    daemon.run();
  } catch (const StartRefused& refused) {
    for (const auto& p : refused.problems()) {
      log(LogLevel::critical, "refusing to start", {{"problem", p}});
    }
    return kExitError;
  }
  return kExitOk;
}

}  // namespace hookvault
