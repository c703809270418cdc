// Dynamic's hybrid envelope (RSA-OAEP + AES-256-GCM), decryption side.
//
// Wire format (docs/protocols.md, "Dynamic: hybrid envelope"), a JSON object of strings:
//   alg  "HYBRID-RSA-AES-256" (allow-list; anything else -> Errc::unknown_alg)
//   ek   RSA-OAEP(SHA-256, MGF1-SHA-256, empty label) of a random 32-byte AES key;
//        exactly modulus-size bytes
//   iv   16 bytes (GCM with a non-default IV length)
//   ct   AES-256-GCM ciphertext, no tag, no AAD
//   tag  16 bytes
//   kid  optional key identifier naming the RSA key
// Every binary field is base64url without padding; standard base64 and padding
// are accepted too.
//
// Key selection: when the envelope's kid names a loaded key, only that key is
// tried; otherwise every loaded key is tried in configuration order.
//
// Failures are one of: unknown_alg, bad_envelope, bad_encoding, bad_length,
// no_matching_key, auth_failed. None reveals key material or plaintext.
//
// Thread-safety: a HybridDecryptor is immutable after load and may be used from
// many threads at once (each call uses its own OpenSSL contexts).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

inline constexpr std::string_view kHybridAlg = "HYBRID-RSA-AES-256";

struct HybridEnvelope {
  std::string alg;
  std::string iv;  // encoded, as received
  std::string ct;
  std::string tag;
  std::string ek;
  std::optional<std::string> kid;
};

// Reads the envelope object; Errc::bad_envelope when it is not an object or a
// required member is absent or not a string. Unknown members are ignored.
Result<HybridEnvelope> parse_hybrid_envelope(const nlohmann::ordered_json& value);

struct RsaKeySpec {
  std::string kid;  // may be empty: the key is then only tried in turn
  std::filesystem::path file;
};

class HybridDecryptor {
 public:
  // Loads PEM private keys (PKCS#8 or traditional). Throws std::runtime_error
  // naming the file on an unreadable or non-RSA key (control plane only).
  static HybridDecryptor load(const std::vector<RsaKeySpec>& keys,
                              std::vector<std::string> accepted_algs = {std::string(kHybridAlg)});
  // From PEM text already in memory (tests, reload).
  static HybridDecryptor from_pem(const std::vector<std::pair<std::string, SecretBytes>>& kid_pem,
                                  std::vector<std::string> accepted_algs = {
                                      std::string(kHybridAlg)});

  HybridDecryptor(HybridDecryptor&&) noexcept;
  HybridDecryptor& operator=(HybridDecryptor&&) noexcept;
  ~HybridDecryptor();

  Result<SecretBytes> decrypt(const HybridEnvelope& envelope) const;

  std::size_t key_count() const noexcept;

 private:
  struct Impl;
  explicit HybridDecryptor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hookvault
