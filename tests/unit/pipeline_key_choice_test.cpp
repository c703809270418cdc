// What key choice costs a delegation: RSA private-key operations counted by
// the decryptor (HybridDecryptor::rsa_operations()), with two RSA keys
// configured and the previous one listed first, as during a rotation.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookvault/hybrid.hpp"
#include "hookvault/pipeline.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

struct Case {
  const char* name;
  const char* previous_kid;  // as configured
  const char* current_kid;
  std::optional<std::string> api_key_kid;  // the API key envelope's kid (the share's has none)
};

class DelegationKeyChoice : public ::testing::TestWithParam<Case> {};

Source dynamic_source(const Case& c, const testing::RsaPair& previous,
                      const testing::RsaPair& current) {
  std::vector<std::pair<std::string, SecretBytes>> kid_pem;
  kid_pem.emplace_back(c.previous_kid, SecretBytes::copy_of(previous.private_pem));
  kid_pem.emplace_back(c.current_kid, SecretBytes::copy_of(current.private_pem));
  SourceConfig config;
  config.name = "dynamic";
  config.provider = Provider::dynamic;
  return Source{config, SignatureVerifier({}), HybridDecryptor::from_pem(kid_pem)};
}

Json delegation_body(const testing::RsaPair& current, const Case& c, int n) {
  Json data;
  data["walletId"] = "wallet-" + std::to_string(n);
  data["userId"] = "user";
  data["encryptedDelegatedShare"] =
      testing::hybrid_encrypt(current.public_pem, "share-" + std::to_string(n));
  data["encryptedWalletApiKey"] =
      testing::hybrid_encrypt(current.public_pem, "api-key-" + std::to_string(n), c.api_key_kid);
  Json body;
  body["eventName"] = "wallet.delegation.created";
  body["data"] = std::move(data);
  return body;
}

TEST_P(DelegationKeyChoice, TwoRsaOperationsPerDelegationWithThePreviousKeyListedFirst) {
  const Case& c = GetParam();
  const auto& previous = testing::shared_rsa(2048);
  static const testing::RsaPair current = testing::generate_rsa(2048);
  const Source source = dynamic_source(c, previous, current);
  const HybridDecryptor& dec = *source.decryptor;

  // The first delegation finds the current key behind the previous one: the
  // share costs two operations; the API key one (the share's key, or its kid).
  auto first = decrypt_delegation(source, delegation_body(current, c, 0));
  ASSERT_TRUE(first) << first.error().describe();
  EXPECT_TRUE(first->share.equals(as_bytes(std::string_view("share-0"))));
  EXPECT_TRUE(first->api_key.equals(as_bytes(std::string_view("api-key-0"))));
  EXPECT_EQ(dec.rsa_operations(), 3U);

  // Every later one: two, whatever the order of the configured keys.
  for (int n = 1; n <= 10; ++n) {
    const auto before = dec.rsa_operations();
    auto out = decrypt_delegation(source, delegation_body(current, c, n));
    ASSERT_TRUE(out) << out.error().describe();
    EXPECT_TRUE(out->api_key.equals(as_bytes("api-key-" + std::to_string(n))));
    EXPECT_EQ(dec.rsa_operations() - before, 2U) << "delegation " << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Rotation, DelegationKeyChoice,
                         ::testing::Values(
                             // Keys configured without kids; the API key's kid names none of them.
                             Case{"NoConfiguredKids", "", "", std::string("dynamic_rsa_2")},
                             // Neither envelope carries a kid.
                             Case{"NoKidInEitherEnvelope", "", "", std::nullopt},
                             // The API key's kid names the current key.
                             Case{"ApiKeyKidNamesTheCurrentKey", "old", "new", std::string("new")}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace hookvault
