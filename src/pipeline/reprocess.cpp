#include "hookvault/reprocess.hpp"

#include <variant>

#include "hookvault/audit.hpp"
#include "hookvault/json.hpp"

namespace hookvault {
namespace {

// The record of an event whose outcome did not come with a settlement.
boost::system::error_code audit_unsettled(Store& store, const std::string& actor,
                                          const ReprocessResult& r) {
  auto seq = store.audit_sync(
      AuditEntry{actor, "reprocess", std::to_string(r.id), clip_audit_field(r.outcome)});
  return seq ? boost::system::error_code() : seq.error();
}

}  // namespace

Result<std::vector<ReprocessResult>> reprocess_failures(
    Store& store, const std::vector<std::shared_ptr<const Source>>& sources,
    const std::string& actor) {
  auto pending = store.decrypt_failures();
  if (!pending) return pending.error();
  std::vector<ReprocessResult> results;
  results.reserve(pending->size());
  for (const auto& meta : *pending) {
    ReprocessResult r;
    r.id = meta.row_id;
    r.event_id = meta.idempotency_key;
    const Source* source = nullptr;
    for (const auto& s : sources) {
      if (s->config.name == meta.source) source = s.get();
    }
    auto payload = store.event_payload(meta.row_id);
    if (source == nullptr || !payload || !payload->has_value()) {
      r.outcome = source == nullptr ? "source no longer configured" : "payload unavailable";
      r.failed = true;
      r.audit_error = audit_unsettled(store, actor, r);
      results.push_back(std::move(r));
      continue;
    }
    auto body = parse_strict((*payload)->reveal_string());
    std::string failure = "stored payload does not parse";
    std::variant<DelegationMaterials, std::string> settled = failure;
    if (body) {
      auto opened = decrypt_delegation(*source, *body);
      if (opened) {
        failure.clear();
        settled = std::move(*opened);
      } else {
        failure = opened.error().describe();
        settled = failure;
      }
    }
    auto state = store.resolve_decrypt_failure(meta.row_id, std::move(settled), actor);
    if (!state) {
      // Nothing was settled, and the store's record went with it.
      r.outcome = state.error().message();
      r.failed = true;
      r.audit_error = audit_unsettled(store, actor, r);
    } else {
      r.outcome = resolution_outcome(*state, failure);
      r.failed = *state == MaterialsState::decrypt_failed;
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace hookvault
