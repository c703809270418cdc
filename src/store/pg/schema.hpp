// The hookvault database on PostgreSQL 15 (backend = "postgresql"): several
// hookvault instances, and their CLI commands, share one database. Schema
// version 1 of this backend.
//
// The promises are the Store contract's (include/hookvault/store.hpp); this
// page says how each holds across instances. Envelope encryption, associated
// data and the audit record's MAC are exactly the SQLite backend's
// (src/store/sqlite/schema.hpp, src/store/envelope.hpp): only the tables'
// SQL dialect and the concurrency control differ.
//
// SESSIONS
//   Every connection sets, at connect:
//     synchronous_commit = on          a COMMIT returns once it is flushed
//                                      locally and, when the server names
//                                      synchronous standbys
//                                      (synchronous_standby_names), once one
//                                      of them flushed it too
//     default_transaction_isolation = 'read committed'
//     lock_timeout, statement_timeout = 0 for the writer: hookvault never
//                                      cancels a COMMIT itself (a cancelled
//                                      wait for a synchronous standby would
//                                      leave the commit local only: see
//                                      WRITES)
//     idle_in_transaction_session_timeout = '60s'
//                                      a process of ours stopped inside a
//                                      transaction (SIGSTOP, a debugger) loses
//                                      its session after a minute instead of
//                                      holding the events feed (THE EVENTS
//                                      FEED: it waits for the oldest running
//                                      transaction) and its row locks for ever
//   The password travels as libpq's password keyword from locked memory,
//   never in the conninfo string.
//
// SCHEMA CHANGES (ensure_schema)
//   One transaction: it takes the advisory lock kSchemaLockClass, creates
//   what is missing (CREATE ... IF NOT EXISTS), checks schema_version in meta
//   (setting it on a new database, refusing any other version), runs what the
//   store adds (the audit key of a new database), and commits. DDL is
//   transactional in PostgreSQL, so a failure leaves no half schema, and
//   instances that start together apply it once, in turn.
//
// WRITES (group commit)
//   Each instance's writer threads take queued requests in batches; a batch
//   is one transaction sent as one libpq pipeline (BEGIN, the statements,
//   COMMIT), so a batch costs few round trips whatever its size. A request
//   that needs a decision on what is stored (a delegation, a revocation, a
//   Nodit sequence out of order) reads inside the same transaction first.
//   - Idempotency: INSERT ... ON CONFLICT (source, idempotency_key) DO
//     NOTHING against the UNIQUE constraint decides; never a check followed
//     by an insert. A concurrent insert of the same key in another instance
//     waits for that transaction's outcome.
//   - A duplicate confirms a row another transaction committed. Its own
//     transaction writes (the writer's row in writers, below), so its COMMIT
//     waits for the synchronous standby like any write, and the standby then
//     holds everything up to that commit, the confirmed row included: a
//     duplicate's 200 never confirms a row that is only on the primary.
//   - A COMMIT whose wait for the synchronous standby was cancelled (by an
//     operator's pg_cancel_backend, or a server shutdown) is reported by the
//     server as success plus a WARNING; the writer treats any WARNING on its
//     COMMIT as "not durable": every request of the batch gets
//     Errc::store_unavailable (503), and the provider's retry is answered by
//     the idempotency key. A COMMIT whose outcome is unknown (the connection
//     was lost) is answered the same way.
//   - require_synchronous_standby: the batch reads synchronous_standby_names
//     before COMMIT and refuses to commit while it is empty (a primary that
//     waits for no standby).
//   - Per wallet, delegations and revocations from every instance are
//     serialised by pg_advisory_xact_lock(kWalletLockClass, hash of source
//     and wallet): the decisions of the ordering rules (schema.hpp of the
//     SQLite backend, ORDERING RULES) read the tombstone and the materials
//     under it.
//   - Per Nodit subscription, the sequences row is locked by the
//     transaction that advances it (an UPDATE for the next number, or
//     sql::kLockSequences: the rows of a batch made when missing and locked
//     in one order), then read with its missing ranges, and written back
//     once (sequences.hpp).
//   - A deadlock or serialization failure between instances rolls the batch
//     back; the writer runs it again, then request by request.
//
// THE EVENTS FEED (list_events)
//   ids come from a sequence, so they are unique but may commit out of order:
//   a reader of `id > after` can pass an id whose transaction commits later
//   and never see it. Each row therefore records the id of the transaction
//   that inserted it (txid, pg_current_xact_id()), and the feed is read in
//   (txid, id) order up to, not including, the oldest transaction still
//   running (pg_snapshot_xmin(pg_current_snapshot())): every transaction
//   below that is finished, so no row can appear behind the cursor later.
//   The cursor token is "<txid>.<id>"; a long transaction anywhere in the
//   cluster delays the feed, never makes it skip.
//
// THE AUDIT LOG
//   One chain for every instance: an append locks audit_head (SELECT ... FOR
//   UPDATE), checks its tag, inserts seq + 1 and moves the head, inside the
//   request's transaction, so appends of every instance and command
//   serialise on that row and a rolled-back request leaves no record.
//
// KEK REGISTRATIONS AND RETIREMENT (src/store/kek_registry.hpp, RULES)
//   The same tables and rules as SQLite's. The order that SQLite's single
//   write lock gives is kept by an advisory lock: a write transaction that
//   stores wrapped keys takes kKekLockClass shared before its check of
//   kek_retired; `keys retire` takes it exclusively before it checks the
//   leases and the keys and marks the version.
//
// LEASES (try_lease: the backfiller, `keys rewrap`)
//   A session advisory lock (kLeaseLockClass, hash of the name) held on a
//   connection of its own; held() turns false once that connection is lost,
//   which the lease notices within its ping interval.
//
// DESTRUCTION (revocation, supersede, retention)
//   Columns are overwritten with zeros, then set to NULL, then the row
//   deleted where the rules delete it, as on SQLite. PostgreSQL keeps the old
//   row versions until VACUUM reclaims them, and its WAL, archives, base
//   backups and standbys keep them longer: docs/security.md, "Revocation on
//   PostgreSQL", says what is destroyed when. The daemon runs no VACUUM of
//   its own (VACUUM would not zero the space it frees either): KEK rotation,
//   rewrap and retirement are what make old row versions unreadable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "hookvault/error.hpp"
#include "store/pg/libpq.hpp"

namespace hookvault::store::pg::schema {

inline constexpr char kVersionText[] = "1";

// Advisory lock keys (pg_advisory_lock(int4, int4) classes): the first
// argument names the use, the second the object.
inline constexpr std::int32_t kSchemaLockClass = 0x68760001;  // 'hv' 1: schema changes
inline constexpr std::int32_t kWalletLockClass = 0x68760002;  // per (source, wallet)
inline constexpr std::int32_t kKekLockClass = 0x68760003;     // retire vs. writers
inline constexpr std::int32_t kLeaseLockClass = 0x68760004;   // try_lease(name)

// Run once on every connection (libpq.hpp, Connection::open).
inline constexpr const char* kSession[] = {
    "SET synchronous_commit = on",       "SET default_transaction_isolation = 'read committed'",
    "SET statement_timeout = 0",         "SET lock_timeout = 0",
    "SET client_min_messages = warning", "SET idle_in_transaction_session_timeout = '60s'",
};

// And on the writer's connection: its statements are the same few, run
// thousands of times a second, each an insert or a lookup by key whose plan
// does not depend on the values: planned once, not at every execution (the
// default would plan the statements with array parameters each time).
inline constexpr const char* kWriterSession[] = {
    "SET plan_cache_mode = force_generic_plan",
};

// The tables and indexes, one statement each (the extended protocol runs one
// statement at a time), in dependency order.
inline constexpr const char* kCreate[] = {
    R"sql(CREATE TABLE IF NOT EXISTS meta (
  key   text PRIMARY KEY,
  value text NOT NULL
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS events (
  id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  txid            xid8    NOT NULL DEFAULT pg_current_xact_id(),
  source          text    NOT NULL,
  idempotency_key text    NOT NULL,
  event_name      text    NOT NULL,
  message_id      text    NOT NULL,
  event_time      text    NOT NULL,
  event_time_ms   bigint  NOT NULL,
  wallet_id       text    NOT NULL,
  origin          text    NOT NULL CHECK (origin IN ('signature', 'history')),
  received_at_ms  bigint  NOT NULL,
  materials_state text    NOT NULL CHECK (materials_state IN
                            ('none', 'stored', 'superseded', 'revoked', 'decrypt_failed')),
  failure_reason  text,
  kek_id          text,
  kek_version     bigint,
  wrapped_dek     bytea,
  payload         bytea,
  UNIQUE (source, idempotency_key),
  CHECK ((failure_reason IS NOT NULL) = (materials_state = 'decrypt_failed')),
  CHECK ((payload IS NULL) = (wrapped_dek IS NULL)
     AND (payload IS NULL) = (kek_id IS NULL)
     AND (payload IS NULL) = (kek_version IS NULL))
))sql",
    R"sql(CREATE INDEX IF NOT EXISTS events_feed ON events (txid, id))sql",
    R"sql(CREATE INDEX IF NOT EXISTS events_feed_by_source ON events (source, txid, id))sql",
    R"sql(CREATE INDEX IF NOT EXISTS events_by_wallet ON events (source, wallet_id, event_time_ms))sql",
    R"sql(CREATE INDEX IF NOT EXISTS events_decrypt_failed ON events (id)
  WHERE materials_state = 'decrypt_failed')sql",
    R"sql(CREATE INDEX IF NOT EXISTS events_by_kek ON events (kek_id, kek_version))sql",
    R"sql(CREATE INDEX IF NOT EXISTS events_payload_by_received ON events (received_at_ms)
  WHERE payload IS NOT NULL)sql",
    R"sql(CREATE TABLE IF NOT EXISTS materials (
  source        text   NOT NULL,
  wallet_id     text   NOT NULL,
  user_id       text   NOT NULL,
  chain         text   NOT NULL,
  share_set_id  text,
  event_id      text   NOT NULL,
  created_at    text   NOT NULL,
  created_at_ms bigint NOT NULL,
  kek_id        text   NOT NULL,
  kek_version   bigint NOT NULL,
  wrapped_dek   bytea  NOT NULL,
  share         bytea  NOT NULL,
  api_key       bytea  NOT NULL,
  PRIMARY KEY (source, wallet_id),
  FOREIGN KEY (source, event_id) REFERENCES events (source, idempotency_key)
))sql",
    R"sql(CREATE INDEX IF NOT EXISTS materials_by_kek ON materials (kek_id, kek_version))sql",
    R"sql(CREATE TABLE IF NOT EXISTS tombstones (
  source        text   NOT NULL,
  wallet_id     text   NOT NULL,
  revoked_at_ms bigint NOT NULL,
  revoked_at    text   NOT NULL,
  event_id      text   NOT NULL,
  PRIMARY KEY (source, wallet_id),
  FOREIGN KEY (source, event_id) REFERENCES events (source, idempotency_key)
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS sequences (
  source          text   NOT NULL,
  subscription_id text   NOT NULL,
  contiguous      bigint NOT NULL,
  highest         bigint NOT NULL,
  PRIMARY KEY (source, subscription_id)
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS sequence_gaps (
  source          text   NOT NULL,
  subscription_id text   NOT NULL,
  first           bigint NOT NULL,
  last            bigint NOT NULL,
  detected_at_ms  bigint NOT NULL,
  PRIMARY KEY (source, subscription_id, first)
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS audit (
  seq     bigint PRIMARY KEY CHECK (seq >= 1),
  time_ms bigint NOT NULL,
  actor   text   NOT NULL,
  action  text   NOT NULL,
  subject text   NOT NULL,
  outcome text   NOT NULL,
  mac     bytea  NOT NULL CHECK (length(mac) = 32)
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS audit_head (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  seq   bigint  NOT NULL,
  mac   bytea   NOT NULL,
  tag   bytea   NOT NULL
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS kek_leases (
  holder       text   PRIMARY KEY,
  description  text   NOT NULL,
  kek_id       text   NOT NULL,
  kek_version  bigint NOT NULL CHECK (kek_version >= 1),
  heartbeat_ms bigint NOT NULL,
  expires_ms   bigint NOT NULL
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS kek_retired (
  kek_id      text   NOT NULL,
  kek_version bigint NOT NULL CHECK (kek_version >= 1),
  retired_ms  bigint NOT NULL,
  PRIMARY KEY (kek_id, kek_version)
))sql",
    R"sql(CREATE TABLE IF NOT EXISTS writers (
  writer       text   PRIMARY KEY,
  heartbeat_ms bigint NOT NULL
))sql",
};

// The schema version, when the database has one ('' for a new database).
inline constexpr char kSelectVersion[] =
    "SELECT coalesce((SELECT value FROM meta WHERE key = 'schema_version'), '')";
// $1: kVersionText.
inline constexpr char kInsertVersion[] =
    "INSERT INTO meta (key, value) VALUES ('schema_version', $1)";
// Schema changes of every instance and command, one at a time ($1: kSchemaLockClass).
inline constexpr char kLockSchema[] = "SELECT pg_advisory_xact_lock($1::int4, 0)";

// What the store adds inside the schema transaction: `fresh` is true for the
// database's first schema (the store draws its audit key then). It may queue
// statements and read their results, and must not commit.
using WithinSchema = std::function<Result<void>(Connection&, bool fresh)>;

// Creates or checks the schema (SCHEMA CHANGES above). True when this call
// created it. Errc::store_unavailable with a sentence in `why` when the
// database holds another schema version or refuses (no privilege to create
// tables, say); the connection's error otherwise. Never leaves a transaction
// open.
Result<bool> ensure_schema(Connection& c, const WithinSchema& within, std::string* why,
                           std::optional<Clock::time_point> deadline = std::nullopt);

}  // namespace hookvault::store::pg::schema
