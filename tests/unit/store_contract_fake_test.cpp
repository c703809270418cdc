// The Store contract tests (store_contract.hpp) against the in-memory
// FakeStore the pipeline, admin and backfill unit tests use
// (support/fake_store.hpp): what those tests rely on of a store is what a
// real backend promises. What the fake does not model is listed below and
// skipped, saying so.
#include "fake_store.hpp"
#include "store_contract.hpp"

namespace hookvault::testing {
namespace {

class FakeBackendDatabase final : public StoreDatabase {
 public:
  // The fake keeps nothing sealed, so the KEK is not used; its clock is the
  // first opener's (the contract tests give every store of a database the
  // same clock, but for the lease tests the fake skips).
  Result<std::unique_ptr<Store>> open(std::shared_ptr<const Kek>,
                                      const StoreOpenOptions& o) override {
    if (!db_) db_.emplace(o.clock);
    return std::unique_ptr<Store>(db_->open());
  }

 private:
  std::optional<FakeDatabase> db_;
};

StoreBackend fake_backend() {
  const std::string lapse = "leases lapsing with time (a fake lease is held until released)";
  return StoreBackend{
      "Fake",
      [] { return std::make_unique<FakeBackendDatabase>(); },
      {
          {"ALeaseWhoseHolderStoppedRenewingLapsesAndIsTakenOver", lapse},
          {"AHolderKeepsItsLeaseWhileItsStoreRenewsItAndLosesItForGoodOnceItLapsed", lapse},
          {"KekRefsNamesEachPairAWrappedKeyIsStoredUnderOnce",
           "wrapped keys (the fake keeps nothing sealed)"},
      }};
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(Fake, StoreContract, ::testing::Values(fake_backend()), backend_name);
INSTANTIATE_TEST_SUITE_P(Fake, SequenceTest, ::testing::Values(fake_backend()), backend_name);

}  // namespace hookvault::testing
