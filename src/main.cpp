// hookvault: parses the command line and hands each subcommand to its
// component: `serve` to the daemon (daemon.hpp, the composition root), `init`
// and the operator commands to ops.hpp, `healthcheck` to healthcheck.hpp.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <stdexcept>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/daemon.hpp"
#include "hookvault/healthcheck.hpp"
#include "hookvault/init.hpp"
#include "hookvault/log.hpp"
#include "hookvault/ops.hpp"

namespace {
using namespace hookvault;
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
  std::string events_after;  // the events feed's token (a row id for the SQLite store)
  events_list_cmd->add_option("--after", events_after,
                              "the `next` token of the previous page (SQLite: a row id)");
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
      run_init(init_dir, std::cout);
      return kExitOk;
    }
    const auto path =
        config_file.empty() ? default_config_path() : std::filesystem::path(config_file);
    const Config config = load_config(path);
    if (check_cmd->parsed()) return check_config_command(config, std::cout, std::cerr);
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
