// Base64 codecs for envelope fields.
//
// Dynamic encodes envelope fields as base64url without padding; docs/protocols.md ("Dynamic: hybrid
// envelope") asks us to accept standard base64 and padding too. `base64_decode_lenient` accepts
// either alphabet (not mixed within one string is NOT required: '+'/'-' and '/'/'_' are each
// accepted), with or without '=' padding; it rejects whitespace, any other character, impossible
// lengths (len % 4 == 1), padding anywhere but the end, and non-zero trailing bits (non-canonical
// encodings).
//
// Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"

namespace hookvault {

// Errc::bad_encoding on any malformed input.
Result<Bytes> base64_decode_lenient(std::string_view text);

std::string base64url_encode(ByteView data);  // no padding
std::string base64_encode(ByteView data);     // standard alphabet, padded

}  // namespace hookvault
