// The KEK wrap format (kek_wrap.hpp).
#include "crypto/kek_wrap.hpp"

#include <algorithm>

namespace hookvault {

Bytes wrap_aad(std::uint32_t version, ByteView associated_data) {
  Bytes aad(kWrapLabel.size() + 4 + associated_data.size());
  auto out = std::copy(kWrapLabel.begin(), kWrapLabel.end(), aad.begin());
  for (int shift = 24; shift >= 0; shift -= 8) {
    *out++ = static_cast<std::uint8_t>(version >> shift);
  }
  std::copy(associated_data.begin(), associated_data.end(), out);
  return aad;
}

std::optional<std::uint32_t> parse_version_digits(std::string_view digits) {
  if (digits.empty() || digits.size() > 10 || digits.front() == '0') return std::nullopt;
  std::uint64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n > UINT32_MAX) return std::nullopt;
  return static_cast<std::uint32_t>(n);
}

}  // namespace hookvault
