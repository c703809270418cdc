// Private to the config stage: reading small files that may hold secret
// material (webhook secrets, private keys) straight into SecretBytes, and the
// permission test `check-config` applies to them.
//
// Thread-safety: stateless.
#pragma once

#include <cstddef>
#include <filesystem>

#include "hookvault/secret.hpp"

namespace hookvault::config_internal {

// Upper bounds: a webhook secret is tens of bytes, an RSA-4096 PEM about 3 KiB.
inline constexpr std::size_t kMaxSecretBytes = std::size_t{64} * 1024;
inline constexpr std::size_t kMaxPemBytes = std::size_t{1024} * 1024;

// Reads the whole regular file into a SecretBytes buffer (no intermediate
// std::string). Throws std::runtime_error "cannot read PATH: reason" (or "PATH
// is not a regular file", "PATH is larger than N bytes"); never includes content.
SecretBytes read_private_file(const std::filesystem::path& file, std::size_t max_bytes);

// Removes every trailing '\r' and '\n'.
void strip_trailing_newlines(SecretBytes& bytes);

// True when the file exists and its mode grants read access to group or others.
// False when it cannot be stat()ed (the read reports that problem).
bool readable_by_group_or_others(const std::filesystem::path& file);

}  // namespace hookvault::config_internal
