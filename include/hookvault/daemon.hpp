// The daemon (`hookvault serve`): the composition root. It builds every stage
// from the configuration, wires them together, reloads them and shuts them
// down in order; no other code holds the wiring (src/main.cpp parses the
// command line and calls serve()).
//
// Start (the constructor), in this order:
//   1. check-config's checks (config.hpp check_config): any problem refuses
//      the start (StartRefused, one line per problem), so key and secret files
//      readable by group or others never get as far as being loaded;
//   2. process hardening (process.hpp harden_process: no core dumps, not
//      dumpable, secrets in locked memory where RLIMIT_MEMLOCK allows),
//      logged with what could not be done;
//   3. the soft open-file limit raised to files_needed() (both connection
//      caps plus kReservedFiles); refused when the hard limit is lower;
//   4. the KEK, the store (the serving process's: retention purge, 5 s busy
//      timeout), the first KEK coverage check (kek_coverage.hpp: /readyz is
//      503 while the database references a KEK version this keyring lacks),
//      the KEK refresher ([kek] refresh_interval; the coverage is checked
//      again on its thread after each refresh), the sources
//      (webhook secrets, RSA keys), the worker pool (one thread per core,
//      [server] worker_queue), the pipeline;
//   5. the public listener, bound (its SIGHUP is reload(), its shutdown
//      tells the service manager STOPPING=1), and the metric collectors of
//      the store and the Nodit sources;
//   6. with [admin] enabled: the admin API and its mutual-TLS listener, bound;
//   7. per source with [sources.history]: a Nodit history client and a
//      Backfiller, started.
// A failure at any step throws and undoes the steps before it from 4 on
// (nothing stays bound, the store is closed; hardening and the raised limit
// stay with the process).
//
// run() serves until stop() (or, with DaemonOptions::handle_signals, SIGTERM
// or SIGINT): the admin listener on a thread of its own, the public one on the
// calling thread; READY=1 to the service manager once the public I/O loop
// runs, and the watchdog while it answers (service_manager.hpp). Then the
// shutdown order, each step once the one before has finished:
//   public listener (drain_delay, then in-flight requests answered within
//   shutdown_grace: server.hpp) -> watchdog -> admin listener -> backfillers
//   -> KEK refresher -> worker pool (queued decryptions still reach the store)
//   -> store (commits what is queued).
//
// reload() (SIGHUP) is all or nothing. First the KEK's newest version
// (KekRefresher::refresh_now, whatever happens to the rest); then the config
// file is read again and everything it names is loaded and checked
// (check-config's checks; restart_required() for what only a restart may
// change) before any of it is applied, so a reload that fails keeps
// everything as it was and says why: in the log ("reload failed; keeping the
// running configuration"), in hookvault_config_last_reload_successful (0) and
// hookvault_config_reloads_total{result}, in the service manager's status, and
// in the returned ReloadOutcome. Applied: the sources (webhook secrets, RSA
// keys, allow_from, ...), both listeners' certificates and keys, the admin
// client CA, CRL, clients and rate limit, [kek] refresh_interval and the log
// level.
//
// Thread-safety: stop() and reload() are safe from any thread (reloads run one
// at a time); run() is called once, from one thread. The destructor stops and
// shuts down whatever is still running, except run() itself: a thread in
// run() must have returned first (stop() makes it return).
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "hookvault/config.hpp"
#include "hookvault/metrics.hpp"

namespace hookvault {

struct DaemonOptions {
  // SIGTERM and SIGINT stop the daemon and SIGHUP reloads it (`serve`).
  // false: only stop() and reload() do (tests, which run it in their process).
  bool handle_signals = true;
};

// What a reload did: applied, or nothing at all and why not.
struct ReloadOutcome {
  bool applied = false;
  std::string error;  // when not applied: the problems, or the settings that take a restart
};

// The start was refused before anything was loaded or bound: check-config's
// problems, or an open-file limit too low for the connection caps.
class StartRefused : public std::runtime_error {
 public:
  explicit StartRefused(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  std::vector<std::string> problems_;
};

class Daemon {
 public:
  // Steps 1 to 7 above. Throws StartRefused, or ConfigError /
  // std::runtime_error naming the file, address or provider that failed.
  explicit Daemon(const Config& config, DaemonOptions options = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The bound listeners (the real ports when the config asked for port 0).
  Endpoint public_endpoint() const;
  std::optional<Endpoint> admin_endpoint() const;  // nullopt: [admin] not enabled

  // Serves until shutdown, then runs the shutdown order above. Once.
  void run();
  // Begins the graceful shutdown (the same as SIGTERM). Before run(), run()
  // returns as soon as it has started.
  void stop();
  // SIGHUP's work; see above.
  ReloadOutcome reload();

  // The registry the admin listener's /metrics renders.
  Metrics& metrics();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `hookvault serve`: logging as [log] says, then a Daemon run until it stops.
// kExitOk after a graceful shutdown; kExitError when the start was refused
// (each problem logged as "refusing to start"). Other start failures throw, as
// the Daemon constructor does.
int serve(const Config& config);

}  // namespace hookvault
