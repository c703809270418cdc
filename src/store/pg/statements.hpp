// The SQL the PostgreSQL store runs (column meanings: schema.hpp, and the
// SQLite backend's schema.hpp for what the columns hold). Every value is a
// parameter; no text is ever spliced into SQL. Parameters go as text
// (bytea binary), so expressions cast them.
#pragma once

#include <cstdint>

namespace hookvault::store::pg::sql {

inline constexpr char kBegin[] = "BEGIN";
inline constexpr char kCommit[] = "COMMIT";
inline constexpr char kRollback[] = "ROLLBACK";
inline constexpr char kSavepoint[] = "SAVEPOINT request";
inline constexpr char kRelease[] = "RELEASE SAVEPOINT request";
inline constexpr char kRollbackTo[] = "ROLLBACK TO SAVEPOINT request";

// This writer's row: every batch writes it, so its COMMIT writes WAL and
// waits for the synchronous standby even when it only found duplicates.
inline constexpr char kTouchWriter[] =
    "INSERT INTO writers (writer, heartbeat_ms) VALUES ($1, $2::bigint) "
    "ON CONFLICT (writer) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms";
inline constexpr char kDropWriter[] = "DELETE FROM writers WHERE writer = $1";
inline constexpr char kIsPrimary[] = "SELECT NOT pg_is_in_recovery()";
inline constexpr char kSyncStandbyNamed[] =
    "SELECT current_setting('synchronous_standby_names') <> ''";

inline constexpr char kLockWallet[] = "SELECT pg_advisory_xact_lock($1::int4, $2::int4)";
inline constexpr char kLockKekShared[] = "SELECT pg_advisory_xact_lock_shared($1::int4, 0)";
inline constexpr char kLockKekExclusive[] = "SELECT pg_advisory_xact_lock($1::int4, 0)";

inline constexpr char kInsertEvent[] =
    "INSERT INTO events (source, idempotency_key, event_name, message_id, event_time, "
    "event_time_ms, wallet_id, origin, received_at_ms, materials_state, failure_reason, kek_id, "
    "kek_version, wrapped_dek, payload) "
    "VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8, $9::bigint, $10, $11, $12, $13::bigint, "
    "$14, $15) ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING id";
// The batch's fast path (writer.cpp: fast_batch): plain events, one statement
// for the batch (bind_events: a column per array, in the order the rows are
// inserted in). Rows: source, idempotency key and new id of each inserted
// (none for a key stored already, or twice in the batch: its first).
inline constexpr char kInsertPlainEvents[] =
    "INSERT INTO events (source, idempotency_key, event_name, message_id, event_time, "
    "event_time_ms, wallet_id, origin, received_at_ms, materials_state, kek_id, kek_version, "
    "wrapped_dek, payload) "
    "SELECT source, key, name, message, at, at_ms, wallet, origin, received, 'none', kek, "
    "version, dek, payload FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::bigint[], "
    "$12::bytea[], $13::bytea[]) WITH ORDINALITY AS u(source, key, name, message, at, at_ms, "
    "wallet, origin, received, kek, version, dek, payload, i) ORDER BY i "
    "ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING source, idempotency_key, id";
inline constexpr char kFindExisting[] =
    "SELECT id, materials_state, origin FROM events WHERE source = $1 AND idempotency_key = $2";
// A history copy that the signed delivery of its key replaces.
inline constexpr char kDeleteHistoryCopy[] =
    "DELETE FROM events WHERE id = $1::bigint AND origin = 'history'";

inline constexpr char kTombstoneTime[] =
    "SELECT revoked_at_ms FROM tombstones WHERE source = $1 AND wallet_id = $2";
inline constexpr char kCurrentMaterials[] =
    "SELECT created_at_ms, event_id FROM materials WHERE source = $1 AND wallet_id = $2";
inline constexpr char kZeroMaterials[] =
    "UPDATE materials SET wrapped_dek = decode(repeat('00', length(wrapped_dek)), 'hex'), "
    "share = decode(repeat('00', length(share)), 'hex'), "
    "api_key = decode(repeat('00', length(api_key)), 'hex') "
    "WHERE source = $1 AND wallet_id = $2 AND created_at_ms <= $3::bigint";
inline constexpr char kDeleteMaterials[] =
    "DELETE FROM materials WHERE source = $1 AND wallet_id = $2 AND created_at_ms <= $3::bigint";
inline constexpr char kUpsertMaterials[] =
    "INSERT INTO materials (source, wallet_id, user_id, chain, share_set_id, event_id, "
    "created_at, created_at_ms, kek_id, kek_version, wrapped_dek, share, api_key) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9, $10::bigint, $11, $12, $13) "
    "ON CONFLICT (source, wallet_id) DO UPDATE SET user_id = excluded.user_id, "
    "chain = excluded.chain, share_set_id = excluded.share_set_id, "
    "event_id = excluded.event_id, created_at = excluded.created_at, "
    "created_at_ms = excluded.created_at_ms, kek_id = excluded.kek_id, "
    "kek_version = excluded.kek_version, wrapped_dek = excluded.wrapped_dek, "
    "share = excluded.share, api_key = excluded.api_key";
inline constexpr char kUpsertTombstone[] =
    "INSERT INTO tombstones (source, wallet_id, revoked_at_ms, revoked_at, event_id) "
    "VALUES ($1, $2, $3::bigint, $4, $5) "
    "ON CONFLICT (source, wallet_id) DO UPDATE SET revoked_at_ms = excluded.revoked_at_ms, "
    "revoked_at = excluded.revoked_at, event_id = excluded.event_id "
    "WHERE excluded.revoked_at_ms > tombstones.revoked_at_ms";

#define HOOKVAULT_PG_ZERO_PAYLOAD                                              \
  "UPDATE events SET payload = decode(repeat('00', length(payload)), 'hex'), " \
  "wrapped_dek = decode(repeat('00', length(wrapped_dek)), 'hex') "
#define HOOKVAULT_PG_REDACT \
  "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
// A revocation at $3: the wallet's delegations at or before it.
#define HOOKVAULT_PG_REVOKED                                              \
  "WHERE source = $1 AND wallet_id = $2 AND event_time_ms <= $3::bigint " \
  "AND event_name = 'wallet.delegation.created' "
// A delegation stored at ($3 time, $4 event id): the wallet's older ones.
#define HOOKVAULT_PG_SUPERSEDED                                                        \
  "WHERE source = $1 AND wallet_id = $2 AND event_name = 'wallet.delegation.created' " \
  "AND (event_time_ms < $3::bigint OR (event_time_ms = $3::bigint "                    \
  "AND idempotency_key COLLATE \"C\" < $4 COLLATE \"C\")) "

inline constexpr char kZeroRevokedPayloads[] =
    HOOKVAULT_PG_ZERO_PAYLOAD HOOKVAULT_PG_REVOKED "AND payload IS NOT NULL";
inline constexpr char kRedactRevokedPayloads[] =
    HOOKVAULT_PG_REDACT HOOKVAULT_PG_REVOKED "AND payload IS NOT NULL";
inline constexpr char kSettleRevokedFailures[] =
    "UPDATE events SET materials_state = 'revoked', failure_reason = NULL " HOOKVAULT_PG_REVOKED
    "AND materials_state = 'decrypt_failed'";
inline constexpr char kZeroSuperseded[] =
    HOOKVAULT_PG_ZERO_PAYLOAD HOOKVAULT_PG_SUPERSEDED "AND payload IS NOT NULL";
inline constexpr char kRedactSuperseded[] =
    HOOKVAULT_PG_REDACT HOOKVAULT_PG_SUPERSEDED "AND payload IS NOT NULL";
inline constexpr char kSettleSuperseded[] =
    "UPDATE events SET materials_state = 'superseded', failure_reason = "
    "NULL " HOOKVAULT_PG_SUPERSEDED "AND materials_state = 'decrypt_failed'";
inline constexpr char kZeroEventPayload[] =
    HOOKVAULT_PG_ZERO_PAYLOAD "WHERE id = $1::bigint AND payload IS NOT NULL";
inline constexpr char kRedactEventPayload[] = HOOKVAULT_PG_REDACT "WHERE id = $1::bigint";

#undef HOOKVAULT_PG_ZERO_PAYLOAD
#undef HOOKVAULT_PG_REDACT
#undef HOOKVAULT_PG_REVOKED
#undef HOOKVAULT_PG_SUPERSEDED

// Retention: the oldest payloads received before $1 (not of delegations
// waiting for `reprocess`), at most $2, zero-overwritten; their ids. Rows
// another writer holds are left for the next pass.
inline constexpr char kZeroExpiredPayloads[] =
    "UPDATE events SET payload = decode(repeat('00', length(payload)), 'hex'), "
    "wrapped_dek = decode(repeat('00', length(wrapped_dek)), 'hex') "
    "WHERE id IN (SELECT id FROM events WHERE payload IS NOT NULL AND received_at_ms < $1::bigint "
    "AND materials_state <> 'decrypt_failed' ORDER BY received_at_ms LIMIT $2::bigint "
    "FOR UPDATE SKIP LOCKED) RETURNING id";
// $1: the ids, as an array literal ("{1,2,3}").
inline constexpr char kRedactPayloads[] =
    "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
    "WHERE id = ANY($1::bigint[])";
inline constexpr std::int64_t kPurgeBatch = 500;

// The row a resolution settles, locked for the transaction.
inline constexpr char kPendingEvent[] =
    "SELECT source, idempotency_key, wallet_id, event_time, event_time_ms, materials_state "
    "FROM events WHERE id = $1::bigint";
inline constexpr char kPendingEventForUpdate[] =
    "SELECT source, idempotency_key, wallet_id, event_time, event_time_ms, materials_state "
    "FROM events WHERE id = $1::bigint FOR UPDATE";
inline constexpr char kSetFailureReason[] =
    "UPDATE events SET failure_reason = $2 WHERE id = $1::bigint "
    "AND materials_state = 'decrypt_failed'";
inline constexpr char kSettleEvent[] =
    "UPDATE events SET materials_state = $2, failure_reason = NULL WHERE id = $1::bigint";

// --- sequences (the SQLite backend's sequences.hpp, RULES) -------------------
inline constexpr char kAdvanceInOrder[] =
    "UPDATE sequences SET contiguous = $3::bigint, highest = $3::bigint "
    "WHERE source = $1 AND subscription_id = $2 AND contiguous = highest "
    "AND highest = $3::bigint - 1";
// Several subscriptions' rows ($1 sources, $2 subscription ids, as arrays),
// made when missing (contiguous = highest = 0: nothing stored yet) and
// locked, one row after the other in one order (source, subscription: the
// same in every instance), whether it is made or was there: two writers
// wait for each other instead of deadlocking. The DO UPDATE that changes
// nothing (WHERE false) locks an existing row without writing it.
inline constexpr char kLockSequences[] =
    "INSERT INTO sequences (source, subscription_id, contiguous, highest) "
    "SELECT source, sub, 0, 0 FROM unnest($1::text[], $2::text[]) AS k(source, sub) "
    "ORDER BY source COLLATE \"C\", sub COLLATE \"C\" "
    "ON CONFLICT (source, subscription_id) DO UPDATE SET contiguous = sequences.contiguous "
    "WHERE false";
// The rows kLockSequences locked (a statement of its own after it: it reads
// what the lock holders committed).
inline constexpr char kReadLockedSequences[] =
    "SELECT s.source, s.subscription_id, s.contiguous, s.highest FROM sequences s "
    "JOIN unnest($1::text[], $2::text[]) AS k(source, sub) "
    "ON s.source = k.source AND s.subscription_id = k.sub";
// For each subscription k ($1 sources, $2 ids, $3 floors, as arrays), its
// missing ranges that end at or above its floor (sequence_fold.hpp:
// SequenceView): the one that starts at or below the floor when it reaches
// it (the caller drops it otherwise), then the first $4 that start above.
// Columns: k's position in the arrays (from 1), first, last, detected_at_ms.
inline constexpr char kGapsFrom[] =
    "SELECT k.i, g.first, g.last, g.detected_at_ms "
    "FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS k(source, sub, floor, i) "
    "CROSS JOIN LATERAL ("
    "(SELECT first, last, detected_at_ms FROM sequence_gaps "
    "WHERE source = k.source AND subscription_id = k.sub AND first <= k.floor "
    "ORDER BY first DESC LIMIT 1) UNION ALL "
    "(SELECT first, last, detected_at_ms FROM sequence_gaps "
    "WHERE source = k.source AND subscription_id = k.sub AND first > k.floor "
    "ORDER BY first LIMIT $4::bigint)) g";
// What folds changed (sequence_fold.hpp: SequenceWrites), a statement per
// kind for any number of subscriptions, with arrays: ranges deleted ($1
// sources, $2 ids, $3 firsts), ranges inserted (and $4 lasts, $5 detection
// times), rows set ($3 contiguous, $4 highest).
inline constexpr char kDeleteGaps[] =
    "DELETE FROM sequence_gaps g USING unnest($1::text[], $2::text[], $3::bigint[]) "
    "AS d(source, sub, first) "
    "WHERE g.source = d.source AND g.subscription_id = d.sub AND g.first = d.first";
inline constexpr char kInsertGaps[] =
    "INSERT INTO sequence_gaps (source, subscription_id, first, last, detected_at_ms) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])";
inline constexpr char kPutSequences[] =
    "UPDATE sequences s SET contiguous = v.contiguous, highest = v.highest "
    "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) "
    "AS v(source, sub, contiguous, highest) "
    "WHERE s.source = v.source AND s.subscription_id = v.sub";
inline constexpr char kReadSequencesAll[] =
    "SELECT source, subscription_id, contiguous, highest FROM sequences WHERE highest > 0 "
    "ORDER BY source COLLATE \"C\", subscription_id COLLATE \"C\"";
inline constexpr char kReadSequencesOf[] =
    "SELECT source, subscription_id, contiguous, highest FROM sequences "
    "WHERE source = $1 AND highest > 0 ORDER BY subscription_id COLLATE \"C\"";
inline constexpr char kReadGaps[] =
    "SELECT first, last, detected_at_ms FROM sequence_gaps "
    "WHERE source = $1 AND subscription_id = $2 ORDER BY first";

// --- the audit log (schema.hpp, THE AUDIT LOG) --------------------------------
// The audit key: meta rows 'audit_key' (hex of the wrap), 'audit_key_kek_id',
// 'audit_key_kek_version', as on SQLite.
inline constexpr char kReadAuditKey[] =
    "SELECT (SELECT value FROM meta WHERE key = 'audit_key'), "
    "(SELECT value FROM meta WHERE key = 'audit_key_kek_id'), "
    "(SELECT value FROM meta WHERE key = 'audit_key_kek_version')";
inline constexpr char kPutAuditKey[] =
    "INSERT INTO meta (key, value) VALUES "
    "('audit_key', $1), ('audit_key_kek_id', $2), ('audit_key_kek_version', $3)";
inline constexpr char kRewrapAuditKey[] =
    "UPDATE meta SET value = CASE key WHEN 'audit_key' THEN $1 ELSE $2 END "
    "WHERE key IN ('audit_key', 'audit_key_kek_version') "
    "AND (SELECT value FROM meta WHERE key = 'audit_key') = $3 "
    "AND (SELECT value FROM meta WHERE key = 'audit_key_kek_version') = $4";
inline constexpr char kPutAuditHead[] =
    "INSERT INTO audit_head (one, seq, mac, tag) VALUES (true, $1::bigint, $2, $3)";
inline constexpr char kLockAuditHead[] = "SELECT seq, mac, tag FROM audit_head FOR UPDATE";
inline constexpr char kReadAuditHead[] = "SELECT seq, mac, tag FROM audit_head";
inline constexpr char kMoveAuditHead[] =
    "UPDATE audit_head SET seq = $1::bigint, mac = $2, tag = $3";
inline constexpr char kInsertAudit[] =
    "INSERT INTO audit (seq, time_ms, actor, action, subject, outcome, mac) "
    "VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6, $7)";
inline constexpr char kReadAuditAfter[] =
    "SELECT seq, time_ms, actor, action, subject, outcome, mac FROM audit "
    "WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint";
inline constexpr char kCountAudit[] = "SELECT count(*) FROM audit";

// --- reads ---------------------------------------------------------------------
#define HOOKVAULT_PG_META                                                                   \
  "SELECT id, source, idempotency_key, event_name, message_id, event_time, wallet_id, "     \
  "received_at_ms, origin, materials_state, coalesce(failure_reason, ''), payload IS NULL " \
  "FROM events "
inline constexpr char kReadFindEvent[] =
    "SELECT id FROM events WHERE source = $1 AND idempotency_key = $2";
inline constexpr char kReadEventTxid[] = "SELECT txid::text FROM events WHERE id = $1::bigint";
inline constexpr char kReadEventMeta[] = HOOKVAULT_PG_META "WHERE id = $1::bigint";
inline constexpr char kReadDecryptFailures[] =
    HOOKVAULT_PG_META "WHERE materials_state = 'decrypt_failed' ORDER BY id";
#undef HOOKVAULT_PG_META
inline constexpr char kReadCountPrefix[] =
    "SELECT count(*) FROM events WHERE source = $1 AND starts_with(idempotency_key, $2)";
inline constexpr char kReadLatestEventTime[] =
    "SELECT max(event_time_ms) FROM events WHERE source = $1 AND event_time_ms > 0 "
    "AND origin = 'signature'";
inline constexpr char kReadPayload[] =
    "SELECT source, idempotency_key, kek_id, kek_version, wrapped_dek, payload FROM events "
    "WHERE id = $1::bigint";
inline constexpr char kReadMaterials[] =
    "SELECT user_id, chain, share_set_id, event_id, created_at, kek_id, kek_version, "
    "wrapped_dek, share, api_key FROM materials WHERE source = $1 AND wallet_id = $2";

// --- KEK rotation and registrations -------------------------------------------
inline constexpr char kReadKekUsage[] =
    "SELECT kek_id, kek_version, sum(events)::bigint, sum(materials)::bigint FROM ("
    "SELECT kek_id, kek_version, count(*) AS events, 0 AS materials FROM events "
    "WHERE kek_id IS NOT NULL GROUP BY kek_id, kek_version "
    "UNION ALL "
    "SELECT kek_id, kek_version, 0, count(*) FROM materials GROUP BY kek_id, kek_version) u "
    "GROUP BY kek_id, kek_version ORDER BY kek_id COLLATE \"C\", kek_version";
// kek_refs(): the next (kek_id, kek_version) after $1, $2 in index order
// (events_by_kek, materials_by_kek), one index probe each.
inline constexpr char kNextEventKekRef[] =
    "SELECT kek_id, kek_version FROM events WHERE (kek_id, kek_version) > ($1, $2::bigint) "
    "ORDER BY kek_id, kek_version LIMIT 1";
inline constexpr char kNextMaterialsKekRef[] =
    "SELECT kek_id, kek_version FROM materials WHERE (kek_id, kek_version) > ($1, $2::bigint) "
    "ORDER BY kek_id, kek_version LIMIT 1";
inline constexpr char kReadOldEvents[] =
    "SELECT id, source, idempotency_key, kek_version, wrapped_dek FROM events "
    "WHERE kek_id = $1 AND kek_version < $2::bigint LIMIT $3::bigint";
inline constexpr char kReadOldMaterials[] =
    "SELECT source, wallet_id, event_id, kek_version, wrapped_dek FROM materials "
    "WHERE kek_id = $1 AND kek_version < $2::bigint LIMIT $3::bigint";
inline constexpr char kReadOldCount[] =
    "SELECT (SELECT count(*) FROM events WHERE kek_id = $1 AND kek_version < $2::bigint) + "
    "(SELECT count(*) FROM materials WHERE kek_id = $1 AND kek_version < $2::bigint)";
inline constexpr char kRewrapEvent[] =
    "UPDATE events SET kek_version = $1::bigint, wrapped_dek = $2 "
    "WHERE kek_id = $3 AND kek_version = $4::bigint AND wrapped_dek = $5 AND id = $6::bigint";
inline constexpr char kRewrapMaterials[] =
    "UPDATE materials SET kek_version = $1::bigint, wrapped_dek = $2 "
    "WHERE kek_id = $3 AND kek_version = $4::bigint AND wrapped_dek = $5 "
    "AND source = $6 AND wallet_id = $7 AND event_id = $8";
inline constexpr char kRetiredVersions[] = "SELECT kek_version FROM kek_retired WHERE kek_id = $1";
inline constexpr char kPutKekLease[] =
    "INSERT INTO kek_leases (holder, description, kek_id, kek_version, heartbeat_ms, expires_ms) "
    "VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::bigint) "
    "ON CONFLICT (holder) DO UPDATE SET description = excluded.description, "
    "kek_id = excluded.kek_id, kek_version = excluded.kek_version, "
    "heartbeat_ms = excluded.heartbeat_ms, expires_ms = excluded.expires_ms";
inline constexpr char kDropKekLease[] = "DELETE FROM kek_leases WHERE holder = $1";
inline constexpr char kReadKekLeases[] =
    "SELECT holder, description, kek_id, kek_version, heartbeat_ms, expires_ms FROM kek_leases "
    "WHERE holder <> $1 AND expires_ms > $2::bigint "
    "ORDER BY kek_id COLLATE \"C\", kek_version, holder COLLATE \"C\"";
inline constexpr char kLiveLeasesOf[] =
    "SELECT holder, description, kek_id, kek_version, heartbeat_ms, expires_ms FROM kek_leases "
    "WHERE expires_ms > $1::bigint AND kek_id = $2 AND kek_version = $3::bigint "
    "ORDER BY holder COLLATE \"C\"";
inline constexpr char kUsageOf[] =
    "SELECT (SELECT count(*) FROM events WHERE kek_id = $1 AND kek_version = $2::bigint), "
    "(SELECT count(*) FROM materials WHERE kek_id = $1 AND kek_version = $2::bigint)";
inline constexpr char kMarkRetired[] =
    "INSERT INTO kek_retired (kek_id, kek_version, retired_ms) VALUES ($1, $2::bigint, $3::bigint) "
    "ON CONFLICT (kek_id, kek_version) DO NOTHING";

}  // namespace hookvault::store::pg::sql
