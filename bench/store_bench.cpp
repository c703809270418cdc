// The store's writer alone, without TLS or HTTP: how many Nodit-shaped events
// per second one Store commits durably, and what each costs the writer thread.
//
//   build/bench/hookvault_store_bench [events=100000] [in_flight=64] [dir=/tmp]
//   SYNC_DELAY_US=2000 build/bench/hookvault_store_bench ...   a slower disk (slow_sync_vfs.hpp)
//
// One thread seals and submits events (what the I/O threads do in the
// daemon), keeping `in_flight` of them waiting for their commit, like that
// many keep-alive connections. The events are shaped like
// ../shared/bench/load/gen.js's Nodit deliveries: 8 subscriptions (digits,
// as bench/lib.sh's nodit_resign makes gen.js's ids), sequence
// numbers counting up, a body of about 560 bytes. Prints one line of
// key=value pairs: events/s, the writer thread's CPU per event (from
// /proc/self/task/<tid>/stat of the thread named hv-writer) and the syncer's
// (hv-sync, which syncs the WAL before the answers), the mean batch, the wall
// time per commit and how many WAL syncs covered the commits. The database is created in a fresh
// directory under `dir` and removed afterwards.
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>

#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "hookvault/sqlite_store.hpp"
#include "hookvault/store.hpp"
#include "slow_sync_vfs.hpp"

namespace {

using hookvault::NewEvent;
using hookvault::Result;
using hookvault::WriteRequest;
using hookvault::WriteResult;

std::uint64_t arg(int argc, char** argv, int i, std::uint64_t fallback) {
  if (argc <= i) return fallback;
  std::uint64_t v = 0;
  const std::string_view s(argv[i]);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0) {
    std::fprintf(stderr, "store_bench: bad number %s\n", argv[i]);
    std::exit(2);
  }
  return v;
}

// utime + stime of the thread named `name`, in seconds; nullopt when none is.
std::optional<double> thread_cpu_seconds(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c != name) continue;
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int f = 3; f <= 15 && rest >> field; ++f) {
      if (f == 14 || f == 15) ticks += std::stod(field);
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  return std::nullopt;
}

std::string payload(std::uint64_t i) {
  std::string hex(64, '0');
  static constexpr char kDigits[] = "0123456789abcdef";
  std::uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ULL;
  for (auto& c : hex) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    c = kDigits[x & 15];
  }
  return R"({"subscriptionId":")" + std::to_string(10 + i % 8) + R"(","sequenceNumber":")" +
         std::to_string(i / 8 + 1) +
         R"(","description":"bench","protocol":"ETHEREUM","network":"MAINNET",)"
         R"("subscriptionType":"WEBHOOK","notification":{"webhookUrl":"https://127.0.0.1/webhooks/nodit"},)"
         R"("eventType":"ADDRESS_ACTIVITY","event":{"targetAddress":"0x)" +
         hex.substr(0, 40) + R"(","messages":[{"hash":"0x)" + hex + R"(","value":")" +
         std::to_string(i) + R"(","block_number":)" + std::to_string(20000000 + i) +
         R"(}]},"createdAt":"2026-11-23T10:00:00.000Z"})";
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t events = arg(argc, argv, 1, 100000);
  const std::uint64_t in_flight = arg(argc, argv, 2, 64);
  const std::filesystem::path base = argc > 3 ? argv[3] : "/tmp";
  const auto dir = base / ("hookvault-store-bench." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);

  const unsigned sync_delay_us = hookvault::bench::install_slow_sync_vfs();
  hookvault::SqliteStoreOptions options;
  options.path = dir / "bench.db";
  if (sync_delay_us > 0) options.vfs = hookvault::bench::kSlowSyncVfs;
  auto store = hookvault::open_sqlite_store(
      options, hookvault::make_memory_kek(hookvault::SecretBytes::random(32), "bench"));
  if (!store) {
    std::fprintf(stderr, "store_bench: open: %s\n", store.error().message().c_str());
    return 1;
  }

  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t waiting = 0;
  std::uint64_t failed = 0;
  const double cpu_before = thread_cpu_seconds("hv-writer").value_or(0);
  const double sync_cpu_before = thread_cpu_seconds("hv-sync").value_or(0);
  const auto before = (*store)->stats();
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < events; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return waiting < in_flight; });
      ++waiting;
    }
    WriteRequest request;
    NewEvent& ev = request.event;
    ev.source = "nodit";
    ev.idempotency_key = std::to_string(10 + i % 8) + ":" + std::to_string(i / 8 + 1);
    ev.event_name = "ADDRESS_ACTIVITY";
    ev.event_time = "2026-11-23T10:00:00.000Z";
    ev.event_time_ms = 1795428000000;
    ev.payload = payload(i);
    ev.sequence = hookvault::SequencePosition{std::to_string(10 + i % 8), i / 8 + 1};
    (*store)->submit(std::move(request), [&](Result<WriteResult> r) {
      std::lock_guard lock(mu);
      if (!r || r->duplicate) ++failed;
      --waiting;
      cv.notify_one();
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return waiting == 0; });
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = thread_cpu_seconds("hv-writer").value_or(0) - cpu_before;
  const double sync_cpu = thread_cpu_seconds("hv-sync").value_or(0) - sync_cpu_before;
  const auto after = (*store)->stats();
  const auto commits = static_cast<double>(after.commits - before.commits);
  const auto n = static_cast<double>(events);
  std::printf(
      "events=%llu in_flight=%llu failed=%llu events_per_s=%.0f writer_cpu_us_per_event=%.1f "
      "writer_cpu_share=%.2f mean_batch=%.1f wall_us_per_commit=%.0f checkpoints=%llu "
      "checkpoint_failures=%llu sync_cpu_us_per_event=%.1f wal_syncs=%llu\n",
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(in_flight),
      static_cast<unsigned long long>(failed), n / seconds, cpu / n * 1e6, cpu / seconds,
      n / commits, seconds / commits * 1e6,
      static_cast<unsigned long long>(after.checkpoints - before.checkpoints),
      static_cast<unsigned long long>(after.checkpoint_failures), sync_cpu / n * 1e6,
      static_cast<unsigned long long>(after.wal_syncs - before.wal_syncs));
  std::error_code no_wal;  // 0 bytes when the WAL is absent
  const auto wal_bytes = std::filesystem::file_size(dir / "bench.db-wal", no_wal);
  store->reset();
  std::printf("wal_bytes_at_end=%llu sync_delay_us=%u\n",
              static_cast<unsigned long long>(no_wal ? 0 : wal_bytes), sync_delay_us);
  std::filesystem::remove_all(dir);
  return failed == 0 ? 0 : 1;
}
