// Admission of one delivery (contract in admission.hpp).
#include "pipeline/admission.hpp"

#include <utility>

#include "hookvault/bytes.hpp"
#include "hookvault/signature.hpp"

namespace hookvault::detail {

const ProviderSpec& provider_spec(Provider provider) noexcept {
  return provider == Provider::dynamic ? kDynamicSpec : kNoditSpec;
}

bool is_json_media_type(std::string_view content_type) noexcept {
  const std::string_view ct = trim_ows(content_type.substr(0, content_type.find(';')));
  if (iequals_ascii(ct, "application/json")) return true;
  return ct.size() > 5 && iequals_ascii(ct.substr(0, 12), "application/") &&
         iequals_ascii(ct.substr(ct.size() - 5), "+json");
}

Result<Admitted, Refusal> admit(const Source& source, Delivery& delivery, std::int64_t now_ms) {
  const SourceConfig& config = source.config;
  const ProviderSpec& spec = provider_spec(config.provider);
  if (!config.allow_from.empty() && !any_contains(config.allow_from, delivery.client_ip)) {
    return refuse(Errc::forbidden);
  }
  if (!is_json_media_type(delivery.content_type)) {
    return refuse(Errc::unsupported_media_type);
  }
  auto mac = parse_signature_header(delivery.header(spec.signature_header), spec.signature_prefix);
  if (!mac) return refuse(Errc::invalid_signature);
  // From here on only the signed bytes exist: they are what is stored.
  auto verified = source.verifier.verify_delivery(std::move(delivery.body), *mac);
  if (!verified) return refuse(to_errc(verified.error()));

  auto plan = spec.plan(source, verified->body, std::move(verified->signed_body), Origin::signature,
                        now_ms);
  if (!plan) {
    Refusal refusal = plan.error();
    if (verified->body.is_object()) {
      auto it = verified->body.find(spec.event_name_field);
      if (it != verified->body.end() && it->is_string())
        refusal.event_name = it->get<std::string>();
    }
    return refusal;
  }
  return Admitted{std::move(*plan), std::move(verified->body)};
}

}  // namespace hookvault::detail
