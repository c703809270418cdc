// Byte-buffer vocabulary and the small text codecs shared by every stage
// (src/core/bytes.cpp). Non-secret bytes only: secrets live in SecretBytes
// (secret.hpp).
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hookvault {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string(ByteView b) noexcept {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Lowercase hex encoding.
std::string to_hex(ByteView data);
// The value of one hex digit ('0'-'9', 'a'-'f', 'A'-'F'); -1 for any other char.
int hex_digit(char c) noexcept;
// Two hex digits (either case) per byte; nullopt for an odd length or a
// character that is not a hex digit. from_hex(to_hex(b)) == b.
std::optional<Bytes> from_hex(std::string_view hex);

// ASCII case-insensitive equality (header values, media types, URL schemes);
// locale-independent, bytes >= 0x80 compared as they are.
bool iequals_ascii(std::string_view a, std::string_view b) noexcept;

// `s` without leading and trailing HTTP optional whitespace (SP and HTAB).
std::string_view trim_ows(std::string_view s) noexcept;

// The whole of `s` as a base-10 int64: digits with an optional leading '-',
// nothing else (no '+', no spaces); nullopt when empty, malformed or out of range.
std::optional<std::int64_t> parse_int(std::string_view s) noexcept;

}  // namespace hookvault
