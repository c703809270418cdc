// The per-event crypto of a Nodit delivery, hookvault's way against OpenSSL's
// one-shot calls: HMAC-SHA256 (hookvault/hmac.hpp, a keyed template copied per
// call, against HMAC(), which looks HMAC and SHA-256 up by name each time) and
// an AES-256-GCM seal (crypto/gcm.hpp, a cipher fetched once, against
// EVP_aes_256_gcm(), looked up at every init), and the CSPRNG draws of one
// stored event, a 32-byte data key and two 12-byte nonces (hookvault/random.hpp,
// served from a per-thread block, against three RAND_bytes calls).
//
//   build/bench/hookvault_crypto_bench [calls=200000]
//
// Prints one line per pair: microseconds per call, each way. Every result is
// compared with the other way's; the exit status is 1 when any differs, which
// is what ctest (bench.crypto_bench_runs, a few calls) checks. It times
// nothing for the tests.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "crypto/gcm.hpp"
#include "hookvault/hmac.hpp"
#include "hookvault/random.hpp"
#include "hookvault/secret.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using hookvault::ByteView;
using hookvault::Mac;

template <class F>
double us_per_call(long calls, F&& f) {
  const auto start = Clock::now();
  for (long i = 0; i < calls; ++i) f();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() /
         static_cast<double>(calls);
}

Mac openssl_hmac(ByteView key, ByteView message) {
  Mac out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), message.data(), message.size(),
       out.data(), &len);
  return out;
}

// AES-256-GCM seal with EVP_aes_256_gcm(): ciphertext then tag.
std::vector<std::uint8_t> openssl_seal(const hookvault::SecretBytes& key, ByteView nonce,
                                       ByteView plain) {
  std::vector<std::uint8_t> out(plain.size() + hookvault::kGcmTagBytes);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  int final_len = 0;
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.reveal().data(), nonce.data());
  EVP_EncryptUpdate(ctx, out.data(), &len, plain.data(), static_cast<int>(plain.size()));
  EVP_EncryptFinal_ex(ctx, out.data() + len, &final_len);
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(hookvault::kGcmTagBytes),
                      out.data() + plain.size());
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

std::vector<std::uint8_t> hookvault_seal(const hookvault::SecretBytes& key, ByteView nonce,
                                         ByteView plain) {
  std::vector<std::uint8_t> out(plain.size() + hookvault::kGcmTagBytes);
  const std::span<std::uint8_t> all(out);
  if (!hookvault::gcm_seal(key, nonce, {}, plain, all.first(plain.size()),
                           all.last(hookvault::kGcmTagBytes))) {
    std::abort();
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const long calls = argc > 1 ? std::atol(argv[1]) : 200000;
  if (calls <= 0) {
    std::fprintf(stderr, "crypto_bench: bad number %s\n", argv[1]);
    return 2;
  }
  int mismatches = 0;
  const std::array<std::uint8_t, 32> key{1, 2, 3};
  const std::string commit_message(31, 'c');  // the key commitment's label and nonce
  const std::string body(1200, 'b');          // about a Nodit delivery
  for (const std::string* message : {&commit_message, &body}) {
    const ByteView m = hookvault::as_bytes(*message);
    if (openssl_hmac(key, m) != hookvault::hmac_sha256(key, m)) ++mismatches;
    Mac sink{};
    const double theirs = us_per_call(calls, [&] { sink = openssl_hmac(key, m); });
    const double ours = us_per_call(calls, [&] { sink = hookvault::hmac_sha256(key, m); });
    std::printf("hmac_sha256 %zu bytes: HMAC() %.2f us, hookvault %.2f us\n", message->size(),
                theirs, ours);
  }
  const auto dek = hookvault::SecretBytes::random(32);
  const std::array<std::uint8_t, hookvault::kGcmNonceBytes> nonce{9};
  const ByteView plain = hookvault::as_bytes(body);
  if (openssl_seal(dek, nonce, plain) != hookvault_seal(dek, nonce, plain)) ++mismatches;
  std::vector<std::uint8_t> sink;
  const double theirs = us_per_call(calls, [&] { sink = openssl_seal(dek, nonce, plain); });
  const double ours = us_per_call(calls, [&] { sink = hookvault_seal(dek, nonce, plain); });
  std::printf("aes_256_gcm seal %zu bytes: EVP_aes_256_gcm() %.2f us, hookvault %.2f us\n",
              body.size(), theirs, ours);

  // Randomness cannot be compared with the other way's: each way must at
  // least fill what it is given.
  std::array<std::uint8_t, 32> key_bytes{};
  std::array<std::uint8_t, 12> nonce_a{};
  std::array<std::uint8_t, 12> nonce_b{};
  bool drawn = true;
  const double direct = us_per_call(calls, [&] {
    drawn = RAND_bytes(key_bytes.data(), static_cast<int>(key_bytes.size())) == 1 &&
            RAND_bytes(nonce_a.data(), static_cast<int>(nonce_a.size())) == 1 &&
            RAND_bytes(nonce_b.data(), static_cast<int>(nonce_b.size())) == 1 && drawn;
  });
  if (!drawn) ++mismatches;
  const double blocks = us_per_call(calls, [&] {
    drawn = hookvault::random_bytes(key_bytes) && hookvault::random_bytes(nonce_a) &&
            hookvault::random_bytes(nonce_b) && drawn;
  });
  if (!drawn || nonce_a == nonce_b) ++mismatches;
  std::printf("csprng 32+12+12 bytes: RAND_bytes() x3 %.2f us, hookvault random_bytes x3 %.2f us\n",
              direct, blocks);
  std::printf("mismatches=%d\n", mismatches);
  return mismatches == 0 ? 0 : 1;
}
