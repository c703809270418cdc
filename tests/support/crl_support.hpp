// Certificate revocation lists for the admin listener's tests: made with the
// OpenSSL API at test time (the `openssl ca` command wants a CA database).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace hookvault::testing {

struct CrlOptions {
  std::vector<std::filesystem::path> revoked;  // PEM certificates whose serials it lists
  std::chrono::seconds last_update{-60};       // relative to now
  std::chrono::seconds next_update{86400};     // relative to now
};

// A PEM CRL issued and signed by the CA in `ca_cert` / `ca_key` (PEM files).
// Throws std::runtime_error when a file does not load.
std::string make_crl(const std::filesystem::path& ca_cert, const std::filesystem::path& ca_key,
                     const CrlOptions& options = {});

}  // namespace hookvault::testing
