// The PostgreSQL store's ordering rules, run by the writer inside a
// request's SAVEPOINT of the batch's transaction: the same rules as the
// SQLite backend (src/store/sqlite/schema.hpp, ORDERING RULES, and
// sequences.hpp, RULES), with the row and advisory locks of schema.hpp
// (WRITES) so that instances sharing the database take their decisions one
// at a time per wallet, per subscription and on the audit chain's head.
#include <limits>
#include <string>
#include <utility>

#include "store/audit_mac.hpp"
#include "store/pg/pg_store_impl.hpp"
#include "store/pg/schema.hpp"
#include "store/pg/statements.hpp"

namespace hookvault::store::pg {
namespace {

constexpr std::int64_t kAllTimes = std::numeric_limits<std::int64_t>::max();

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

auto as_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }
auto as_uint(std::int64_t v) { return static_cast<std::uint64_t>(v); }

Params by_wallet(std::string_view source, std::string_view wallet_id, std::int64_t at_ms) {
  Params p;
  p.text(source).text(wallet_id).int64(at_ms);
  return p;
}

}  // namespace

Params& bind_event_head(Params& p, const EventRow& e) {
  return p.text(e.source)
      .text(e.idempotency_key)
      .text(e.event_name)
      .text(e.message_id)
      .text(e.event_time)
      .int64(e.event_time_ms)
      .text(e.wallet_id)
      .text(origin_name(e.origin))
      .int64(e.received_at_ms);
}

Params& bind_sealed(Params& p, const SealedPayload& sealed) {
  return p.text(sealed.key.kek_id)
      .int64(sealed.key.kek_version)
      .bytes(sealed.key.wrapped_dek)
      .bytes(sealed.payload);
}

Params bind_events(const std::vector<const EventRow*>& rows) {
  const auto texts = [&](auto member) {
    std::vector<std::string_view> v;
    v.reserve(rows.size());
    for (const EventRow* e : rows) v.push_back(member(*e));
    return v;
  };
  const auto numbers = [&](auto member) {
    std::vector<std::int64_t> v;
    v.reserve(rows.size());
    for (const EventRow* e : rows) v.push_back(member(*e));
    return v;
  };
  const auto blobs = [&](auto member) {
    std::vector<ByteView> v;
    v.reserve(rows.size());
    for (const EventRow* e : rows) v.push_back(member(*e));
    return v;
  };
  Params p;
  p.text_array(texts([](const EventRow& e) -> std::string_view { return e.source; }))
      .text_array(texts([](const EventRow& e) -> std::string_view { return e.idempotency_key; }))
      .text_array(texts([](const EventRow& e) -> std::string_view { return e.event_name; }))
      .text_array(texts([](const EventRow& e) -> std::string_view { return e.message_id; }))
      .text_array(texts([](const EventRow& e) -> std::string_view { return e.event_time; }))
      .int64_array(numbers([](const EventRow& e) { return e.event_time_ms; }))
      .text_array(texts([](const EventRow& e) -> std::string_view { return e.wallet_id; }))
      .text_array(texts([](const EventRow& e) { return origin_name(e.origin); }))
      .int64_array(numbers([](const EventRow& e) { return e.received_at_ms; }))
      .text_array(texts([](const EventRow& e) -> std::string_view { return e.sealed.key.kek_id; }))
      .int64_array(
          numbers([](const EventRow& e) -> std::int64_t { return e.sealed.key.kek_version; }))
      .bytes_array(blobs([](const EventRow& e) -> ByteView { return e.sealed.key.wrapped_dek; }))
      .bytes_array(blobs([](const EventRow& e) -> ByteView { return e.sealed.payload; }));
  return p;
}

Result<void> PgStore::lock_wallet(std::string_view source, std::string_view wallet_id) {
  std::string name(source);
  name.push_back('\0');
  name.append(wallet_id);
  auto r = q(sql::kLockWallet,
             Params().int64(schema::kWalletLockClass).int64(AdvisoryLease::key_of(name)));
  if (!r) return r.error();
  return {};
}

Result<MaterialsState> PgStore::decide_materials(std::string_view source,
                                                 std::string_view wallet_id,
                                                 std::int64_t event_time_ms,
                                                 std::string_view event_id) {
  auto tomb = q(sql::kTombstoneTime, Params().text(source).text(wallet_id));
  if (!tomb) return tomb.error();
  if (!tomb->empty()) {
    auto t = tomb->int64(0, 0);
    if (!t) return t.error();
    if (*t >= event_time_ms) return MaterialsState::revoked;
  }
  auto current = q(sql::kCurrentMaterials, Params().text(source).text(wallet_id));
  if (!current) return current.error();
  if (!current->empty()) {
    auto created_ms = current->int64(0, 0);
    if (!created_ms) return created_ms.error();
    if (*created_ms > event_time_ms) return MaterialsState::superseded;
    // Same instant: the larger event id (byte order) wins.
    if (*created_ms == event_time_ms && current->text(0, 1) >= event_id) {
      return MaterialsState::superseded;
    }
  }
  return MaterialsState::stored;
}

Result<void> PgStore::store_materials(std::string_view source, std::string_view wallet_id,
                                      std::string_view event_id, std::string_view created_at,
                                      std::int64_t created_at_ms, const SealedMaterials& m) {
  if (auto r = q(sql::kZeroMaterials, by_wallet(source, wallet_id, kAllTimes)); !r) {
    return r.error();
  }
  for (const char* s : {sql::kZeroSuperseded, sql::kRedactSuperseded, sql::kSettleSuperseded}) {
    Params p = by_wallet(source, wallet_id, created_at_ms);
    p.text(event_id);
    if (auto r = q(s, p); !r) return r.error();
  }
  auto r = q(sql::kUpsertMaterials, Params()
                                        .text(source)
                                        .text(wallet_id)
                                        .text(m.user_id)
                                        .text(m.chain)
                                        .optional_text(m.share_set_id)
                                        .text(event_id)
                                        .text(created_at)
                                        .int64(created_at_ms)
                                        .text(m.key.kek_id)
                                        .int64(m.key.kek_version)
                                        .bytes(m.key.wrapped_dek)
                                        .bytes(m.share)
                                        .bytes(m.api_key));
  if (!r) return r.error();
  return {};
}

Result<void> PgStore::revoke(const EventRow& e) {
  const auto wallet = [&] { return by_wallet(e.source, e.wallet_id, e.event_time_ms); };
  for (const char* s : {sql::kZeroMaterials, sql::kDeleteMaterials}) {
    if (auto r = q(s, wallet()); !r) return r.error();
  }
  if (auto r = q(sql::kUpsertTombstone, Params()
                                            .text(e.source)
                                            .text(e.wallet_id)
                                            .int64(e.event_time_ms)
                                            .text(e.event_time)
                                            .text(e.idempotency_key));
      !r) {
    return r.error();
  }
  for (const char* s :
       {sql::kZeroRevokedPayloads, sql::kRedactRevokedPayloads, sql::kSettleRevokedFailures}) {
    if (auto r = q(s, wallet()); !r) return r.error();
  }
  return {};
}

Result<WriteResult> PgStore::apply(WriteWork& w) {
  const EventRow& e = w.event;
  const bool delegation = w.materials || w.decrypt_failure || w.revoke;
  if (delegation) {
    // The wallet's decisions, one instance at a time (schema.hpp, WRITES).
    if (auto r = lock_wallet(e.source, e.wallet_id); !r) return r.error();
  }
  std::vector<const WrappedKey*> keys{&e.sealed.key};
  if (w.materials) keys.push_back(&w.materials->key);
  if (auto r = check_not_retired(keys); !r) return r.error();

  MaterialsState state = MaterialsState::none;
  if (w.materials || w.decrypt_failure) {
    auto decided = decide_materials(e.source, e.wallet_id, e.event_time_ms, e.idempotency_key);
    if (!decided) return decided.error();
    state = *decided;
    if (w.decrypt_failure && state == MaterialsState::stored)
      state = MaterialsState::decrypt_failed;
  }
  const bool redacted = state == MaterialsState::revoked || state == MaterialsState::superseded;

  // The UNIQUE constraint decides (ON CONFLICT waits for a concurrent insert
  // of the key, in any instance, to commit or roll back); a signed delivery
  // takes the place of a history copy of its key, as on SQLite.
  bool replaced_history = false;
  std::int64_t id = 0;
  for (int round = 0;; ++round) {
    Params p;
    bind_event_head(p, e).text(materials_state_name(state));
    if (state == MaterialsState::decrypt_failed) {
      p.text(*w.decrypt_failure);
    } else {
      p.null();
    }
    if (redacted) {
      p.null().null().null().null();
    } else {
      bind_sealed(p, e.sealed);
    }
    auto inserted = q(sql::kInsertEvent, p);
    if (!inserted) return inserted.error();
    if (!inserted->empty()) {
      auto v = inserted->int64(0, 0);
      if (!v) return v.error();
      id = *v;
      break;
    }
    auto found = q(sql::kFindExisting, Params().text(e.source).text(e.idempotency_key));
    if (!found) return found.error();
    if (found->empty()) {
      if (round < 3) continue;  // deleted meanwhile: insert again
      return err(Errc::internal);
    }
    auto existing = found->int64(0, 0);
    const auto found_state = parse_state(found->text(0, 1));
    const auto found_origin = parse_origin(found->text(0, 2));
    if (!existing || !found_state || !found_origin) return err(Errc::store_corrupt);
    if (*found_origin != Origin::history || e.origin != Origin::signature || round >= 3) {
      return WriteResult{*existing, true, *found_state};
    }
    auto del = q(sql::kDeleteHistoryCopy, Params().int64(*existing));
    if (!del) return del.error();
    if (del->affected() == 1) replaced_history = true;
  }
  if (e.sequence && !replaced_history) {  // the copy counted the number already
    auto r = advance_sequence(e.source, e.sequence->subscription_id, e.sequence->number,
                              e.received_at_ms);
    if (!r) return r.error();
  }
  if (state == MaterialsState::stored) {
    auto r = store_materials(e.source, e.wallet_id, e.idempotency_key, e.event_time,
                             e.event_time_ms, *w.materials);
    if (!r) return r.error();
  }
  if (w.revoke) {
    if (auto r = revoke(e); !r) return r.error();
    auto seq = append_audit(AuditEntry{"source:" + e.source, "revoke", e.wallet_id, "ok"});
    if (!seq) return seq.error();
  }
  return WriteResult{id, false, state, replaced_history};
}

Result<MaterialsState> PgStore::apply(ResolveWork& w) {
  if (auto r = lock_wallet(w.source, w.wallet_id); !r) return r.error();
  auto row = q(sql::kPendingEventForUpdate, Params().int64(w.row_id));
  if (!row) return row.error();
  if (row->empty() || row->text(0, 5) != "decrypt_failed") return err(Errc::not_found);
  if (row->text(0, 0) != w.source || row->text(0, 1) != w.idempotency_key ||
      row->text(0, 2) != w.wallet_id) {
    return err(Errc::internal);  // sealed for another row; cannot happen
  }
  const std::string event_time = row->text(0, 3);
  auto event_time_ms = row->int64(0, 4);
  if (!event_time_ms) return event_time_ms.error();

  const auto* reason = std::get_if<std::string>(&w.outcome);
  MaterialsState state = MaterialsState::decrypt_failed;
  if (reason != nullptr) {
    if (auto r = q(sql::kSetFailureReason, Params().int64(w.row_id).text(*reason)); !r) {
      return r.error();
    }
  } else {
    const auto& materials = std::get<SealedMaterials>(w.outcome);
    if (auto r = check_not_retired({&materials.key}); !r) return r.error();
    auto decided = decide_materials(w.source, w.wallet_id, *event_time_ms, w.idempotency_key);
    if (!decided) return decided.error();
    state = *decided;
    if (state == MaterialsState::stored) {
      auto r = store_materials(w.source, w.wallet_id, w.idempotency_key, event_time, *event_time_ms,
                               materials);
      if (!r) return r.error();
    } else {
      for (const char* s : {sql::kZeroEventPayload, sql::kRedactEventPayload}) {
        if (auto r = q(s, Params().int64(w.row_id)); !r) return r.error();
      }
    }
    if (auto r = q(sql::kSettleEvent, Params().int64(w.row_id).text(materials_state_name(state)));
        !r) {
      return r.error();
    }
  }
  auto seq = append_audit(
      AuditEntry{w.actor, "reprocess", std::to_string(w.row_id),
                 clip_audit_field(resolution_outcome(state, reason != nullptr ? *reason : ""))});
  if (!seq) return seq.error();
  return state;
}

Result<std::int64_t> PgStore::apply(AuditWork& w) { return append_audit(w.entry); }

Result<std::int64_t> PgStore::append_audit(const AuditEntry& entry) {
  // The head's row lock serialises appends of every instance (schema.hpp).
  auto head_row = q(sql::kLockAuditHead);
  if (!head_row) return head_row.error();
  if (head_row->empty()) return err(Errc::store_corrupt);
  if (!batch_audit_key_) {
    auto key = read_audit_key(*writer_db_);
    if (!key) return key.error();
    if (!*key) return err(Errc::store_corrupt);
    batch_audit_key_.emplace(std::move(**key));
  }
  auto seq = head_row->int64(0, 0);
  const auto mac = mac_from(head_row->bytes(0, 1));
  const auto tag = mac_from(head_row->bytes(0, 2));
  if (!seq || !mac || !tag) return err(Errc::store_corrupt);
  auto next =
      extend_audit_chain(*batch_audit_key_, AuditHead{*seq, *mac, *tag}, entry, clock_.now_ms());
  if (!next) return next.error();
  const AuditRow& row = next->row;
  if (auto r = q(sql::kInsertAudit, Params()
                                        .int64(row.seq)
                                        .int64(row.time_ms)
                                        .text(row.entry.actor)
                                        .text(row.entry.action)
                                        .text(row.entry.subject)
                                        .text(row.entry.outcome)
                                        .bytes(row.mac));
      !r) {
    return r.error();
  }
  if (auto r = q(sql::kMoveAuditHead,
                 Params().int64(next->head.seq).bytes(next->head.mac).bytes(next->head.tag));
      !r) {
    return r.error();
  }
  return row.seq;
}

// One number on its own (sequence_fold.hpp, with the subscription's row
// locked for the transaction): the next number while nothing is missing is
// one UPDATE; anything else makes or locks the row, reads it and the first
// ranges from the number up, folds the number in and writes what changed.
Result<void> PgStore::advance_sequence(std::string_view source, std::string_view sub,
                                       std::uint64_t number, std::int64_t now_ms) {
  if (number == 0 || number > as_uint(std::numeric_limits<std::int64_t>::max())) {
    return err(Errc::invalid_field);
  }
  if (auto r = q(sql::kAdvanceInOrder, Params().text(source).text(sub).int64(as_int(number)));
      !r || r->affected() == 1) {
    return r ? Result<void>() : r.error();
  }
  SequenceBatch one;
  one.store(one.add(source, sub, number, now_ms), number);
  std::vector<Rows> read;
  for (const auto& s : one.read()) {
    auto r = q(s.sql, s.params);
    if (!r) return r.error();
    read.push_back(std::move(*r));
  }
  if (auto r = one.fold(read[1], read[2]); !r) return r;
  if (!one.left().empty()) return err(Errc::internal);
  for (const auto& s : one.writes()) {
    if (auto r = q(s.sql, s.params); !r) return r.error();
  }
  return {};
}

}  // namespace hookvault::store::pg
