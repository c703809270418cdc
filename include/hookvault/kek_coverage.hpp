// KekCoverage: can this process's KEK open every wrapped key the database
// holds? The daemon's /readyz is 503 while it cannot (pipeline.hpp).
//
// check() asks the store which (KEK id, version) pairs its wrapped keys are
// stored under (Store::kek_refs: index probes, not a count of rows) and
// compares them with the Kek's id and versions() (kek.hpp). Every pair that is
// not (kek.id(), one of kek.versions()) is missing: a version another
// instance on the same database rotated to and wraps new records under while
// this keyring does not have it yet, a version removed from this keyring
// although rows still use it, or another KEK altogether. While something is
// missing, covered() is false. The daemon runs check() once before it serves
// and then on the KEK refresher's thread after every refresh (every [kek]
// refresh_interval, and soon after SIGHUP: kek_refresher.hpp), so an instance
// turns not ready within one refresh_interval of another instance's first
// record under a version it lacks, and ready again within one interval (at
// once on SIGHUP) of its keyring gaining that version.
//
// Each change of what is missing is logged: a warning naming the KEK id, the
// missing pairs ("<kek id>:v<N>") and the versions this keyring has when
// something turns missing, an info line when nothing is missing any more;
// never a key. The gauge hookvault_kek_versions_missing holds how many pairs
// are missing. A check whose query fails keeps what the last one found (and
// logs the error); before the first check covered() is false.
//
// Thread-safety: covered() is safe from any thread (an atomic: no I/O thread
// ever waits on the database). check() blocks on the database (control
// plane); calls are serialised.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

class KekCoverage {
 public:
  // `kek`, `store` and `metrics` must outlive it.
  KekCoverage(const Kek& kek, const Store& store, Metrics& metrics);
  KekCoverage(const KekCoverage&) = delete;
  KekCoverage& operator=(const KekCoverage&) = delete;

  // Compares the store's references with the KEK's versions now; returns
  // covered() afterwards.
  bool check();
  bool covered() const noexcept { return covered_.load(std::memory_order_acquire); }

 private:
  const Kek& kek_;
  const Store& store_;
  MetricSeries& missing_gauge_;
  std::mutex check_mu_;
  std::vector<KekRef> missing_;  // what the last check found; guarded by check_mu_
  bool checked_ = false;         // guarded by check_mu_
  std::atomic<bool> covered_{false};
};

}  // namespace hookvault
