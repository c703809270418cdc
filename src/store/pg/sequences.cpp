// SequenceBatch (sequences.hpp): reading, folding and writing back the
// sequence ledgers of one batch's subscriptions.
#include "store/pg/sequences.hpp"

#include <algorithm>
#include <utility>

#include "store/pg/statements.hpp"

namespace hookvault::store::pg {
namespace {

auto as_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }
auto as_uint(std::int64_t v) { return static_cast<std::uint64_t>(v); }

boost::system::error_code corrupt() { return make_error_code(Errc::store_corrupt); }

}  // namespace

std::size_t SequenceBatch::add(std::string_view source, std::string_view subscription_id,
                               std::uint64_t number, std::int64_t received_ms) {
  for (std::size_t i = 0; i < subs_.size(); ++i) {
    Sub& s = subs_[i];
    if (s.source == source && s.subscription_id == subscription_id) {
      s.floor = std::min(s.floor, number);
      s.now_ms = std::max(s.now_ms, received_ms);
      return i;
    }
  }
  Sub s;
  s.source = source;
  s.subscription_id = subscription_id;
  s.floor = number;
  s.now_ms = received_ms;
  subs_.push_back(std::move(s));
  return subs_.size() - 1;
}

std::vector<Statement> SequenceBatch::read() const {
  std::vector<std::string_view> sources;
  std::vector<std::string_view> ids;
  std::vector<std::int64_t> floors;
  for (const auto& s : subs_) {
    sources.push_back(s.source);
    ids.push_back(s.subscription_id);
    floors.push_back(as_int(s.floor));
  }
  std::vector<Statement> out;
  out.push_back({sql::kLockSequences, Params().text_array(sources).text_array(ids)});
  out.push_back({sql::kReadLockedSequences, Params().text_array(sources).text_array(ids)});
  out.push_back(
      {sql::kGapsFrom,
       Params().text_array(sources).text_array(ids).int64_array(floors).int64(kRangesRead)});
  return out;
}

Result<void> SequenceBatch::fold(const Rows& rows, const Rows& ranges) {
  for (int r = 0; r < rows.size(); ++r) {
    const std::string source = rows.text(r, 0);
    const std::string id = rows.text(r, 1);
    auto contiguous = rows.int64(r, 2);
    auto highest = rows.int64(r, 3);
    if (!contiguous || !highest || *contiguous < 0 || *contiguous > *highest) return corrupt();
    auto s = std::find_if(subs_.begin(), subs_.end(), [&](const Sub& x) {
      return x.source == source && x.subscription_id == id;
    });
    if (s == subs_.end()) return corrupt();
    s->exists = true;
    s->view.contiguous = as_uint(*contiguous);
    s->view.highest = as_uint(*highest);
  }
  for (int r = 0; r < ranges.size(); ++r) {
    auto i = ranges.int64(r, 0);
    auto first = ranges.int64(r, 1);
    auto last = ranges.int64(r, 2);
    auto detected = ranges.int64(r, 3);
    if (!i || !first || !last || !detected || *i < 1 || as_uint(*i) > subs_.size() || *first < 1 ||
        *first > *last) {
      return corrupt();
    }
    Sub& s = subs_[as_uint(*i) - 1];
    if (as_uint(*first) > s.floor) ++s.ranges_above;
    if (as_uint(*last) < s.floor) continue;  // a range below: not in the view
    s.view.gaps.push_back(SequenceGap{as_uint(*first), as_uint(*last), *detected});
  }
  for (auto& s : subs_) {
    std::sort(s.numbers.begin(), s.numbers.end());
    s.numbers.erase(std::unique(s.numbers.begin(), s.numbers.end()), s.numbers.end());
    if (s.numbers.empty()) continue;
    if (s.numbers.front() < s.floor) return make_error_code(Errc::internal);
    // One number touches at most the first range; the second is the new
    // first when it fills the first (sequence_fold.hpp).
    const bool complete = s.ranges_above < kRangesRead || s.numbers.size() == 1;
    if (!s.exists || !complete) continue;
    std::sort(s.view.gaps.begin(), s.view.gaps.end(),
              [](const SequenceGap& a, const SequenceGap& b) { return a.first < b.first; });
    s.writes = fold_numbers(s.view, s.numbers, s.now_ms);
    s.folded = true;
  }
  return {};
}

std::vector<Statement> SequenceBatch::writes() const {
  struct Columns {
    std::vector<std::string_view> sources;
    std::vector<std::string_view> ids;
    std::vector<std::int64_t> a, b, c;
    void key(const Sub& s) {
      sources.push_back(s.source);
      ids.push_back(s.subscription_id);
    }
  };
  Columns deleted;
  Columns inserted;
  Columns rows;
  for (const auto& s : subs_) {
    if (!s.folded) continue;
    for (const std::uint64_t first : s.writes.deleted) {
      deleted.key(s);
      deleted.a.push_back(as_int(first));
    }
    for (const SequenceGap& g : s.writes.inserted) {
      inserted.key(s);
      inserted.a.push_back(as_int(g.first));
      inserted.b.push_back(as_int(g.last));
      inserted.c.push_back(g.detected_at_ms);
    }
    if (s.writes.row_changed) {
      rows.key(s);
      rows.a.push_back(as_int(s.view.contiguous));
      rows.b.push_back(as_int(s.view.highest));
    }
  }
  std::vector<Statement> out;
  if (!deleted.ids.empty()) {
    out.push_back(
        {sql::kDeleteGaps,
         Params().text_array(deleted.sources).text_array(deleted.ids).int64_array(deleted.a)});
  }
  if (!inserted.ids.empty()) {
    out.push_back({sql::kInsertGaps, Params()
                                         .text_array(inserted.sources)
                                         .text_array(inserted.ids)
                                         .int64_array(inserted.a)
                                         .int64_array(inserted.b)
                                         .int64_array(inserted.c)});
  }
  if (!rows.ids.empty()) {
    out.push_back({sql::kPutSequences, Params()
                                           .text_array(rows.sources)
                                           .text_array(rows.ids)
                                           .int64_array(rows.a)
                                           .int64_array(rows.b)});
  }
  return out;
}

std::vector<SequenceBatch::Left> SequenceBatch::left() const {
  std::vector<Left> out;
  for (const auto& s : subs_) {
    if (!s.folded && !s.numbers.empty()) {
      out.push_back(Left{s.source, s.subscription_id, &s.numbers, s.now_ms});
    }
  }
  return out;
}

}  // namespace hookvault::store::pg
