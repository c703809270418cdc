// The Store contract tests (tests/unit/store_contract.hpp) against the
// PostgreSQL backend: a fresh database on the shared cluster per test, with
// its synchronous standby. The same suite as SQLite's, but for the two tests
// of leases lapsing by the store's clock (leases_lapse_by_clock): here a
// lease lapses when its holder's connection is lost (lease_test.cpp); and
// the feed's token is opaque ("<txid>.<id>"), not the row id.
#include "pg_store_support.hpp"
#include "store_contract.hpp"

namespace hookvault::testing {
namespace {

class PgDatabase final : public StoreDatabase {
 public:
  Result<std::unique_ptr<Store>> open(std::shared_ptr<const Kek> kek,
                                      const StoreOpenOptions& o) override {
    PgStoreOptions options = db_.options();
    options.clock = o.clock;
    options.process_name = o.process_name;
    options.lease_heartbeat = o.lease_heartbeat;
    options.lease_time = o.lease_time;
    options.max_batch = o.max_batch;
    return db_.open(std::move(kek), options);
  }

 private:
  PgTestDatabase db_;
};

StoreBackend pg_backend() {
  StoreBackend b{"Postgres", [] { return std::make_unique<PgDatabase>(); }, {}};
  b.leases_lapse_by_clock = false;
  b.feed_token_is_row_id = false;
  return b;
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Postgres, StoreContract, ::testing::Values(pg_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Postgres, SequenceTest, ::testing::Values(pg_backend()), backend_name);

}  // namespace hookvault::testing
