// Test-only helpers: temporary folders, keys generated at run time, and an
// encryptor that produces Dynamic's hybrid envelope exactly like the vendor's
// (RSA-OAEP-SHA256 + AES-256-GCM, 16-byte IV, base64url without padding).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hookvault/json.hpp"

namespace hookvault::testing {

// A fresh folder under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct RsaPair {
  std::string private_pem;  // PKCS#8
  std::string public_pem;   // SubjectPublicKeyInfo
};
RsaPair generate_rsa(int bits);
// A cached pair per size, generated once per test process (RSA-4096 is slow).
const RsaPair& shared_rsa(int bits);

struct HybridParts {
  std::string iv, ct, tag, ek;  // raw bytes
};
// Encrypts like the vendor and returns the envelope JSON object.
Json hybrid_encrypt(const std::string& public_pem, std::string_view plaintext,
                    std::optional<std::string> kid = std::nullopt,
                    HybridParts* raw_parts = nullptr);

std::string hmac_hex(std::string_view key, std::string_view message);

// The value of sample `name` (metric name and labels exactly as rendered, e.g.
// `x_bucket{le="0.1"}`) in Metrics::render() output `rendered`; -1 if absent.
double metric_sample(const std::string& rendered, const std::string& name);

// How many times `needle` occurs in `text` (overlapping occurrences counted).
std::size_t count_of(std::string_view text, std::string_view needle);

// Polls `condition` every 20 ms until it holds or `limit` has passed; then
// its last answer. Only a failing test waits out the limit.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds limit = std::chrono::seconds(30));

struct TlsFiles {
  std::filesystem::path cert;  // PEM certificate (its own trust anchor)
  std::filesystem::path key;   // PEM PKCS#8 private key, mode 0600
};

// Writes a fresh self-signed ECDSA P-256 certificate (SAN IP:127.0.0.1 and
// DNS:localhost, serverAuth, valid from an hour ago for 30 days) and its key as
// `dir`/cert.pem and `dir`/key.pem. Throws std::runtime_error on failure.
TlsFiles write_self_signed_cert(const std::filesystem::path& dir);

// Runs `command` in a shell: its exit status (-1 when it did not exit) and
// what it printed on stdout and stderr.
std::pair<int, std::string> run_shell(const std::string& command);

void write_file(const std::filesystem::path& p, std::string_view content, int mode = 0600);
std::string read_file(const std::filesystem::path& p);

// Each non-empty line of `text` parsed as JSON (the CLI's JSON-lines output).
std::vector<Json> json_lines(std::string_view text);

}  // namespace hookvault::testing
