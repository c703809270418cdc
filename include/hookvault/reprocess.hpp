// Retrying the decryption of delegations whose materials did not decrypt
// (`hookvault reprocess`, POST /v1/reprocess): for each event the store lists
// as decrypt_failed, decrypt its stored payload again with the sources' current
// keys and settle it in the store (materials applied with the usual ordering
// rules, or a new failure reason).
//
// Audited: every event gets one 'reprocess' record {actor, "reprocess",
// "<event id>", its outcome (clipped, audit.hpp)}. A settled event's record is
// appended by the store in the same transaction as the settlement
// (Store::resolve_decrypt_failure); an event that could not be settled (its
// source is no longer configured, its payload is unavailable, the store
// refused the settlement) gets its record on its own.
//
// Blocking (store writes and RSA work): call it from a CLI or a pool thread,
// never from an I/O thread or a store completion.
//
// Thread-safety: safe to call from any one thread at a time per store.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hookvault/error.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

struct ReprocessResult {
  std::int64_t id = 0;
  std::string event_id;  // the provider's event id (idempotency key)
  std::string outcome;   // resolution_outcome(), or why it failed (never a secret)
  bool failed = false;   // still not decrypted, or could not be settled
  // Set when the event's 'reprocess' audit record could not be committed.
  boost::system::error_code audit_error;
};

// `actor`: who asked ("cli:<user>", "admin:<CN>"), for the audit records.
// An error only when the pending events cannot be listed.
Result<std::vector<ReprocessResult>> reprocess_failures(
    Store& store, const std::vector<std::shared_ptr<const Source>>& sources,
    const std::string& actor);

}  // namespace hookvault
