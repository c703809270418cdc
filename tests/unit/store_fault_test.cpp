// Store under faults: files that cannot be opened, commits that fail, and
// another connection holding the write lock.
//
// Commit failures come from FaultVfs, a shim over SQLite's default VFS
// registered under a name of its own for the test's duration; the tests'
// stores name it in their options (SqliteStoreOptions::vfs). While `fail` is set, every write and
// sync of a main database or WAL file fails like a full disk (SQLITE_FULL) or
// a failed fsync (SQLITE_IOERR_FSYNC). This works as root too, where making a
// file read-only would not stop the writer. It can also hold every sync of a
// WAL file until released, to show what waits for the sync.
//
// A full disk fails the COMMIT itself: nothing of the batch is stored, and the
// store recovers once writes succeed again (StoreFaultTest, DiskFull). With
// synchronous = NORMAL a COMMIT does not sync; the syncer thread does, before
// any request is answered (src/store/sqlite/syncer.hpp), and a failed sync stops all
// writes until the store is opened again (StoreSyncTest).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gate_kek.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/log.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "test_support.hpp"

namespace {

using hookvault::Errc;
using hookvault::Metrics;
using hookvault::Result;
using hookvault::SecretBytes;
using hookvault::SqliteStoreOptions;
using hookvault::Store;
using hookvault::WriteRequest;
using hookvault::WriteResult;
using hookvault::testing::count_of;
using hookvault::testing::eventually;
using hookvault::testing::metric_sample;
using hookvault::testing::submit_audit;
using hookvault::testing::TempDir;

Errc errc_of(const boost::system::error_code& ec) { return hookvault::to_errc(ec); }

WriteRequest plain_event(const std::string& key) {
  WriteRequest r;
  r.event.source = "dynamic";
  r.event.idempotency_key = key;
  r.event.event_name = "user.created";
  r.event.event_time_ms = 1000;
  r.event.payload = R"({"eventId":")" + key + R"("})";
  return r;
}

std::shared_ptr<const hookvault::Kek> test_kek() {
  return hookvault::make_memory_kek(SecretBytes::random(32), "test:1");
}

// --- FaultVfs ---------------------------------------------------------------

// Registered under its own name, not as the default VFS: a store uses it
// only when its options name it (SqliteStoreOptions::vfs), so nothing else in
// the process (another store, a raw connection) goes through it.
class FaultVfs {
 public:
  enum class Mode { full, fsync };
  static constexpr char kName[] = "hookvault-fault";

  static void install() {
    real_ = sqlite3_vfs_find(nullptr);
    ASSERT_NE(real_, nullptr);
    vfs_ = sqlite3_vfs{};
    vfs_.iVersion = 2;
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.mxPathname = real_->mxPathname;
    vfs_.zName = kName;
    vfs_.xOpen = &open;
    vfs_.xDelete = [](sqlite3_vfs*, const char* name, int sync_dir) {
      return real_->xDelete(real_, name, sync_dir);
    };
    vfs_.xAccess = [](sqlite3_vfs*, const char* name, int flags, int* out) {
      return real_->xAccess(real_, name, flags, out);
    };
    vfs_.xFullPathname = [](sqlite3_vfs*, const char* name, int n, char* out) {
      return real_->xFullPathname(real_, name, n, out);
    };
    vfs_.xDlOpen = [](sqlite3_vfs*, const char* name) { return real_->xDlOpen(real_, name); };
    vfs_.xDlError = [](sqlite3_vfs*, int n, char* out) { real_->xDlError(real_, n, out); };
    vfs_.xDlSym = [](sqlite3_vfs*, void* h, const char* sym) {
      return real_->xDlSym(real_, h, sym);
    };
    vfs_.xDlClose = [](sqlite3_vfs*, void* h) { real_->xDlClose(real_, h); };
    vfs_.xRandomness = [](sqlite3_vfs*, int n, char* out) {
      return real_->xRandomness(real_, n, out);
    };
    vfs_.xSleep = [](sqlite3_vfs*, int us) { return real_->xSleep(real_, us); };
    vfs_.xCurrentTime = [](sqlite3_vfs*, double* out) { return real_->xCurrentTime(real_, out); };
    vfs_.xGetLastError = [](sqlite3_vfs*, int n, char* out) {
      return real_->xGetLastError(real_, n, out);
    };
    vfs_.xCurrentTimeInt64 = [](sqlite3_vfs*, sqlite3_int64* out) {
      return real_->xCurrentTimeInt64(real_, out);
    };
    ASSERT_EQ(sqlite3_vfs_register(&vfs_, 0), SQLITE_OK);
    ASSERT_EQ(sqlite3_vfs_find(nullptr), real_) << "the default VFS changed";
  }

  static void uninstall() {
    fail_.store(false);
    hold_wal_syncs(false);
    {
      std::lock_guard lock(hold_mu_);
      wal_sync_times_.clear();
    }
    EXPECT_EQ(sqlite3_vfs_unregister(&vfs_), SQLITE_OK);
  }

  static void fail(bool on, Mode mode = Mode::full) {
    mode_.store(mode);
    fail_.store(on);
  }

  // While held, every xSync of a WAL file waits until hold_wal_syncs(false).
  static void hold_wal_syncs(bool on) {
    {
      std::lock_guard lock(hold_mu_);
      hold_ = on;
    }
    hold_cv_.notify_all();
  }
  // xSync calls of WAL files waiting in a hold right now.
  static int held_wal_syncs() {
    std::lock_guard lock(hold_mu_);
    return held_;
  }
  // WAL xSync calls since install() that took longer than `limit`, the hold
  // included: the held ones, and any the disk itself was slow with.
  static int wal_syncs_slower_than(std::chrono::milliseconds limit) {
    std::lock_guard lock(hold_mu_);
    return static_cast<int>(std::count_if(wal_sync_times_.begin(), wal_sync_times_.end(),
                                          [limit](auto took) { return took > limit; }));
  }

 private:
  struct File {
    sqlite3_file base;
    sqlite3_file* real;
    bool faultable;  // a main database or WAL file
    bool wal;
  };

  static sqlite3_file* real_of(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }
  static bool failing(sqlite3_file* f, Mode mode) {
    return reinterpret_cast<File*>(f)->faultable && fail_.load() && mode_.load() == mode;
  }

  static void wait_while_held(sqlite3_file* f) {
    if (!reinterpret_cast<File*>(f)->wal) return;
    std::unique_lock lock(hold_mu_);
    ++held_;
    hold_cv_.wait(lock, [] { return !hold_; });
    --held_;
  }

  static void record_wal_sync(sqlite3_file* f, std::chrono::steady_clock::duration took) {
    if (!reinterpret_cast<File*>(f)->wal) return;
    std::lock_guard lock(hold_mu_);
    wal_sync_times_.push_back(took);
  }

  static int open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags,
                  int* out_flags) {
    auto* f = reinterpret_cast<File*>(file);
    f->real = reinterpret_cast<sqlite3_file*>(f + 1);
    f->faultable = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
    f->wal = (flags & SQLITE_OPEN_WAL) != 0;
    const int rc = real_->xOpen(real_, name, f->real, flags, out_flags);
    f->base.pMethods = f->real->pMethods != nullptr ? &kMethods : nullptr;
    return rc;
  }

  static constexpr sqlite3_io_methods kMethods = {
      3,
      [](sqlite3_file* f) { return real_of(f)->pMethods->xClose(real_of(f)); },
      [](sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
        return real_of(f)->pMethods->xRead(real_of(f), buf, n, off);
      },
      [](sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
        if (failing(f, Mode::full)) return SQLITE_FULL;
        return real_of(f)->pMethods->xWrite(real_of(f), buf, n, off);
      },
      [](sqlite3_file* f, sqlite3_int64 size) {
        if (failing(f, Mode::full)) return SQLITE_FULL;
        return real_of(f)->pMethods->xTruncate(real_of(f), size);
      },
      [](sqlite3_file* f, int flags) {
        const auto started = std::chrono::steady_clock::now();
        wait_while_held(f);
        if (failing(f, Mode::fsync)) return SQLITE_IOERR_FSYNC;
        const int rc = real_of(f)->pMethods->xSync(real_of(f), flags);
        record_wal_sync(f, std::chrono::steady_clock::now() - started);
        return rc;
      },
      [](sqlite3_file* f, sqlite3_int64* size) {
        return real_of(f)->pMethods->xFileSize(real_of(f), size);
      },
      [](sqlite3_file* f, int lock) { return real_of(f)->pMethods->xLock(real_of(f), lock); },
      [](sqlite3_file* f, int lock) { return real_of(f)->pMethods->xUnlock(real_of(f), lock); },
      [](sqlite3_file* f, int* out) {
        return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
      },
      [](sqlite3_file* f, int op, void* arg) {
        return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
      },
      [](sqlite3_file* f) { return real_of(f)->pMethods->xSectorSize(real_of(f)); },
      [](sqlite3_file* f) { return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f)); },
      [](sqlite3_file* f, int page, int size, int extend, void volatile** out) {
        return real_of(f)->pMethods->xShmMap(real_of(f), page, size, extend, out);
      },
      [](sqlite3_file* f, int offset, int n, int flags) {
        return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
      },
      [](sqlite3_file* f) { real_of(f)->pMethods->xShmBarrier(real_of(f)); },
      [](sqlite3_file* f, int del) { return real_of(f)->pMethods->xShmUnmap(real_of(f), del); },
      [](sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
        return real_of(f)->pMethods->xFetch(real_of(f), off, n, out);
      },
      [](sqlite3_file* f, sqlite3_int64 off, void* p) {
        return real_of(f)->pMethods->xUnfetch(real_of(f), off, p);
      },
  };

  static inline sqlite3_vfs* real_ = nullptr;
  static inline sqlite3_vfs vfs_{};
  static inline std::atomic<bool> fail_{false};
  static inline std::atomic<Mode> mode_{Mode::full};
  static inline std::mutex hold_mu_;
  static inline std::condition_variable hold_cv_;
  static inline bool hold_ = false;  // guarded by hold_mu_
  static inline int held_ = 0;       // guarded by hold_mu_
  static inline std::vector<std::chrono::steady_clock::duration> wal_sync_times_;  // hold_mu_
};

class StoreFaultBase : public ::testing::Test {
 protected:
  void SetUp() override { FaultVfs::install(); }
  void TearDown() override { FaultVfs::uninstall(); }

  std::unique_ptr<Store> open_store(std::size_t max_batch = 256, Metrics* metrics = nullptr) {
    SqliteStoreOptions options;
    options.path = dir_ / "hookvault.db";
    options.vfs = FaultVfs::kName;
    options.max_batch = max_batch;
    options.metrics = metrics;
    auto store = open_sqlite_store(options, kek_);
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }

  TempDir dir_;
  // Holds the writer inside a batch when a test needs it (gate_kek.hpp).
  std::shared_ptr<hookvault::testing::GateKek> gate_ =
      std::make_shared<hookvault::testing::GateKek>(test_kek());
  std::shared_ptr<const hookvault::Kek> kek_ = gate_;
};

class StoreFaultTest : public StoreFaultBase,
                       public ::testing::WithParamInterface<FaultVfs::Mode> {};
class StoreOpenFaultTest : public StoreFaultBase,
                           public ::testing::WithParamInterface<FaultVfs::Mode> {};
class StoreSyncTest : public StoreFaultBase {};

TEST_P(StoreFaultTest, CommitFailureFailsTheWholeBatchAndRecovers) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("before")));
  EXPECT_TRUE(store->writable());

  // Hold the writer in a batch of its own: an audit append whose audit-key
  // unwrap waits at the gate KEK. Queue the next batch behind it, opened by
  // another audit append; let the first batch commit; once the writer waits
  // at the gate again, inside the second batch, fail its commit.
  gate_->hold();
  auto first = submit_audit(*store, "first");
  ASSERT_TRUE(gate_->wait_entered(1));
  auto second = submit_audit(*store, "second");
  constexpr int kBatch = 20;
  std::latch batch_done(kBatch);
  std::vector<Result<WriteResult>> results(kBatch, Result<WriteResult>(WriteResult{}));
  for (int i = 0; i < kBatch; ++i) {
    store->submit(plain_event("b" + std::to_string(i)), [&, i](Result<WriteResult> r) {
      results[i] = r;
      batch_done.count_down();
    });
  }
  const auto failed_before = store->stats().failed_batches;
  gate_->allow(1);
  ASSERT_TRUE(first.get());
  ASSERT_TRUE(gate_->wait_entered(2));
  FaultVfs::fail(true, GetParam());
  gate_->release();
  batch_done.wait();
  auto second_answer = second.get();
  ASSERT_FALSE(second_answer);
  EXPECT_EQ(errc_of(second_answer.error()), Errc::store_unavailable);
  for (int i = 0; i < kBatch; ++i) {
    ASSERT_FALSE(results[i]) << i;
    EXPECT_EQ(errc_of(results[i].error()), Errc::store_unavailable);
  }
  EXPECT_FALSE(store->writable());
  EXPECT_EQ(store->stats().failed_batches, failed_before + 1);

  // Nothing of the batch is visible; reads still work; writes still fail.
  for (int i = 0; i < kBatch; ++i) {
    auto found = store->find_event("dynamic", "b" + std::to_string(i));
    ASSERT_TRUE(found);
    EXPECT_FALSE(*found);
  }
  auto before = store->find_event("dynamic", "before");
  ASSERT_TRUE(before && *before);
  auto still = store->write(plain_event("during"));
  ASSERT_FALSE(still);
  EXPECT_EQ(errc_of(still.error()), Errc::store_unavailable);
  EXPECT_FALSE(store->writable());

  // The fault clears: the idle writer's probe makes the store writable again
  // without any traffic, and the batch can be written in full.
  FaultVfs::fail(false);
  EXPECT_TRUE(eventually([&] { return store->writable(); }));
  for (int i = 0; i < kBatch; ++i) {
    auto w = store->write(plain_event("b" + std::to_string(i)));
    ASSERT_TRUE(w) << w.error().message();
    EXPECT_FALSE(w->duplicate);
  }
  auto during = store->write(plain_event("during"));
  ASSERT_TRUE(during);
  EXPECT_FALSE(during->duplicate);
  store->close();

  auto reopened = open_store();
  ASSERT_TRUE(reopened);
  for (const char* key : {"before", "b0", "b19", "during"}) {
    auto found = reopened->find_event("dynamic", key);
    ASSERT_TRUE(found) << key;
    EXPECT_TRUE(*found) << key;
  }
}

TEST_P(StoreFaultTest, TrafficAloneAlsoRecovers) {
  auto store = open_store();
  ASSERT_TRUE(store);
  FaultVfs::fail(true, GetParam());
  auto failed = store->write(plain_event("x"));
  ASSERT_FALSE(failed);
  EXPECT_EQ(errc_of(failed.error()), Errc::store_unavailable);
  EXPECT_FALSE(store->writable());
  FaultVfs::fail(false);
  auto ok = store->write(plain_event("x"));
  ASSERT_TRUE(ok);
  EXPECT_FALSE(ok->duplicate);
  EXPECT_TRUE(store->writable());
}

// Regression: a batch of duplicates commits without writing a page, so it
// succeeds on a full disk too; it used to mark the store writable, and
// /readyz answered 200 while every new event was refused.
TEST_P(StoreFaultTest, ADuplicateDuringTheFaultLeavesTheStoreNotWritable) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("before")));
  FaultVfs::fail(true, GetParam());
  ASSERT_FALSE(store->write(plain_event("new")));
  EXPECT_FALSE(store->writable());

  auto duplicate = store->write(plain_event("before"));
  ASSERT_TRUE(duplicate) << duplicate.error().message();
  EXPECT_TRUE(duplicate->duplicate);
  EXPECT_FALSE(store->writable()) << "a commit that wrote nothing made the store look writable";

  FaultVfs::fail(false);
  EXPECT_TRUE(eventually([&] { return store->writable(); }));
  auto fresh = store->write(plain_event("new"));
  ASSERT_TRUE(fresh) << fresh.error().message();
  EXPECT_FALSE(fresh->duplicate);
}

// The open proves a commit and a WAL sync.
TEST_P(StoreOpenFaultTest, OpenFailsWhenTheFirstCommitOrSyncFails) {
  FaultVfs::fail(true, GetParam());
  SqliteStoreOptions options;
  options.path = dir_ / "hookvault.db";
  options.vfs = FaultVfs::kName;
  auto store = open_sqlite_store(options, kek_);
  ASSERT_FALSE(store);
  EXPECT_EQ(errc_of(store.error()), Errc::store_unavailable);
}

std::string mode_name(const ::testing::TestParamInfo<FaultVfs::Mode>& param_info) {
  return param_info.param == FaultVfs::Mode::full ? "DiskFull" : "FsyncFails";
}

INSTANTIATE_TEST_SUITE_P(DiskFull, StoreFaultTest, ::testing::Values(FaultVfs::Mode::full),
                         mode_name);
INSTANTIATE_TEST_SUITE_P(DiskFullAndFsync, StoreOpenFaultTest,
                         ::testing::Values(FaultVfs::Mode::full, FaultVfs::Mode::fsync), mode_name);

// --- The WAL sync before an answer ---------------------------------------------

// Submits `key`; the returned future holds its answer.
std::future<Result<WriteResult>> submit_event(Store& store, const std::string& key) {
  auto promise = std::make_shared<std::promise<Result<WriteResult>>>();
  auto answer = promise->get_future();
  store.submit(plain_event(key),
               [promise](Result<WriteResult> r) { promise->set_value(std::move(r)); });
  return answer;
}

bool answered(std::future<Result<WriteResult>>& answer) {
  return answer.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready;
}

// A commit is visible before it is durable; its answer, and the answer to a
// duplicate of it, wait for a sync that began after it. Commits made while a
// sync runs share the next one.
TEST_F(StoreSyncTest, AnswersWaitForTheWalSyncThatFollowsTheirCommit) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto syncs_before = store->stats().wal_syncs;
  FaultVfs::hold_wal_syncs(true);

  auto first = submit_event(*store, "first");
  ASSERT_TRUE(eventually([&] {
    auto found = store->find_event("dynamic", "first");
    return found && *found;
  })) << "the commit is visible before its sync";
  ASSERT_TRUE(eventually([] { return FaultVfs::held_wal_syncs() >= 1; }));
  // The sync holding `first` began; these commit after it began.
  auto second = submit_event(*store, "second");
  auto again = submit_event(*store, "first");
  ASSERT_TRUE(eventually([&] {
    auto found = store->find_event("dynamic", "second");
    return found && *found;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(answered(first)) << "answered before its WAL sync";
  EXPECT_FALSE(answered(second));
  EXPECT_FALSE(answered(again)) << "a duplicate answered before the row it found was synced";

  FaultVfs::hold_wal_syncs(false);
  auto r1 = first.get();
  auto r2 = second.get();
  auto r3 = again.get();
  ASSERT_TRUE(r1 && r2 && r3);
  EXPECT_FALSE(r1->duplicate);
  EXPECT_FALSE(r2->duplicate);
  EXPECT_TRUE(r3->duplicate);
  EXPECT_EQ(r3->row_id, r1->row_id);
  // One sync for `first`, one for everything committed while it ran.
  EXPECT_EQ(store->stats().wal_syncs - syncs_before, 2U);
  EXPECT_EQ(store->stats().committed_requests, 3U);
}

// Every sync the syncer makes is timed in hookvault_store_wal_sync_seconds:
// one held for 150 ms lands above the 0.1 s bucket.
TEST_F(StoreSyncTest, EachWalSyncIsTimedInItsHistogram) {
  Metrics metrics;
  auto store = open_store(256, &metrics);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("quick")));
  FaultVfs::hold_wal_syncs(true);
  auto held = submit_event(*store, "held");
  ASSERT_TRUE(eventually([] { return FaultVfs::held_wal_syncs() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  FaultVfs::hold_wal_syncs(false);
  ASSERT_TRUE(held.get());

  const std::string rendered = metrics.render();
  const double count = metric_sample(rendered, "hookvault_store_wal_sync_seconds_count");
  EXPECT_EQ(count, static_cast<double>(store->stats().wal_syncs));
  EXPECT_GE(count, 2);
  // Above 0.1 s: the held sync, and only a sync that took over 0.1 s in the
  // VFS (the disk may stall one on its own; the syncer's time of a sync is
  // its VFS time and a few microseconds).
  const double slow =
      count - metric_sample(rendered, "hookvault_store_wal_sync_seconds_bucket{le=\"0.1\"}");
  EXPECT_GE(slow, FaultVfs::wal_syncs_slower_than(std::chrono::milliseconds(100)));
  EXPECT_LE(slow, FaultVfs::wal_syncs_slower_than(std::chrono::milliseconds(90)));
  EXPECT_GE(slow, 1);
  EXPECT_GE(metric_sample(rendered, "hookvault_store_wal_sync_seconds_sum"), 0.15);
}

// A sync that takes a second or more is logged as a warning with its time.
TEST_F(StoreSyncTest, ASyncOfASecondOrMoreIsLoggedAsAWarning) {
  static const bool logging = [] {
    hookvault::init_logging("json", "warn");
    return true;
  }();
  ASSERT_TRUE(logging);
  auto store = open_store();
  ASSERT_TRUE(store);
  ::testing::internal::CaptureStderr();
  ASSERT_TRUE(store->write(plain_event("quick")));
  FaultVfs::hold_wal_syncs(true);
  auto held = submit_event(*store, "held");
  const bool entered = eventually([] { return FaultVfs::held_wal_syncs() >= 1; });
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // Syncer::kSlowSync is 1 s
  FaultVfs::hold_wal_syncs(false);
  const bool stored = static_cast<bool>(held.get());
  const std::string logged = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(entered && stored);
  // One warning per sync of a second or more: the held one (and one the
  // disk stalled that long on its own); the quick sync before was not logged.
  const auto warnings = static_cast<int>(count_of(logged, "a WAL sync was slow"));
  EXPECT_GE(warnings, 1) << logged;
  EXPECT_GE(warnings, FaultVfs::wal_syncs_slower_than(std::chrono::milliseconds(1000))) << logged;
  EXPECT_LE(warnings, FaultVfs::wal_syncs_slower_than(std::chrono::milliseconds(900))) << logged;
  EXPECT_NE(logged.find(R"("level":"warning")"), std::string::npos) << logged;
  std::smatch ms;
  ASSERT_TRUE(std::regex_search(logged, ms, std::regex(R"re("sync_ms":([0-9]+))re"))) << logged;
  EXPECT_GE(std::stol(ms[1]), 1000) << logged;
}

// A batch of duplicates writes nothing; once every commit before it is
// synced, it is answered without a sync of its own (so a duplicate is still
// answered while the disk refuses writes: FaultTest's read-only filesystem).
TEST_F(StoreSyncTest, ADuplicateOfASyncedRowIsAnsweredWithoutASync) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("synced")));
  const auto syncs_before = store->stats().wal_syncs;
  FaultVfs::hold_wal_syncs(true);
  auto again = submit_event(*store, "synced");
  ASSERT_EQ(again.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the duplicate waited for a sync";
  auto r = again.get();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->duplicate);
  EXPECT_EQ(store->stats().wal_syncs, syncs_before);
  EXPECT_EQ(FaultVfs::held_wal_syncs(), 0);
  FaultVfs::hold_wal_syncs(false);
}

// After a failed sync nothing may be acknowledged: Linux may have dropped the
// pages it could not write, and a later sync can succeed without them. The
// batch's requests are refused, and so is every later write (a duplicate too),
// even once syncs work again; reads go on. Opening the store again recovers.
TEST_F(StoreSyncTest, AFailedSyncRefusesItsRequestsAndEveryWriteUntilTheStoreIsReopened) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->write(plain_event("before")));
  const auto failed_before = store->stats().failed_batches;

  FaultVfs::fail(true, FaultVfs::Mode::fsync);
  constexpr int kRequests = 5;
  std::vector<std::future<Result<WriteResult>>> answers;
  for (int i = 0; i < kRequests; ++i)
    answers.push_back(submit_event(*store, "b" + std::to_string(i)));
  for (auto& answer : answers) {
    auto r = answer.get();
    ASSERT_FALSE(r);
    EXPECT_EQ(errc_of(r.error()), Errc::store_unavailable);
  }
  EXPECT_FALSE(store->writable());
  EXPECT_GT(store->stats().failed_batches, failed_before);
  // They were committed, so they may be read; they were never acknowledged.
  auto b0 = store->find_event("dynamic", "b0");
  ASSERT_TRUE(b0);
  EXPECT_TRUE(*b0);

  FaultVfs::fail(false);
  for (const char* key : {"after", "before", "b0"}) {
    auto w = store->write(plain_event(key));
    ASSERT_FALSE(w) << key;
    EXPECT_EQ(errc_of(w.error()), Errc::store_unavailable) << key;
  }
  // The idle writer's probe (every second while not writable) does not clear it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_FALSE(store->writable());
  auto read = store->find_event("dynamic", "before");
  ASSERT_TRUE(read);
  EXPECT_TRUE(*read);
  store->close();

  auto reopened = open_store();
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(reopened->writable());
  auto before = reopened->write(plain_event("before"));
  ASSERT_TRUE(before) << before.error().message();
  EXPECT_TRUE(before->duplicate);
  // A retry of a refused request: stored now (here the page cache kept it, so
  // it is a duplicate; after a lost write it would be new).
  auto retry = reopened->write(plain_event("b0"));
  ASSERT_TRUE(retry) << retry.error().message();
  auto after = reopened->write(plain_event("after"));
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_FALSE(after->duplicate);
}

// --- Another connection holds the write lock ----------------------------------

// Regression: a request queued behind a batch that waited out the busy
// timeout waited a whole busy timeout again in its own batch, and one that
// arrived while the idle writer's probe waited for the lock waited for the
// probe first: up to twice the busy timeout. Now each batch gets what its
// oldest request has left, and the probe does not wait. These bounds are
// timed: half a second of slack each way (the old code took a second more).
TEST(StoreLock, NoRequestWaitsForAnotherWritersLockLongerThanTheBusyTimeout) {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir / "hookvault.db";
  options.busy_timeout = 2000ms;
  auto opened = open_sqlite_store(options, test_kek());
  ASSERT_TRUE(opened) << opened.error().message();
  Store& store = **opened;
  ASSERT_TRUE(store.write(plain_event("before")));

  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open_v2(options.path.c_str(), &other, SQLITE_OPEN_READWRITE, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  const auto timed_write = [&store](const std::string& key) {
    const auto started = Clock::now();
    auto r = store.write(plain_event(key));
    return std::make_pair(std::move(r), Clock::now() - started);
  };
  // `a` waits out the lock; `b` is queued while it does.
  auto a = std::async(std::launch::async, timed_write, "a");
  std::this_thread::sleep_for(1000ms);
  auto [b, b_took] = timed_write("b");
  auto [a_result, a_took] = a.get();
  ASSERT_FALSE(a_result);
  EXPECT_EQ(errc_of(a_result.error()), Errc::store_unavailable);
  EXPECT_GE(a_took, options.busy_timeout - 100ms);
  ASSERT_FALSE(b);
  EXPECT_EQ(errc_of(b.error()), Errc::store_unavailable);
  EXPECT_LT(b_took, options.busy_timeout + 500ms);
  EXPECT_FALSE(store.writable());

  // Not writable and idle: the writer probes every second. `c` arrives while
  // a probe would be waiting for the lock.
  std::this_thread::sleep_for(1500ms);
  auto [c, c_took] = timed_write("c");
  ASSERT_FALSE(c);
  EXPECT_LT(c_took, options.busy_timeout + 500ms);

  // The lock released: writable again without a write, and writes succeed.
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_close(other), SQLITE_OK);
  const auto deadline = Clock::now() + 10s;
  while (!store.writable() && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(store.writable());
  for (const char* key : {"a", "b", "c"}) {
    auto w = store.write(plain_event(key));
    ASSERT_TRUE(w) << key << ": " << w.error().message();
    EXPECT_FALSE(w->duplicate) << key;
  }
}

// --- Open failures ------------------------------------------------------------

void expect_open_unavailable(const std::filesystem::path& path) {
  SqliteStoreOptions options;
  options.path = path;
  auto store = open_sqlite_store(options, test_kek());
  ASSERT_FALSE(store) << path;
  EXPECT_EQ(errc_of(store.error()), Errc::store_unavailable) << path;
}

TEST(StoreOpen, ReadOnlyDirectoryIsUnavailable) {
  TempDir dir;
  const auto ro = dir / "ro";
  std::filesystem::create_directory(ro);
  ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
  if (::access(ro.c_str(), W_OK) == 0) {
    // Root ignores the mode; sysfs refuses new files even to root.
    expect_open_unavailable("/sys/hookvault-test.db");
  } else {
    expect_open_unavailable(ro / "hookvault.db");
  }
  ASSERT_EQ(::chmod(ro.c_str(), 0755), 0);
}

TEST(StoreOpen, ExistingDatabaseInReadOnlyDirectoryIsUnavailable) {
  TempDir dir;
  const auto sub = dir / "db";
  std::filesystem::create_directory(sub);
  {
    SqliteStoreOptions options;
    options.path = sub / "hookvault.db";
    auto store = open_sqlite_store(options, test_kek());
    ASSERT_TRUE(store);
  }
  ASSERT_EQ(::chmod(sub.c_str(), 0555), 0);
  ASSERT_EQ(::chmod((sub / "hookvault.db").c_str(), 0444), 0);
  if (::access(sub.c_str(), W_OK) == 0) {
    ASSERT_EQ(::chmod(sub.c_str(), 0755), 0);
    GTEST_SKIP() << "running as root: file modes do not stop writes";
  }
  expect_open_unavailable(sub / "hookvault.db");
  ASSERT_EQ(::chmod(sub.c_str(), 0755), 0);
}

TEST(StoreOpen, BadPathsAreUnavailable) {
  TempDir dir;
  expect_open_unavailable(dir.path());                        // a directory
  expect_open_unavailable(dir / "missing" / "hookvault.db");  // no parent folder
  expect_open_unavailable("");                                // no path
  hookvault::testing::write_file(dir / "garbage.db", std::string(8192, 'G'));
  expect_open_unavailable(dir / "garbage.db");  // not a database
  std::string truncated_header = "SQLite format 3";
  truncated_header.push_back('\0');
  truncated_header += std::string(84, '\xff');
  hookvault::testing::write_file(dir / "corrupt.db", truncated_header + std::string(4000, 'x'));
  expect_open_unavailable(dir / "corrupt.db");  // corrupt header
}

TEST(StoreOpen, NewerSchemaVersionIsUnavailable) {
  TempDir dir;
  const auto path = dir / "hookvault.db";
  {
    SqliteStoreOptions options;
    options.path = path;
    auto store = open_sqlite_store(options, test_kek());
    ASSERT_TRUE(store);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "UPDATE meta SET value = '3' WHERE key = 'schema_version'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  expect_open_unavailable(path);
}

TEST(StoreOpen, MissingKekIsRefused) {
  TempDir dir;
  SqliteStoreOptions options;
  options.path = dir / "hookvault.db";
  auto store = open_sqlite_store(options, nullptr);
  ASSERT_FALSE(store);
  EXPECT_EQ(errc_of(store.error()), Errc::kek_unavailable);
}

}  // namespace
