// The envelope-encrypted event and materials store: the interface every
// backend implements (SQLite: sqlite_store.hpp), and the contract each keeps.
// Pipeline, AdminApi, the Backfiller and the CLI use a Store only through
// this class; config chooses the backend (ops.hpp: open_store).
//
// Contract
// - Every verified event is stored once under the permanent idempotency key
//   (source, idempotency_key): a uniqueness rule of the database, not a time
//   window. Writing the same key again changes nothing and reports
//   `duplicate` with the row id and materials state of the first write. One
//   exception: a copy fetched from a history API (Origin::history,
//   authenticated only by its TLS connection) gives way to the signed
//   delivery of its key (Origin::signature) when that arrives later: the
//   copy's row is deleted and the signed event stored as a new row, with a
//   new row id (WriteResult::replaced_history), so whoever read the copy from
//   the events feed reads the signed event too.
// - Names: an event's row id (WriteResult::row_id, EventMeta::row_id) is the
//   store's own int64 id of its row; its idempotency key is the provider's
//   (Dynamic's eventId; Nodit's subscription and sequence number). They are
//   never the same thing.
// - Payloads and materials are sealed with a fresh per-record data key (DEK,
//   aead.hpp) wrapped by the KEK (kek.hpp); the KEK id and version are stored
//   beside each wrapped key; associated data binds each ciphertext to its row
//   (store, table, source, key, field: src/store/envelope.hpp), so
//   ciphertexts cannot be swapped. No secret byte reaches the database
//   unsealed.
// - Materials are keyed by (source, wallet_id). A delegation replaces the
//   stored one only when its event time is newer (at the same time: the larger
//   idempotency key, byte order); the payloads of the wallet's older
//   delegation events (each holds a share, RSA-encrypted to a key on this
//   host) are then redacted, as a revocation redacts them, and a delegation
//   older than the stored one is stored redacted ('superseded'). A revocation
//   at time T destroys materials created at or before T (ciphertext
//   overwritten, then deleted), redacts the payloads of that wallet's
//   delegation events at or before T, and keeps a tombstone holding the
//   newest T, so a late or replayed older `created` never brings materials
//   back. The rules in full: src/store/sqlite/schema.hpp, ORDERING RULES.
// - Durability: a request's completion gets a value only once everything it
//   wrote (and, for a duplicate, the row it found) is durable. Each request is
//   applied in a transaction of its own or beside others in one commit; a
//   request that fails leaves nothing of itself and does not fail the others,
//   unless the commit itself fails: then every request of that commit
//   completes with Errc::store_unavailable and nothing of it is stored. When
//   the database cannot make a commit durable (SQLite: a failed WAL sync),
//   its requests complete with Errc::store_unavailable (their rows may be
//   stored, and a retry then finds a duplicate), and so does every later
//   write, until the store is opened again.
// - The events feed: row ids increase in commit order and are never reused.
//   list_events() pages through the events in that order: a consumer that
//   passes each page's `next` back as the next query's `after` reads every
//   stored event exactly once, even while events are being stored. The token
//   is opaque: pass back what the store gave (SQLite: the decimal row id of
//   the page's last event, so `after` may also be a row id seen elsewhere).
// - The audit log (audit.hpp) lives in the same database: audit() appends a
//   record in a transaction of the store's writes; every applied revocation
//   appends its own 'revoke' record (actor "source:<source>", subject the
//   wallet id) in the revocation's transaction, so the two commit or fail
//   together, and so does every resolve_decrypt_failure() with its
//   'reprocess' record. The audit key is created on the first open, wrapped
//   by the KEK; a store opened with another KEK opens, but its audit appends
//   (hence its revocations and resolutions) and verify_audit() fail with
//   Errc::kek_unavailable or Errc::store_corrupt.
// - Crypto-shredding: what a write destroys (a revocation, a delegation
//   replacing a wallet's materials, a resolution that found the wallet
//   revoked, retention) is overwritten in place before it is deleted or
//   unset, and is gone from the database's files by the time the write's
//   completion runs (SQLite: the WAL is checkpointed and truncated first).
// - KEK rotation (kek.hpp): every wrapped key is stored with the KEK id and the
//   version wrap() reported, so records of older versions keep opening while
//   new ones use the current version. rewrap_batch() moves wrapped keys
//   (events, materials, the audit key) of older versions of this KEK to its
//   current version, a short batch at a time, without touching any payload or
//   materials ciphertext: the DEK inside stays the same. Rows are read and
//   rewrapped on the caller's thread; the store then applies each update only
//   where the row still holds exactly the wrapped key that was read (same
//   version and bytes), in one transaction, so a row changed meanwhile (a
//   newer delegation, a revocation) is left alone and simply picked up by a
//   later batch if it is still old. Each batch commits on its own: an
//   interrupted rewrap loses at most one uncommitted batch and a rerun
//   continues. A writer reads (and unwraps) the audit key afresh in each
//   transaction that appends, so appends go on while another process
//   rewraps it.
// - KEK registrations (src/store/sqlite/kek_registry.hpp): every open Store
//   keeps a lease naming the KEK version it wraps new keys under (its Kek's
//   current version), renewed every heartbeat and within a second of the
//   version changing, valid for the lease time, deleted on close; so every
//   process that may still wrap under a version is visible to every other,
//   through the database. retire_kek_version() marks a version retired only
//   when no live lease names it and no wrapped key uses it, and from then on
//   every write that would store a key wrapped under it is refused with
//   Errc::kek_unavailable (the provider's retry wraps under a newer version),
//   so no acknowledged record is ever stranded under a retired version.
// - Leadership (try_lease): at most one open Store, in any process on any
//   host sharing the database, holds a named lease at a time. A holder keeps
//   it while it is alive and its store renews it (every heartbeat, valid for
//   the lease time); a holder that stopped renewing loses it once the lease
//   time has passed, and another may take it then. Lease::held() turns false
//   once the holder's lease lapsed or was taken over, and never turns true
//   again. Leases keep two processes from doing the same work at once (a
//   backfill pass, a rewrap); nothing that must be exclusive for correctness
//   depends on them (every write is idempotent or guarded on its own), so a
//   lapse costs duplicated work, never data.
//
// Thread-safety: all methods are safe from any thread. Completions run on a
// thread of the store's (refusals of a closed store, of a request that does
// not validate, on the caller's) and must not block: the blocking calls
// (write, audit_sync, resolve_decrypt_failure, rewrap_batch,
// retire_kek_version, try_lease) called from a completion return
// Errc::internal instead of waiting for their own thread. Reads never wait
// for a write in progress. Several processes may open the same database:
// the database serialises their writes (and so their audit appends).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "hookvault/audit.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

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
  std::int64_t row_id = 0;  // the event's row (EventMeta::row_id)
  bool duplicate = false;
  MaterialsState materials = MaterialsState::none;
  // A signed event that took the place of a history copy of its key (see
  // the contract above); `row_id` is the new row's.
  bool replaced_history = false;
};

struct EventMeta {
  std::int64_t row_id = 0;  // the store's id of the event: see the contract
  std::string source;
  std::string idempotency_key;  // Dynamic: the provider's event id
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
  std::string event_id;    // the delegation event's provider id (its idempotency key)
  std::string created_at;  // that event's timestamp, as sent
  SecretBytes share;
  SecretBytes api_key;
};

// Counters of the store's writes since it was opened, for metrics and tests.
// A backend without one of these leaves it 0.
struct StoreStats {
  std::uint64_t commits = 0;             // group commits made durable (batches)
  std::uint64_t committed_requests = 0;  // requests completed by those commits
  std::uint64_t failed_batches = 0;      // batches completed with store_unavailable
  std::size_t largest_batch = 0;         // most requests in one committed batch
  // SQLite (sqlite_store.hpp): WAL checkpoints run (the checkpointer's and
  // the writer's), those that failed (not counting SQLITE_BUSY), and the WAL
  // syncs before answering (one may cover several commits).
  std::uint64_t checkpoints = 0;
  std::uint64_t checkpoint_failures = 0;
  std::uint64_t wal_syncs = 0;
};

// Sequence tracking of one Nodit subscription (see src/store/sqlite/sequences.hpp
// for the rules). `contiguous`: every number from the subscription's baseline up to
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

// A (KEK id, version) that some wrapped key is stored under (kek_refs()).
struct KekRef {
  std::string kek_id;
  std::uint32_t version = 0;
  friend bool operator==(const KekRef&, const KekRef&) = default;
};
// Orders refs by id and version and keeps each pair once, as kek_refs()
// answers (the backends collect them table by table).
void sort_unique(std::vector<KekRef>& refs);

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

// A page of the events feed (list_events).
struct EventQuery {
  std::optional<std::string> source;  // only this source's events
  // The `next` of the previous page; "" reads from the start, and so does "0"
  // (SQLite's row id before the first, on every backend). Opaque (see the
  // contract); a token the store cannot read is Errc::invalid_field.
  std::string after;
  std::size_t limit = 100;  // at most this many events; 0 gives an empty page
};

struct EventPage {
  std::vector<EventMeta> events;  // in row id order
  // The token to pass back as the next query's `after`; equal to `after`
  // when the page is empty.
  std::string next;
};

class Store {
 public:
  using Completion = std::function<void(Result<WriteResult>)>;
  using AuditCompletion = std::function<void(Result<std::int64_t>)>;

  // A leadership lease (try_lease). Released when destroyed (or, should that
  // not reach the database, when its lease time has passed).
  class Lease {
   public:
    virtual ~Lease();
    // True while this holder holds it; false for good once it lapsed (no
    // renewal within the lease time, by this store's clock), another holder
    // took it over, or the store closed.
    virtual bool held() const noexcept = 0;

   protected:
    Lease() = default;
  };

  virtual ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // --- writes ---------------------------------------------------------------
  // Queues a write; `done` runs once it is durable (see the contract), on a
  // thread of the store's. After close(), and for a request that does not
  // validate (Errc::missing_field: no source, key, or wallet where one is
  // needed; Errc::invalid_field: a sequence number of 0 or over 2^63-1, or
  // materials for another wallet than the event's; Errc::internal: more than
  // one of materials, decrypt_failure and revoke), completes at once on the
  // caller's thread.
  virtual void submit(WriteRequest request, Completion done) = 0;
  // Blocking convenience over submit().
  Result<WriteResult> write(WriteRequest request);

  // Settles a decrypt_failed event after `hookvault reprocess` retried it:
  // either materials (applied with the same ordering rules as a new delegation)
  // or a new failure reason. Appends the audit record {actor, "reprocess",
  // "<row_id>", clip_audit_field(resolution_outcome(state, reason))} in the
  // same transaction: a value means both committed, an error that neither did.
  // Errc::not_found when the event is not pending; Errc::missing_field /
  // Errc::invalid_field for an empty or oversized actor; the audit append's
  // errors (see audit()). Blocking.
  virtual Result<MaterialsState> resolve_decrypt_failure(
      std::int64_t row_id, std::variant<DelegationMaterials, std::string> outcome,
      std::string actor) = 0;

  // --- reads ----------------------------------------------------------------
  // The row id of (source, idempotency_key); nullopt when not stored.
  virtual Result<std::optional<std::int64_t>> find_event(
      std::string_view source, std::string_view idempotency_key) const = 0;
  virtual Result<std::optional<EventMeta>> event_meta(std::int64_t row_id) const = 0;
  // The events feed (see the contract and EventQuery).
  virtual Result<EventPage> list_events(const EventQuery& query) const = 0;
  // The payload as received; nullopt when the event is unknown or redacted.
  virtual Result<std::optional<SecretBytes>> event_payload(std::int64_t row_id) const = 0;
  // Events still decrypt_failed, in row id order.
  virtual Result<std::vector<EventMeta>> decrypt_failures() const = 0;
  // nullopt when the wallet has no materials (never delegated, or revoked).
  virtual Result<std::optional<StoredMaterials>> materials(std::string_view source,
                                                           std::string_view wallet_id) const = 0;

  // Sequence state of every subscription (of one source when given), with
  // their gaps, ordered by source and subscription id.
  virtual Result<std::vector<SubscriptionSequence>> sequences(
      std::optional<std::string_view> source) const = 0;
  Result<std::vector<SubscriptionSequence>> sequences() const { return sequences(std::nullopt); }
  // Events of `source` whose idempotency key starts with `prefix` (e.g. Nodit
  // messages keyed by content because they had no sequence number).
  virtual Result<std::uint64_t> count_events_with_key_prefix(std::string_view source,
                                                             std::string_view prefix) const = 0;
  // The newest event time (ms) among the events of `source` that arrived
  // signed (Origin::signature); nullopt when none. History copies do not
  // count: their times are only the history API's word.
  virtual Result<std::optional<std::int64_t>> latest_event_time_ms(
      std::string_view source) const = 0;

  // For /readyz: false once a commit failed (for good once the database
  // could not make a commit durable: see the contract), true again once a
  // commit wrote to the database (the open's own probe write counts). A
  // commit that wrote nothing (a batch of duplicates) leaves it as it was.
  // While false, the store retries a small probe write every second, so it
  // turns true again once the fault clears, even without traffic. Each
  // change is logged, a failure with the database's reason.
  virtual bool writable() const noexcept = 0;

  // --- audit log (audit.hpp) --------------------------------------------------
  // Appends `entry`; `done` runs once it is durable, with the record's seq.
  // Errc::missing_field / Errc::invalid_field for an entry check_audit_entry
  // refuses (empty actor, action or outcome; a field over
  // kMaxAuditFieldBytes), at once; Errc::store_unavailable after close() or
  // when the commit fails; Errc::kek_unavailable / Errc::store_corrupt when
  // the audit key does not open or the chain head was altered (nothing is
  // appended then).
  virtual void audit(AuditEntry entry, AuditCompletion done) = 0;
  // Blocking convenience over audit().
  Result<std::int64_t> audit_sync(AuditEntry entry);
  // Records with seq > after, in seq order, at most `limit`.
  virtual Result<std::vector<AuditRecord>> audit_records(std::int64_t after,
                                                         std::size_t limit) const = 0;
  // Walks the whole chain in seq order against one snapshot (see
  // AuditVerifyResult). A break is a result with ok = false; an error means it
  // could not be checked (Errc::kek_unavailable / Errc::store_corrupt: the
  // audit key does not open under this KEK).
  virtual Result<AuditVerifyResult> verify_audit() const = 0;

  // --- KEK rotation (kek.hpp) -------------------------------------------------
  // Wrapped keys per (KEK id, version), ordered by id and version; ids other
  // than this Store's KEK's appear too (they do not open here).
  virtual Result<std::vector<KekUsage>> kek_usage() const = 0;
  // The (KEK id, version) pairs of kek_usage() without the counts: every pair
  // some event, materials row or the audit key is wrapped under, ordered by
  // id and version. Found by index probes (one per pair and table), not by
  // counting rows, so it stays cheap on a large database: what a daemon asks
  // every [kek] refresh_interval (kek_coverage.hpp).
  virtual Result<std::vector<KekRef>> kek_refs() const = 0;
  // Rewraps up to `limit` (>= 1) wrapped keys of this KEK that are under a
  // version older than the current one: events first, then materials, then
  // the audit key, each unwrapped and wrapped again with the associated data
  // of envelope.hpp (audit key: "hookvault-audit-key"). Payloads and materials
  // ciphertext are not touched. One transaction; rows changed meanwhile by
  // another writer are skipped (see the contract). Errors:
  // Errc::kek_unavailable / Errc::store_corrupt when a wrapped key does not
  // open (the row is named in an error log line; nothing of the batch is
  // written), Errc::store_unavailable when the commit fails. `remaining` is
  // counted after the commit when the batch came back short (fewer old keys
  // than `limit`: the end of a run), on the first call, and whenever the
  // estimate would reach 0; after other batches it is the previous count
  // minus what moved. So 0 is always counted, never estimated. Blocking.
  virtual Result<RewrapProgress> rewrap_batch(std::size_t limit) = 0;
  // Live leases of every other open Store on this database (not this one's),
  // ordered by KEK id, version and holder.
  virtual Result<std::vector<KekLease>> kek_leases() const = 0;
  // Marks `version` of this Store's KEK retired, in one write transaction,
  // unless a live lease names it or a wrapped key uses it (see
  // KekRetirement). Marking a version that is already marked succeeds
  // again. Errc::invalid_field for version 0; Errc::store_unavailable when
  // the commit fails. Blocking.
  virtual Result<KekRetirement> retire_kek_version(std::uint32_t version) = 0;

  // --- leadership ---------------------------------------------------------------
  // Takes the lease `name` ("backfill:<source>", "rewrap") when nobody holds
  // it or its holder's lease lapsed (see the contract); a null pointer when
  // another holder (this Store's own earlier Lease of the name included)
  // holds it. Errc::invalid_field for an empty name or one over
  // kMaxAuditFieldBytes; Errc::store_unavailable after close() or when the
  // commit fails. Blocking.
  virtual Result<std::unique_ptr<Lease>> try_lease(std::string_view name) = 0;

  // Write counters (StoreStats); committed_requests / commits is the mean
  // batch size.
  virtual StoreStats stats() const noexcept = 0;

  // Stops accepting, completes what is queued, closes. Idempotent; reads and
  // writes after it fail with Errc::store_unavailable.
  virtual void close() = 0;

 protected:
  Store() = default;

  // Backends run every completion through this: it marks the thread as
  // running a completion for the blocking calls above (which then refuse
  // with Errc::internal instead of waiting for the thread they run on), and
  // keeps a throwing completion from taking the store's thread down.
  template <class F, class R>
  static void run_completion(F& done, R&& result) noexcept {
    if (!done) return;
    const CompletionScope scope;
    try {
      done(std::forward<R>(result));
    } catch (...) {  // NOLINT(bugprone-empty-catch): completions must not throw
    }
  }
  // A queued request of a backend (a std::variant of work types, each with a
  // `done` completion and an optional `result`): its completion with its
  // result, or with Errc::internal when it got none (complete_work), or with
  // `e` (fail_work).
  template <class Work>
  static void complete_work(Work& work) noexcept {
    std::visit(
        [](auto& w) {
          if (w.result) {
            run_completion(w.done, std::move(*w.result));
          } else {
            run_completion(w.done, make_error_code(Errc::internal));
          }
        },
        work);
  }
  template <class Work>
  static void fail_work(Work& work, Errc e) noexcept {
    std::visit([e](auto& w) { run_completion(w.done, make_error_code(e)); }, work);
  }
  // True on a thread that is running a completion (run_completion).
  static bool in_completion() noexcept;

 private:
  class CompletionScope {
   public:
    CompletionScope() noexcept;
    ~CompletionScope();
    CompletionScope(const CompletionScope&) = delete;
    CompletionScope& operator=(const CompletionScope&) = delete;

   private:
    bool outer_;
  };
};

}  // namespace hookvault
