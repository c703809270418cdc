// Stores on the shared test cluster (pg_cluster.hpp): a fresh database per
// test, and stores opened on it as often as a test asks (another store on
// the same database is another instance).
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hookvault/pg_store.hpp"
#include "pg_cluster.hpp"

namespace hookvault::testing {

class PgTestDatabase {
 public:
  PgTestDatabase() {
    static std::atomic<int> counter{0};
    name_ = "store_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    conninfo_ = shared_pg_cluster().create_database(name_);
    password_ =
        std::make_shared<const SecretBytes>(SecretBytes::copy_of(shared_pg_cluster().password()));
  }
  const std::string& conninfo() const noexcept { return conninfo_; }
  const std::string& name() const noexcept { return name_; }

  PgStoreOptions options() const {
    PgStoreOptions o;
    o.conninfo = conninfo_;
    o.password = password_;
    o.lease_ping = std::chrono::milliseconds(200);
    return o;
  }
  Result<std::unique_ptr<Store>> open(std::shared_ptr<const Kek> kek, PgStoreOptions o) const {
    return open_pg_store(o, std::move(kek));
  }
  Result<std::unique_ptr<Store>> open(std::shared_ptr<const Kek> kek) const {
    return open(std::move(kek), options());
  }

 private:
  std::string name_;
  std::string conninfo_;
  std::shared_ptr<const SecretBytes> password_;
};

// Submits every request at once (so they share batches) and waits for every
// completion: the results in the requests' order.
inline std::vector<Result<WriteResult>> submit_together(Store& store,
                                                        std::vector<WriteRequest> requests) {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t done = 0;
  std::vector<Result<WriteResult>> results(requests.size(), make_error_code(Errc::internal));
  for (std::size_t i = 0; i < requests.size(); ++i) {
    store.submit(std::move(requests[i]), [&, i](Result<WriteResult> w) {
      std::lock_guard lock(mu);
      results[i] = std::move(w);
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  const bool all =
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return done == results.size(); });
  EXPECT_TRUE(all) << done << " of " << results.size() << " completed";
  // Completions still to come would write into `results` after it is gone.
  if (!all) std::abort();
  return results;
}

}  // namespace hookvault::testing
