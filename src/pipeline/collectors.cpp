#include "hookvault/collectors.hpp"

namespace hookvault {
namespace {

CollectedFamily family(std::string name, std::string help, MetricType type,
                       std::vector<std::string> labels = {}) {
  return CollectedFamily{std::move(name), std::move(help), type, std::move(labels), {}};
}

}  // namespace

void collect_store_metrics(Metrics& metrics, const Store& store) {
  metrics.collector([&store] {
    const StoreStats s = store.stats();  // one read for every family
    auto commits = family("hookvault_store_commits_total", "Group commits that succeeded",
                          MetricType::counter);
    commits.samples.push_back({{}, double(s.commits)});
    auto requests = family("hookvault_store_committed_requests_total",
                           "Write requests made durable by those commits", MetricType::counter);
    requests.samples.push_back({{}, double(s.committed_requests)});
    auto failed = family("hookvault_store_failed_batches_total",
                         "Group commits that failed (every request of the batch got 503)",
                         MetricType::counter);
    failed.samples.push_back({{}, double(s.failed_batches)});
    auto largest = family("hookvault_store_largest_batch",
                          "Most requests committed in one batch since start", MetricType::gauge);
    largest.samples.push_back({{}, double(s.largest_batch)});
    auto checkpoints = family("hookvault_store_wal_checkpoints_total",
                              "WAL checkpoints run (by the checkpointer thread and the writer)",
                              MetricType::counter);
    checkpoints.samples.push_back({{}, double(s.checkpoints)});
    auto checkpoint_failures = family(
        "hookvault_store_wal_checkpoint_failures_total",
        "WAL checkpoints that failed (the WAL grows until one succeeds)", MetricType::counter);
    checkpoint_failures.samples.push_back({{}, double(s.checkpoint_failures)});
    auto writable = family("hookvault_store_writable", "1 while the store accepts commits, else 0",
                           MetricType::gauge);
    writable.samples.push_back({{}, store.writable() ? 1.0 : 0.0});
    return std::vector<CollectedFamily>{std::move(commits),     std::move(requests),
                                        std::move(failed),      std::move(largest),
                                        std::move(checkpoints), std::move(checkpoint_failures),
                                        std::move(writable)};
  });
}

void collect_nodit_metrics(Metrics& metrics, const Store& store,
                           const std::vector<std::shared_ptr<const Source>>& sources) {
  std::vector<std::string> names;
  for (const auto& s : sources) {
    if (s->config.provider == Provider::nodit) names.push_back(s->config.name);
  }
  if (names.empty()) return;
  metrics.collector([&store, names] {
    const std::vector<std::string> per_subscription{"source", "subscription"};
    auto missing =
        family("hookvault_nodit_missing_messages",
               "Sequence numbers missing between the highest contiguous and the highest seen",
               MetricType::gauge, per_subscription);
    auto ranges = family("hookvault_nodit_gap_ranges", "Ranges of missing sequence numbers",
                         MetricType::gauge, per_subscription);
    auto contiguous = family("hookvault_nodit_highest_contiguous",
                             "Highest sequence number up to which every message is stored",
                             MetricType::gauge, per_subscription);
    auto unsequenced = family("hookvault_nodit_unsequenced_messages",
                              "Messages stored without a sequence number (keyed by content)",
                              MetricType::gauge, {"source"});
    // One read of the sequence state for the three per-subscription families.
    if (auto seqs = store.sequences()) {
      for (const auto& q : *seqs) {
        double count = 0;
        for (const auto& g : q.gaps) count += double(g.size());
        const std::vector<std::string> labels{q.source, q.subscription_id};
        missing.samples.push_back({labels, count});
        ranges.samples.push_back({labels, double(q.gaps.size())});
        contiguous.samples.push_back({labels, double(q.contiguous)});
      }
    }
    for (const auto& name : names) {
      if (auto n = store.count_events_with_key_prefix(name, "content:")) {
        unsequenced.samples.push_back({{name}, double(*n)});
      }
    }
    return std::vector<CollectedFamily>{std::move(missing), std::move(ranges),
                                        std::move(contiguous), std::move(unsequenced)};
  });
}

void collect_backfill_metrics(Metrics& metrics,
                              std::vector<std::pair<std::string, const Backfiller*>> backfillers) {
  if (backfillers.empty()) return;
  metrics.collector([backfillers = std::move(backfillers)] {
    auto fetches = family("hookvault_nodit_history_fetches_total",
                          "Requests made to Nodit's history API", MetricType::counter, {"source"});
    auto failed = family("hookvault_nodit_history_failed_fetches_total",
                         "History API requests that failed", MetricType::counter, {"source"});
    auto stored = family("hookvault_nodit_history_stored_total",
                         "Messages stored from the history API", MetricType::counter, {"source"});
    auto refused = family("hookvault_nodit_history_refused_total",
                          "History API items refused: not what the fetch asked for",
                          MetricType::counter, {"source"});
    for (const auto& [source, b] : backfillers) {
      const BackfillStats s = b->stats();  // one read per backfiller
      fetches.samples.push_back({{source}, double(s.fetches)});
      failed.samples.push_back({{source}, double(s.failed_fetches)});
      stored.samples.push_back({{source}, double(s.stored)});
      refused.samples.push_back({{source}, double(s.refused)});
    }
    return std::vector<CollectedFamily>{std::move(fetches), std::move(failed), std::move(stored),
                                        std::move(refused)};
  });
}

}  // namespace hookvault
