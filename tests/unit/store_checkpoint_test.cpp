// The WAL checkpointer (src/store/checkpointer.hpp): the store's own thread
// copies the WAL into the database file, and under continuous writes the WAL
// stays bounded by the writer's checkpoint at wal_limit_pages. Real SQLite
// files in a TempDir.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "hookvault/kek.hpp"
#include "hookvault/store.hpp"
#include "raw_db.hpp"
#include "test_support.hpp"

namespace {

using hookvault::Result;
using hookvault::SecretBytes;
using hookvault::Store;
using hookvault::StoreOptions;
using hookvault::WriteRequest;
using hookvault::WriteResult;
using hookvault::testing::RawDb;
using hookvault::testing::TempDir;

constexpr std::uintmax_t kPage = 4096;

// A Nodit-like event of about 1 KiB, so that every few events fill a page.
WriteRequest event(int i) {
  WriteRequest r;
  r.event.source = "nodit";
  r.event.idempotency_key = "sub-" + std::to_string(i % 4) + ":" + std::to_string(i / 4 + 1);
  r.event.event_name = "ADDRESS_ACTIVITY";
  r.event.payload = R"({"n":)" + std::to_string(i) + R"(,"pad":")" + std::string(1000, 'x') + "\"}";
  r.event.sequence = hookvault::SequencePosition{"sub-" + std::to_string(i % 4),
                                                 static_cast<std::uint64_t>(i / 4 + 1)};
  return r;
}

class StoreCheckpointTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> open_store(int checkpoint_pages, int wal_limit_pages) {
    StoreOptions options;
    options.path = path();
    options.checkpoint_pages = checkpoint_pages;
    options.wal_limit_pages = wal_limit_pages;
    auto store = Store::open(options, hookvault::make_memory_kek(SecretBytes::random(32), "t:1"));
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }
  std::filesystem::path path() const { return dir_ / "hookvault.db"; }
  std::uintmax_t wal_bytes() const {
    std::error_code ec;
    const auto n = std::filesystem::file_size(path().string() + "-wal", ec);
    return ec ? 0 : n;
  }

  // Submits events [first, first + count) keeping `window` of them waiting for
  // their commit, so the writer never idles; calls `each` after every
  // completion (on this thread). Returns how many failed or were duplicates.
  template <class F>
  static int write_continuously(Store& store, int first, int count, int window, F&& each) {
    std::mutex mu;
    std::condition_variable cv;
    int waiting = 0;
    int bad = 0;
    for (int i = first; i < first + count; ++i) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return waiting < window; });
      ++waiting;
      lock.unlock();
      store.submit(event(i), [&](Result<WriteResult> r) {
        std::lock_guard guard(mu);
        if (!r || r->duplicate) ++bad;
        --waiting;
        cv.notify_all();
      });
      each();
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return waiting == 0; });
    return bad;
  }

  TempDir dir_;
};

TEST_F(StoreCheckpointTest, TheCheckpointerCopiesTheWalIntoTheDatabaseFile) {
  // A WAL limit the test never reaches: only the checkpointer's thread
  // checkpoints, and the database file grows only through it.
  auto store = open_store(/*checkpoint_pages=*/16, /*wal_limit_pages=*/1 << 30);
  ASSERT_TRUE(store);
  const auto db_before = std::filesystem::file_size(path());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->write(event(i)));

  // 200 events of 1 KiB are at least 50 pages; the checkpoints copy them
  // (the thread may still be copying the last ones: wait for it, at most 20 s).
  const auto grown = [&] { return std::filesystem::file_size(path()) >= db_before + 40 * kPage; };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!grown() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(grown()) << "database file: " << std::filesystem::file_size(path()) << " bytes";
  EXPECT_GT(store->stats().checkpoints, 0U);
  EXPECT_EQ(store->stats().checkpoint_failures, 0U);
  EXPECT_EQ(RawDb(path()).integer("SELECT count(*) FROM events"), 200);
}

TEST_F(StoreCheckpointTest, TheWalStaysBoundedWhileTheWriterNeverIdles) {
  constexpr int kLimit = 200;
  auto store = open_store(/*checkpoint_pages=*/20, /*wal_limit_pages=*/kLimit);
  ASSERT_TRUE(store);
  std::uintmax_t largest = 0;
  // 3,000 events of 1 KiB are more than 750 pages of table alone: without a
  // WAL restart the WAL would hold them all.
  const int bad =
      write_continuously(*store, 0, 3000, 32, [&] { largest = std::max(largest, wal_bytes()); });
  EXPECT_EQ(bad, 0);
  // The limit, plus what one batch (at most 32 events, a few pages each) and
  // the commits that overlapped the writer's checkpoint can add.
  EXPECT_LE(largest, (kLimit + 400) * (kPage + 24) + 32) << "largest WAL: " << largest;
  EXPECT_GT(store->stats().checkpoints, 0U);
  EXPECT_EQ(store->stats().checkpoint_failures, 0U);

  store.reset();
  // close() folded the WAL in and removed it.
  EXPECT_FALSE(std::filesystem::exists(path().string() + "-wal"));
  RawDb raw(path());
  EXPECT_EQ(raw.integer("SELECT count(*) FROM events"), 3000);
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

}  // namespace
