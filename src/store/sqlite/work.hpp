// The requests the SQLite store's writer thread applies (writer.cpp), as
// the caller's thread queued them: everything secret is already sealed
// (envelope.hpp), so a queued request holds only ciphertext and metadata.
// The writes, resolutions and audit appends are every backend's
// (submission.hpp); the rest are SQLite's.
// Each carries its completion and, once applied, its result; the syncer
// runs the completion once the commit is durable (syncer.hpp).
//
// Thread-safety: a Work is built on the caller's thread, then owned by the
// writer and the syncer in turn; never shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hookvault/audit.hpp"
#include "hookvault/store.hpp"
#include "store/envelope.hpp"
#include "store/sqlite/leases.hpp"
#include "store/submission.hpp"

namespace hookvault::store::sqlite {

// One wrapped key as read (`from`, with the row identity its associated data
// names) and rewrapped (`to`), for a guarded UPDATE.
struct EventRewrap {
  std::int64_t row_id = 0;
  std::string source;
  std::string idempotency_key;
  WrappedKey from;
  WrappedKey to;
};

struct MaterialsRewrap {
  std::string source;
  std::string wallet_id;
  std::string event_id;
  WrappedKey from;
  WrappedKey to;
};

struct AuditKeyRewrap {
  WrappedKey from;
  WrappedKey to;
};

struct RewrapWork {
  std::vector<EventRewrap> events;
  std::vector<MaterialsRewrap> materials;
  std::optional<AuditKeyRewrap> audit_key;
  // Fewer old keys than the limit were found: none was left beyond these.
  bool short_batch = false;
  std::function<void(Result<std::uint64_t>)> done;  // how many UPDATEs applied
  std::optional<Result<std::uint64_t>> result;

  std::size_t size() const noexcept {
    return events.size() + materials.size() + (audit_key ? 1 : 0);
  }
};

// retire_kek_version(): checks and marks in one write transaction.
struct RetireWork {
  std::uint32_t version = 0;
  std::function<void(Result<KekRetirement>)> done;
  std::optional<Result<KekRetirement>> result;
};

// try_lease(): takes a leadership lease in one write transaction.
struct LeaseWork {
  std::string name;
  std::function<void(Result<std::shared_ptr<LeaseState>>)> done;
  std::optional<Result<std::shared_ptr<LeaseState>>> result;
};

using Work = std::variant<WriteWork, ResolveWork, AuditWork, RewrapWork, RetireWork, LeaseWork>;

// The wrapped keys a request would store, for the retired-version check.
inline std::vector<const WrappedKey*> new_keys(const WriteWork& w) {
  std::vector<const WrappedKey*> out{&w.event.sealed.key};
  if (w.materials) out.push_back(&w.materials->key);
  return out;
}
inline std::vector<const WrappedKey*> new_keys(const ResolveWork& w) {
  if (const auto* m = std::get_if<SealedMaterials>(&w.outcome)) return {&m->key};
  return {};
}
inline std::vector<const WrappedKey*> new_keys(const RewrapWork& w) {
  std::vector<const WrappedKey*> out;
  for (const auto& e : w.events) out.push_back(&e.to);
  for (const auto& m : w.materials) out.push_back(&m.to);
  if (w.audit_key) out.push_back(&w.audit_key->to);
  return out;
}
inline std::vector<const WrappedKey*> new_keys(const AuditWork&) { return {}; }
inline std::vector<const WrappedKey*> new_keys(const RetireWork&) { return {}; }
inline std::vector<const WrappedKey*> new_keys(const LeaseWork&) { return {}; }

// A request in the writer's queue, with when it was queued (its share of the
// busy timeout is counted from then).
struct Queued {
  Work work;
  std::chrono::steady_clock::time_point since;
};

}  // namespace hookvault::store::sqlite
