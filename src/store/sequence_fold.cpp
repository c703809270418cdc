// fold_numbers (sequence_fold.hpp): the RULES of sqlite/sequences.hpp on a
// subscription's state in memory.
#include "store/sequence_fold.hpp"

#include <algorithm>

namespace hookvault::store {
namespace {

bool same(const SequenceGap& a, const SequenceGap& b) noexcept {
  return a.first == b.first && a.last == b.last && a.detected_at_ms == b.detected_at_ms;
}

bool contains(const std::vector<SequenceGap>& gaps, const SequenceGap& g) {
  return std::any_of(gaps.begin(), gaps.end(), [&](const SequenceGap& x) { return same(x, g); });
}

}  // namespace

SequenceWrites fold_numbers(SequenceView& view, std::span<const std::uint64_t> numbers,
                            std::int64_t now_ms) {
  const std::vector<SequenceGap> before = view.gaps;
  const std::uint64_t old_contiguous = view.contiguous;
  const std::uint64_t old_highest = view.highest;
  // With ranges missing, contiguous + 1 is the smallest first; when the
  // view's first range is not it, a range below the view keeps contiguous.
  const bool range_below = view.contiguous < view.highest &&
                           (view.gaps.empty() || view.gaps.front().first != view.contiguous + 1);
  auto& gaps = view.gaps;
  for (const std::uint64_t n : numbers) {
    if (view.highest == 0) {  // the subscription's first message
      view.highest = n;
      if (n > 1 && n - 1 <= kMaxInitialGap) gaps.push_back(SequenceGap{1, n - 1, now_ms});
    } else if (n > view.highest) {
      if (n > view.highest + 1) gaps.push_back(SequenceGap{view.highest + 1, n - 1, now_ms});
      view.highest = n;
    } else {
      auto it = std::find_if(gaps.begin(), gaps.end(),
                             [&](const SequenceGap& g) { return g.first <= n && n <= g.last; });
      if (it == gaps.end()) continue;  // stored already, or at or below the baseline
      const SequenceGap g = *it;
      it = gaps.erase(it);
      // The parts around n keep the range's detection time.
      if (n < g.last) it = gaps.insert(it, SequenceGap{n + 1, g.last, g.detected_at_ms});
      if (g.first < n) gaps.insert(it, SequenceGap{g.first, n - 1, g.detected_at_ms});
    }
  }
  if (!range_below) view.contiguous = gaps.empty() ? view.highest : gaps.front().first - 1;

  SequenceWrites w;
  for (const auto& g : before) {
    if (!contains(gaps, g)) w.deleted.push_back(g.first);
  }
  for (const auto& g : gaps) {
    if (!contains(before, g)) w.inserted.push_back(g);
  }
  w.row_changed = view.contiguous != old_contiguous || view.highest != old_highest;
  return w;
}

}  // namespace hookvault::store
