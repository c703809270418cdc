// What every backend does on the caller's thread before it queues a request
// (store.hpp: submit, resolve_decrypt_failure, audit): the checks that refuse
// a request before it is queued, and the sealing (envelope.hpp), so a queued
// request holds only ciphertext and metadata. The queued-work types below are
// what a backend's writer then applies; each carries its completion and, once
// applied, its result.
//
// Thread-safety: stateless functions; a Work is built on the caller's thread,
// then owned by the backend's writer (and completer) in turn, never shared.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include "hookvault/audit.hpp"
#include "hookvault/clock.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/store.hpp"
#include "store/envelope.hpp"

namespace hookvault::store {

struct EventRow {
  std::string source;
  std::string idempotency_key;
  std::string event_name;
  std::string message_id;
  std::string event_time;
  std::int64_t event_time_ms = 0;
  std::string wallet_id;
  Origin origin = Origin::signature;
  std::int64_t received_at_ms = 0;
  SealedPayload sealed;
  std::optional<SequencePosition> sequence;
};

struct WriteWork {
  EventRow event;
  std::optional<SealedMaterials> materials;
  std::optional<std::string> decrypt_failure;
  bool revoke = false;
  Store::Completion done;
  std::optional<Result<WriteResult>> result;
};

struct ResolveWork {
  std::int64_t row_id = 0;
  // The identity the materials were sealed for; checked again by the writer.
  std::string source;
  std::string idempotency_key;
  std::string wallet_id;
  std::variant<SealedMaterials, std::string> outcome;
  std::string actor;  // of the 'reprocess' audit record
  std::function<void(Result<MaterialsState>)> done;
  std::optional<Result<MaterialsState>> result;
};

struct AuditWork {
  AuditEntry entry;
  Store::AuditCompletion done;
  std::optional<Result<std::int64_t>> result;
};

// Checks `request` (Errc::missing_field / invalid_field as store.hpp's
// submit says; Errc::internal for more than one of materials,
// decrypt_failure and revoke) and seals its payload and materials under
// `kek`, wiping their plaintext whatever the outcome; received_at from `clock`.
Result<WriteWork> prepare_write(const Kek& kek, const Clock& clock, WriteRequest& request);

// resolve_decrypt_failure's actor: Errc::missing_field when empty,
// Errc::invalid_field over kMaxAuditFieldBytes.
Result<void> check_actor(const std::string& actor);

// The outcome of a resolution, for the event `work` names (its source,
// idempotency key and wallet, read by the backend): materials sealed under
// `kek` (their plaintext wiped from `outcome` whatever happens), or the new
// failure reason.
Result<void> seal_resolution(const Kek& kek, ResolveWork& work,
                             std::variant<DelegationMaterials, std::string>& outcome);

}  // namespace hookvault::store
