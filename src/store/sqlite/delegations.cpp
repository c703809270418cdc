// The SQLite store's delegation rules (schema.hpp, ORDERING RULES), run by
// the writer inside a request's transaction: storing an event (duplicates,
// a signed delivery replacing a history copy), a delegation replacing or
// losing to the wallet's materials (supersede.hpp redacts the older ones),
// a revocation and its tombstone, and the resolution of a decrypt failure
// (with the caller's-thread preparation that seals its materials).
#include <limits>
#include <string>
#include <utility>

#include "store/sqlite/sequences.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/statements.hpp"
#include "store/sqlite/supersede.hpp"

namespace hookvault::store::sqlite {
namespace {

constexpr std::int64_t kAllTimes = std::numeric_limits<std::int64_t>::max();

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

}  // namespace

Result<std::optional<std::int64_t>> SqliteStore::tombstone_time(std::string_view source,
                                                                std::string_view wallet_id) {
  auto stmt = writer_db_.prepare(sql::kTombstoneTime);
  if (!stmt) return stmt.error();
  auto step = stmt->bind_text(1, source).bind_text(2, wallet_id).step();
  if (!step) return step.error();
  if (*step == Step::done) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(stmt->column_int64(0));
}

// The ordering rules of schema.hpp for a delegation at `event_time_ms`.
Result<MaterialsState> SqliteStore::decide_materials(std::string_view source,
                                                     std::string_view wallet_id,
                                                     std::int64_t event_time_ms,
                                                     std::string_view event_id) {
  auto tomb = tombstone_time(source, wallet_id);
  if (!tomb) return tomb.error();
  if (*tomb && **tomb >= event_time_ms) return MaterialsState::revoked;

  auto stmt = writer_db_.prepare(sql::kCurrentMaterials);
  if (!stmt) return stmt.error();
  auto step = stmt->bind_text(1, source).bind_text(2, wallet_id).step();
  if (!step) return step.error();
  if (*step == Step::row) {
    const std::int64_t created_ms = stmt->column_int64(0);
    if (created_ms > event_time_ms) return MaterialsState::superseded;
    // Same instant: the larger event id (byte order) wins, whatever the
    // arrival order; an equal one is the same delegation, already stored.
    if (created_ms == event_time_ms && stmt->column_text(1) >= event_id) {
      return MaterialsState::superseded;
    }
  }
  return MaterialsState::stored;
}

Result<void> SqliteStore::zero_materials(std::string_view source, std::string_view wallet_id,
                                         std::int64_t up_to_ms) {
  auto stmt = writer_db_.prepare(sql::kZeroMaterials);
  if (!stmt) return stmt.error();
  auto r = stmt->bind_text(1, source).bind_text(2, wallet_id).bind_int64(3, up_to_ms).run();
  if (r) note_overwrites();
  return r;
}

Result<void> SqliteStore::shred_superseded(std::string_view source, std::string_view wallet_id,
                                           std::int64_t event_time_ms, std::string_view event_id) {
  auto r = redact_superseded(writer_db_, source, wallet_id, event_time_ms, event_id);
  if (!r) return r.error();
  if (*r) overwrote_ = true;
  return {};
}

Result<void> SqliteStore::store_materials(std::string_view source, std::string_view wallet_id,
                                          std::string_view event_id, std::string_view created_at,
                                          std::int64_t created_at_ms, const SealedMaterials& m) {
  // Overwrite the old ciphertext in place before the row is replaced, and
  // the payloads that carried older shares (RSA-encrypted to a key on this
  // host) with it.
  if (auto r = zero_materials(source, wallet_id, kAllTimes); !r) return r;
  if (auto r = shred_superseded(source, wallet_id, created_at_ms, event_id); !r) return r;
  auto stmt = writer_db_.prepare(sql::kUpsertMaterials);
  if (!stmt) return stmt.error();
  return stmt->bind_text(1, source)
      .bind_text(2, wallet_id)
      .bind_text(3, m.user_id)
      .bind_text(4, m.chain)
      .bind_optional_text(5, m.share_set_id)
      .bind_text(6, event_id)
      .bind_text(7, created_at)
      .bind_int64(8, created_at_ms)
      .bind_text(9, m.key.kek_id)
      .bind_int64(10, m.key.kek_version)
      .bind_blob(11, m.key.wrapped_dek)
      .bind_blob(12, m.share)
      .bind_blob(13, m.api_key)
      .run();
}

Result<void> SqliteStore::revoke(std::string_view source, std::string_view wallet_id,
                                 std::int64_t revoked_at_ms, std::string_view revoked_at,
                                 std::string_view event_id) {
  if (auto r = zero_materials(source, wallet_id, revoked_at_ms); !r) return r;
  const auto by_wallet = [&](const char* sql) -> Result<void> {
    auto stmt = writer_db_.prepare(sql);
    if (!stmt) return stmt.error();
    return stmt->bind_text(1, source).bind_text(2, wallet_id).bind_int64(3, revoked_at_ms).run();
  };
  if (auto r = by_wallet(sql::kDeleteMaterials); !r) return r;
  {
    auto stmt = writer_db_.prepare(sql::kUpsertTombstone);
    if (!stmt) return stmt.error();
    auto r = stmt->bind_text(1, source)
                 .bind_text(2, wallet_id)
                 .bind_int64(3, revoked_at_ms)
                 .bind_text(4, revoked_at)
                 .bind_text(5, event_id)
                 .run();
    if (!r) return r;
  }
  if (auto r = by_wallet(sql::kZeroCreatedPayloads); !r) return r;
  note_overwrites();
  if (auto r = by_wallet(sql::kRedactCreatedPayloads); !r) return r;
  return by_wallet(sql::kSettleRevokedFailures);
}

Result<void> SqliteStore::redact_event(std::int64_t id) {
  for (const char* sql : {sql::kZeroEventPayload, sql::kRedactEventPayload}) {
    auto stmt = writer_db_.prepare(sql);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, id).run(); !r) return r;
  }
  note_overwrites();
  return {};
}

Result<WriteResult> SqliteStore::apply(WriteWork& w) {
  const EventRow& e = w.event;
  std::optional<std::int64_t> history_copy;  // replaced by this signed delivery
  {
    auto stmt = writer_db_.prepare(sql::kFindExisting);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, e.source).bind_text(2, e.idempotency_key).step();
    if (!step) return step.error();
    if (*step == Step::row) {
      const auto state = parse_state(stmt->column_text(1));
      const auto origin = parse_origin(stmt->column_text(2));
      if (!state || !origin) return err(Errc::store_corrupt);
      // A history copy is only the API's word: the signed delivery of its
      // key takes its place, never the reverse.
      if (*origin != Origin::history || e.origin != Origin::signature) {
        return WriteResult{stmt->column_int64(0), true, *state};
      }
      history_copy = stmt->column_int64(0);
    }
  }
  if (history_copy) {
    // A new row (new id), so that a reader of the events feed who saw the
    // copy sees the signed delivery too; secure_delete zeroes the old cells.
    auto del = writer_db_.prepare(sql::kDeleteEvent);
    if (!del) return del.error();
    if (auto r = del->bind_int64(1, *history_copy).run(); !r) return r.error();
  }

  MaterialsState state = MaterialsState::none;
  if (w.materials || w.decrypt_failure) {
    auto decided = decide_materials(e.source, e.wallet_id, e.event_time_ms, e.idempotency_key);
    if (!decided) return decided.error();
    state = *decided;
    // Materials that did not decrypt wait for `reprocess`, unless they could
    // never become the wallet's current ones anyway.
    if (w.decrypt_failure && state == MaterialsState::stored) {
      state = MaterialsState::decrypt_failed;
    }
  }
  // A delegation the wallet's tombstone covers, or that a newer one already
  // replaced, is stored redacted, like the delegations a revocation or a
  // newer delegation redacted when they arrived (schema.hpp, ORDERING RULES).
  const bool redacted = state == MaterialsState::revoked || state == MaterialsState::superseded;

  std::int64_t id = 0;
  {
    auto stmt = writer_db_.prepare(sql::kInsertEvent);
    if (!stmt) return stmt.error();
    stmt->bind_text(1, e.source)
        .bind_text(2, e.idempotency_key)
        .bind_text(3, e.event_name)
        .bind_text(4, e.message_id)
        .bind_text(5, e.event_time)
        .bind_int64(6, e.event_time_ms)
        .bind_text(7, e.wallet_id)
        .bind_text(8, origin_name(e.origin))
        .bind_int64(9, e.received_at_ms)
        .bind_text(10, materials_state_name(state));
    if (state == MaterialsState::decrypt_failed) {
      stmt->bind_text(11, *w.decrypt_failure);
    } else {
      stmt->bind_null(11);
    }
    if (redacted) {
      stmt->bind_null(12).bind_null(13).bind_null(14).bind_null(15);
    } else {
      stmt->bind_text(12, e.sealed.key.kek_id)
          .bind_int64(13, e.sealed.key.kek_version)
          .bind_blob(14, e.sealed.key.wrapped_dek)
          .bind_blob(15, e.sealed.payload);
    }
    if (auto r = stmt->run(); !r) return r.error();
    id = sqlite3_last_insert_rowid(writer_db_.handle());
  }
  if (e.sequence && !history_copy) {  // the copy counted the number already
    auto r = advance_sequence(writer_db_, e.source, e.sequence->subscription_id, e.sequence->number,
                              e.received_at_ms);
    if (!r) return r.error();
  }

  if (state == MaterialsState::stored) {
    auto r = store_materials(e.source, e.wallet_id, e.idempotency_key, e.event_time,
                             e.event_time_ms, *w.materials);
    if (!r) return r.error();
  }
  if (w.revoke) {
    auto r = revoke(e.source, e.wallet_id, e.event_time_ms, e.event_time, e.idempotency_key);
    if (!r) return r.error();
    // In the revocation's own SAVEPOINT: both commit, or neither.
    auto seq = append_audit(AuditEntry{"source:" + e.source, "revoke", e.wallet_id, "ok"});
    if (!seq) return seq.error();
  }
  return WriteResult{id, false, state, history_copy.has_value()};
}

Result<MaterialsState> SqliteStore::apply(ResolveWork& w) {
  std::string event_time;
  std::int64_t event_time_ms = 0;
  {
    auto stmt = writer_db_.prepare(sql::kPendingEvent);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, w.row_id).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_text(5) != "decrypt_failed") {
      return err(Errc::not_found);
    }
    if (stmt->column_text(0) != w.source || stmt->column_text(1) != w.idempotency_key ||
        stmt->column_text(2) != w.wallet_id) {
      return err(Errc::internal);  // sealed for another row; cannot happen
    }
    event_time = stmt->column_text(3);
    event_time_ms = stmt->column_int64(4);
  }

  const auto* reason = std::get_if<std::string>(&w.outcome);
  MaterialsState state = MaterialsState::decrypt_failed;
  if (reason != nullptr) {
    auto stmt = writer_db_.prepare(sql::kSetFailureReason);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, w.row_id).bind_text(2, *reason).run(); !r) {
      return r.error();
    }
  } else {
    const auto& materials = std::get<SealedMaterials>(w.outcome);
    auto decided = decide_materials(w.source, w.wallet_id, event_time_ms, w.idempotency_key);
    if (!decided) return decided.error();
    state = *decided;
    if (state == MaterialsState::stored) {
      auto r = store_materials(w.source, w.wallet_id, w.idempotency_key, event_time, event_time_ms,
                               materials);
      if (!r) return r.error();
    } else {  // revoked or superseded: its payload goes, like the others'
      if (auto r = redact_event(w.row_id); !r) return r.error();
    }
    auto stmt = writer_db_.prepare(sql::kSettleEvent);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, w.row_id).bind_text(2, materials_state_name(state)).run();
        !r) {
      return r.error();
    }
  }
  // In the resolution's own SAVEPOINT: both commit, or neither.
  auto seq = append_audit(
      AuditEntry{w.actor, "reprocess", std::to_string(w.row_id),
                 clip_audit_field(resolution_outcome(state, reason != nullptr ? *reason : ""))});
  if (!seq) return seq.error();
  return state;
}

// ---------------------------------------------------------------------------

// Caller's thread: the read-side check, then the materials are sealed for
// the event's row and the plaintext wiped, as submit() does.
Result<ResolveWork> SqliteStore::prepare_resolve(
    std::int64_t row_id, std::variant<DelegationMaterials, std::string>& outcome,
    std::string actor) {
  if (!accepting_now()) return err(Errc::store_unavailable);
  if (auto checked = check_actor(actor); !checked) return checked.error();
  ResolveWork work;
  work.row_id = row_id;
  work.actor = std::move(actor);
  auto found = with_reader([&](Connection& db) -> Result<void> {
    auto stmt = db.prepare(sql::kPendingEvent);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, row_id).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_text(5) != "decrypt_failed") {
      return err(Errc::not_found);
    }
    work.source = stmt->column_text(0);
    work.idempotency_key = stmt->column_text(1);
    work.wallet_id = stmt->column_text(2);
    return {};
  });
  if (!found) return found.error();
  if (auto sealed = seal_resolution(*kek_, work, outcome); !sealed) return sealed.error();
  return work;
}

}  // namespace hookvault::store::sqlite
