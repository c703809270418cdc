// The SQLite backend of Store (store.hpp): one database file, opened by any
// number of processes on one host.
//
// Contract (what the SQLite backend adds to store.hpp's)
// - Open: creates the file when absent (mode 0600), applies the schema
//   (src/store/sqlite/schema.hpp), sets WAL, synchronous=NORMAL (the syncer
//   syncs), secure_delete=ON, proves that a commit and a WAL sync succeed,
//   and starts the writer and syncer threads. Errc::store_unavailable when
//   the file cannot be opened or written; Errc::kek_unavailable without a KEK.
// - Uniqueness is a UNIQUE constraint; row ids are AUTOINCREMENT (never
//   reused); the events feed's token is the decimal row id of the page's last
//   event, so `after` may be any row id ("" and "0": from the start).
// - Group commit: one writer thread owns the write connection; submit()
//   queues a request; the writer drains the queue into one transaction (one
//   SAVEPOINT per request, so one failing request does not fail the others)
//   and commits; the syncer thread then syncs the WAL, and only then calls
//   each request's completion (src/store/sqlite/syncer.hpp), while the
//   writer already runs the next batch. A failed WAL sync fails every later
//   write until the store is opened again.
// - Crypto-shredding: a commit that zero-overwrote ciphertext is followed by
//   a WAL checkpoint (TRUNCATE) before its completions run (schema.hpp,
//   ORDERING RULES).
// - KEK registrations and leadership leases are rows of the file
//   (src/store/sqlite/kek_registry.hpp, src/store/sqlite/leases.hpp),
//   renewed by the writer.
// - Completions run on the syncer thread (refusals of a closed store on the
//   caller's, of a failed commit on the writer's). Reads use their own
//   connection and never wait for the writer (WAL); verify_audit() holds it
//   for its walk, so other reads of this Store wait meanwhile. SQLite's
//   write lock serialises the writers of several processes.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "hookvault/clock.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

struct SqliteStoreOptions {
  std::filesystem::path path;
  // The name of a registered SQLite VFS (sqlite3_vfs_register) every
  // connection of the store opens the file through; empty for SQLite's
  // default. Tests pass a fault-injecting one; it must stay registered while
  // the store is open.
  std::string vfs;
  // The wall clock and the monotonic clock the store reads (clock.hpp); null
  // for system_clock(). Must outlive the store.
  const Clock* clock = nullptr;
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
  // hookvault_store_batch_size, observed per committed group commit, and the
  // WAL sync and checkpoint histograms. Must outlive the store.
  Metrics* metrics = nullptr;
  // WAL checkpoints (src/store/sqlite/checkpointer.hpp): a thread of the
  // store's copies the WAL into the database file once it holds
  // `checkpoint_pages` pages; past `wal_limit_pages` the writer also
  // checkpoints after a batch, so the WAL restarts instead of growing.
  int checkpoint_pages = 1000;
  int wal_limit_pages = 16384;
  // KEK registration and leadership leases (store.hpp): "serve", "cli",
  // ...: a lease's description is "<process_name> (pid N on HOST)".
  std::string process_name = "hookvault";
  std::chrono::milliseconds lease_heartbeat{10000};
  std::chrono::milliseconds lease_time{60000};
};

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteStoreOptions& options,
                                                 std::shared_ptr<const Kek> kek);

}  // namespace hookvault
