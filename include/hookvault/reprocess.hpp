// Retrying the decryption of delegations whose materials did not decrypt
// (`hookvault reprocess`, POST /v1/reprocess): for each event the store lists
// as decrypt_failed, decrypt its stored payload again with the sources' current
// keys and settle it in the store (materials applied with the usual ordering
// rules, or a new failure reason).
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
  std::string outcome;   // a materials state name, or why it failed (never a secret)
  bool failed = false;   // still not decrypted, or could not be settled
};

Result<std::vector<ReprocessResult>> reprocess_failures(
    Store& store, const std::vector<std::shared_ptr<const Source>>& sources);

}  // namespace hookvault
