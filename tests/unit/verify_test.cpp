// Tests for the verify stage: strict JSON parsing, the JSON.stringify-compatible
// serializer, and HMAC-SHA256 signature verification (json.hpp, signature.hpp).

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/json.hpp"
#include "hookvault/secret.hpp"
#include "hookvault/signature.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

// Published Nodit test vector (docs/protocols.md, "Nodit: signature").
constexpr std::string_view kNoditKey =
    "7b8664b96de828e3b3bacf538c51e0ddcfa4fa6c686e738d8c0aeff5c8545ae7";
constexpr std::string_view kNoditSignature =
    "da5eedb3f1fa386e095dc4f66a8f21155d22964633e0e6f844c331296ef1abaa";
// The compact body, exactly these bytes (split only to fit the line width).
constexpr std::string_view kNoditBody =
    R"({"subscriptionId":"1","sequenceNumber":"1","description":"Signature Test",)"
    R"("protocol":"APTOS","network":"TESTNET","subscriptionType":"WEBHOOK",)"
    R"("notification":{"webhookUrl":"YOUR_WEBHOOK_ENDPOINT"},"eventType":"EVENT",)"
    R"("event":{"eventType":"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d5)"
    R"(5de54cb4ebe5d18f::just::RandomIndexEvent","eventAccountAddress":"0x0",)"
    R"("messages":[{"guid":{"creation_number":"0","account_address":"0x0"},)"
    R"("sequence_number":"0","type":"0x13a9f1a109368730f2e355d831ba8fbf5942fb82)"
    R"(321863d55de54cb4ebe5d18f::just::RandomIndexEvent","data":{"price":"44289819"},)"
    R"("event_index":2,"version":"6627015772"}]},"createdAt":"2025-02-18T05:52:53.559342615Z"})";

// The same body as a human would indent it (whitespace only differs).
constexpr std::string_view kNoditBodyPretty =
    "{\n"
    "  \"subscriptionId\": \"1\",\n"
    "  \"sequenceNumber\": \"1\",\n"
    "  \"description\": \"Signature Test\",\n"
    "  \"protocol\": \"APTOS\",\n"
    "  \"network\": \"TESTNET\",\n"
    "  \"subscriptionType\": \"WEBHOOK\",\n"
    "  \"notification\": {\n"
    "    \"webhookUrl\": \"YOUR_WEBHOOK_ENDPOINT\"\n"
    "  },\n"
    "  \"eventType\": \"EVENT\",\n"
    "  \"event\": {\n"
    "    \"eventType\": \"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d55de54cb4ebe5d18f"
    "::just::RandomIndexEvent\",\n"
    "    \"eventAccountAddress\": \"0x0\",\n"
    "    \"messages\": [\n"
    "      {\n"
    "        \"guid\": { \"creation_number\": \"0\", \"account_address\": \"0x0\" },\n"
    "        \"sequence_number\": \"0\",\n"
    "        \"type\": \"0x13a9f1a109368730f2e355d831ba8fbf5942fb82321863d55de54cb4ebe5d18f"
    "::just::RandomIndexEvent\",\n"
    "        \"data\": { \"price\": \"44289819\" },\n"
    "        \"event_index\": 2,\n"
    "        \"version\": \"6627015772\"\n"
    "      }\n"
    "    ]\n"
    "  },\n"
    "  \"createdAt\": \"2025-02-18T05:52:53.559342615Z\"\n"
    "}\n";

Mac mac_of(std::string_view hex) {
  auto mac = parse_signature_header(hex, "");
  EXPECT_TRUE(mac.has_value()) << hex;
  return mac.has_value() ? *mac : Mac{};
}

Mac sign(std::string_view key, std::string_view message) {
  return hmac_sha256(as_bytes(key), as_bytes(message));
}

SignatureVerifier verifier_of(std::initializer_list<std::string_view> keys) {
  std::vector<SecretBytes> secrets;
  for (const auto key : keys) secrets.push_back(SecretBytes::copy_of(key));
  return SignatureVerifier(std::move(secrets));
}

Errc parse_error_of(std::string_view text) {
  auto parsed = parse_strict(text);
  if (parsed.has_value()) return Errc::internal;  // "no error": never expected here
  return to_errc(parsed.error());
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

// ------------------------------------------------------------------ signatures

TEST(NoditVector, HmacOfExactBodyMatchesPublishedSignature) {
  EXPECT_EQ(to_hex(sign(kNoditKey, kNoditBody)), kNoditSignature);
  EXPECT_EQ(testing::hmac_hex(kNoditKey, kNoditBody), kNoditSignature);  // independent path
}

TEST(NoditVector, VerifiesAsRawBody) {
  const auto verifier = verifier_of({kNoditKey});
  auto result = verifier.verify_delivery(std::string(kNoditBody), mac_of(kNoditSignature));
  ASSERT_TRUE(result.has_value()) << result.error().message();
  EXPECT_EQ(result->form, SignedForm::raw);
  EXPECT_EQ(result->body["event"]["messages"][0]["data"]["price"], "44289819");
  EXPECT_EQ(js_stringify(result->body), kNoditBody);
}

TEST(NoditVector, PrettyPrintedBodyVerifiesThroughCompactForm) {
  ASSERT_NE(kNoditBodyPretty, kNoditBody);
  EXPECT_EQ(compact(kNoditBodyPretty), kNoditBody);
  const auto verifier = verifier_of({kNoditKey});
  auto result = verifier.verify_delivery(std::string(kNoditBodyPretty), mac_of(kNoditSignature));
  ASSERT_TRUE(result.has_value()) << result.error().message();
  EXPECT_EQ(result->form, SignedForm::compact);
  EXPECT_EQ(result->body["subscriptionId"], "1");
}

TEST(NoditVector, KeyIsTextNotDecodedHex) {
  // Decoding the 64 hex characters into 32 bytes must not verify.
  Bytes decoded;
  for (std::size_t i = 0; i < kNoditKey.size(); i += 2) {
    decoded.push_back(
        static_cast<std::uint8_t>(std::stoi(std::string(kNoditKey.substr(i, 2)), nullptr, 16)));
  }
  EXPECT_NE(to_hex(hmac_sha256(decoded, as_bytes(kNoditBody))), kNoditSignature);
}

TEST(NoditVector, TamperedBodyFails) {
  const auto verifier = verifier_of({kNoditKey});
  const Mac mac = mac_of(kNoditSignature);
  std::string tampered(kNoditBody);
  tampered.replace(tampered.find("44289819"), 8, "44289818");
  EXPECT_EQ(error_of(verifier.verify_delivery(std::string(tampered), mac)),
            Errc::invalid_signature);

  // A member reordered: same JSON value for a map, different signed bytes.
  std::string reordered(kNoditBody);
  reordered.replace(1, std::string_view(R"("subscriptionId":"1","sequenceNumber":"1")").size(),
                    R"("sequenceNumber":"1","subscriptionId":"1")");
  ASSERT_TRUE(parse_strict(reordered).has_value());
  EXPECT_EQ(error_of(verifier.verify_delivery(std::string(reordered), mac)),
            Errc::invalid_signature);
}

TEST(NoditVector, EveryFlippedMacBitFails) {
  const auto verifier = verifier_of({kNoditKey});
  const Mac good = mac_of(kNoditSignature);
  ASSERT_TRUE(verifier.verify_delivery(std::string(kNoditBody), good).has_value());
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    Mac bad = good;
    bad[bit / 8] ^= static_cast<std::uint8_t>(1U << (bit % 8));
    EXPECT_EQ(error_of(verifier.verify_delivery(std::string(kNoditBody), bad)),
              Errc::invalid_signature)
        << "bit " << bit;
    EXPECT_EQ(error_of(verifier.verify_delivery(std::string(kNoditBodyPretty), bad)),
              Errc::invalid_signature)
        << "bit " << bit;
  }
}

TEST(NoditVector, EveryTruncationFails) {
  const auto verifier = verifier_of({kNoditKey});
  const Mac mac = mac_of(kNoditSignature);
  for (std::size_t n = 0; n < kNoditBody.size(); ++n) {
    EXPECT_EQ(error_of(verifier.verify_delivery(std::string(kNoditBody.substr(0, n)), mac)),
              Errc::invalid_signature)
        << "length " << n;
  }
}

TEST(NoditVector, WrongKeyFails) {
  std::string other(kNoditKey);
  other.back() = '8';
  const auto verifier = verifier_of({other});
  EXPECT_EQ(error_of(verifier.verify_delivery(std::string(kNoditBody), mac_of(kNoditSignature))),
            Errc::invalid_signature);
  EXPECT_EQ(
      error_of(verifier.verify_delivery(std::string(kNoditBodyPretty), mac_of(kNoditSignature))),
      Errc::invalid_signature);
}

TEST(SignatureVerifier, SecretRotationAnySecretMayMatch) {
  const std::string_view body = R"({"eventId":"e1","data":{"n":1}})";
  const auto verifier = verifier_of({"dyn_old_secret", "dyn_new_secret"});
  EXPECT_EQ(verifier.secret_count(), 2U);
  EXPECT_TRUE(
      verifier.verify_delivery(std::string(body), sign("dyn_old_secret", body)).has_value());
  EXPECT_TRUE(
      verifier.verify_delivery(std::string(body), sign("dyn_new_secret", body)).has_value());
  EXPECT_EQ(error_of(verifier.verify_delivery(std::string(body), sign("dyn_other_secret", body))),
            Errc::invalid_signature);

  // Rotation through the compact path too.
  const std::string_view pretty = "{ \"eventId\": \"e1\",\n  \"data\": { \"n\": 1.0 } }";
  auto result = verifier.verify_delivery(std::string(pretty), sign("dyn_new_secret", body));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->form, SignedForm::compact);
}

TEST(SignatureVerifier, NoSecretsNeverMatches) {
  const std::string_view body = R"({"a":1})";
  const SignatureVerifier verifier({});
  EXPECT_FALSE(verifier.matches(as_bytes(body), sign("", body)));
  EXPECT_EQ(error_of(verifier.verify_delivery(std::string(body), sign("", body))),
            Errc::invalid_signature);
}

TEST(SignatureVerifier, MatchesChecksTheExactMessage) {
  const auto verifier = verifier_of({"k"});
  EXPECT_TRUE(verifier.matches(as_bytes("hello"), sign("k", "hello")));
  EXPECT_FALSE(verifier.matches(as_bytes("hello "), sign("k", "hello")));
  EXPECT_FALSE(verifier.matches(as_bytes("hello"), sign("K", "hello")));
  EXPECT_FALSE(verifier.matches(as_bytes("hello"), Mac{}));
}

TEST(SignatureVerifier, PrettyBodyOfTheNoditVectorIsStoredAsTheSignedCompactForm) {
  auto result = verifier_of({kNoditKey})
                    .verify_delivery(std::string(kNoditBodyPretty), mac_of(kNoditSignature));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->form, SignedForm::compact);
  EXPECT_EQ(result->signed_body, kNoditBody);
  EXPECT_EQ(js_stringify(result->body), kNoditBody);
}

TEST(SignatureVerifier, RawMatchOnBadJsonRevealsTheParseError) {
  const auto verifier = verifier_of({"k"});
  for (const std::string_view body : {R"({"a":1)", "not json", R"({"a":1}x)", ""}) {
    EXPECT_EQ(error_of(verifier.verify_delivery(std::string(body), sign("k", body))),
              Errc::malformed_json)
        << body;
  }
  for (const std::string_view body : {R"({"a":1,"a":2})", R"({"x":{"a":1,"a":1}})"}) {
    EXPECT_EQ(error_of(verifier.verify_delivery(std::string(body), sign("k", body))),
              Errc::duplicate_key)
        << body;
  }
}

TEST(SignatureVerifier, UnauthenticatedBadJsonIsOnlyInvalidSignature) {
  const auto verifier = verifier_of({"k"});
  for (const std::string_view body : {R"({"a":1)", R"({"a":1,"a":2})", "", "\xFF"}) {
    EXPECT_EQ(error_of(verifier.verify_delivery(std::string(body), sign("other", body))),
              Errc::invalid_signature)
        << body;
  }
  // Even when the MAC is over what a lenient parser would have produced.
  EXPECT_EQ(
      error_of(verifier.verify_delivery(std::string(R"({"a":1,"a":2})"), sign("k", R"({"a":2})"))),
      Errc::invalid_signature);
}

TEST(SignatureVerifier, RawFormWinsWhenBothWouldMatch) {
  const std::string_view body = R"({"a":[1,2]})";  // already compact
  auto result = verifier_of({"k"}).verify_delivery(std::string(body), sign("k", body));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->form, SignedForm::raw);
}

TEST(ParseSignatureHeader, Accepts) {
  const std::string hex = std::string(kNoditSignature);
  std::string upper = hex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const Mac expected = mac_of(hex);
  EXPECT_EQ(to_hex(expected), hex);

  for (const std::string& value : {hex, upper, " " + hex, hex + " ", "\t " + hex + " \t",
                                   hex.substr(0, 10) + upper.substr(10)}) {
    auto mac = parse_signature_header(value, "");
    ASSERT_TRUE(mac.has_value()) << value;
    EXPECT_EQ(*mac, expected);
  }
  for (const std::string& value : {"sha256=" + hex, "sha256=" + upper, "  sha256=" + hex + "  ",
                                   "SHA256=" + hex, "Sha256=" + upper}) {
    auto mac = parse_signature_header(value, "sha256=");
    ASSERT_TRUE(mac.has_value()) << value;
    EXPECT_EQ(*mac, expected);
  }
}

TEST(ParseSignatureHeader, Rejects) {
  const std::string hex = std::string(kNoditSignature);
  const std::vector<std::string> bad_plain = {
      "",
      " ",
      hex.substr(0, 63),
      hex + "0",
      hex.substr(0, 62),
      hex + hex,
      "g" + hex.substr(1),
      hex.substr(0, 63) + "z",
      hex.substr(0, 32) + " " + hex.substr(33),
      hex.substr(0, 32) + " " + hex.substr(32),
      "0x" + hex.substr(2),
      "sha256=" + hex,
      hex.substr(0, 63) + "\n",
      hex.substr(0, 63) + std::string(1, '\0'),
  };
  for (const auto& value : bad_plain) {
    auto mac = parse_signature_header(value, "");
    EXPECT_FALSE(mac.has_value()) << value;
    if (!mac) {
      EXPECT_EQ(to_errc(mac.error()), Errc::invalid_signature);
    }
  }
  const std::vector<std::string> bad_prefixed = {
      "",
      "sha256=",
      hex,
      "sha1=" + hex,
      "sha256:" + hex,
      "sha256 =" + hex,
      "sha256= " + hex,
      "sha256=" + hex.substr(1),
      "sha256=" + hex + "0",
      "sha256=sha256=" + hex,
      "=" + hex,
  };
  for (const auto& value : bad_prefixed) {
    auto mac = parse_signature_header(value, "sha256=");
    EXPECT_FALSE(mac.has_value()) << value;
    if (!mac) {
      EXPECT_EQ(to_errc(mac.error()), Errc::invalid_signature);
    }
  }
}

TEST(HmacSha256, Rfc4231TestCase2) {
  EXPECT_EQ(to_hex(sign("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(to_hex(sign("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

// ------------------------------------------------------------------ strict parsing

TEST(ParseStrict, AcceptsAndKeepsReceivedOrder) {
  auto parsed = parse_strict(R"( {"z":1,"a":{"y":[true,false,null],"b":"s"},"m":-2.5} )");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->dump(), R"({"z":1,"a":{"y":[true,false,null],"b":"s"},"m":-2.5})");
  EXPECT_EQ((*parsed)["a"]["b"], "s");
  for (const std::string_view text : {"0", "\"\"", "null", "[]", "{}", " \t\r\n1 \t\r\n"}) {
    EXPECT_TRUE(parse_strict(text).has_value()) << text;
  }
}

TEST(ParseStrict, DuplicateKeys) {
  const std::vector<std::string> cases = {
      R"({"a":1,"a":1})",
      R"({"a":1,"b":2,"a":3})",
      R"({"a":{"b":1,"b":2}})",
      R"({"x":[{"ok":1},{"c":1,"c":1}]})",
      R"([[[{"d":{"e":{"f":0,"f":0}}}]]])",
      R"({"a":1,"\u0061":2})",  // same key once unescaped
      R"({"é":1,"\u00e9":2})",
      R"({"":1,"":2})",
      R"({"a":{"a":1},"a":{"a":1}})",
  };
  for (const auto& text : cases) EXPECT_EQ(parse_error_of(text), Errc::duplicate_key) << text;

  // Large objects use the sorted check: duplicate first/last, in the middle, nested.
  auto wide = [](int n, const std::string& extra) {
    std::string s = "{";
    for (int i = 0; i < n; ++i) s += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    return s + extra + "}";
  };
  EXPECT_TRUE(parse_strict(wide(1000, R"("last":0)")).has_value());
  EXPECT_EQ(parse_error_of(wide(1000, R"("k0":0)")), Errc::duplicate_key);
  EXPECT_EQ(parse_error_of(wide(1000, R"("k999":0)")), Errc::duplicate_key);
  EXPECT_EQ(parse_error_of(wide(17, R"("k16":0)")), Errc::duplicate_key);
  EXPECT_EQ(parse_error_of(wide(16, R"("k15":0)")), Errc::duplicate_key);
  EXPECT_EQ(parse_error_of("[" + wide(40, R"("k7":0)") + "]"), Errc::duplicate_key);
  // Same key in different objects is fine.
  EXPECT_TRUE(parse_strict(R"({"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]})").has_value());
}

TEST(ParseStrict, MalformedJson) {
  const std::vector<std::string> cases = {
      "",
      " ",
      R"({"a":1)",                 // truncated
      R"({"a":)",                  //
      R"([1,2)",                   //
      R"("abc)",                   //
      R"({"a":1,})",               // trailing comma
      "[1,2,]",                    //
      R"({"a":1} x)",              // trailing garbage
      R"({"a":1}{})",              //
      "[1] [2]",                   //
      "{'a':1}",                   // single quotes
      "['a']",                     //
      "NaN",                       //
      "[NaN]",                     //
      "Infinity",                  //
      "[-Infinity]",               //
      "01",                        // leading zero
      "+1",                        //
      ".5",                        //
      "1.",                        //
      "1e",                        //
      "0x1F",                      //
      "{a:1}",                     // unquoted key
      "[1]//c",                    // comments
      "/*c*/1",                    //
      R"("\x41")",                 // bad escapes
      R"("\u12")",                 //
      R"("\U0041")",               //
      "\"a\tb\"",                  // raw control character in a string
      std::string("\"a\0b\"", 5),  //
      "\xEF\xBB\xBF{}",            // leading BOM (JSON.parse rejects it too)
      "\xC2\xA0[]",                // NBSP is not JSON whitespace
      "[\v1]",                     // nor is VT
      "tru",                       //
      "nulll",                     //
      std::string("[1]\0", 4),     // NUL after the value
  };
  for (const auto& text : cases) EXPECT_EQ(parse_error_of(text), Errc::malformed_json) << text;
}

// Regression: nlohmann's lexer treats a NUL byte as the end of input, so
// "{}\0<anything>" used to parse as {}.
TEST(ParseStrict, NulByteIsNotEndOfInput) {
  using namespace std::string_literals;
  for (const std::string& text :
       {"{}\0"s, "{\"a\":1}\0{\"b\":2}"s, "\0"s, "[1,\0 2]"s, "\0[]"s, "[1] \0"s}) {
    EXPECT_EQ(parse_error_of(text), Errc::malformed_json) << text.size();
  }
  const std::string signed_body = "{\"a\":1}\0{\"b\":2}"s;
  EXPECT_EQ(error_of(verifier_of({"k"}).verify_delivery(std::string(signed_body),
                                                        sign("k", signed_body))),
            Errc::malformed_json);
}

TEST(ParseStrict, InvalidUtf8) {
  const std::vector<std::string> cases = {
      "\"\x80\"",              // lone continuation byte
      "\"\xC3\"",              // truncated 2-byte sequence
      "\"\xC3(\"",             //
      "\"\xE2\x82\"",          // truncated 3-byte sequence
      "\"\xC0\xAF\"",          // overlong '/'
      "\"\xE0\x80\xAF\"",      // overlong
      "\"\xED\xA0\x80\"",      // UTF-8-encoded surrogate (CESU)
      "\"\xF4\x90\x80\x80\"",  // beyond U+10FFFF
      "\"\xF5\x80\x80\x80\"",  //
      "\"\xFF\"",              //
      "\"\xFE\xFF\"",          //
      "{\"k\xFF\":1}",         // in a key
      "[1,\xC3\xA9]",          // valid UTF-8 outside a string is still not JSON
      "\xFF",                  //
  };
  for (const auto& text : cases) EXPECT_EQ(parse_error_of(text), Errc::malformed_json) << text;
  // Valid multi-byte sequences up to U+10FFFF.
  EXPECT_TRUE(parse_strict("\"\xC3\xA9\xE2\x80\xA8\xEF\xBF\xBF\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\"")
                  .has_value());
}

TEST(ParseStrict, DepthIsBounded) {
  auto nested = [](std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(parse_strict(nested(512)).has_value());
  EXPECT_EQ(parse_error_of(nested(513)), Errc::malformed_json);
  EXPECT_EQ(parse_error_of(nested(100000)), Errc::malformed_json);  // no stack overflow
  EXPECT_EQ(parse_error_of(std::string(100000, '[')), Errc::malformed_json);
  std::string objects;
  for (int i = 0; i < 600; ++i) objects += "{\"a\":";
  objects += "1" + std::string(600, '}');
  EXPECT_EQ(parse_error_of(objects), Errc::malformed_json);
}

TEST(ParseStrict, KnownDifferencesFromJavaScript) {
  // JSON.parse accepts these; nlohmann (and so hookvault) rejects them. A body
  // containing one is refused unless its raw bytes carry the signature.
  EXPECT_EQ(parse_error_of(R"("\ud800")"), Errc::malformed_json);        // lone high surrogate
  EXPECT_EQ(parse_error_of(R"("\udc00")"), Errc::malformed_json);        // lone low surrogate
  EXPECT_EQ(parse_error_of(R"("\ud800\u0041")"), Errc::malformed_json);  // unpaired
  EXPECT_EQ(parse_error_of("1e400"), Errc::malformed_json);              // JS: Infinity -> null
  EXPECT_EQ(parse_error_of("[-1e400]"), Errc::malformed_json);
}

TEST(ParseStrict, NeverThrowsOnArbitraryBytes) {
  std::mt19937 rng(12345);
  const std::string_view alphabet = "{}[],:\"\\ 0123456789.eE+-tfnrulsa\x80\xC3\xA9\xFF\t\n";
  for (int round = 0; round < 20000; ++round) {
    std::string text(rng() % 40, ' ');
    for (auto& c : text) c = alphabet[rng() % alphabet.size()];
    EXPECT_NO_THROW({
      auto parsed = parse_strict(text);
      if (parsed) (void)js_stringify(*parsed);
    }) << text;
  }
}

// ------------------------------------------------------------------ js_stringify

TEST(JsNumber, FormattingTable) {
  struct Case {
    std::string_view text;
    std::string_view expected;
  };
  const Case cases[] = {
      {"0", "0"},
      {"-0", "0"},
      {"-0.0", "0"},
      {"0e10", "0"},
      {"1", "1"},
      {"-1", "-1"},
      {"1.0", "1"},
      {"1.5", "1.5"},
      {"-1.5", "-1.5"},
      {"0.1", "0.1"},
      {"0.30000000000000004", "0.30000000000000004"},
      {"1e21", "1e+21"},
      {"1e20", "100000000000000000000"},
      {"999999999999999999999", "1e+21"},
      {"123456789012345678901", "123456789012345680000"},
      {"123456789012345678901234567890", "1.2345678901234568e+29"},
      {"9007199254740992", "9007199254740992"},
      {"9007199254740993", "9007199254740992"},
      {"9007199254740995", "9007199254740996"},
      {"-9007199254740993", "-9007199254740992"},
      {"9223372036854775807", "9223372036854776000"},
      {"-9223372036854775808", "-9223372036854776000"},
      {"18446744073709551615", "18446744073709552000"},
      {"18446744073709551616", "18446744073709552000"},
      {"1e-6", "0.000001"},
      {"0.000001", "0.000001"},
      {"1e-7", "1e-7"},
      {"1.5e-7", "1.5e-7"},
      {"0.00000123", "0.00000123"},
      {"123e-20", "1.23e-18"},
      {"5e-324", "5e-324"},
      {"2.4703282292062328e-324", "5e-324"},
      {"1e-400", "0"},
      {"1.7976931348623157e308", "1.7976931348623157e+308"},
      {"100", "100"},
      {"1e2", "100"},
      {"1E+2", "100"},
      {"12.34e1", "123.4"},
      {"123.456", "123.456"},
      {"1.2e21", "1.2e+21"},
      {"6.02214076e23", "6.02214076e+23"},
      {"44289819", "44289819"},
  };
  for (const auto& c : cases) EXPECT_EQ(compact(c.text), c.expected) << c.text;
}

TEST(JsNumber, DirectDoubles) {
  EXPECT_EQ(number(0.0), "0");
  EXPECT_EQ(number(-0.0), "0");
  EXPECT_EQ(number(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(number(-2.5e-8), "-2.5e-8");
  EXPECT_EQ(number(1e21), "1e+21");
  EXPECT_EQ(number(123456.0), "123456");
  EXPECT_EQ(number(4.35), "4.35");
  EXPECT_EQ(number(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(number(std::numeric_limits<double>::infinity()), "Infinity");
  EXPECT_EQ(number(-std::numeric_limits<double>::infinity()), "-Infinity");
  EXPECT_EQ(number(std::numeric_limits<double>::denorm_min()), "5e-324");
  EXPECT_EQ(number(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
  std::string out = "x";
  js_number(7, out);  // appends
  EXPECT_EQ(out, "x7");
}

TEST(JsStringify, NonFiniteBuiltByHandIsNull) {
  // parse_strict never yields these; JSON.stringify prints null for them.
  Json arr = Json::array({std::numeric_limits<double>::infinity(), std::nan("")});
  EXPECT_EQ(js_stringify(arr), "[null,null]");
}

TEST(JsStringify, StringEscapingTable) {
  struct Case {
    std::string_view text;
    std::string_view expected;
  };
  const Case cases[] = {
      {R"("")", R"("")"},
      {R"("plain")", R"("plain")"},
      {R"("\"")", R"("\"")"},
      {R"("\\")", R"("\\")"},
      {R"("\/")", R"("/")"},
      {R"("a/b")", R"("a/b")"},
      {R"("\b\f\n\r\t")", R"("\b\f\n\r\t")"},
      {R"("\u0008\u000C\u000a\u000D\u0009")", R"("\b\f\n\r\t")"},
      {R"("\u0000")", R"("\u0000")"},
      {R"("\u0001\u001f\u001F\u000b\u001b")", R"("\u0001\u001f\u001f\u000b\u001b")"},
      {R"("\u007f")", "\"\x7f\""},
      {R"("\u0041")", R"("A")"},
      {R"("\u00e9")", "\"\xC3\xA9\""},
      {R"("\u00E9")", "\"\xC3\xA9\""},
      {"\"\xC3\xA9\"", "\"\xC3\xA9\""},
      {R"("\u2028\u2029")", "\"\xE2\x80\xA8\xE2\x80\xA9\""},
      {R"("\ufeff")", "\"\xEF\xBB\xBF\""},
      {R"("\ud83d\ude00")", "\"\xF0\x9F\x98\x80\""},
      {R"("\uD83D\uDE00")", "\"\xF0\x9F\x98\x80\""},
      {"\"\xF0\x9F\x98\x80\"", "\"\xF0\x9F\x98\x80\""},
      {R"("\u003c/script\u003e")", R"("</script>")"},
      {R"("\u0022\u005c")", R"("\"\\")"},
      {R"({"k\n\u00e9":"v"})", "{\"k\\n\xC3\xA9\":\"v\"}"},
  };
  for (const auto& c : cases) EXPECT_EQ(compact(c.text), c.expected) << c.text;

  // Every byte below 0x20 once, in one string.
  std::string input = "\"";
  for (int c = 0; c < 0x20; ++c) {
    char buf[8];
    static_cast<void>(std::snprintf(buf, sizeof buf, "\\u%04X", c));
    input += buf;
  }
  input += "\"";
  EXPECT_EQ(
      compact(input),
      R"("\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f)"
      R"(\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d)"
      R"(\u001e\u001f")");
}

TEST(JsStringify, ContainersAndWhitespace) {
  EXPECT_EQ(compact(" [ ] "), "[]");
  EXPECT_EQ(compact(" { } "), "{}");
  EXPECT_EQ(compact("[ [ ] , { } , [ { } ] ]"), "[[],{},[{}]]");
  EXPECT_EQ(compact("{\n\t\"b\" : [ 1 , 2.50 ] ,\r\n \"a\" : { \"c\" : null } }"),
            R"({"b":[1,2.5],"a":{"c":null}})");
  EXPECT_EQ(compact(" true "), "true");
  EXPECT_EQ(compact("false"), "false");
  EXPECT_EQ(compact("null"), "null");
}

TEST(JsStringify, ArrayIndexKeysFirstLikeJavaScriptObjects) {
  // Ordinary JS objects list integer-like keys (array indices) first, ascending.
  EXPECT_EQ(compact(R"({"b":1,"a":2,"10":3,"1":4})"), R"({"1":4,"10":3,"b":1,"a":2})");
  EXPECT_EQ(compact(R"({"b":1,"01":2,"-1":3,"1.5":4,"4294967295":5,"4294967294":6,"0":7})"),
            R"({"0":7,"4294967294":6,"b":1,"01":2,"-1":3,"1.5":4,"4294967295":5})");
  EXPECT_EQ(compact(R"({"z":{"2":0,"1":0},"y":0})"), R"({"z":{"1":0,"2":0},"y":0})");
  // The parsed value itself keeps the received order.
  auto parsed = parse_strict(R"({"b":1,"1":2})");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->begin().key(), "b");
}

TEST(JsStringify, AppendsToCallerBuffer) {
  auto parsed = parse_strict(R"({"a":[1,"x"]})");
  ASSERT_TRUE(parsed.has_value());
  std::string out = "prefix:";
  js_stringify(*parsed, out);
  EXPECT_EQ(out, R"(prefix:{"a":[1,"x"]})");
}

// Reference outputs produced by Node's JSON.stringify(JSON.parse(input)); see
// tests/unit/data/make_js_stringify_corpus.js.
TEST(JsStringify, MatchesNodeCorpus) {
  const std::string text =
      testing::read_file(HOOKVAULT_SOURCE_DIR "/tests/unit/data/js_stringify_corpus.json");
  ASSERT_FALSE(text.empty());
  const auto corpus = nlohmann::json::parse(text);
  ASSERT_TRUE(corpus.is_array());
  ASSERT_GT(corpus.size(), 500U);
  std::size_t valid = 0;
  std::size_t invalid = 0;
  for (const auto& entry : corpus) {
    const auto& input = entry.at("input").get_ref<const std::string&>();
    const auto& expected = entry.at("expected");
    auto parsed = parse_strict(input);
    if (expected.is_null()) {
      ++invalid;
      EXPECT_FALSE(parsed.has_value()) << "JSON.parse rejects: " << input;
      continue;
    }
    ++valid;
    ASSERT_TRUE(parsed.has_value()) << input;
    EXPECT_EQ(js_stringify(*parsed), expected.get_ref<const std::string&>()) << input;
  }
  EXPECT_GT(valid, 450U);
  EXPECT_GT(invalid, 50U);
}

}  // namespace
}  // namespace hookvault
