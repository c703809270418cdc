// Nodit (nodit.io) blockchain event webhooks: idempotency by sequence number.
#include <openssl/sha.h>

#include <charconv>
#include <limits>
#include <string>

#include "hookvault/bytes.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/subscription_id.hpp"
#include "pipeline/admission.hpp"

namespace hookvault {
namespace {

// A positive integer sent as digits in a string (as documented) or as a JSON
// integer (lenient). nullopt when absent; `bad` when present but unusable.
std::optional<std::uint64_t> number_field(const Json& obj, std::string_view key, bool& bad) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer()) {
    const auto v = it->get<std::int64_t>();
    if (v > 0) return static_cast<std::uint64_t>(v);
  } else if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && ptr == s.data() + s.size() && !s.empty()) return v;
  }
  bad = true;
  return std::nullopt;
}

// The subscription id in canonical form (subscription_id.hpp). nullopt when
// absent; `bad` when present but not an id.
std::optional<std::string> id_field(const Json& obj, std::string_view key, bool& bad) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  auto id = subscription_id_of(*it);
  if (!id) bad = true;
  return id;
}

std::string content_key(const Json& body) {
  std::string compact;
  js_stringify(body, compact);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(compact.data()), compact.size(), digest);
  return std::string(detail::kContentKeyPrefix) + to_hex(ByteView(digest, sizeof digest));
}

}  // namespace

namespace detail {

const ProviderSpec kNoditSpec{
    .signature_header = "x-signature",
    .signature_prefix = "",
    .event_name_field = "eventType",
    .needs_rsa_keys = false,
    .sequenced = true,
    .plan = plan_nodit,
};

Result<Plan, Refusal> plan_nodit(const Source& source, const Json& body, std::string payload,
                                 Origin origin, std::int64_t now_ms) {
  if (!body.is_object()) return refuse(Errc::invalid_field, "body");
  bool bad = false;
  auto subscription = id_field(body, "subscriptionId", bad);
  if (bad) return refuse(Errc::invalid_field, "subscriptionId");
  auto sequence = number_field(body, "sequenceNumber", bad);
  // Sequence numbers count from 1 (the store refuses 0 and anything beyond
  // int64): refused here, as the client's error, not the store's.
  if (bad || (sequence &&
              (*sequence == 0 ||
               *sequence > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())))) {
    return refuse(Errc::invalid_field, "sequenceNumber");
  }

  Plan plan;
  NewEvent& ev = plan.request.event;
  ev.source = source.config.name;
  ev.origin = origin;
  if (subscription && sequence) {
    ev.idempotency_key = *subscription + ":" + std::to_string(*sequence);
    ev.sequence = SequencePosition{*subscription, *sequence};
  } else {
    ev.idempotency_key = content_key(body);
  }
  if (auto it = body.find("eventType"); it != body.end() && it->is_string()) {
    ev.event_name = it->get<std::string>();
  }
  if (auto it = body.find("createdAt"); it != body.end() && it->is_string()) {
    ev.event_time = it->get<std::string>();
    ev.event_time_ms = parse_iso8601_ms(ev.event_time).value_or(0);
  }
  const auto max_age_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(source.config.max_event_age).count();
  if (origin == Origin::signature && max_age_ms > 0 && ev.event_time_ms > 0 &&
      now_ms - ev.event_time_ms > max_age_ms) {
    return refuse(Errc::stale_event, "createdAt");
  }
  ev.payload = std::move(payload);
  return plan;
}

}  // namespace detail
}  // namespace hookvault
