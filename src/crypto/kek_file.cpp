// The file and memory KEK providers (contract and wrap layout in kek.hpp).
//
// Both hold one 32-byte AES-256 key at version 1 and wrap a DEK as
//   nonce[12] || AES-256-GCM(kek, dek)[32] || tag[16]
// with AAD = "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
// The file provider's id is "file:" + the first 8 hex digits of
// SHA-256("hookvault-kek-id" || key): stable for a key, and it reveals nothing
// useful about it.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <span>
#include <stdexcept>
#include <string_view>

#include "crypto/gcm.hpp"
#include "crypto/secret_file.hpp"
#include "crypto/ssl_ptr.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/kek.hpp"

namespace hookvault {
namespace {

constexpr std::size_t kKekBytes = 32;
constexpr std::size_t kWrappedDekBytes = 32;
constexpr std::size_t kNonceBytes = kGcmNonceBytes;
constexpr std::size_t kTagBytes = kGcmTagBytes;
constexpr std::size_t kWrappedBytes = kNonceBytes + kWrappedDekBytes + kTagBytes;  // 60
constexpr std::uint32_t kVersion = 1;
constexpr std::string_view kWrapLabel = "hookvault-kek-wrap-v1";
constexpr std::string_view kIdLabel = "hookvault-kek-id";
constexpr std::size_t kMaxKekFileBytes = 4096;

// u32be(version), the middle part of the wrap AAD
// "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
std::array<std::uint8_t, 4> version_be(std::uint32_t version) {
  return {static_cast<std::uint8_t>(version >> 24), static_cast<std::uint8_t>(version >> 16),
          static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version)};
}

class AesGcmKek final : public Kek {
 public:
  AesGcmKek(SecretBytes key, std::string id) : key_(std::move(key)), id_(std::move(id)) {}

  const std::string& id() const noexcept override { return id_; }
  std::uint32_t version() const noexcept override { return kVersion; }

  Result<Bytes> wrap(const SecretBytes& dek, ByteView associated_data) const override {
    if (dek.size() != kWrappedDekBytes) return Errc::internal;  // caller bug, not data
    Bytes out(kWrappedBytes);
    std::uint8_t* nonce = out.data();
    std::uint8_t* ct = nonce + kNonceBytes;
    std::uint8_t* tag = ct + kWrappedDekBytes;
    if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) {
      ERR_clear_error();
      return Errc::internal;
    }
    const auto version = version_be(kVersion);
    if (gcm_seal(key_, ByteView(nonce, kNonceBytes),
                 {as_bytes(kWrapLabel), ByteView(version), associated_data}, dek.reveal(),
                 std::span(ct, kWrappedDekBytes), std::span(tag, kTagBytes)) != GcmSealStatus::ok) {
      return Errc::internal;
    }
    return out;
  }

  Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                             ByteView associated_data) const override {
    if (version != kVersion) return Errc::kek_unavailable;
    if (wrapped.size() != kWrappedBytes) return Errc::store_corrupt;
    const ByteView nonce = wrapped.subspan(0, kNonceBytes);
    const ByteView ct = wrapped.subspan(kNonceBytes, kWrappedDekBytes);
    const ByteView tag = wrapped.subspan(kNonceBytes + kWrappedDekBytes, kTagBytes);

    const auto version_bytes = version_be(version);
    SecretBytes dek(kWrappedDekBytes);
    if (!gcm_open(key_, nonce, {as_bytes(kWrapLabel), ByteView(version_bytes), associated_data}, ct,
                  tag, dek.reveal_mutable())) {
      return Errc::store_corrupt;  // `dek` is wiped
    }
    return dek;
  }

 private:
  SecretBytes key_;
  std::string id_;
};

[[noreturn]] void fail(const std::filesystem::path& file, std::string_view reason) {
  throw std::runtime_error("KEK file \"" + file.string() + "\": " + std::string(reason));
}

// 32 raw bytes, or base64/base64url text of 32 bytes with trailing CR/LF.
SecretBytes parse_kek_file(const std::filesystem::path& file, const SecretBytes& content) {
  if (content.size() == kKekBytes) return content.clone();
  std::string_view text = content.reveal_string();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  auto decoded = base64_decode_lenient(text);
  if (!decoded) fail(file, "not a 32-byte key (neither 32 raw bytes nor base64 text)");
  SecretBytes key = SecretBytes::copy_of(*decoded);
  secure_wipe(decoded->data(), decoded->size());  // the decoder returns plain Bytes
  if (key.size() != kKekBytes) fail(file, "not a 32-byte key (base64 text of the wrong length)");
  return key;
}

std::string file_kek_id(const SecretBytes& key) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), kIdLabel.data(), kIdLabel.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), key.reveal().data(), key.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest.data(), &len) != 1 || len < 4) {
    ERR_clear_error();
    throw std::runtime_error("KEK: SHA-256 failed");
  }
  return "file:" + to_hex(ByteView(digest.data(), 4));
}

}  // namespace

std::unique_ptr<Kek> open_file_kek(const std::filesystem::path& file) {
  const SecretBytes content =
      read_secret_file(file, kMaxKekFileBytes, "KEK file", "not a 32-byte key (file too large)");
  SecretBytes key = parse_kek_file(file, content);
  std::string id = file_kek_id(key);
  return std::make_unique<AesGcmKek>(std::move(key), std::move(id));
}

std::unique_ptr<Kek> make_memory_kek(SecretBytes key, std::string id) {
  if (key.size() != kKekBytes) throw std::invalid_argument("KEK must be 32 bytes");
  return std::make_unique<AesGcmKek>(std::move(key), std::move(id));
}

}  // namespace hookvault
