#include "hookvault/config.hpp"
#include "hookvault/pipeline.hpp"
#include "pipeline/admission.hpp"

namespace hookvault {

std::vector<std::shared_ptr<const Source>> load_sources(const Config& config) {
  std::vector<std::shared_ptr<const Source>> out;
  out.reserve(config.sources.size());
  for (const auto& sc : config.sources) {
    auto secrets = load_secrets(sc.secrets);
    std::optional<HybridDecryptor> decryptor;
    if (detail::provider_spec(sc.provider).needs_rsa_keys) {
      decryptor.emplace(HybridDecryptor::load(sc.rsa_private_keys, sc.accepted_algs));
    }
    out.push_back(std::make_shared<const Source>(
        Source{sc, SignatureVerifier(std::move(secrets)), std::move(decryptor)}));
  }
  return out;
}

}  // namespace hookvault
