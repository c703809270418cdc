// The per-event crypto of a Nodit delivery, hookvault's way against OpenSSL's
// one-shot calls: HMAC-SHA256 (hookvault/hmac.hpp, a keyed template copied per
// call, against HMAC(), which looks HMAC and SHA-256 up by name each time) and
// an AES-256-GCM seal (crypto/gcm.hpp, a cipher fetched once, against
// EVP_aes_256_gcm(), looked up at every init), and the CSPRNG draws of one
// stored event, a 32-byte data key and two 12-byte nonces (hookvault/random.hpp,
// served from a per-thread block, against three RAND_bytes calls). And the RSA
// work of a Dynamic delegation (two hybrid envelopes, the share's without a
// kid) with two RSA-4096 keys configured, the previous one listed first as
// during a rotation: hookvault's key choice (hookvault/hybrid.hpp, "Key
// selection") against trying every key in configuration order.
//
//   build/bench/hookvault_crypto_bench [calls=200000]
//
// Prints one line per pair: microseconds per call, each way (the delegation
// row: RSA operations and milliseconds per delegation, calls/2000 of them,
// at least 2). Every result is compared with the other way's, and the key
// choice must cost 2 RSA operations per delegation after the first; the exit
// status is 1 when any of that fails, which is what ctest
// (bench.crypto_bench_runs, a few calls) checks. It times nothing for the
// tests.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "crypto/gcm.hpp"
#include "crypto/ssl_ptr.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/hmac.hpp"
#include "hookvault/hybrid.hpp"
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

hookvault::PkeyPtr rsa_key(int bits) {
  hookvault::PkeyPtr key(EVP_RSA_gen(static_cast<unsigned>(bits)));
  if (!key) std::abort();
  return key;
}

hookvault::SecretBytes private_pem(EVP_PKEY* key) {
  hookvault::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    std::abort();
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return hookvault::SecretBytes::copy_of(std::string_view(data, static_cast<std::size_t>(len)));
}

// Dynamic's envelope (hookvault/hybrid.hpp), sealed to `key`'s public half.
hookvault::HybridEnvelope seal_envelope(EVP_PKEY* key, std::string_view plain,
                                        std::optional<std::string> kid) {
  std::array<std::uint8_t, 32> aes{};
  std::array<std::uint8_t, 16> iv{};
  std::array<std::uint8_t, 16> tag{};
  if (RAND_bytes(aes.data(), 32) != 1 || RAND_bytes(iv.data(), 16) != 1) std::abort();
  std::vector<std::uint8_t> ct(plain.size());
  hookvault::CipherCtxPtr c(EVP_CIPHER_CTX_new());
  int len = 0;
  int final_len = 0;
  if (!c || EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, 16, nullptr) != 1 ||
      EVP_EncryptInit_ex(c.get(), nullptr, nullptr, aes.data(), iv.data()) != 1 ||
      EVP_EncryptUpdate(c.get(), ct.data(), &len,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.get(), ct.data() + len, &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, 16, tag.data()) != 1) {
    std::abort();
  }
  hookvault::PkeyCtxPtr p(EVP_PKEY_CTX_new(key, nullptr));
  std::size_t ek_len = 0;
  if (!p || EVP_PKEY_encrypt_init(p.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(p.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(p.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(p.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_encrypt(p.get(), nullptr, &ek_len, aes.data(), aes.size()) != 1) {
    std::abort();
  }
  std::vector<std::uint8_t> ek(ek_len);
  if (EVP_PKEY_encrypt(p.get(), ek.data(), &ek_len, aes.data(), aes.size()) != 1) std::abort();
  ek.resize(ek_len);
  using hookvault::base64url_encode;
  return {std::string(hookvault::kHybridAlg),
          base64url_encode(iv),
          base64url_encode(ct),
          base64url_encode(tag),
          base64url_encode(ek),
          std::move(kid)};
}

// Trying every configured key in order, as hookvault did before its key
// choice: one decryptor per key, so each call is a single attempt.
bool open_in_order(const std::vector<hookvault::HybridDecryptor>& one_key_each,
                   const hookvault::HybridEnvelope& envelope) {
  for (const auto& dec : one_key_each) {
    auto r = dec.decrypt(envelope);
    if (r) return true;
    if (r.error() != hookvault::Errc::no_matching_key) return false;
  }
  return false;
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

  // A delegation with two RSA-4096 keys configured, the previous one first.
  const long delegations = std::max(2L, calls / 2000);
  const auto previous = rsa_key(4096);
  const auto current = rsa_key(4096);
  std::vector<std::pair<std::string, hookvault::SecretBytes>> kid_pem;
  kid_pem.emplace_back("", private_pem(previous.get()));
  kid_pem.emplace_back("", private_pem(current.get()));
  const auto both = hookvault::HybridDecryptor::from_pem(kid_pem);
  std::vector<hookvault::HybridDecryptor> one_key_each;
  for (const auto& entry : kid_pem) {
    std::vector<std::pair<std::string, hookvault::SecretBytes>> one;
    one.emplace_back(entry.first, hookvault::SecretBytes::copy_of(entry.second.reveal()));
    one_key_each.push_back(hookvault::HybridDecryptor::from_pem(one));
  }
  const auto share = seal_envelope(current.get(), "share", std::nullopt);
  const auto api_key = seal_envelope(current.get(), "api-key", std::string("dynamic_rsa_2"));
  bool opened = true;
  auto delegation = [&] {
    hookvault::KeyChoice choice;
    opened = both.decrypt(share, choice) && both.decrypt(api_key, choice) && opened;
  };
  delegation();  // the first finds the current key behind the previous one
  const auto before = both.rsa_operations();
  const double chosen_ms = us_per_call(delegations, delegation) / 1000.0;
  const double chosen_ops =
      static_cast<double>(both.rsa_operations() - before) / static_cast<double>(delegations);
  if (!opened || both.rsa_operations() - before != 2 * static_cast<std::uint64_t>(delegations)) {
    ++mismatches;
  }
  std::uint64_t in_order_before = 0;
  for (const auto& dec : one_key_each) in_order_before += dec.rsa_operations();
  const double in_order_ms = us_per_call(delegations,
                                         [&] {
                                           opened = open_in_order(one_key_each, share) &&
                                                    open_in_order(one_key_each, api_key) && opened;
                                         }) /
                             1000.0;
  std::uint64_t in_order_after = 0;
  for (const auto& dec : one_key_each) in_order_after += dec.rsa_operations();
  if (!opened) ++mismatches;
  std::printf(
      "delegation, 2 RSA-4096 keys, previous first: in order %.1f RSA ops %.2f ms, "
      "hookvault key choice %.1f RSA ops %.2f ms\n",
      static_cast<double>(in_order_after - in_order_before) / static_cast<double>(delegations),
      in_order_ms, chosen_ops, chosen_ms);
  std::printf("mismatches=%d\n", mismatches);
  return mismatches == 0 ? 0 : 1;
}
