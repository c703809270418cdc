// Fuzzes the signature header parser and SignatureVerifier::verify_delivery.
// The input is both a header value and a body. Properties:
//   - parse_signature_header() (Dynamic's "sha256=" form and Nodit's bare
//     form) fails only with invalid_signature, and a MAC it parsed, printed
//     back as lowercase hex, parses to the same MAC;
//   - with the body's correct MAC, verify_delivery() accepts the raw form and
//     returns the body itself as the signed bytes, or refuses the body as not
//     strict JSON; never invalid_signature;
//   - with the MAC of its JS-compact form, a strict JSON body is accepted,
//     returning exactly that compact form (and its parse) as what was
//     signed, unless the body means something else than that form
//     (parse_strict_checked), which is signed_form_mismatch;
//   - with any other MAC it is invalid_signature.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/json.hpp"
#include "hookvault/signature.hpp"

using namespace hookvault;
using fuzz::check;

namespace {

constexpr std::string_view kSecret = "dyn_fuzz_secret";

const SignatureVerifier& verifier() {
  static const SignatureVerifier v = [] {
    std::vector<SecretBytes> secrets;
    secrets.push_back(SecretBytes::copy_of(std::string_view("an_older_secret")));
    secrets.push_back(SecretBytes::copy_of(kSecret));
    return SignatureVerifier(std::move(secrets));
  }();
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::as_text(data, size);
  for (const std::string_view prefix : {std::string_view("sha256="), std::string_view()}) {
    const auto mac = parse_signature_header(in, prefix);
    if (!mac) {
      check(mac.error() == Errc::invalid_signature, "header parser: only invalid_signature");
      continue;
    }
    const std::string again = std::string(prefix) + to_hex(ByteView(mac->data(), mac->size()));
    const auto back = parse_signature_header(again, prefix);
    check(back && *back == *mac, "header parser: a parsed MAC printed back parses the same");
  }

  const Mac good = hmac_sha256(as_bytes(kSecret), as_bytes(in));
  const auto ok = verifier().verify_delivery(std::string(in), good);
  if (ok) {
    check(ok->form == SignedForm::raw, "the raw MAC verifies as the raw form");
    check(ok->signed_body == in, "the raw form's signed bytes are the body");
  } else {
    check(ok.error() == Errc::malformed_json || ok.error() == Errc::duplicate_key,
          "the raw MAC is never an invalid signature");
  }

  Mac bad = good;
  bad[size % bad.size()] ^= 0x01;
  const auto parsed = parse_strict_checked(in);
  if (parsed) {
    const std::string compact = js_stringify(parsed->value);
    const Mac compact_mac = hmac_sha256(as_bytes(kSecret), as_bytes(compact));
    const auto by_compact = verifier().verify_delivery(std::string(in), compact_mac);
    if (parsed->compact_faithful || compact == in) {
      check(by_compact.has_value(), "the JS-compact form's MAC verifies strict JSON");
      if (by_compact) {
        check(by_compact->signed_body == compact, "what is returned is what was signed");
        check(js_stringify(by_compact->body) == compact, "the returned parse is the signed one");
      }
    } else {
      check(!by_compact && by_compact.error() == Errc::signed_form_mismatch,
            "a body that means otherwise than its signed compact form is refused");
    }
    if (compact_mac == bad) return 0;  // the flipped MAC is the compact one
  }
  const auto no = verifier().verify_delivery(std::string(in), bad);
  check(!no && no.error() == Errc::invalid_signature, "any other MAC is refused");
  return 0;
}
