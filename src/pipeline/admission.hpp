// Internal to the pipeline stage: admission, the one pure step between "a
// request for this source was read" and "this is what to store". It returns
// the plan or one refusal, and touches no store, pool, metric or log, so every
// refusal is testable without a socket (tests/unit/pipeline_admission_test.cpp).
//
// In order, stopping at the first refusal:
//   1. allow-list: the client address is in allow_from (when set)  403 forbidden
//   2. media type: application/json or application/...+json        415 unsupported_media_type
//   3. signature: the provider's header holds a MAC that a secret
//      produced over the raw body or its compact form              401 invalid_signature
//   4. strict parse of the signed bytes                            400 malformed_json,
//                                                                      duplicate_key,
//                                                                      signed_form_mismatch
//   5. the provider's plan: fields, idempotency key, event age     400 missing_field,
//                                                                      invalid_field, stale_event
//
// What differs between providers is one ProviderSpec each (dynamic.cpp,
// nodit.cpp), never a test of the provider in the code that uses it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "hookvault/error.hpp"
#include "hookvault/handler.hpp"
#include "hookvault/json.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/store.hpp"

namespace hookvault::detail {

// A verified, parsed delivery turned into a store write.
struct Plan {
  WriteRequest request;
  bool decrypt = false;  // wallet.delegation.created: open its envelopes on the pool first
};

// A delivery admitted: its plan, and its body (a delegation's envelopes are
// opened from it on the pool).
struct Admitted {
  Plan plan;
  Json body;
};

// One provider's differences.
struct ProviderSpec {
  std::string_view signature_header;  // lower case
  std::string_view signature_prefix;  // before the hex digits ("" for none)
  std::string_view event_name_field;  // the body's member naming the event (request log)
  bool needs_rsa_keys;                // its deliveries carry hybrid envelopes
  bool sequenced;  // its messages normally carry a sequence: one without is logged
  // Step 5: `payload` is the signed bytes (what is stored); `origin` says how
  // it arrived (the backfiller plans history copies with Origin::history).
  Result<Plan, Refusal> (*plan)(const Source& source, const Json& body, std::string payload,
                                Origin origin, std::int64_t now_ms);
};

extern const ProviderSpec kDynamicSpec;  // dynamic.cpp
extern const ProviderSpec kNoditSpec;    // nodit.cpp
const ProviderSpec& provider_spec(Provider provider) noexcept;

// Dynamic: eventId is the idempotency key; delegation events need a timestamp
// and data.walletId.
Result<Plan, Refusal> plan_dynamic(const Source& source, const Json& body, std::string payload,
                                   Origin origin, std::int64_t now_ms);

// Nodit: (subscriptionId, sequenceNumber) is the idempotency key
// "<subscriptionId>:<sequenceNumber>"; a message lacking either is keyed by its
// content, "content:<sha256 of its JS-compact form>", and not sequence-tracked.
// sequenceNumber counts from 1: 0 is invalid_field.
Result<Plan, Refusal> plan_nodit(const Source& source, const Json& body, std::string payload,
                                 Origin origin, std::int64_t now_ms);

inline Refusal refuse(Errc code, std::string field = {}) {
  return Refusal{code, std::move(field), {}};
}

inline constexpr std::string_view kContentKeyPrefix = "content:";

// "application/json" (with parameters) or any "application/...+json".
bool is_json_media_type(std::string_view content_type) noexcept;

// Steps 1 to 5 for one delivery to `source`. Moves the body out of
// `delivery` (only the signed bytes live on, in the plan). `now_ms`: the wall
// clock, for max_event_age.
Result<Admitted, Refusal> admit(const Source& source, Delivery& delivery, std::int64_t now_ms);

}  // namespace hookvault::detail
