// The PostgreSQL backend of Store (include/hookvault/pg_store.hpp), one class
// whose members are defined by job:
//   pg_store.cpp   open_pg_store, the entry points, submission, close
//   writer.cpp     the group-commit writer thread, reconnects, probes
//   apply.cpp      the ordering rules (delegations, revocations,
//                  resolutions), sequences and audit appends, inside the
//                  writer's transaction
//   reads.cpp      the reads, on a connection of their own
//   keys.cpp       KEK rotation: kek_usage, rewrap, registrations, retire
// The SQL is in statements.hpp; the tables and how each promise holds across
// instances in schema.hpp.
//
// Where the work happens
// - submit() runs on the caller's thread: it validates the request, seals
//   the payload and the materials (src/store/envelope.hpp, the same as
//   SQLite's), wipes the plaintext, and queues a WriteWork holding only
//   ciphertext and metadata. The queue is bounded (max_queue): beyond it a
//   request completes at once with Errc::overloaded.
// - The writer thread owns the write connection (libpq.hpp: non-blocking,
//   every wait bounded). It takes everything queued (at most max_batch) into
//   one transaction: BEGIN, each request in a SAVEPOINT of its own (a request
//   that fails is rolled back to it and fails alone; a deadlock or
//   serialization failure between instances is retried), this writer's row
//   in `writers` unless the batch stored an event (so that the COMMIT of a
//   batch of duplicates writes WAL and waits for the synchronous standby
//   too), then COMMIT. Completions run on
//   the writer thread once COMMIT returned with no WARNING.
// - A WARNING on COMMIT (a cancelled wait for the synchronous standby), a
//   lost connection or an error at COMMIT completes every request of the
//   batch with Errc::store_unavailable; the connection is dropped and the
//   writer reconnects (libpq tries every host of the conninfo, and
//   target_session_attrs=read-write skips standbys). writable() is false from
//   then until a commit succeeds; the idle writer probes every second. While
//   writable, the idle writer asks its server every second whether it is
//   still a primary (ping): a server that went away or was demoted turns
//   writable() false within about a second, without traffic.
// - The COMMIT is never given a deadline: hookvault never abandons a COMMIT
//   itself (schema.hpp, SESSIONS). The statements before it are bounded by
//   kStatementTimeout; a statement that overruns drops the connection (the
//   server then rolls the transaction back).
// - Reads use one connection of their own under a mutex, reconnected when
//   lost; no read waits for the writer.
// - Leadership leases are AdvisoryLease (lease.hpp) on connections of their
//   own; close() releases them.
// - Every wall-clock time the store records or compares comes from
//   PgStoreOptions::clock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "hookvault/clock.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/pg_store.hpp"
#include "hookvault/store.hpp"
#include "store/columns.hpp"
#include "store/envelope.hpp"
#include "store/pg/lease.hpp"
#include "store/pg/libpq.hpp"
#include "store/pg/sequences.hpp"
#include "store/submission.hpp"

namespace hookvault::store::pg {

// Every statement before COMMIT, and every read, is bounded by this.
inline constexpr std::chrono::seconds kStatementTimeout{30};
// A COMMIT waiting longer than this makes writable() false until it returns.
inline constexpr std::chrono::seconds kSlowCommit{5};

struct EventRewrap {
  std::int64_t row_id = 0;
  WrappedKey from;
  WrappedKey to;
};
struct MaterialsRewrap {
  std::string source;
  std::string wallet_id;
  std::string event_id;
  WrappedKey from;
  WrappedKey to;
};
struct RewrapWork {
  std::vector<EventRewrap> events;
  std::vector<MaterialsRewrap> materials;
  std::optional<std::pair<WrappedKey, WrappedKey>> audit_key;  // from, to
  std::function<void(Result<std::uint64_t>)> done;
  std::optional<Result<std::uint64_t>> result;
};

struct RetireWork {
  std::uint32_t version = 0;
  std::function<void(Result<KekRetirement>)> done;
  std::optional<Result<KekRetirement>> result;
};

using Work = std::variant<WriteWork, ResolveWork, AuditWork, RewrapWork, RetireWork>;

// The columns every insert of an event starts with (source to received_at_ms:
// sql::kInsertEvent), and its wrapped key and payload.
Params& bind_event_head(Params& p, const EventRow& e);
Params& bind_sealed(Params& p, const SealedPayload& sealed);
// The same columns of several events, as arrays (sql::kInsertPlainEvents).
Params bind_events(const std::vector<const EventRow*>& rows);

// A leadership lease: its AdvisoryLease, released by the Lease's destructor
// or by the store's close(), whichever comes first.
struct LeaseSlot {
  std::mutex mu;
  std::unique_ptr<AdvisoryLease> lease;  // guarded by mu
};

class PgStore final : public Store {
 public:
  PgStore(const PgStoreOptions& options, std::shared_ptr<const Kek> kek, std::string holder);
  ~PgStore() override;  // close()

  // open_pg_store(): connects, ensures the schema, probes, starts the writer.
  Result<void> start(std::string* why);

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
  // False too while a COMMIT has waited longer than kSlowCommit (for a
  // synchronous standby that went away, say).
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
  // --- submission (caller's thread; pg_store.cpp) ----------------------------
  Result<ResolveWork> prepare_resolve(std::int64_t row_id,
                                      std::variant<DelegationMaterials, std::string>& outcome,
                                      std::string actor);
  Result<RewrapWork> prepare_rewrap(std::size_t limit, std::uint32_t current);  // keys.cpp
  // Queues `work`; false (nothing queued) when closed or full: `why` says which.
  bool enqueue(Work& work, Errc* why);

  template <class T, class Start>
  Result<T> run_sync(Start&& start) {
    if (on_writer_thread() || in_completion()) return make_error_code(Errc::internal);
    std::promise<Result<T>> promise;
    auto future = promise.get_future();
    std::forward<Start>(start)(std::function<void(Result<T>)>(
        [&promise](Result<T> r) { promise.set_value(std::move(r)); }));
    return future.get();
  }
  // Queues `work` for a blocking call, or completes it with the refusal.
  template <class W>
  void enqueue_or_refuse(W work) {
    Work w(std::move(work));
    Errc why = Errc::store_unavailable;
    if (!enqueue(w, &why)) complete_with(w, why);
  }
  static void complete(Work& work) noexcept;
  static void complete_with(Work& work, Errc e) noexcept;

  // --- writer thread (writer.cpp) ----------------------------------------------
  void writer_loop();
  void run_batch(std::vector<Work>& batch);
  Result<void> write_batch(std::vector<Work>& batch);
  Result<bool> fast_batch(std::vector<Work>& batch);
  void apply_in_savepoint(Work& work);
  // The statement's result on the write connection (bounded by
  // kStatementTimeout).
  Result<Rows> q(const char* sql, const Params& params = {});
  Result<void> connect_writer();
  void drop_writer(std::string_view why) noexcept;
  Result<void> probe();
  void ping();
  // Retention: one short transaction; how many payloads it redacted.
  Result<std::uint64_t> purge_expired();
  // Runs the purge passes that are due while nothing is queued.
  void purge_when_due();
  void renew_registration();
  void mark_unwritable(std::string_view why);
  void mark_writable();
  bool on_writer_thread() const noexcept { return writer_id_.load() == std::this_thread::get_id(); }

  // --- apply (writer thread, inside the batch's transaction; apply.cpp) -------
  Result<WriteResult> apply(WriteWork& w);
  Result<MaterialsState> apply(ResolveWork& w);
  Result<std::int64_t> apply(AuditWork& w);
  Result<std::uint64_t> apply(RewrapWork& w);  // keys.cpp
  Result<KekRetirement> apply(RetireWork& w);  // keys.cpp
  Result<void> lock_wallet(std::string_view source, std::string_view wallet_id);
  Result<MaterialsState> decide_materials(std::string_view source, std::string_view wallet_id,
                                          std::int64_t event_time_ms, std::string_view event_id);
  Result<void> store_materials(std::string_view source, std::string_view wallet_id,
                               std::string_view event_id, std::string_view created_at,
                               std::int64_t created_at_ms, const SealedMaterials& m);
  Result<void> revoke(const EventRow& e);
  Result<void> advance_sequence(std::string_view source, std::string_view subscription_id,
                                std::uint64_t number, std::int64_t now_ms);
  Result<std::int64_t> append_audit(const AuditEntry& entry);
  // The keys a request would store under a retired version (keys.cpp):
  // Errc::kek_unavailable then.
  Result<void> check_not_retired(const std::vector<const WrappedKey*>& keys);

  // --- reads (reads.cpp) --------------------------------------------------------
  template <class F>
  auto with_reader(F&& f) const -> decltype(f(std::declval<Connection&>())) {
    std::lock_guard lock(read_mu_);
    if (closed_.load()) return make_error_code(Errc::store_unavailable);
    if (!reader_ || !reader_->usable()) {
      auto c = Connection::open(connect_options(), session_sql());
      if (!c) return make_error_code(Errc::store_unavailable);
      reader_.emplace(std::move(*c));
    }
    return f(*reader_);
  }
  Result<std::optional<SecretBytes>> read_audit_key(Connection& c) const;
  ConnectOptions connect_options() const;
  static std::vector<const char*> session_sql();
  static std::vector<const char*> writer_session_sql();  // and schema::kWriterSession

  const PgStoreOptions options_;
  const hookvault::Clock& clock_;
  const std::size_t max_batch_;
  const std::shared_ptr<const Kek> kek_;
  const std::string holder_;  // this store's writer row and KEK lease

  // Writer thread only (and start/close while it is not running).
  std::optional<Connection> writer_db_;
  // The audit key, unwrapped by the first append of the current transaction.
  std::optional<SecretBytes> batch_audit_key_;
  // Retired versions of this KEK, read once per transaction that stores keys.
  std::optional<std::set<std::uint32_t>> batch_retired_;
  // Statements the batch's COMMIT segment sends first (fast_batch).
  std::vector<Statement> batch_tail_;
  // The batch's transaction stored an event (fast_batch): its COMMIT needs
  // no write of this writer's row.
  bool batch_wrote_ = false;
  std::chrono::steady_clock::time_point next_renewal_{};
  std::chrono::steady_clock::time_point next_purge_{};  // on clock_ (a test may move it)
  bool retry_safe_ = false;  // the batch failed before its COMMIT was sent
  std::uint32_t registered_version_ = 0;

  mutable std::mutex read_mu_;
  mutable std::optional<Connection> reader_;  // guarded by read_mu_

  std::mutex lease_mu_;
  std::vector<std::weak_ptr<LeaseSlot>> leases_;  // guarded by lease_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;  // guarded by mu_
  bool accepting_ = true;   // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  std::thread writer_;
  std::atomic<std::thread::id> writer_id_{};
  std::mutex close_mu_;
  std::atomic<bool> closed_{false};

  std::atomic<bool> writable_{false};
  // When the COMMIT in progress was sent (steady clock ticks), 0 when none.
  std::atomic<std::chrono::steady_clock::rep> commit_since_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> committed_requests_{0};
  std::atomic<std::uint64_t> failed_batches_{0};
  std::atomic<std::size_t> largest_batch_{0};
  MetricSeries* commit_seconds_ = nullptr;  // set when options.metrics is
  MetricSeries* batch_size_ = nullptr;
};

}  // namespace hookvault::store::pg
