// The envelope-encrypted event and materials store (SQLite).
//
// Contract
// - Every verified event is stored once under the permanent idempotency key
//   (source, idempotency_key): a UNIQUE constraint, not a time window. Writing
//   the same key again changes nothing and reports `duplicate` with the id and
//   materials state of the first write. One exception: a copy fetched from a
//   history API (Origin::history, authenticated only by its TLS connection)
//   gives way to the signed delivery of its key (Origin::signature) when that
//   arrives later: the copy's row is deleted and the signed event stored as a
//   new row, with a new id (WriteResult::replaced_history), so whoever read
//   the copy from the events feed reads the signed event too.
// - Payloads and materials are sealed with a fresh per-record data key (DEK,
//   aead.hpp) wrapped by the KEK (kek.hpp); the KEK id and version are stored
//   beside each wrapped key; associated data binds each ciphertext to its row
//   (store, table, source, key, field), so ciphertexts cannot be swapped.
// - Materials are keyed by (source, wallet_id). A delegation replaces the stored
//   one only when its event time is newer; the payloads of the wallet's older
//   delegation events (each holds a share, RSA-encrypted to a key on this
//   host) are then redacted, as a revocation redacts them, and a delegation
//   older than the stored one is stored redacted ('superseded'). A revocation
//   at time T deletes materials created at or before T (columns overwritten
//   before the delete, secure_delete=ON), redacts the payloads of that
//   wallet's delegation events at or before T, and keeps a tombstone holding
//   the newest T, so a late or replayed older `created` never brings
//   materials back.
// - Group commit: one writer thread owns the write connection; submit() queues a
//   request; the writer drains the queue into one transaction (one SAVEPOINT per
//   request, so one failing request does not fail the others) and commits;
//   the syncer thread then syncs the WAL, and only then calls each request's
//   completion (src/store/syncer.hpp), while the writer already runs the next
//   batch. When the commit fails, every request of the batch completes with
//   Errc::store_unavailable and nothing of it is stored. When the sync fails,
//   every request of the batches it was to cover completes with
//   Errc::store_unavailable (their rows may be stored: they were committed),
//   and so does every later write, until the store is opened again.
// - Ids are assigned in commit order and never reused (AUTOINCREMENT), so
//   `list_events(after = last seen id)` reads every event once, in arrival order.
// - The audit log (audit.hpp) lives in the same file: audit() appends a record
//   through the same group-commit writer, every applied revocation appends
//   its own 'revoke' record (actor "source:<source>", subject the wallet id)
//   in the revocation's SAVEPOINT, so the two commit or fail together, and so
//   does every resolve_decrypt_failure() with its 'reprocess' record. The
//   audit key is created on the first open, wrapped by the KEK; a store opened
//   with another KEK opens, but its audit appends (hence its revocations and
//   resolutions) and verify_audit() fail with Errc::kek_unavailable or
//   Errc::store_corrupt.
// - Crypto-shredding: a commit that zero-overwrote ciphertext (a revocation,
//   a delegation replacing a wallet's materials, a resolution that found the
//   wallet revoked) is followed by a WAL checkpoint (TRUNCATE) before its
//   completions run (schema.hpp, ORDERING RULES).
// - KEK rotation (kek.hpp): every wrapped key is stored with the KEK id and the
//   version wrap() reported, so records of older versions keep opening while
//   new ones use the current version. rewrap_batch() moves wrapped keys
//   (events, materials, the audit key) of older versions of this KEK to its
//   current version, a short batch at a time, without touching any payload or
//   materials ciphertext: the DEK inside stays the same. Rows are read and
//   rewrapped on the caller's thread; the writer then applies each UPDATE
//   only where the row still holds exactly the wrapped key that was read (same
//   version and bytes), in one SAVEPOINT and commit of its group, so a row the
//   daemon changed meanwhile (a newer delegation, a revocation) is left alone
//   and simply picked up by a later batch if it is still old. Each batch
//   commits on its own: an interrupted rewrap loses at most one uncommitted
//   batch and a rerun continues. The writer reads (and unwraps) the audit key
//   from the file once per write transaction and forgets it when that
//   transaction ends, so a daemon keeps appending while another process
//   rewraps it between its transactions.
// - KEK registrations (src/store/kek_registry.hpp): every open Store keeps a
//   lease row naming the KEK version it wraps new keys under (its Kek's
//   current version), renewed every `lease_heartbeat` and within a second of
//   the version changing, valid for `lease_time`, deleted on close; so every
//   process that may still wrap under a version is visible to every other,
//   through the database. retire_kek_version() marks a version retired only
//   when no live lease names it and no wrapped key uses it, and from then on
//   every write that would store a key wrapped under it is refused with
//   Errc::kek_unavailable (the provider's retry wraps under a newer version),
//   so no acknowledged record is ever stranded under a retired version.
//
// The schema is documented in src/store/schema.hpp.
//
// Thread-safety: all methods are safe from any thread. Completions run on the
// syncer thread (refusals of a closed store on the caller's, of a failed
// commit on the writer's) and must not block. Reads use their own connection(s) and never
// wait for the writer (WAL). Several processes may open the same file: SQLite's
// write lock serialises their writers (and so their audit appends).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "hookvault/audit.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

struct StoreOptions {
  std::filesystem::path path;
  // How long a write waits for another process's write lock, in all, counted
  // from its submission (time queued behind earlier batches included).
  std::chrono::milliseconds busy_timeout{5000};
  std::size_t max_batch = 256;  // requests per group commit
  // Retention: when > 0, the idle writer redacts the payloads of events
  // received longer ago than this, except delegations still decrypt_failed
  // (schema.hpp, RETENTION), every `retention_interval`, in short
  // transactions while there is a backlog.
  std::chrono::milliseconds retention{0};
  std::chrono::milliseconds retention_interval{3600000};
  // When set: the histograms hookvault_store_commit_seconds and
  // hookvault_store_batch_size, observed per committed group commit. Must
  // outlive the store.
  Metrics* metrics = nullptr;
  // WAL checkpoints (src/store/checkpointer.hpp): a thread of the store's
  // copies the WAL into the database file once it holds `checkpoint_pages`
  // pages; past `wal_limit_pages` the writer also checkpoints after a batch,
  // so the WAL restarts instead of growing.
  int checkpoint_pages = 1000;
  int wal_limit_pages = 16384;
  // KEK registration (see above): "serve", "cli", ...: the lease's
  // description is "<process_name> (pid N on HOST)".
  std::string process_name = "hookvault";
  std::chrono::milliseconds lease_heartbeat{10000};
  std::chrono::milliseconds lease_time{60000};
};

enum class Origin { signature, history };
std::string_view origin_name(Origin o) noexcept;

// What happened to a delegation's materials.
enum class MaterialsState {
  none,            // not a wallet.delegation.created event
  stored,          // materials stored (or replaced older ones)
  superseded,      // a newer delegation for the wallet is already stored (payload redacted)
  revoked,         // the wallet was revoked at or after this delegation's time
  decrypt_failed,  // kept for `hookvault reprocess`; see failure_reason
};
std::string_view materials_state_name(MaterialsState s) noexcept;
// What a resolution of a decrypt_failed event did, in words: the state's name,
// followed by ": <failure_reason>" when it is still decrypt_failed.
std::string resolution_outcome(MaterialsState state, std::string_view failure_reason);

// Nodit: a message's place in its subscription's sequence (numbers from 1,
// increasing by one per message).
struct SequencePosition {
  std::string subscription_id;
  std::uint64_t number = 0;  // 1 .. 2^63-1
};

struct NewEvent {
  std::string source;
  std::string idempotency_key;  // Dynamic: eventId
  std::string event_name;
  std::string message_id;  // empty when absent
  std::string event_time;  // as sent (ISO-8601); empty when absent
  std::int64_t event_time_ms = 0;
  std::string wallet_id;  // delegation events; empty otherwise
  Origin origin = Origin::signature;
  std::string payload;                       // the body bytes exactly as received
  std::optional<SequencePosition> sequence;  // Nodit; tracked in the same transaction
};

struct DelegationMaterials {
  std::string wallet_id;
  std::string user_id;
  std::string chain;
  std::optional<std::string> share_set_id;
  SecretBytes share;  // verbatim decrypted bytes
  SecretBytes api_key;
};

struct WriteRequest {
  NewEvent event;
  // At most one of these is set.
  std::optional<DelegationMaterials> materials;  // wallet.delegation.created, decrypted
  std::optional<std::string> decrypt_failure;    // wallet.delegation.created, failed: reason
  bool revoke = false;                           // wallet.delegation.revoked of event.wallet_id
};

struct WriteResult {
  std::int64_t id = 0;
  bool duplicate = false;
  MaterialsState materials = MaterialsState::none;
  // A signed event that took the place of a history copy of its key (see
  // the contract above); `id` is the new row's.
  bool replaced_history = false;
};

struct EventMeta {
  std::int64_t id = 0;
  std::string source;
  std::string idempotency_key;
  std::string event_name;
  std::string message_id;
  std::string event_time;
  std::string wallet_id;
  std::int64_t received_at_ms = 0;
  Origin origin = Origin::signature;
  MaterialsState materials = MaterialsState::none;
  std::string failure_reason;  // when materials == decrypt_failed
  bool payload_redacted = false;
};

struct StoredMaterials {
  std::string source;
  std::string wallet_id;
  std::string user_id;
  std::string chain;
  std::optional<std::string> share_set_id;
  std::string event_id;    // idempotency key of the delegation event
  std::string created_at;  // that event's timestamp, as sent
  SecretBytes share;
  SecretBytes api_key;
};

// Counters of the group-commit writer since open(), for metrics and tests.
// Added by the store implementation (not part of the original contract).
struct StoreStats {
  std::uint64_t commits = 0;             // group commits made durable (batches)
  std::uint64_t committed_requests = 0;  // requests completed by those commits
  std::uint64_t failed_batches = 0;      // batches completed with store_unavailable
  std::size_t largest_batch = 0;         // most requests in one committed batch
  std::uint64_t checkpoints = 0;  // WAL checkpoints run (the checkpointer's and the writer's)
  std::uint64_t checkpoint_failures = 0;  // checkpoints that failed (not counting SQLITE_BUSY)
  std::uint64_t wal_syncs = 0;  // WAL syncs before answering (one may cover several commits)
};

// Sequence tracking of one Nodit subscription (see src/store/sequences.hpp for
// the rules). `contiguous`: every number from the subscription's baseline up to
// it is stored; `gaps`: the missing ranges between `contiguous` and `highest`.
struct SequenceGap {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::int64_t detected_at_ms = 0;  // when the store first saw the range missing
  std::uint64_t size() const noexcept { return last - first + 1; }
};

struct SubscriptionSequence {
  std::string source;
  std::string subscription_id;
  std::uint64_t contiguous = 0;
  std::uint64_t highest = 0;
  std::vector<SequenceGap> gaps;
};

// How many wrapped keys one (KEK id, version) holds (kek_usage()).
struct KekUsage {
  std::string kek_id;
  std::uint32_t version = 0;
  std::uint64_t events = 0;     // events rows (redacted payloads have no key)
  std::uint64_t materials = 0;  // materials rows
  bool audit_key = false;       // the audit log's key
};

// A process that may wrap new keys under a KEK version: an open Store's
// lease (kek_leases()).
struct KekLease {
  std::string holder;       // random, one per open Store
  std::string description;  // "serve (pid 1234 on host-a)"
  std::string kek_id;
  std::uint32_t version = 0;
  std::int64_t heartbeat_ms = 0;  // Unix ms of the last renewal
  std::int64_t expires_ms = 0;    // not live from then on
};

// What retire_kek_version() found: `retired` is true when the version is now
// marked retired; otherwise `holders` (live leases naming it) and `usage`
// (wrapped keys still under it) say why not.
struct KekRetirement {
  bool retired = false;
  std::vector<KekLease> holders;
  KekUsage usage;
};

struct RewrapProgress {
  std::uint64_t rewrapped = 0;  // wrapped keys moved to the current version by this call
  std::uint64_t remaining = 0;  // keys of this KEK still under an older version afterwards
                                // (see rewrap_batch)
  std::uint32_t version = 0;    // the version they were moved to
};

struct EventQuery {
  std::optional<std::string> source;
  std::int64_t after = 0;
  std::size_t limit = 100;
};

class Store {
 public:
  using Completion = std::function<void(Result<WriteResult>)>;
  using AuditCompletion = std::function<void(Result<std::int64_t>)>;

  // Opens (creating when absent) the database, applies the schema, sets WAL,
  // synchronous=NORMAL (the syncer syncs), secure_delete=ON, proves that a
  // commit and a WAL sync succeed, and starts the writer and syncer threads.
  // Errc::store_unavailable when the file cannot be opened or written.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options,
                                             std::shared_ptr<const Kek> kek);

  ~Store();  // close()
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Group-committed write; `done` runs on the syncer thread once the commit
  // is synced.
  // After close(), completes at once with Errc::store_unavailable.
  void submit(WriteRequest request, Completion done);
  // Blocking convenience over submit(). Errc::internal when called from a
  // completion (it would wait for its own thread); so do the other blocking
  // calls (resolve_decrypt_failure, audit_sync, rewrap_batch).
  Result<WriteResult> write(WriteRequest request);

  // Settles a decrypt_failed event after `hookvault reprocess` retried it:
  // either materials (applied with the same ordering rules as a new delegation)
  // or a new failure reason. Appends the audit record {actor, "reprocess",
  // "<event_id>", clip_audit_field(resolution_outcome(state, reason))} in the
  // same SAVEPOINT: a value means both committed, an error that neither did.
  // Errc::not_found when the event is not pending; Errc::missing_field /
  // Errc::invalid_field for an empty or oversized actor; the audit append's
  // errors (see audit()).
  Result<MaterialsState> resolve_decrypt_failure(
      std::int64_t event_id, std::variant<DelegationMaterials, std::string> outcome,
      std::string actor);

  Result<std::optional<std::int64_t>> find_event(std::string_view source,
                                                 std::string_view idempotency_key) const;
  Result<std::optional<EventMeta>> event_meta(std::int64_t id) const;
  Result<std::vector<EventMeta>> list_events(const EventQuery& query) const;
  // The payload as received; nullopt when the event is unknown or redacted.
  Result<std::optional<SecretBytes>> event_payload(std::int64_t id) const;
  Result<std::vector<EventMeta>> decrypt_failures() const;
  // nullopt when the wallet has no materials (never delegated, or revoked).
  Result<std::optional<StoredMaterials>> materials(std::string_view source,
                                                   std::string_view wallet_id) const;

  // Sequence state of every subscription (of one source when given), with
  // their gaps, ordered by source and subscription id.
  Result<std::vector<SubscriptionSequence>> sequences(
      std::optional<std::string_view> source = std::nullopt) const;
  // Events of `source` whose idempotency key starts with `prefix` (e.g. Nodit
  // messages keyed by content because they had no sequence number).
  Result<std::uint64_t> count_events_with_key_prefix(std::string_view source,
                                                     std::string_view prefix) const;
  // The newest event time (ms) among the events of `source` that arrived
  // signed (Origin::signature); nullopt when none. History copies do not
  // count: their times are only the history API's word.
  Result<std::optional<std::int64_t>> latest_event_time_ms(std::string_view source) const;

  // For /readyz: false once a commit failed (for good once a WAL sync
  // failed: see Group commit above), true again once a commit wrote
  // to the file (open's probe write counts). A commit that wrote nothing (a
  // batch of duplicates) leaves it as it was. While false, the idle writer
  // retries a small probe write every second (without waiting for another
  // process's lock), so it turns true again once the fault clears, even
  // without traffic. Each change is logged, a failure with SQLite's reason.
  bool writable() const noexcept;

  // --- audit log (audit.hpp) ---
  // Appends `entry` through the group-commit writer; `done` runs on the syncer
  // thread once the COMMIT is synced, with the record's seq. Errc::missing_field /
  // Errc::invalid_field for an entry check_audit_entry refuses (empty actor,
  // action or outcome; a field over kMaxAuditFieldBytes), at once;
  // Errc::store_unavailable after close() or when the commit fails;
  // Errc::kek_unavailable / Errc::store_corrupt when the audit key does not
  // open or the chain head was altered (nothing is appended then).
  void audit(AuditEntry entry, AuditCompletion done);
  // Blocking convenience over audit(); Errc::internal from a completion.
  Result<std::int64_t> audit_sync(AuditEntry entry);
  // Records with seq > after, in seq order, at most `limit`.
  Result<std::vector<AuditRecord>> audit_records(std::int64_t after, std::size_t limit) const;
  // Walks the whole chain in seq order against one snapshot (see
  // AuditVerifyResult). A break is a result with ok = false; an error means it
  // could not be checked (Errc::kek_unavailable / Errc::store_corrupt: the
  // audit key does not open under this KEK). Holds the read connection for the
  // walk, so other reads of this Store wait meanwhile.
  Result<AuditVerifyResult> verify_audit() const;

  // --- KEK rotation (kek.hpp) ---
  // Wrapped keys per (KEK id, version), ordered by id and version; ids other
  // than this Store's KEK's appear too (they do not open here).
  Result<std::vector<KekUsage>> kek_usage() const;
  // Rewraps up to `limit` (>= 1) wrapped keys of this KEK that are under a
  // version older than the current one: events first, then materials, then
  // the audit key, each unwrapped and wrapped again with the associated data
  // of envelope.hpp (audit key: "hookvault-audit-key"). Payloads and materials
  // ciphertext are not touched. One group commit through the writer; rows
  // changed meanwhile by another writer are skipped (see above). Errors:
  // Errc::kek_unavailable / Errc::store_corrupt when a wrapped key does not
  // open (the row is named in an error log line; nothing of the batch is
  // written), Errc::store_unavailable when the commit fails. `remaining` is
  // counted after the commit when the batch came back short (fewer old keys
  // than `limit`: the end of a run), on the first call, and whenever the
  // estimate would reach 0; after other batches it is the previous count
  // minus what moved. So 0 is always counted, never estimated.
  Result<RewrapProgress> rewrap_batch(std::size_t limit);
  // Live leases of every other open Store on this database (not this one's),
  // ordered by KEK id, version and holder.
  Result<std::vector<KekLease>> kek_leases() const;
  // Marks `version` of this Store's KEK retired, in one write transaction
  // through the writer, unless a live lease names it or a wrapped key uses it
  // (see KekRetirement). Marking a version that is already marked succeeds
  // again. Errc::store_unavailable when the commit fails.
  Result<KekRetirement> retire_kek_version(std::uint32_t version);

  // Writer counters (StoreStats); committed_requests / commits is the mean
  // batch size.
  StoreStats stats() const noexcept;

  // Stops accepting, commits what is queued, stops the writer, closes.
  void close();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hookvault
