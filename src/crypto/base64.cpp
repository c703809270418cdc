// Base64 (RFC 4648 sections 4 and 5), written by hand on purpose.
//
// OpenSSL's EVP_DecodeBlock is not usable here: it knows only the standard
// alphabet (no base64url), requires a length that is a multiple of four, and
// reports the length *including* the zero bytes that padding stands for (the
// caller must count the '=' itself), while skipping leading/trailing
// whitespace. The EVP_DecodeUpdate streaming API accepts whitespace and line
// breaks. Neither rejects non-canonical trailing bits. The contract of
// base64.hpp needs all of that, and a strict decoder is short.
//
// The table lookups are not constant-time. The inputs are envelope fields
// (ciphertext, IV, tag, wrapped key: not secret) and, at start-up only, the KEK
// file; neither offers an attacker a timing oracle.
#include "hookvault/base64.hpp"

#include <array>
#include <cstdint>

namespace hookvault {
namespace {

constexpr std::uint8_t kInvalid = 0xFF;
constexpr char kStandard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Character -> 6-bit value for both alphabets at once; '=' and everything else
// map to kInvalid.
constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> table{};
  for (auto& v : table) v = kInvalid;
  for (std::uint8_t i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kStandard[i])] = i;
    table[static_cast<unsigned char>(kUrl[i])] = i;
  }
  return table;
}
constexpr std::array<std::uint8_t, 256> kDecode = make_decode_table();

std::string encode(ByteView data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                            std::uint32_t{data[i + 2]};
    out.push_back(alphabet[(v >> 18) & 0x3F]);
    out.push_back(alphabet[(v >> 12) & 0x3F]);
    out.push_back(alphabet[(v >> 6) & 0x3F]);
    out.push_back(alphabet[v & 0x3F]);
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    out.push_back(alphabet[(v >> 18) & 0x3F]);
    out.push_back(alphabet[(v >> 12) & 0x3F]);
    if (pad) out.append("==");
  } else if (rest == 2) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(alphabet[(v >> 18) & 0x3F]);
    out.push_back(alphabet[(v >> 12) & 0x3F]);
    out.push_back(alphabet[(v >> 6) & 0x3F]);
    if (pad) out.push_back('=');
  }
  return out;
}

}  // namespace

Result<Bytes> base64_decode_lenient(std::string_view text) {
  // Padding: none, or exactly what completes the last quantum of four.
  std::size_t n = text.size();
  std::size_t pad = 0;
  while (pad < 2 && n > 0 && text[n - 1] == '=') {
    --n;
    ++pad;
  }
  if (pad > 0 && (n + pad) % 4 != 0) return Errc::bad_encoding;
  const std::size_t rest = n % 4;
  if (rest == 1) return Errc::bad_encoding;  // 6 bits cannot end a byte

  Bytes out;
  out.reserve(n / 4 * 3 + (rest == 0 ? 0 : rest - 1));  // exact: never reallocates
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const std::uint8_t a = kDecode[static_cast<unsigned char>(text[i])];
    const std::uint8_t b = kDecode[static_cast<unsigned char>(text[i + 1])];
    const std::uint8_t c = kDecode[static_cast<unsigned char>(text[i + 2])];
    const std::uint8_t d = kDecode[static_cast<unsigned char>(text[i + 3])];
    if (((a | b | c | d) & 0xC0) != 0) return Errc::bad_encoding;  // incl. '=' before the end
    const std::uint32_t v = (std::uint32_t{a} << 18) | (std::uint32_t{b} << 12) |
                            (std::uint32_t{c} << 6) | std::uint32_t{d};
    out.push_back(static_cast<std::uint8_t>(v >> 16));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
  }
  if (rest == 0) return out;

  const std::uint8_t a = kDecode[static_cast<unsigned char>(text[i])];
  const std::uint8_t b = kDecode[static_cast<unsigned char>(text[i + 1])];
  if (a == kInvalid || b == kInvalid) return Errc::bad_encoding;
  if (rest == 2) {
    if ((b & 0x0F) != 0) return Errc::bad_encoding;  // non-canonical trailing bits
    out.push_back(static_cast<std::uint8_t>((a << 2) | (b >> 4)));
    return out;
  }
  const std::uint8_t c = kDecode[static_cast<unsigned char>(text[i + 2])];
  if (c == kInvalid || (c & 0x03) != 0) return Errc::bad_encoding;
  out.push_back(static_cast<std::uint8_t>((a << 2) | (b >> 4)));
  out.push_back(static_cast<std::uint8_t>(((b & 0x0F) << 4) | (c >> 2)));
  return out;
}

std::string base64url_encode(ByteView data) { return encode(data, kUrl, false); }

std::string base64_encode(ByteView data) { return encode(data, kStandard, true); }

}  // namespace hookvault
