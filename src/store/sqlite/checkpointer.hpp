// The WAL checkpointer: copies committed WAL frames into the database file on
// its own thread and connection, so the writer's group commits do not wait
// for it (docs/performance.md: the automatic checkpoint, run by the
// committing connection, was about a third of the writer's time per event).
//
// The write connection's automatic checkpoint is replaced by a WAL hook
// (install()): after each commit it notes the WAL's size, and once the WAL
// holds `checkpoint_pages` frames more than the last checkpoint copied, it
// wakes the checkpointer, which runs a PASSIVE checkpoint (never waits for
// readers or the writer). A PASSIVE
// checkpoint running beside a busy writer rarely copies the last frames, so
// the WAL could not restart and would grow; when it holds `wal_limit_pages`
// frames, the writer itself runs a PASSIVE checkpoint after its batch's
// completions (after_batch()): the frames the checkpointer already copied are
// skipped, and the next write transaction starts the WAL from the beginning
// again.
//
// Every checkpoint of the store goes through this class. SQLite runs one
// checkpoint at a time and answers SQLITE_BUSY to a second; one lock here
// serialises the thread's with the writer's (the limit above, and truncate():
// after zero-overwrites and at close), so neither gets SQLITE_BUSY from the
// other.
//
// Each successful PASSIVE checkpoint's duration goes to
// CheckpointOptions::seconds when set (hookvault_store_wal_checkpoint_seconds):
// the checkpoint writes pages into the database file and syncs it, on the
// same disk as the WAL syncs every answer waits for (syncer.hpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "hookvault/error.hpp"
#include "hookvault/metrics.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

struct CheckpointOptions {
  int checkpoint_pages = 1000;      // SQLite's own automatic checkpoint threshold
  int wal_limit_pages = 16384;      // 64 MiB of 4 KiB pages
  MetricSeries* seconds = nullptr;  // when set, observes each checkpoint; outlives the class
};

class Checkpointer {
 public:
  // Opens a connection of its own to `path` through the VFS named `vfs`
  // (empty: the default) and starts the thread. Errc::store_unavailable when
  // the connection does not open.
  static Result<std::unique_ptr<Checkpointer>> start(const std::filesystem::path& path,
                                                     const std::string& vfs,
                                                     CheckpointOptions options);
  ~Checkpointer();  // stop()
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Sets the WAL hook on `writer` (the write connection), which turns its
  // automatic checkpoint off. Call once, before the writer thread starts.
  void install(Connection& writer) noexcept;

  // The writer, after a batch's completions: a PASSIVE checkpoint on `writer`
  // when the WAL held at least wal_limit_pages frames after the last commit.
  void after_batch(Connection& writer) noexcept;
  // PRAGMA wal_checkpoint(TRUNCATE) on `writer` (it waits for readers up to
  // the connection's busy timeout); SQLite's result code.
  int truncate(Connection& writer) noexcept;

  // Stops and joins the thread and closes its connection; idempotent.
  void stop() noexcept;

  std::uint64_t checkpoints() const noexcept {
    return checkpoints_.load(std::memory_order_relaxed);
  }
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

 private:
  Checkpointer(Connection db, CheckpointOptions options);
  static int on_commit(void* self, sqlite3* db, const char* schema, int pages) noexcept;
  // The WAL holds checkpoint_pages frames more than the last checkpoint copied.
  bool due() const noexcept;
  void loop();
  void checkpoint(sqlite3* db) noexcept;  // with checkpoint_mu_ held

  const CheckpointOptions options_;
  Connection db_;                  // the checkpointer thread only (and stop(), after the join)
  std::atomic<int> wal_pages_{0};  // frames in the WAL after the last commit
  std::atomic<int> copied_{0};     // of those, copied by the last checkpoint
  std::mutex checkpoint_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  bool failing_ = false;    // guarded by checkpoint_mu_: the last checkpoint failed
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::thread thread_;
};

}  // namespace hookvault::store::sqlite
