// Fuzzes Dynamic's hybrid envelope decoder: a JSON envelope into
// parse_hybrid_envelope() and HybridDecryptor::decrypt() with this run's RSA
// key (RSA-2048, made at start, never written anywhere).
//
// The placeholder {{ek}} in the input becomes base64url RSA-OAEP(kAesKey) to
// that key, so seeds (make_seeds.js) can carry iv/ct/tag made with kAesKey
// and mutations reach the AES-GCM step. Properties:
//   - failures are only the documented ones (hybrid.hpp);
//   - a success is genuine: the envelope's ek was this run's, and AES-256-GCM
//     of the plaintext under kAesKey and the envelope's iv (encrypted here
//     with OpenSSL directly) gives the envelope's ct and tag.
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/json.hpp"

using namespace hookvault;
using fuzz::check;
using fuzz::make_run_key;
using fuzz::RunKey;

namespace {

constexpr unsigned char kAesKey[32] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

struct World {
  std::string ek;
  std::optional<HybridDecryptor> decryptor;
};

World& world() {
  static World* w = [] {
    auto* out = new World;
    const RunKey run_key = make_run_key(kAesKey);
    std::vector<std::pair<std::string, SecretBytes>> keys;
    keys.emplace_back("fuzz-kid", SecretBytes::copy_of(std::string_view(run_key.pem)));
    out->decryptor = HybridDecryptor::from_pem(keys);
    out->ek = run_key.ek;
    return out;
  }();
  return *w;
}

// AES-256-GCM(kAesKey, iv) of `plain`: ciphertext and 16-byte tag.
std::pair<Bytes, Bytes> gcm_encrypt(ByteView iv, ByteView plain) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  Bytes ct(plain.size());
  Bytes tag(16);
  int n = 0;
  int iv_len = static_cast<int>(iv.size());
  check(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, iv_len, nullptr) == 1 &&
            EVP_EncryptInit_ex(ctx, nullptr, nullptr, kAesKey, iv.data()) == 1 &&
            EVP_EncryptUpdate(ctx, ct.data(), &n, plain.data(), static_cast<int>(plain.size())) ==
                1 &&
            EVP_EncryptFinal_ex(ctx, ct.data() + n, &n) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag.data()) == 1,
        "AES-GCM encrypt");
  EVP_CIPHER_CTX_free(ctx);
  return {ct, tag};
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = world();
  std::string input(fuzz::as_text(data, size));
  for (auto at = input.find("{{ek}}"); at != std::string::npos; at = input.find("{{ek}}", at)) {
    input.replace(at, 6, w.ek);
  }
  const auto json = parse_strict(input);
  if (!json) return 0;
  const auto envelope = parse_hybrid_envelope(*json);
  if (!envelope) {
    check(envelope.error() == Errc::bad_envelope, "parse_hybrid_envelope: only bad_envelope");
    return 0;
  }
  const auto plain = w.decryptor->decrypt(*envelope);
  if (!plain) {
    const auto e = plain.error();
    check(e == Errc::unknown_alg || e == Errc::bad_envelope || e == Errc::bad_encoding ||
              e == Errc::bad_length || e == Errc::no_matching_key || e == Errc::auth_failed,
          "decrypt fails only with the documented errors");
    return 0;
  }
  const auto ek = base64_decode_lenient(envelope->ek);
  const auto expected_ek = base64_decode_lenient(w.ek);
  check(ek && *ek == *expected_ek, "a success used this run's ek");
  const auto iv = base64_decode_lenient(envelope->iv);
  const auto ct = base64_decode_lenient(envelope->ct);
  const auto tag = base64_decode_lenient(envelope->tag);
  check(iv && ct && tag, "a success had decodable fields");
  const auto [again_ct, again_tag] = gcm_encrypt(*iv, plain->reveal());
  check(again_ct == *ct && again_tag == *tag, "a success is AES-GCM of what it returned");
  return 0;
}
