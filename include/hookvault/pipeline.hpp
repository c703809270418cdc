// The webhook pipeline: everything between "an HTTP request was read" and
// "this is the answer", with no HTTP library types.
//
//   route (path -> source; /healthz, /readyz) -> content type -> signature
//   (raw, then JS-compact) -> strict JSON -> idempotency key -> per-event work
//   -> durable store (group commit) -> Reply
//
// For `wallet.delegation.created` the RSA/AES decryption runs on the WorkPool
// (never on the caller's I/O thread) and the reply is sent only after the event
// and its materials are committed. A decryption failure keeps the event, records
// the reason and still answers 200 with "materials":"decrypt_failed".
//
// handle() calls `done` exactly once: synchronously for answers that need no
// store (404, 401, 400, ...), otherwise later from a store or pool thread. The
// caller must hop back to its own executor. `done` must not block.
//
// Thread-safety: handle() is safe from many threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/config.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/signature.hpp"
#include "hookvault/store.hpp"
#include "hookvault/work_pool.hpp"

namespace hookvault {

// A source as the running daemon uses it: the config entry plus loaded keys.
struct Source {
  SourceConfig config;
  SignatureVerifier verifier;
  std::optional<HybridDecryptor> decryptor;  // Dynamic sources
};

// Loads every source's secrets and RSA keys (control plane: throws ConfigError
// or std::runtime_error naming the file, never a secret).
std::vector<std::shared_ptr<const Source>> load_sources(const Config& config);

struct Delivery {
  std::string_view method;
  std::string_view target;        // path and optional query
  std::string_view content_type;  // empty when absent
  // Looks up a request header by (case-insensitive) name; "" when absent.
  // Only called before handle() returns.
  std::function<std::string_view(std::string_view)> header;
  std::string body;
  std::string request_id;
  std::string peer;
};

struct Reply {
  unsigned status = 500;
  std::string body;            // JSON
  unsigned retry_after_s = 0;  // > 0 adds Retry-After
  // For the request log line.
  std::string source;
  std::string event_name;
  std::string event_id;
};

// Decrypts one wallet.delegation.created payload into materials, or says why
// not (a reason naming the field and the error, never a secret).
struct DecryptOutcome {
  std::optional<DelegationMaterials> materials;
  std::string failure;
};
DecryptOutcome decrypt_delegation(const Source& source, const Json& body);

class Pipeline {
 public:
  Pipeline(std::vector<std::shared_ptr<const Source>> sources, Store& store, WorkPool& pool);

  void handle(Delivery delivery, std::function<void(Reply)> done);

  // /readyz: the store is writable and keys are loaded.
  bool ready() const noexcept;
  // Set when shutdown starts, so /readyz turns 503 before the listener closes.
  void set_draining() noexcept { draining_.store(true); }

 private:
  const Source* route(std::string_view path) const;
  void handle_webhook(const Source& source, Delivery delivery, std::function<void(Reply)> done);

  std::vector<std::shared_ptr<const Source>> sources_;
  Store& store_;
  WorkPool& pool_;
  std::atomic<bool> draining_{false};
};

// Parses "2025-10-01T15:13:26.348Z" (any fraction digits, 'Z' or +hh:mm) into
// milliseconds since the epoch; nullopt when malformed.
std::optional<std::int64_t> parse_iso8601_ms(std::string_view text);

}  // namespace hookvault
