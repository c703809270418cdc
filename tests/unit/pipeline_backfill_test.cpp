// The Backfiller (include/hookvault/backfill.hpp) against the in-memory
// FakeStore (support/fake_store.hpp) and a history API played by the test
// (a HistoryFetch over pages it builds): what it stores, its lease, its page
// bounds, and stop(). The real client over TLS is tested end to end
// (tests/integration/backfill_test.cpp, nodit_history_test.cpp).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_store.hpp"
#include "hookvault/backfill.hpp"
#include "hookvault/pipeline.hpp"
#include "test_support.hpp"

namespace hookvault::testing {
namespace {

constexpr char kSub[] = "5";

std::string nodit_message(std::uint64_t n, const std::string& sub = kSub) {
  return R"({"subscriptionId":")" + sub + R"(","sequenceNumber":")" + std::to_string(n) +
         R"(","eventType":"ADDRESS_ACTIVITY","event":{"n":)" + std::to_string(n) +
         R"(},"createdAt":"2025-10-01T15:13:26.348Z"})";
}

HistoryItem item(std::uint64_t n, std::string message = {}) {
  HistoryItem i;
  i.subscription_id = kSub;
  i.sequence_number = n;
  i.status = "SUCCESS";
  i.created_at = "2025-10-01T15:13:26.348Z";
  i.event_message = message.empty() ? nodit_message(n) : std::move(message);
  return i;
}

// The history API: answers each query from `items` (filtered by subscription,
// start number and status; `rpp` a page), and records every query.
struct FakeHistory {
  std::vector<HistoryItem> items;
  std::vector<HistoryQuery> queries;

  Result<HistoryPage> operator()(const HistoryQuery& q) {
    queries.push_back(q);
    std::vector<HistoryItem> matching;
    for (const auto& i : items) {
      if (i.subscription_id != q.subscription_id) continue;
      if (q.start_sequence_number && i.sequence_number < *q.start_sequence_number) continue;
      if (q.status && i.status != *q.status) continue;
      matching.push_back(i);
    }
    HistoryPage page;
    page.page = q.page;
    page.rpp = q.rpp;
    page.total = matching.size();
    const std::size_t from = std::size_t{q.page - 1} * q.rpp;
    for (std::size_t k = from; k < matching.size() && k < from + q.rpp; ++k) {
      page.items.push_back(matching[k]);
    }
    return page;
  }
};

class BackfillTest : public ::testing::Test {
 protected:
  // A Nodit source whose gaps are due at once, fetched `page_size` a page.
  std::shared_ptr<const Source> source(std::uint32_t page_size) {
    SourceConfig config;
    config.provider = Provider::nodit;
    config.name = "nodit";
    config.path = "/webhooks/nodit";
    HistoryConfig h;
    h.api_base_url = "https://history.invalid";
    h.gap_delay = std::chrono::milliseconds(0);
    h.poll_interval = std::chrono::hours(1);
    h.backoff_initial = std::chrono::milliseconds(0);
    h.backoff_max = std::chrono::milliseconds(0);
    h.page_size = page_size;
    config.history = h;
    return std::make_shared<const Source>(Source{config, SignatureVerifier({}), std::nullopt});
  }

  // Signed deliveries of these numbers, stored as the webhook would.
  void deliver(std::initializer_list<std::uint64_t> numbers) {
    for (const auto n : numbers) {
      WriteRequest r;
      r.event.source = "nodit";
      r.event.idempotency_key = std::string(kSub) + ":" + std::to_string(n);
      r.event.event_name = "ADDRESS_ACTIVITY";
      r.event.payload = nodit_message(n);
      r.event.sequence = SequencePosition{kSub, n};
      ASSERT_TRUE(store_->write(std::move(r)));
    }
  }

  std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps() {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    auto seqs = store_->sequences("nodit");
    EXPECT_TRUE(seqs);
    for (const auto& s : *seqs) {
      for (const auto& g : s.gaps) out.emplace_back(g.first, g.last);
    }
    return out;
  }

  std::optional<EventMeta> stored(std::uint64_t n) {
    auto id = store_->find_event("nodit", std::string(kSub) + ":" + std::to_string(n));
    if (!id || !*id) return std::nullopt;
    auto meta = store_->event_meta(**id);
    return meta && *meta ? std::optional<EventMeta>(**meta) : std::nullopt;
  }

  FakeDatabase db_;
  std::unique_ptr<FakeStore> store_ = db_.open();
  FakeHistory history_;
};

TEST_F(BackfillTest, APassStoresOnlyTheMissingNumbersAsHistoryCopies) {
  deliver({1, 2, 5});
  ASSERT_EQ(gaps(), (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 4}}));
  for (std::uint64_t n = 1; n <= 6; ++n) history_.items.push_back(item(n));
  const auto submits_before = store_->calls().submits;

  Backfiller backfiller(source(3), *store_, std::ref(history_));
  EXPECT_EQ(backfiller.run_once(), 2U);
  EXPECT_TRUE(gaps().empty());
  for (const std::uint64_t n : {3, 4}) {
    const auto meta = stored(n);
    ASSERT_TRUE(meta) << n;
    EXPECT_EQ(meta->origin, Origin::history) << n;
  }
  EXPECT_FALSE(stored(6)) << "a number nobody missed was stored";
  EXPECT_EQ(stored(5)->origin, Origin::signature);
  // One page of three from the gap's first number: 3 and 4 stored, 5 (not
  // missing) refused before the store.
  ASSERT_EQ(history_.queries.size(), 1U);
  EXPECT_EQ(history_.queries[0].start_sequence_number, 3U);
  EXPECT_EQ(history_.queries[0].rpp, 3U);
  EXPECT_EQ(store_->calls().submits - submits_before, 2U);
  const BackfillStats stats = backfiller.stats();
  EXPECT_EQ(stats.stored, 2U);
  EXPECT_EQ(stats.refused, 1U);
  EXPECT_EQ(stats.fetches, 1U);

  // Nothing missing: the next pass asks for nothing.
  EXPECT_EQ(backfiller.run_once(), 0U);
  EXPECT_EQ(history_.queries.size(), 1U);
}

TEST_F(BackfillTest, ItemsThatAreNotWhatWasAskedForAreRefused) {
  deliver({1, 4});  // 2 and 3 missing
  history_.items = {
      item(2, nodit_message(9)),        // the message names another number
      item(3, nodit_message(3, "66")),  // the message names another subscription
      item(3, "not json"),
  };
  Backfiller backfiller(source(10), *store_, std::ref(history_));
  EXPECT_EQ(backfiller.run_once(), 0U);
  EXPECT_EQ(backfiller.stats().refused, 3U);
  EXPECT_FALSE(stored(2));
  EXPECT_FALSE(stored(3));
  EXPECT_FALSE(stored(9));
  EXPECT_EQ(gaps(), (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 3}}));
}

// A store can hold ledgers under ids that are not Nodit's (admission once took
// any string): the API can never fill their gaps, so asking about them every
// backoff_max, for ever, only costs requests. They are skipped, at start-up
// and in every pass, and the real subscriptions are still served.
TEST_F(BackfillTest, LedgersUnderIdsThatAreNotSubscriptionIdsAreNeverAskedAbout) {
  deliver({1, 3});  // "5": 2 missing
  for (const std::string legacy : {"ha-sub-1", "007", " 5"}) {
    for (const std::uint64_t n : {1, 3}) {
      WriteRequest r;
      r.event.source = "nodit";
      r.event.idempotency_key = legacy + ":" + std::to_string(n);
      r.event.event_name = "ADDRESS_ACTIVITY";
      r.event.payload = nodit_message(n, legacy);
      r.event.sequence = SequencePosition{legacy, n};
      ASSERT_TRUE(store_->write(std::move(r)));
    }
  }
  ASSERT_EQ(gaps().size(), 4U);
  history_.items.push_back(item(2));

  Backfiller backfiller(source(10), *store_, std::ref(history_));
  backfiller.start();  // the start-up FAIL fetch, then a first pass
  ASSERT_TRUE(eventually([&] { return stored(2).has_value(); }));
  backfiller.stop();
  EXPECT_EQ(backfiller.run_once(), 0U);  // another pass: still nothing for the others
  EXPECT_EQ(backfiller.run_once(), 0U);
  ASSERT_FALSE(history_.queries.empty());
  bool failed_fetch = false;
  for (const auto& q : history_.queries) {
    EXPECT_EQ(q.subscription_id, kSub);
    failed_fetch = failed_fetch || q.status == "FAIL";
  }
  EXPECT_TRUE(failed_fetch);
  EXPECT_EQ(gaps().size(), 3U);  // theirs stay listed
}

TEST_F(BackfillTest, EachPassTakesTheSourcesLeaseAndDoesNothingWithoutIt) {
  deliver({1, 4});
  for (std::uint64_t n = 1; n <= 4; ++n) history_.items.push_back(item(n));
  // Another hookvault on the same database holds the lease.
  const auto other = db_.open();
  auto held = other->try_lease("backfill:nodit");
  ASSERT_TRUE(held && *held);

  Backfiller backfiller(source(10), *store_, std::ref(history_));
  EXPECT_EQ(backfiller.run_once(), 0U);
  EXPECT_EQ(backfiller.run_once(), 0U);
  EXPECT_EQ(backfiller.stats().passes_left, 2U);
  EXPECT_TRUE(history_.queries.empty());
  EXPECT_EQ(store_->calls().sequences, 0U) << "looked at the gaps without the lease";
  EXPECT_EQ(store_->lease_names(), (std::vector<std::string>{"backfill:nodit", "backfill:nodit"}));

  // The store cannot say who holds it: no pass either.
  held->reset();
  store_->fail_leases(Errc::store_unavailable);
  EXPECT_EQ(backfiller.run_once(), 0U);
  EXPECT_EQ(backfiller.stats().passes_left, 3U);
  EXPECT_TRUE(history_.queries.empty());

  // Released: the next pass runs, and gives the lease back when it ends.
  store_->fail_leases(std::nullopt);
  EXPECT_EQ(backfiller.run_once(), 2U);
  EXPECT_EQ(backfiller.stats().passes_left, 3U);
  auto after = other->try_lease("backfill:nodit");
  ASSERT_TRUE(after);
  EXPECT_TRUE(*after) << "the pass kept the lease";
}

TEST_F(BackfillTest, AGapIsFetchedPageByPageUntilItIsCovered) {
  deliver({1, 2, 9});  // 3..8 missing
  for (std::uint64_t n = 1; n <= 20; ++n) history_.items.push_back(item(n));
  Backfiller backfiller(source(2), *store_, std::ref(history_));
  EXPECT_EQ(backfiller.run_once(), 6U);
  EXPECT_TRUE(gaps().empty());
  // Three pages of two, then stopped: the gap is covered though the API has more.
  ASSERT_EQ(history_.queries.size(), 3U);
  for (std::uint32_t p = 0; p < 3; ++p) {
    EXPECT_EQ(history_.queries[p].page, p + 1);
    EXPECT_EQ(history_.queries[p].rpp, 2U);
    EXPECT_EQ(history_.queries[p].start_sequence_number, 3U);
  }
}

TEST_F(BackfillTest, AnAnswerThatNeverEndsIsFetchedABoundedNumberOfPages) {
  deliver({1, 2, 3, 10});  // 4..9 missing
  // Every page full, of numbers below the gap, and no total: never a last
  // page, and never one that reaches the gap's end.
  const auto endless = [this](const HistoryQuery& q) -> Result<HistoryPage> {
    history_.queries.push_back(q);
    HistoryPage page;
    page.items = {item(1), item(2)};
    return page;
  };
  Backfiller backfiller(source(2), *store_, endless);
  EXPECT_EQ(backfiller.run_once(), 0U);
  EXPECT_EQ(history_.queries.size(), 1000U);
  EXPECT_EQ(backfiller.stats().refused, 2000U);
  EXPECT_EQ(gaps(), (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{4, 9}}));
}

TEST_F(BackfillTest, StopEndsAFetchBetweenPages) {
  deliver({1, 4});
  // An API that answers one page per turn the test gives it, each page full,
  // so without stop() a fetch would go on for its whole page bound.
  std::mutex mu;
  std::condition_variable cv;
  int entered = 0;
  int turns = 0;
  bool stopped = false;
  const auto gated = [&](const HistoryQuery&) -> Result<HistoryPage> {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return turns > 0; });
    --turns;
    HistoryPage page;
    page.items = {item(1), item(4)};
    return page;
  };
  Backfiller backfiller(source(2), *store_, gated);
  backfiller.start();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return entered == 1; }));
  }
  bool stop_called = false;
  std::thread stopper([&] {
    {
      std::lock_guard lock(mu);
      stop_called = true;
      cv.notify_all();
    }
    backfiller.stop();
    std::lock_guard lock(mu);
    stopped = true;
    cv.notify_all();
  });
  // Once stop() is called, a turn for each page asked for, until it returned.
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return stop_called; });
  while (!stopped) {
    ++turns;
    cv.notify_all();
    const int seen = entered;
    cv.wait(lock, [&] { return stopped || entered > seen; });
  }
  lock.unlock();
  stopper.join();
  // Without stop() ending it, the fetch runs to its bound of 1000 pages.
  EXPECT_LT(entered, 1000) << "stop() did not end the fetch";
}

TEST_F(BackfillTest, StopReturnsPromptlyWhileThePassWaitsForItsNextPoll) {
  Backfiller backfiller(source(2), *store_, std::ref(history_));
  backfiller.start();  // nothing to fetch; then it waits an hour for the next pass
  ASSERT_TRUE(eventually([&] { return store_->calls().sequences >= 1; }));  // the first pass ran
  const auto started = std::chrono::steady_clock::now();
  backfiller.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

}  // namespace
}  // namespace hookvault::testing
