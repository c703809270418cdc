// The file and memory KEK providers (contract, keyring formats and wrap layout
// in kek.hpp).
//
// Both hold a keyring: 32-byte AES-256 keys by version, the highest current.
// A DEK is wrapped in the format of kek_wrap.hpp.
// The file provider's id is "file:" + the first 8 hex digits of
// SHA-256("hookvault-kek-id" || version 1's key): stable for a key, and it
// reveals nothing useful about it. Once version 1 is retired the keyring's
// "id" line carries it.
//
// The keyring is immutable once parsed; a Kek holds a shared_ptr to the
// current one and swaps it (under ring_mu_) on refresh, so a wrap or unwrap
// works on one consistent keyring without holding a lock during the AES. The
// current version is always read from that keyring, never kept beside it.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "crypto/gcm.hpp"
#include "crypto/kek_wrap.hpp"
#include "crypto/secret_file.hpp"
#include "crypto/ssl_ptr.hpp"
#include "hookvault/base64.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/random.hpp"

namespace hookvault {
namespace {

constexpr std::string_view kIdLabel = "hookvault-kek-id";
constexpr std::size_t kMaxKekFileBytes = 16384;  // some 300 versions
constexpr std::size_t kMaxIdBytes = 128;

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
  if (dek.size() != kDekBytes) return Errc::internal;  // caller bug, not data
  Bytes out(kWrappedBytes);
  const std::span<std::uint8_t> all(out);
  if (!random_bytes(all.first(kWrapNonceBytes))) return Errc::internal;
  if (!gcm_seal(key, all.first(kWrapNonceBytes), {wrap_aad(version, associated_data)}, dek.reveal(),
                all.subspan(kWrapNonceBytes, kDekBytes), all.last(kWrapTagBytes))) {
    return Errc::internal;
  }
  return out;
}

// `wrapped` is kWrappedBytes long (unwrap() checks that first).
Result<SecretBytes> open_dek(const SecretBytes& key, std::uint32_t version, ByteView wrapped,
                             ByteView associated_data) {
  SecretBytes dek(kDekBytes);
  if (!gcm_open(key, wrapped.first(kWrapNonceBytes), {wrap_aad(version, associated_data)},
                wrapped.subspan(kWrapNonceBytes, kDekBytes), wrapped.last(kWrapTagBytes),
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
  if (word.empty() || word.front() != 'v') return std::nullopt;
  return parse_version_digits(word.substr(1));
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
  const SecretBytes content = read_secret_file(file, kMaxKekFileBytes, "KEK file");
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

// The folder of `file`, opened and locked (flock, exclusive) until destruction.
UniqueFd lock_folder(const std::filesystem::path& file) {
  const auto folder = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  UniqueFd dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) fail(file, "cannot open its folder: " + errno_text(errno));
  while (::flock(dir.get(), LOCK_EX) != 0) {
    if (errno != EINTR) fail(file, "cannot lock its folder: " + errno_text(errno));
  }
  return dir;
}

// Replaces `file` with `content`: temporary file (0600) in the same folder,
// fsync, rename, fsync of the folder. The temporary file is removed on failure.
void replace_file(const std::filesystem::path& file, const UniqueFd& folder,
                  const SecretText& content) {
  const std::filesystem::path tmp = file.string() + ".tmp-" + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) fail(file, "cannot create " + tmp.string() + ": " + errno_text(errno));
  const auto give_up = [&](const std::string& why) {
    ::unlink(tmp.c_str());
    fail(file, why);
  };
  // Root rotating a key that belongs to the service user leaves it theirs.
  struct stat st {};
  if (::geteuid() == 0 && ::stat(file.c_str(), &st) == 0 &&
      ::fchown(fd.get(), st.st_uid, st.st_gid) != 0) {
    give_up("cannot keep the file's owner: " + errno_text(errno));
  }
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) give_up("cannot write " + tmp.string() + ": " + errno_text(errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) give_up("cannot fsync " + tmp.string() + ": " + errno_text(errno));
  if (::close(fd.release()) != 0)
    give_up("cannot close " + tmp.string() + ": " + errno_text(errno));
  if (::rename(tmp.c_str(), file.c_str()) != 0) give_up("cannot replace it: " + errno_text(errno));
  if (::fsync(folder.get()) != 0) fail(file, "cannot fsync its folder: " + errno_text(errno));
}

// ---------------------------------------------------------------------------
// The Kek.

class KeyringKek final : public Kek {
 public:
  // `file` empty: a memory KEK, refresh() does nothing.
  KeyringKek(Keyring ring, std::filesystem::path file)
      : file_(std::move(file)),
        id_(ring.id),
        ring_(std::make_shared<const Keyring>(std::move(ring))) {}

  const std::string& id() const noexcept override { return id_; }
  std::uint32_t version() const noexcept override { return snapshot()->current(); }

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
    if (wrapped.size() != kWrappedBytes) return Errc::store_corrupt;
    auto ring = snapshot();
    auto it = ring->keys.find(version);
    if (it == ring->keys.end()) {
      // Another process may have rotated: look at the file once more. A version
      // at or below the current one was retired and never comes back (new
      // versions are always the highest + 1), so it is not worth the read.
      if (version <= ring->current() || !reload_quietly()) return Errc::kek_unavailable;
      ring = snapshot();
      it = ring->keys.find(version);
      if (it == ring->keys.end()) return Errc::kek_unavailable;
    }
    return open_dek(it->second, version, wrapped, associated_data);
  }

  void refresh() override {
    if (file_.empty()) return;
    reload();
  }

 private:
  std::shared_ptr<const Keyring> snapshot() const {
    std::lock_guard lock(ring_mu_);
    return ring_;
  }

  // Reads the file and installs its keyring; one reload at a time, so an older
  // read never replaces a newer one. Throws (the Kek is unchanged then).
  void reload() const {
    std::lock_guard reload_lock(reload_mu_);
    install(read_keyring(file_));
  }

  // Throws when `fresh` is another KEK or changes a key this Kek has. Caller
  // holds reload_mu_.
  void install(Keyring fresh) const {
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
    std::lock_guard lock(ring_mu_);
    ring_ = std::move(ring);
  }

  // refresh() without exceptions (the request path); false when it failed.
  bool reload_quietly() const {
    if (file_.empty()) return false;
    try {
      reload();
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  const std::filesystem::path file_;
  const std::string id_;
  mutable std::mutex reload_mu_;                 // one reload at a time
  mutable std::mutex ring_mu_;                   // guards ring_ (the pointer, not the keyring)
  mutable std::shared_ptr<const Keyring> ring_;  // never null, never empty
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
  const UniqueFd folder = lock_folder(file);
  Keyring ring = read_keyring(file);
  const std::uint32_t current = ring.current();
  if (current == UINT32_MAX) fail(file, "no key version left after " + std::to_string(current));
  const std::uint32_t next = current + 1;
  ring.keys.emplace(next, SecretBytes::random(kKekBytes));
  replace_file(file, folder, serialize_keyring(ring));
  return next;
}

void retire_file_kek_version(const std::filesystem::path& file, std::uint32_t version) {
  const UniqueFd folder = lock_folder(file);
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
