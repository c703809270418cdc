// The WAL syncer: makes committed write transactions durable, then lets their
// requests be acknowledged, on a thread of its own ("hv-sync").
//
// The write connection runs with synchronous = NORMAL (schema.hpp): a COMMIT
// appends its frames to the WAL and returns without syncing it. After each
// commit the writer hands the batch's completion to push() and goes on with
// the next batch. The thread takes everything pushed so far, syncs the WAL
// once (fdatasync), and only then runs each completion with `true`.
//
// A batch that wrote nothing (only duplicates) needs no sync of its own once
// every commit before it that wrote is synced: what it found is on disk. So
// push() takes the number of the newest commit that wrote (the writer counts
// them); the thread syncs only when a batch it takes names a commit newer
// than the last sync covered. (That is why a duplicate is still answered
// while the disk refuses writes, as before this pipeline.)
//
// Why a sync started after a commit covers it: the WAL is one file, a commit
// writes its frames before COMMIT returns, and fdatasync makes every byte
// written to the file before the call durable. So one sync covers every batch
// pushed before it began, and the disk syncs one batch while the writer runs
// the next (docs/performance.md: the writer waited on fdatasync for half of
// each cycle).
//
// The sync goes through SQLite's VFS: the xSync of the WAL file of a
// connection of its own (SQLITE_FCNTL_JOURNAL_POINTER), the same call SQLite
// makes for a synchronous = FULL commit, so a test VFS sees and can fail it.
// That connection is used by this thread only.
//
// A failed sync is final: its completions, and those of every batch pushed
// later, run with `false`, and failed() stays true until the store is opened
// again. After a failed fsync Linux may drop the dirty pages it could not
// write and report success to the next fsync, so nothing written since the
// last good sync may be acknowledged. (The rows stay visible to reads: they
// were committed. On the next open SQLite reads the WAL back; a frame the
// disk lost fails its checksum and ends the log there, so the store holds a
// prefix of the commits, and every acknowledged one is in it.)
//
// Each sync's duration goes to the `sync_seconds` histogram when one is given
// (hookvault_store_wal_sync_seconds): how long the disk takes to flush is what
// every answer waits for, and on a shared disk it sets the latency's tail
// (docs/performance.md). A sync that takes kSlowSync or longer is also logged
// as a warning, with its time, so a stalling disk shows in the log.
//
// Thread-safety: push(), failed() and on_thread() from any thread; stop()
// from any thread but this one.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/error.hpp"
#include "hookvault/metrics.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

// Syncs the WAL of `db` through its VFS (xSync, as a FULL commit does): true
// when it synced. False when `db` has no WAL open or the sync failed.
bool sync_wal(Connection& db) noexcept;

class Syncer {
 public:
  static constexpr std::chrono::milliseconds kSlowSync{1000};

  // Runs once, on the syncer thread: `durable` is false when the sync failed
  // (or an earlier one had). Must not throw.
  using Done = std::function<void(bool durable)>;

  // Opens a connection of its own to `path` (whose journal mode is already
  // WAL) through the VFS named `vfs` (empty: the default) and starts the
  // thread. Errc::store_unavailable when it cannot. `sync_seconds`, when not
  // null, observes each sync's duration; it must outlive the syncer.
  static Result<std::unique_ptr<Syncer>> start(const std::filesystem::path& path,
                                               const std::string& vfs,
                                               MetricSeries* sync_seconds = nullptr);
  ~Syncer();  // stop()
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  // Queues `done` for the next sync that covers commit `covers` (numbered by
  // the caller, increasing; see above), which begins after this call.
  void push(std::uint64_t covers, Done done);

  // Syncs once more for what is queued, runs those completions, joins the
  // thread and closes its connection; idempotent. Not from the syncer thread
  // (a completion): there it does nothing.
  void stop() noexcept;

  bool failed() const noexcept { return failed_.load(); }
  bool on_thread() const noexcept { return thread_id_.load() == std::this_thread::get_id(); }
  std::uint64_t syncs() const noexcept { return syncs_.load(std::memory_order_relaxed); }

 private:
  Syncer(Connection db, MetricSeries* sync_seconds);
  void loop();

  struct Pending {
    std::uint64_t covers = 0;
    Done done;
  };

  Connection db_;                     // the syncer thread only (and stop(), after the join)
  std::uint64_t synced_through_ = 0;  // the syncer thread only: newest commit synced
  MetricSeries* sync_seconds_;        // may be null
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> pending_;  // guarded by mu_
  bool stopping_ = false;         // guarded by mu_
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::thread::id> thread_id_{};
  std::thread thread_;
};

}  // namespace hookvault::store::sqlite
