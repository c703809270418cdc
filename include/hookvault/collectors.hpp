// Scrape-time metrics of what the store and the Nodit backfillers already
// count (no second copy of those numbers is kept):
//
//   hookvault_store_commits_total, hookvault_store_committed_requests_total,
//   hookvault_store_failed_batches_total, hookvault_store_largest_batch,
//   hookvault_store_writable                                   (Store::stats)
//   hookvault_nodit_missing_messages{source,subscription},
//   hookvault_nodit_gap_ranges{source,subscription},
//   hookvault_nodit_highest_contiguous{source,subscription},
//   hookvault_nodit_unsequenced_messages{source}               (Store::sequences)
//   hookvault_nodit_history_fetches_total{source},
//   hookvault_nodit_history_failed_fetches_total{source},
//   hookvault_nodit_history_stored_total{source}               (Backfiller::stats)
//
// The objects must outlive the registry's last render().
//
// Thread-safety: registration at start-up; collection from any thread.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "hookvault/backfill.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

void collect_store_metrics(Metrics& metrics, const Store& store);
void collect_nodit_metrics(Metrics& metrics, const Store& store,
                           const std::vector<std::shared_ptr<const Source>>& sources);
void collect_backfill_metrics(Metrics& metrics,
                              std::vector<std::pair<std::string, const Backfiller*>> backfillers);

}  // namespace hookvault
