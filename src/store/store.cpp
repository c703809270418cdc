// The store: open/close, the group-commit writer, and the reads.
//
// Where the work happens
// - submit() runs on the caller's thread: it validates the request, draws the
//   record's DEKs, seals the payload and the materials (envelope.hpp), wipes the
//   plaintext it was given, and queues a WriteWork that holds only ciphertext
//   and metadata. Sealing there keeps the single writer thread lean: the writer
//   only runs SQL, and many callers seal in parallel.
// - The writer thread owns the write connection. It sleeps on a condition
//   variable until something is queued, then takes everything queued (at most
//   max_batch) into one BEGIN IMMEDIATE ... COMMIT. It runs the batch without
//   savepoints first; only when a request fails does it roll the transaction
//   back and run the batch again with one SAVEPOINT per request, so that the
//   failing request's writes are undone and the others commit (write_batch).
//   There is no timer: an idle store commits a lone request at once, a busy one
//   groups whatever arrived during the previous commit.
// - Durability is pipelined (syncer.hpp): the write connection commits with
//   synchronous = NORMAL, and the writer hands each committed batch to the
//   syncer thread and goes on with the next one. The syncer syncs the WAL and
//   only then runs the batch's completions, so a request is acknowledged
//   (duplicates too: the row they found may be as recent) only once a sync
//   that began after its commit succeeded. Completions run on the syncer
//   thread. A failed sync fails its batches and every later write until the
//   store is opened again (writable() stays false).
// - Reads use one read-only connection under a mutex; rows are copied out
//   under the mutex and opened (unwrap + aead_open) after it is released.
// - writable() (/readyz) turns false when a batch fails to commit and true
//   again when a commit wrote to the file (a batch, or the probe): a batch
//   that wrote nothing (only duplicates) proves nothing about the disk and
//   leaves it as it was. Each turn is logged once, a failure with SQLite's
//   reason ("database or disk is full", "database is locked", ...).
// - While not writable, the idle writer retries a probe write every second,
//   so /readyz recovers without traffic once the fault clears. The probe does
//   not wait for another process's write lock: a request queued meanwhile
//   would wait behind it.
// - Another process's write lock: a request waits for it at most
//   busy_timeout in all, counted from its submission. Each batch gets the
//   busy timeout its oldest request has left, so requests queued behind a
//   batch that waited out the lock are not kept waiting as long again.
// - Audit records (audit(), the 'revoke' record of a revocation, the
//   'reprocess' record of resolve_decrypt_failure()) are appended by the
//   writer inside the request's SAVEPOINT (audit_chain.hpp). The first append
//   of a write transaction reads the audit key from meta and unwraps it (one
//   KEK round trip, an HSM's under pkcs11); the writer keeps it in
//   batch_audit_key_ for the rest of that transaction and wipes it when the
//   transaction ends, committed or not. Between transactions the write lock is
//   released, and `keys rewrap` in another process may rewrap it.
// - After a batch that zero-overwrote ciphertext (a revocation, a replaced
//   delegation's materials and the payloads of the delegations it
//   superseded, a reprocess that found the wallet revoked or superseded), the
//   writer checkpoints the WAL (TRUNCATE) before it runs the completions.
// - rewrap_batch() (KEK rotation) follows the same split as submit(): the
//   caller's thread reads old-version rows on the read connection and
//   rewraps their keys; the writer applies guarded UPDATEs (old version and
//   old bytes in the WHERE clause) in one SAVEPOINT of a group commit.
// - KEK registration (kek_registry.hpp): the writer renews this Store's
//   lease in the probe's transaction at open, in the first write transaction
//   after its Kek's version changed or its heartbeat fell due, and, when idle,
//   in a transaction of its own (waking at least every kLeaseCheck to look at
//   the version), without waiting for another process's lock. Each write
//   transaction checks that no key it stores is wrapped under a retired
//   version (once per version and transaction); retire_kek_version() is a
//   write transaction of its own through the writer.
// - Blocking calls (write, audit_sync, resolve_decrypt_failure, rewrap_batch,
//   retire_kek_version) wait for their completion through Impl::run_sync,
//   which refuses the writer thread (it would wait for itself).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <limits>
#include <mutex>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "hookvault/random.hpp"
#include "hookvault/store.hpp"
#include "store/sqlite/audit_chain.hpp"
#include "store/sqlite/checkpointer.hpp"
#include "store/envelope.hpp"
#include "store/sqlite/kek_registry.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sequences.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/supersede.hpp"
#include "store/sqlite/syncer.hpp"

namespace hookvault {
namespace {

using store::Connection;
using store::Statement;
using store::Step;

constexpr auto kProbeInterval = std::chrono::seconds(1);
// How often the idle writer looks whether its Kek's version changed, so its
// lease follows a KEK refresh within this (kek_registry.hpp).
constexpr auto kLeaseCheck = std::chrono::seconds(1);
using Clock = std::chrono::steady_clock;
constexpr std::int64_t kAllTimes = std::numeric_limits<std::int64_t>::max();
// A WAL sync takes about 0.2 ms on an idle disk here and up to 2.5 s on a busy
// shared one (docs/performance.md); checkpoints take longer.
const std::vector<double> kDiskBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

std::int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<Origin> parse_origin(std::string_view s) noexcept {
  if (s == "signature") return Origin::signature;
  if (s == "history") return Origin::history;
  return std::nullopt;
}

std::optional<MaterialsState> parse_state(std::string_view s) noexcept {
  for (auto state : {MaterialsState::none, MaterialsState::stored, MaterialsState::superseded,
                     MaterialsState::revoked, MaterialsState::decrypt_failed}) {
    if (s == materials_state_name(state)) return state;
  }
  return std::nullopt;
}

Result<std::uint32_t> kek_version_from(std::int64_t v) noexcept {
  if (v < 0 || v > std::numeric_limits<std::uint32_t>::max()) return err(Errc::store_corrupt);
  return static_cast<std::uint32_t>(v);
}

// The wrapped key of a row: `kek_id`, the version in column `version_col` and
// the wrapped bytes in column `blob_col`.
Result<store::WrappedKey> wrapped_key_at(const Statement& row, std::string kek_id, int version_col,
                                         int blob_col) {
  auto version = kek_version_from(row.column_int64(version_col));
  if (!version) return version.error();
  return store::WrappedKey{std::move(kek_id), *version, row.column_blob(blob_col)};
}

// The audit key when `kek` wrapped it under a version older than `current`
// (one for `keys rewrap` to move), else nullopt.
Result<std::optional<store::WrappedKey>> old_audit_key(Connection& db, const Kek& kek,
                                                       std::uint32_t current) {
  auto key = store::read_audit_key(db);
  if (key && *key && ((*key)->kek_id != kek.id() || (*key)->kek_version >= current)) key->reset();
  return key;
}

// ---------------------------------------------------------------------------
// SQL run by the writer (write connection). Column meanings: schema.hpp.

constexpr char kBegin[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";
constexpr char kSavepoint[] = "SAVEPOINT request";
constexpr char kRelease[] = "RELEASE request";
constexpr char kRollbackTo[] = "ROLLBACK TO request";

constexpr char kProbe[] =
    "INSERT INTO meta (key, value) VALUES ('writer_probe_ms', ?1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

constexpr char kFindExisting[] =
    "SELECT id, materials_state, origin FROM events WHERE source = ?1 AND idem_key = ?2";

// A copy fetched from a history API (origin 'history') that the signed
// delivery of the same key replaces: see Store::Impl::apply(WriteWork&).
constexpr char kDeleteEvent[] = "DELETE FROM events WHERE id = ?1";

constexpr char kInsertEvent[] =
    "INSERT INTO events (source, idem_key, event_name, message_id, event_time, event_time_ms, "
    "wallet_id, origin, received_at_ms, materials_state, failure_reason, kek_id, kek_version, "
    "wrapped_dek, payload) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

constexpr char kTombstoneTime[] =
    "SELECT revoked_at_ms FROM tombstones WHERE source = ?1 AND wallet_id = ?2";

constexpr char kCurrentMaterials[] =
    "SELECT created_at_ms, event_id FROM materials WHERE source = ?1 AND wallet_id = ?2";

constexpr char kZeroMaterials[] =
    "UPDATE materials SET wrapped_dek = zeroblob(length(wrapped_dek)), "
    "share = zeroblob(length(share)), api_key = zeroblob(length(api_key)) "
    "WHERE source = ?1 AND wallet_id = ?2 AND created_at_ms <= ?3";

constexpr char kDeleteMaterials[] =
    "DELETE FROM materials WHERE source = ?1 AND wallet_id = ?2 AND created_at_ms <= ?3";

constexpr char kUpsertMaterials[] =
    "INSERT INTO materials (source, wallet_id, user_id, chain, share_set_id, event_id, "
    "created_at, created_at_ms, kek_id, kek_version, wrapped_dek, share, api_key) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
    "ON CONFLICT (source, wallet_id) DO UPDATE SET user_id = excluded.user_id, "
    "chain = excluded.chain, share_set_id = excluded.share_set_id, "
    "event_id = excluded.event_id, created_at = excluded.created_at, "
    "created_at_ms = excluded.created_at_ms, kek_id = excluded.kek_id, "
    "kek_version = excluded.kek_version, wrapped_dek = excluded.wrapped_dek, "
    "share = excluded.share, api_key = excluded.api_key";

constexpr char kUpsertTombstone[] =
    "INSERT INTO tombstones (source, wallet_id, revoked_at_ms, revoked_at, event_id) "
    "VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (source, wallet_id) DO UPDATE SET revoked_at_ms = excluded.revoked_at_ms, "
    "revoked_at = excluded.revoked_at, event_id = excluded.event_id "
    "WHERE excluded.revoked_at_ms > tombstones.revoked_at_ms";

constexpr char kZeroCreatedPayloads[] =
    "UPDATE events SET payload = zeroblob(length(payload)), "
    "wrapped_dek = zeroblob(length(wrapped_dek)) "
    "WHERE source = ?1 AND wallet_id = ?2 AND event_time_ms <= ?3 "
    "AND event_name = 'wallet.delegation.created' AND payload IS NOT NULL";

constexpr char kRedactCreatedPayloads[] =
    "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
    "WHERE source = ?1 AND wallet_id = ?2 AND event_time_ms <= ?3 "
    "AND event_name = 'wallet.delegation.created' AND payload IS NOT NULL";

constexpr char kSettleRevokedFailures[] =
    "UPDATE events SET materials_state = 'revoked', failure_reason = NULL "
    "WHERE source = ?1 AND wallet_id = ?2 AND event_time_ms <= ?3 "
    "AND event_name = 'wallet.delegation.created' AND materials_state = 'decrypt_failed'";

constexpr char kPendingEvent[] =
    "SELECT source, idem_key, wallet_id, event_time, event_time_ms, materials_state "
    "FROM events WHERE id = ?1";

constexpr char kSetFailureReason[] =
    "UPDATE events SET failure_reason = ?2 WHERE id = ?1 AND materials_state = 'decrypt_failed'";

constexpr char kSettleEvent[] =
    "UPDATE events SET materials_state = ?2, failure_reason = NULL WHERE id = ?1";

constexpr char kZeroEventPayload[] =
    "UPDATE events SET payload = zeroblob(length(payload)), "
    "wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id = ?1 AND payload IS NOT NULL";

constexpr char kRedactEventPayload[] =
    "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
    "WHERE id = ?1";

// Retention: payloads received before ?1, except delegations still waiting for
// `reprocess` (their payload is the only copy of the encrypted materials).
// Walks the partial index events_payload_by_received, oldest first.
constexpr char kExpiredPayloads[] =
    "SELECT id FROM events WHERE payload IS NOT NULL AND received_at_ms < ?1 "
    "AND materials_state <> 'decrypt_failed' ORDER BY received_at_ms LIMIT ?2";
constexpr std::int64_t kPurgeBatch = 500;  // rows per short write transaction

// keys rewrap: only where the row still holds the wrapped key that was read.
// ?1, ?2: the new version and bytes; ?3 .. ?5: the KEK id, version and bytes
// the row must still hold; from ?6: the row.
constexpr char kRewrapEvent[] =
    "UPDATE events SET kek_version = ?1, wrapped_dek = ?2 "
    "WHERE kek_id = ?3 AND kek_version = ?4 AND wrapped_dek = ?5 AND id = ?6";

constexpr char kRewrapMaterials[] =
    "UPDATE materials SET kek_version = ?1, wrapped_dek = ?2 "
    "WHERE kek_id = ?3 AND kek_version = ?4 AND wrapped_dek = ?5 "
    "AND source = ?6 AND wallet_id = ?7 AND event_id = ?8";

// ?1 .. ?5 of kRewrapEvent and kRewrapMaterials: the new key, and the key the
// row must still hold.
Statement& bind_rewrap(Statement& stmt, const store::WrappedKey& from,
                       const store::WrappedKey& to) {
  return stmt.bind_int64(1, to.kek_version)
      .bind_blob(2, to.wrapped_dek)
      .bind_text(3, from.kek_id)
      .bind_int64(4, from.kek_version)
      .bind_blob(5, from.wrapped_dek);
}

// ---------------------------------------------------------------------------
// SQL run by the reads (read-only connection).

#define HOOKVAULT_EVENT_META_COLUMNS                                                             \
  "SELECT id, source, idem_key, event_name, message_id, event_time, wallet_id, received_at_ms, " \
  "origin, materials_state, failure_reason, payload IS NULL FROM events "

constexpr char kReadFindEvent[] = "SELECT id FROM events WHERE source = ?1 AND idem_key = ?2";
constexpr char kReadEventMeta[] = HOOKVAULT_EVENT_META_COLUMNS "WHERE id = ?1";
constexpr char kReadListAll[] = HOOKVAULT_EVENT_META_COLUMNS "WHERE id > ?1 ORDER BY id LIMIT ?2";
constexpr char kReadListSource[] =
    HOOKVAULT_EVENT_META_COLUMNS "WHERE source = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
constexpr char kReadDecryptFailures[] =
    HOOKVAULT_EVENT_META_COLUMNS "WHERE materials_state = 'decrypt_failed' ORDER BY id";

#undef HOOKVAULT_EVENT_META_COLUMNS

constexpr char kReadCountPrefix[] =
    "SELECT count(*) FROM events WHERE source = ?1 AND substr(idem_key, 1, ?3) = ?2";

constexpr char kReadLatestEventTime[] =
    "SELECT max(event_time_ms) FROM events WHERE source = ?1 AND event_time_ms > 0 "
    "AND origin = 'signature'";

constexpr char kReadPayload[] =
    "SELECT source, idem_key, kek_id, kek_version, wrapped_dek, payload FROM events WHERE id = ?1";

constexpr char kReadMaterials[] =
    "SELECT user_id, chain, share_set_id, event_id, created_at, kek_id, kek_version, "
    "wrapped_dek, share, api_key FROM materials WHERE source = ?1 AND wallet_id = ?2";

// KEK rotation (indexes events_by_kek, materials_by_kek).
constexpr char kReadKekUsage[] =
    "SELECT kek_id, kek_version, sum(events), sum(materials) FROM ("
    "SELECT kek_id, kek_version, count(*) AS events, 0 AS materials FROM events "
    "WHERE kek_id IS NOT NULL GROUP BY kek_id, kek_version "
    "UNION ALL "
    "SELECT kek_id, kek_version, 0, count(*) FROM materials GROUP BY kek_id, kek_version) "
    "GROUP BY kek_id, kek_version ORDER BY kek_id, kek_version";

constexpr char kReadOldEvents[] =
    "SELECT id, source, idem_key, kek_version, wrapped_dek FROM events "
    "WHERE kek_id = ?1 AND kek_version < ?2 LIMIT ?3";

constexpr char kReadOldMaterials[] =
    "SELECT source, wallet_id, event_id, kek_version, wrapped_dek FROM materials "
    "WHERE kek_id = ?1 AND kek_version < ?2 LIMIT ?3";

// How many keys of this KEK are older than the current version (the audit
// key is added by the caller).
constexpr char kReadOldCount[] =
    "SELECT (SELECT count(*) FROM events WHERE kek_id = ?1 AND kek_version < ?2) + "
    "(SELECT count(*) FROM materials WHERE kek_id = ?1 AND kek_version < ?2)";

Result<EventMeta> meta_from_row(const Statement& row) {
  EventMeta meta;
  meta.id = row.column_int64(0);
  meta.source = row.column_text(1);
  meta.idempotency_key = row.column_text(2);
  meta.event_name = row.column_text(3);
  meta.message_id = row.column_text(4);
  meta.event_time = row.column_text(5);
  meta.wallet_id = row.column_text(6);
  meta.received_at_ms = row.column_int64(7);
  const auto origin = parse_origin(row.column_text(8));
  const auto state = parse_state(row.column_text(9));
  if (!origin || !state) return err(Errc::store_corrupt);
  meta.origin = *origin;
  meta.materials = *state;
  meta.failure_reason = row.column_optional_text(10).value_or(std::string());
  meta.payload_redacted = row.column_int64(11) != 0;
  return meta;
}

Result<std::vector<EventMeta>> metas_from(Statement& stmt) {
  std::vector<EventMeta> out;
  auto read = store::for_each_row(stmt, [&](const Statement& row) -> Result<void> {
    auto meta = meta_from_row(row);
    if (!meta) return meta.error();
    out.push_back(std::move(*meta));
    return {};
  });
  if (!read) return read.error();
  return out;
}

// ---------------------------------------------------------------------------
// Queued work. Everything secret is already sealed.

struct EventRow {
  std::string source;
  std::string idem_key;
  std::string event_name;
  std::string message_id;
  std::string event_time;
  std::int64_t event_time_ms = 0;
  std::string wallet_id;
  Origin origin = Origin::signature;
  std::int64_t received_at_ms = 0;
  store::SealedPayload sealed;
  std::optional<SequencePosition> sequence;
};

struct WriteWork {
  EventRow event;
  std::optional<store::SealedMaterials> materials;
  std::optional<std::string> decrypt_failure;
  bool revoke = false;
  Store::Completion done;
  std::optional<Result<WriteResult>> result;
};

struct ResolveWork {
  std::int64_t event_id = 0;
  // The identity the materials were sealed for; checked again by the writer.
  std::string source;
  std::string idem_key;
  std::string wallet_id;
  std::variant<store::SealedMaterials, std::string> outcome;
  std::string actor;  // of the 'reprocess' audit record
  std::function<void(Result<MaterialsState>)> done;
  std::optional<Result<MaterialsState>> result;
};

struct AuditWork {
  AuditEntry entry;
  Store::AuditCompletion done;
  std::optional<Result<std::int64_t>> result;
};

// One wrapped key as read (`from`, with the row identity its associated data
// names) and rewrapped (`to`), for a guarded UPDATE.
struct EventRewrap {
  std::int64_t id = 0;
  std::string source;
  std::string idem_key;
  store::WrappedKey from;
  store::WrappedKey to;
};

struct MaterialsRewrap {
  std::string source;
  std::string wallet_id;
  std::string event_id;
  store::WrappedKey from;
  store::WrappedKey to;
};

struct AuditKeyRewrap {
  store::WrappedKey from;
  store::WrappedKey to;
};

struct RewrapWork {
  std::vector<EventRewrap> events;
  std::vector<MaterialsRewrap> materials;
  std::optional<AuditKeyRewrap> audit_key;
  // Fewer old keys than the limit were found: none was left beyond these.
  bool short_batch = false;
  std::function<void(Result<std::uint64_t>)> done;  // how many UPDATEs applied
  std::optional<Result<std::uint64_t>> result;

  std::size_t size() const noexcept {
    return events.size() + materials.size() + (audit_key ? 1 : 0);
  }
};

// retire_kek_version(): checks and marks in one write transaction.
struct RetireWork {
  std::uint32_t version = 0;
  std::function<void(Result<KekRetirement>)> done;
  std::optional<Result<KekRetirement>> result;
};

using Work = std::variant<WriteWork, ResolveWork, AuditWork, RewrapWork, RetireWork>;

// The wrapped keys a request would store, for the retired-version check.
std::vector<const store::WrappedKey*> new_keys(const WriteWork& w) {
  std::vector<const store::WrappedKey*> out{&w.event.sealed.key};
  if (w.materials) out.push_back(&w.materials->key);
  return out;
}
std::vector<const store::WrappedKey*> new_keys(const ResolveWork& w) {
  if (const auto* m = std::get_if<store::SealedMaterials>(&w.outcome)) return {&m->key};
  return {};
}
std::vector<const store::WrappedKey*> new_keys(const RewrapWork& w) {
  std::vector<const store::WrappedKey*> out;
  for (const auto& e : w.events) out.push_back(&e.to);
  for (const auto& m : w.materials) out.push_back(&m.to);
  if (w.audit_key) out.push_back(&w.audit_key->to);
  return out;
}
std::vector<const store::WrappedKey*> new_keys(const AuditWork&) { return {}; }
std::vector<const store::WrappedKey*> new_keys(const RetireWork&) { return {}; }

// A request in the writer's queue, with when it was queued (its share of the
// busy timeout is counted from then).
struct Queued {
  Work work;
  Clock::time_point since;
};

// Runs a completion; a throwing completion must not take the writer down.
template <class F, class R>
void call_completion(F& done, R&& result) noexcept {
  if (!done) return;
  try {
    done(std::forward<R>(result));
  } catch (...) {  // NOLINT(bugprone-empty-catch): completions must not throw
  }
}

void complete_with(Work& work, Errc e) noexcept {
  std::visit([e](auto& w) { call_completion(w.done, err(e)); }, work);
}

void complete(Work& work) noexcept {
  std::visit(
      [](auto& w) {
        if (w.result) {
          call_completion(w.done, std::move(*w.result));
        } else {
          call_completion(w.done, err(Errc::internal));
        }
      },
      work);
}

// Creates the file with mode 0600 when absent, so that the database and the
// -wal/-shm files SQLite derives from it are private. An existing file is not
// touched: closing a descriptor of a file SQLite has open in this process would
// drop its POSIX locks.
bool create_private_file(const std::filesystem::path& path) noexcept {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) return ::close(fd) == 0;
  return errno == EEXIST;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string_view origin_name(Origin o) noexcept {
  switch (o) {
    case Origin::signature:
      return "signature";
    case Origin::history:
      return "history";
  }
  return "signature";
}

std::string_view materials_state_name(MaterialsState s) noexcept {
  switch (s) {
    case MaterialsState::none:
      return "none";
    case MaterialsState::stored:
      return "stored";
    case MaterialsState::superseded:
      return "superseded";
    case MaterialsState::revoked:
      return "revoked";
    case MaterialsState::decrypt_failed:
      return "decrypt_failed";
  }
  return "none";
}

std::string resolution_outcome(MaterialsState state, std::string_view failure_reason) {
  std::string out(materials_state_name(state));
  if (state == MaterialsState::decrypt_failed) {
    out += ": ";
    out += failure_reason;
  }
  return out;
}

struct Store::Impl {
  Impl(const StoreOptions& options, std::shared_ptr<const Kek> kek, Connection writer_db,
       Connection reader_db, std::unique_ptr<store::Checkpointer> checkpointer,
       std::unique_ptr<store::Syncer> syncer, std::string lease_holder)
      : options_(options),
        max_batch_(std::max<std::size_t>(options.max_batch, 1)),
        kek_(std::move(kek)),
        writer_db_(std::move(writer_db)),
        checkpointer_(std::move(checkpointer)),
        syncer_(std::move(syncer)),
        reader_db_(std::move(reader_db)),
        registration_(std::move(lease_holder), options.process_name, options.lease_heartbeat,
                      options.lease_time) {
    checkpointer_->install(writer_db_);
    if (options.metrics != nullptr) {
      commit_seconds_ = &options.metrics
                             ->histogram("hookvault_store_commit_seconds",
                                         "Group commits: BEGIN to durable COMMIT (fsync included)")
                             .with({});
      batch_size_ =
          &options.metrics
               ->histogram("hookvault_store_batch_size", "Requests per committed group commit", {},
                           {1, 2, 4, 8, 16, 32, 64, 128, 256, 512})
               .with({});
    }
  }

  ~Impl() { close(); }

  // --- submission -----------------------------------------------------------

  Result<WriteWork> prepare_write(WriteRequest& request) const;
  Result<ResolveWork> prepare_resolve(std::int64_t event_id,
                                      std::variant<DelegationMaterials, std::string>& outcome,
                                      std::string actor);
  Result<RewrapWork> prepare_rewrap(std::size_t limit, std::uint32_t current);
  void enqueue(Work work);
  bool accepting_now() {
    std::lock_guard lock(mu_);
    return accepting_;
  }

  // The blocking calls: runs start(done) and waits until `done` was called
  // (by start itself on an early error, else by the syncer after the sync).
  // Errc::internal on the writer or the syncer thread (a completion), which
  // would wait for itself.
  template <class T, class Start>
  Result<T> run_sync(Start&& start) {
    if (on_writer_thread() || syncer_->on_thread()) return err(Errc::internal);
    std::promise<Result<T>> promise;
    auto future = promise.get_future();
    std::forward<Start>(start)(std::function<void(Result<T>)>(
        [&promise](Result<T> r) { promise.set_value(std::move(r)); }));
    return future.get();
  }

  // --- writer thread --------------------------------------------------------

  void writer_loop();
  // `oldest`: when the batch's first (oldest) request was queued.
  void run_batch(std::vector<Work>& batch, Clock::time_point oldest);
  // An empty batch with room for a full one (up to 1,024 requests).
  std::vector<Work> empty_batch() const {
    std::vector<Work> batch;
    batch.reserve(std::min<std::size_t>(max_batch_, 1024));
    return batch;
  }
  // Completes every request of a batch that failed with store_unavailable.
  void fail_batch(std::vector<Work>& batch) noexcept {
    failed_batches_.fetch_add(1, std::memory_order_relaxed);
    for (auto& work : batch) complete_with(work, Errc::store_unavailable);
  }
  Result<void> write_batch(std::vector<Work>& batch);
  Result<void> begin_batch();
  Result<void> apply_in_savepoint(Work& work);
  bool apply_work(Work& work);
  Result<WriteResult> apply(WriteWork& w);
  Result<MaterialsState> apply(ResolveWork& w);
  Result<std::int64_t> apply(AuditWork& w);
  Result<std::uint64_t> apply(RewrapWork& w);
  Result<KekRetirement> apply(RetireWork& w);
  Result<std::int64_t> append_audit(const AuditEntry& entry);
  // The idle writer's lease renewal, in a transaction of its own.
  void renew_lease_idle();
  // close(): deletes this Store's lease (best effort; else it expires).
  void drop_own_lease() noexcept;
  Result<void> probe();
  // writable_ turns false (logged with SQLite's reason, `sqlite_code`) or true
  // (logged); a call that changes nothing logs nothing.
  void mark_unwritable(int sqlite_code);
  void mark_writable();
  // Pages the write connection wrote to the WAL since the last call (SQLite
  // counts them per connection; this resets the count).
  int take_pages_written() noexcept {
    int current = 0;
    int highwater = 0;
    if (sqlite3_db_status(writer_db_.handle(), SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater,
                          1) != SQLITE_OK) {
      return 0;
    }
    return current;
  }
  // The write connection's busy timeout; best effort (it only fails on a
  // closed connection, where every statement fails anyway).
  void set_busy_timeout(std::chrono::milliseconds timeout) noexcept {
    static_cast<void>(writer_db_.set_busy_timeout(timeout));
  }
  // PRAGMA wal_checkpoint(TRUNCATE) on the write connection; the SQLite code.
  int checkpoint_truncate() noexcept { return checkpointer_->truncate(writer_db_); }

  Result<void> run(const char* sql);
  Result<std::optional<std::int64_t>> tombstone_time(std::string_view source,
                                                     std::string_view wallet_id);
  Result<MaterialsState> decide_materials(std::string_view source, std::string_view wallet_id,
                                          std::int64_t event_time_ms, std::string_view event_id);
  Result<void> store_materials(std::string_view source, std::string_view wallet_id,
                               std::string_view event_id, std::string_view created_at,
                               std::int64_t created_at_ms, const store::SealedMaterials& m);
  Result<void> zero_materials(std::string_view source, std::string_view wallet_id,
                              std::int64_t up_to_ms);
  // supersede.hpp: redact_superseded(), noting what it overwrote.
  Result<void> shred_superseded(std::string_view source, std::string_view wallet_id,
                                std::int64_t event_time_ms, std::string_view event_id);
  Result<void> revoke(std::string_view source, std::string_view wallet_id,
                      std::int64_t revoked_at_ms, std::string_view revoked_at,
                      std::string_view event_id);
  Result<void> redact_event(std::int64_t id);
  void note_overwrites() noexcept {
    if (sqlite3_changes(writer_db_.handle()) > 0) overwrote_ = true;
  }

  // --- reads ----------------------------------------------------------------

  // Keys of this KEK under a version older than `current` (the audit key too).
  Result<std::uint64_t> count_old_keys(std::uint32_t current) const;
  // rewrap_batch()'s `remaining` after a batch that moved `moved` keys.
  Result<std::uint64_t> remaining_after(std::uint32_t current, std::uint64_t moved,
                                        bool short_batch);

  template <class F>
  auto with_reader(F&& f) const -> decltype(f(std::declval<Connection&>())) {
    std::lock_guard lock(read_mu_);
    if (!reader_db_.handle()) return err(Errc::store_unavailable);
    return f(reader_db_);
  }

  // --- lifetime -------------------------------------------------------------

  void start() {
    writer_ = std::thread([this] {
      name_this_thread("hv-writer");
      writer_loop();
    });
    writer_id_.store(writer_.get_id());
  }
  // A blocking call from a completion would wait for its own thread.
  bool on_writer_thread() const noexcept { return writer_id_.load() == std::this_thread::get_id(); }
  void close();

  const StoreOptions options_;
  const std::size_t max_batch_;
  // Retention (writer thread only): when the next purge pass is due.
  std::chrono::steady_clock::time_point next_purge_{};
  Result<std::uint64_t> purge_expired();
  const std::shared_ptr<const Kek> kek_;

  // Writer thread only (and open/close, when the thread is not running).
  Connection writer_db_;
  // Checkpoints the WAL on a thread of its own (checkpointer.hpp); stopped
  // by close() before the connections close.
  std::unique_ptr<store::Checkpointer> checkpointer_;
  // Syncs the WAL after each commit and then runs the completions
  // (syncer.hpp); stopped by close() after the writer, before the connections.
  std::unique_ptr<store::Syncer> syncer_;
  // The batch zero-overwrote old ciphertext (a revocation, replaced materials,
  // a redaction): run_batch checkpoints before the completions.
  bool overwrote_ = false;
  // Commits that wrote to the file (batches, probes, purges), for the syncer:
  // a batch that wrote nothing waits only for the sync of the newest of them.
  std::uint64_t written_commits_ = 0;
  // The audit key, unwrapped by the first append of the current write
  // transaction; reset (wiped) when that transaction ends (run_batch) and
  // when a batch begins (begin_batch: its second pass reads it again).
  std::optional<SecretBytes> batch_audit_key_;

  // rewrap_batch(): keys of this KEK older than `version`, as last counted and
  // decreased since by what each batch moved.
  struct RewrapTally {
    std::uint32_t version = 0;
    std::uint64_t remaining = 0;
  };
  std::mutex rewrap_mu_;
  std::optional<RewrapTally> rewrap_tally_;  // guarded by rewrap_mu_

  mutable std::mutex read_mu_;
  mutable Connection reader_db_;  // guarded by read_mu_

  // This Store's lease and the retired-version checks (kek_registry.hpp);
  // writer thread only.
  store::KekRegistration registration_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;  // guarded by mu_
  bool accepting_ = true;     // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  std::thread writer_;
  std::atomic<std::thread::id> writer_id_{};
  std::mutex close_mu_;  // serializes close()

  std::atomic<bool> writable_{true};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> committed_requests_{0};
  std::atomic<std::uint64_t> failed_batches_{0};
  std::atomic<std::size_t> largest_batch_{0};
  MetricSeries* commit_seconds_ = nullptr;  // set when StoreOptions::metrics is
  MetricSeries* batch_size_ = nullptr;
};

// ---------------------------------------------------------------------------
// Submission (caller's thread).

Result<WriteWork> Store::Impl::prepare_write(WriteRequest& request) const {
  NewEvent& ev = request.event;
  if (ev.source.empty() || ev.idempotency_key.empty()) return err(Errc::missing_field);
  const int kinds =
      (request.materials ? 1 : 0) + (request.decrypt_failure ? 1 : 0) + (request.revoke ? 1 : 0);
  if (kinds > 1) return err(Errc::internal);  // a caller bug: at most one may be set
  if ((request.materials || request.revoke) && ev.wallet_id.empty()) {
    return err(Errc::missing_field);
  }
  if (request.materials && !request.materials->wallet_id.empty() &&
      request.materials->wallet_id != ev.wallet_id) {
    return err(Errc::invalid_field);
  }

  if (ev.sequence && (ev.sequence->subscription_id.empty() || ev.sequence->number == 0 ||
                      ev.sequence->number >
                          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))) {
    return err(Errc::invalid_field);
  }

  WriteWork work;
  auto sealed = store::seal_payload(*kek_, ev.source, ev.idempotency_key, as_bytes(ev.payload));
  secure_wipe(ev.payload.data(), ev.payload.size());
  if (!sealed) return sealed.error();
  if (request.materials) {
    auto m = store::seal_materials(*kek_, ev.source, ev.wallet_id, ev.idempotency_key,
                                   *request.materials);
    request.materials.reset();  // wipes the plaintext now
    if (!m) return m.error();
    work.materials = std::move(*m);
  }
  work.event = EventRow{std::move(ev.source),
                        std::move(ev.idempotency_key),
                        std::move(ev.event_name),
                        std::move(ev.message_id),
                        std::move(ev.event_time),
                        ev.event_time_ms,
                        std::move(ev.wallet_id),
                        ev.origin,
                        now_ms(),
                        std::move(*sealed),
                        std::move(ev.sequence)};
  work.decrypt_failure = std::move(request.decrypt_failure);
  work.revoke = request.revoke;
  return work;
}

void Store::Impl::enqueue(Work work) {
  {
    std::unique_lock lock(mu_);
    if (accepting_) {
      queue_.push_back(Queued{std::move(work), Clock::now()});
      lock.unlock();
      cv_.notify_one();
      return;
    }
  }
  complete_with(work, Errc::store_unavailable);
}

// ---------------------------------------------------------------------------
// The writer thread.

void Store::Impl::writer_loop() {
  std::vector<Work> batch = empty_batch();
  for (;;) {
    Clock::time_point oldest;
    {
      std::unique_lock lock(mu_);
      const auto ready = [this] { return !queue_.empty() || stopping_; };
      const bool retention = options_.retention.count() > 0;
      const auto lease_check = Clock::now() + kLeaseCheck;
      if (!writable_.load()) {
        cv_.wait_for(lock, kProbeInterval, ready);
      } else if (retention) {
        cv_.wait_until(lock, std::min(next_purge_, lease_check), ready);
      } else {
        cv_.wait_until(lock, lease_check, ready);
      }
      if (queue_.empty()) {
        if (stopping_) return;
        lock.unlock();
        if (!writable_.load() && !syncer_->failed()) {
          // Idle and not writable: try again, so readiness recovers on its own;
          // without waiting for a lock, so a request that arrives meanwhile
          // does not wait behind the probe.
          set_busy_timeout(std::chrono::milliseconds(0));
          const bool probed = probe().has_value();
          set_busy_timeout(options_.busy_timeout);
          if (probed) mark_writable();
        } else if (retention && std::chrono::steady_clock::now() >= next_purge_) {
          auto purged = purge_expired();
          const bool more = purged && *purged == static_cast<std::uint64_t>(kPurgeBatch);
          next_purge_ = std::chrono::steady_clock::now() +
                        (more ? std::chrono::milliseconds(0) : options_.retention_interval);
          if (!purged) {
            log(LogLevel::warn, "retention purge failed", {{"error", purged.error().message()}});
          } else if (*purged > 0) {
            log(LogLevel::info, "retention purge", {{"payloads", *purged}});
          }
        }
        // (While not writable the probe above renews the lease.)
        if (writable_.load() && registration_.due(*kek_)) renew_lease_idle();
        continue;
      }
      const std::size_t n = std::min(queue_.size(), max_batch_);
      oldest = queue_.front().since;
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front().work));
        queue_.pop_front();
      }
    }
    run_batch(batch, oldest);
    batch.clear();
  }
}

// Purges up to kPurgeBatch expired payloads in one short transaction (the
// same zero-overwrite and redaction as a revocation), then checkpoints. The
// writer calls it only when idle, and again at once while batches come back
// full, so a backlog never holds queued requests for long.
Result<std::uint64_t> Store::Impl::purge_expired() {
  std::vector<std::int64_t> ids;
  {
    auto stmt = writer_db_.prepare(kExpiredPayloads);
    if (!stmt) return stmt.error();
    stmt->bind_int64(1, now_ms() - options_.retention.count()).bind_int64(2, kPurgeBatch);
    auto read = store::for_each_row(
        *stmt, [&](const Statement& row) { ids.push_back(row.column_int64(0)); });
    if (!read) return read.error();
  }
  if (ids.empty()) return 0;
  if (auto r = run(kBegin); !r) return r.error();
  for (auto id : ids) {
    if (auto r = redact_event(id); !r) {
      static_cast<void>(run(kRollback));
      return r.error();
    }
  }
  if (auto r = run(kCommit); !r) {
    static_cast<void>(run(kRollback));
    return r.error();
  }
  ++written_commits_;
  static_cast<void>(checkpoint_truncate());  // best effort: the next purge or close retries
  return ids.size();
}

void Store::Impl::run_batch(std::vector<Work>& batch, Clock::time_point oldest) {
  if (syncer_->failed()) {
    // Nothing written now could be acknowledged (syncer.hpp).
    fail_batch(batch);
    return;
  }
  const auto started = Clock::now();
  // What the oldest request has left of the busy timeout: no request waits
  // for another process's lock longer than that in all.
  const auto queued = std::chrono::duration_cast<std::chrono::milliseconds>(started - oldest);
  set_busy_timeout(std::max(options_.busy_timeout - queued, std::chrono::milliseconds(0)));
  static_cast<void>(take_pages_written());
  auto committed = write_batch(batch);
  // Why it failed: the failed call's code, before a ROLLBACK replaces it.
  const int code = committed ? SQLITE_OK : sqlite3_extended_errcode(writer_db_.handle());
  const bool wrote = committed && take_pages_written() > 0;
  set_busy_timeout(options_.busy_timeout);
  // The transaction is over (or about to be rolled back): the audit key goes.
  batch_audit_key_.reset();
  if (committed) {
    registration_.committed();
  } else {
    registration_.ended();
  }
  if (!committed) {
    if (writer_db_.in_transaction()) {
      // Nothing more can be done if even ROLLBACK fails; the next BEGIN reports it.
      static_cast<void>(run(kRollback));
    }
    mark_unwritable(code);
    fail_batch(batch);
    return;
  }
  // A commit that wrote nothing (only duplicates) says nothing about the disk.
  if (wrote) {
    ++written_commits_;
    mark_writable();
  }
  if (overwrote_) {
    // Crypto-shredding: before a revocation, a replacement of a wallet's
    // materials or a reprocess redaction is acknowledged, move the
    // zero-overwritten pages into the database file and truncate the WAL, so
    // no older frame holding the destroyed ciphertext and wrapped keys is
    // left in either file. The busy timeout lets readers of an old snapshot
    // finish first; if one outlives it, the next overwrite or close retries.
    const int rc = checkpoint_truncate();
    if (rc != SQLITE_OK) {
      log(LogLevel::warn, "WAL checkpoint after zero-overwriting ciphertext did not complete",
          {{"error", sqlite3_errstr(rc)}});
    }
  }
  // The completions run once the WAL is synced; the next batch begins now.
  auto done = std::make_shared<std::vector<Work>>(std::exchange(batch, empty_batch()));
  syncer_->push(written_commits_, [this, done, started](bool durable) {
    if (!durable) {
      // writable() is false for good now: the syncer failed and logged why.
      fail_batch(*done);
      return;
    }
    if (commit_seconds_ != nullptr) {
      commit_seconds_->observe(std::chrono::duration<double>(Clock::now() - started).count());
      batch_size_->observe(static_cast<double>(done->size()));
    }
    commits_.fetch_add(1, std::memory_order_relaxed);
    committed_requests_.fetch_add(done->size(), std::memory_order_relaxed);
    std::size_t largest = largest_batch_.load(std::memory_order_relaxed);
    while (done->size() > largest && !largest_batch_.compare_exchange_weak(
                                         largest, done->size(), std::memory_order_relaxed)) {
    }
    for (auto& work : *done) complete(work);
  });
  // After the hand-over, so no request waits for it.
  checkpointer_->after_batch(writer_db_);
}

// A SAVEPOINT and a RELEASE per request are a measurable share of the
// writer's time per event (docs/performance.md), and a failing request is
// rare. So the batch runs without them first; when a request fails, the
// transaction is rolled back, the per-transaction state reset, and the batch
// runs again with a SAVEPOINT per request.
Result<void> Store::Impl::write_batch(std::vector<Work>& batch) {
  if (auto r = begin_batch(); !r) return r;
  const bool all_ok =
      std::all_of(batch.begin(), batch.end(), [this](Work& work) { return apply_work(work); });
  if (all_ok) return run(kCommit);
  // SQLite ended the transaction itself (a full disk, an I/O error): the
  // batch fails, as it would inside a savepoint, without being run again.
  if (!writer_db_.in_transaction()) return err(Errc::store_unavailable);
  if (auto r = run(kRollback); !r) return r;
  // Every request's result is set again by the second pass.
  if (auto r = begin_batch(); !r) return r;
  for (auto& work : batch) {
    if (auto r = apply_in_savepoint(work); !r) return r;
  }
  return run(kCommit);
}

// BEGIN IMMEDIATE for a batch (either pass), its per-transaction state fresh:
// nothing overwritten yet, no audit key read yet.
Result<void> Store::Impl::begin_batch() {
  overwrote_ = false;
  batch_audit_key_.reset();
  registration_.ended();
  if (auto r = run(kBegin); !r) return r;
  // Renewed with the requests, so a new version is published in the first
  // transaction that may store keys wrapped under it. A failure here is the
  // lease's alone: the requests go on (the idle writer retries).
  if (registration_.due(*kek_)) static_cast<void>(registration_.renew(writer_db_, *kek_));
  return {};
}

// Applies one request; its outcome is kept in its result. True when it succeeded.
bool Store::Impl::apply_work(Work& work) {
  return std::visit(
      [this](auto& w) {
        try {
          if (auto allowed = registration_.refuse_retired(writer_db_, new_keys(w)); !allowed) {
            w.result = allowed.error();
          } else {
            w.result = apply(w);
          }
        } catch (const std::exception&) {
          w.result = err(Errc::internal);
        }
        return w.result->has_value();
      },
      work);
}

// One request inside its SAVEPOINT. The request's own failure is kept in its
// result and rolled back to the savepoint; an error returned from here fails
// the whole batch (the savepoint statements failed, or SQLite ended the
// transaction on its own).
Result<void> Store::Impl::apply_in_savepoint(Work& work) {
  if (auto r = run(kSavepoint); !r) return r;
  if (apply_work(work)) return run(kRelease);
  if (!writer_db_.in_transaction()) return err(Errc::store_unavailable);
  if (auto r = run(kRollbackTo); !r) return r;
  return run(kRelease);
}

Result<void> Store::Impl::run(const char* sql) {
  auto stmt = writer_db_.prepare(sql);
  if (!stmt) return stmt.error();
  return stmt->run();
}

void Store::Impl::mark_unwritable(int sqlite_code) {
  if (!writable_.exchange(false)) return;
  log(LogLevel::error, "store not writable; writes fail until one succeeds",
      {{"error", sqlite3_errstr(sqlite_code)}, {"sqlite_code", sqlite_code}});
}

void Store::Impl::mark_writable() {
  if (syncer_->failed() || writable_.exchange(true)) return;
  log(LogLevel::warn, "store writable again");
}

// The probe write, with this Store's lease (at open, its first publication).
Result<void> Store::Impl::probe() {
  registration_.ended();
  if (auto r = run(kBegin); !r) return r;
  Result<void> r = [this]() -> Result<void> {
    auto stmt = writer_db_.prepare(kProbe);
    if (!stmt) return stmt.error();
    if (auto probed = stmt->bind_text(1, std::to_string(now_ms())).run(); !probed) return probed;
    return registration_.renew(writer_db_, *kek_);
  }();
  if (r) r = run(kCommit);
  if (r) {
    ++written_commits_;
    registration_.committed();
  } else {
    registration_.ended();
  }
  if (!r && writer_db_.in_transaction()) static_cast<void>(run(kRollback));
  return r;
}

void Store::Impl::renew_lease_idle() {
  set_busy_timeout(std::chrono::milliseconds(0));  // never delays a request queued meanwhile
  Result<void> r = run(kBegin);
  if (r) r = registration_.renew(writer_db_, *kek_);
  if (r) r = run(kCommit);
  set_busy_timeout(options_.busy_timeout);
  if (r) {
    ++written_commits_;
    registration_.committed();
    return;
  }
  registration_.ended();
  if (writer_db_.in_transaction()) static_cast<void>(run(kRollback));
}

void Store::Impl::drop_own_lease() noexcept {
  set_busy_timeout(std::min(options_.busy_timeout, std::chrono::milliseconds(1000)));
  Result<void> r = run(kBegin);
  if (r) r = registration_.drop(writer_db_);
  if (r) r = run(kCommit);
  if (!r && writer_db_.in_transaction()) static_cast<void>(run(kRollback));
}

Result<KekRetirement> Store::Impl::apply(RetireWork& w) {
  return registration_.retire(writer_db_, *kek_, w.version);
}

Result<std::optional<std::int64_t>> Store::Impl::tombstone_time(std::string_view source,
                                                                std::string_view wallet_id) {
  auto stmt = writer_db_.prepare(kTombstoneTime);
  if (!stmt) return stmt.error();
  auto step = stmt->bind_text(1, source).bind_text(2, wallet_id).step();
  if (!step) return step.error();
  if (*step == Step::done) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(stmt->column_int64(0));
}

// The ordering rules of schema.hpp for a delegation at `event_time_ms`.
Result<MaterialsState> Store::Impl::decide_materials(std::string_view source,
                                                     std::string_view wallet_id,
                                                     std::int64_t event_time_ms,
                                                     std::string_view event_id) {
  auto tomb = tombstone_time(source, wallet_id);
  if (!tomb) return tomb.error();
  if (*tomb && **tomb >= event_time_ms) return MaterialsState::revoked;

  auto stmt = writer_db_.prepare(kCurrentMaterials);
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

Result<void> Store::Impl::zero_materials(std::string_view source, std::string_view wallet_id,
                                         std::int64_t up_to_ms) {
  auto stmt = writer_db_.prepare(kZeroMaterials);
  if (!stmt) return stmt.error();
  auto r = stmt->bind_text(1, source).bind_text(2, wallet_id).bind_int64(3, up_to_ms).run();
  if (r) note_overwrites();
  return r;
}

Result<void> Store::Impl::shred_superseded(std::string_view source, std::string_view wallet_id,
                                           std::int64_t event_time_ms, std::string_view event_id) {
  auto r = store::redact_superseded(writer_db_, source, wallet_id, event_time_ms, event_id);
  if (!r) return r.error();
  if (*r) overwrote_ = true;
  return {};
}

Result<void> Store::Impl::store_materials(std::string_view source, std::string_view wallet_id,
                                          std::string_view event_id, std::string_view created_at,
                                          std::int64_t created_at_ms,
                                          const store::SealedMaterials& m) {
  // Overwrite the old ciphertext in place before the row is replaced, and
  // the payloads that carried older shares (RSA-encrypted to a key on this
  // host) with it.
  if (auto r = zero_materials(source, wallet_id, kAllTimes); !r) return r;
  if (auto r = shred_superseded(source, wallet_id, created_at_ms, event_id); !r) return r;
  auto stmt = writer_db_.prepare(kUpsertMaterials);
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

Result<void> Store::Impl::revoke(std::string_view source, std::string_view wallet_id,
                                 std::int64_t revoked_at_ms, std::string_view revoked_at,
                                 std::string_view event_id) {
  if (auto r = zero_materials(source, wallet_id, revoked_at_ms); !r) return r;
  const auto by_wallet = [&](const char* sql) -> Result<void> {
    auto stmt = writer_db_.prepare(sql);
    if (!stmt) return stmt.error();
    return stmt->bind_text(1, source).bind_text(2, wallet_id).bind_int64(3, revoked_at_ms).run();
  };
  if (auto r = by_wallet(kDeleteMaterials); !r) return r;
  {
    auto stmt = writer_db_.prepare(kUpsertTombstone);
    if (!stmt) return stmt.error();
    auto r = stmt->bind_text(1, source)
                 .bind_text(2, wallet_id)
                 .bind_int64(3, revoked_at_ms)
                 .bind_text(4, revoked_at)
                 .bind_text(5, event_id)
                 .run();
    if (!r) return r;
  }
  if (auto r = by_wallet(kZeroCreatedPayloads); !r) return r;
  note_overwrites();
  if (auto r = by_wallet(kRedactCreatedPayloads); !r) return r;
  return by_wallet(kSettleRevokedFailures);
}

Result<void> Store::Impl::redact_event(std::int64_t id) {
  for (const char* sql : {kZeroEventPayload, kRedactEventPayload}) {
    auto stmt = writer_db_.prepare(sql);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, id).run(); !r) return r;
  }
  note_overwrites();
  return {};
}

Result<WriteResult> Store::Impl::apply(WriteWork& w) {
  const EventRow& e = w.event;
  std::optional<std::int64_t> history_copy;  // replaced by this signed delivery
  {
    auto stmt = writer_db_.prepare(kFindExisting);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, e.source).bind_text(2, e.idem_key).step();
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
    auto del = writer_db_.prepare(kDeleteEvent);
    if (!del) return del.error();
    if (auto r = del->bind_int64(1, *history_copy).run(); !r) return r.error();
  }

  MaterialsState state = MaterialsState::none;
  if (w.materials || w.decrypt_failure) {
    auto decided = decide_materials(e.source, e.wallet_id, e.event_time_ms, e.idem_key);
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
    auto stmt = writer_db_.prepare(kInsertEvent);
    if (!stmt) return stmt.error();
    stmt->bind_text(1, e.source)
        .bind_text(2, e.idem_key)
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
    auto r = store::advance_sequence(writer_db_, e.source, e.sequence->subscription_id,
                                     e.sequence->number, e.received_at_ms);
    if (!r) return r.error();
  }

  if (state == MaterialsState::stored) {
    auto r = store_materials(e.source, e.wallet_id, e.idem_key, e.event_time, e.event_time_ms,
                             *w.materials);
    if (!r) return r.error();
  }
  if (w.revoke) {
    auto r = revoke(e.source, e.wallet_id, e.event_time_ms, e.event_time, e.idem_key);
    if (!r) return r.error();
    // In the revocation's own SAVEPOINT: both commit, or neither.
    auto seq = append_audit(AuditEntry{"source:" + e.source, "revoke", e.wallet_id, "ok"});
    if (!seq) return seq.error();
  }
  return WriteResult{id, false, state, history_copy.has_value()};
}

Result<MaterialsState> Store::Impl::apply(ResolveWork& w) {
  std::string event_time;
  std::int64_t event_time_ms = 0;
  {
    auto stmt = writer_db_.prepare(kPendingEvent);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, w.event_id).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_text(5) != "decrypt_failed") {
      return err(Errc::not_found);
    }
    if (stmt->column_text(0) != w.source || stmt->column_text(1) != w.idem_key ||
        stmt->column_text(2) != w.wallet_id) {
      return err(Errc::internal);  // sealed for another row; cannot happen
    }
    event_time = stmt->column_text(3);
    event_time_ms = stmt->column_int64(4);
  }

  const auto* reason = std::get_if<std::string>(&w.outcome);
  MaterialsState state = MaterialsState::decrypt_failed;
  if (reason != nullptr) {
    auto stmt = writer_db_.prepare(kSetFailureReason);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, w.event_id).bind_text(2, *reason).run(); !r) {
      return r.error();
    }
  } else {
    const auto& materials = std::get<store::SealedMaterials>(w.outcome);
    auto decided = decide_materials(w.source, w.wallet_id, event_time_ms, w.idem_key);
    if (!decided) return decided.error();
    state = *decided;
    if (state == MaterialsState::stored) {
      auto r =
          store_materials(w.source, w.wallet_id, w.idem_key, event_time, event_time_ms, materials);
      if (!r) return r.error();
    } else {  // revoked or superseded: its payload goes, like the others'
      if (auto r = redact_event(w.event_id); !r) return r.error();
    }
    auto stmt = writer_db_.prepare(kSettleEvent);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_int64(1, w.event_id).bind_text(2, materials_state_name(state)).run();
        !r) {
      return r.error();
    }
  }
  // In the resolution's own SAVEPOINT: both commit, or neither.
  auto seq = append_audit(
      AuditEntry{w.actor, "reprocess", std::to_string(w.event_id),
                 clip_audit_field(resolution_outcome(state, reason != nullptr ? *reason : ""))});
  if (!seq) return seq.error();
  return state;
}

Result<std::int64_t> Store::Impl::append_audit(const AuditEntry& entry) {
  if (!batch_audit_key_) {
    // Read inside this write transaction: until it ends, the write lock keeps
    // another process's `keys rewrap` from moving it.
    auto wrapped = store::read_audit_key(writer_db_);
    if (!wrapped) return wrapped.error();
    if (!*wrapped) return err(Errc::store_corrupt);
    auto key = store::unwrap_dek(*kek_, **wrapped, store::audit_key_ad());
    if (!key) return key.error();
    batch_audit_key_ = std::move(*key);
  }
  return store::append_audit(writer_db_, *batch_audit_key_, entry, now_ms());
}

Result<std::int64_t> Store::Impl::apply(AuditWork& w) { return append_audit(w.entry); }

Result<std::uint64_t> Store::Impl::apply(RewrapWork& w) {
  std::uint64_t applied = 0;  // rows that still held the key that was read
  for (const auto& e : w.events) {
    auto stmt = writer_db_.prepare(kRewrapEvent);
    if (!stmt) return stmt.error();
    if (auto r = bind_rewrap(*stmt, e.from, e.to).bind_int64(6, e.id).run(); !r) return r.error();
    applied += static_cast<std::uint64_t>(sqlite3_changes(writer_db_.handle()));
  }
  for (const auto& m : w.materials) {
    auto stmt = writer_db_.prepare(kRewrapMaterials);
    if (!stmt) return stmt.error();
    auto r = bind_rewrap(*stmt, m.from, m.to)
                 .bind_text(6, m.source)
                 .bind_text(7, m.wallet_id)
                 .bind_text(8, m.event_id)
                 .run();
    if (!r) return r.error();
    applied += static_cast<std::uint64_t>(sqlite3_changes(writer_db_.handle()));
  }
  if (w.audit_key) {
    auto replaced = store::replace_audit_key(writer_db_, w.audit_key->from, w.audit_key->to);
    if (!replaced) return replaced.error();
    applied += *replaced;
  }
  return applied;
}

// ---------------------------------------------------------------------------
// Lifetime.

void Store::Impl::close() {
  std::lock_guard close_lock(close_mu_);
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) {
    // close() from a completion (on the writer thread) cannot join itself: it
    // only stops accepting; the writer drains and exits, and the destructor,
    // which must run on another thread, joins and closes.
    if (writer_.get_id() == std::this_thread::get_id()) return;
    writer_.join();
  }
  // The same from a completion on the syncer thread. Otherwise the writer
  // has handed over its last batch: sync it and run its completions.
  if (syncer_->on_thread()) return;
  syncer_->stop();
  writable_.store(false);
  checkpointer_->stop();
  {
    std::lock_guard lock(read_mu_);
    reader_db_.close();
  }
  if (writer_db_.handle() != nullptr) {
    drop_own_lease();
    // Fold the WAL into the database file and truncate it; closing the last
    // connection then removes the -wal and -shm files. Best effort: another
    // process may still be reading.
    static_cast<void>(checkpoint_truncate());
    writer_db_.close();
  }
}

namespace {

// Connection setup of schema.hpp, the audit key of a new or upgraded file
// (audit_chain.hpp: prepare_audit_key) and the one-time redaction of
// superseded delegations (supersede.hpp); any failure means the store is
// unavailable.
Result<void> setup_writer(Connection& db, const Kek& kek) {
  sqlite3* h = db.handle();
  int defensive = 0;
  if (sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, &defensive) != SQLITE_OK ||
      defensive != 1) {
    return err(Errc::store_unavailable);
  }
  if (sqlite3_db_readonly(h, "main") != 0) return err(Errc::store_unavailable);
  auto mode = db.query_text(store::schema::kJournalModeWal);
  if (!mode || *mode != "wal") return err(Errc::store_unavailable);
  if (!db.exec(store::schema::kWriterPragmas)) return err(Errc::store_unavailable);
  for (auto [pragma, expected] :
       {std::pair{"PRAGMA synchronous", "1"}, std::pair{"PRAGMA secure_delete", "1"},
        std::pair{"PRAGMA foreign_keys", "1"}}) {
    auto value = db.query_text(pragma);
    if (!value || *value != expected) return err(Errc::store_unavailable);
  }

  if (!db.exec("BEGIN IMMEDIATE")) return err(Errc::store_unavailable);
  bool overwrote = false;
  auto schema = [&]() -> Result<void> {
    if (auto r = db.exec(store::schema::kCreateTables); !r) return r;
    if (auto r = db.exec(store::kCreateSequences); !r) return r;
    if (auto r = db.exec(store::kCreateKekRegistry); !r) return r;
    auto version = db.query_text(store::schema::kSelectVersion);
    if (!version) return version.error();
    // New file ('') or version 1: set the version; the audit key is drawn now.
    const bool upgrade = version->empty() || *version == store::schema::kPreviousVersionText;
    // A file of another (newer) schema version is left untouched.
    if (!upgrade && *version != store::schema::kVersionText) return err(Errc::store_unavailable);
    if (upgrade) {
      auto stmt = db.prepare(store::schema::kSetVersion);
      if (!stmt) return stmt.error();
      if (auto r = stmt->bind_text(1, store::schema::kVersionText).run(); !r) return r;
    }
    if (auto r = store::prepare_audit_key(db, kek, upgrade); !r) return r;
    auto redacted = store::redact_superseded_once(db);
    if (!redacted) return redacted.error();
    overwrote = *redacted;
    return {};
  }();
  if (!schema || !db.exec("COMMIT")) {
    if (db.in_transaction()) static_cast<void>(db.exec("ROLLBACK"));
    return err(Errc::store_unavailable);
  }
  // As after every commit that zero-overwrote ciphertext (schema.hpp); best
  // effort: a reader of an old snapshot defers it to the next overwrite.
  if (overwrote) static_cast<void>(db.exec("PRAGMA wal_checkpoint(TRUNCATE)"));
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// Store.

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  if (impl_) impl_->close();
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options,
                                           std::shared_ptr<const Kek> kek) {
  if (!kek) return err(Errc::kek_unavailable);
  if (options.path.empty() || !create_private_file(options.path)) {
    return err(Errc::store_unavailable);
  }
  auto writer = Connection::open(options.path,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 options.busy_timeout);
  if (!writer) return err(Errc::store_unavailable);
  if (auto r = setup_writer(*writer, *kek); !r) return r.error();
  auto reader = Connection::open(options.path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                 options.busy_timeout);
  if (!reader || !reader->exec(store::schema::kReaderPragmas)) {
    return err(Errc::store_unavailable);
  }

  MetricSeries* sync_seconds = nullptr;
  MetricSeries* checkpoint_seconds = nullptr;
  if (options.metrics != nullptr) {
    sync_seconds =
        &options.metrics
             ->histogram("hookvault_store_wal_sync_seconds",
                         "WAL syncs (fdatasync) before commits are acknowledged", {}, kDiskBuckets)
             .with({});
    checkpoint_seconds =
        &options.metrics
             ->histogram("hookvault_store_wal_checkpoint_seconds",
                         "WAL checkpoints: copying frames into the database file and syncing it",
                         {}, kDiskBuckets)
             .with({});
  }
  auto checkpointer = store::Checkpointer::start(
      options.path, store::CheckpointOptions{options.checkpoint_pages, options.wal_limit_pages,
                                             checkpoint_seconds});
  if (!checkpointer) return checkpointer.error();
  auto syncer = store::Syncer::start(options.path, sync_seconds);
  if (!syncer) return syncer.error();
  std::array<std::uint8_t, 16> holder{};  // the lease's holder id (kek_registry.hpp)
  if (!random_bytes(holder)) return err(Errc::internal);
  auto impl =
      std::make_unique<Impl>(options, std::move(kek), std::move(*writer), std::move(*reader),
                             std::move(*checkpointer), std::move(*syncer), to_hex(holder));
  // Prove that a commit reaches the disk before reporting the store writable:
  // commit, then sync the WAL through the write connection's own file, whose
  // first sync of a new WAL also syncs its directory entry (the syncer's
  // connection did not create the file, so its syncs do not).
  if (!impl->probe() || !store::sync_wal(impl->writer_db_)) return err(Errc::store_unavailable);
  impl->start();
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

void Store::submit(WriteRequest request, Completion done) {
  if (!impl_->accepting_now()) {
    call_completion(done, err(Errc::store_unavailable));
    return;
  }
  auto prepared = impl_->prepare_write(request);
  if (!prepared) {
    call_completion(done, prepared.error());
    return;
  }
  prepared->done = std::move(done);
  impl_->enqueue(Work(std::move(*prepared)));
}

Result<WriteResult> Store::write(WriteRequest request) {
  return impl_->run_sync<WriteResult>(
      [&](Completion done) { submit(std::move(request), std::move(done)); });
}

// Caller's thread: the read-side check, then the materials are sealed for
// the event's row and the plaintext wiped, as submit() does.
Result<ResolveWork> Store::Impl::prepare_resolve(
    std::int64_t event_id, std::variant<DelegationMaterials, std::string>& outcome,
    std::string actor) {
  if (!accepting_now()) return err(Errc::store_unavailable);
  if (actor.empty()) return err(Errc::missing_field);
  if (actor.size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  ResolveWork work;
  work.event_id = event_id;
  work.actor = std::move(actor);
  auto found = with_reader([&](Connection& db) -> Result<void> {
    auto stmt = db.prepare(kPendingEvent);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, event_id).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_text(5) != "decrypt_failed") {
      return err(Errc::not_found);
    }
    work.source = stmt->column_text(0);
    work.idem_key = stmt->column_text(1);
    work.wallet_id = stmt->column_text(2);
    return {};
  });
  if (!found) return found.error();

  if (auto* materials = std::get_if<DelegationMaterials>(&outcome)) {
    if (work.wallet_id.empty()) return err(Errc::missing_field);
    if (!materials->wallet_id.empty() && materials->wallet_id != work.wallet_id) {
      return err(Errc::invalid_field);
    }
    auto sealed =
        store::seal_materials(*kek_, work.source, work.wallet_id, work.idem_key, *materials);
    outcome = std::string();  // wipes the plaintext now
    if (!sealed) return sealed.error();
    work.outcome = std::move(*sealed);
  } else {
    work.outcome = std::move(std::get<std::string>(outcome));
  }
  return work;
}

Result<MaterialsState> Store::resolve_decrypt_failure(
    std::int64_t event_id, std::variant<DelegationMaterials, std::string> outcome,
    std::string actor) {
  return impl_->run_sync<MaterialsState>([&](std::function<void(Result<MaterialsState>)> done) {
    auto work = impl_->prepare_resolve(event_id, outcome, std::move(actor));
    if (!work) return done(work.error());
    work->done = std::move(done);
    impl_->enqueue(Work(std::move(*work)));
  });
}

Result<std::optional<std::int64_t>> Store::find_event(std::string_view source,
                                                      std::string_view idempotency_key) const {
  return impl_->with_reader([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto stmt = db.prepare(kReadFindEvent);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).bind_text(2, idempotency_key).step();
    if (!step) return step.error();
    if (*step == Step::done) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt->column_int64(0));
  });
}

Result<std::optional<EventMeta>> Store::event_meta(std::int64_t id) const {
  return impl_->with_reader([&](Connection& db) -> Result<std::optional<EventMeta>> {
    auto stmt = db.prepare(kReadEventMeta);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, id).step();
    if (!step) return step.error();
    if (*step == Step::done) return std::optional<EventMeta>();
    auto meta = meta_from_row(*stmt);
    if (!meta) return meta.error();
    return std::optional<EventMeta>(std::move(*meta));
  });
}

Result<std::vector<EventMeta>> Store::list_events(const EventQuery& query) const {
  if (query.limit == 0) return std::vector<EventMeta>();
  const std::int64_t limit = store::sql_limit(query.limit);
  return impl_->with_reader([&](Connection& db) -> Result<std::vector<EventMeta>> {
    auto stmt = db.prepare(query.source ? kReadListSource : kReadListAll);
    if (!stmt) return stmt.error();
    if (query.source) {
      stmt->bind_text(1, *query.source).bind_int64(2, query.after).bind_int64(3, limit);
    } else {
      stmt->bind_int64(1, query.after).bind_int64(2, limit);
    }
    return metas_from(*stmt);
  });
}

Result<std::vector<EventMeta>> Store::decrypt_failures() const {
  return impl_->with_reader([&](Connection& db) -> Result<std::vector<EventMeta>> {
    auto stmt = db.prepare(kReadDecryptFailures);
    if (!stmt) return stmt.error();
    return metas_from(*stmt);
  });
}

Result<std::optional<SecretBytes>> Store::event_payload(std::int64_t id) const {
  struct Row {
    std::string source;
    std::string idem_key;
    store::WrappedKey key;
    Bytes payload;
  };
  auto row = impl_->with_reader([&](Connection& db) -> Result<std::optional<Row>> {
    auto stmt = db.prepare(kReadPayload);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, id).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_is_null(5)) return std::optional<Row>();
    auto key = wrapped_key_at(*stmt, stmt->column_text(2), 3, 4);
    if (!key) return key.error();
    return std::optional<Row>(
        Row{stmt->column_text(0), stmt->column_text(1), std::move(*key), stmt->column_blob(5)});
  });
  if (!row) return row.error();
  if (!*row) return std::optional<SecretBytes>();
  const Row& r = **row;
  auto plain = store::open_payload(*impl_->kek_, r.source, r.idem_key, r.key, r.payload);
  if (!plain) return plain.error();
  return std::optional<SecretBytes>(std::move(*plain));
}

Result<std::optional<StoredMaterials>> Store::materials(std::string_view source,
                                                        std::string_view wallet_id) const {
  struct Row {
    StoredMaterials meta;
    store::WrappedKey key;
    Bytes share;
    Bytes api_key;
  };
  auto row = impl_->with_reader([&](Connection& db) -> Result<std::optional<Row>> {
    auto stmt = db.prepare(kReadMaterials);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).bind_text(2, wallet_id).step();
    if (!step) return step.error();
    if (*step == Step::done) return std::optional<Row>();
    auto key = wrapped_key_at(*stmt, stmt->column_text(5), 6, 7);
    if (!key) return key.error();
    Row out;
    out.meta.source = std::string(source);
    out.meta.wallet_id = std::string(wallet_id);
    out.meta.user_id = stmt->column_text(0);
    out.meta.chain = stmt->column_text(1);
    out.meta.share_set_id = stmt->column_optional_text(2);
    out.meta.event_id = stmt->column_text(3);
    out.meta.created_at = stmt->column_text(4);
    out.key = std::move(*key);
    out.share = stmt->column_blob(8);
    out.api_key = stmt->column_blob(9);
    return std::optional<Row>(std::move(out));
  });
  if (!row) return row.error();
  if (!*row) return std::optional<StoredMaterials>();
  Row& r = **row;
  auto opened = store::open_materials(*impl_->kek_, r.meta.source, r.meta.wallet_id,
                                      r.meta.event_id, r.key, r.share, r.api_key);
  if (!opened) return opened.error();
  r.meta.share = std::move(opened->share);
  r.meta.api_key = std::move(opened->api_key);
  return std::optional<StoredMaterials>(std::move(r.meta));
}

Result<std::vector<SubscriptionSequence>> Store::sequences(
    std::optional<std::string_view> source) const {
  return impl_->with_reader([&](Connection& db) { return store::read_sequences(db, source); });
}

Result<std::uint64_t> Store::count_events_with_key_prefix(std::string_view source,
                                                          std::string_view prefix) const {
  return impl_->with_reader([&](Connection& db) -> Result<std::uint64_t> {
    auto stmt = db.prepare(kReadCountPrefix);
    if (!stmt) return stmt.error();
    // substr() rather than LIKE: keys may hold '%' and '_'.
    auto step = stmt->bind_text(1, source)
                    .bind_text(2, prefix)
                    .bind_int64(3, static_cast<std::int64_t>(prefix.size()))
                    .step();
    if (!step) return step.error();
    return static_cast<std::uint64_t>(stmt->column_int64(0));
  });
}

Result<std::optional<std::int64_t>> Store::latest_event_time_ms(std::string_view source) const {
  return impl_->with_reader([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto stmt = db.prepare(kReadLatestEventTime);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt->column_int64(0));
  });
}

void Store::audit(AuditEntry entry, AuditCompletion done) {
  if (!impl_->accepting_now()) {
    call_completion(done, err(Errc::store_unavailable));
    return;
  }
  if (auto r = store::check_audit_entry(entry); !r) {
    call_completion(done, r.error());
    return;
  }
  AuditWork work;
  work.entry = std::move(entry);
  work.done = std::move(done);
  impl_->enqueue(Work(std::move(work)));
}

Result<std::int64_t> Store::audit_sync(AuditEntry entry) {
  return impl_->run_sync<std::int64_t>(
      [&](AuditCompletion done) { audit(std::move(entry), std::move(done)); });
}

Result<std::vector<AuditRecord>> Store::audit_records(std::int64_t after, std::size_t limit) const {
  return impl_->with_reader([&](Connection& db) { return store::read_audit(db, after, limit); });
}

Result<AuditVerifyResult> Store::verify_audit() const {
  return impl_->with_reader(
      [&](Connection& db) { return store::verify_audit_chain(db, *impl_->kek_); });
}

Result<std::vector<KekUsage>> Store::kek_usage() const {
  return impl_->with_reader([&](Connection& db) -> Result<std::vector<KekUsage>> {
    std::vector<KekUsage> out;
    {
      auto stmt = db.prepare(kReadKekUsage);
      if (!stmt) return stmt.error();
      auto read = store::for_each_row(*stmt, [&](const Statement& row) -> Result<void> {
        auto version = kek_version_from(row.column_int64(1));
        if (!version) return version.error();
        out.push_back(KekUsage{row.column_text(0), *version,
                               static_cast<std::uint64_t>(row.column_int64(2)),
                               static_cast<std::uint64_t>(row.column_int64(3)), false});
        return {};
      });
      if (!read) return read.error();
    }
    auto audit_key = store::read_audit_key(db);
    if (!audit_key) return audit_key.error();
    if (*audit_key) {
      const auto& k = **audit_key;
      auto it = std::find_if(out.begin(), out.end(), [&](const KekUsage& u) {
        return u.kek_id == k.kek_id && u.version == k.kek_version;
      });
      if (it == out.end()) {
        KekUsage u;
        u.kek_id = k.kek_id;
        u.version = k.kek_version;
        it = out.insert(std::upper_bound(out.begin(), out.end(), u,
                                         [](const KekUsage& a, const KekUsage& b) {
                                           return std::tie(a.kek_id, a.version) <
                                                  std::tie(b.kek_id, b.version);
                                         }),
                        std::move(u));
      }
      it->audit_key = true;
    }
    return out;
  });
}

// Caller's thread: copies up to `limit` old-version keys out under the read
// lock, then rewraps them after it (KEK work, an HSM's under pkcs11).
Result<RewrapWork> Store::Impl::prepare_rewrap(std::size_t limit, std::uint32_t current) {
  if (!accepting_now()) return err(Errc::store_unavailable);
  const Kek& kek = *kek_;
  RewrapWork work;
  auto read = with_reader([&](Connection& db) -> Result<void> {
    const auto old_rows = [&](const char* sql, auto&& push) -> Result<void> {
      auto stmt = db.prepare(sql);
      if (!stmt) return stmt.error();
      stmt->bind_text(1, kek.id())
          .bind_int64(2, current)
          .bind_int64(3, store::sql_limit(limit - work.size()));
      return store::for_each_row(*stmt, [&](const Statement& row) -> Result<void> {
        auto key = wrapped_key_at(row, kek.id(), 3, 4);
        if (!key) return key.error();
        push(row, std::move(*key));
        return {};
      });
    };
    auto events = old_rows(kReadOldEvents, [&](const Statement& row, store::WrappedKey key) {
      work.events.push_back(EventRewrap{row.column_int64(0), row.column_text(1), row.column_text(2),
                                        std::move(key), store::WrappedKey{}});
    });
    if (!events) return events;
    if (work.size() < limit) {
      auto materials =
          old_rows(kReadOldMaterials, [&](const Statement& row, store::WrappedKey key) {
            work.materials.push_back(MaterialsRewrap{row.column_text(0), row.column_text(1),
                                                     row.column_text(2), std::move(key),
                                                     store::WrappedKey{}});
          });
      if (!materials) return materials;
    }
    if (work.size() < limit) {
      auto audit_key = old_audit_key(db, kek, current);
      if (!audit_key) return audit_key.error();
      if (*audit_key) work.audit_key = AuditKeyRewrap{std::move(**audit_key), store::WrappedKey{}};
    }
    return {};
  });
  if (!read) return read.error();
  work.short_batch = work.size() < limit;

  const auto refuse = [](std::string_view table, const std::string& row,
                         const boost::system::error_code& ec) {
    log(LogLevel::error, "rewrap: a wrapped key does not open; nothing of this batch is written",
        {{"table", std::string(table)},
         {"row", row},
         {"error", std::string(error_name(to_errc(ec)))}});
    return ec;
  };
  for (auto& e : work.events) {
    auto to = store::rewrap_key(kek, e.from, store::event_key_ad(e.source, e.idem_key));
    if (!to) return refuse("events", "id " + std::to_string(e.id), to.error());
    e.to = std::move(*to);
  }
  for (auto& m : work.materials) {
    auto to =
        store::rewrap_key(kek, m.from, store::materials_key_ad(m.source, m.wallet_id, m.event_id));
    if (!to) return refuse("materials", m.source + "/" + m.wallet_id, to.error());
    m.to = std::move(*to);
  }
  if (work.audit_key) {
    auto to = store::rewrap_key(kek, work.audit_key->from, store::audit_key_ad());
    if (!to) return refuse("meta", "audit_key", to.error());
    work.audit_key->to = std::move(*to);
  }
  // Nothing to move when wrap() used no newer version than the row's.
  const auto stays = [](const auto& k) { return k.to.kek_version <= k.from.kek_version; };
  std::erase_if(work.events, stays);
  std::erase_if(work.materials, stays);
  if (work.audit_key && stays(*work.audit_key)) work.audit_key.reset();
  return work;
}

Result<std::uint64_t> Store::Impl::count_old_keys(std::uint32_t current) const {
  return with_reader([&](Connection& db) -> Result<std::uint64_t> {
    auto stmt = db.prepare(kReadOldCount);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, kek_->id()).bind_int64(2, current).step();
    if (!step) return step.error();
    auto n = static_cast<std::uint64_t>(stmt->column_int64(0));
    auto audit_key = old_audit_key(db, *kek_, current);
    if (!audit_key) return audit_key.error();
    return *audit_key ? n + 1 : n;
  });
}

// Counts (a full COUNT over both tables) only when it must: after a short
// batch (so `remaining` is exact at the end of a run), on the first batch of
// a run, and whenever the tally would reach 0; after any other batch, the
// tally minus what it moved.
Result<std::uint64_t> Store::Impl::remaining_after(std::uint32_t current, std::uint64_t moved,
                                                   bool short_batch) {
  std::lock_guard lock(rewrap_mu_);
  if (!short_batch && rewrap_tally_ && rewrap_tally_->version == current &&
      rewrap_tally_->remaining > moved) {
    rewrap_tally_->remaining -= moved;
    return rewrap_tally_->remaining;
  }
  rewrap_tally_.reset();
  auto counted = count_old_keys(current);
  if (!counted) return counted.error();
  rewrap_tally_ = RewrapTally{current, *counted};
  return *counted;
}

Result<RewrapProgress> Store::rewrap_batch(std::size_t limit) {
  if (limit == 0) return err(Errc::internal);  // a caller bug
  const std::uint32_t current = impl_->kek_->version();
  bool short_batch = false;
  auto moved = impl_->run_sync<std::uint64_t>([&](std::function<void(Result<std::uint64_t>)> done) {
    auto work = impl_->prepare_rewrap(limit, current);
    if (!work) return done(work.error());
    short_batch = work->short_batch;
    if (work->size() == 0) return done(std::uint64_t{0});
    work->done = std::move(done);
    impl_->enqueue(Work(std::move(*work)));
  });
  if (!moved) return moved.error();
  auto remaining = impl_->remaining_after(current, *moved, short_batch);
  if (!remaining) return remaining.error();
  return RewrapProgress{*moved, *remaining, current};
}

Result<std::vector<KekLease>> Store::kek_leases() const {
  auto leases = impl_->with_reader([](Connection& db) { return store::live_leases(db, now_ms()); });
  if (leases) {
    std::erase_if(*leases,
                  [this](const KekLease& l) { return l.holder == impl_->registration_.holder(); });
  }
  return leases;
}

Result<KekRetirement> Store::retire_kek_version(std::uint32_t version) {
  if (version == 0) return err(Errc::invalid_field);
  return impl_->run_sync<KekRetirement>([&](std::function<void(Result<KekRetirement>)> done) {
    if (!impl_->accepting_now()) return done(err(Errc::store_unavailable));
    RetireWork work;
    work.version = version;
    work.done = std::move(done);
    impl_->enqueue(Work(std::move(work)));
  });
}

bool Store::writable() const noexcept {
  return impl_->writable_.load() && !impl_->syncer_->failed();
}

StoreStats Store::stats() const noexcept {
  StoreStats s;
  s.commits = impl_->commits_.load(std::memory_order_relaxed);
  s.committed_requests = impl_->committed_requests_.load(std::memory_order_relaxed);
  s.failed_batches = impl_->failed_batches_.load(std::memory_order_relaxed);
  s.largest_batch = impl_->largest_batch_.load(std::memory_order_relaxed);
  s.checkpoints = impl_->checkpointer_->checkpoints();
  s.checkpoint_failures = impl_->checkpointer_->failures();
  s.wal_syncs = impl_->syncer_->syncs();
  return s;
}

void Store::close() { impl_->close(); }

}  // namespace hookvault
