// hookvault: the composition root. Parses the command line and wires the
// stages together; no logic of its own.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

#include "hookvault/admin.hpp"
#include "hookvault/backfill.hpp"
#include "hookvault/collectors.hpp"
#include "hookvault/config.hpp"
#include "hookvault/healthcheck.hpp"
#include "hookvault/init.hpp"
#include "hookvault/kek_refresher.hpp"
#include "hookvault/log.hpp"
#include "hookvault/nodit_history.hpp"
#include "hookvault/ops.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/process.hpp"
#include "hookvault/server.hpp"
#include "hookvault/service_manager.hpp"
#include "hookvault/work_pool.hpp"

namespace {

using namespace hookvault;

// check-config's problems as one line ("" when there are none).
std::string config_problems(const Config& config) {
  std::string all;
  for (const auto& p : check_config(config)) all += (all.empty() ? "" : "; ") + p;
  return all;
}

int serve(const Config& config) {
  init_logging(config.log.format, config.log.level);
  // Start (and reload, below) only when check-config would pass: among other
  // things, key and secret files readable by group or others are refused.
  if (const auto problems = check_config(config); !problems.empty()) {
    for (const auto& p : problems) log(LogLevel::critical, "refusing to start", {{"problem", p}});
    return kExitError;
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
    log(LogLevel::critical, "refusing to start",
        {{"problem",
          "cannot raise the open-file limit (RLIMIT_NOFILE) to what max_connections "
          "needs"},
         {"needed", files},
         {"soft_limit", limit.soft},
         {"hard_limit", limit.hard}});
    return kExitError;
  }
  log(LogLevel::info, "open-file limit",
      {{"needed", files},
       {"soft_limit", limit.soft},
       {"raised_from", before.soft},
       {"hard_limit", limit.hard},
       {"max_connections", config.server.max_connections},
       {"admin_max_connections",
        config.admin.enabled ? config.admin.max_connections : std::size_t{0}}});
  const std::shared_ptr<Kek> kek = open_kek(config);
  Metrics metrics;
  auto store = open_store(config, kek, StoreRole::daemon, &metrics);
  // The KEK follows its keyring by itself (and at once on SIGHUP): a version
  // `keys rotate` added is used for new records within refresh_interval.
  KekRefresher kek_refresher(kek, config.kek.refresh_interval, metrics);
  auto sources = load_sources(config);
  unsigned cores = std::thread::hardware_concurrency();
  WorkPool pool(cores == 0 ? 1 : cores, config.server.worker_queue, &metrics);
  Pipeline pipeline(sources, *store, pool, metrics);
  // systemd's notify protocol (a no-op when not started by systemd).
  ServiceManager service_manager;
  std::unique_ptr<AdminApi> admin;
  std::unique_ptr<Server> admin_server;
  std::unique_ptr<Server> server;
  Config running = config;  // what the listeners and handlers use now
  MetricFamily& reloads =
      metrics.counter("hookvault_config_reloads_total", "SIGHUP reloads, by result", {"result"});
  MetricSeries& last_reload_ok =
      metrics
          .gauge("hookvault_config_last_reload_successful",
                 "1 when the last SIGHUP reload applied the config file, 0 when it failed")
          .with({});
  last_reload_ok.set(1);
  // SIGHUP: the KEK's newest version first, whatever happens to the rest;
  // then the config file, all or nothing: everything it names is loaded and
  // checked (check-config's checks, and what needs a restart) before any of
  // it is applied, so a reload that fails keeps everything as it was, and
  // says why in the log, in hookvault_config_last_reload_successful and in
  // the service manager's status. Applied: the sources (webhook secrets, RSA
  // keys, allow_from, ...), both listeners' certificates and keys, the admin
  // client CA, CRL, clients and rate limit, kek.refresh_interval and the log
  // level; anything else that changed needs a restart (restart_required).
  auto reload = [&] {
    service_manager.reloading();
    kek_refresher.refresh_now();  // logs a failure itself
    try {
      const Config fresh = load_config(config.file);
      if (const auto problems = config_problems(fresh); !problems.empty()) {
        throw std::runtime_error(problems);
      }
      if (const auto keys = restart_required(running, fresh); !keys.empty()) {
        std::string list;
        for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
        throw std::runtime_error("changed settings that take a restart: " + list +
                                 " (restore them to reload the rest, or restart)");
      }
      auto fresh_sources = load_sources(fresh);
      auto public_tls = Server::load_tls(fresh.server, {}, {});
      std::shared_ptr<Server::Tls> admin_tls;
      if (admin_server) {
        admin_tls = Server::load_tls(admin_listener_config(fresh), fresh.admin.client_ca,
                                     fresh.admin.client_crl);
      }
      // Everything loaded: apply (nothing below fails).
      const auto count = fresh_sources.size();
      pipeline.reload(std::move(fresh_sources));
      server->use_tls(std::move(public_tls));
      if (admin_server) {
        admin->reload(fresh.admin);
        admin_server->use_tls(std::move(admin_tls));
      }
      kek_refresher.set_interval(fresh.kek.refresh_interval);
      set_log_level(fresh.log.level);
      running = fresh;
      reloads.with({"success"}).inc();
      last_reload_ok.set(1);
      log(LogLevel::info, "reloaded",
          {{"config", config.file.string()}, {"sources", count}, {"kek_version", kek->version()}});
      service_manager.ready("serving; last reload applied");
    } catch (const std::exception& e) {
      reloads.with({"failure"}).inc();
      last_reload_ok.set(0);
      log(LogLevel::error, "reload failed; keeping the running configuration",
          {{"config", config.file.string()}, {"error", e.what()}, {"kek_version", kek->version()}});
      // The old config still serves.
      service_manager.ready("serving; last reload FAILED: nothing applied, see the log");
    }
  };
  server = std::make_unique<Server>(
      config.server, pipeline,
      ListenerOptions{
          "public", {}, &metrics, reload, [&service_manager] { service_manager.stopping(); }, {}});
  collect_store_metrics(metrics, *store);
  collect_nodit_metrics(metrics, *store, sources);

  // The mutual-TLS admin listener for signers and operators.
  if (config.admin.enabled) {
    admin = std::make_unique<AdminApi>(config.admin, pipeline, *store, pool, metrics);
    admin_server = std::make_unique<Server>(
        admin_listener_config(config), *admin,
        ListenerOptions{
            "admin", config.admin.client_ca, &metrics, {}, {}, config.admin.client_crl});
  }

  // Nodit gap detection and backfill through the history API.
  std::vector<std::unique_ptr<NoditHistoryClient>> clients;
  std::vector<std::unique_ptr<Backfiller>> backfillers;
  std::vector<std::pair<std::string, const Backfiller*>> backfill_views;
  for (const auto& source : sources) {
    if (!source->config.history) continue;
    const HistoryConfig& h = *source->config.history;
    auto client = std::make_unique<NoditHistoryClient>(HistoryClientOptions{
        h.api_base_url, h.chain, h.network, load_secret(h.api_key), h.ca_file, h.request_timeout});
    auto* raw = client.get();
    clients.push_back(std::move(client));
    backfillers.push_back(std::make_unique<Backfiller>(
        source, *store, [raw](const HistoryQuery& q) { return raw->fetch(q); }));
    backfill_views.emplace_back(source->config.name, backfillers.back().get());
  }
  collect_backfill_metrics(metrics, std::move(backfill_views));
  for (auto& b : backfillers) b->start();

  std::thread admin_thread;
  if (admin_server) admin_thread = std::thread([&admin_server] { admin_server->run(false); });
  // Both listeners are bound and the store is open: READY=1 once the public
  // I/O loop runs. The watchdog pings only while that loop answers.
  server->post([&service_manager] { service_manager.ready(); });
  service_manager.start_watchdog(
      [&server](std::function<void()> probe) { server->post(std::move(probe)); });
  server->run();
  service_manager.stop_watchdog();  // before `server` goes: the probes are posted to it
  if (admin_server) {
    admin_server->stop();
    admin_thread.join();
  }
  for (auto& b : backfillers) b->stop();
  kek_refresher.stop();
  pool.stop();     // queued decryptions still reach the store
  store->close();  // commits what is queued
  log(LogLevel::info, "stopped");
  return kExitOk;
}

int check(const Config& config) {
  auto problems = check_config(config);
  for (const auto& p : problems) std::cerr << p << "\n";
  if (problems.empty()) std::cout << "ok: " << config.file.string() << "\n";
  return problems.empty() ? kExitOk : kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hookvault: a webhook receiver for secret-bearing webhooks"};
  app.require_subcommand(1);
  std::string config_file;
  auto add_config = [&config_file](CLI::App* cmd) {
    cmd->add_option("--config", config_file,
                    "config file (default: $HOOKVAULT_CONFIG, else /etc/hookvault/hookvault.toml)");
  };

  auto* serve_cmd = app.add_subcommand("serve", "run the daemon");
  add_config(serve_cmd);

  std::string init_dir = "./var/dev";
  auto* init_cmd = app.add_subcommand("init", "create a working local setup");
  init_cmd->add_option("--dir", init_dir, "folder to create (default ./var/dev)");

  auto* check_cmd = app.add_subcommand("check-config", "validate the config and its files");
  add_config(check_cmd);

  auto* healthcheck_cmd =
      app.add_subcommand("healthcheck", "probe the public listener: exit 0 when /readyz is 200");
  HealthcheckOptions health;
  std::string health_timeout = "3s";
  healthcheck_cmd->add_flag("--live", health.live, "probe /healthz (running) instead of /readyz");
  healthcheck_cmd->add_option("--timeout", health_timeout, "for the whole probe (default 3s)");
  add_config(healthcheck_cmd);

  auto* materials_cmd = app.add_subcommand("materials", "delegated materials");
  materials_cmd->require_subcommand(1);
  auto* materials_get_cmd = materials_cmd->add_subcommand("get", "print a wallet's materials");
  std::string wallet_id;
  std::optional<std::string> source;
  materials_get_cmd->add_option("WALLET_ID", wallet_id, "wallet id")->required();
  materials_get_cmd->add_option("--source", source, "source name");
  add_config(materials_get_cmd);

  auto* events_cmd = app.add_subcommand("events", "stored events");
  events_cmd->require_subcommand(1);
  auto* events_list_cmd = events_cmd->add_subcommand("list", "event metadata as JSON lines");
  std::int64_t after = 0;
  std::size_t limit = 100;
  events_list_cmd->add_option("--source", source, "source name");
  std::string events_after;  // the events feed's token: a row id for the SQLite store
  events_list_cmd->add_option("--after", events_after, "only ids greater than this");
  events_list_cmd->add_option("--limit", limit, "at most this many")->check(CLI::Range(1, 100000));
  add_config(events_list_cmd);
  auto* events_show_cmd = events_cmd->add_subcommand("show", "one event with its payload");
  std::string event_id;
  events_show_cmd->add_option("ID", event_id, "event id (or provider event id)")->required();
  add_config(events_show_cmd);

  auto* reprocess_cmd = app.add_subcommand("reprocess", "retry failed delegation decryptions");
  add_config(reprocess_cmd);

  auto* nodit_cmd = app.add_subcommand("nodit", "Nodit subscriptions");
  nodit_cmd->require_subcommand(1);
  auto* nodit_gaps_cmd =
      nodit_cmd->add_subcommand("gaps", "sequence gaps per subscription as JSON");
  nodit_gaps_cmd->add_option("--source", source, "source name");
  add_config(nodit_gaps_cmd);

  auto* audit_cmd = app.add_subcommand("audit", "the hash-chained audit log");
  audit_cmd->require_subcommand(1);
  auto* audit_verify_cmd =
      audit_cmd->add_subcommand("verify", "check the chain; exit 1 on a break");
  add_config(audit_verify_cmd);
  auto* audit_list_cmd = audit_cmd->add_subcommand("list", "audit records as JSON lines");
  audit_list_cmd->add_option("--after", after, "only records with a seq greater than this");
  audit_list_cmd->add_option("--limit", limit, "at most this many")->check(CLI::Range(1, 100000));
  add_config(audit_list_cmd);

  auto* keys_cmd = app.add_subcommand("keys", "KEK versions: rotation without downtime");
  keys_cmd->require_subcommand(1);
  auto* keys_status_cmd =
      keys_cmd->add_subcommand("status", "wrapped keys per KEK version as JSON lines");
  add_config(keys_status_cmd);
  auto* keys_rotate_cmd = keys_cmd->add_subcommand("rotate", "add a KEK version for new records");
  add_config(keys_rotate_cmd);
  auto* keys_rewrap_cmd =
      keys_cmd->add_subcommand("rewrap", "move every wrapped key to the current KEK version");
  std::size_t rewrap_batch = kDefaultRewrapBatch;
  keys_rewrap_cmd->add_option("--batch", rewrap_batch, "wrapped keys per committed batch")
      ->check(CLI::Range(1, 100000));
  add_config(keys_rewrap_cmd);
  auto* keys_retire_cmd =
      keys_cmd->add_subcommand("retire", "remove a KEK version that nothing uses");
  std::uint32_t retire_version = 0;
  keys_retire_cmd->add_option("VERSION", retire_version, "the version to remove")
      ->required()
      ->check(CLI::Range(1U, 0xFFFFFFFFU));
  add_config(keys_retire_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (init_cmd->parsed()) {
      ::umask(077);
      return run_init(init_dir, std::cout).ok ? kExitOk : kExitError;
    }
    const auto path =
        config_file.empty() ? default_config_path() : std::filesystem::path(config_file);
    const Config config = load_config(path);
    if (check_cmd->parsed()) return check(config);
    if (healthcheck_cmd->parsed()) {
      health.timeout = parse_duration(health_timeout);
      if (health.timeout.count() <= 0) throw std::invalid_argument("--timeout must be positive");
      return healthcheck(config, health, std::cout, std::cerr);
    }
    if (serve_cmd->parsed()) return serve(config);
    // Operator commands log to stderr in text form, warnings and above.
    init_logging("text", "warn");
    if (materials_get_cmd->parsed()) {
      return materials_get(config, wallet_id, source, std::cout, std::cerr);
    }
    if (events_list_cmd->parsed()) {
      return events_list(config, source, events_after, limit, std::cout, std::cerr);
    }
    if (events_show_cmd->parsed()) return events_show(config, event_id, std::cout, std::cerr);
    if (reprocess_cmd->parsed()) return reprocess(config, std::cout, std::cerr);
    if (nodit_gaps_cmd->parsed()) return nodit_gaps(config, source, std::cout, std::cerr);
    if (audit_verify_cmd->parsed()) return audit_verify(config, std::cout, std::cerr);
    if (audit_list_cmd->parsed()) return audit_list(config, after, limit, std::cout, std::cerr);
    if (keys_status_cmd->parsed()) return keys_status(config, std::cout, std::cerr);
    if (keys_rotate_cmd->parsed()) return keys_rotate(config, std::cout, std::cerr);
    if (keys_rewrap_cmd->parsed()) return keys_rewrap(config, rewrap_batch, std::cout, std::cerr);
    if (keys_retire_cmd->parsed()) {
      return keys_retire(config, retire_version, std::cout, std::cerr);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitError;
  }
  return kExitError;
}
