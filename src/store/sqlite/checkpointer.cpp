#include "store/sqlite/checkpointer.hpp"

#include <chrono>
#include <utility>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"

namespace hookvault::store::sqlite {

Result<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::filesystem::path& path,
                                                          const std::string& vfs,
                                                          CheckpointOptions options) {
  // A PASSIVE checkpoint never calls the busy handler, and a connection that
  // has not opened the WAL checkpoints nothing (sqlite3_wal_checkpoint_v2
  // reports -1): open_wal_peer gives neither.
  auto db = open_wal_peer(path, vfs);
  if (!db) return db.error();
  std::unique_ptr<Checkpointer> c(new Checkpointer(std::move(*db), options));
  c->thread_ = std::thread([self = c.get()] {
    name_this_thread("hv-checkpoint");
    self->loop();
  });
  return c;
}

Checkpointer::Checkpointer(Connection db, CheckpointOptions options)
    : options_(options), db_(std::move(db)) {}

Checkpointer::~Checkpointer() { stop(); }

void Checkpointer::install(Connection& writer) noexcept {
  sqlite3_wal_hook(writer.handle(), &Checkpointer::on_commit, this);
}

int Checkpointer::on_commit(void* self, sqlite3* /*db*/, const char* /*schema*/,
                            int pages) noexcept {
  auto* c = static_cast<Checkpointer*>(self);
  c->wal_pages_.store(pages, std::memory_order_relaxed);
  if (c->due()) {
    {
      std::lock_guard lock(c->mu_);
      c->requested_ = true;
    }
    c->cv_.notify_one();
  }
  return SQLITE_OK;
}

bool Checkpointer::due() const noexcept {
  const int pages = wal_pages_.load(std::memory_order_relaxed);
  // Fewer frames in the WAL than the last checkpoint copied: it restarted.
  int copied = copied_.load(std::memory_order_relaxed);
  if (pages < copied) copied = 0;
  return pages - copied >= options_.checkpoint_pages;
}

void Checkpointer::after_batch(Connection& writer) noexcept {
  if (wal_pages_.load(std::memory_order_relaxed) < options_.wal_limit_pages) return;
  std::lock_guard lock(checkpoint_mu_);
  checkpoint(writer.handle());
}

int Checkpointer::truncate(Connection& writer) noexcept {
  std::lock_guard lock(checkpoint_mu_);
  return sqlite3_wal_checkpoint_v2(writer.handle(), "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                   nullptr);
}

void Checkpointer::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return requested_ || stopping_; });
      if (stopping_) return;
      requested_ = false;
    }
    // A request made while the last checkpoint ran may be covered by it.
    if (!due()) continue;
    std::lock_guard lock(checkpoint_mu_);
    checkpoint(db_.handle());
  }
}

void Checkpointer::checkpoint(sqlite3* db) noexcept {
  int log_frames = 0;
  int copied = 0;
  const auto started = std::chrono::steady_clock::now();
  const int rc =
      sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
  // -1 frames: this connection does not see the WAL (it would copy nothing).
  if (rc == SQLITE_OK && log_frames >= 0) {
    if (options_.seconds != nullptr) {
      options_.seconds->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    checkpoints_.fetch_add(1, std::memory_order_relaxed);
    copied_.store(copied, std::memory_order_relaxed);
    if (failing_) {
      failing_ = false;
      log(LogLevel::info, "WAL checkpoints succeed again");
    }
    return;
  }
  // Another process's checkpoint is running: not a failure.
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return;
  const char* why = rc == SQLITE_OK ? "the connection does not see the WAL" : sqlite3_errstr(rc);
  failures_.fetch_add(1, std::memory_order_relaxed);
  if (!failing_) {
    failing_ = true;
    log(LogLevel::warn, "WAL checkpoint failed; the WAL grows until one succeeds",
        {{"error", why}});
  }
}

void Checkpointer::stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  db_.close();
}

}  // namespace hookvault::store::sqlite
