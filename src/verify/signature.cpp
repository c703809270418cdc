// HMAC-SHA256 webhook signatures (signature.hpp).

#include "hookvault/signature.hpp"
#include "hookvault/bytes.hpp"

#include <openssl/crypto.h>

#include <string>
#include <utility>

namespace hookvault {
namespace {

template <class T>
Result<T> fail(Errc e) {
  return {boost::system::in_place_error, make_error_code(e)};
}

}  // namespace

Result<Mac> parse_signature_header(std::string_view value, std::string_view prefix) {
  value = trim_ows(value);
  // The scheme label is matched case-insensitively ("sha256=" or "SHA256=").
  if (value.size() != prefix.size() + 2 * Mac().size() ||
      !iequals_ascii(value.substr(0, prefix.size()), prefix)) {
    return fail<Mac>(Errc::invalid_signature);
  }
  value.remove_prefix(prefix.size());
  Mac mac{};
  for (std::size_t i = 0; i < mac.size(); ++i) {
    const int hi = hex_digit(value[2 * i]);
    const int lo = hex_digit(value[2 * i + 1]);
    if (hi < 0 || lo < 0) return fail<Mac>(Errc::invalid_signature);
    mac[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return mac;
}

SignatureVerifier::SignatureVerifier(std::vector<SecretBytes> secrets)
    : secrets_(std::move(secrets)) {}

bool SignatureVerifier::matches(ByteView message, const Mac& mac) const {
  Mac expected{};
  bool found = false;
  for (const auto& secret : secrets_) {
    if (hmac_sha256(secret.reveal(), {message}, expected) &&
        CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) == 0) {
      found = true;
      break;
    }
  }
  OPENSSL_cleanse(expected.data(), expected.size());
  return found;
}

Result<VerifiedDelivery> SignatureVerifier::verify_delivery(std::string body,
                                                            const Mac& mac) const {
  if (matches(as_bytes(body), mac)) {
    // Authenticated sender: it may learn why its body was refused.
    auto parsed = parse_strict(body);
    if (!parsed) return fail<VerifiedDelivery>(to_errc(parsed.error()));
    return VerifiedDelivery{SignedForm::raw, std::move(*parsed), std::move(body)};
  }
  auto parsed = parse_strict_checked(body);
  if (!parsed) return fail<VerifiedDelivery>(Errc::invalid_signature);
  std::string compact;
  compact.reserve(body.size());
  js_stringify(parsed->value, compact);
  // When the body already is its compact form, the raw check has answered.
  if (compact == body || !matches(as_bytes(compact), mac)) {
    return fail<VerifiedDelivery>(Errc::invalid_signature);
  }
  // The MAC covers `compact`. The body may be stood in for it only when it
  // says the same; otherwise two texts would pass under one signature.
  if (!parsed->compact_faithful) return fail<VerifiedDelivery>(Errc::signed_form_mismatch);
  // What is kept and acted on is the signed text, parsed afresh (the body's
  // parse may differ in form: 1.0 against 1, member order).
  auto signed_value = parse_strict(compact);
  if (!signed_value) return fail<VerifiedDelivery>(Errc::internal);  // js_stringify's output
  return VerifiedDelivery{SignedForm::compact, std::move(*signed_value), std::move(compact)};
}

}  // namespace hookvault
