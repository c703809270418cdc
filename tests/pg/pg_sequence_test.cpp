// The PostgreSQL writer's sequence fold (src/store/sequence_fold.hpp,
// src/store/pg/writer.cpp: fast_batch) on real servers: numbers that share a
// batch in any order, ranges filled over several batches, a subscription
// with more missing ranges than the fold reads, and two stores sharing
// subscriptions. The rules themselves are the contract suite's
// (unit/store_sequence_test.cpp), one request at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/kek.hpp"
#include "pg_store_support.hpp"
#include "store_requests.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

using namespace requests;  // NOLINT(google-build-using-namespace)
using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

class PgSequenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = db_.open(kek_);
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
  }
  static WriteRequest numbered(const std::string& sub, std::uint64_t n) {
    WriteRequest r = plain_event(sub + ":" + std::to_string(n), "", "nodit");
    r.event.sequence = SequencePosition{sub, n};
    return r;
  }
  // Every request of `numbers` at once, in that order; each must succeed.
  // How many were duplicates.
  static int submit(Store& store, const std::string& sub,
                    const std::vector<std::uint64_t>& numbers) {
    std::vector<WriteRequest> requests;
    for (auto n : numbers) requests.push_back(numbered(sub, n));
    int duplicates = 0;
    for (auto& r : submit_together(store, std::move(requests))) {
      EXPECT_TRUE(r) << r.error().message();
      if (r && r->duplicate) ++duplicates;
    }
    return duplicates;
  }
  int submit(const std::string& sub, const std::vector<std::uint64_t>& numbers) {
    return submit(*store_, sub, numbers);
  }
  SubscriptionSequence state(const std::string& sub) {
    auto all = store_->sequences("nodit");
    EXPECT_TRUE(all);
    if (all) {
      for (auto& s : *all) {
        if (s.subscription_id == sub) return s;
      }
    }
    ADD_FAILURE() << "no sequence for " << sub;
    return {};
  }
  static Ranges ranges(const SubscriptionSequence& s) {
    Ranges r;
    for (const auto& g : s.gaps) r.emplace_back(g.first, g.last);
    return r;
  }
  std::string psql(const std::string& sql) {
    return shared_pg_cluster().psql("primary", sql, db_.name());
  }

  PgTestDatabase db_;
  std::shared_ptr<const Kek> kek_ = make_memory_kek(SecretBytes::random(32), "test:1");
  std::unique_ptr<Store> store_;
};

std::vector<std::uint64_t> shuffled(std::uint64_t first, std::uint64_t last, unsigned seed) {
  std::vector<std::uint64_t> v;
  for (auto n = first; n <= last; ++n) v.push_back(n);
  std::mt19937 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

TEST_F(PgSequenceTest, NumbersSharingBatchesInAnyOrderLeaveNothingMissing) {
  ASSERT_EQ(submit("7", {1}), 0);  // the subscription's row
  auto numbers = shuffled(2, 120, 1);
  numbers.push_back(5);  // a retry in the same batches
  numbers.push_back(60);
  EXPECT_EQ(submit("7", numbers), 2);
  const auto s = state("7");
  EXPECT_EQ(s.contiguous, 120U);
  EXPECT_EQ(s.highest, 120U);
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(psql("SELECT count(*) FROM events"), "120");
  EXPECT_EQ(psql("SELECT count(*) FROM sequence_gaps"), "0");
}

TEST_F(PgSequenceTest, RangesOpenedInOneBatchAreSplitInLaterOnesAndKeepTheirTime) {
  ASSERT_EQ(submit("7", {1, 2}), 0);
  ASSERT_EQ(submit("7", {9, 5, 12}), 0);
  auto s = state("7");
  ASSERT_EQ(ranges(s), (Ranges{{3, 4}, {6, 8}, {10, 11}}));
  EXPECT_EQ(s.contiguous, 2U);
  EXPECT_EQ(s.highest, 12U);
  const auto detected = s.gaps[1].detected_at_ms;
  EXPECT_GT(detected, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(submit("7", {10, 7, 3, 14}), 0);
  s = state("7");
  ASSERT_EQ(ranges(s), (Ranges{{4, 4}, {6, 6}, {8, 8}, {11, 11}, {13, 13}}));
  EXPECT_EQ(s.gaps[1].detected_at_ms, detected);  // a part of 6-8
  EXPECT_EQ(s.gaps[2].detected_at_ms, detected);
  EXPECT_GT(s.gaps[4].detected_at_ms, detected);  // new
  EXPECT_EQ(s.contiguous, 3U);
  ASSERT_EQ(submit("7", {13, 11, 8, 6, 4}), 0);
  s = state("7");
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(s.contiguous, 14U);
}

// More missing ranges above the batch's smallest number than the fold reads
// (64): that subscription takes the ordinary rules, number by number, in
// the same batch, and the outcome is the same.
TEST_F(PgSequenceTest, ASubscriptionWithMoreRangesThanTheFoldReadsTakesTheOrdinaryRules) {
  ASSERT_EQ(submit("7", {1}), 0);
  std::vector<std::uint64_t> odd;
  for (std::uint64_t n = 3; n <= 201; n += 2) odd.push_back(n);
  ASSERT_EQ(submit("7", odd), 0);
  auto s = state("7");
  ASSERT_EQ(s.gaps.size(), 100U);  // 2, 4, ..., 200
  EXPECT_EQ(s.contiguous, 1U);
  std::vector<std::uint64_t> even;
  for (std::uint64_t n = 2; n <= 200; n += 2) even.push_back(n);
  std::shuffle(even.begin(), even.end(), std::mt19937(2));
  ASSERT_EQ(submit("7", even), 0);
  s = state("7");
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(s.contiguous, 201U);
  EXPECT_EQ(psql("SELECT count(*) FROM events"), "201");
}

// One key several times among others submitted together (a provider's
// retries arriving at once): stored once, every copy answered with its row.
TEST_F(PgSequenceTest, OneKeySeveralTimesInABatchIsStoredOnceAndEachCopyIsADuplicate) {
  ASSERT_EQ(submit("7", {1}), 0);
  std::vector<WriteRequest> requests;
  for (std::uint64_t n : {2, 3, 2, 4, 2, 3}) requests.push_back(numbered("7", n));
  auto results = submit_together(*store_, std::move(requests));
  ASSERT_TRUE(results[0] && results[1] && results[2] && results[3] && results[4] && results[5]);
  EXPECT_EQ(results[2]->row_id, results[0]->row_id);
  EXPECT_EQ(results[4]->row_id, results[0]->row_id);
  EXPECT_EQ(results[5]->row_id, results[1]->row_id);
  int duplicates = 0;
  for (const auto& r : results) duplicates += r->duplicate ? 1 : 0;
  EXPECT_EQ(duplicates, 3);
  EXPECT_EQ(psql("SELECT count(*) FROM events"), "4");
  const auto s = state("7");
  EXPECT_EQ(s.contiguous, 4U);
  EXPECT_TRUE(s.gaps.empty());
}

// A new subscription's first numbers in one batch: its row is made by the
// ordinary rules, the start within reach is recorded.
TEST_F(PgSequenceTest, ANewSubscriptionsFirstBatchRecordsItsStart) {
  ASSERT_EQ(submit("8", {6, 4, 9}), 0);
  const auto s = state("8");
  EXPECT_EQ(ranges(s), (Ranges{{1, 3}, {5, 5}, {7, 8}}));
  EXPECT_EQ(s.contiguous, 0U);
  EXPECT_EQ(s.highest, 9U);
}

// The store takes any subscription text (admission allows digits only):
// the batch's statements carry it in arrays, quoted.
TEST_F(PgSequenceTest, SubscriptionTextWithQuotesAndBackslashesIsItsOwnLedger) {
  const std::string odd = "a\"b\\c,{d} NULL";
  ASSERT_EQ(submit(odd, {1}), 0);
  ASSERT_EQ(submit("a", {1}), 0);
  ASSERT_EQ(submit(odd, {4, 2, 5}), 0);
  auto s = state(odd);
  EXPECT_EQ(ranges(s), (Ranges{{3, 3}}));
  EXPECT_EQ(s.highest, 5U);
  EXPECT_EQ(state("a").highest, 1U);
}

// Two instances storing the numbers of the same subscriptions, each given
// every other number in shuffled batches: one state, nothing missing, every
// event once.
TEST_F(PgSequenceTest, TwoStoresFoldingTheSameSubscriptionsMakeOneState) {
  auto other = db_.open(kek_);
  ASSERT_TRUE(other);
  const std::vector<std::string> subs = {"11", "12", "13"};
  for (const auto& sub : subs) ASSERT_EQ(submit(sub, {1}), 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    Store& store = t == 0 ? *store_ : **other;
    threads.emplace_back([&, t] {
      for (std::uint64_t from = 2; from < 400; from += 40) {
        for (const auto& sub : subs) {
          std::vector<std::uint64_t> mine;
          for (auto n : shuffled(from, from + 39, static_cast<unsigned>(from) + t)) {
            if (n % 2 == static_cast<std::uint64_t>(t)) mine.push_back(n);
          }
          submit(store, sub, mine);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& sub : subs) {
    const auto s = state(sub);
    EXPECT_TRUE(s.gaps.empty()) << sub << ": " << s.gaps.size() << " ranges";
    EXPECT_EQ(s.contiguous, 401U) << sub;
    EXPECT_EQ(s.highest, 401U) << sub;
  }
  EXPECT_EQ(psql("SELECT count(*) FROM events"), std::to_string(3 * 401));
}

// Two instances whose batches hold the numbers of the same new
// subscriptions, in opposite orders: each batch makes the rows it lacks in
// one order (source, subscription), so neither waits for a row the other
// holds while holding one it needs; PostgreSQL counts no deadlock.
TEST_F(PgSequenceTest, TwoStoresMakingTheSameNewSubscriptionsNeverDeadlock) {
  auto other = db_.open(kek_);
  ASSERT_TRUE(other);
  constexpr int kRounds = 15;
  const std::vector<std::string> letters = {"1", "2", "3", "4"};
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      Store& store = t == 0 ? *store_ : **other;
      threads.emplace_back([&, t] {
        std::vector<WriteRequest> requests;
        for (std::size_t k = 0; k < letters.size(); ++k) {
          const auto& letter = t == 0 ? letters[k] : letters[letters.size() - 1 - k];
          for (std::uint64_t n = 1; n <= 5; ++n) {
            requests.push_back(numbered(std::to_string(round + 1) + letter, n + 5 * t));
          }
        }
        for (auto& r : submit_together(store, std::move(requests))) {
          EXPECT_TRUE(r) << r.error().message();
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  other->reset();
  store_.reset();
  // A backend reports its statistics (the deadlocks) when it ends.
  for (int i = 0; i < 200; ++i) {
    if (psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()") == "1") {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(psql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"), "0");
  EXPECT_EQ(psql("SELECT count(*) FROM sequences WHERE contiguous = 10 AND highest = 10"),
            std::to_string(kRounds * 4));
  EXPECT_EQ(psql("SELECT count(*) FROM events"), std::to_string(kRounds * 4 * 10));
}

}  // namespace
}  // namespace hookvault::testing
