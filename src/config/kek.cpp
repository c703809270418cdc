// open_configured_kek(): the KEK provider that [kek] names (config.hpp).
#include <memory>
#include <utility>

#include "hookvault/config.hpp"
#include "hookvault/kek.hpp"

namespace hookvault {

std::shared_ptr<const Kek> open_configured_kek(const KekConfig& kek) {
  if (kek.provider == "pkcs11") {
    Pkcs11KekOptions options;
    options.module = kek.module;
    options.token_label = kek.token_label;
    options.pin = load_secret(kek.pin);  // ConfigError naming the key, never the PIN
    options.key_label = kek.key_label;
    return open_pkcs11_kek(std::move(options));
  }
  return open_file_kek(kek.file);
}

}  // namespace hookvault
