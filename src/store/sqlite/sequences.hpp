// Nodit sequence tracking, applied by the store's writer inside the same
// SAVEPOINT as the event it belongs to (so the event and its sequence state
// commit or roll back together).
//
// TABLE sequences                       one row per (source, subscription)
//   source, subscription_id  TEXT       PRIMARY KEY
//   contiguous   INTEGER  every number from the baseline up to it is stored
//   highest      INTEGER  the highest number stored
//
// TABLE sequence_gaps                   missing ranges, first <= last
//   source, subscription_id, first      PRIMARY KEY
//   last            INTEGER
//   detected_at_ms  INTEGER  when the range was first seen missing (a split
//                            range keeps it: the backfill delay runs from there)
//
// RULES for a newly stored message numbered n:
//   - first message of a subscription: the baseline. When 1 < n <= 1 + kMaxInitialGap,
//     the range [1, n-1] is recorded missing (the subscription's start is within
//     reach of the history API); for a larger n, hookvault joined an old
//     subscription and starts counting at n (contiguous = n).
//   - n > highest: [highest+1, n-1] is recorded missing when not empty; highest = n.
//   - n inside a missing range: the range is split around n.
//   - n at or below the baseline: nothing to track.
//   Then contiguous = (smallest missing first) - 1, or highest when nothing is missing.
// The ranges keep a jump of any size to one row. The common case, n = highest + 1
// with nothing missing, is one UPDATE (sequences.cpp: kAdvanceInOrder).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "hookvault/store.hpp"
#include "store/sequence_fold.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

using store::kMaxInitialGap;  // sequence_fold.hpp

inline constexpr char kCreateSequences[] = R"sql(
CREATE TABLE IF NOT EXISTS sequences (
  source          TEXT    NOT NULL,
  subscription_id TEXT    NOT NULL,
  contiguous      INTEGER NOT NULL,
  highest         INTEGER NOT NULL,
  PRIMARY KEY (source, subscription_id),
  CHECK (contiguous <= highest)
) STRICT;

CREATE TABLE IF NOT EXISTS sequence_gaps (
  source          TEXT    NOT NULL,
  subscription_id TEXT    NOT NULL,
  first           INTEGER NOT NULL,
  last            INTEGER NOT NULL,
  detected_at_ms  INTEGER NOT NULL,
  PRIMARY KEY (source, subscription_id, first),
  CHECK (1 <= first AND first <= last)
) STRICT;
)sql";

// Writer side: records that message `number` of (source, subscription) is stored.
Result<void> advance_sequence(Connection& db, std::string_view source,
                              std::string_view subscription_id, std::uint64_t number,
                              std::int64_t now_ms);

// Reader side.
Result<std::vector<SubscriptionSequence>> read_sequences(Connection& db,
                                                         std::optional<std::string_view> source);

}  // namespace hookvault::store::sqlite
