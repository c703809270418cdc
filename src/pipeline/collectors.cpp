#include "hookvault/collectors.hpp"

#include <functional>

namespace hookvault {
namespace {

using Samples = std::vector<MetricSample>;

void store_counter(Metrics& metrics, const Store& store, std::string name, std::string help,
                   MetricType type, std::function<double(const StoreStats&)> pick) {
  metrics.collector(std::move(name), std::move(help), type, {}, [&store, pick = std::move(pick)] {
    return Samples{{{}, pick(store.stats())}};
  });
}

}  // namespace

void collect_store_metrics(Metrics& metrics, const Store& store) {
  store_counter(metrics, store, "hookvault_store_commits_total", "Group commits that succeeded",
                MetricType::counter, [](const StoreStats& s) { return double(s.commits); });
  store_counter(metrics, store, "hookvault_store_committed_requests_total",
                "Write requests made durable by those commits", MetricType::counter,
                [](const StoreStats& s) { return double(s.committed_requests); });
  store_counter(metrics, store, "hookvault_store_failed_batches_total",
                "Group commits that failed (every request of the batch got 503)",
                MetricType::counter, [](const StoreStats& s) { return double(s.failed_batches); });
  store_counter(metrics, store, "hookvault_store_largest_batch",
                "Most requests committed in one batch since start", MetricType::gauge,
                [](const StoreStats& s) { return double(s.largest_batch); });
  metrics.collector("hookvault_store_writable", "1 while the store accepts commits, else 0",
                    MetricType::gauge, {}, [&store] {
                      return Samples{{{}, store.writable() ? 1.0 : 0.0}};
                    });
}

void collect_nodit_metrics(Metrics& metrics, const Store& store,
                           const std::vector<std::shared_ptr<const Source>>& sources) {
  std::vector<std::string> names;
  for (const auto& s : sources) {
    if (s->config.provider == Provider::nodit) names.push_back(s->config.name);
  }
  if (names.empty()) return;
  // One store read per family and scrape; gaps are few and small.
  auto per_subscription = [&store](std::function<double(const SubscriptionSequence&)> pick) {
    return [&store, pick = std::move(pick)] {
      Samples out;
      auto seqs = store.sequences();
      if (!seqs) return out;
      for (const auto& q : *seqs) out.push_back({{q.source, q.subscription_id}, pick(q)});
      return out;
    };
  };
  metrics.collector("hookvault_nodit_missing_messages",
                    "Sequence numbers missing between the highest contiguous and the highest seen",
                    MetricType::gauge, {"source", "subscription"},
                    per_subscription([](const SubscriptionSequence& q) {
                      double n = 0;
                      for (const auto& g : q.gaps) n += double(g.size());
                      return n;
                    }));
  metrics.collector(
      "hookvault_nodit_gap_ranges", "Ranges of missing sequence numbers", MetricType::gauge,
      {"source", "subscription"},
      per_subscription([](const SubscriptionSequence& q) { return double(q.gaps.size()); }));
  metrics.collector(
      "hookvault_nodit_highest_contiguous",
      "Highest sequence number up to which every message is stored", MetricType::gauge,
      {"source", "subscription"},
      per_subscription([](const SubscriptionSequence& q) { return double(q.contiguous); }));
  metrics.collector("hookvault_nodit_unsequenced_messages",
                    "Messages stored without a sequence number (keyed by content)",
                    MetricType::gauge, {"source"}, [&store, names] {
                      Samples out;
                      for (const auto& name : names) {
                        auto n = store.count_events_with_key_prefix(name, "content:");
                        if (n) out.push_back({{name}, double(*n)});
                      }
                      return out;
                    });
}

void collect_backfill_metrics(Metrics& metrics,
                              std::vector<std::pair<std::string, const Backfiller*>> backfillers) {
  if (backfillers.empty()) return;
  auto family = [&](std::string name, std::string help,
                    std::function<double(const BackfillStats&)> pick) {
    metrics.collector(std::move(name), std::move(help), MetricType::counter, {"source"},
                      [backfillers, pick = std::move(pick)] {
                        Samples out;
                        for (const auto& [source, b] : backfillers) {
                          out.push_back({{source}, pick(b->stats())});
                        }
                        return out;
                      });
  };
  family("hookvault_nodit_history_fetches_total", "Requests made to Nodit's history API",
         [](const BackfillStats& s) { return double(s.fetches); });
  family("hookvault_nodit_history_failed_fetches_total", "History API requests that failed",
         [](const BackfillStats& s) { return double(s.failed_fetches); });
  family("hookvault_nodit_history_stored_total", "Messages stored from the history API",
         [](const BackfillStats& s) { return double(s.stored); });
}

}  // namespace hookvault
