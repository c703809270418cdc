// Nodit sequence ledgers on PostgreSQL (schema.hpp: sequences,
// sequence_gaps): the subscriptions of one batch read under their rows'
// locks, their numbers folded in memory (src/store/sequence_fold.hpp) and
// what changed written back, each step one statement for every
// subscription of the batch (writer.cpp: fast_batch; apply.cpp:
// advance_sequence, one subscription and one number).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "store/pg/libpq.hpp"
#include "store/sequence_fold.hpp"

namespace hookvault::store::pg {

// One statement to send later, in a pipeline.
struct Statement {
  const char* sql;
  Params params;
};

class SequenceBatch {
 public:
  // The missing ranges above a subscription's smallest number that one read
  // gives at most; a subscription with more is left to one number at a time.
  static constexpr std::int64_t kRangesRead = 64;

  // A number of a subscription the batch may store, received at
  // received_ms: the subscription is locked and read, its ranges from its
  // smallest such number up. Its index for store().
  std::size_t add(std::string_view source, std::string_view subscription_id, std::uint64_t number,
                  std::int64_t received_ms);
  // A number of subscription i to fold: stored by the transaction (at least
  // 1 and the floor; in any order, repeats counted once).
  void store(std::size_t i, std::uint64_t number) { subs_[i].numbers.push_back(number); }
  bool empty() const noexcept { return subs_.empty(); }

  // The rows, made when missing and locked in one order
  // (sql::kLockSequences), read (sql::kReadLockedSequences), and their
  // ranges (sql::kGapsFrom): three statements, sent in this order.
  std::vector<Statement> read() const;
  // Folds the numbers of every subscription whose row exists and whose
  // ranges one read gave (one number needs the first two only);
  // Errc::store_corrupt when a row is not what the schema allows.
  Result<void> fold(const Rows& rows, const Rows& ranges);
  // What the folds changed: at most three statements.
  std::vector<Statement> writes() const;

  struct Left {
    std::string_view source;
    std::string_view subscription_id;
    const std::vector<std::uint64_t>* numbers;
    std::int64_t now_ms;
  };
  // The subscriptions with numbers that fold() left (more ranges than one
  // read), their numbers ascending.
  std::vector<Left> left() const;

 private:
  struct Sub {
    std::string_view source;
    std::string_view subscription_id;
    std::uint64_t floor = 0;
    std::vector<std::uint64_t> numbers;
    std::int64_t now_ms = 0;
    bool exists = false;
    std::int64_t ranges_above = 0;  // ranges read that start above the floor
    SequenceView view;
    SequenceWrites writes;
    bool folded = false;
  };
  std::vector<Sub> subs_;
};

}  // namespace hookvault::store::pg
