// What the fuzz targets share: a property check that stops the run (a
// libFuzzer crash, with the message; the replay driver's failing test), and
// the RSA key the Dynamic targets make for each run.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "hookvault/base64.hpp"
#include "hookvault/bytes.hpp"

namespace hookvault::fuzz {

// Aborts with `what` when a property of the target does not hold.
inline void check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

inline std::string_view as_text(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// An RSA-2048 key made for this run (no private key is committed): its
// private key as PEM, and `aes_key` wrapped to it with RSA-OAEP-SHA256 in
// base64url, as Dynamic's `ek` field carries it. Seeds hold fields encrypted
// with `aes_key`, and a target puts `ek` where a seed says {{ek}}.
struct RunKey {
  std::string pem;
  std::string ek;
};

inline RunKey make_run_key(ByteView aes_key) {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  check(key != nullptr, "RSA key generation");
  RunKey out;
  BIO* bio = BIO_new(BIO_s_mem());
  check(bio != nullptr &&
            PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM");
  char* pem = nullptr;
  const long n = BIO_get_mem_data(bio, &pem);
  out.pem.assign(pem, static_cast<std::size_t>(n));
  BIO_free(bio);

  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
  std::size_t len = 0;
  check(ctx != nullptr && EVP_PKEY_encrypt_init(ctx) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
            EVP_PKEY_encrypt(ctx, nullptr, &len, aes_key.data(), aes_key.size()) == 1,
        "RSA-OAEP set-up");
  Bytes wrapped(len);
  check(EVP_PKEY_encrypt(ctx, wrapped.data(), &len, aes_key.data(), aes_key.size()) == 1,
        "RSA-OAEP");
  wrapped.resize(len);
  out.ek = base64url_encode(wrapped);
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace hookvault::fuzz
