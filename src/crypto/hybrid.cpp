// Dynamic's hybrid envelope, decryption side (contract in hybrid.hpp; wire
// format in docs/protocols.md "Hybrid encryption").
//
// decrypt() checks, in this order, and stops at the first failure:
//   1. alg is in the allow-list                          -> unknown_alg
//   2. iv, tag, ek, ct are base64/base64url              -> bad_encoding
//   3. |iv| = 16, |tag| = 16, |ek| = modulus size of a candidate key
//      (candidates: the keys the envelope's kid names, else all keys)
//                                                        -> bad_length
//   4. RSA-OAEP(SHA-256, MGF1-SHA-256, empty label) opens ek under a candidate,
//      tried in the order hybrid.hpp states (kid; else the delivery's
//      KeyChoice, the last key that worked, configuration order)
//                                                        -> no_matching_key
//      and the opened AES key is 32 bytes                -> bad_length
//   5. AES-256-GCM (16-byte IV, no AAD) verifies the tag -> auth_failed
// Errc::internal only if OpenSSL itself fails (allocation).
//
// Secrets: the AES key and the plaintext are only ever written into
// SecretBytes (wiped on release); OpenSSL cleanses its cipher context on free.
// Each call builds its own EVP_PKEY_CTX / EVP_CIPHER_CTX; the loaded EVP_PKEYs
// are never modified after load, which OpenSSL 3 documents as safe to share.
#include "hookvault/hybrid.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "crypto/secret_file.hpp"
#include "crypto/ssl_ptr.hpp"
#include "hookvault/base64.hpp"

namespace hookvault {
namespace {

constexpr std::size_t kAesKeyBytes = 32;
constexpr std::size_t kIvBytes = 16;
constexpr std::size_t kTagBytes = 16;

struct LoadedKey {
  std::string kid;
  PkeyPtr pkey;
  std::size_t modulus_bytes = 0;
};

// Never prompts for a passphrase (the default callback reads the terminal):
// an encrypted PEM simply fails to load.
int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

[[noreturn]] void fail(const std::string& what, std::string_view reason) {
  ERR_clear_error();  // leave no key-derived errors in this thread's queue
  throw std::runtime_error(what + ": " + std::string(reason));
}

// Throws naming the file, never its content; like fail(), leaves this
// thread's OpenSSL error queue empty.
SecretBytes read_pem_file(const std::filesystem::path& file) {
  try {
    return read_secret_file(file, kMaxPemBytes, "RSA private key file");
  } catch (const std::runtime_error&) {
    ERR_clear_error();
    throw;
  }
}

LoadedKey parse_key(std::string kid, const SecretBytes& pem, const std::string& what) {
  if (pem.size() > static_cast<std::size_t>(INT_MAX)) fail(what, "PEM too large");
  // A read-only memory BIO over the caller's buffer: no copy of the PEM text.
  BioPtr bio(BIO_new_mem_buf(pem.reveal().data(), static_cast<int>(pem.size())));
  if (!bio) fail(what, "out of memory");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (!pkey) fail(what, "not a PEM private key (PKCS#8 or traditional, unencrypted)");
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA) fail(what, "not an RSA private key");
  const int size = EVP_PKEY_get_size(pkey.get());
  if (size <= 0) fail(what, "RSA key has no usable modulus");
  ERR_clear_error();
  return {std::move(kid), std::move(pkey), static_cast<std::size_t>(size)};
}

// Opens ek under one key; nullopt when OAEP decryption fails (wrong key or
// tampered ek). Errc::internal when OpenSSL cannot set up the context.
Result<std::optional<SecretBytes>> rsa_oaep_open(const LoadedKey& key, ByteView ek) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key.pkey.get(), nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
    ERR_clear_error();
    return Errc::internal;
  }
  // The label stays empty (OpenSSL's default).
  SecretBytes out(key.modulus_bytes);
  std::size_t out_len = out.size();
  if (EVP_PKEY_decrypt(ctx.get(), out.reveal_mutable().data(), &out_len, ek.data(), ek.size()) !=
      1) {
    ERR_clear_error();
    return std::optional<SecretBytes>();
  }
  out.resize(std::min(out_len, out.size()));  // same allocation: wiped when released
  return std::optional<SecretBytes>(std::move(out));
}

Result<SecretBytes> aes_gcm_open(const SecretBytes& key, ByteView iv, ByteView ct, ByteView tag) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.reveal().data(), iv.data()) != 1) {
    ERR_clear_error();
    return Errc::internal;
  }
  SecretBytes plain(ct.size());
  int len = 0;
  if (!ct.empty() && EVP_DecryptUpdate(ctx.get(), plain.reveal_mutable().data(), &len, ct.data(),
                                       static_cast<int>(ct.size())) != 1) {
    ERR_clear_error();
    return Errc::internal;
  }
  // OpenSSL takes a non-const pointer but only reads the expected tag.
  std::uint8_t tag_copy[kTagBytes];
  std::memcpy(tag_copy, tag.data(), kTagBytes);
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag_copy) !=
      1) {
    ERR_clear_error();
    return Errc::internal;
  }
  std::uint8_t final_block[16];  // GCM writes nothing here
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), final_block, &final_len) != 1) {
    ERR_clear_error();
    return Errc::auth_failed;  // `plain` is wiped on return
  }
  if (static_cast<std::size_t>(len) != ct.size() || final_len != 0) return Errc::internal;
  return plain;
}

}  // namespace

Result<HybridEnvelope> parse_hybrid_envelope(const nlohmann::ordered_json& value) {
  if (!value.is_object()) return Errc::bad_envelope;
  auto field = [&value](const char* name) -> const std::string* {
    auto it = value.find(name);
    if (it == value.end() || !it->is_string()) return nullptr;
    return &it->get_ref<const std::string&>();
  };
  const std::string* alg = field("alg");
  const std::string* iv = field("iv");
  const std::string* ct = field("ct");
  const std::string* tag = field("tag");
  const std::string* ek = field("ek");
  if (!alg || !iv || !ct || !tag || !ek) return Errc::bad_envelope;
  HybridEnvelope envelope{*alg, *iv, *ct, *tag, *ek, std::nullopt};
  // kid is optional: absent or null means none; any other non-string is malformed.
  if (auto it = value.find("kid"); it != value.end() && !it->is_null()) {
    if (!it->is_string()) return Errc::bad_envelope;
    envelope.kid = it->get<std::string>();
  }
  return envelope;
}

struct HybridDecryptor::Impl {
  std::vector<LoadedKey> keys;
  std::vector<std::string> accepted_algs;
  // The index of the key that opened the last envelope: the first try of the
  // next one without a kid or a KeyChoice. Relaxed: it is only a hint.
  std::atomic<std::size_t> last_good{0};
  std::atomic<std::uint64_t> rsa_operations{0};
};

HybridDecryptor::HybridDecryptor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HybridDecryptor::HybridDecryptor(HybridDecryptor&&) noexcept = default;
HybridDecryptor& HybridDecryptor::operator=(HybridDecryptor&&) noexcept = default;
HybridDecryptor::~HybridDecryptor() = default;

HybridDecryptor HybridDecryptor::load(const std::vector<RsaKeySpec>& keys,
                                      std::vector<std::string> accepted_algs) {
  auto impl = std::make_unique<Impl>();
  impl->accepted_algs = std::move(accepted_algs);
  for (const auto& spec : keys) {
    const std::string what = "RSA private key file \"" + spec.file.string() + "\"";
    const SecretBytes pem = read_pem_file(spec.file);
    impl->keys.push_back(parse_key(spec.kid, pem, what));
  }
  return HybridDecryptor(std::move(impl));
}

HybridDecryptor HybridDecryptor::from_pem(
    const std::vector<std::pair<std::string, SecretBytes>>& kid_pem,
    std::vector<std::string> accepted_algs) {
  auto impl = std::make_unique<Impl>();
  impl->accepted_algs = std::move(accepted_algs);
  for (std::size_t i = 0; i < kid_pem.size(); ++i) {
    const std::string what =
        "RSA private key #" + std::to_string(i + 1) + " (kid \"" + kid_pem[i].first + "\")";
    impl->keys.push_back(parse_key(kid_pem[i].first, kid_pem[i].second, what));
  }
  return HybridDecryptor(std::move(impl));
}

std::size_t HybridDecryptor::key_count() const noexcept { return impl_ ? impl_->keys.size() : 0; }

std::uint64_t HybridDecryptor::rsa_operations() const noexcept {
  return impl_ ? impl_->rsa_operations.load(std::memory_order_relaxed) : 0;
}

Result<SecretBytes> HybridDecryptor::decrypt(const HybridEnvelope& envelope) const {
  KeyChoice none;
  return decrypt(envelope, none);
}

Result<SecretBytes> HybridDecryptor::decrypt(const HybridEnvelope& envelope,
                                             KeyChoice& choice) const {
  if (!impl_) return Errc::no_matching_key;  // moved-from
  const auto& algs = impl_->accepted_algs;
  if (std::find(algs.begin(), algs.end(), envelope.alg) == algs.end()) return Errc::unknown_alg;

  auto iv = base64_decode_lenient(envelope.iv);
  auto tag = base64_decode_lenient(envelope.tag);
  auto ek = base64_decode_lenient(envelope.ek);
  auto ct = base64_decode_lenient(envelope.ct);
  if (!iv || !tag || !ek || !ct) return Errc::bad_encoding;
  if (iv->size() != kIvBytes || tag->size() != kTagBytes) return Errc::bad_length;
  if (ct->size() > static_cast<std::size_t>(INT_MAX)) return Errc::bad_length;

  // Candidates: the keys the kid names, if any; otherwise all, the likeliest
  // first (hybrid.hpp, "Key selection").
  const auto& keys = impl_->keys;
  std::vector<std::size_t> candidates;
  candidates.reserve(keys.size());
  if (envelope.kid && !envelope.kid->empty()) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].kid == *envelope.kid) candidates.push_back(i);
    }
  }
  if (candidates.empty()) {
    auto add = [&](std::size_t i) {
      if (i < keys.size() &&
          std::find(candidates.begin(), candidates.end(), i) == candidates.end()) {
        candidates.push_back(i);
      }
    };
    add(choice.key);
    add(impl_->last_good.load(std::memory_order_relaxed));
    for (std::size_t i = 0; i < keys.size(); ++i) add(i);
  }
  std::erase_if(candidates, [&](std::size_t i) { return keys[i].modulus_bytes != ek->size(); });
  if (candidates.empty()) return keys.empty() ? Errc::no_matching_key : Errc::bad_length;

  for (const std::size_t i : candidates) {
    impl_->rsa_operations.fetch_add(1, std::memory_order_relaxed);
    auto opened = rsa_oaep_open(keys[i], *ek);
    if (!opened) return opened.error();
    if (!opened->has_value()) continue;
    choice.key = i;
    impl_->last_good.store(i, std::memory_order_relaxed);
    const SecretBytes& aes_key = **opened;
    if (aes_key.size() != kAesKeyBytes) return Errc::bad_length;
    return aes_gcm_open(aes_key, *iv, *ct, *tag);
  }
  return Errc::no_matching_key;
}

}  // namespace hookvault
