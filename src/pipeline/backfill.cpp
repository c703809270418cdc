// Backfill (backfill.hpp). The history API is trusted no further than the
// question asked of it: every item is checked against what its fetch asked
// for (refusal_of) before it reaches the store, so an item for a number that
// is not missing, a huge forged number, a createdAt in the future, or a body
// that names another message is counted and dropped, never stored.
#include "hookvault/backfill.hpp"

#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "hookvault/subscription_id.hpp"
#include "pipeline/admission.hpp"

namespace hookvault {
namespace {

constexpr std::int64_t kHistoryRetentionMs = 30LL * 24 * 3600 * 1000;
constexpr std::uint32_t kMaxPagesPerFetch = 1000;
// Clocks differ: a createdAt this far past our own now is still believed.
constexpr std::int64_t kClockSkewMs = 5LL * 60 * 1000;
// How far past a subscription's highest stored number a failed delivery
// fetched at start-up may lie (as far as the store records a new
// subscription's first numbers missing: src/store/sequence_fold.hpp, kMaxInitialGap).
// Numbers beyond wait for a signed delivery to show the sequence got there;
// the gap it opens is then fetched by number.
constexpr std::uint64_t kMaxFailedAhead = 1000;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso8601(std::int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  (void)std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(ms % 1000));
  return buf;
}

// False for a subscription the history API cannot be asked about (its id is
// not one: subscription_id.hpp); at start-up (`warn`) a warning names it, the
// passes after that skip it quietly.
bool askable(const std::string& source, const std::string& subscription, bool warn) {
  if (is_subscription_id(subscription)) return true;
  if (warn) {
    log(LogLevel::warn, "backfill: not a Nodit subscription id; its gaps are not fetched",
        {{"source", source}, {"subscription", subscription.substr(0, kMaxSubscriptionIdLength)}});
  }
  return false;
}

}  // namespace

// What one fetch asked the history API for: exactly one of
//   - `missing`: numbers of `subscription` the store lacks (gaps), or
//   - `failed_since_ms`: its deliveries that failed (status FAIL) created
//     since then, up to now, at most kMaxFailedAhead past `highest` (when the
//     store knows the subscription).
struct Backfiller::Asked {
  std::string subscription;
  std::vector<SequenceGap> missing;
  std::optional<std::int64_t> failed_since_ms;
  std::optional<std::uint64_t> highest;
};

const char* Backfiller::refusal_of(const HistoryItem& item, const NewEvent& event,
                                   const Asked& asked, std::int64_t now_ms) {
  if (item.subscription_id != asked.subscription) return "another subscription";
  // The message itself must be the one the item names (its idempotency key
  // and sequence place come from the message, not from the item).
  const auto& seq = event.sequence;
  if (!seq || seq->subscription_id != item.subscription_id || seq->number != item.sequence_number) {
    return "the message does not name the item's sequence number";
  }
  if (event.event_time_ms > now_ms + kClockSkewMs) return "created in the future";
  const std::uint64_t n = item.sequence_number;
  if (asked.failed_since_ms) {
    if (!iequals_ascii(item.status, "FAIL")) return "not a failed delivery";
    const auto created = parse_iso8601_ms(item.created_at);
    if (!created) return "no usable createdAt";
    if (*created < *asked.failed_since_ms || *created > now_ms + kClockSkewMs) {
      return "created outside the window asked for";
    }
    if (asked.highest && n > *asked.highest && n - *asked.highest > kMaxFailedAhead) {
      return "a number too far past the highest stored";
    }
    return nullptr;
  }
  const bool missing =
      std::any_of(asked.missing.begin(), asked.missing.end(),
                  [n](const SequenceGap& g) { return g.first <= n && n <= g.last; });
  return missing ? nullptr : "a number not missing";
}

Backfiller::Backfiller(std::shared_ptr<const Source> source, Store& store, HistoryFetch fetch)
    : source_(std::move(source)),
      history_(*source_->config.history),
      store_(store),
      fetch_(std::move(fetch)) {}

Backfiller::~Backfiller() { stop(); }

void Backfiller::start() {
  thread_ = std::thread([this] {
    name_this_thread("hv-backfill");
    loop();
  });
}

void Backfiller::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

BackfillStats Backfiller::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Backfiller::loop() {
  fetch_failed_since_last();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    run_once();
    lock.lock();
    cv_.wait_for(lock, history_.poll_interval, [this] { return stopping_; });
  }
}

std::uint64_t Backfiller::store_items(const HistoryPage& page, const Asked& asked) {
  std::uint64_t stored = 0;
  std::uint64_t refused = 0;
  const char* first_refusal = nullptr;
  const std::int64_t now = wall_ms();
  for (const auto& item : page.items) {
    const char* refusal = "the message is not a usable Nodit message";
    std::optional<detail::Plan> plan;
    if (auto body = parse_strict(item.event_message)) {
      auto planned = detail::plan_nodit(*source_, *body, item.event_message, Origin::history, now);
      if (planned) {
        refusal = refusal_of(item, planned->request.event, asked, now);
        plan = std::move(*planned);
      }
    }
    if (refusal != nullptr) {
      ++refused;
      if (first_refusal == nullptr) first_refusal = refusal;
      continue;
    }
    auto written = store_.write(std::move(plan->request));
    if (!written) {
      log(LogLevel::warn, "backfill store failed",
          {{"source", source_->config.name}, {"error", written.error().message()}});
      continue;
    }
    if (!written->duplicate) ++stored;
  }
  if (refused > 0) {
    log(LogLevel::warn, "history items not asked for were refused",
        {{"source", source_->config.name},
         {"subscription", asked.subscription},
         {"refused", refused},
         {"first_reason", first_refusal}});
  }
  std::lock_guard lock(mu_);
  stats_.stored += stored;
  stats_.refused += refused;
  return stored;
}

void Backfiller::fetch_failed_since_last() {
  std::map<std::string, std::optional<std::uint64_t>> subscriptions;  // -> highest stored
  for (const auto& sub : history_.subscriptions) subscriptions[sub];
  if (auto seqs = store_.sequences(source_->config.name)) {
    for (const auto& s : *seqs) subscriptions[s.subscription_id] = s.highest;
  }
  // Since the newest message that arrived signed (its time is Nodit's word,
  // authenticated; a history copy's is only the API's), never later than
  // now; without one, as far back as the API keeps deliveries.
  const std::int64_t now = wall_ms();
  auto latest = store_.latest_event_time_ms(source_->config.name);
  const std::int64_t since =
      latest && latest->has_value() ? std::min(**latest, now) : now - kHistoryRetentionMs;
  for (const auto& [sub, highest] : subscriptions) {
    if (!askable(source_->config.name, sub, true)) continue;
    HistoryQuery q;
    q.subscription_id = sub;
    q.status = "FAIL";
    q.start_at = iso8601(since);
    q.end_at = iso8601(now + kClockSkewMs);
    const Asked asked{sub, {}, since, highest};
    if (!fetch_pages(std::move(q), asked, [](const HistoryPage&) { return false; })) return;
  }
}

bool Backfiller::fetch_pages(HistoryQuery query, const Asked& asked,
                             const std::function<bool(const HistoryPage&)>& enough) {
  query.rpp = history_.page_size;
  for (query.page = 1; query.page <= kMaxPagesPerFetch; ++query.page) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return false;
      ++stats_.fetches;
    }
    auto result = fetch_(query);
    if (!result) {
      std::lock_guard lock(mu_);
      ++stats_.failed_fetches;
      log(LogLevel::warn, "history fetch failed",
          {{"source", source_->config.name},
           {"subscription", query.subscription_id},
           {"status", query.status.value_or("")},
           {"error", result.error().message()}});
      return false;
    }
    const auto stored = store_items(*result, asked);
    log(LogLevel::info, "history page fetched",
        {{"source", source_->config.name},
         {"subscription", query.subscription_id},
         {"status", query.status.value_or("")},
         {"items", result->items.size()},
         {"stored", stored}});
    const bool last_page =
        result->items.size() < history_.page_size ||
        (result->total > 0 && std::uint64_t{query.page} * history_.page_size >= result->total);
    if (last_page || enough(*result)) return true;
  }
  return true;
}

bool Backfiller::fetch_gaps(const std::string& subscription, const std::vector<SequenceGap>& gaps) {
  const std::uint64_t last = gaps.back().last;
  HistoryQuery q;
  q.subscription_id = subscription;
  q.start_sequence_number = gaps.front().first;
  const Asked asked{subscription, gaps, std::nullopt, std::nullopt};
  return fetch_pages(std::move(q), asked, [&](const HistoryPage& page) {
    std::uint64_t top = 0;
    for (const auto& item : page.items) {
      if (item.subscription_id == subscription) top = std::max(top, item.sequence_number);
    }
    return top >= last;
  });
}

std::uint64_t Backfiller::run_once() {
  const auto lease = store_.try_lease("backfill:" + source_->config.name);
  if (!lease || !*lease) {
    if (!lease) {
      log(LogLevel::warn, "backfill: cannot take the source's lease; pass skipped",
          {{"source", source_->config.name}, {"error", lease.error().message()}});
    }
    std::lock_guard lock(mu_);
    ++stats_.passes_left;
    return 0;
  }
  const std::uint64_t before = stats().stored;
  auto seqs = store_.sequences(source_->config.name);
  if (!seqs) return 0;
  const auto now = std::chrono::steady_clock::now();
  const std::int64_t now_wall = wall_ms();
  for (const auto& s : *seqs) {
    if (s.gaps.empty()) {
      backoff_.erase(s.subscription_id);
      continue;
    }
    // Gaps old enough to chase (a message still in flight fills a young one).
    std::vector<SequenceGap> due;
    for (const auto& g : s.gaps) {
      if (now_wall - g.detected_at_ms >= history_.gap_delay.count()) due.push_back(g);
    }
    if (due.empty() || !askable(source_->config.name, s.subscription_id, false)) continue;
    Backoff& b = backoff_[s.subscription_id];
    if (now < b.next_try) continue;
    const bool ok = fetch_gaps(s.subscription_id, due);
    // Did that close the due gaps?
    bool open = !ok;
    if (ok) {
      if (auto after = store_.sequences(source_->config.name)) {
        for (const auto& a : *after) {
          if (a.subscription_id != s.subscription_id) continue;
          for (const auto& g : a.gaps) {
            if (g.first <= due.back().last) open = true;
          }
        }
      }
    }
    if (open) {
      b.delay = b.delay.count() == 0 ? history_.backoff_initial
                                     : std::min(b.delay * 2, history_.backoff_max);
      b.next_try = now + b.delay;
    } else {
      backoff_.erase(s.subscription_id);
    }
  }
  return stats().stored - before;
}

}  // namespace hookvault
