#include "hookvault/reprocess.hpp"

#include <variant>

#include "hookvault/json.hpp"

namespace hookvault {

Result<std::vector<ReprocessResult>> reprocess_failures(
    Store& store, const std::vector<std::shared_ptr<const Source>>& sources) {
  auto pending = store.decrypt_failures();
  if (!pending) return pending.error();
  std::vector<ReprocessResult> results;
  results.reserve(pending->size());
  for (const auto& meta : *pending) {
    ReprocessResult r;
    r.id = meta.id;
    r.event_id = meta.idempotency_key;
    const Source* source = nullptr;
    for (const auto& s : sources) {
      if (s->config.name == meta.source) source = s.get();
    }
    auto payload = store.event_payload(meta.id);
    if (source == nullptr || !payload || !payload->has_value()) {
      r.outcome = source == nullptr ? "source no longer configured" : "payload unavailable";
      r.failed = true;
      results.push_back(std::move(r));
      continue;
    }
    auto body = parse_strict((*payload)->reveal_string());
    DecryptOutcome outcome;
    if (body) {
      outcome = decrypt_delegation(*source, *body);
    } else {
      outcome.failure = "stored payload does not parse";
    }
    std::variant<DelegationMaterials, std::string> settled;
    if (outcome.materials) {
      settled = std::move(*outcome.materials);
    } else {
      settled = outcome.failure;
    }
    auto state = store.resolve_decrypt_failure(meta.id, std::move(settled));
    if (!state) {
      r.outcome = state.error().message();
      r.failed = true;
    } else {
      r.outcome = std::string(materials_state_name(*state));
      if (*state == MaterialsState::decrypt_failed) {
        r.outcome += ": " + outcome.failure;
        r.failed = true;
      }
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace hookvault
