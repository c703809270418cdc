// Nodit sequence tracking in the store (store.hpp: sequences; SQLite:
// src/store/sqlite/sequences.hpp): contract tests, run against every backend
// (store_contract.hpp).
#include <gtest/gtest.h>

#include "hookvault/store.hpp"
#include "store_contract.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

using testing::SequenceTest;

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

TEST_P(SequenceTest, InOrderDeliveryHasNoGaps) {
  for (std::uint64_t n = 1; n <= 5; ++n) ASSERT_TRUE(put("s", n));
  auto s = state("s");
  EXPECT_EQ(s.contiguous, 5U);
  EXPECT_EQ(s.highest, 5U);
  EXPECT_TRUE(s.gaps.empty());
}

TEST_P(SequenceTest, OneTwoFiveLeavesThreeAndFourMissingUntilTheyArrive) {
  ASSERT_TRUE(put("s", 1));
  ASSERT_TRUE(put("s", 2));
  ASSERT_TRUE(put("s", 5));
  EXPECT_EQ(ranges(state("s")), (Ranges{{3, 4}}));
  EXPECT_EQ(state("s").contiguous, 2U);
  ASSERT_TRUE(put("s", 4));
  EXPECT_EQ(ranges(state("s")), (Ranges{{3, 3}}));
  EXPECT_EQ(state("s").contiguous, 2U);
  ASSERT_TRUE(put("s", 3));
  EXPECT_TRUE(state("s").gaps.empty());
  EXPECT_EQ(state("s").contiguous, 5U);
}

// The in-order number takes a one-statement path only while nothing is
// missing: past an open range it must keep the range and `contiguous`.
TEST_P(SequenceTest, TheNextNumberPastAMissingRangeKeepsTheRangeOpen) {
  ASSERT_TRUE(put("s", 1));
  ASSERT_TRUE(put("s", 2));
  ASSERT_TRUE(put("s", 5));
  ASSERT_TRUE(put("s", 6));
  auto s = state("s");
  EXPECT_EQ(ranges(s), (Ranges{{3, 4}}));
  EXPECT_EQ(s.contiguous, 2U);
  EXPECT_EQ(s.highest, 6U);
  ASSERT_TRUE(put("s", 3));
  ASSERT_TRUE(put("s", 4));
  ASSERT_TRUE(put("s", 7));
  s = state("s");
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(s.contiguous, 7U);
  EXPECT_EQ(s.highest, 7U);
}

TEST_P(SequenceTest, FillingTheMiddleOfARangeSplitsItAndKeepsItsDetectionTime) {
  ASSERT_TRUE(put("s", 1));
  ASSERT_TRUE(put("s", 10));
  const auto detected = state("s").gaps.at(0).detected_at_ms;
  ASSERT_TRUE(put("s", 5));
  auto s = state("s");
  EXPECT_EQ(ranges(s), (Ranges{{2, 4}, {6, 9}}));
  for (const auto& g : s.gaps) EXPECT_EQ(g.detected_at_ms, detected);
  EXPECT_EQ(s.contiguous, 1U);
}

TEST_P(SequenceTest, FirstMessageLateInASubscriptionWithinReachRecordsTheStart) {
  ASSERT_TRUE(put("s", 4));
  EXPECT_EQ(ranges(state("s")), (Ranges{{1, 3}}));
  EXPECT_EQ(state("s").contiguous, 0U);
}

TEST_P(SequenceTest, JoiningAnOldSubscriptionStartsCountingAtTheFirstMessage) {
  ASSERT_TRUE(put("s", 1'000'000));
  auto s = state("s");
  EXPECT_TRUE(s.gaps.empty());
  EXPECT_EQ(s.contiguous, 1'000'000U);
  // Below the baseline: stored, nothing tracked.
  ASSERT_TRUE(put("s", 999'999));
  EXPECT_TRUE(state("s").gaps.empty());
  // A huge jump is one range, not a million rows.
  ASSERT_TRUE(put("s", 5'000'000));
  EXPECT_EQ(ranges(state("s")), (Ranges{{1'000'001, 4'999'999}}));
}

TEST_P(SequenceTest, DuplicatesChangeNothingAndSubscriptionsAreIndependent) {
  ASSERT_TRUE(put("a", 1));
  ASSERT_TRUE(put("a", 3));
  auto dup = put("a", 3);
  ASSERT_TRUE(dup);
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(ranges(state("a")), (Ranges{{2, 2}}));
  ASSERT_TRUE(put("b", 1));
  EXPECT_TRUE(state("b").gaps.empty());
  EXPECT_EQ(ranges(state("a")), (Ranges{{2, 2}}));
  auto other_source = put("a", 7, "nodit-2");
  ASSERT_TRUE(other_source);
  EXPECT_EQ(ranges(state("a")), (Ranges{{2, 2}}));
}

TEST_P(SequenceTest, StateSurvivesReopen) {
  ASSERT_TRUE(put("s", 1));
  ASSERT_TRUE(put("s", 4));
  store_->close();
  reopen();
  EXPECT_EQ(ranges(state("s")), (Ranges{{2, 3}}));
  ASSERT_TRUE(put("s", 2));
  ASSERT_TRUE(put("s", 3));
  EXPECT_EQ(state("s").contiguous, 4U);
}

TEST_P(SequenceTest, InvalidPositionsAreRejectedWithoutStoringTheEvent) {
  auto zero = put("s", 0);
  ASSERT_FALSE(zero);
  EXPECT_EQ(to_errc(zero.error()), Errc::invalid_field);
  auto huge = put("s", std::uint64_t{1} << 63);
  ASSERT_FALSE(huge);
  auto listed = store_->list_events(EventQuery{});
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->events.empty());
}

TEST_P(SequenceTest, CountsContentKeyedEventsAndLatestEventTime) {
  WriteRequest r;
  r.event.source = "nodit";
  r.event.idempotency_key = "content:abc";
  r.event.event_name = "LOG";
  r.event.event_time_ms = 1700000000000;
  r.event.payload = "{}";
  ASSERT_TRUE(store_->write(std::move(r)));
  ASSERT_TRUE(put("s", 1));
  auto count = store_->count_events_with_key_prefix("nodit", "content:");
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 1U);
  auto latest = store_->latest_event_time_ms("nodit");
  ASSERT_TRUE(latest);
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ(**latest, 1700000000000);
  auto none = store_->latest_event_time_ms("other");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

// A forged createdAt far in the future, on a copy fetched from history,
// must not move the start-up window of the FAIL backfill (backfill.hpp).
TEST_P(SequenceTest, LatestEventTimeCountsOnlySignedEvents) {
  const auto write = [&](const std::string& key, std::int64_t time_ms, Origin origin) {
    WriteRequest r;
    r.event.source = "nodit";
    r.event.idempotency_key = key;
    r.event.event_name = "LOG";
    r.event.event_time_ms = time_ms;
    r.event.origin = origin;
    r.event.payload = "{}";
    ASSERT_TRUE(store_->write(std::move(r)));
  };
  write("s:1", 1700000000000, Origin::signature);
  write("s:2", 4102444800000, Origin::history);  // 2100-01-01
  auto latest = store_->latest_event_time_ms("nodit");
  ASSERT_TRUE(latest && latest->has_value());
  EXPECT_EQ(**latest, 1700000000000);
}

// A history copy is only the history API's word: the signed delivery of the
// same key replaces it (a new row), and its number is counted once.
TEST_P(SequenceTest, ASignedDeliveryReplacesAHistoryCopyAndCountsItsNumberOnce) {
  const auto write = [&](std::uint64_t n, Origin origin, const std::string& payload) {
    WriteRequest r;
    r.event.source = "nodit";
    r.event.idempotency_key = "s:" + std::to_string(n);
    r.event.event_name = "LOG";
    r.event.origin = origin;
    r.event.payload = payload;
    r.event.sequence = SequencePosition{"s", n};
    auto w = store_->write(std::move(r));
    EXPECT_TRUE(w) << w.error().message();
    return w ? *w : WriteResult{};
  };
  const auto payload_of = [&](std::int64_t id) -> std::string {
    auto p = store_->event_payload(id);
    EXPECT_TRUE(p);
    return p && *p ? std::string((*p)->reveal_string()) : "<none>";
  };
  write(1, Origin::signature, R"({"n":1})");
  const WriteResult copy = write(2, Origin::history, R"({"n":2,"forged":true})");
  write(3, Origin::signature, R"({"n":3})");
  EXPECT_EQ(state("s").contiguous, 3U);

  const WriteResult signed_two = write(2, Origin::signature, R"({"n":2})");
  EXPECT_FALSE(signed_two.duplicate);
  EXPECT_TRUE(signed_two.replaced_history);
  EXPECT_GT(signed_two.row_id, copy.row_id);
  EXPECT_EQ(payload_of(signed_two.row_id), R"({"n":2})");
  auto gone = store_->event_meta(copy.row_id);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  auto meta = store_->event_meta(signed_two.row_id);
  ASSERT_TRUE(meta && *meta);
  EXPECT_EQ((*meta)->origin, Origin::signature);
  EXPECT_EQ(state("s").contiguous, 3U);
  EXPECT_EQ(state("s").highest, 3U);
  EXPECT_TRUE(state("s").gaps.empty());

  // From now on the signed event is the one: history and signed copies are
  // duplicates of it; and a history copy never replaces a signed event.
  for (auto origin : {Origin::history, Origin::signature}) {
    const WriteResult again = write(2, origin, R"({"n":2,"again":true})");
    EXPECT_TRUE(again.duplicate);
    EXPECT_FALSE(again.replaced_history);
    EXPECT_EQ(again.row_id, signed_two.row_id);
  }
  const WriteResult late_copy = write(1, Origin::history, R"({"n":1,"forged":true})");
  EXPECT_TRUE(late_copy.duplicate);
  EXPECT_EQ(payload_of(late_copy.row_id), R"({"n":1})");
  auto all = store_->list_events(EventQuery{});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->events.size(), 3U);
}

}  // namespace
}  // namespace hookvault
