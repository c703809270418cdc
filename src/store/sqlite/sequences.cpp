#include "store/sqlite/sequences.hpp"

#include <limits>

namespace hookvault::store::sqlite {
namespace {

constexpr char kGetSequence[] =
    "SELECT contiguous, highest FROM sequences WHERE source = ?1 AND subscription_id = ?2";
constexpr char kPutSequence[] =
    "INSERT INTO sequences (source, subscription_id, contiguous, highest) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (source, subscription_id) DO UPDATE SET contiguous = excluded.contiguous, "
    "highest = excluded.highest";
// The common case in one statement: the next number of a subscription with
// nothing missing. contiguous = highest means no range is missing (every
// missing range lies below highest, and contiguous is one below the first),
// so n = highest + 1 leaves nothing missing either: contiguous = highest = n,
// what the general rules below compute with three statements.
constexpr char kAdvanceInOrder[] =
    "UPDATE sequences SET contiguous = ?3, highest = ?3 "
    "WHERE source = ?1 AND subscription_id = ?2 AND contiguous = highest AND highest = ?3 - 1";
constexpr char kInsertGap[] =
    "INSERT INTO sequence_gaps (source, subscription_id, first, last, detected_at_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr char kGapAt[] =
    "SELECT first, last, detected_at_ms FROM sequence_gaps "
    "WHERE source = ?1 AND subscription_id = ?2 AND first <= ?3 ORDER BY first DESC LIMIT 1";
constexpr char kDeleteGap[] =
    "DELETE FROM sequence_gaps WHERE source = ?1 AND subscription_id = ?2 AND first = ?3";
constexpr char kFirstGap[] =
    "SELECT min(first) FROM sequence_gaps WHERE source = ?1 AND subscription_id = ?2";
constexpr char kReadAll[] =
    "SELECT source, subscription_id, contiguous, highest FROM sequences "
    "ORDER BY source, subscription_id";
constexpr char kReadSource[] =
    "SELECT source, subscription_id, contiguous, highest FROM sequences WHERE source = ?1 "
    "ORDER BY subscription_id";
constexpr char kReadGaps[] =
    "SELECT first, last, detected_at_ms FROM sequence_gaps "
    "WHERE source = ?1 AND subscription_id = ?2 ORDER BY first";

auto as_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }
auto as_uint(std::int64_t v) { return static_cast<std::uint64_t>(v); }

Result<void> insert_gap(Connection& db, std::string_view source, std::string_view sub,
                        std::uint64_t first, std::uint64_t last, std::int64_t detected_ms) {
  auto stmt = db.prepare(kInsertGap);
  if (!stmt) return stmt.error();
  return stmt->bind_text(1, source)
      .bind_text(2, sub)
      .bind_int64(3, as_int(first))
      .bind_int64(4, as_int(last))
      .bind_int64(5, detected_ms)
      .run();
}

}  // namespace

Result<void> advance_sequence(Connection& db, std::string_view source,
                              std::string_view subscription_id, std::uint64_t number,
                              std::int64_t now_ms) {
  if (number == 0 || number > as_uint(std::numeric_limits<std::int64_t>::max())) {
    return make_error_code(Errc::invalid_field);
  }
  {
    auto stmt = db.prepare(kAdvanceInOrder);
    if (!stmt) return stmt.error();
    auto r = stmt->bind_text(1, source)
                 .bind_text(2, subscription_id)
                 .bind_int64(3, as_int(number))
                 .run();
    if (!r) return r;
    if (sqlite3_changes(db.handle()) == 1) return {};
  }
  std::optional<std::pair<std::uint64_t, std::uint64_t>> current;
  {
    auto stmt = db.prepare(kGetSequence);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).bind_text(2, subscription_id).step();
    if (!step) return step.error();
    if (*step == Step::row) {
      current.emplace(as_uint(stmt->column_int64(0)), as_uint(stmt->column_int64(1)));
    }
  }

  // `contiguous` is derived from the gaps below; only `highest` carries over.
  std::uint64_t highest = 0;
  if (!current) {
    highest = number;
    if (number > 1 && number - 1 <= kMaxInitialGap) {
      if (auto r = insert_gap(db, source, subscription_id, 1, number - 1, now_ms); !r) return r;
    }
  } else {
    const std::uint64_t contiguous = current->first;
    highest = current->second;
    if (number > highest) {
      if (number > highest + 1) {
        if (auto r = insert_gap(db, source, subscription_id, highest + 1, number - 1, now_ms); !r) {
          return r;
        }
      }
      highest = number;
    } else if (number > contiguous) {
      std::optional<SequenceGap> gap;
      {
        auto stmt = db.prepare(kGapAt);
        if (!stmt) return stmt.error();
        auto step = stmt->bind_text(1, source)
                        .bind_text(2, subscription_id)
                        .bind_int64(3, as_int(number))
                        .step();
        if (!step) return step.error();
        if (*step == Step::row && as_uint(stmt->column_int64(1)) >= number) {
          gap = SequenceGap{as_uint(stmt->column_int64(0)), as_uint(stmt->column_int64(1)),
                            stmt->column_int64(2)};
        }
      }
      if (gap) {
        auto del = db.prepare(kDeleteGap);
        if (!del) return del.error();
        if (auto r = del->bind_text(1, source)
                         .bind_text(2, subscription_id)
                         .bind_int64(3, as_int(gap->first))
                         .run();
            !r) {
          return r;
        }
        if (gap->first < number) {
          auto r =
              insert_gap(db, source, subscription_id, gap->first, number - 1, gap->detected_at_ms);
          if (!r) return r;
        }
        if (number < gap->last) {
          auto r =
              insert_gap(db, source, subscription_id, number + 1, gap->last, gap->detected_at_ms);
          if (!r) return r;
        }
      }
    }
  }

  std::uint64_t contiguous = 0;
  {
    auto stmt = db.prepare(kFirstGap);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).bind_text(2, subscription_id).step();
    if (!step) return step.error();
    if (*step == Step::row && !stmt->column_is_null(0)) {
      contiguous = as_uint(stmt->column_int64(0)) - 1;
    } else {
      contiguous = highest;
    }
  }
  auto put = db.prepare(kPutSequence);
  if (!put) return put.error();
  return put->bind_text(1, source)
      .bind_text(2, subscription_id)
      .bind_int64(3, as_int(contiguous))
      .bind_int64(4, as_int(highest))
      .run();
}

Result<std::vector<SubscriptionSequence>> read_sequences(Connection& db,
                                                         std::optional<std::string_view> source) {
  std::vector<SubscriptionSequence> out;
  {
    auto stmt = db.prepare(source ? kReadSource : kReadAll);
    if (!stmt) return stmt.error();
    if (source) stmt->bind_text(1, *source);
    auto read = for_each_row(*stmt, [&](const Statement& row) {
      SubscriptionSequence s;
      s.source = row.column_text(0);
      s.subscription_id = row.column_text(1);
      s.contiguous = as_uint(row.column_int64(2));
      s.highest = as_uint(row.column_int64(3));
      out.push_back(std::move(s));
    });
    if (!read) return read.error();
  }
  for (auto& s : out) {
    auto stmt = db.prepare(kReadGaps);
    if (!stmt) return stmt.error();
    stmt->bind_text(1, s.source).bind_text(2, s.subscription_id);
    auto read = for_each_row(*stmt, [&](const Statement& row) {
      s.gaps.push_back(SequenceGap{as_uint(row.column_int64(0)), as_uint(row.column_int64(1)),
                                   row.column_int64(2)});
    });
    if (!read) return read.error();
  }
  return out;
}

}  // namespace hookvault::store::sqlite
