// AdminApi: the handler of the mutual-TLS admin listener (README.md, "Signing services:
// the admin listener"), for signing services and operators.
//
//   GET  /v1/materials/{walletId}?source=NAME  materials:read  the `materials get` JSON; 404
//   GET  /v1/events?source=&after=&limit=      events:read     {"events":[meta...],"next":"ID"}
//   GET  /v1/events/{id}                       events:read     meta + verified payload
//   GET  /metrics                              metrics:read    Prometheus text
//   POST /v1/reprocess                         admin           {"results":[...]}
//
// Every request: no client certificate -> 401 client_certificate_required; a
// CN not in [[admin.clients]] or without the route's role -> 403 forbidden
// ("admin" holds every role); over the client's rate -> 429 rate_limited with
// Retry-After. None of these touches a secret.
//
// Audit: every materials and payload read, granted or denied, and every
// reprocessed event appends an audit record (actor "admin:<CN>") before the
// answer is sent; a secret is released only after its record is committed, so
// when the audit log cannot be written the answer is 503 and no secret leaves.
//
// Events cursor: ids are assigned in commit order and never reused, so a
// consumer that passes the previous page's "next" as `after` reads every event
// exactly once, in order of arrival, while new events keep arriving.
//
// Store reads, decryption and reprocessing run on the WorkPool, never on the
// listener's I/O threads.
//
// Reload: reload() swaps in the clients ([[admin.clients]], their roles) and
// the rate limit of a new config; every request from then on, on an open
// connection too, is authorized against them, so a client removed from the
// list gets 403 at its next request. (Its certificate, the client CA and the
// CRL are the listener's: Server::use_tls.)
//
// Thread-safety: handle() and reload() are safe from many threads at once.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "hookvault/config.hpp"
#include "hookvault/handler.hpp"
#include "hookvault/metrics.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/rate_limit.hpp"
#include "hookvault/store.hpp"
#include "hookvault/work_pool.hpp"

namespace hookvault {

inline constexpr std::size_t kMaxEventsPage = 1000;

class AdminApi : public RequestHandler {
 public:
  // `pipeline` supplies the sources in use (they change on reload).
  AdminApi(const AdminConfig& config, const Pipeline& pipeline, Store& store, WorkPool& pool,
           Metrics& metrics);

  void handle(Delivery delivery, std::function<void(Reply)> done) override;
  void reload(const AdminConfig& config);

 private:
  std::vector<std::string> materials_sources(std::string_view query) const;
  struct Call;
  void materials(const std::shared_ptr<Call>& call, std::string wallet_id);
  void list_events(const std::shared_ptr<Call>& call);
  void show_event(const std::shared_ptr<Call>& call, const std::string& id);
  void metrics(const std::shared_ptr<Call>& call);
  void reprocess(const std::shared_ptr<Call>& call);
  // Appends the audit record of a secret read and, once it is committed,
  // answers with `text` (404 when empty); when it cannot be committed the
  // secret is withheld (503). Both outcomes are logged.
  void release_after_audit(const std::shared_ptr<Call>& call, std::string action,
                           std::string subject, SecretText text);
  // Runs `job` on the pool, or answers 503 when the pool is full.
  void offload(const std::shared_ptr<Call>& call, std::function<void()> job);

  const Pipeline& pipeline_;
  Store& store_;
  WorkPool& pool_;
  Metrics& metrics_;
  using Roles = std::unordered_map<std::string, unsigned>;  // CN -> role bits
  struct Limits {
    unsigned rate = 0;
    unsigned burst = 0;
    std::shared_ptr<RateLimiter> limiter;
  };
  std::atomic<std::shared_ptr<const Roles>> roles_;
  std::atomic<std::shared_ptr<const Limits>> limits_;
  MetricFamily& denied_;
};

}  // namespace hookvault
