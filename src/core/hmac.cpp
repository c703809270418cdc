// HMAC-SHA256 with its implementation fetched once (contract in hmac.hpp).
#include "hookvault/hmac.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>

namespace hookvault {
namespace {

// A context set up for HMAC-SHA256 under an all-zero key, never used itself:
// EVP_MAC_CTX_dup() copies it with the fetched digest and no lookup by name.
// Null when OpenSSL could not set it up (then every call fails).
const EVP_MAC_CTX* hmac_template() noexcept {
  static const EVP_MAC_CTX* const tmpl = []() -> const EVP_MAC_CTX* {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac == nullptr) return nullptr;
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);  // the context holds its own reference
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    static constexpr std::uint8_t kZeroKey[32] = {};
    if (ctx == nullptr || EVP_MAC_init(ctx, kZeroKey, sizeof kZeroKey, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      ERR_clear_error();
      return nullptr;
    }
    return ctx;  // lives as long as the process
  }();
  return tmpl;
}

}  // namespace

bool hmac_sha256(ByteView key, std::initializer_list<ByteView> message, Mac& out) noexcept {
  const EVP_MAC_CTX* tmpl = hmac_template();
  // EVP_MAC_init with a null key would keep the template's: an empty key
  // still needs a pointer.
  static constexpr std::uint8_t kNoKey = 0;
  EVP_MAC_CTX* ctx = tmpl != nullptr ? EVP_MAC_CTX_dup(tmpl) : nullptr;
  bool ok = ctx != nullptr &&
            EVP_MAC_init(ctx, key.empty() ? &kNoKey : key.data(), key.size(), nullptr) == 1;
  for (ByteView part : message) {
    ok = ok && (part.empty() || EVP_MAC_update(ctx, part.data(), part.size()) == 1);
  }
  std::size_t len = 0;
  ok = ok && EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
  EVP_MAC_CTX_free(ctx);  // cleanses the keyed state
  if (!ok) ERR_clear_error();
  return ok;
}

Mac hmac_sha256(ByteView key, ByteView message) {
  Mac out{};
  if (!hmac_sha256(key, {message}, out)) std::abort();
  return out;
}

}  // namespace hookvault
