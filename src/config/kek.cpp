// open_configured_kek(), rotate_configured_kek(), retire_configured_kek_version():
// the KEK provider that [kek] names (config.hpp).
#include <memory>
#include <utility>

#include "hookvault/config.hpp"
#include "hookvault/kek.hpp"

namespace hookvault {
namespace {

Pkcs11KekOptions pkcs11_options(const KekConfig& kek) {
  Pkcs11KekOptions options;
  options.module = kek.module;
  options.token_label = kek.token_label;
  options.pin = load_secret(kek.pin);  // ConfigError naming the key, never the PIN
  options.key_label = kek.key_label;
  return options;
}

}  // namespace

std::shared_ptr<Kek> open_configured_kek(const KekConfig& kek) {
  if (kek.provider == "pkcs11") return open_pkcs11_kek(pkcs11_options(kek));
  return open_file_kek(kek.file);
}

std::uint32_t rotate_configured_kek(const KekConfig& kek) {
  if (kek.provider == "pkcs11") return create_pkcs11_kek_version(pkcs11_options(kek));
  return rotate_file_kek(kek.file);
}

void retire_configured_kek_version(const KekConfig& kek, std::uint32_t version) {
  if (kek.provider == "pkcs11") {
    destroy_pkcs11_kek_version(pkcs11_options(kek), version);
    return;
  }
  retire_file_kek_version(kek.file, version);
}

}  // namespace hookvault
