// fold_numbers (src/store/sequence_fold.hpp): the sequence RULES on a
// subscription's state in memory, checked against a model (the set of
// numbers stored) over random batches, with views read the way the
// PostgreSQL writer reads them.
#include "store/sequence_fold.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace hookvault::store {
namespace {

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

// A subscription's rows as a database holds them.
struct Table {
  std::uint64_t contiguous = 0;
  std::uint64_t highest = 0;
  std::map<std::uint64_t, SequenceGap> gaps;  // by first

  // The view of a writer folding numbers from `floor` up; `limit` keeps the
  // first ranges only.
  SequenceView read(std::uint64_t floor, std::size_t limit = SIZE_MAX) const {
    SequenceView v{contiguous, highest, {}};
    for (const auto& [first, g] : gaps) {
      if (g.last >= floor && v.gaps.size() < limit) v.gaps.push_back(g);
    }
    return v;
  }
  void write(const SequenceView& v, const SequenceWrites& w) {
    for (auto first : w.deleted) ASSERT_EQ(gaps.erase(first), 1U) << first;
    for (const auto& g : w.inserted) ASSERT_TRUE(gaps.emplace(g.first, g).second) << g.first;
    if (w.row_changed) {
      contiguous = v.contiguous;
      highest = v.highest;
    } else {
      EXPECT_EQ(contiguous, v.contiguous);
      EXPECT_EQ(highest, v.highest);
    }
  }
  Ranges ranges() const {
    Ranges r;
    for (const auto& [first, g] : gaps) r.emplace_back(g.first, g.last);
    return r;
  }
};

// The state the rules promise: every number from the start up to the
// highest stored that is not stored is in exactly one range.
struct Model {
  std::set<std::uint64_t> stored;
  std::uint64_t start = 0;  // 0: nothing stored yet

  void add(const std::vector<std::uint64_t>& ascending) {
    for (auto n : ascending) {
      if (start == 0) start = n - 1 <= kMaxInitialGap ? 1 : n;
      if (n >= start) stored.insert(n);
    }
  }
  std::uint64_t highest() const { return stored.empty() ? 0 : *stored.rbegin(); }
  Ranges ranges() const {
    Ranges r;
    for (std::uint64_t n = start; start != 0 && n <= highest(); ++n) {
      if (stored.count(n) != 0) continue;
      if (!r.empty() && r.back().second == n - 1) {
        r.back().second = n;
      } else {
        r.emplace_back(n, n);
      }
    }
    return r;
  }
  std::uint64_t contiguous() const {
    auto r = ranges();
    return r.empty() ? highest() : r.front().first - 1;
  }
};

std::vector<std::uint64_t> ascending(std::vector<std::uint64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

TEST(SequenceFold, OneBatchInAnyArrivalOrderIsTheInOrderResult) {
  Table t;
  SequenceView v = t.read(1);
  const auto numbers = ascending({3, 1, 2, 5, 4});
  t.write(v, fold_numbers(v, numbers, 10));
  EXPECT_EQ(t.contiguous, 5U);
  EXPECT_EQ(t.highest, 5U);
  EXPECT_TRUE(t.gaps.empty());
}

TEST(SequenceFold, NewRangesTakeTheTimeTheyWereSeenAndSplitsKeepIt) {
  Table t;
  auto fold = [&](std::vector<std::uint64_t> numbers, std::int64_t now) {
    numbers = ascending(numbers);
    SequenceView v = t.read(numbers.front());
    t.write(v, fold_numbers(v, numbers, now));
  };
  fold({1, 2}, 10);
  fold({9}, 20);  // 3-8 missing since 20
  ASSERT_EQ(t.ranges(), (Ranges{{3, 8}}));
  EXPECT_EQ(t.gaps.at(3).detected_at_ms, 20);
  fold({5, 12}, 30);  // 3-4 and 6-8 keep 20; 10-11 missing since 30
  ASSERT_EQ(t.ranges(), (Ranges{{3, 4}, {6, 8}, {10, 11}}));
  EXPECT_EQ(t.gaps.at(3).detected_at_ms, 20);
  EXPECT_EQ(t.gaps.at(6).detected_at_ms, 20);
  EXPECT_EQ(t.gaps.at(10).detected_at_ms, 30);
  EXPECT_EQ(t.contiguous, 2U);
  EXPECT_EQ(t.highest, 12U);
  // Numbers above a range that stays: contiguous stays below it, though
  // the view (from 6 up) does not hold that range.
  fold({6, 7, 8, 10}, 40);
  EXPECT_EQ(t.ranges(), (Ranges{{3, 4}, {11, 11}}));
  EXPECT_EQ(t.contiguous, 2U);
  fold({3, 4}, 50);
  EXPECT_EQ(t.contiguous, 10U);
  fold({11}, 60);
  EXPECT_EQ(t.contiguous, 12U);
  EXPECT_TRUE(t.gaps.empty());
}

TEST(SequenceFold, AFirstMessageWithinReachRecordsTheStartAndALateOneStartsTheCount) {
  Table near;
  SequenceView v = near.read(5);
  near.write(v, fold_numbers(v, ascending({5, 7}), 1));
  EXPECT_EQ(near.ranges(), (Ranges{{1, 4}, {6, 6}}));
  EXPECT_EQ(near.contiguous, 0U);

  Table far;
  v = far.read(5000);
  far.write(v, fold_numbers(v, ascending({5000, 5001}), 1));
  EXPECT_TRUE(far.gaps.empty());
  EXPECT_EQ(far.contiguous, 5001U);
  v = far.read(4000);  // below the start: nothing to track
  auto w = fold_numbers(v, ascending({4000}), 2);
  EXPECT_TRUE(w.empty());
}

TEST(SequenceFold, NumbersStoredAlreadyChangeNothing) {
  Table t;
  SequenceView v = t.read(1);
  t.write(v, fold_numbers(v, ascending({1, 2, 4}), 1));
  v = t.read(1);
  EXPECT_TRUE(fold_numbers(v, ascending({1, 2, 4}), 2).empty());
}

// Random batches, each folded on a view from its smallest number up, give
// what the model says; so does each number alone on a view of the first two
// ranges (the ordinary path).
TEST(SequenceFold, RandomBatchesMatchTheModel) {
  std::mt19937_64 rng(20261204);
  for (int round = 0; round < 300; ++round) {
    Table batched;
    Table single;
    Model model;
    const std::uint64_t base = (round % 3 == 0) ? 3000 : 1;
    std::uint64_t next = base;
    for (int b = 0; b < 40; ++b) {
      std::vector<std::uint64_t> batch;
      const int size = 1 + static_cast<int>(rng() % 12);
      for (int i = 0; i < size; ++i) {
        // Mostly the next numbers, some late ones, some jumps, some repeats.
        const auto pick = rng() % 10;
        if (pick < 6) {
          batch.push_back(next++);
        } else if (pick < 8 && next > base + 1) {
          batch.push_back(base + rng() % (next - base));
        } else {
          next += rng() % 5;
          batch.push_back(next++);
        }
      }
      batch = ascending(batch);
      // What the store would fold: numbers not stored yet.
      std::vector<std::uint64_t> fresh;
      for (auto n : batch) {
        if (model.stored.count(n) == 0) fresh.push_back(n);
      }
      model.add(fresh);
      if (fresh.empty()) continue;
      SequenceView v = batched.read(fresh.front());
      const auto now = static_cast<std::int64_t>(b);
      batched.write(v, fold_numbers(v, fresh, now));
      for (auto n : fresh) {
        SequenceView one = single.read(n, 2);
        const std::uint64_t just[] = {n};
        single.write(one, fold_numbers(one, just, now));
      }
      ASSERT_EQ(batched.ranges(), model.ranges()) << "round " << round << " batch " << b;
      ASSERT_EQ(batched.contiguous, model.contiguous()) << "round " << round << " batch " << b;
      ASSERT_EQ(batched.highest, model.highest());
      ASSERT_EQ(single.ranges(), model.ranges()) << "round " << round << " batch " << b;
      ASSERT_EQ(single.contiguous, model.contiguous());
      ASSERT_EQ(single.highest, model.highest());
    }
  }
}

}  // namespace
}  // namespace hookvault::store
