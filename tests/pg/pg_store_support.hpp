// Stores on the shared test cluster (pg_cluster.hpp): a fresh database per
// test, and stores opened on it as often as a test asks (another store on
// the same database is another instance).
#pragma once

#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>

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

}  // namespace hookvault::testing
