// Reads a small secret file (a key) straight into wiped memory.
//
// Contract: read_secret_file() opens `file` read-only (O_CLOEXEC), requires a
// regular file of at most `max_bytes` bytes and reads it with read(2) into
// SecretBytes, so no stdio buffer keeps a copy. On any failure it throws
// std::runtime_error with the message
//   <kind> "<file>": <reason>
// where <reason> is strerror-style text, "not a regular file", or
// `too_large_reason`. The message names the file, never its content.
//
// Private to hookvault's crypto stage: include as "crypto/secret_file.hpp".
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

#include "hookvault/secret.hpp"

namespace hookvault {

SecretBytes read_secret_file(const std::filesystem::path& file, std::size_t max_bytes,
                             std::string_view kind, std::string_view too_large_reason);

}  // namespace hookvault
