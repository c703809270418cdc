// Private to the config stage: limits and helpers for the small files that
// may hold secret material (webhook secrets, PINs), and the permission test
// `check-config` applies to them. The files themselves are read by the one
// secret-file reader, read_secret_file() in crypto/secret_file.hpp (which
// also holds kMaxPemBytes).
//
// Thread-safety: stateless.
#pragma once

#include <cstddef>
#include <filesystem>

#include "hookvault/secret.hpp"

namespace hookvault::config_internal {

// Upper bound for a secret file: a webhook secret or a PIN is tens of bytes.
inline constexpr std::size_t kMaxSecretBytes = std::size_t{64} * 1024;

// Removes every trailing '\r' and '\n'.
void strip_trailing_newlines(SecretBytes& bytes);

// True when the file exists and grants read access to group or others: its mode, or,
// when it has a POSIX access ACL, an entry for the owning group, a named group, another
// user than this process's, or others. False when it cannot be stat()ed (the read
// reports that problem).
bool readable_by_group_or_others(const std::filesystem::path& file);

}  // namespace hookvault::config_internal
