// The file and memory KEK providers (contract, keyring formats and wrap layout
// in kek.hpp).
//
// Both hold a keyring: 32-byte AES-256 keys by version, the highest current.
// A DEK is wrapped as
//   nonce[12] || AES-256-GCM(kek version N, dek)[32] || tag[16]
// with AAD = "hookvault-kek-wrap-v1" || u32be(N) || associated_data.
// The file provider's id is "file:" + the first 8 hex digits of
// SHA-256("hookvault-kek-id" || version 1's key): stable for a key, and it
// reveals nothing useful about it. Once version 1 is retired the keyring's
// "id" line carries it.
//
// The keyring is immutable once parsed; a Kek holds a shared_ptr to the
// current one and swaps it (under ring_mu_) on refresh, so a wrap or unwrap
// works on one consistent keyring without holding a lock during the AES.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <utility>

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
constexpr std::string_view kWrapLabel = "hookvault-kek-wrap-v1";
constexpr std::string_view kIdLabel = "hookvault-kek-id";
constexpr std::size_t kMaxKekFileBytes = 16384;  // some 300 versions
constexpr std::size_t kMaxIdBytes = 128;

// u32be(version), the middle part of the wrap AAD
// "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
std::array<std::uint8_t, 4> version_be(std::uint32_t version) {
  return {static_cast<std::uint8_t>(version >> 24), static_cast<std::uint8_t>(version >> 16),
          static_cast<std::uint8_t>(version >> 8), static_cast<std::uint8_t>(version)};
}

// Keys by version (never empty) and the KEK id.
struct Keyring {
  std::string id;
  std::map<std::uint32_t, SecretBytes> keys;

  std::uint32_t current() const { return keys.rbegin()->first; }
};

// ---------------------------------------------------------------------------
// Wrap and unwrap under one key.

Result<Bytes> seal_dek(const SecretBytes& key, std::uint32_t version, const SecretBytes& dek,
                       ByteView associated_data) {
  if (dek.size() != kWrappedDekBytes) return Errc::internal;  // caller bug, not data
  Bytes out(kWrappedBytes);
  std::uint8_t* nonce = out.data();
  std::uint8_t* ct = nonce + kNonceBytes;
  std::uint8_t* tag = ct + kWrappedDekBytes;
  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) {
    ERR_clear_error();
    return Errc::internal;
  }
  const auto v = version_be(version);
  if (gcm_seal(key, ByteView(nonce, kNonceBytes),
               {as_bytes(kWrapLabel), ByteView(v), associated_data}, dek.reveal(),
               std::span(ct, kWrappedDekBytes), std::span(tag, kTagBytes)) != GcmSealStatus::ok) {
    return Errc::internal;
  }
  return out;
}

Result<SecretBytes> open_dek(const SecretBytes& key, std::uint32_t version, ByteView wrapped,
                             ByteView associated_data) {
  if (wrapped.size() != kWrappedBytes) return Errc::store_corrupt;
  const ByteView nonce = wrapped.subspan(0, kNonceBytes);
  const ByteView ct = wrapped.subspan(kNonceBytes, kWrappedDekBytes);
  const ByteView tag = wrapped.subspan(kNonceBytes + kWrappedDekBytes, kTagBytes);
  const auto v = version_be(version);
  SecretBytes dek(kWrappedDekBytes);
  if (!gcm_open(key, nonce, {as_bytes(kWrapLabel), ByteView(v), associated_data}, ct, tag,
                dek.reveal_mutable())) {
    return Errc::store_corrupt;  // `dek` is wiped
  }
  return dek;
}

// ---------------------------------------------------------------------------
// The keyring file.

[[noreturn]] void fail(const std::filesystem::path& file, std::string_view reason) {
  throw std::runtime_error("KEK file \"" + file.string() + "\": " + std::string(reason));
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

// base64/base64url text of exactly 32 bytes, or nullopt. The decoder's plain
// buffer is wiped.
std::optional<SecretBytes> decode_key(std::string_view text) {
  auto decoded = base64_decode_lenient(text);
  if (!decoded) return std::nullopt;
  SecretBytes key = SecretBytes::copy_of(*decoded);
  secure_wipe(decoded->data(), decoded->size());
  if (key.size() != kKekBytes) return std::nullopt;
  return key;
}

// "v<N>": N decimal, no leading zero, 1 .. 2^32-1.
std::optional<std::uint32_t> parse_version(std::string_view word) {
  if (word.size() < 2 || word.size() > 11 || word[0] != 'v' || word[1] == '0') return std::nullopt;
  std::uint64_t n = 0;
  for (char c : word.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n == 0 || n > UINT32_MAX) return std::nullopt;
  return static_cast<std::uint32_t>(n);
}

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (char c : id) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// The lines format: "v<N> <base64>" and at most one "id <id>".
Keyring parse_keyring_lines(const std::filesystem::path& file, std::string_view text) {
  Keyring ring;
  std::optional<std::string> id_line;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = "line " + std::to_string(line_no) + ": ";
    const auto space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
      fail(file, where + "expected \"v<N> <base64 key>\" or \"id <kek id>\"");
    }
    const std::string_view word = line.substr(0, space);
    const std::string_view value = line.substr(space + 1);
    if (word == "id") {
      if (id_line) fail(file, where + "a second \"id\" line");
      if (!valid_id(value)) fail(file, where + "the id is empty, too long or not printable");
      id_line = std::string(value);
      continue;
    }
    const auto version = parse_version(word);
    if (!version) {
      fail(file,
           where + "expected \"v<N> <base64 key>\" (N from 1, no leading zero) or \"id <kek id>\"");
    }
    auto key = decode_key(value);
    if (!key)
      fail(file, where + "the key of version " + std::to_string(*version) +
                     " is not base64 text of 32 bytes");
    if (!ring.keys.emplace(*version, std::move(*key)).second) {
      fail(file, where + "version " + std::to_string(*version) + " appears twice");
    }
  }
  if (ring.keys.empty()) fail(file, "no key version (expected lines \"v<N> <base64 key>\")");
  const auto v1 = ring.keys.find(1);
  if (v1 != ring.keys.end()) {
    ring.id = file_kek_id(v1->second);
    if (id_line && *id_line != ring.id) {
      fail(file, "the \"id\" line does not match version 1's key (" + ring.id + ")");
    }
  } else if (id_line) {
    ring.id = *id_line;
  } else {
    fail(file, "no version 1 and no \"id\" line, so the KEK id is unknown");
  }
  return ring;
}

// Legacy (32 raw bytes, or one line of base64) or the lines format (kek.hpp).
// A base64 line has no space; every line of the lines format has one.
Keyring parse_kek_file(const std::filesystem::path& file, const SecretBytes& content) {
  if (content.size() == kKekBytes) {
    Keyring ring;
    ring.keys.emplace(1, content.clone());
    ring.id = file_kek_id(ring.keys.at(1));
    return ring;
  }
  std::string_view text = content.reveal_string();
  if (text.find(' ') != std::string_view::npos) return parse_keyring_lines(file, text);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  auto key = decode_key(text);
  if (!key) {
    fail(file,
         "not a 32-byte key (neither 32 raw bytes, nor base64 text of 32 bytes, nor keyring "
         "lines \"v<N> <base64 key>\")");
  }
  Keyring ring;
  ring.id = file_kek_id(*key);
  ring.keys.emplace(1, std::move(*key));
  return ring;
}

Keyring read_keyring(const std::filesystem::path& file) {
  const SecretBytes content =
      read_secret_file(file, kMaxKekFileBytes, "KEK file", "not a KEK file (file too large)");
  return parse_kek_file(file, content);
}

void append(SecretText& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }

// The lines format, written straight into wiped memory.
SecretText serialize_keyring(const Keyring& ring) {
  SecretText out;
  append(out, "id ");
  append(out, ring.id);
  append(out, "\n");
  for (const auto& [version, key] : ring.keys) {
    append(out, "v" + std::to_string(version) + " ");
    SecretText b64(4 * ((key.size() + 2) / 3) + 1);
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), key.reveal().data(),
                                  static_cast<int>(key.size()));
    if (n <= 0) throw std::runtime_error("KEK: base64 encoding failed");
    out.insert(out.end(), b64.begin(), b64.begin() + n);
    append(out, "\n");
  }
  return out;
}

class Fd {
 public:
  explicit Fd(int fd) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

// The folder of `file`, opened and locked (flock, exclusive) until destruction.
Fd lock_folder(const std::filesystem::path& file) {
  const auto folder = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  Fd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) fail(file, "cannot open its folder: " + errno_text());
  while (::flock(dir.get(), LOCK_EX) != 0) {
    if (errno != EINTR) fail(file, "cannot lock its folder: " + errno_text());
  }
  return dir;
}

// Replaces `file` with `content`: temporary file (0600) in the same folder,
// fsync, rename, fsync of the folder. The temporary file is removed on failure.
void replace_file(const std::filesystem::path& file, const Fd& folder, const SecretText& content) {
  const std::filesystem::path tmp = file.string() + ".tmp-" + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) fail(file, "cannot create " + tmp.string() + ": " + errno_text());
  const auto give_up = [&](const std::string& why) {
    ::unlink(tmp.c_str());
    fail(file, why);
  };
  // Root rotating a key that belongs to the service user leaves it theirs.
  struct stat st {};
  if (::geteuid() == 0 && ::stat(file.c_str(), &st) == 0 &&
      ::fchown(fd.get(), st.st_uid, st.st_gid) != 0) {
    give_up("cannot keep the file's owner: " + errno_text());
  }
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) give_up("cannot write " + tmp.string() + ": " + errno_text());
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) give_up("cannot fsync " + tmp.string() + ": " + errno_text());
  if (::close(fd.release()) != 0) give_up("cannot close " + tmp.string() + ": " + errno_text());
  if (::rename(tmp.c_str(), file.c_str()) != 0) give_up("cannot replace it: " + errno_text());
  if (::fsync(folder.get()) != 0) fail(file, "cannot fsync its folder: " + errno_text());
}

// ---------------------------------------------------------------------------
// The Kek.

class KeyringKek final : public Kek {
 public:
  // `file` empty: a memory KEK, refresh() does nothing.
  KeyringKek(Keyring ring, std::filesystem::path file)
      : file_(std::move(file)),
        id_(ring.id),
        ring_(std::make_shared<const Keyring>(std::move(ring))),
        current_(ring_->current()) {}

  const std::string& id() const noexcept override { return id_; }
  std::uint32_t version() const noexcept override { return current_.load(); }

  std::vector<std::uint32_t> versions() const override {
    std::vector<std::uint32_t> out;
    for (const auto& entry : snapshot()->keys) out.push_back(entry.first);
    return out;
  }

  Result<WrappedDek> wrap(const SecretBytes& dek, ByteView associated_data) const override {
    const auto ring = snapshot();
    const std::uint32_t version = ring->current();
    auto bytes = seal_dek(ring->keys.rbegin()->second, version, dek, associated_data);
    if (!bytes) return bytes.error();
    return WrappedDek{version, std::move(*bytes)};
  }

  Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                             ByteView associated_data) const override {
    auto ring = snapshot();
    auto it = ring->keys.find(version);
    if (it == ring->keys.end()) {
      // Another process may have rotated: look at the file once more.
      if (!reload_quietly()) return Errc::kek_unavailable;
      ring = snapshot();
      it = ring->keys.find(version);
      if (it == ring->keys.end()) return Errc::kek_unavailable;
    }
    return open_dek(it->second, version, wrapped, associated_data);
  }

  void refresh() override {
    if (file_.empty()) return;
    install(read_keyring(file_));
  }

 private:
  std::shared_ptr<const Keyring> snapshot() const {
    std::lock_guard lock(ring_mu_);
    return ring_;
  }

  // Throws when `fresh` is another KEK or changes a key this Kek has.
  void install(Keyring fresh) const {
    std::lock_guard reload_lock(reload_mu_);
    const auto old = snapshot();
    if (fresh.id != id_) {
      fail(file_, "now holds KEK " + fresh.id + ", not " + id_ +
                      " (a restart is needed to change KEKs; rotate to add versions)");
    }
    for (const auto& [version, key] : fresh.keys) {
      auto it = old->keys.find(version);
      if (it != old->keys.end() && !it->second.equals(key.reveal())) {
        fail(file_, "the key of version " + std::to_string(version) + " changed");
      }
    }
    auto ring = std::make_shared<const Keyring>(std::move(fresh));
    const std::uint32_t current = ring->current();
    {
      std::lock_guard lock(ring_mu_);
      ring_ = std::move(ring);
    }
    current_.store(current);
  }

  // refresh() without exceptions (the request path); false when it failed.
  bool reload_quietly() const {
    if (file_.empty()) return false;
    try {
      install(read_keyring(file_));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  const std::filesystem::path file_;
  const std::string id_;
  mutable std::mutex reload_mu_;  // one reload at a time
  mutable std::mutex ring_mu_;    // guards ring_ (the pointer, not the keyring)
  mutable std::shared_ptr<const Keyring> ring_;
  mutable std::atomic<std::uint32_t> current_;
};

}  // namespace

std::unique_ptr<Kek> open_file_kek(const std::filesystem::path& file) {
  return std::make_unique<KeyringKek>(read_keyring(file), file);
}

std::unique_ptr<Kek> make_memory_kek(SecretBytes key, std::string id) {
  if (key.size() != kKekBytes) throw std::invalid_argument("KEK must be 32 bytes");
  Keyring ring;
  ring.id = std::move(id);
  ring.keys.emplace(1, std::move(key));
  return std::make_unique<KeyringKek>(std::move(ring), std::filesystem::path());
}

std::uint32_t rotate_file_kek(const std::filesystem::path& file) {
  const Fd folder = lock_folder(file);
  Keyring ring = read_keyring(file);
  const std::uint32_t current = ring.current();
  if (current == UINT32_MAX) fail(file, "no key version left after " + std::to_string(current));
  const std::uint32_t next = current + 1;
  ring.keys.emplace(next, SecretBytes::random(kKekBytes));
  replace_file(file, folder, serialize_keyring(ring));
  return next;
}

void retire_file_kek_version(const std::filesystem::path& file, std::uint32_t version) {
  const Fd folder = lock_folder(file);
  Keyring ring = read_keyring(file);
  if (ring.keys.count(version) == 0) {
    fail(file, "has no version " + std::to_string(version));
  }
  if (version == ring.current()) {
    fail(file, "version " + std::to_string(version) + " is the current version; rotate first");
  }
  ring.keys.erase(version);
  replace_file(file, folder, serialize_keyring(ring));  // keeps the id in its "id" line
}

}  // namespace hookvault
