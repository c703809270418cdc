// Backfill of Nodit messages through the Get Webhook History API.
//
// One Backfiller per Nodit source with a [sources.history] table. It runs on
// its own thread, never on the I/O threads:
//   - at start-up, for every subscription it knows (from the store, plus the
//     configured `subscriptions`), it fetches status=FAIL messages created since
//     the newest event stored for the source (or the last 30 days, the API's
//     retention, when the store holds none);
//   - then, every `poll_interval`, it looks at the store's sequence gaps; a gap
//     older than `gap_delay` is fetched with startSequenceNumber = its first
//     number, page by page (`page_size`), until the gap is covered or the pages
//     run out. A failed request (error status, timeout, garbage) or a fetch that
//     leaves the gap open backs off exponentially per subscription
//     (`backoff_initial` doubling up to `backoff_max`).
// Every fetched message goes through the same idempotent store path as a
// webhook (plan_nodit), with origin "history": it is stored once whatever
// arrives first, the webhook or the backfill. Fetched messages carry no
// signature; they are authenticated by the verified TLS connection to the API.
// The API key is never logged.
//
// Thread-safety: start()/stop() from one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hookvault/nodit_history.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

using HistoryFetch = std::function<Result<HistoryPage>(const HistoryQuery&)>;

struct BackfillStats {
  std::uint64_t fetches = 0;         // requests made
  std::uint64_t failed_fetches = 0;  // requests that failed
  std::uint64_t stored = 0;          // messages stored from history (not duplicates)
};

class Backfiller {
 public:
  Backfiller(std::shared_ptr<const Source> source, Store& store, HistoryFetch fetch);
  ~Backfiller();
  Backfiller(const Backfiller&) = delete;
  Backfiller& operator=(const Backfiller&) = delete;

  void start();
  void stop();
  // One pass over the gaps now (also used by tests); returns messages stored.
  std::uint64_t run_once();
  BackfillStats stats() const;

 private:
  void loop();
  void fetch_failed_since_last();
  // Stores every usable item of `page`; returns how many were new.
  std::uint64_t store_items(const HistoryPage& page);
  // Fetches `query` page by page, storing every usable item, until the last
  // page or until `enough` says so. False when a request failed or stop() ran.
  bool fetch_pages(HistoryQuery query, const std::function<bool(const HistoryPage&)>& enough);
  bool fetch_range(const std::string& subscription, std::uint64_t first, std::uint64_t last);

  std::shared_ptr<const Source> source_;
  const HistoryConfig& history_;
  Store& store_;
  HistoryFetch fetch_;

  struct Backoff {
    std::chrono::milliseconds delay{0};
    std::chrono::steady_clock::time_point next_try{};
  };
  std::map<std::string, Backoff> backoff_;  // per subscription; backfill thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  BackfillStats stats_;
  std::thread thread_;
};

}  // namespace hookvault
