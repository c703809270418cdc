// What a Daemon holds (daemon.hpp), shared by its two files: daemon.cpp (start,
// run, the shutdown order) and reload.cpp (the reload policy).
//
// The members are declared in the order the constructor builds them, so a
// start that throws half-way, like the destructor, tears down what was built
// in the reverse order: nothing is destroyed while something built after it
// may still use it.
#pragma once

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "hookvault/admin.hpp"
#include "hookvault/backfill.hpp"
#include "hookvault/config.hpp"
#include "hookvault/daemon.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/kek_coverage.hpp"
#include "hookvault/kek_refresher.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/nodit_history.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/server.hpp"
#include "hookvault/service_manager.hpp"
#include "hookvault/store.hpp"
#include "hookvault/work_pool.hpp"

namespace hookvault {

struct Daemon::Impl {
  Impl(const Config& config, DaemonOptions options);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  ReloadOutcome reload();
  // The shutdown order after the public listener has stopped (daemon.hpp);
  // once, whether run() ran or not.
  void shut_down();

  const Config config;  // as started; reload() reads config.file again
  const DaemonOptions options;
  Metrics metrics;
  MetricFamily& reloads;
  MetricSeries& last_reload_ok;
  std::shared_ptr<Kek> kek;
  std::unique_ptr<Store> store;
  std::unique_ptr<KekCoverage> kek_coverage;
  std::unique_ptr<KekRefresher> kek_refresher;
  Pipeline::Sources sources;  // as started: the collectors and backfillers keep them
  std::unique_ptr<WorkPool> pool;
  std::unique_ptr<Pipeline> pipeline;
  ServiceManager service_manager;
  std::unique_ptr<Server> server;
  std::unique_ptr<AdminApi> admin;
  std::unique_ptr<Server> admin_server;
  std::vector<std::unique_ptr<NoditHistoryClient>> history_clients;
  std::vector<std::unique_ptr<Backfiller>> backfillers;

  std::mutex reload_mu;  // one reload at a time
  Config running;        // what the listeners and handlers use now; guarded by reload_mu

  std::thread admin_thread;  // run() only
  bool ran = false;          // run() was called
  bool shut = false;         // shut_down() ran
};

}  // namespace hookvault
