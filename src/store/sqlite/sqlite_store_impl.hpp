// The SQLite backend of Store (include/hookvault/sqlite_store.hpp), one
// class whose members are defined by job:
//   sqlite_store.cpp  open_sqlite_store, the entry points, close
//   writer.cpp        the group-commit writer thread, probes, retention
//   delegations.cpp   the ordering rules: delegations, revocations,
//                     resolutions (schema.hpp, ORDERING RULES)
//   rewrap.cpp        KEK rotation: rewrap_batch, kek_usage, leases, retire
//   reads.cpp         the reads on the read-only connection
// The SQL is in statements.hpp, the queued requests in work.hpp.
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
// - KEK registration (kek_registry.hpp) and leadership leases (leases.hpp):
//   the writer renews this Store's KEK lease in the probe's transaction at
//   open, in the first write transaction after its Kek's version changed or
//   its heartbeat fell due, and, when idle, in a transaction of its own
//   (waking at least every kLeaseCheck to look at the version), without
//   waiting for another process's lock; held leadership leases are renewed
//   in the same transactions. Each write transaction checks that no key it
//   stores is wrapped under a retired version (once per version and
//   transaction); retire_kek_version() and try_lease() are write
//   transactions of their own through the writer.
// - Blocking calls (write, audit_sync, resolve_decrypt_failure, rewrap_batch,
//   retire_kek_version, try_lease) wait for their completion; they refuse a
//   completion's thread (Store::in_completion) and the writer's, which would
//   wait for themselves.
// - Every wall-clock time the store records or compares (received_at,
//   audit records, KEK and leadership leases, retention) comes from
//   SqliteStoreOptions::clock.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "hookvault/clock.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "store/columns.hpp"
#include "store/sqlite/checkpointer.hpp"
#include "store/sqlite/connection.hpp"
#include "store/sqlite/kek_registry.hpp"
#include "store/sqlite/leases.hpp"
#include "store/sqlite/syncer.hpp"
#include "store/sqlite/work.hpp"

namespace hookvault::store::sqlite {

class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteStoreOptions& options, std::shared_ptr<const Kek> kek,
              Connection writer_db, Connection reader_db,
              std::unique_ptr<Checkpointer> checkpointer, std::unique_ptr<Syncer> syncer,
              const std::string& lease_holder);
  ~SqliteStore() override;  // close()

  // open_sqlite_store(), after the connections opened: proves that a commit
  // reaches the disk, then starts the writer thread.
  Result<void> start();

  // --- Store ------------------------------------------------------------------
  void submit(WriteRequest request, Completion done) override;
  Result<MaterialsState> resolve_decrypt_failure(
      std::int64_t row_id, std::variant<DelegationMaterials, std::string> outcome,
      std::string actor) override;
  Result<std::optional<std::int64_t>> find_event(std::string_view source,
                                                 std::string_view idempotency_key) const override;
  Result<std::optional<EventMeta>> event_meta(std::int64_t row_id) const override;
  Result<EventPage> list_events(const EventQuery& query) const override;
  Result<std::optional<SecretBytes>> event_payload(std::int64_t row_id) const override;
  Result<std::vector<EventMeta>> decrypt_failures() const override;
  Result<std::optional<StoredMaterials>> materials(std::string_view source,
                                                   std::string_view wallet_id) const override;
  Result<std::vector<SubscriptionSequence>> sequences(
      std::optional<std::string_view> source) const override;
  using Store::sequences;
  Result<std::uint64_t> count_events_with_key_prefix(std::string_view source,
                                                     std::string_view prefix) const override;
  Result<std::optional<std::int64_t>> latest_event_time_ms(std::string_view source) const override;
  bool writable() const noexcept override;
  void audit(AuditEntry entry, AuditCompletion done) override;
  Result<std::vector<AuditRecord>> audit_records(std::int64_t after,
                                                 std::size_t limit) const override;
  Result<AuditVerifyResult> verify_audit() const override;
  Result<std::vector<KekUsage>> kek_usage() const override;
  Result<std::vector<KekRef>> kek_refs() const override;
  Result<RewrapProgress> rewrap_batch(std::size_t limit) override;
  Result<std::vector<KekLease>> kek_leases() const override;
  Result<KekRetirement> retire_kek_version(std::uint32_t version) override;
  Result<std::unique_ptr<Lease>> try_lease(std::string_view name) override;
  StoreStats stats() const noexcept override;
  void close() override;

 private:
  // --- submission (caller's thread; sqlite_store.cpp) -----------------------
  Result<ResolveWork> prepare_resolve(std::int64_t row_id,
                                      std::variant<DelegationMaterials, std::string>& outcome,
                                      std::string actor);
  Result<RewrapWork> prepare_rewrap(std::size_t limit, std::uint32_t current);  // rewrap.cpp
  void enqueue(Work work);
  bool accepting_now() {
    std::lock_guard lock(mu_);
    return accepting_;
  }

  // The blocking calls: runs start(done) and waits until `done` was called
  // (by start itself on an early error, else by the syncer after the sync).
  // Errc::internal on the writer's thread or in a completion, which would
  // wait for itself.
  template <class T, class Start>
  Result<T> run_sync(Start&& start) {
    if (on_writer_thread() || in_completion() || syncer_->on_thread()) {
      return make_error_code(Errc::internal);
    }
    std::promise<Result<T>> promise;
    auto future = promise.get_future();
    std::forward<Start>(start)(std::function<void(Result<T>)>(
        [&promise](Result<T> r) { promise.set_value(std::move(r)); }));
    return future.get();
  }

  // Runs a request's completion (Store::run_completion) with its result, or
  // with `e`.
  static void complete(Work& work) noexcept;
  static void complete_with(Work& work, Errc e) noexcept;

  // --- writer thread (writer.cpp) -------------------------------------------
  void writer_loop();
  // `oldest`: when the batch's first (oldest) request was queued.
  void run_batch(std::vector<Work>& batch, std::chrono::steady_clock::time_point oldest);
  // An empty batch with room for a full one (up to 1,024 requests).
  std::vector<Work> empty_batch() const;
  // Completes every request of a batch that failed with store_unavailable.
  void fail_batch(std::vector<Work>& batch) noexcept;
  Result<void> write_batch(std::vector<Work>& batch);
  Result<void> begin_batch();
  Result<void> apply_in_savepoint(Work& work);
  bool apply_work(Work& work);
  Result<std::int64_t> apply(AuditWork& w);
  Result<KekRetirement> apply(RetireWork& w);
  Result<std::shared_ptr<LeaseState>> apply(LeaseWork& w);
  Result<std::int64_t> append_audit(const AuditEntry& entry);
  // The KEK lease and the leadership leases are due for renewal.
  bool leases_due() const noexcept;
  // Renews what is due, in the caller's transaction (a failure is the
  // leases' alone: logged by their keepers, retried on the next wake-up).
  void renew_leases();
  // The transaction's lease work committed, or did not.
  void leases_committed() noexcept;
  void leases_ended() noexcept;
  // The idle writer's lease renewal, in a transaction of its own.
  void renew_leases_idle();
  // close(): deletes this Store's leases (best effort; else they expire).
  void drop_own_leases() noexcept;
  Result<void> probe();
  Result<std::uint64_t> purge_expired();
  // writable_ turns false (logged with SQLite's reason, `sqlite_code`) or true
  // (logged); a call that changes nothing logs nothing.
  void mark_unwritable(int sqlite_code);
  void mark_writable();
  // Pages the write connection wrote to the WAL since the last call (SQLite
  // counts them per connection; this resets the count).
  int take_pages_written() noexcept;
  // The write connection's busy timeout; best effort (it only fails on a
  // closed connection, where every statement fails anyway).
  void set_busy_timeout(std::chrono::milliseconds timeout) noexcept {
    static_cast<void>(writer_db_.set_busy_timeout(timeout));
  }
  // PRAGMA wal_checkpoint(TRUNCATE) on the write connection; the SQLite code.
  int checkpoint_truncate() noexcept { return checkpointer_->truncate(writer_db_); }
  Result<void> run(const char* sql);

  // --- the ordering rules (writer thread; delegations.cpp) ------------------
  Result<WriteResult> apply(WriteWork& w);
  Result<MaterialsState> apply(ResolveWork& w);
  Result<std::optional<std::int64_t>> tombstone_time(std::string_view source,
                                                     std::string_view wallet_id);
  Result<MaterialsState> decide_materials(std::string_view source, std::string_view wallet_id,
                                          std::int64_t event_time_ms, std::string_view event_id);
  Result<void> store_materials(std::string_view source, std::string_view wallet_id,
                               std::string_view event_id, std::string_view created_at,
                               std::int64_t created_at_ms, const SealedMaterials& m);
  Result<void> zero_materials(std::string_view source, std::string_view wallet_id,
                              std::int64_t up_to_ms);
  // supersede.hpp: redact_superseded(), noting what it overwrote.
  Result<void> shred_superseded(std::string_view source, std::string_view wallet_id,
                                std::int64_t event_time_ms, std::string_view event_id);
  Result<void> revoke(std::string_view source, std::string_view wallet_id,
                      std::int64_t revoked_at_ms, std::string_view revoked_at,
                      std::string_view event_id);
  Result<void> redact_event(std::int64_t row_id);
  void note_overwrites() noexcept {
    if (sqlite3_changes(writer_db_.handle()) > 0) overwrote_ = true;
  }

  // --- rewrap (rewrap.cpp) ----------------------------------------------------
  Result<std::uint64_t> apply(RewrapWork& w);
  // Keys of this KEK under a version older than `current` (the audit key too).
  Result<std::uint64_t> count_old_keys(std::uint32_t current) const;
  // rewrap_batch()'s `remaining` after a batch that moved `moved` keys.
  Result<std::uint64_t> remaining_after(std::uint32_t current, std::uint64_t moved,
                                        bool short_batch);

  // --- reads ------------------------------------------------------------------
  template <class F>
  auto with_reader(F&& f) const -> decltype(f(std::declval<Connection&>())) {
    std::lock_guard lock(read_mu_);
    if (!reader_db_.handle()) return make_error_code(Errc::store_unavailable);
    return f(reader_db_);
  }

  // A blocking call from a completion would wait for its own thread.
  bool on_writer_thread() const noexcept { return writer_id_.load() == std::this_thread::get_id(); }

  const SqliteStoreOptions options_;
  const Clock& clock_;
  const std::size_t max_batch_;
  // Retention (writer thread only): when the next purge pass is due.
  std::chrono::steady_clock::time_point next_purge_{};
  const std::shared_ptr<const Kek> kek_;

  // Writer thread only (and open/close, when the thread is not running).
  Connection writer_db_;
  // Checkpoints the WAL on a thread of its own (checkpointer.hpp); stopped
  // by close() before the connections close.
  std::unique_ptr<Checkpointer> checkpointer_;
  // Syncs the WAL after each commit and then runs the completions
  // (syncer.hpp); stopped by close() after the writer, before the connections.
  std::unique_ptr<Syncer> syncer_;
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

  // This Store's KEK lease and the retired-version checks (kek_registry.hpp),
  // and its leadership leases (leases.hpp); writer thread only.
  KekRegistration registration_;
  LeaseKeeper leases_;

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
  MetricSeries* commit_seconds_ = nullptr;  // set when options.metrics is
  MetricSeries* batch_size_ = nullptr;
};

// The row reader shared by reads.cpp and rewrap.cpp (the rest: store/columns.hpp).
// The wrapped key of a row: `kek_id`, the version in column `version_col` and
// the wrapped bytes in column `blob_col`.
Result<WrappedKey> wrapped_key_at(const Statement& row, std::string kek_id, int version_col,
                                  int blob_col);
}  // namespace hookvault::store::sqlite
