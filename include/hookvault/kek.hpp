// Key-encryption key (KEK): wraps and unwraps the per-record data keys (DEKs)
// of the envelope-encrypted store.
//
// A Kek is identified by `id()` (stable, non-secret: e.g. "file:3f9a1c0e") and
// has a current `version()`; both are stored beside every wrapped key so that a
// later rotation (issue 4) can keep old versions readable. `associated_data` is
// bound into the wrap so a wrapped key cannot be moved to another row.
//
// Wrapped-key layout of the file provider (version 1):
//   nonce[12] || AES-256-GCM(kek, dek)[32] || tag[16]      (60 bytes)
// with AAD = "hookvault-kek-wrap-v1" || u32be(version) || associated_data.
//
// Thread-safety: wrap/unwrap are const and safe from many threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

class Kek {
 public:
  virtual ~Kek() = default;
  virtual const std::string& id() const noexcept = 0;
  virtual std::uint32_t version() const noexcept = 0;
  // Wraps under the current version.
  virtual Result<Bytes> wrap(const SecretBytes& dek, ByteView associated_data) const = 0;
  // Errc::kek_unavailable for an unknown version, Errc::store_corrupt when the
  // wrapped key does not open under (version, associated_data).
  virtual Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                                     ByteView associated_data) const = 0;
};

// The file provider: the file holds the 32-byte KEK as base64 text (a trailing
// newline is ignored) or as 32 raw bytes. Throws std::runtime_error naming the
// file when it is missing, unreadable, or not 32 bytes (control plane only).
std::unique_ptr<Kek> open_file_kek(const std::filesystem::path& file);
std::unique_ptr<Kek> make_memory_kek(SecretBytes key, std::string id);  // tests, tooling

}  // namespace hookvault
