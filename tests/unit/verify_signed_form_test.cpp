// One signature, one meaning (signature.hpp, json.hpp): when only the
// JSON.stringify form of a body carries the MAC, what is returned is that
// form, and a body whose text means anything else is refused, whatever its
// compact form; parse_strict_checked() decides what "means the same" is.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/json.hpp"
#include "hookvault/secret.hpp"
#include "hookvault/signature.hpp"

namespace hookvault {
namespace {

Mac sign(std::string_view key, std::string_view message) {
  return hmac_sha256(as_bytes(key), as_bytes(message));
}

SignatureVerifier verifier_of(std::initializer_list<std::string_view> keys) {
  std::vector<SecretBytes> secrets;
  for (const auto key : keys) secrets.push_back(SecretBytes::copy_of(key));
  return SignatureVerifier(std::move(secrets));
}

Errc error_of(const Result<VerifiedDelivery>& result) {
  return result.has_value() ? Errc::internal : to_errc(result.error());
}

// js_stringify(parse_strict(text)), or "<error name>".
std::string compact(std::string_view text) {
  auto parsed = parse_strict(text);
  if (!parsed) return "<" + std::string(error_name(to_errc(parsed.error()))) + ">";
  return js_stringify(*parsed);
}

std::string number(double x) {
  std::string out;
  js_number(x, out);
  return out;
}

TEST(SignatureVerifier, DynamicHeaderOverCompactForm) {
  // Dynamic's samples sign JSON.stringify(JSON.parse(body)).
  const std::string_view body =
      "{\n  \"eventName\": \"ping\",\n  \"amount\": 1e-7,\n  \"big\": 9007199254740992,\n"
      "  \"text\": \"caf\\u00e9 \\/ \\u2028\"\n}";
  const std::string signed_text =
      "{\"eventName\":\"ping\",\"amount\":1e-7,\"big\":9007199254740992,\"text\":\"caf\xC3\xA9 / "
      "\xE2\x80\xA8\"}";
  ASSERT_EQ(compact(body), signed_text);
  const std::string header = "sha256=" + to_hex(sign("dyn_secret", signed_text));
  auto mac = parse_signature_header(header, "sha256=");
  ASSERT_TRUE(mac.has_value());
  auto result = verifier_of({"dyn_secret"}).verify_delivery(std::string(body), *mac);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->form, SignedForm::compact);
  // What the caller stores and acts on is what was signed.
  EXPECT_EQ(result->signed_body, signed_text);
  EXPECT_EQ(js_stringify(result->body), signed_text);
}

TEST(SignatureVerifier, RawFormReturnsTheBodyItself) {
  const std::string body = "{\"a\": [1, 2.50, 123456789012345678901234567890]}";
  auto result = verifier_of({"k"}).verify_delivery(body, sign("k", body));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->form, SignedForm::raw);
  EXPECT_EQ(result->signed_body, body);
}

// The attack: a MAC over the compact form JavaScript prints for 2^60
// ("1152921504606847000") was accepted for 2^60 + 1, 2^60 + 2, 2^60 + 100,
// each parsed (and so keyed and stored) as a different message; a MAC over
// 0.1 admitted 0.1000000000000000055511151231257827, stored as sent.
TEST(SignatureVerifier, OneCompactSignatureNeverAdmitsABodyThatMeansSomethingElse) {
  const auto verifier = verifier_of({"nodit_key"});
  struct Case {
    std::string signed_text;  // the compact form the MAC covers
    std::vector<std::string> other_meanings;
    std::vector<std::string> same_meaning;  // texts that differ but say the same
  };
  const std::vector<Case> cases = {
      {R"({"subscriptionId":"9","sequenceNumber":1152921504606847000})",
       {R"({"subscriptionId":"9","sequenceNumber":1152921504606846977})",
        R"({"subscriptionId":"9","sequenceNumber":1152921504606846978})",
        R"({"subscriptionId":"9","sequenceNumber":1152921504606847076})",
        R"({"subscriptionId":"9","sequenceNumber":1152921504606846976})",  // 2^60 itself
        R"({"subscriptionId":"9","sequenceNumber":1152921504606847000.5})",
        R"({"subscriptionId":"9", "sequenceNumber":1152921504606847001})"},
       {R"({"subscriptionId":"9", "sequenceNumber":1152921504606847000})",
        R"({"subscriptionId":"9","sequenceNumber":1.152921504606847e18})",
        R"({"subscriptionId":"9","sequenceNumber":1152921504606847000.000})",
        R"({"subscriptionId":"9","sequenceNumber":11529215046068470000E-1})"}},
      {R"({"amount":0.1})",
       {R"({"amount":0.1000000000000000055511151231257827})", R"({"amount":0.10000000000000001})",
        R"({"amount":0.09999999999999999999})"},
       {R"({"amount":0.10})", R"({"amount":1e-1})", R"({ "amount" : 0.1 })",
        R"({"amount":100e-3})"}},
      {R"({"v":0})",
       {R"({"v":1e-400})", R"({"v":-1e-400})"},
       {R"({"v":-0})", R"({"v":0.000})", R"({"v":-0.0e7})", R"({"v": 0})"}},
      {R"({"v":1.2345678901234568e+29})",
       {R"({"v":123456789012345678901234567890})"},
       {R"({"v":123456789012345680000000000000})", R"({"v":1.2345678901234568E29})"}},
      {R"({"v":-9223372036854776000})",
       {R"({"v":-9223372036854775807})", R"({"v":-9223372036854775808})"},
       {R"({"v":-9223372036854776000 })"}},
      {R"({"v":[9007199254740992]})",
       {R"({"v":[9007199254740993]})"},
       {R"({"v":[ 9007199254740992 ]})"}},
  };
  for (const auto& c : cases) {
    ASSERT_EQ(compact(c.signed_text), c.signed_text) << "a signed compact form";
    const Mac mac = sign("nodit_key", c.signed_text);
    for (const auto& body : c.other_meanings) {
      ASSERT_EQ(compact(body), c.signed_text) << body;  // the MAC does verify the compact form
      EXPECT_EQ(error_of(verifier.verify_delivery(body, mac)), Errc::signed_form_mismatch) << body;
    }
    for (const auto& body : c.same_meaning) {
      ASSERT_EQ(compact(body), c.signed_text) << body;
      auto result = verifier.verify_delivery(body, mac);
      ASSERT_TRUE(result.has_value()) << body;
      EXPECT_EQ(result->form, SignedForm::compact) << body;
      EXPECT_EQ(result->signed_body, c.signed_text) << body;
    }
  }
}

TEST(SignatureVerifier, BodiesThatMeanOtherwiseAreAcceptedWhenTheirRawBytesAreSigned) {
  // Nodit's integers beyond 2^53 are legal when the raw body carries the MAC.
  const std::string body =
      R"({"subscriptionId":"9","sequenceNumber":"3","event":{"value":123456789012345678901,)"
      R"("n":1152921504606846977,"f":0.1000000000000000055511151231257827}})";
  auto result = verifier_of({"k"}).verify_delivery(body, sign("k", body));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->form, SignedForm::raw);
  EXPECT_EQ(result->signed_body, body);
  EXPECT_EQ(result->body["event"]["n"].get<std::uint64_t>(), 1152921504606846977U);
}

TEST(SignatureVerifier, AMismatchIsRevealedOnlyToASenderWithAValidMac) {
  const std::string body = R"({"n":1152921504606846977})";
  EXPECT_EQ(error_of(verifier_of({"k"}).verify_delivery(
                body, sign("other", "{\"n\":1152921504606847000}"))),
            Errc::invalid_signature);
  EXPECT_EQ(http_status(Errc::signed_form_mismatch), 400U);
  EXPECT_EQ(error_name(Errc::signed_form_mismatch), "signed_form_mismatch");
}

TEST(ParseStrictChecked, SameValueAsParseStrict) {
  for (const std::string_view text :
       {R"({"a":[1,2.5,"x\u00e9",null,true],"b":{"1":0}})", "1e400", R"({"a":1,"a":2})", "[1,"}) {
    auto plain = parse_strict(text);
    auto checked = parse_strict_checked(text);
    ASSERT_EQ(plain.has_value(), checked.has_value()) << text;
    if (plain) {
      EXPECT_EQ(checked->value, *plain) << text;
    } else {
      EXPECT_EQ(checked.error(), plain.error()) << text;
    }
  }
}

TEST(ParseStrictChecked, NumbersJavaScriptPrintsWithTheirValueAreFaithful) {
  for (const std::string_view text : {"0",
                                      "-0",
                                      "-0.0",
                                      "0e-999999999999999999999",
                                      "1",
                                      "1.0",
                                      "1.50",
                                      "1e2",
                                      "1E+2",
                                      "12.34e1",
                                      "0.1",
                                      "0.10",
                                      "1e-1",
                                      "100e-3",
                                      "0.000001",
                                      "1e-7",
                                      "1.5e-7",
                                      "1e21",
                                      "1000000000000000000000",
                                      "9007199254740992",
                                      "-9007199254740992",
                                      "9007199254740994",  // even: an exact double, printed as is
                                      "1152921504606847000",
                                      "-9223372036854776000",
                                      "18446744073709552000",
                                      "5e-324",
                                      "1.7976931348623157e308",
                                      "44289819",
                                      "[1,{\"a\":2.5},[0.3]]",
                                      R"({"s":"\u00e9\/\n\ud83d\ude00\u0000"})"}) {
    auto checked = parse_strict_checked(text);
    ASSERT_TRUE(checked.has_value()) << text;
    EXPECT_TRUE(checked->compact_faithful) << text << " -> " << js_stringify(checked->value);
  }
}

TEST(ParseStrictChecked, NumbersJavaScriptRoundsAreNot) {
  for (const std::string_view text :
       {"9007199254740993", "-9007199254740993", "9007199254740995", "1152921504606846976",
        "1152921504606846977", "9223372036854775807", "-9223372036854775808",
        "18446744073709551615", "18446744073709551616", "123456789012345678901",
        "0.1000000000000000055511151231257827", "0.10000000000000001", "1e-400", "-1e-400",
        "2.4703282292062328e-324", "1.00000000000000000001", "[1,2,9007199254740993]",
        R"({"a":{"b":[0.30000000000000004441]}})"}) {
    auto checked = parse_strict_checked(text);
    ASSERT_TRUE(checked.has_value()) << text;
    EXPECT_FALSE(checked->compact_faithful) << text << " -> " << js_stringify(checked->value);
  }
}

TEST(ParseStrictChecked, TheCompactFormIsAlwaysFaithfulToItself) {
  std::mt19937_64 rng(2024);
  for (int i = 0; i < 20000; ++i) {
    double x = 0;
    const std::uint64_t bits = rng();
    std::memcpy(&x, &bits, sizeof x);
    if (!std::isfinite(x)) continue;
    const std::string text = number(x);
    auto checked = parse_strict_checked(text);
    ASSERT_TRUE(checked.has_value()) << text;
    EXPECT_TRUE(checked->compact_faithful) << text;
    EXPECT_EQ(js_stringify(checked->value), text);
  }
}

}  // namespace
}  // namespace hookvault
