// Internal to the pipeline stage: turning a verified, parsed delivery into a
// store write. One function per provider; each returns a Plan or a Rejection
// naming the offending field.
#pragma once

#include <string>
#include <variant>

#include "hookvault/json.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/store.hpp"

namespace hookvault::detail {

struct Plan {
  WriteRequest request;
  bool decrypt = false;  // wallet.delegation.created: decrypt on the pool first
};

struct Rejection {
  Errc code;
  std::string field;  // may be empty
};

using PlanResult = std::variant<Plan, Rejection>;

// Dynamic: eventId is the idempotency key; delegation events need a timestamp
// and data.walletId. `now_ms` is for max_event_age.
PlanResult plan_dynamic(const Source& source, const Json& body, std::string payload,
                        std::int64_t now_ms);

// Nodit: (subscriptionId, sequenceNumber) is the idempotency key
// "<subscriptionId>:<sequenceNumber>"; a message lacking either is keyed by its
// content, "content:<sha256 of its JS-compact form>", and not sequence-tracked.
PlanResult plan_nodit(const Source& source, const Json& body, std::string payload, Origin origin,
                      std::int64_t now_ms);

inline constexpr std::string_view kContentKeyPrefix = "content:";

}  // namespace hookvault::detail
