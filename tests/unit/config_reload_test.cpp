// restart_required() (config.hpp): what a SIGHUP cannot apply is named, key by
// key; what it applies (and a key written out with its default) is not.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hookvault/config.hpp"

namespace hookvault {
namespace {

constexpr const char* kFile = "/etc/hookvault/hookvault.toml";

constexpr const char* kBase = R"(
[server]
listen = "0.0.0.0:8443"
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
[storage]
path = "data/hookvault.db"
[kek]
file = "keys/kek.key"
[admin]
listen = "127.0.0.1:9443"
tls_cert = "tls/admin-cert.pem"
tls_key = "tls/admin-key.pem"
client_ca = "tls/admin-ca.pem"
[[admin.clients]]
subject_cn = "signer"
roles = ["materials:read"]
[log]
level = "info"
[[sources]]
name = "dynamic"
provider = "dynamic"
path = "/webhooks/dynamic"
secret_files = ["secrets/dynamic_webhook_secret"]
rsa_private_keys = ["keys/dynamic_rsa.pem"]
[[sources]]
name = "nodit"
provider = "nodit"
path = "/webhooks/nodit"
secret_files = ["secrets/nodit_signing_key"]
[sources.history]
api_base_url = "https://web3.nodit.io/v1"
api_key_file = "secrets/nodit_api_key"
chain = "ethereum"
network = "mainnet"
)";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::vector<std::string> restart_for(const std::string& fresh) {
  return restart_required(parse_config(kBase, kFile), parse_config(fresh, kFile));
}

TEST(ConfigReload, WhatAReloadAppliesNeedsNoRestart) {
  EXPECT_TRUE(restart_for(kBase).empty());
  std::string fresh = kBase;
  fresh = replaced(fresh, "tls_cert = \"tls/cert.pem\"", "tls_cert = \"tls/cert2.pem\"");
  fresh = replaced(fresh, "client_ca = \"tls/admin-ca.pem\"",
                   "client_ca = \"tls/ca2.pem\"\nclient_crl = \"tls/ca2.crl\"\nrate_limit = 5");
  fresh = replaced(fresh, "subject_cn = \"signer\"", "subject_cn = \"signer-2\"");
  fresh = replaced(fresh, "level = \"info\"", "level = \"warn\"");
  fresh = replaced(fresh, "file = \"keys/kek.key\"",
                   "file = \"keys/kek.key\"\nrefresh_interval = \"5s\"");
  fresh = replaced(fresh, "secret_files = [\"secrets/nodit_signing_key\"]",
                   "secret_files = [\"secrets/nodit_signing_key\", \"secrets/next\"]\n"
                   "allow_from = [\"192.0.2.0/24\"]");
  fresh = replaced(fresh, "listen = \"0.0.0.0:8443\"",
                   "listen = \"0.0.0.0:8443\"\ntls_min_version = \"1.3\"\nthreads = 0");
  EXPECT_TRUE(restart_for(fresh).empty()) << testing::PrintToString(restart_for(fresh));
}

TEST(ConfigReload, EachSettingTakenAtStartIsNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"listen = \"0.0.0.0:8443\"", "listen = \"0.0.0.0:8444\""},
      {"tls_key = \"tls/key.pem\"", "tls_key = \"tls/key.pem\"\nmax_body_bytes = 10"},
      {"tls_key = \"tls/key.pem\"",
       "tls_key = \"tls/key.pem\"\ntrusted_proxies = [\"10.0.0.0/8\"]"},
      {"tls_key = \"tls/key.pem\"", "tls_key = \"tls/key.pem\"\nmax_connections = 10"},
      {"path = \"data/hookvault.db\"", "path = \"data/other.db\""},
      {"file = \"keys/kek.key\"", "file = \"keys/other.key\""},
      {"listen = \"127.0.0.1:9443\"", "listen = \"127.0.0.1:9444\""},
      {"level = \"info\"", "level = \"info\"\nformat = \"text\""},
      {"chain = \"ethereum\"", "chain = \"polygon\""},
  };
  const std::vector<std::string> keys = {"server.listen",
                                         "server.max_body_bytes",
                                         "server.trusted_proxies",
                                         "server.max_connections",
                                         "storage.path",
                                         "kek.file",
                                         "admin.listen",
                                         "log.format",
                                         "sources[\"nodit\"].history"};
  ASSERT_EQ(cases.size(), keys.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(restart_for(replaced(kBase, cases[i].first, cases[i].second)),
              std::vector<std::string>{keys[i]});
  }
  // Several at once, all named; a history table removed is a change too.
  std::string many = replaced(kBase, "listen = \"0.0.0.0:8443\"", "listen = \"0.0.0.0:1\"");
  many = replaced(many, "[admin]", "[admin]\nenabled = false");
  many = many.substr(0, many.find("[sources.history]"));
  EXPECT_EQ(restart_for(many), (std::vector<std::string>{"server.listen", "admin.enabled",
                                                         "sources[\"nodit\"].history"}));
}

}  // namespace
}  // namespace hookvault
