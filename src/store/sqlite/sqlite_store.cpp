// The SQLite store (include/hookvault/sqlite_store.hpp): opening, the entry
// points of the Store interface that queue work for the writer, and close.
// The class and where each job lives: sqlite_store_impl.hpp.
#include "hookvault/sqlite_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <utility>

#include "hookvault/process.hpp"
#include "hookvault/random.hpp"
#include "store/envelope.hpp"
#include "store/sqlite/audit_chain.hpp"
#include "store/sqlite/leases.hpp"
#include "store/sqlite/schema.hpp"
#include "store/sqlite/sequences.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/supersede.hpp"

namespace hookvault {
namespace store::sqlite {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

// A WAL sync takes about 0.2 ms on an idle disk here and up to 2.5 s on a busy
// shared one (docs/performance.md); checkpoints take longer.
const std::vector<double> kDiskBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

bool create_private_file(const std::filesystem::path& path) noexcept;
Result<void> setup_writer(Connection& db, const Kek& kek);

}  // namespace
}  // namespace store::sqlite

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteStoreOptions& options,
                                                 std::shared_ptr<const Kek> kek) {
  using namespace store::sqlite;  // NOLINT(google-build-using-namespace): this backend's own
  if (!kek) return err(Errc::kek_unavailable);
  if (options.path.empty() || !create_private_file(options.path)) {
    return err(Errc::store_unavailable);
  }
  auto writer = Connection::open(options.path,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 options.busy_timeout, options.vfs);
  if (!writer) return err(Errc::store_unavailable);
  if (auto r = setup_writer(*writer, *kek); !r) return r.error();
  auto reader = Connection::open(options.path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                 options.busy_timeout, options.vfs);
  if (!reader || !reader->exec(schema::kReaderPragmas)) {
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
  auto checkpointer = Checkpointer::start(
      options.path, options.vfs,
      CheckpointOptions{options.checkpoint_pages, options.wal_limit_pages, checkpoint_seconds});
  if (!checkpointer) return checkpointer.error();
  auto syncer = Syncer::start(options.path, options.vfs, sync_seconds);
  if (!syncer) return syncer.error();
  std::array<std::uint8_t, 16> holder{};  // the lease's holder id (kek_registry.hpp)
  if (!random_bytes(holder)) return err(Errc::internal);
  auto store =
      std::make_unique<SqliteStore>(options, std::move(kek), std::move(*writer), std::move(*reader),
                                    std::move(*checkpointer), std::move(*syncer), to_hex(holder));
  if (auto r = store->start(); !r) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

namespace store::sqlite {

// ---------------------------------------------------------------------------
// The entry points (caller's thread): each queues its work for the writer.

void SqliteStore::submit(WriteRequest request, Completion done) {
  if (!accepting_now()) {
    run_completion(done, err(Errc::store_unavailable));
    return;
  }
  auto prepared = prepare_write(*kek_, clock_, request);
  if (!prepared) {
    run_completion(done, prepared.error());
    return;
  }
  prepared->done = std::move(done);
  enqueue(Work(std::move(*prepared)));
}

Result<MaterialsState> SqliteStore::resolve_decrypt_failure(
    std::int64_t row_id, std::variant<DelegationMaterials, std::string> outcome,
    std::string actor) {
  return run_sync<MaterialsState>([&](std::function<void(Result<MaterialsState>)> done) {
    auto work = prepare_resolve(row_id, outcome, std::move(actor));
    if (!work) return done(work.error());
    work->done = std::move(done);
    enqueue(Work(std::move(*work)));
  });
}

void SqliteStore::audit(AuditEntry entry, AuditCompletion done) {
  if (!accepting_now()) {
    run_completion(done, err(Errc::store_unavailable));
    return;
  }
  if (auto r = check_audit_entry(entry); !r) {
    run_completion(done, r.error());
    return;
  }
  AuditWork work;
  work.entry = std::move(entry);
  work.done = std::move(done);
  enqueue(Work(std::move(work)));
}

bool SqliteStore::writable() const noexcept { return writable_.load() && !syncer_->failed(); }

StoreStats SqliteStore::stats() const noexcept {
  StoreStats s;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.committed_requests = committed_requests_.load(std::memory_order_relaxed);
  s.failed_batches = failed_batches_.load(std::memory_order_relaxed);
  s.largest_batch = largest_batch_.load(std::memory_order_relaxed);
  s.checkpoints = checkpointer_->checkpoints();
  s.checkpoint_failures = checkpointer_->failures();
  s.wal_syncs = syncer_->syncs();
  return s;
}

// ---------------------------------------------------------------------------
// Lifetime.

SqliteStore::SqliteStore(const SqliteStoreOptions& options, std::shared_ptr<const Kek> kek,
                         Connection writer_db, Connection reader_db,
                         std::unique_ptr<Checkpointer> checkpointer, std::unique_ptr<Syncer> syncer,
                         const std::string& lease_holder)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : system_clock()),
      max_batch_(std::max<std::size_t>(options.max_batch, 1)),
      kek_(std::move(kek)),
      writer_db_(std::move(writer_db)),
      checkpointer_(std::move(checkpointer)),
      syncer_(std::move(syncer)),
      reader_db_(std::move(reader_db)),
      registration_(lease_holder, options.process_name, options.lease_heartbeat, options.lease_time,
                    clock_),
      leases_(lease_holder, lease_description(options.process_name), options.lease_heartbeat,
              options.lease_time, clock_) {
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

SqliteStore::~SqliteStore() { close(); }

Result<void> SqliteStore::start() {
  // Prove that a commit reaches the disk before reporting the store writable:
  // commit, then sync the WAL through the write connection's own file, whose
  // first sync of a new WAL also syncs its directory entry (the syncer's
  // connection did not create the file, so its syncs do not).
  if (!probe() || !sync_wal(writer_db_)) return err(Errc::store_unavailable);
  writer_ = std::thread([this] {
    name_this_thread("hv-writer");
    writer_loop();
  });
  writer_id_.store(writer_.get_id());
  return {};
}

void SqliteStore::close() {
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
    drop_own_leases();
    // Fold the WAL into the database file and truncate it; closing the last
    // connection then removes the -wal and -shm files. Best effort: another
    // process may still be reading.
    static_cast<void>(checkpoint_truncate());
    writer_db_.close();
  }
}

namespace {

// Creates the file with mode 0600 when absent, so that the database and the
// -wal/-shm files SQLite derives from it are private. An existing file is not
// touched: closing a descriptor of a file SQLite has open in this process would
// drop its POSIX locks.
bool create_private_file(const std::filesystem::path& path) noexcept {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) return ::close(fd) == 0;
  return errno == EEXIST;
}

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
  auto mode = db.query_text(schema::kJournalModeWal);
  if (!mode || *mode != "wal") return err(Errc::store_unavailable);
  if (!db.exec(schema::kWriterPragmas)) return err(Errc::store_unavailable);
  for (auto [pragma, expected] :
       {std::pair{"PRAGMA synchronous", "1"}, std::pair{"PRAGMA secure_delete", "1"},
        std::pair{"PRAGMA foreign_keys", "1"}}) {
    auto value = db.query_text(pragma);
    if (!value || *value != expected) return err(Errc::store_unavailable);
  }

  if (!db.exec("BEGIN IMMEDIATE")) return err(Errc::store_unavailable);
  bool overwrote = false;
  auto schema = [&]() -> Result<void> {
    if (auto r = db.exec(schema::kCreateTables); !r) return r;
    if (auto r = db.exec(kCreateSequences); !r) return r;
    if (auto r = db.exec(kCreateKekRegistry); !r) return r;
    if (auto r = db.exec(kCreateLeases); !r) return r;
    auto version = db.query_text(schema::kSelectVersion);
    if (!version) return version.error();
    // New file ('') or version 1: set the version; the audit key is drawn now.
    const bool upgrade = version->empty() || *version == schema::kPreviousVersionText;
    // A file of another (newer) schema version is left untouched.
    if (!upgrade && *version != schema::kVersionText) return err(Errc::store_unavailable);
    if (upgrade) {
      auto stmt = db.prepare(schema::kSetVersion);
      if (!stmt) return stmt.error();
      if (auto r = stmt->bind_text(1, schema::kVersionText).run(); !r) return r;
    }
    if (auto r = prepare_audit_key(db, kek, upgrade); !r) return r;
    auto redacted = redact_superseded_once(db);
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
}  // namespace store::sqlite
}  // namespace hookvault
