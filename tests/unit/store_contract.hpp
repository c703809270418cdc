// The contract tests of Store (include/hookvault/store.hpp), run against every
// backend: store_contract_test.cpp holds the tests (TEST_P over a
// StoreBackend), each backend one instantiation of its own
// (store_contract_sqlite_test.cpp: INSTANTIATE_TEST_SUITE_P(Sqlite, ...)).
// Tests about one backend itself (SQLite's WAL, checkpoints, syncer, fault
// injection, raw file bytes) stay in that backend's own test files.
//
// A backend gives a fresh, empty database for each test (StoreBackend::fresh)
// and opens a store on it as often as the test asks (StoreDatabase::open:
// opening again is a reopen, or a second process on the same database).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "hookvault/clock.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/store.hpp"

namespace hookvault::testing {

// What a contract test may choose of a store it opens; every backend maps
// these onto its own options.
struct StoreOpenOptions {
  const Clock* clock = nullptr;  // null: the system clock
  std::string process_name = "hookvault";
  std::chrono::milliseconds lease_heartbeat{10000};
  std::chrono::milliseconds lease_time{60000};
  std::size_t max_batch = 256;  // requests per group commit, where a backend has them
};

class StoreDatabase {
 public:
  virtual ~StoreDatabase() = default;
  // A store on this database (again: the same data).
  virtual Result<std::unique_ptr<Store>> open(std::shared_ptr<const Kek> kek,
                                              const StoreOpenOptions& options) = 0;
};

struct StoreBackend {
  std::string name;  // the instantiation's test-name suffix
  std::function<std::unique_ptr<StoreDatabase>()> fresh;
  // Tests (their names without the suite and the instantiation's suffix) that
  // this backend does not model, each with why: skipped, saying so. Only a
  // test double may have any (support/fake_store.hpp); a real backend passes
  // every test.
  std::map<std::string, std::string> not_modelled;
  // Leadership leases lapse by the store's clock (StoreOpenOptions::clock,
  // lease_time). False for a backend whose leases lapse only when their
  // holder's connection is lost (PostgreSQL's advisory locks): the tests of
  // lapsing by the clock are skipped for it.
  bool leases_lapse_by_clock = true;
  // The events feed's token is the decimal row id of the page's last event
  // (SQLite); false where it is opaque (PostgreSQL: "<txid>.<id>").
  bool feed_token_is_row_id = true;
};

inline std::string backend_name(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

class StoreContract : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (auto skip = GetParam().not_modelled.find(test.substr(0, test.find('/')));
        skip != GetParam().not_modelled.end()) {
      GTEST_SKIP() << GetParam().name << " does not model this: " << skip->second;
    }
    db_ = GetParam().fresh();
    ASSERT_TRUE(db_) << "the backend has no database for this test";
  }

  // A store on this test's database; another call opens another store on it.
  std::unique_ptr<Store> open_store(std::shared_ptr<const Kek> kek = nullptr,
                                    const StoreOpenOptions& options = {}) {
    auto store = db_->open(kek ? std::move(kek) : kek_, options);
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }

  // Every event stored in this test's database, read through the events feed
  // of a store of its own.
  std::int64_t count_events();

  std::unique_ptr<StoreDatabase> db_;
  std::shared_ptr<const Kek> kek_ = make_memory_kek(SecretBytes::random(32), "test:1");
};

// Nodit sequence tracking (store.hpp: sequences), on a store opened at SetUp.
class SequenceTest : public StoreContract {
 protected:
  void SetUp() override {
    StoreContract::SetUp();
    if (IsSkipped()) return;
    reopen();
  }
  // A store on the test's database (again, after close()).
  void reopen() {
    store_ = open_store();
    ASSERT_TRUE(store_);
  }

  Result<WriteResult> put(const std::string& sub, std::uint64_t n,
                          const std::string& source = "nodit") {
    WriteRequest r;
    r.event.source = source;
    r.event.idempotency_key = sub + ":" + std::to_string(n);
    r.event.event_name = "ADDRESS_ACTIVITY";
    r.event.payload = "{\"n\":" + std::to_string(n) + "}";
    r.event.sequence = SequencePosition{sub, n};
    return store_->write(std::move(r));
  }

  SubscriptionSequence state(const std::string& sub) {
    auto all = store_->sequences("nodit");
    EXPECT_TRUE(all);
    for (auto& s : *all) {
      if (s.subscription_id == sub) return s;
    }
    ADD_FAILURE() << "no sequence state for " << sub;
    return {};
  }

  static std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges(
      const SubscriptionSequence& s) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (const auto& g : s.gaps) out.emplace_back(g.first, g.last);
    return out;
  }

  std::unique_ptr<Store> store_;
};

}  // namespace hookvault::testing
