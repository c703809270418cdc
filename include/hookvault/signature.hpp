// HMAC-SHA256 webhook signature verification (Dynamic and Nodit).
//
// A provider sends a lowercase hex HMAC-SHA256 of the body in a header
// (Dynamic: `x-dynamic-signature-256: sha256=<hex>`, Nodit: `x-signature: <hex>`).
// The key is the secret's UTF-8 text as shown by the provider, never decoded.
//
// verify_delivery() follows docs/protocols.md ("Signatures: raw body, then
// compact form"): check the raw body against every
// configured secret (rotation: any may match); if none matches and the body is
// JSON, check the JS-compatible compact form (json.hpp) against every secret.
// MACs are compared in constant time, length first; the expected value never
// leaves this component. One uniform failure: Errc::invalid_signature.
//
// What a signature authenticates is the bytes it covers, so that is what the
// caller gets to store and act on: the raw body when the raw form verified,
// else the compact form itself (VerifiedDelivery::signed_body, parsed into
// `body`), never the unsigned text that happened to compact to it. And since
// many texts compact to one form, a body whose text means anything other
// than its compact form (json.hpp, CheckedJson: a number JavaScript would
// round, such as 2^60 + 1 for the 2^60 that was signed) is refused with
// Errc::signed_form_mismatch: one MAC never admits two meanings.
//
// Thread-safety: a SignatureVerifier is immutable and safe from many threads.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/hmac.hpp"
#include "hookvault/json.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

// Parses "<prefix><64 hex>" (hex case-insensitive, surrounding spaces ignored).
// Errc::invalid_signature when absent or malformed.
Result<Mac> parse_signature_header(std::string_view value, std::string_view prefix);

// Which form of the body carried the valid signature.
enum class SignedForm { raw, compact };

struct VerifiedDelivery {
  SignedForm form;
  Json body;                // signed_body, strictly parsed
  std::string signed_body;  // the bytes the MAC covers: the raw body or its compact form
};

class SignatureVerifier {
 public:
  explicit SignatureVerifier(std::vector<SecretBytes> secrets);

  // True when HMAC(secret, message) equals `mac` for any configured secret.
  bool matches(ByteView message, const Mac& mac) const;

  // Raw first, then compact. On success the signed bytes are returned, and
  // strictly parsed:
  //   Errc::invalid_signature  - neither form matches (body parse errors are not
  //                              revealed to unauthenticated senders)
  //   Errc::malformed_json / Errc::duplicate_key - signature valid on the raw
  //                              bytes but the body is not strict JSON
  //   Errc::signed_form_mismatch - signature valid on the compact form only,
  //                              and the body means something else (see above)
  Result<VerifiedDelivery> verify_delivery(std::string body, const Mac& mac) const;

  std::size_t secret_count() const noexcept { return secrets_.size(); }

 private:
  std::vector<SecretBytes> secrets_;
};

}  // namespace hookvault
