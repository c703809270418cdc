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
#include "hookvault/handler.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/kek_coverage.hpp"
#include "hookvault/log_throttle.hpp"
#include "hookvault/metrics.hpp"
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

// Opens one wallet.delegation.created payload's envelopes into materials, or
// refuses naming the envelope's field and the error (Refusal::describe() is
// the reason recorded with the event; never a secret).
Result<DelegationMaterials, Refusal> decrypt_delegation(const Source& source, const Json& body);

class Pipeline : public RequestHandler {
 public:
  // Metric families: hookvault_signature_failures_total,
  // hookvault_signed_form_mismatches_total (signature.hpp: signed_form_mismatch),
  // hookvault_decrypt_failures_total, hookvault_duplicates_total,
  // hookvault_history_copies_replaced_total (a signed delivery that took the
  // place of a history copy: store.hpp),
  // hookvault_events_stored_total (by source), hookvault_overloaded_total,
  // hookvault_forbidden_total (allow_from refusals: also logged, at most one
  // line per 10 s counting the refusals since the last), and the histogram
  // hookvault_stage_seconds{source,stage}: "verify" (signature check and
  // parse), "decrypt" (RSA-OAEP + AES-GCM, on the pool), "queue" (waiting for
  // a pool thread), "store" (submit to durable commit).
  Pipeline(std::vector<std::shared_ptr<const Source>> sources, Store& store, WorkPool& pool,
           Metrics& metrics);

  void handle(Delivery delivery, std::function<void(Reply)> done) override;

  // /readyz: the store is writable, keys are loaded and, once
  // require_kek_coverage() named one, the KEK has every version the database
  // references (kek_coverage.hpp; an atomic read, never the database).
  bool ready() const noexcept;
  // Before the first request; `coverage` must outlive the pipeline.
  void require_kek_coverage(const KekCoverage& coverage) noexcept { kek_coverage_ = &coverage; }

  // The sources in use now. reload() swaps in a new set (SIGHUP: rotated
  // secrets and RSA keys): requests that already started finish with the set
  // they started with; the next ones use the new set.
  using Sources = std::vector<std::shared_ptr<const Source>>;
  std::shared_ptr<const Sources> sources() const noexcept { return sources_.load(); }
  void reload(Sources sources);
  // Set when shutdown starts, so /readyz turns 503 before the listener closes.
  void set_draining() noexcept override { draining_.store(true); }

 private:
  // One delivery from admission to its reply (pipeline.cpp).
  struct Flight;
  void handle_webhook(const std::shared_ptr<const Source>& source, Delivery delivery,
                      std::function<void(Reply)> done);
  void count_refusal(const Source& source, const Delivery& delivery, Errc code);
  void open_envelopes(Flight& flight);
  void store(const std::shared_ptr<Flight>& flight);
  void reply(Flight& flight, const Result<WriteResult>& written);
  void answer(Flight& flight, Reply reply);

  std::atomic<std::shared_ptr<const Sources>> sources_;
  Store& store_;
  WorkPool& pool_;
  MetricFamily& signature_failures_;
  MetricFamily& signed_form_mismatches_;
  MetricFamily& decrypt_failures_;
  MetricFamily& duplicates_;
  MetricFamily& history_replaced_;
  MetricFamily& stored_;
  MetricFamily& overloaded_;
  MetricFamily& forbidden_;
  MetricFamily& stage_seconds_;
  // "client address not in allow_from": a refused client may send thousands a second.
  LogThrottle forbidden_warning_;
  std::atomic<bool> draining_{false};
  const KekCoverage* kek_coverage_ = nullptr;
};

// Parses "2025-10-01T15:13:26.348Z" (any fraction digits, 'Z' or +hh:mm) into
// milliseconds since the epoch; nullopt when malformed.
std::optional<std::int64_t> parse_iso8601_ms(std::string_view text);

}  // namespace hookvault
