// The Store contract tests (store_contract.hpp) against the SQLite backend: a
// fresh file in a TempDir per test.
#include "hookvault/sqlite_store.hpp"
#include "store_contract.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

class SqliteDatabase final : public StoreDatabase {
 public:
  Result<std::unique_ptr<Store>> open(std::shared_ptr<const Kek> kek,
                                      const StoreOpenOptions& o) override {
    SqliteStoreOptions options;
    options.path = dir_ / "hookvault.db";
    options.clock = o.clock;
    options.process_name = o.process_name;
    options.lease_heartbeat = o.lease_heartbeat;
    options.lease_time = o.lease_time;
    options.max_batch = o.max_batch;
    return open_sqlite_store(options, std::move(kek));
  }

 private:
  TempDir dir_;
};

StoreBackend sqlite_backend() {
  return StoreBackend{"Sqlite", [] { return std::make_unique<SqliteDatabase>(); }, {}};
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreContract, ::testing::Values(sqlite_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Sqlite, SequenceTest, ::testing::Values(sqlite_backend()), backend_name);

}  // namespace hookvault::testing
