// The file and memory KEK providers (contract and wrap layout in kek.hpp).
//
// Both hold one 32-byte AES-256 key at version 1 and wrap a DEK as
//   nonce[12] || AES-256-GCM(kek, dek)[32] || tag[16]
// with AAD = "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
// The file provider's id is "file:" + the first 8 hex digits of
// SHA-256("hookvault-kek-id" || key): stable for a key, and it reveals nothing
// useful about it.
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "crypto/ssl_ptr.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/kek.hpp"

namespace hookvault {
namespace {

constexpr std::size_t kKekBytes = 32;
constexpr std::size_t kWrappedDekBytes = 32;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kWrappedBytes = kNonceBytes + kWrappedDekBytes + kTagBytes;  // 60
constexpr std::uint32_t kVersion = 1;
constexpr std::string_view kWrapLabel = "hookvault-kek-wrap-v1";
constexpr std::string_view kIdLabel = "hookvault-kek-id";
constexpr std::size_t kMaxKekFileBytes = 4096;

// Sets up AES-256-GCM (12-byte nonce) and feeds the AAD
// "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
CipherCtxPtr gcm_init(bool encrypt, const SecretBytes& kek, ByteView nonce, std::uint32_t version,
                      ByteView associated_data) {
  if (associated_data.size() > 0x7FFFFFFF) return nullptr;
  const std::uint8_t version_be[4] = {
      static_cast<std::uint8_t>(version >> 24), static_cast<std::uint8_t>(version >> 16),
      static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version)};
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx ||
      EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, kek.reveal().data(), nonce.data(),
                        encrypt ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), nullptr, &len,
                       reinterpret_cast<const std::uint8_t*>(kWrapLabel.data()),
                       static_cast<int>(kWrapLabel.size())) != 1 ||
      EVP_CipherUpdate(ctx.get(), nullptr, &len, version_be, sizeof version_be) != 1 ||
      (!associated_data.empty() &&
       EVP_CipherUpdate(ctx.get(), nullptr, &len, associated_data.data(),
                        static_cast<int>(associated_data.size())) != 1)) {
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
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
    CipherCtxPtr ctx =
        gcm_init(true, key_, ByteView(nonce, kNonceBytes), kVersion, associated_data);
    int len = 0;
    int final_len = 0;
    if (!ctx ||
        EVP_EncryptUpdate(ctx.get(), ct, &len, dek.reveal().data(),
                          static_cast<int>(kWrappedDekBytes)) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), ct + len, &final_len) != 1 ||
        static_cast<std::size_t>(len) + static_cast<std::size_t>(final_len) != kWrappedDekBytes ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag) !=
            1) {
      ERR_clear_error();
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
    std::array<std::uint8_t, kTagBytes> tag{};  // OpenSSL wants a non-const pointer
    std::memcpy(tag.data(), wrapped.data() + kNonceBytes + kWrappedDekBytes, kTagBytes);

    CipherCtxPtr ctx = gcm_init(false, key_, nonce, version, associated_data);
    SecretBytes dek(kWrappedDekBytes);
    int len = 0;
    int final_len = 0;
    std::uint8_t final_block[16];  // GCM writes nothing here
    if (!ctx ||
        EVP_DecryptUpdate(ctx.get(), dek.reveal_mutable().data(), &len, ct.data(),
                          static_cast<int>(ct.size())) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                            tag.data()) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), final_block, &final_len) != 1 ||
        static_cast<std::size_t>(len) != kWrappedDekBytes || final_len != 0) {
      ERR_clear_error();
      return Errc::store_corrupt;  // `dek` is wiped on return
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

// Reads a small regular file straight into wiped memory (no stdio buffer keeps
// a copy).
SecretBytes read_kek_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(file, std::generic_category().message(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(file, std::generic_category().message(errno));
  if (!S_ISREG(st.st_mode)) fail(file, "not a regular file");
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) > kMaxKekFileBytes) {
    fail(file, "not a 32-byte key (file too large)");
  }
  SecretBytes buf(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < buf.size()) {
    const ssize_t n = ::read(fd, buf.reveal_mutable().data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(file, std::generic_category().message(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  buf.resize(got);
  return buf;
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
  const SecretBytes content = read_kek_file(file);
  SecretBytes key = parse_kek_file(file, content);
  std::string id = file_kek_id(key);
  return std::make_unique<AesGcmKek>(std::move(key), std::move(id));
}

std::unique_ptr<Kek> make_memory_kek(SecretBytes key, std::string id) {
  if (key.size() != kKekBytes) throw std::invalid_argument("KEK must be 32 bytes");
  return std::make_unique<AesGcmKek>(std::move(key), std::move(id));
}

}  // namespace hookvault
