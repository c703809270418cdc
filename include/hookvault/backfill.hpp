// Backfill of Nodit messages through the Get Webhook History API.
//
// One Backfiller per Nodit source with a [sources.history] table. It runs on
// its own thread, never on the I/O threads:
//   - at start-up, for every subscription it knows (from the store, plus the
//     configured `subscriptions`), it fetches status=FAIL messages created since
//     the newest event that arrived signed for the source (never later than
//     now; the last 30 days, the API's retention, when there is none);
//   - then, every `poll_interval`, it looks at the store's sequence gaps; a gap
//     older than `gap_delay` is fetched with startSequenceNumber = its first
//     number, page by page (`page_size`), until the gap is covered or the pages
//     run out. A failed request (error status, timeout, garbage, a response
//     over the client's size or item limits) or a fetch that leaves the gap
//     open backs off exponentially per subscription (`backoff_initial`
//     doubling up to `backoff_max`).
//   A subscription whose id is not one (subscription_id.hpp: a ledger an
//   older version admitted, such as "abc") is never asked about: the API
//   cannot answer for it, so its gaps stay listed (`hookvault nodit gaps`)
//   and a warning names it at start-up.
// Fetched messages carry no signature; they are authenticated only by the
// verified TLS connection to the API, so the backfill stores only what it
// asked for: an item is refused (counted in BackfillStats::refused, logged,
// never stored) unless its message names the item's own subscription and
// sequence number and was not created in the future (5 minutes of clock
// skew allowed), and
//   - for a gap fetch, that number is one of the gaps' missing numbers;
//   - for the start-up fetch, it is a FAIL delivery created in the window
//     asked for, numbered at most 1,000 past the subscription's highest
//     stored number (numbers beyond are fetched as a gap once a signed
//     delivery shows the sequence got there; for a subscription the store
//     has not seen yet any number goes, as the first one stored only sets
//     where its counting starts: src/store/sqlite/sequences.hpp).
// So an item can neither open a gap (a forged huge number would be chased
// forever) nor move the start-up window (a forged future createdAt). What is
// accepted goes through the same idempotent store path as a webhook
// (plan_nodit) with origin "history"; and since a history copy is only the
// API's word, the signed delivery of the same number, when it arrives later,
// replaces it (store.hpp), never the reverse. The API key is never logged.
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
  std::uint64_t refused = 0;         // items returned that were not asked for (see above)
  std::uint64_t passes_left = 0;     // passes not run: another hookvault held the lease
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
  // A pass first takes the store's lease "backfill:<source>" (store.hpp:
  // try_lease), so of several hookvault processes on one database one
  // backfills a source at a time; while another holds it the pass does
  // nothing (BackfillStats::passes_left).
  std::uint64_t run_once();
  BackfillStats stats() const;

 private:
  struct Asked;  // what one fetch asked for (backfill.cpp)

  void loop();
  void fetch_failed_since_last();
  // Why an item, whose message is to be stored as `event`, is not what
  // `asked` asked for; nullptr when it is.
  static const char* refusal_of(const HistoryItem& item, const NewEvent& event, const Asked& asked,
                                std::int64_t now_ms);
  // Stores every item of `page` that `asked` asked for; returns how many were new.
  std::uint64_t store_items(const HistoryPage& page, const Asked& asked);
  // Fetches `query` page by page, storing what `asked` asked for, until the
  // last page or until `enough` says so. False when a request failed or
  // stop() ran.
  bool fetch_pages(HistoryQuery query, const Asked& asked,
                   const std::function<bool(const HistoryPage&)>& enough);
  // Fetches the missing numbers of `gaps` (ascending) of one subscription.
  bool fetch_gaps(const std::string& subscription, const std::vector<SequenceGap>& gaps);

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
