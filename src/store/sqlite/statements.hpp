// The SQL the SQLite store runs, beside each other (column meanings:
// schema.hpp). The modules that own tables of their own keep their SQL with
// them: kek_registry.cpp, sequences.cpp, supersede.cpp, audit_chain.cpp,
// leases.cpp.
//
// Every statement is prepared once per connection (Connection::prepare) and
// binds every value: no text is ever spliced into SQL.
#pragma once

#include <cstdint>

namespace hookvault::store::sqlite::sql {

// --- run by the writer (write connection) -----------------------------------

inline constexpr char kBegin[] = "BEGIN IMMEDIATE";
inline constexpr char kCommit[] = "COMMIT";
inline constexpr char kRollback[] = "ROLLBACK";
inline constexpr char kSavepoint[] = "SAVEPOINT request";
inline constexpr char kRelease[] = "RELEASE request";
inline constexpr char kRollbackTo[] = "ROLLBACK TO request";

inline constexpr char kProbe[] =
    "INSERT INTO meta (key, value) VALUES ('writer_probe_ms', ?1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

inline constexpr char kFindExisting[] =
    "SELECT id, materials_state, origin FROM events WHERE source = ?1 AND idem_key = ?2";

// A copy fetched from a history API (origin 'history') that the signed
// delivery of the same key replaces: see SqliteStore::apply(WriteWork&) (delegations.cpp).
inline constexpr char kDeleteEvent[] = "DELETE FROM events WHERE id = ?1";

inline constexpr char kInsertEvent[] =
    "INSERT INTO events (source, idem_key, event_name, message_id, event_time, event_time_ms, "
    "wallet_id, origin, received_at_ms, materials_state, failure_reason, kek_id, kek_version, "
    "wrapped_dek, payload) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

inline constexpr char kTombstoneTime[] =
    "SELECT revoked_at_ms FROM tombstones WHERE source = ?1 AND wallet_id = ?2";

inline constexpr char kCurrentMaterials[] =
    "SELECT created_at_ms, event_id FROM materials WHERE source = ?1 AND wallet_id = ?2";

inline constexpr char kZeroMaterials[] =
    "UPDATE materials SET wrapped_dek = zeroblob(length(wrapped_dek)), "
    "share = zeroblob(length(share)), api_key = zeroblob(length(api_key)) "
    "WHERE source = ?1 AND wallet_id = ?2 AND created_at_ms <= ?3";

inline constexpr char kDeleteMaterials[] =
    "DELETE FROM materials WHERE source = ?1 AND wallet_id = ?2 AND created_at_ms <= ?3";

inline constexpr char kUpsertMaterials[] =
    "INSERT INTO materials (source, wallet_id, user_id, chain, share_set_id, event_id, "
    "created_at, created_at_ms, kek_id, kek_version, wrapped_dek, share, api_key) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
    "ON CONFLICT (source, wallet_id) DO UPDATE SET user_id = excluded.user_id, "
    "chain = excluded.chain, share_set_id = excluded.share_set_id, "
    "event_id = excluded.event_id, created_at = excluded.created_at, "
    "created_at_ms = excluded.created_at_ms, kek_id = excluded.kek_id, "
    "kek_version = excluded.kek_version, wrapped_dek = excluded.wrapped_dek, "
    "share = excluded.share, api_key = excluded.api_key";

inline constexpr char kUpsertTombstone[] =
    "INSERT INTO tombstones (source, wallet_id, revoked_at_ms, revoked_at, event_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (source, wallet_id) DO UPDATE SET revoked_at_ms = excluded.revoked_at_ms, "
    "revoked_at = excluded.revoked_at, event_id = excluded.event_id "
    "WHERE excluded.revoked_at_ms > tombstones.revoked_at_ms";

inline constexpr char kZeroCreatedPayloads[] =
    "UPDATE events SET payload = zeroblob(length(payload)), "
    "wrapped_dek = zeroblob(length(wrapped_dek)) "
    "WHERE source = ?1 AND wallet_id = ?2 AND event_time_ms <= ?3 "
    "AND event_name = 'wallet.delegation.created' AND payload IS NOT NULL";

inline constexpr char kRedactCreatedPayloads[] =
    "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
    "WHERE source = ?1 AND wallet_id = ?2 AND event_time_ms <= ?3 "
    "AND event_name = 'wallet.delegation.created' AND payload IS NOT NULL";

inline constexpr char kSettleRevokedFailures[] =
    "UPDATE events SET materials_state = 'revoked', failure_reason = NULL "
    "WHERE source = ?1 AND wallet_id = ?2 AND event_time_ms <= ?3 "
    "AND event_name = 'wallet.delegation.created' AND materials_state = 'decrypt_failed'";

inline constexpr char kPendingEvent[] =
    "SELECT source, idem_key, wallet_id, event_time, event_time_ms, materials_state "
    "FROM events WHERE id = ?1";

inline constexpr char kSetFailureReason[] =
    "UPDATE events SET failure_reason = ?2 WHERE id = ?1 AND materials_state = 'decrypt_failed'";

inline constexpr char kSettleEvent[] =
    "UPDATE events SET materials_state = ?2, failure_reason = NULL WHERE id = ?1";

inline constexpr char kZeroEventPayload[] =
    "UPDATE events SET payload = zeroblob(length(payload)), "
    "wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id = ?1 AND payload IS NOT NULL";

inline constexpr char kRedactEventPayload[] =
    "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
    "WHERE id = ?1";

// Retention: payloads received before ?1, except delegations still waiting for
// `reprocess` (their payload is the only copy of the encrypted materials).
// Walks the partial index events_payload_by_received, oldest first.
inline constexpr char kExpiredPayloads[] =
    "SELECT id FROM events WHERE payload IS NOT NULL AND received_at_ms < ?1 "
    "AND materials_state <> 'decrypt_failed' ORDER BY received_at_ms LIMIT ?2";
inline constexpr std::int64_t kPurgeBatch = 500;  // rows per short write transaction

// keys rewrap: only where the row still holds the wrapped key that was read.
// ?1, ?2: the new version and bytes; ?3 .. ?5: the KEK id, version and bytes
// the row must still hold; from ?6: the row.
inline constexpr char kRewrapEvent[] =
    "UPDATE events SET kek_version = ?1, wrapped_dek = ?2 "
    "WHERE kek_id = ?3 AND kek_version = ?4 AND wrapped_dek = ?5 AND id = ?6";

inline constexpr char kRewrapMaterials[] =
    "UPDATE materials SET kek_version = ?1, wrapped_dek = ?2 "
    "WHERE kek_id = ?3 AND kek_version = ?4 AND wrapped_dek = ?5 "
    "AND source = ?6 AND wallet_id = ?7 AND event_id = ?8";

// --- run by the reads (read-only connection) -------------------------------

#define HOOKVAULT_EVENT_META_COLUMNS                                                             \
  "SELECT id, source, idem_key, event_name, message_id, event_time, wallet_id, received_at_ms, " \
  "origin, materials_state, failure_reason, payload IS NULL FROM events "

inline constexpr char kReadFindEvent[] =
    "SELECT id FROM events WHERE source = ?1 AND idem_key = ?2";
inline constexpr char kReadEventMeta[] = HOOKVAULT_EVENT_META_COLUMNS "WHERE id = ?1";
inline constexpr char kReadListAll[] =
    HOOKVAULT_EVENT_META_COLUMNS "WHERE id > ?1 ORDER BY id LIMIT ?2";
inline constexpr char kReadListSource[] =
    HOOKVAULT_EVENT_META_COLUMNS "WHERE source = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
inline constexpr char kReadDecryptFailures[] =
    HOOKVAULT_EVENT_META_COLUMNS "WHERE materials_state = 'decrypt_failed' ORDER BY id";

#undef HOOKVAULT_EVENT_META_COLUMNS

inline constexpr char kReadCountPrefix[] =
    "SELECT count(*) FROM events WHERE source = ?1 AND substr(idem_key, 1, ?3) = ?2";

inline constexpr char kReadLatestEventTime[] =
    "SELECT max(event_time_ms) FROM events WHERE source = ?1 AND event_time_ms > 0 "
    "AND origin = 'signature'";

inline constexpr char kReadPayload[] =
    "SELECT source, idem_key, kek_id, kek_version, wrapped_dek, payload FROM events WHERE id = ?1";

inline constexpr char kReadMaterials[] =
    "SELECT user_id, chain, share_set_id, event_id, created_at, kek_id, kek_version, "
    "wrapped_dek, share, api_key FROM materials WHERE source = ?1 AND wallet_id = ?2";

// KEK rotation (indexes events_by_kek, materials_by_kek).
inline constexpr char kReadKekUsage[] =
    "SELECT kek_id, kek_version, sum(events), sum(materials) FROM ("
    "SELECT kek_id, kek_version, count(*) AS events, 0 AS materials FROM events "
    "WHERE kek_id IS NOT NULL GROUP BY kek_id, kek_version "
    "UNION ALL "
    "SELECT kek_id, kek_version, 0, count(*) FROM materials GROUP BY kek_id, kek_version) "
    "GROUP BY kek_id, kek_version ORDER BY kek_id, kek_version";

// kek_refs(): the next (kek_id, kek_version) after ?1, ?2 in index order, one
// index probe each (a redacted event's NULL kek_id never compares greater).
inline constexpr char kNextEventKekRef[] =
    "SELECT kek_id, kek_version FROM events WHERE (kek_id, kek_version) > (?1, ?2) "
    "ORDER BY kek_id, kek_version LIMIT 1";
inline constexpr char kNextMaterialsKekRef[] =
    "SELECT kek_id, kek_version FROM materials WHERE (kek_id, kek_version) > (?1, ?2) "
    "ORDER BY kek_id, kek_version LIMIT 1";

inline constexpr char kReadOldEvents[] =
    "SELECT id, source, idem_key, kek_version, wrapped_dek FROM events "
    "WHERE kek_id = ?1 AND kek_version < ?2 LIMIT ?3";

inline constexpr char kReadOldMaterials[] =
    "SELECT source, wallet_id, event_id, kek_version, wrapped_dek FROM materials "
    "WHERE kek_id = ?1 AND kek_version < ?2 LIMIT ?3";

// How many keys of this KEK are older than the current version (the audit
// key is added by the caller).
inline constexpr char kReadOldCount[] =
    "SELECT (SELECT count(*) FROM events WHERE kek_id = ?1 AND kek_version < ?2) + "
    "(SELECT count(*) FROM materials WHERE kek_id = ?1 AND kek_version < ?2)";

}  // namespace hookvault::store::sqlite::sql
