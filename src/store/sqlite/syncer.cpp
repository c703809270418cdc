#include "store/sqlite/syncer.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"

namespace hookvault::store::sqlite {

bool sync_wal(Connection& db) noexcept {
  sqlite3_file* wal = nullptr;
  if (db.handle() == nullptr ||
      sqlite3_file_control(db.handle(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
      wal == nullptr || wal->pMethods == nullptr) {
    return false;
  }
  return wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) == SQLITE_OK;
}

Result<std::unique_ptr<Syncer>> Syncer::start(const std::filesystem::path& path,
                                              const std::string& vfs, MetricSeries* sync_seconds) {
  // The WAL is open on this connection, so sync_wal() has a file to sync.
  auto db = open_wal_peer(path, vfs);
  if (!db) return db.error();
  std::unique_ptr<Syncer> s(new Syncer(std::move(*db), sync_seconds));
  s->thread_ = std::thread([self = s.get()] {
    self->thread_id_.store(std::this_thread::get_id());
    name_this_thread("hv-sync");
    self->loop();
  });
  return s;
}

Syncer::Syncer(Connection db, MetricSeries* sync_seconds)
    : db_(std::move(db)), sync_seconds_(sync_seconds) {}

Syncer::~Syncer() { stop(); }

void Syncer::push(std::uint64_t covers, Done done) {
  {
    std::lock_guard lock(mu_);
    pending_.push_back(Pending{covers, std::move(done)});
  }
  cv_.notify_one();
}

void Syncer::loop() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !pending_.empty() || stopping_; });
      if (pending_.empty()) return;  // stopping, and nothing left to sync
      batch.swap(pending_);
    }
    std::uint64_t covers = 0;
    for (const auto& p : batch) covers = std::max(covers, p.covers);
    bool durable = !failed_.load();
    if (durable && covers > synced_through_) {
      const auto started = std::chrono::steady_clock::now();
      durable = sync_wal(db_);
      const auto took = std::chrono::steady_clock::now() - started;
      if (sync_seconds_ != nullptr)
        sync_seconds_->observe(std::chrono::duration<double>(took).count());
      if (took >= kSlowSync) {
        log(LogLevel::warn, "a WAL sync was slow: every answer waited for it; the disk is slow",
            {{"sync_ms", std::chrono::duration_cast<std::chrono::milliseconds>(took).count()},
             {"batches_waiting", batch.size()}});
      }
      syncs_.fetch_add(1, std::memory_order_relaxed);
      if (durable) {
        synced_through_ = covers;
      } else {
        failed_.store(true);
        log(LogLevel::error,
            "syncing the WAL failed: the store takes no more writes until hookvault is restarted",
            {{"unacknowledged_batches", batch.size()}});
      }
    }
    for (auto& p : batch) {
      try {
        p.done(durable);
      } catch (...) {  // NOLINT(bugprone-empty-catch): completions must not throw
      }
    }
    batch.clear();
  }
}

void Syncer::stop() noexcept {
  if (on_thread()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  db_.close();
}

}  // namespace hookvault::store::sqlite
