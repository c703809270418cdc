// The SQLite store's group-commit writer (sqlite_store_impl.hpp, "Where the
// work happens"): the queue, the writer thread's loop, one batch from BEGIN
// to the hand-over to the syncer, the probe, retention, and the lease
// transactions. The rules each request applies are in delegations.cpp and
// rewrap.cpp.
#include <algorithm>
#include <exception>
#include <utility>

#include "hookvault/log.hpp"
#include "store/sqlite/audit_chain.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/statements.hpp"

namespace hookvault::store::sqlite {
namespace {

constexpr auto kProbeInterval = std::chrono::seconds(1);
// How often the idle writer looks whether its Kek's version changed, so its
// lease follows a KEK refresh within this (kek_registry.hpp), and whether a
// leadership lease is due.
constexpr auto kLeaseCheck = std::chrono::milliseconds(1000);

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

}  // namespace

std::vector<Work> SqliteStore::empty_batch() const {
  std::vector<Work> batch;
  batch.reserve(std::min<std::size_t>(max_batch_, 1024));
  return batch;
}

void SqliteStore::fail_batch(std::vector<Work>& batch) noexcept {
  failed_batches_.fetch_add(1, std::memory_order_relaxed);
  for (auto& work : batch) complete_with(work, Errc::store_unavailable);
}

int SqliteStore::take_pages_written() noexcept {
  int current = 0;
  int highwater = 0;
  if (sqlite3_db_status(writer_db_.handle(), SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater,
                        1) != SQLITE_OK) {
    return 0;
  }
  return current;
}

void SqliteStore::complete_with(Work& work, Errc e) noexcept { fail_work(work, e); }

void SqliteStore::complete(Work& work) noexcept { complete_work(work); }

void SqliteStore::enqueue(Work work) {
  {
    std::unique_lock lock(mu_);
    if (accepting_) {
      queue_.push_back(Queued{std::move(work), std::chrono::steady_clock::now()});
      lock.unlock();
      cv_.notify_one();
      return;
    }
  }
  complete_with(work, Errc::store_unavailable);
}

// ---------------------------------------------------------------------------
// The writer thread.

void SqliteStore::writer_loop() {
  std::vector<Work> batch = empty_batch();
  for (;;) {
    std::chrono::steady_clock::time_point oldest;
    {
      std::unique_lock lock(mu_);
      const auto ready = [this] { return !queue_.empty() || stopping_; };
      const bool retention = options_.retention.count() > 0;
      if (!writable_.load()) {
        cv_.wait_for(lock, kProbeInterval, ready);
      } else if (retention) {
        // next_purge_ is on the store's clock, which a test may move: wait
        // in real time for what is left of it, a kLeaseCheck at most.
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(next_purge_ - clock_.now());
        cv_.wait_for(lock, std::clamp<std::chrono::milliseconds>(left, {}, kLeaseCheck), ready);
      } else {
        cv_.wait_for(lock, kLeaseCheck, ready);
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
        } else if (retention && clock_.now() >= next_purge_) {
          auto purged = purge_expired();
          const bool more = purged && *purged == static_cast<std::uint64_t>(sql::kPurgeBatch);
          next_purge_ =
              clock_.now() + (more ? std::chrono::milliseconds(0) : options_.retention_interval);
          if (!purged) {
            log(LogLevel::warn, "retention purge failed", {{"error", purged.error().message()}});
          } else if (*purged > 0) {
            log(LogLevel::info, "retention purge", {{"payloads", *purged}});
          }
        }
        // (While not writable the probe above renews the leases.)
        if (writable_.load() && leases_due()) renew_leases_idle();
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

// Purges up to sql::kPurgeBatch expired payloads in one short transaction (the
// same zero-overwrite and redaction as a revocation), then checkpoints. The
// writer calls it only when idle, and again at once while batches come back
// full, so a backlog never holds queued requests for long.
Result<std::uint64_t> SqliteStore::purge_expired() {
  std::vector<std::int64_t> ids;
  {
    auto stmt = writer_db_.prepare(sql::kExpiredPayloads);
    if (!stmt) return stmt.error();
    stmt->bind_int64(1, clock_.now_ms() - options_.retention.count())
        .bind_int64(2, sql::kPurgeBatch);
    auto read =
        for_each_row(*stmt, [&](const Statement& row) { ids.push_back(row.column_int64(0)); });
    if (!read) return read.error();
  }
  if (ids.empty()) return 0;
  if (auto r = run(sql::kBegin); !r) return r.error();
  for (auto id : ids) {
    if (auto r = redact_event(id); !r) {
      static_cast<void>(run(sql::kRollback));
      return r.error();
    }
  }
  if (auto r = run(sql::kCommit); !r) {
    static_cast<void>(run(sql::kRollback));
    return r.error();
  }
  ++written_commits_;
  static_cast<void>(checkpoint_truncate());  // best effort: the next purge or close retries
  return ids.size();
}

void SqliteStore::run_batch(std::vector<Work>& batch,
                            std::chrono::steady_clock::time_point oldest) {
  if (syncer_->failed()) {
    // Nothing written now could be acknowledged (syncer.hpp).
    fail_batch(batch);
    return;
  }
  const auto started = std::chrono::steady_clock::now();
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
    leases_committed();
  } else {
    leases_ended();
  }
  if (!committed) {
    if (writer_db_.in_transaction()) {
      // Nothing more can be done if even ROLLBACK fails; the next BEGIN reports it.
      static_cast<void>(run(sql::kRollback));
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
      commit_seconds_->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
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
Result<void> SqliteStore::write_batch(std::vector<Work>& batch) {
  if (auto r = begin_batch(); !r) return r;
  const bool all_ok =
      std::all_of(batch.begin(), batch.end(), [this](Work& work) { return apply_work(work); });
  if (all_ok) return run(sql::kCommit);
  // SQLite ended the transaction itself (a full disk, an I/O error): the
  // batch fails, as it would inside a savepoint, without being run again.
  if (!writer_db_.in_transaction()) return err(Errc::store_unavailable);
  if (auto r = run(sql::kRollback); !r) return r;
  // Every request's result is set again by the second pass.
  if (auto r = begin_batch(); !r) return r;
  for (auto& work : batch) {
    if (auto r = apply_in_savepoint(work); !r) return r;
  }
  return run(sql::kCommit);
}

// BEGIN IMMEDIATE for a batch (either pass), its per-transaction state fresh:
// nothing overwritten yet, no audit key read yet.
Result<void> SqliteStore::begin_batch() {
  overwrote_ = false;
  batch_audit_key_.reset();
  leases_ended();
  if (auto r = run(sql::kBegin); !r) return r;
  // Renewed with the requests, so a new version is published in the first
  // transaction that may store keys wrapped under it. A failure here is the
  // leases' alone: the requests go on (the idle writer retries).
  renew_leases();
  return {};
}

// Applies one request; its outcome is kept in its result. True when it succeeded.
bool SqliteStore::apply_work(Work& work) {
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
Result<void> SqliteStore::apply_in_savepoint(Work& work) {
  if (auto r = run(sql::kSavepoint); !r) return r;
  if (apply_work(work)) return run(sql::kRelease);
  if (!writer_db_.in_transaction()) return err(Errc::store_unavailable);
  if (auto r = run(sql::kRollbackTo); !r) return r;
  return run(sql::kRelease);
}

Result<void> SqliteStore::run(const char* sql) {
  auto stmt = writer_db_.prepare(sql);
  if (!stmt) return stmt.error();
  return stmt->run();
}

void SqliteStore::mark_unwritable(int sqlite_code) {
  if (!writable_.exchange(false)) return;
  log(LogLevel::error, "store not writable; writes fail until one succeeds",
      {{"error", sqlite3_errstr(sqlite_code)}, {"sqlite_code", sqlite_code}});
}

void SqliteStore::mark_writable() {
  if (syncer_->failed() || writable_.exchange(true)) return;
  log(LogLevel::warn, "store writable again");
}

// The probe write, with this Store's lease (at open, its first publication).
Result<void> SqliteStore::probe() {
  leases_ended();
  if (auto r = run(sql::kBegin); !r) return r;
  Result<void> r = [this]() -> Result<void> {
    auto stmt = writer_db_.prepare(sql::kProbe);
    if (!stmt) return stmt.error();
    if (auto probed = stmt->bind_text(1, std::to_string(clock_.now_ms())).run(); !probed)
      return probed;
    if (auto renewed = registration_.renew(writer_db_, *kek_); !renewed) return renewed;
    if (leases_.due()) static_cast<void>(leases_.renew(writer_db_));
    return {};
  }();
  if (r) r = run(sql::kCommit);
  if (r) {
    ++written_commits_;
    leases_committed();
  } else {
    leases_ended();
  }
  if (!r && writer_db_.in_transaction()) static_cast<void>(run(sql::kRollback));
  return r;
}

bool SqliteStore::leases_due() const noexcept { return registration_.due(*kek_) || leases_.due(); }

void SqliteStore::renew_leases() {
  if (registration_.due(*kek_)) static_cast<void>(registration_.renew(writer_db_, *kek_));
  if (leases_.due()) static_cast<void>(leases_.renew(writer_db_));
}

void SqliteStore::leases_committed() noexcept {
  registration_.committed();
  leases_.committed();
}

void SqliteStore::leases_ended() noexcept {
  registration_.ended();
  leases_.ended();
}

void SqliteStore::renew_leases_idle() {
  set_busy_timeout(std::chrono::milliseconds(0));  // never delays a request queued meanwhile
  Result<void> r = run(sql::kBegin);
  if (r) renew_leases();
  if (r) r = run(sql::kCommit);
  set_busy_timeout(options_.busy_timeout);
  if (r) {
    ++written_commits_;
    leases_committed();
    return;
  }
  leases_ended();
  if (writer_db_.in_transaction()) static_cast<void>(run(sql::kRollback));
}

void SqliteStore::drop_own_leases() noexcept {
  set_busy_timeout(std::min(options_.busy_timeout, std::chrono::milliseconds(1000)));
  Result<void> r = run(sql::kBegin);
  if (r) r = registration_.drop(writer_db_);
  if (r) r = leases_.drop_all(writer_db_);
  if (r) r = run(sql::kCommit);
  if (!r && writer_db_.in_transaction()) static_cast<void>(run(sql::kRollback));
  leases_.lose_all();
}

Result<KekRetirement> SqliteStore::apply(RetireWork& w) {
  return registration_.retire(writer_db_, *kek_, w.version);
}

Result<std::int64_t> SqliteStore::append_audit(const AuditEntry& entry) {
  if (!batch_audit_key_) {
    // Read inside this write transaction: until it ends, the write lock keeps
    // another process's `keys rewrap` from moving it.
    auto wrapped = read_audit_key(writer_db_);
    if (!wrapped) return wrapped.error();
    if (!*wrapped) return err(Errc::store_corrupt);
    auto key = unwrap_dek(*kek_, **wrapped, audit_key_ad());
    if (!key) return key.error();
    batch_audit_key_ = std::move(*key);
  }
  return sqlite::append_audit(writer_db_, *batch_audit_key_, entry, clock_.now_ms());
}

Result<std::shared_ptr<LeaseState>> SqliteStore::apply(LeaseWork& w) {
  return leases_.take(writer_db_, w.name);
}

Result<std::int64_t> SqliteStore::apply(AuditWork& w) { return append_audit(w.entry); }

}  // namespace hookvault::store::sqlite
