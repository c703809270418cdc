// Dynamic (dynamic.xyz) events: envelope fields, delegation materials.
#include <string>

#include "hookvault/pipeline.hpp"
#include "pipeline/admission.hpp"

namespace hookvault {
namespace {

constexpr std::string_view kCreated = "wallet.delegation.created";
constexpr std::string_view kRevoked = "wallet.delegation.revoked";

const Json* member(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// A string member: nullptr when absent/null; sets `wrong_type` when present but
// not a string.
const std::string* string_member(const Json& obj, std::string_view key, bool& wrong_type) {
  const Json* v = member(obj, key);
  if (v == nullptr) return nullptr;
  if (!v->is_string()) {
    wrong_type = true;
    return nullptr;
  }
  return v->get_ptr<const std::string*>();
}
}  // namespace

namespace detail {

const ProviderSpec kDynamicSpec{
    .signature_header = "x-dynamic-signature-256",
    .signature_prefix = "sha256=",
    .event_name_field = "eventName",
    .needs_rsa_keys = true,
    .sequenced = false,
    .plan = plan_dynamic,
};

Result<Plan, Refusal> plan_dynamic(const Source& source, const Json& body, std::string payload,
                                   Origin origin, std::int64_t now_ms) {
  if (!body.is_object()) return refuse(Errc::invalid_field, "body");
  bool wrong = false;
  const std::string* event_id = string_member(body, "eventId", wrong);
  if (wrong) return refuse(Errc::invalid_field, "eventId");
  if (event_id == nullptr || event_id->empty()) return refuse(Errc::missing_field, "eventId");
  const std::string* event_name = string_member(body, "eventName", wrong);
  if (wrong) return refuse(Errc::invalid_field, "eventName");
  if (event_name == nullptr || event_name->empty()) {
    return refuse(Errc::missing_field, "eventName");
  }
  const std::string* message_id = string_member(body, "messageId", wrong);
  if (wrong) return refuse(Errc::invalid_field, "messageId");
  const std::string* timestamp = string_member(body, "timestamp", wrong);
  if (wrong) return refuse(Errc::invalid_field, "timestamp");

  const bool created = *event_name == kCreated;
  const bool revoked = *event_name == kRevoked;

  std::int64_t event_ms = 0;
  if (timestamp != nullptr) {
    auto ms = parse_iso8601_ms(*timestamp);
    if (ms) {
      event_ms = *ms;
    } else if (created || revoked) {
      return refuse(Errc::invalid_field, "timestamp");
    }
  } else if (created || revoked) {
    return refuse(Errc::missing_field, "timestamp");
  }
  const auto max_age_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(source.config.max_event_age).count();
  if (max_age_ms > 0 && event_ms > 0 && now_ms - event_ms > max_age_ms) {
    return refuse(Errc::stale_event, "timestamp");
  }

  Plan plan;
  NewEvent& ev = plan.request.event;
  ev.source = source.config.name;
  ev.idempotency_key = *event_id;
  ev.event_name = *event_name;
  if (message_id != nullptr) ev.message_id = *message_id;
  if (timestamp != nullptr) ev.event_time = *timestamp;
  ev.event_time_ms = event_ms;
  ev.origin = origin;

  if (created || revoked) {
    const Json* data = member(body, "data");
    if (data == nullptr) return refuse(Errc::missing_field, "data");
    if (!data->is_object()) return refuse(Errc::invalid_field, "data");
    const std::string* wallet = string_member(*data, "walletId", wrong);
    if (wrong) return refuse(Errc::invalid_field, "data.walletId");
    if (wallet == nullptr || wallet->empty()) {
      return refuse(Errc::missing_field, "data.walletId");
    }
    ev.wallet_id = *wallet;
  }
  ev.payload = std::move(payload);
  plan.request.revoke = revoked;
  plan.decrypt = created;
  return plan;
}

}  // namespace detail

Result<DelegationMaterials, Refusal> decrypt_delegation(const Source& source, const Json& body) {
  static const Json kNull;
  const Json* data_ptr = member(body, "data");
  const Json& data = data_ptr != nullptr ? *data_ptr : kNull;
  if (!source.decryptor) return detail::refuse(Errc::no_matching_key, "rsa_private_keys");
  bool wrong = false;
  DelegationMaterials m;
  if (const auto* w = string_member(data, "walletId", wrong)) m.wallet_id = *w;
  if (const auto* u = string_member(data, "userId", wrong)) {
    m.user_id = *u;
  } else if (const auto* tu = string_member(body, "userId", wrong)) {
    m.user_id = *tu;
  }
  if (const auto* c = string_member(data, "chain", wrong)) m.chain = *c;
  if (const auto* s = string_member(data, "shareSetId", wrong)) m.share_set_id = *s;

  static const Json kMissing;
  // The key that opens the share (whose envelope has no kid) is the first try
  // for the API key (hybrid.hpp, "Key selection").
  KeyChoice choice;
  auto open = [&](std::string_view field, SecretBytes& into) -> Result<void, Refusal> {
    const Json* env_json = member(data, field);
    auto env = parse_hybrid_envelope(env_json != nullptr ? *env_json : kMissing);
    if (!env) return detail::refuse(to_errc(env.error()), std::string(field));
    auto plain = source.decryptor->decrypt(*env, choice);
    if (!plain) return detail::refuse(to_errc(plain.error()), std::string(field));
    into = std::move(*plain);
    return {};
  };
  if (auto r = open("encryptedDelegatedShare", m.share); !r) return r.error();
  if (auto r = open("encryptedWalletApiKey", m.api_key); !r) return r.error();
  return m;
}

}  // namespace hookvault
