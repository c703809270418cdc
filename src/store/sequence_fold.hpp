// A Nodit subscription's sequence ledger as a value: the RULES of
// sqlite/sequences.hpp applied to a subscription's state read once, so that
// a writer can fold a whole batch of numbers into it and write only what
// changed (the PostgreSQL writer: src/store/pg/writer.cpp, apply.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "hookvault/store.hpp"

namespace hookvault::store {

// A first message numbered n within reach of the history API
// (1 < n <= 1 + kMaxInitialGap) records [1, n-1] missing; a later first
// message starts the count at n.
inline constexpr std::uint64_t kMaxInitialGap = 1000;

// What a writer read of one subscription, holding its row locked.
struct SequenceView {
  std::uint64_t contiguous = 0;
  std::uint64_t highest = 0;  // 0: nothing stored yet (the next number is the first)
  // The missing ranges that end at or above the smallest number to fold,
  // ascending by first: all of them, or, when folding one number, the first
  // two (one number touches at most the first; the second is the new first
  // when the number fills the first). Ranges below stay as they are, and
  // `contiguous` with them.
  std::vector<SequenceGap> gaps;
};

// What fold_numbers changed: the rows to delete (by first) and to insert,
// and whether the subscription's row changed.
struct SequenceWrites {
  std::vector<std::uint64_t> deleted;
  std::vector<SequenceGap> inserted;
  bool row_changed = false;
  bool empty() const noexcept { return deleted.empty() && inserted.empty() && !row_changed; }
};

// Records each of `numbers` as stored at now_ms: ascending, distinct, each
// at least 1 and at least the smallest number the view's gaps were read for.
SequenceWrites fold_numbers(SequenceView& view, std::span<const std::uint64_t> numbers,
                            std::int64_t now_ms);

}  // namespace hookvault::store
