#include "hookvault/backfill.hpp"

#include <algorithm>
#include <ctime>
#include <set>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "pipeline/plan.hpp"

namespace hookvault {
namespace {

constexpr std::int64_t kHistoryRetentionMs = 30LL * 24 * 3600 * 1000;
constexpr std::uint32_t kMaxPagesPerFetch = 1000;

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

}  // namespace

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

std::uint64_t Backfiller::store_items(const HistoryPage& page) {
  std::uint64_t stored = 0;
  for (const auto& item : page.items) {
    auto body = parse_strict(item.event_message);
    if (!body) continue;
    auto planned =
        detail::plan_nodit(*source_, *body, item.event_message, Origin::history, wall_ms());
    auto* plan = std::get_if<detail::Plan>(&planned);
    if (plan == nullptr) continue;
    auto written = store_.write(std::move(plan->request));
    if (!written) {
      log(LogLevel::warn, "backfill store failed",
          {{"source", source_->config.name}, {"error", written.error().message()}});
      continue;
    }
    if (!written->duplicate) ++stored;
  }
  std::lock_guard lock(mu_);
  stats_.stored += stored;
  return stored;
}

void Backfiller::fetch_failed_since_last() {
  std::set<std::string> subscriptions(history_.subscriptions.begin(), history_.subscriptions.end());
  if (auto seqs = store_.sequences(source_->config.name)) {
    for (const auto& s : *seqs) subscriptions.insert(s.subscription_id);
  }
  auto latest = store_.latest_event_time_ms(source_->config.name);
  const std::int64_t since =
      latest && latest->has_value() ? **latest : wall_ms() - kHistoryRetentionMs;
  for (const auto& sub : subscriptions) {
    HistoryQuery q;
    q.subscription_id = sub;
    q.status = "FAIL";
    q.start_at = iso8601(since);
    if (!fetch_pages(std::move(q), [](const HistoryPage&) { return false; })) return;
  }
}

bool Backfiller::fetch_pages(HistoryQuery query,
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
    const auto stored = store_items(*result);
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

bool Backfiller::fetch_range(const std::string& subscription, std::uint64_t first,
                             std::uint64_t last) {
  HistoryQuery q;
  q.subscription_id = subscription;
  q.start_sequence_number = first;
  return fetch_pages(std::move(q), [&](const HistoryPage& page) {
    std::uint64_t top = 0;
    for (const auto& item : page.items) {
      if (item.subscription_id == subscription) top = std::max(top, item.sequence_number);
    }
    return top >= last;
  });
}

std::uint64_t Backfiller::run_once() {
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
    if (due.empty()) continue;
    Backoff& b = backoff_[s.subscription_id];
    if (now < b.next_try) continue;
    const bool ok = fetch_range(s.subscription_id, due.front().first, due.back().last);
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
