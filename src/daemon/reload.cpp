// The reload policy (daemon.hpp, "reload()"): the KEK's newest version first,
// then the config file all or nothing: everything it names is loaded and
// checked before any of it is applied, and applying cannot fail.
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "daemon/daemon_impl.hpp"
#include "hookvault/log.hpp"

namespace hookvault {
namespace {

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string all;
  for (const auto& item : items) {
    if (!all.empty()) all += separator;
    all += item;
  }
  return all;
}

// A config that reload() may apply: loaded, checked the way `serve` checks
// one, with nothing changed that takes a restart. Throws naming why not.
Config reloadable_config(const Config& running, const std::filesystem::path& file) {
  Config fresh = load_config(file);
  if (const auto problems = check_config(fresh); !problems.empty()) {
    throw std::runtime_error(joined(problems, "; "));
  }
  if (const auto keys = restart_required(running, fresh); !keys.empty()) {
    throw std::runtime_error("changed settings that take a restart: " + joined(keys, ", ") +
                             " (restore them to reload the rest, or restart)");
  }
  return fresh;
}

}  // namespace

ReloadOutcome Daemon::Impl::reload() {
  std::lock_guard lock(reload_mu);
  service_manager.reloading();
  kek_refresher->refresh_now();  // logs a failure itself
  try {
    Config fresh = reloadable_config(running, config.file);
    auto fresh_sources = load_sources(fresh);
    auto public_tls = Server::load_tls(fresh.server, {}, {});
    std::shared_ptr<Server::Tls> admin_tls;
    if (admin_server) {
      admin_tls = Server::load_tls(admin_listener_config(fresh), fresh.admin.client_ca,
                                   fresh.admin.client_crl);
    }
    // Everything loaded: apply (nothing below fails).
    const auto count = fresh_sources.size();
    pipeline->reload(std::move(fresh_sources));
    server->use_tls(std::move(public_tls));
    if (admin_server) {
      admin->reload(fresh.admin);
      admin_server->use_tls(std::move(admin_tls));
    }
    kek_refresher->set_interval(fresh.kek.refresh_interval);
    set_log_level(fresh.log.level);
    running = std::move(fresh);
    reloads.with({"success"}).inc();
    last_reload_ok.set(1);
    log(LogLevel::info, "reloaded",
        {{"config", config.file.string()}, {"sources", count}, {"kek_version", kek->version()}});
    service_manager.ready("serving; last reload applied");
    return ReloadOutcome{true, {}};
  } catch (const std::exception& e) {
    reloads.with({"failure"}).inc();
    last_reload_ok.set(0);
    log(LogLevel::error, "reload failed; keeping the running configuration",
        {{"config", config.file.string()}, {"error", e.what()}, {"kek_version", kek->version()}});
    // The old config still serves.
    service_manager.ready("serving; last reload FAILED: nothing applied, see the log");
    return ReloadOutcome{false, e.what()};
  }
}

}  // namespace hookvault
