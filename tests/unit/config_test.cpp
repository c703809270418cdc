#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "crl_support.hpp"
#include "hookvault/config.hpp"
#include "hookvault/process.hpp"
#include "softhsm.hpp"
#include "test_support.hpp"

namespace hookvault {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::TempDir;
using testing::write_file;

constexpr const char* kFile = "/etc/hookvault/hookvault.toml";

// Every key, none at its default.
constexpr const char* kFull = R"(
[server]
listen = "[::]:8443"
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
tls_min_version = "1.3"
threads = 4
max_body_bytes = 2048
max_header_bytes = 8192
max_header_count = 32
header_timeout = "5s"
body_timeout = "500ms"
idle_timeout = "2m"
shutdown_grace = "1h"
worker_queue = 16

[storage]
path = "data/hookvault.db"
retention = "30d"
retention_interval = "10m"

[kek]
provider = "file"
file = "/var/lib/hookvault/kek.key"

[admin]
listen = "127.0.0.1:9443"
tls_cert = "tls/admin-cert.pem"
tls_key = "tls/admin-key.pem"
client_ca = "tls/admin-ca.pem"
rate_limit = 5
rate_burst = 20
[[admin.clients]]
subject_cn = "signer"
roles = ["materials:read"]
[[admin.clients]]
subject_cn = "ops"
roles = ["events:read", "metrics:read", "admin"]

[log]
format = "text"
level = "debug"

[[sources]]
name = "dynamic"
provider = "dynamic"
path = "/webhooks/dynamic"
secret_files = ["secrets/dynamic_webhook_secret", "/run/secrets/dyn_old"]
secret_envs = ["DYN_SECRET"]
secret_credentials = ["dyn_cred"]
rsa_private_keys = ["keys/dynamic_rsa.pem", { file = "keys/old.pem", kid = "dynamic_rsa_old" }]
accepted_algs = ["HYBRID-RSA-AES-256", "HYBRID-RSA-AES-256-LEGACY"]
max_event_age = "7d"

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

constexpr const char* kMinimal = R"(
[server]
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
[storage]
path = "data/hookvault.db"
[kek]
file = "keys/kek.key"
[[sources]]
name = "dynamic"
provider = "dynamic"
path = "/webhooks/dynamic"
secret_files = ["secrets/dynamic_webhook_secret"]
rsa_private_keys = ["keys/dynamic_rsa.pem"]
)";

// The example of the configuration contract, verbatim.
constexpr const char* kDesignExample = R"(
[server]
listen = "0.0.0.0:8443"         # host:port; "[::]:8443" for IPv6
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
tls_min_version = "1.2"          # "1.2" or "1.3"
threads = 0                      # 0 = number of cores
max_body_bytes = 1048576         # larger bodies get 413

[storage]
path = "data/hookvault.db"       # SQLite, the embedded default

[kek]                            # key-encryption key for the envelope encryption
provider = "file"                # "file" or "pkcs11"
file = "keys/kek.key"

[admin]                          # internal listener for signers and operators: mutual TLS
listen = "127.0.0.1:9443"
tls_cert = "tls/admin-cert.pem"
tls_key = "tls/admin-key.pem"
client_ca = "tls/admin-ca.pem"
[[admin.clients]]
subject_cn = "signer"
roles = ["materials:read"]       # also "events:read", "metrics:read", "admin"

[log]
format = "json"                  # "json" or "text"
level = "info"

[[sources]]
name = "dynamic"                 # unique; recorded with every event
provider = "dynamic"
path = "/webhooks/dynamic"
secret_files = ["secrets/dynamic_webhook_secret"]    # several: rotation, any may match
rsa_private_keys = ["keys/dynamic_rsa.pem"]          # chosen by envelope kid when it names one, else each is tried
max_event_age = "0s"             # reject events whose own timestamp is older; 0s = no limit (the ledger stops replays)

[[sources]]
name = "nodit"
provider = "nodit"
path = "/webhooks/nodit"
secret_files = ["secrets/nodit_signing_key"]
[sources.history]                # optional: gap detection and backfill through Get Webhook History
api_base_url = "https://web3.nodit.io/v1"
api_key_file = "secrets/nodit_api_key"
chain = "ethereum"
network = "mainnet"
)";

// `text` with the first line containing `needle` removed (the line must exist).
std::string without_line(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  if (at == std::string::npos) return text;
  const auto begin = text.rfind('\n', at);
  const auto end = text.find('\n', at);
  return text.substr(0, begin == std::string::npos ? 0 : begin) +
         (end == std::string::npos ? "" : text.substr(end));
}

// `text` with the first occurrence of `from` replaced by `to`.
std::string replaced(const std::string& text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return text;
  std::string out = text;
  out.replace(at, from.size(), to);
  return out;
}

// The ConfigError message of parsing `text`, or "" when it parsed.
std::string config_error(const std::string& text) {
  try {
    parse_config(text, kFile);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& text, const std::vector<std::string>& needles) {
  const std::string message = config_error(text);
  ASSERT_FALSE(message.empty()) << "parsed, expected an error mentioning " << needles.front();
  EXPECT_NE(message.find(kFile), std::string::npos) << message;
  for (const auto& needle : needles) {
    EXPECT_NE(message.find(needle), std::string::npos)
        << "missing \"" << needle << "\" in " << message;
  }
}

bool contains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const auto& line : lines) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// ---------------------------------------------------------------------------
// Shape

TEST(ConfigParse, FullConfigParsesEveryValue) {
  const Config c = parse_config(kFull, kFile);
  EXPECT_EQ(c.file, fs::path(kFile));
  EXPECT_EQ(c.server.listen.host, "::");
  EXPECT_EQ(c.server.listen.port, 8443);
  EXPECT_EQ(c.server.tls_cert, fs::path("/etc/hookvault/tls/cert.pem"));
  EXPECT_EQ(c.server.tls_key, fs::path("/etc/hookvault/tls/key.pem"));
  EXPECT_EQ(c.server.tls_min_version, "1.3");
  EXPECT_EQ(c.server.threads, 4U);
  EXPECT_EQ(c.server.max_body_bytes, 2048U);
  EXPECT_EQ(c.server.max_header_bytes, 8192U);
  EXPECT_EQ(c.server.max_header_count, 32U);
  EXPECT_EQ(c.server.header_timeout, milliseconds(5000));
  EXPECT_EQ(c.server.body_timeout, milliseconds(500));
  EXPECT_EQ(c.server.idle_timeout, milliseconds(120000));
  EXPECT_EQ(c.server.shutdown_grace, milliseconds(3600000));
  EXPECT_EQ(c.server.worker_queue, 16U);

  EXPECT_EQ(c.storage.path, fs::path("/etc/hookvault/data/hookvault.db"));
  EXPECT_EQ(c.kek.provider, "file");
  EXPECT_EQ(c.kek.file, fs::path("/var/lib/hookvault/kek.key"));

  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.listen.host, "127.0.0.1");
  EXPECT_EQ(c.admin.listen.port, 9443);
  EXPECT_EQ(c.admin.tls_cert, fs::path("/etc/hookvault/tls/admin-cert.pem"));
  EXPECT_EQ(c.admin.tls_key, fs::path("/etc/hookvault/tls/admin-key.pem"));
  EXPECT_EQ(c.admin.client_ca, fs::path("/etc/hookvault/tls/admin-ca.pem"));
  ASSERT_EQ(c.admin.clients.size(), 2U);
  EXPECT_EQ(c.admin.clients[0].subject_cn, "signer");
  EXPECT_EQ(c.admin.clients[0].roles, std::vector<std::string>{"materials:read"});
  EXPECT_EQ(c.admin.clients[1].subject_cn, "ops");
  EXPECT_EQ(c.admin.clients[1].roles,
            (std::vector<std::string>{"events:read", "metrics:read", "admin"}));

  EXPECT_EQ(c.log.format, "text");
  EXPECT_EQ(c.log.level, "debug");

  ASSERT_EQ(c.sources.size(), 2U);
  const SourceConfig& dyn = c.sources[0];
  EXPECT_EQ(dyn.name, "dynamic");
  EXPECT_EQ(dyn.provider, Provider::dynamic);
  EXPECT_EQ(dyn.path, "/webhooks/dynamic");
  ASSERT_EQ(dyn.secrets.size(), 4U);
  EXPECT_EQ(dyn.secrets[0].kind, SecretSource::Kind::file);
  EXPECT_EQ(dyn.secrets[0].name, "secrets/dynamic_webhook_secret");
  EXPECT_EQ(dyn.secrets[0].path, fs::path("/etc/hookvault/secrets/dynamic_webhook_secret"));
  EXPECT_EQ(dyn.secrets[0].key, "sources[0].secret_files[0]");
  EXPECT_EQ(dyn.secrets[1].path, fs::path("/run/secrets/dyn_old"));
  EXPECT_EQ(dyn.secrets[1].key, "sources[0].secret_files[1]");
  EXPECT_EQ(dyn.secrets[2].kind, SecretSource::Kind::env);
  EXPECT_EQ(dyn.secrets[2].name, "DYN_SECRET");
  EXPECT_EQ(dyn.secrets[2].key, "sources[0].secret_envs[0]");
  EXPECT_EQ(dyn.secrets[3].kind, SecretSource::Kind::credential);
  EXPECT_EQ(dyn.secrets[3].name, "dyn_cred");
  EXPECT_EQ(dyn.secrets[3].key, "sources[0].secret_credentials[0]");
  ASSERT_EQ(dyn.rsa_private_keys.size(), 2U);
  EXPECT_EQ(dyn.rsa_private_keys[0].file, fs::path("/etc/hookvault/keys/dynamic_rsa.pem"));
  EXPECT_EQ(dyn.rsa_private_keys[0].kid, "");
  EXPECT_EQ(dyn.rsa_private_keys[1].file, fs::path("/etc/hookvault/keys/old.pem"));
  EXPECT_EQ(dyn.rsa_private_keys[1].kid, "dynamic_rsa_old");
  EXPECT_EQ(dyn.accepted_algs,
            (std::vector<std::string>{"HYBRID-RSA-AES-256", "HYBRID-RSA-AES-256-LEGACY"}));
  EXPECT_EQ(dyn.max_event_age, seconds(7 * 24 * 3600));
  EXPECT_FALSE(dyn.history.has_value());

  const SourceConfig& nodit = c.sources[1];
  EXPECT_EQ(nodit.name, "nodit");
  EXPECT_EQ(nodit.provider, Provider::nodit);
  EXPECT_EQ(nodit.path, "/webhooks/nodit");
  ASSERT_EQ(nodit.secrets.size(), 1U);
  EXPECT_EQ(nodit.secrets[0].path, fs::path("/etc/hookvault/secrets/nodit_signing_key"));
  EXPECT_TRUE(nodit.rsa_private_keys.empty());
  ASSERT_TRUE(nodit.history.has_value());
  EXPECT_EQ(nodit.history->api_base_url, "https://web3.nodit.io/v1");
  EXPECT_EQ(nodit.history->api_key.kind, SecretSource::Kind::file);
  EXPECT_EQ(nodit.history->api_key.path, fs::path("/etc/hookvault/secrets/nodit_api_key"));
  EXPECT_EQ(nodit.history->api_key.key, "sources[1].history.api_key_file");
  EXPECT_EQ(nodit.history->chain, "ethereum");
  EXPECT_EQ(nodit.history->network, "mainnet");
}

// The backfiller asks the history API about each configured subscription: an
// id the API cannot answer for (not digits) is an operator's mistake, refused.
TEST(ConfigParse, HistorySubscriptionsAreNoditIds) {
  const auto with = [](const std::string& list) {
    return replaced(kFull, "api_key_file = \"secrets/nodit_api_key\"\n",
                    "api_key_file = \"secrets/nodit_api_key\"\nsubscriptions = " + list + "\n");
  };
  EXPECT_EQ(parse_config(with(R"(["7", "31", "0"])"), kFile).sources[1].history->subscriptions,
            (std::vector<std::string>{"7", "31", "0"}));
  for (const char* bad : {R"(["abc"])", R"(["7", "ha-sub-1"])", R"(["007"])", R"([" 7"])"}) {
    expect_error(with(bad), {"sources[1].history.subscriptions", "subscription id"});
  }
  expect_error(with("[\"" + std::string(65, '1') + "\"]"), {"sources[1].history.subscriptions"});
  expect_error(with(R"([""])"), {"sources[1].history.subscriptions"});  // (strings(): not empty)
}

TEST(ConfigParse, StorageRetention) {
  const Config c = parse_config(kFull, kFile);
  EXPECT_EQ(c.storage.retention, milliseconds(30LL * 24 * 3600 * 1000));
  EXPECT_EQ(c.storage.retention_interval, milliseconds(600000));
  const Config m = parse_config(kMinimal, kFile);
  EXPECT_EQ(m.storage.retention, milliseconds(0));
  expect_error(replaced(kFull, "retention = \"30d\"", "retention = \"soon\""),
               {"storage.retention"});
  expect_error(replaced(kFull, "retention_interval = \"10m\"", "retention_interval = \"0s\""),
               {"storage.retention_interval"});
}

TEST(ConfigParse, AdminRateLimitAndListenerSettings) {
  const Config c = parse_config(kFull, kFile);
  EXPECT_EQ(c.admin.rate_limit, 5U);
  EXPECT_EQ(c.admin.rate_burst, 20U);
  const ServerConfig l = admin_listener_config(c);
  EXPECT_EQ(l.listen.host, "127.0.0.1");
  EXPECT_EQ(l.listen.port, 9443);
  EXPECT_EQ(l.tls_cert, fs::path("/etc/hookvault/tls/admin-cert.pem"));
  EXPECT_EQ(l.tls_min_version, c.server.tls_min_version);
  EXPECT_EQ(l.threads, 1U);
  expect_error(replaced(kFull, "rate_burst = 20", "rate_burst = 0"), {"admin.rate_burst"});
  expect_error(replaced(kFull, "rate_limit = 5", "rate_limit = -1"), {"admin.rate_limit"});
}

TEST(ConfigParse, MinimalConfigGetsDefaults) {
  const Config c = parse_config(kMinimal, kFile);
  EXPECT_EQ(c.server.listen.host, "0.0.0.0");
  EXPECT_EQ(c.server.listen.port, 8443);
  EXPECT_EQ(c.server.tls_min_version, "1.2");
  EXPECT_EQ(c.server.threads, 0U);
  EXPECT_EQ(c.server.max_body_bytes, 1048576U);
  EXPECT_EQ(c.server.max_header_bytes, 16384U);
  EXPECT_EQ(c.server.max_header_count, 64U);
  EXPECT_EQ(c.server.header_timeout, milliseconds(10000));
  EXPECT_EQ(c.server.body_timeout, milliseconds(30000));
  EXPECT_EQ(c.server.idle_timeout, milliseconds(60000));
  EXPECT_EQ(c.server.shutdown_grace, milliseconds(10000));
  EXPECT_EQ(c.server.worker_queue, 1024U);
  EXPECT_EQ(c.kek.provider, "file");
  EXPECT_FALSE(c.admin.enabled);
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.log.level, "info");
  ASSERT_EQ(c.sources.size(), 1U);
  EXPECT_EQ(c.sources[0].accepted_algs, std::vector<std::string>{std::string(kHybridAlg)});
  EXPECT_EQ(c.sources[0].max_event_age, seconds(0));
}

TEST(ConfigParse, KekRefreshIntervalAndAdminClientCrl) {
  const Config defaults = parse_config(kMinimal, kFile);
  EXPECT_EQ(defaults.kek.refresh_interval, seconds(30));
  EXPECT_TRUE(defaults.admin.client_crl.empty());
  std::string text = replaced(kFull, "file = \"/var/lib/hookvault/kek.key\"",
                              "file = \"/var/lib/hookvault/kek.key\"\nrefresh_interval = \"5s\"");
  text = replaced(text, "[admin]\n", "[admin]\nclient_crl = \"tls/admin-ca.crl\"\n");
  const Config c = parse_config(text, kFile);
  EXPECT_EQ(c.kek.refresh_interval, seconds(5));
  EXPECT_EQ(c.admin.client_crl, fs::path("/etc/hookvault/tls/admin-ca.crl"));
  EXPECT_THROW(parse_config(replaced(text, "\"5s\"", "\"0s\""), kFile), ConfigError);
}

TEST(ConfigParse, MaxConnections) {
  const Config m = parse_config(kMinimal, kFile);
  EXPECT_EQ(m.server.max_connections, 4096U);
  EXPECT_EQ(m.admin.max_connections, 256U);
  EXPECT_EQ(files_needed(m), 4096U + kReservedFiles);  // no admin listener
  const Config full = parse_config(kFull, kFile);
  EXPECT_EQ(files_needed(full), 4096U + 256U + kReservedFiles);

  const std::string text =
      replaced(replaced(kFull, "worker_queue = 16\n", "worker_queue = 16\nmax_connections = 50\n"),
               "rate_burst = 20\n", "rate_burst = 20\nmax_connections = 8\n");
  const Config c = parse_config(text, kFile);
  EXPECT_EQ(c.server.max_connections, 50U);
  EXPECT_EQ(c.admin.max_connections, 8U);
  EXPECT_EQ(admin_listener_config(c).max_connections, 8U);
  EXPECT_EQ(files_needed(c), 50U + 8U + kReservedFiles);
  EXPECT_EQ(parse_config(replaced(text, "max_connections = 50", "max_connections = 1000000"), kFile)
                .server.max_connections,
            1000000U);

  for (const char* bad : {"0", "-1", "1000001"}) {
    expect_error(replaced(text, "max_connections = 50", std::string("max_connections = ") + bad),
                 {"server.max_connections", "must be from 1 to 1000000"});
    expect_error(replaced(text, "max_connections = 8", std::string("max_connections = ") + bad),
                 {"admin.max_connections", "must be from 1 to 1000000"});
  }
  expect_error(replaced(text, "max_connections = 50", "max_connections = \"many\""),
               {"server.max_connections", "must be an integer, not a string"});
  expect_error(replaced(text, "max_connections = 50", "max_connections = 50.5"),
               {"server.max_connections", "must be an integer, not a float"});
  expect_error(replaced(text, "max_connections = 50", "max_connections = true"),
               {"server.max_connections", "must be an integer, not a boolean"});
  expect_error(replaced(text, "max_connections = 8", "max_connections = [8]"),
               {"admin.max_connections", "must be an integer, not an array"});
}

TEST(ConfigParse, DesignExampleParses) {
  const Config c = parse_config(kDesignExample, kFile);
  EXPECT_EQ(c.server.listen.port, 8443);
  EXPECT_TRUE(c.admin.enabled);
  ASSERT_EQ(c.sources.size(), 2U);
  EXPECT_TRUE(c.sources[1].history.has_value());
}

TEST(ConfigParse, RepositoryExampleFileLoads) {
  const Config c = load_config(fs::path(HOOKVAULT_SOURCE_DIR) / "config/hookvault.example.toml");
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.sources.size(), 2U);
  EXPECT_EQ(c.server.tls_cert,
            fs::path(HOOKVAULT_SOURCE_DIR) / "config/tls/cert.pem");  // relative to the file
  // The example states the defaults.
  const Config defaults = parse_config(kMinimal, kFile);
  EXPECT_EQ(c.server.max_connections, defaults.server.max_connections);
  EXPECT_EQ(c.admin.max_connections, defaults.admin.max_connections);
}

TEST(ConfigParse, AdminCanBeDisabled) {
  const Config c = parse_config(replaced(kFull, "[admin]\n", "[admin]\nenabled = false\n"), kFile);
  EXPECT_FALSE(c.admin.enabled);
  // A disabled admin table need not be complete.
  const Config d = parse_config(std::string(kMinimal) + "[admin]\nenabled = false\n", kFile);
  EXPECT_FALSE(d.admin.enabled);
}

// [kek] of kMinimal for the pkcs11 provider, with `pin` as its PIN line.
std::string with_pkcs11_kek(const std::string& pin = "pin_file = \"secrets/hsm_pin\"") {
  return replaced(kMinimal, "file = \"keys/kek.key\"",
                  "provider = \"pkcs11\"\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n"
                  "token_label = \"hookvault\"\nkey_label = \"hookvault-kek\"\n" +
                      pin);
}

TEST(ConfigParse, Pkcs11ProviderNamesModuleTokenKeyAndPin) {
  const Config c = parse_config(with_pkcs11_kek(), kFile);
  EXPECT_EQ(c.kek.provider, "pkcs11");
  EXPECT_EQ(c.kek.module, fs::path("/usr/lib/softhsm/libsofthsm2.so"));
  EXPECT_EQ(c.kek.token_label, "hookvault");
  EXPECT_EQ(c.kek.key_label, "hookvault-kek");
  EXPECT_EQ(c.kek.pin.kind, SecretSource::Kind::file);
  EXPECT_EQ(c.kek.pin.path, fs::path("/etc/hookvault/secrets/hsm_pin"));  // beside the config
  EXPECT_EQ(c.kek.pin.key, "kek.pin_file");
  EXPECT_TRUE(c.kek.file.empty());

  const Config e = parse_config(with_pkcs11_kek("pin_env = \"HSM_PIN\""), kFile);
  EXPECT_EQ(e.kek.pin.kind, SecretSource::Kind::env);
  EXPECT_EQ(e.kek.pin.name, "HSM_PIN");
  EXPECT_EQ(e.kek.pin.key, "kek.pin_env");

  const Config r = parse_config(with_pkcs11_kek("pin_credential = \"hsm_pin\""), kFile);
  EXPECT_EQ(r.kek.pin.kind, SecretSource::Kind::credential);
  EXPECT_EQ(r.kek.pin.name, "hsm_pin");

  const Config rel = parse_config(
      replaced(with_pkcs11_kek(), "/usr/lib/softhsm/libsofthsm2.so", "lib/vendor-pkcs11.so"),
      kFile);
  EXPECT_EQ(rel.kek.module, fs::path("/etc/hookvault/lib/vendor-pkcs11.so"));
}

TEST(ConfigParse, Pkcs11ProviderMistakesNameTheKey) {
  const std::string full = with_pkcs11_kek();
  expect_error(without_line(full, "module ="), {"kek.module", "is required"});
  expect_error(without_line(full, "token_label ="), {"kek.token_label", "is required"});
  expect_error(without_line(full, "key_label ="), {"kek.key_label", "is required"});
  expect_error(without_line(full, "pin_file ="),
               {"kek.pin_file", "exactly one of pin_file, pin_env, pin_credential"});
  expect_error(with_pkcs11_kek("pin_file = \"a\"\npin_env = \"HSM_PIN\""),
               {"kek.pin_file", "only one of pin_file, pin_env, pin_credential"});
  expect_error(with_pkcs11_kek("pin_env = \"not a name\""),
               {"kek.pin_env", "not a valid environment variable name"});
  expect_error(with_pkcs11_kek("pin_credential = \"../x\""),
               {"kek.pin_credential", "not a valid credential name"});
  expect_error(replaced(full, "token_label = \"hookvault\"",
                        "token_label = \"" + std::string(33, 't') + "\""),
               {"kek.token_label", "at most 32 bytes"});
  expect_error(with_pkcs11_kek("pin_file = \"secrets/hsm_pin\"\nfile = \"keys/kek.key\""),
               {"kek.file", "only used with provider = \"file\""});
  // Never inline: the value is not echoed.
  const std::string inline_pin = config_error(with_pkcs11_kek("pin = \"123456\""));
  EXPECT_NE(inline_pin.find("kek.pin: unknown key: secrets are never written inline"),
            std::string::npos)
      << inline_pin;
  EXPECT_EQ(inline_pin.find("123456"), std::string::npos);
  const std::string user_pin = config_error(with_pkcs11_kek("user_pin = \"123456\""));
  EXPECT_NE(user_pin.find("kek.user_pin: unknown key: secrets are never written inline"),
            std::string::npos)
      << user_pin;
  EXPECT_EQ(user_pin.find("123456"), std::string::npos);
  const std::string password = config_error(with_pkcs11_kek("user_password = \"654321\""));
  EXPECT_NE(password.find("kek.user_password"), std::string::npos) << password;
  EXPECT_NE(password.find("pin_file, pin_env or pin_credential"), std::string::npos) << password;
  EXPECT_EQ(password.find("654321"), std::string::npos);
  // pkcs11 keys with the file provider.
  expect_error(replaced(kMinimal, "file = \"keys/kek.key\"",
                        "file = \"keys/kek.key\"\ntoken_label = \"hookvault\""),
               {"kek.token_label", "only used with provider = \"pkcs11\""});
}

// ---------------------------------------------------------------------------
// Required keys

struct Missing {
  std::string line;  // a line of kFull to drop
  std::string key;   // what the message must name
};

class ConfigRequired : public ::testing::TestWithParam<Missing> {};

TEST_P(ConfigRequired, MissingKeyIsNamed) {
  expect_error(without_line(kFull, GetParam().line), {GetParam().key, "is required"});
}

INSTANTIATE_TEST_SUITE_P(
    AllRequired, ConfigRequired,
    ::testing::Values(Missing{"tls_cert = \"tls/cert.pem\"", "server.tls_cert"},
                      Missing{"tls_key = \"tls/key.pem\"", "server.tls_key"},
                      Missing{"path = \"data/hookvault.db\"", "storage.path"},
                      Missing{"file = \"/var/lib/hookvault/kek.key\"", "kek.file"},
                      Missing{"tls_cert = \"tls/admin-cert.pem\"", "admin.tls_cert"},
                      Missing{"tls_key = \"tls/admin-key.pem\"", "admin.tls_key"},
                      Missing{"client_ca = ", "admin.client_ca"},
                      Missing{"subject_cn = \"signer\"", "admin.clients[0].subject_cn"},
                      Missing{"roles = [\"materials:read\"]", "admin.clients[0].roles"},
                      Missing{"name = \"dynamic\"", "sources[0].name"},
                      Missing{"provider = \"dynamic\"", "sources[0].provider"},
                      Missing{"path = \"/webhooks/dynamic\"", "sources[0].path"},
                      Missing{"rsa_private_keys = ", "sources[0].rsa_private_keys"},
                      Missing{"name = \"nodit\"", "sources[1].name"},
                      Missing{"api_base_url = ", "sources[1].history.api_base_url"},
                      Missing{"chain = ", "sources[1].history.chain"},
                      Missing{"network = ", "sources[1].history.network"}));

TEST(ConfigRequired, WholeTablesMissing) {
  const std::string minimal = kMinimal;
  expect_error(replaced(minimal, "[server]", "[serverx]"), {"serverx", "unknown key"});
  expect_error(
      without_line(without_line(without_line(minimal, "[server]"), "tls/cert.pem"), "tls/key.pem"),
      {"server.tls_cert", "is required"});
  expect_error(without_line(without_line(minimal, "[storage]"), "data/hookvault.db"),
               {"storage.path", "is required"});
  expect_error(without_line(without_line(minimal, "[kek]"), "keys/kek.key"),
               {"kek.file", "is required"});
}

TEST(ConfigRequired, AtLeastOneSource) {
  const std::string full = kFull;
  expect_error(full.substr(0, full.find("[[sources]]")), {"sources", "at least one"});
  expect_error("sources = []\n" + full.substr(0, full.find("[[sources]]")),
               {"sources", "at least one"});
}

TEST(ConfigRequired, AtLeastOneSecret) {
  std::string text = without_line(kFull, "secret_files = [\"secrets/nodit_signing_key\"]");
  expect_error(text, {"sources[1]", "secret_files", "secret_envs", "secret_credentials"});
  // An empty list is no secret either.
  text = replaced(kMinimal, "[\"secrets/dynamic_webhook_secret\"]", "[]");
  expect_error(text, {"sources[0]", "at least one webhook secret"});
}

TEST(ConfigRequired, DynamicNeedsAnRsaKey) {
  expect_error(replaced(kMinimal, "[\"keys/dynamic_rsa.pem\"]", "[]"),
               {"sources[0].rsa_private_keys", "at least one RSA private key"});
}

TEST(ConfigRequired, AdminNeedsAClient) {
  const std::string text = std::string(kMinimal) +
                           "[admin]\ntls_cert = \"a.pem\"\ntls_key = \"b.pem\"\n"
                           "client_ca = \"c.pem\"\n";
  expect_error(text, {"admin.clients", "at least one"});
}

TEST(ConfigRequired, HistoryNeedsExactlyOneApiKey) {
  expect_error(without_line(kFull, "api_key_file"),
               {"sources[1].history.api_key_file",
                "exactly one of api_key_file, api_key_env, api_key_credential"});
  expect_error(replaced(kFull, "network = \"mainnet\"",
                        "network = \"mainnet\"\napi_key_env = \"NODIT_API_KEY\""),
               {"sources[1].history.api_key_file",
                "only one of api_key_file, api_key_env, api_key_credential"});
  // The same checks as for the PIN (one_secret): names and credentials are validated.
  expect_error(
      replaced(kFull, "api_key_file = \"secrets/nodit_api_key\"", "api_key_env = \"not a name\""),
      {"sources[1].history.api_key_env", "not a valid environment variable name"});
  expect_error(
      replaced(kFull, "api_key_file = \"secrets/nodit_api_key\"", "api_key_credential = \"../x\""),
      {"sources[1].history.api_key_credential", "not a valid credential name"});
}

// ---------------------------------------------------------------------------
// Types and values

struct Bad {
  std::string from;
  std::string to;
  std::vector<std::string> needles;
};

class ConfigBadValue : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigBadValue, IsRejectedWithKey) {
  expect_error(replaced(kFull, GetParam().from, GetParam().to), GetParam().needles);
}

INSTANTIATE_TEST_SUITE_P(
    WrongTypes, ConfigBadValue,
    ::testing::Values(
        Bad{"threads = 4", "threads = \"4\"", {"server.threads", "must be an integer"}},
        Bad{"threads = 4", "threads = 4.0", {"server.threads", "must be an integer"}},
        Bad{"listen = \"[::]:8443\"", "listen = 8443", {"server.listen", "must be a string"}},
        Bad{"max_body_bytes = 2048", "max_body_bytes = true", {"server.max_body_bytes"}},
        Bad{"header_timeout = \"5s\"", "header_timeout = 5", {"server.header_timeout", "duration"}},
        Bad{"secret_files = [\"secrets/nodit_signing_key\"]",
            "secret_files = \"secrets/nodit_signing_key\"",
            {"sources[1].secret_files", "must be an array of strings"}},
        Bad{"secret_envs = [\"DYN_SECRET\"]",
            "secret_envs = [1]",
            {"sources[0].secret_envs[0]", "must be a string"}},
        Bad{"roles = [\"materials:read\"]",
            "roles = \"materials:read\"",
            {"admin.clients[0].roles", "must be an array"}},
        Bad{"[admin]\n", "[admin]\nenabled = \"yes\"\n", {"admin.enabled", "boolean"}},
        Bad{"[storage]\npath = \"data/hookvault.db\"",
            "[storage]\npath = \"\"",
            {"storage.path", "must not be empty"}}));

INSTANTIATE_TEST_SUITE_P(
    BadValues, ConfigBadValue,
    ::testing::Values(
        Bad{"tls_min_version = \"1.3\"", "tls_min_version = \"1.1\"", {"server.tls_min_version"}},
        Bad{"threads = 4", "threads = -1", {"server.threads", "from 0 to"}},
        Bad{"max_body_bytes = 2048", "max_body_bytes = 0", {"server.max_body_bytes"}},
        Bad{"worker_queue = 16", "worker_queue = 0", {"server.worker_queue"}},
        Bad{"header_timeout = \"5s\"",
            "header_timeout = \"0s\"",
            {"server.header_timeout", "greater than 0"}},
        Bad{"idle_timeout = \"2m\"", "idle_timeout = \"2 minutes\"", {"server.idle_timeout"}},
        Bad{"format = \"text\"", "format = \"xml\"", {"log.format"}},
        Bad{"level = \"debug\"", "level = \"verbose\"", {"log.level"}},
        Bad{"provider = \"file\"", "provider = \"vault\"", {"kek.provider"}},
        Bad{"provider = \"dynamic\"", "provider = \"stripe\"", {"sources[0].provider"}},
        Bad{"path = \"/webhooks/nodit\"",
            "path = \"webhooks/nodit\"",
            {"sources[1].path", "must start with '/'"}},
        Bad{"path = \"/webhooks/nodit\"", "path = \"/healthz\"", {"sources[1].path", "reserved"}},
        Bad{"path = \"/webhooks/nodit\"", "path = \"/a b\"", {"sources[1].path"}},
        Bad{"name = \"nodit\"", "name = \"no dit\"", {"sources[1].name"}},
        Bad{"roles = [\"materials:read\"]",
            "roles = [\"materials:write\"]",
            {"admin.clients[0].roles[0]", "unknown role"}},
        Bad{"roles = [\"materials:read\"]", "roles = []", {"admin.clients[0].roles"}},
        Bad{"subject_cn = \"ops\"",
            "subject_cn = \"signer\"",
            {"admin.clients[1].subject_cn", "duplicate"}},
        Bad{"max_event_age = \"7d\"",
            "max_event_age = \"1500ms\"",
            {"sources[0].max_event_age", "whole seconds"}},
        Bad{"max_event_age = \"7d\"", "max_event_age = \"-1s\"", {"sources[0].max_event_age"}},
        Bad{"accepted_algs = [\"HYBRID-RSA-AES-256\", \"HYBRID-RSA-AES-256-LEGACY\"]",
            "accepted_algs = []",
            {"sources[0].accepted_algs"}},
        Bad{"secret_envs = [\"DYN_SECRET\"]",
            "secret_envs = [\"1BAD-NAME\"]",
            {"sources[0].secret_envs[0]", "environment variable name"}},
        Bad{"secret_credentials = [\"dyn_cred\"]",
            "secret_credentials = [\"../etc/passwd\"]",
            {"sources[0].secret_credentials[0]", "credential name"}},
        Bad{"api_base_url = \"https://web3.nodit.io/v1\"",
            "api_base_url = \"http://nodit.io\"",
            {"sources[1].history.api_base_url", "https://"}},
        Bad{"listen = \"127.0.0.1:9443\"",
            "listen = \"0.0.0.0:8443\"",
            {"admin.listen", "overlaps server.listen"}}));

INSTANTIATE_TEST_SUITE_P(
    ProviderRules, ConfigBadValue,
    ::testing::Values(
        Bad{"secret_files = [\"secrets/nodit_signing_key\"]",
            "secret_files = [\"secrets/nodit_signing_key\"]\nrsa_private_keys = [\"k.pem\"]",
            {"sources[1].rsa_private_keys", "only dynamic"}},
        Bad{"max_event_age = \"7d\"",
            "max_event_age = \"7d\"\n[sources.history]\napi_base_url = \"https://x\"\n"
            "api_key_file = \"k\"\nchain = \"c\"\nnetwork = \"n\"",
            {"sources[0].history", "only nodit"}}));

TEST(ConfigParse, TableOfWrongType) {
  std::string text = without_line(without_line(without_line(kFull, "[log]"), "format = \"text\""),
                                  "level = \"debug\"");
  expect_error("log = 3\n" + text, {"log", "must be a table, not an integer"});
  expect_error("sources = \"dynamic\"\n" +
                   std::string(kFull).substr(0, std::string(kFull).find("[[sources]]")),
               {"sources", "must be an array of tables"});
  expect_error(replaced(kMinimal, "[[sources]]", "[sources]"), {"sources", "array of tables"});
}

TEST(ConfigListen, GoodForms) {
  struct Case {
    std::string text;
    std::string host;
    std::uint16_t port;
  };
  for (const Case& c : {Case{"0.0.0.0:8443", "0.0.0.0", 8443}, Case{"[::]:8443", "::", 8443},
                        Case{"[::1]:0", "::1", 0}, Case{"127.0.0.1:0", "127.0.0.1", 0},
                        Case{"10.1.2.3:65535", "10.1.2.3", 65535}}) {
    const Config cfg = parse_config(
        replaced(kMinimal, "[server]\n", "[server]\nlisten = \"" + c.text + "\"\n"), kFile);
    EXPECT_EQ(cfg.server.listen.host, c.host) << c.text;
    EXPECT_EQ(cfg.server.listen.port, c.port) << c.text;
  }
}

TEST(ConfigListen, BadFormsAreRejected) {
  for (const char* bad :
       {"8443",       "0.0.0.0",       "0.0.0.0:",       ":8443",          "0.0.0.0:65536",
        "0.0.0.0:-1", "0.0.0.0:+1",    "0.0.0.0:84a3",   "0.0.0.0:123456", ":::8443",
        "::1:8443",   "[::1]8443",     "[::1",           "[::1]:",         "[]:8443",
        "[zz]:1",     "[127.0.0.1]:1", "localhost:8443", "256.0.0.1:80",   " 0.0.0.0:80"}) {
    expect_error(
        replaced(kMinimal, "[server]\n", std::string("[server]\nlisten = \"") + bad + "\"\n"),
        {"server.listen"});
  }
}

TEST(ConfigSources, DuplicateNamesAndPathsAreRejected) {
  expect_error(replaced(kFull, "name = \"nodit\"", "name = \"dynamic\""),
               {"sources[1].name", "duplicate source name", "sources[0]"});
  expect_error(replaced(kFull, "path = \"/webhooks/nodit\"", "path = \"/webhooks/dynamic\""),
               {"sources[1].path", "duplicate path", "sources[0]"});
}

TEST(ConfigSources, RsaKeyTableForm) {
  const Config c = parse_config(
      replaced(kMinimal, "rsa_private_keys = [\"keys/dynamic_rsa.pem\"]",
               "rsa_private_keys = [{ file = \"keys/a.pem\", kid = \"dynamic_rsa_lSuvWlCy\" },\n"
               "  { file = \"/abs/b.pem\" }, \"keys/c.pem\"]"),
      kFile);
  const auto& keys = c.sources[0].rsa_private_keys;
  ASSERT_EQ(keys.size(), 3U);
  EXPECT_EQ(keys[0].kid, "dynamic_rsa_lSuvWlCy");
  EXPECT_EQ(keys[0].file, fs::path("/etc/hookvault/keys/a.pem"));
  EXPECT_EQ(keys[1].kid, "");
  EXPECT_EQ(keys[1].file, fs::path("/abs/b.pem"));
  EXPECT_EQ(keys[2].file, fs::path("/etc/hookvault/keys/c.pem"));
}

TEST(ConfigSources, RsaKeyTableFormErrors) {
  const std::string line = "rsa_private_keys = [\"keys/dynamic_rsa.pem\"]";
  expect_error(replaced(kMinimal, line, "rsa_private_keys = [{ kid = \"k1\" }]"),
               {"sources[0].rsa_private_keys[0].file", "is required"});
  expect_error(replaced(kMinimal, line, "rsa_private_keys = [{ file = \"a.pem\", id = \"k\" }]"),
               {"sources[0].rsa_private_keys[0].id", "unknown key"});
  expect_error(replaced(kMinimal, line,
                        "rsa_private_keys = [{ file = \"a.pem\", kid = \"k\" }, "
                        "{ file = \"b.pem\", kid = \"k\" }]"),
               {"sources[0].rsa_private_keys[1].kid", "duplicate kid"});
  expect_error(replaced(kMinimal, line, "rsa_private_keys = [42]"),
               {"sources[0].rsa_private_keys[0]", "must be a path or a table"});
  expect_error(replaced(kMinimal, line, "rsa_private_keys = \"keys/dynamic_rsa.pem\""),
               {"sources[0].rsa_private_keys", "must be an array"});
}

// ---------------------------------------------------------------------------
// Unknown keys and inline secrets

TEST(ConfigUnknown, UnknownKeysAreErrors) {
  expect_error(replaced(kFull, "threads = 4", "thread = 4"),
               {"server.thread", "unknown key", "did you mean threads?"});
  expect_error(replaced(kFull, "[log]", "[logging]"), {"logging", "unknown key"});
  expect_error(replaced(kFull, "network = \"mainnet\"", "network = \"mainnet\"\nfoo = 1"),
               {"sources[1].history.foo", "unknown key"});
  expect_error(replaced(kFull, "subject_cn = \"ops\"", "subject_cn = \"ops\"\ncn = \"x\""),
               {"admin.clients[1].cn", "unknown key"});
  // A typo that would otherwise surface as "missing secret" is reported as the typo.
  expect_error(replaced(kMinimal, "secret_files", "secret_file"),
               {"sources[0].secret_file", "did you mean secret_files?"});
}

TEST(ConfigUnknown, InlineSecretIsRejectedWithoutEchoingIt) {
  const std::string value = "dyn_TOPSECRETwebhookVALUE42";
  for (const std::string& line : {"secret = \"" + value + "\"", "secrets = [\"" + value + "\"]",
                                  "webhook_secret = \"" + value + "\""}) {
    const std::string text =
        replaced(kFull, "path = \"/webhooks/nodit\"", "path = \"/webhooks/nodit\"\n" + line);
    const std::string message = config_error(text);
    ASSERT_FALSE(message.empty()) << line;
    EXPECT_NE(message.find("sources[1]."), std::string::npos) << message;
    EXPECT_NE(message.find("unknown key"), std::string::npos) << message;
    EXPECT_NE(message.find("secret_files"), std::string::npos) << message;
    EXPECT_NE(message.find("secret_envs"), std::string::npos) << message;
    EXPECT_NE(message.find("secret_credentials"), std::string::npos) << message;
    EXPECT_EQ(message.find(value), std::string::npos) << message;
    EXPECT_EQ(message.find("TOPSECRET"), std::string::npos) << message;
  }
  const std::string message = config_error(
      replaced(kFull, "chain = \"ethereum\"", "chain = \"ethereum\"\napi_key = \"" + value + "\""));
  EXPECT_NE(message.find("sources[1].history.api_key"), std::string::npos) << message;
  EXPECT_NE(message.find("api_key_file"), std::string::npos) << message;
  EXPECT_EQ(message.find(value), std::string::npos) << message;
}

TEST(ConfigUnknown, TypeErrorsDoNotEchoValues) {
  const std::string message = config_error(replaced(
      kFull, "secret_envs = [\"DYN_SECRET\"]", "secret_envs = \"dyn_TOPSECRETwebhookVALUE42\""));
  EXPECT_NE(message.find("sources[0].secret_envs"), std::string::npos) << message;
  EXPECT_EQ(message.find("TOPSECRET"), std::string::npos) << message;
}

TEST(ConfigParse, SyntaxErrorNamesFileLineAndColumn) {
  const std::string message = config_error("[server]\nlisten = \n");
  EXPECT_EQ(message.rfind(std::string(kFile) + ":2:", 0), 0U) << message;
  // TOML itself rejects a key defined twice.
  const std::string twice =
      config_error(replaced(kFull, "threads = 4", "threads = 4\nthreads = 5"));
  EXPECT_NE(twice.find(kFile), std::string::npos) << twice;
}

// ---------------------------------------------------------------------------
// Durations and paths

TEST(ConfigDuration, ParsesUnits) {
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("10s"), milliseconds(10000));
  EXPECT_EQ(parse_duration("2m"), milliseconds(120000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3600000));
  EXPECT_EQ(parse_duration("7d"), milliseconds(7LL * 86400000));
  EXPECT_EQ(parse_duration("0ms"), milliseconds(0));
}

TEST(ConfigDuration, RejectsMalformed) {
  for (const char* bad :
       {"", "s", "10", "10 s", " 10s", "10s ", "-1s", "+1s", "1.5s", "10S", "10sec", "1h30m",
        "10us", "99999999999999999999s", "9223372036854775807d"}) {
    EXPECT_THROW(parse_duration(bad), std::invalid_argument) << bad;
  }
}

TEST(ConfigPaths, RelativePathsFollowTheConfigFile) {
  TempDir dir;
  fs::create_directories(dir / "etc");
  write_file(dir / "etc/hookvault.toml", kMinimal, 0644);
  const Config c = load_config(dir / "etc/hookvault.toml");
  EXPECT_EQ(c.server.tls_cert, dir.path() / "etc/tls/cert.pem");
  EXPECT_EQ(c.sources[0].secrets[0].path, dir.path() / "etc/secrets/dynamic_webhook_secret");
  EXPECT_EQ(c.sources[0].rsa_private_keys[0].file, dir.path() / "etc/keys/dynamic_rsa.pem");
}

TEST(ConfigPaths, MissingConfigFileNamesIt) {
  TempDir dir;
  try {
    load_config(dir / "nope.toml");
    FAIL() << "loaded a missing file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "nope.toml").string()), std::string::npos);
  }
}

TEST(ConfigPaths, DefaultConfigPath) {
  const char* saved = std::getenv("HOOKVAULT_CONFIG");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("HOOKVAULT_CONFIG");
  EXPECT_EQ(default_config_path(), fs::path("/etc/hookvault/hookvault.toml"));
  ::setenv("HOOKVAULT_CONFIG", "/tmp/x.toml", 1);
  EXPECT_EQ(default_config_path(), fs::path("/tmp/x.toml"));
  if (saved) {
    ::setenv("HOOKVAULT_CONFIG", saved_value.c_str(), 1);
  } else {
    ::unsetenv("HOOKVAULT_CONFIG");
  }
}

// ---------------------------------------------------------------------------
// Secrets

SecretSource file_secret(const fs::path& p) {
  return {SecretSource::Kind::file, p.string(), p, "sources[0].secret_files[0]"};
}

TEST(ConfigSecrets, FileSecretStripsTrailingNewlines) {
  TempDir dir;
  write_file(dir / "a", "dyn_abc\r\n");
  write_file(dir / "b", "dyn_def\n\n");
  write_file(dir / "c", "dyn_ghi");
  auto secrets =
      load_secrets({file_secret(dir / "a"), file_secret(dir / "b"), file_secret(dir / "c")});
  ASSERT_EQ(secrets.size(), 3U);
  EXPECT_EQ(secrets[0].reveal_string(), "dyn_abc");
  EXPECT_EQ(secrets[1].reveal_string(), "dyn_def");
  EXPECT_EQ(secrets[2].reveal_string(), "dyn_ghi");
}

TEST(ConfigSecrets, MissingOrEmptyFileIsAnError) {
  TempDir dir;
  try {
    load_secret(file_secret(dir / "missing"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sources[0].secret_files[0]"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find((dir / "missing").string()), std::string::npos);
  }
  write_file(dir / "empty", "\n");
  EXPECT_THROW(load_secret(file_secret(dir / "empty")), ConfigError);
  EXPECT_THROW(load_secret(file_secret(dir.path())), ConfigError);  // a folder
}

TEST(ConfigSecrets, AFifoIsRefusedWithoutBlocking) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  try {
    load_secret(file_secret(dir / "fifo"));
    FAIL() << "read a FIFO";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("sources[0].secret_files[0]"), std::string::npos) << what;
    EXPECT_NE(what.find((dir / "fifo").string() + "\": not a regular file"), std::string::npos)
        << what;
  }
}

TEST(ConfigSecrets, AFileOverTheLimitIsRefused) {
  TempDir dir;
  write_file(dir / "huge", std::string(64 * 1024 + 1, 'k'));
  try {
    load_secret(file_secret(dir / "huge"));
    FAIL() << "read a file over 64 KiB";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 65536 bytes"), std::string::npos) << e.what();
  }
}

TEST(ConfigSecrets, LargeFileIsReadWhole) {
  TempDir dir;
  const std::string big(5000, 'k');
  write_file(dir / "big", big);
  EXPECT_EQ(load_secret(file_secret(dir / "big")).reveal_string(), big);
}

TEST(ConfigSecrets, EnvironmentVariable) {
  const std::string text = replaced(kMinimal, "secret_files = [\"secrets/dynamic_webhook_secret\"]",
                                    "secret_envs = [\"HOOKVAULT_TEST_DYN_SECRET\"]");
  const Config c = parse_config(text, kFile);
  ASSERT_EQ(c.sources[0].secrets.size(), 1U);
  const SecretSource& s = c.sources[0].secrets[0];

  ::unsetenv("HOOKVAULT_TEST_DYN_SECRET");
  try {
    load_secret(s);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("HOOKVAULT_TEST_DYN_SECRET"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("sources[0].secret_envs[0]"), std::string::npos);
  }
  ::setenv("HOOKVAULT_TEST_DYN_SECRET", "", 1);
  EXPECT_THROW(load_secret(s), ConfigError);
  ::setenv("HOOKVAULT_TEST_DYN_SECRET", "dyn_from_env\n", 1);
  EXPECT_EQ(load_secret(s).reveal_string(), "dyn_from_env");
  ::unsetenv("HOOKVAULT_TEST_DYN_SECRET");
}

TEST(ConfigSecrets, SystemdCredential) {
  TempDir dir;
  write_file(dir / "dyn_cred", "dyn_from_credential\n", 0400);
  const std::string text = replaced(kMinimal, "secret_files = [\"secrets/dynamic_webhook_secret\"]",
                                    "secret_credentials = [\"dyn_cred\"]");
  const Config c = parse_config(text, kFile);
  const SecretSource& s = c.sources[0].secrets[0];
  EXPECT_EQ(s.kind, SecretSource::Kind::credential);

  ::unsetenv("CREDENTIALS_DIRECTORY");
  try {
    load_secret(s);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("CREDENTIALS_DIRECTORY"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("sources[0].secret_credentials[0]"), std::string::npos);
  }
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  EXPECT_EQ(load_secret(s).reveal_string(), "dyn_from_credential");
  ::unsetenv("CREDENTIALS_DIRECTORY");
}

// ---------------------------------------------------------------------------
// check_config

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

struct CertPair {
  std::string cert_pem;
  std::string key_pem;
};

CertPair self_signed(const char* cn) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  BioPtr c(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(c.get(), cert.get());
  BioPtr k(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(k.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return {bio_text(c.get()), bio_text(k.get())};
}

// Writes every file kFull names (with its absolute paths moved under `dir`).
std::string provision(const TempDir& dir) {
  std::string text = replaced(kFull, "/var/lib/hookvault/kek.key", "keys/kek.key");
  text = replaced(text, "/run/secrets/dyn_old", "secrets/dyn_old");
  for (const char* sub : {"tls", "keys", "secrets", "data"}) fs::create_directories(dir / sub);
  const CertPair server = self_signed("localhost");
  write_file(dir / "tls/cert.pem", server.cert_pem, 0644);
  write_file(dir / "tls/key.pem", server.key_pem);
  const CertPair admin = self_signed("admin");
  write_file(dir / "tls/admin-cert.pem", admin.cert_pem, 0644);
  write_file(dir / "tls/admin-key.pem", admin.key_pem);
  write_file(dir / "tls/admin-ca.pem", admin.cert_pem, 0644);
  write_file(dir / "keys/kek.key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n");
  write_file(dir / "keys/dynamic_rsa.pem", testing::shared_rsa(2048).private_pem);
  write_file(dir / "keys/old.pem", testing::generate_rsa(2048).private_pem);
  write_file(dir / "secrets/dynamic_webhook_secret", "dyn_current");
  write_file(dir / "secrets/dyn_old", "dyn_old");
  write_file(dir / "secrets/nodit_signing_key", std::string(64, 'a'));
  write_file(dir / "secrets/nodit_api_key", "nodit-api-key");
  write_file(dir / "hookvault.toml", text, 0644);
  return text;
}

class EnvSecrets : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("DYN_SECRET", "dyn_env", 1);
    ::setenv("CREDENTIALS_DIRECTORY", creds_.path().c_str(), 1);
    write_file(creds_ / "dyn_cred", "dyn_cred_value", 0400);
  }
  void TearDown() override {
    ::unsetenv("DYN_SECRET");
    ::unsetenv("CREDENTIALS_DIRECTORY");
  }
  TempDir creds_;
};

using ConfigCheck = EnvSecrets;

TEST_F(ConfigCheck, ProvisionedConfigHasNoProblems) {
  TempDir dir;
  provision(dir);
  const Config c = load_config(dir / "hookvault.toml");
  const auto problems = check_config(c);
  EXPECT_TRUE(problems.empty()) << join(problems);
}

// Caps that need more descriptors than the hard RLIMIT_NOFILE: serve could
// not raise its soft limit that far, so check-config (and serve) refuse.
TEST_F(ConfigCheck, CapsOverTheHardOpenFileLimitAreReported) {
  TempDir dir;
  const std::string text = provision(dir);
  const std::uint64_t hard = file_limit().hard;
  const auto with_caps = [&](std::uint64_t server, std::uint64_t admin) {
    std::string t =
        replaced(text, "worker_queue = 16\n",
                 "worker_queue = 16\nmax_connections = " + std::to_string(server) + "\n");
    t = replaced(t, "rate_burst = 20\n",
                 "rate_burst = 20\nmax_connections = " + std::to_string(admin) + "\n");
    write_file(dir / "hookvault.toml", t, 0644);
    return check_config(load_config(dir / "hookvault.toml"));
  };
  // Exactly at the limit: fine.
  if (hard >= 1 + 256 + kReservedFiles && hard - 256 - kReservedFiles <= 1000000) {
    const auto fits = with_caps(hard - 256 - kReservedFiles, 256);
    EXPECT_TRUE(fits.empty()) << join(fits);
  }
  const std::uint64_t most = 2 * 1000000 + kReservedFiles;
  if (hard < most) {
    const std::uint64_t server = std::min<std::uint64_t>(1000000, hard);
    const auto problems = with_caps(server, 1000000);
    ASSERT_EQ(problems.size(), 1U) << join(problems);
    const std::string& p = problems[0];
    EXPECT_NE(p.find(": server.max_connections: " + std::to_string(server) + " connections"),
              std::string::npos)
        << p;
    EXPECT_NE(p.find("admin.max_connections 1000000"), std::string::npos) << p;
    EXPECT_NE(p.find("need " + std::to_string(server + 1000000 + kReservedFiles) + " open files"),
              std::string::npos)
        << p;
    EXPECT_NE(p.find("hard limit (RLIMIT_NOFILE) is " + std::to_string(hard)), std::string::npos)
        << p;
    EXPECT_NE(p.find("LimitNOFILE="), std::string::npos) << p;
  } else {
    GTEST_SKIP() << "the hard RLIMIT_NOFILE here (" << hard << ") holds the largest caps";
  }
}

TEST_F(ConfigCheck, EveryMissingFileIsListed) {
  TempDir dir;
  std::string text = replaced(kFull, "/var/lib/hookvault/kek.key", "keys/kek.key");
  text = replaced(text, "/run/secrets/dyn_old", "secrets/dyn_old");
  write_file(dir / "hookvault.toml", text, 0644);
  ::unsetenv("DYN_SECRET");
  ::unsetenv("CREDENTIALS_DIRECTORY");
  const auto problems = check_config(load_config(dir / "hookvault.toml"));
  const std::string all = join(problems);
  for (const char* file : {"tls/cert.pem", "tls/key.pem", "tls/admin-cert.pem", "tls/admin-key.pem",
                           "tls/admin-ca.pem", "keys/kek.key", "keys/dynamic_rsa.pem",
                           "keys/old.pem", "secrets/dynamic_webhook_secret", "secrets/dyn_old",
                           "secrets/nodit_signing_key", "secrets/nodit_api_key"}) {
    EXPECT_TRUE(contains(problems, (dir.path() / file).string())) << file << "\n" << all;
  }
  for (const char* key :
       {"server.tls_cert", "server.tls_key", "admin.tls_cert", "admin.tls_key", "admin.client_ca",
        "kek.file", "sources[0].rsa_private_keys[0]", "sources[0].rsa_private_keys[1]",
        "sources[0].secret_files[0]", "sources[0].secret_files[1]", "sources[1].secret_files[0]",
        "sources[1].history.api_key_file"}) {
    EXPECT_TRUE(contains(problems, std::string(": ") + key + ": ")) << key << "\n" << all;
  }
  EXPECT_TRUE(contains(problems, "DYN_SECRET")) << all;
  EXPECT_TRUE(contains(problems, "CREDENTIALS_DIRECTORY")) << all;
  for (const auto& line : problems) {
    EXPECT_EQ(line.rfind((dir / "hookvault.toml").string() + ": ", 0), 0U) << line;
  }
  // The storage folder does not exist but can be created: not a problem.
  EXPECT_FALSE(contains(problems, "storage.path")) << all;
}

TEST_F(ConfigCheck, GroupReadableSecretAndKeyAreReported) {
  TempDir dir;
  provision(dir);
  fs::permissions(dir / "secrets/nodit_signing_key", fs::perms(0640));
  fs::permissions(dir / "keys/dynamic_rsa.pem", fs::perms(0604));
  fs::permissions(dir / "tls/key.pem", fs::perms(0644));
  const auto problems = check_config(load_config(dir / "hookvault.toml"));
  EXPECT_EQ(problems.size(), 3U) << join(problems);
  for (const char* key :
       {"sources[1].secret_files[0]", "sources[0].rsa_private_keys[0]", "server.tls_key"}) {
    bool found = false;
    for (const auto& line : problems) {
      found |= line.find(key) != std::string::npos &&
               line.find("is readable by group or others (chmod 600)") != std::string::npos;
    }
    EXPECT_TRUE(found) << key << "\n" << join(problems);
  }
  // Never the secret's content.
  EXPECT_FALSE(contains(problems, std::string(64, 'a')));
}

// systemd, where it cannot mount a private file system for a service's credentials (in an
// unprivileged container), gives each credential mode 0440 through a POSIX ACL: the
// owner, one named entry for the service's user, and a mask (which the mode shows as the
// group bits). Only the service may read it; it must not be refused as group-readable. An
// ACL that does let the owning group or another user read is still refused.
TEST_F(ConfigCheck, SystemdCredentialAclIsNotGroupReadable) {
  TempDir dir;
  provision(dir);
  const fs::path secret = dir / "secrets/nodit_signing_key";
  // <linux/posix_acl_xattr.h>: u32 version 2, then {u16 tag, u16 perm, u32 id} entries.
  const auto set_acl = [&](std::uint16_t group_perm, std::uint32_t named_user) {
    std::vector<unsigned char> acl;
    const auto put = [&](std::uint32_t v, int bytes) {
      for (int i = 0; i < bytes; ++i) acl.push_back(static_cast<unsigned char>(v >> (8 * i)));
    };
    put(2, 4);
    for (const auto& [tag, perm, id] :
         std::vector<std::array<std::uint32_t, 3>>{{0x01, 6, 0},
                                                   {0x02, 4, named_user},
                                                   {0x04, group_perm, 0},
                                                   {0x10, 4, 0},
                                                   {0x20, 0, 0}}) {
      put(tag, 2);
      put(perm, 2);
      put(id, 4);
    }
    ASSERT_EQ(::setxattr(secret.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0), 0)
        << "setxattr: " << std::strerror(errno);
  };
  set_acl(0, ::geteuid());
  struct stat st {};
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  ASSERT_EQ(st.st_mode & 0777, 0640U);  // what the old mode-only check refused
  auto problems = check_config(load_config(dir / "hookvault.toml"));
  EXPECT_TRUE(problems.empty()) << join(problems);

  set_acl(4, ::geteuid());  // the owning group may read (through the mask)
  problems = check_config(load_config(dir / "hookvault.toml"));
  EXPECT_TRUE(contains(problems, "sources[1].secret_files[0]")) << join(problems);

  set_acl(0, ::geteuid() + 1);  // another user may read
  problems = check_config(load_config(dir / "hookvault.toml"));
  EXPECT_TRUE(contains(problems, "sources[1].secret_files[0]")) << join(problems);
}

TEST_F(ConfigCheck, BadContentIsReported) {
  TempDir dir;
  provision(dir);
  write_file(dir / "tls/cert.pem", "not a certificate", 0644);
  write_file(dir / "keys/kek.key", "too short");
  write_file(dir / "keys/old.pem", std::string("-----BEGIN ") +
                                       "PRIVATE KEY-----\nAAAA\n-----END " + "PRIVATE KEY-----\n");
  write_file(dir / "tls/admin-key.pem", self_signed("other").key_pem);  // wrong key for the cert
  const auto problems = check_config(load_config(dir / "hookvault.toml"));
  EXPECT_TRUE(contains(problems, "server.tls_cert: ")) << join(problems);
  EXPECT_TRUE(contains(problems, "kek.file: ")) << join(problems);
  EXPECT_TRUE(contains(problems, "sources[0].rsa_private_keys[1]: ")) << join(problems);
  EXPECT_TRUE(contains(problems, "admin.tls_key: ")) << join(problems);
  EXPECT_TRUE(contains(problems, "does not match")) << join(problems);
  EXPECT_FALSE(contains(problems, "too short")) << join(problems);
  EXPECT_EQ(problems.size(), 4U) << join(problems);
}

// check-config with a pkcs11 [kek] on a real SoftHSM2 token: it opens the
// module, finds the token, logs in and finds the key; each failure is one line
// under the key at fault, and no line holds the PIN.
TEST_F(ConfigCheck, Pkcs11KekIsOpenedAndEachProblemNamesItsKey) {
  TempDir dir;
  const std::string text = provision(dir);
  const testing::SoftHsmToken token;
  write_file(dir / "secrets/hsm_pin", token.pin() + "\n");
  const auto with_kek = [&](const std::string& kek) {
    write_file(dir / "hookvault.toml",
               replaced(text, "provider = \"file\"\nfile = \"keys/kek.key\"", kek), 0644);
    return check_config(load_config(dir / "hookvault.toml"));
  };
  const std::string module = "module = \"" + token.module().string() + "\"\n";
  const std::string good = "provider = \"pkcs11\"\n" + module + "token_label = \"" + token.label() +
                           "\"\nkey_label = \"hookvault-kek\"\n";
  const std::string pin_file = "pin_file = \"secrets/hsm_pin\"";

  auto problems = with_kek(good + pin_file);
  EXPECT_TRUE(problems.empty()) << join(problems);

  ::setenv("HSM_PIN_TEST", token.pin().c_str(), 1);
  problems = with_kek(good + "pin_env = \"HSM_PIN_TEST\"");
  EXPECT_TRUE(problems.empty()) << join(problems);
  ::unsetenv("HSM_PIN_TEST");
  problems = with_kek(good + "pin_env = \"HSM_PIN_TEST\"");
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("kek.pin_env: environment variable HSM_PIN_TEST is not set"),
            std::string::npos);

  write_file(creds_ / "hsm_pin", token.pin(), 0400);
  problems = with_kek(good + "pin_credential = \"hsm_pin\"");
  EXPECT_TRUE(problems.empty()) << join(problems);

  const std::string wrong_pin = "wrong-pin-31c8";
  write_file(dir / "secrets/hsm_pin", wrong_pin);
  problems = with_kek(good + pin_file);
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("kek.pin_file: "), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("CKR_PIN_INCORRECT"), std::string::npos) << problems[0];
  EXPECT_FALSE(contains(problems, wrong_pin));
  EXPECT_FALSE(contains(problems, token.pin()));
  write_file(dir / "secrets/hsm_pin", token.pin());

  problems = with_kek(replaced(good, token.label(), "no-such-token") + pin_file);
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("kek.token_label: "), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("\"no-such-token\""), std::string::npos) << problems[0];

  problems = with_kek(replaced(good, "hookvault-kek", "other-kek") + pin_file);
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("kek.key_label: "), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("\"other-kek\""), std::string::npos) << problems[0];

  problems = with_kek(replaced(good, token.module().string(), "/nonexistent/pkcs11.so") + pin_file);
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("kek.module: "), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("/nonexistent/pkcs11.so"), std::string::npos) << problems[0];

  fs::permissions(dir / "secrets/hsm_pin", fs::perms(0640));
  problems = with_kek(good + pin_file);
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("kek.pin_file: "), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("readable by group or others"), std::string::npos) << problems[0];
}

TEST_F(ConfigCheck, StorageFolderMustBeUsable) {
  TempDir dir;
  const std::string text = provision(dir);
  write_file(dir / "blocker", "a file where a folder should be", 0644);
  write_file(dir / "hookvault.toml",
             replaced(text, "path = \"data/hookvault.db\"", "path = \"blocker/sub/hookvault.db\""),
             0644);
  const auto problems = check_config(load_config(dir / "hookvault.toml"));
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_NE(problems[0].find("storage.path"), std::string::npos);
}

// The database and its -wal and -shm files hold wrapped keys, sealed payloads
// and the audit log: a mode that lets group or others read them is reported
// like a key file's (and so stops `serve`).
TEST_F(ConfigCheck, DatabaseFilesReadableByGroupOrOthersAreReported) {
  TempDir dir;
  provision(dir);
  const fs::path db = dir / "data/hookvault.db";
  write_file(db, "", 0600);
  write_file(db.string() + "-wal", "", 0600);
  write_file(db.string() + "-shm", "", 0600);
  EXPECT_TRUE(check_config(load_config(dir / "hookvault.toml")).empty());
  fs::permissions(db, fs::perms(0644));
  fs::permissions(db.string() + "-wal", fs::perms(0640));
  fs::permissions(db.string() + "-shm", fs::perms(0604));
  const auto problems = check_config(load_config(dir / "hookvault.toml"));
  ASSERT_EQ(problems.size(), 3U) << join(problems);
  for (const std::string& name : {db.string(), db.string() + "-wal", db.string() + "-shm"}) {
    EXPECT_TRUE(
        contains(problems, "storage.path: " + name + " is readable by group or others (chmod 600)"))
        << name << "\n"
        << join(problems);
  }
}

// [admin] client_crl: read and checked as the admin listener will use it.
// An expired CRL would refuse every client certificate (it fails closed), so
// it is reported here, as is one the client CA did not sign.
TEST_F(ConfigCheck, ClientCrlMustParseBeSignedByTheClientCaAndBeCurrent) {
  TempDir dir;
  const std::string text = provision(dir);
  write_file(dir / "hookvault.toml",
             replaced(text, "client_ca = \"tls/admin-ca.pem\"",
                      "client_ca = \"tls/admin-ca.pem\"\nclient_crl = \"tls/admin-ca.crl\""),
             0644);
  const fs::path crl = dir / "tls/admin-ca.crl";
  const fs::path ca_cert = dir / "tls/admin-ca.pem";
  const fs::path ca_key = dir / "tls/admin-key.pem";  // provision(): the CA is self-signed
  const auto problems_with = [&](const std::string& content) {
    write_file(crl, content, 0644);
    return check_config(load_config(dir / "hookvault.toml"));
  };
  EXPECT_TRUE(problems_with(testing::make_crl(ca_cert, ca_key, {{ca_cert}})).empty());

  const CertPair other = self_signed("another CA");
  write_file(dir / "other.pem", other.cert_pem, 0644);
  write_file(dir / "other.key", other.key_pem);
  auto problems = problems_with(testing::make_crl(dir / "other.pem", dir / "other.key"));
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_TRUE(contains(
      problems, "admin.client_crl: " + crl.string() + " (CRL 1) is not signed by the client CA"))
      << join(problems);

  testing::CrlOptions expired;
  expired.last_update = std::chrono::seconds(-7200);
  expired.next_update = std::chrono::seconds(-60);
  problems = problems_with(testing::make_crl(ca_cert, ca_key, expired));
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_TRUE(contains(problems, "has expired (its nextUpdate has passed)")) << join(problems);

  testing::CrlOptions early;
  early.last_update = std::chrono::seconds(3600);
  problems = problems_with(testing::make_crl(ca_cert, ca_key, early));
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_TRUE(contains(problems, "is not valid yet")) << join(problems);

  problems = problems_with("not a CRL");
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_TRUE(contains(problems, "admin.client_crl: " + crl.string() + " holds no PEM CRL"))
      << join(problems);

  fs::remove(crl);
  problems = check_config(load_config(dir / "hookvault.toml"));
  ASSERT_EQ(problems.size(), 1U) << join(problems);
  EXPECT_TRUE(contains(problems, "admin.client_crl: ")) << join(problems);
}

TEST(ConfigLoadBalancer, DrainProxyTrustedProxiesAndAllowFrom) {
  const Config m = parse_config(kMinimal, kFile);
  EXPECT_EQ(m.server.drain_delay, milliseconds(0));
  EXPECT_FALSE(m.server.proxy_protocol);
  EXPECT_TRUE(m.server.trusted_proxies.empty());
  EXPECT_TRUE(m.sources[0].allow_from.empty());

  std::string text = replaced(kMinimal, "[server]\n",
                              "[server]\ndrain_delay = \"5s\"\nproxy_protocol = true\n"
                              "trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n");
  text = replaced(text, "rsa_private_keys = [\"keys/dynamic_rsa.pem\"]\n",
                  "rsa_private_keys = [\"keys/dynamic_rsa.pem\"]\nallow_from = [\"192.0.2.7\"]\n");
  const Config c = parse_config(text, kFile);
  EXPECT_EQ(c.server.drain_delay, milliseconds(5000));
  EXPECT_TRUE(c.server.proxy_protocol);
  ASSERT_EQ(c.server.trusted_proxies.size(), 2U);
  EXPECT_EQ(c.server.trusted_proxies[1].text(), "2001:db8::/32");
  ASSERT_EQ(c.sources[0].allow_from.size(), 1U);
  EXPECT_TRUE(c.sources[0].allow_from[0].contains(*hookvault::parse_ip("192.0.2.7")));
  EXPECT_FALSE(c.sources[0].allow_from[0].contains(*hookvault::parse_ip("192.0.2.8")));  // a /32
  EXPECT_TRUE(c.server.trusted_proxies[0].contains(*hookvault::parse_ip("10.200.0.1")));
  EXPECT_FALSE(c.server.trusted_proxies[0].contains(*hookvault::parse_ip("11.0.0.1")));
  // The admin listener is direct: none of it applies there.
  const ServerConfig admin = admin_listener_config(c);
  EXPECT_EQ(admin.drain_delay, milliseconds(0));
  EXPECT_FALSE(admin.proxy_protocol);
  EXPECT_TRUE(admin.trusted_proxies.empty());

  expect_error(replaced(text, "\"10.0.0.0/8\"", "\"10.0.0.0/33\""), {"server.trusted_proxies"});
  expect_error(replaced(text, "\"192.0.2.7\"", "\"example.com\""), {"sources[0].allow_from"});
  expect_error(replaced(text, "proxy_protocol = true", "proxy_protocol = \"v2\""),
               {"server.proxy_protocol"});
  expect_error(replaced(text, "drain_delay = \"5s\"", "drain_delay = \"soon\""),
               {"server.drain_delay"});
}

// proxy_protocol believes the PROXY header of trusted_proxies only, so it
// needs some: without, any peer could name any client address.
TEST(ConfigLoadBalancer, ProxyProtocolRequiresTrustedProxies) {
  const std::string text = replaced(kMinimal, "[server]\n", "[server]\nproxy_protocol = true\n");
  expect_error(text, {"server.proxy_protocol", "trusted_proxies"});
  expect_error(
      replaced(text, "proxy_protocol = true\n", "proxy_protocol = true\ntrusted_proxies = []\n"),
      {"server.proxy_protocol", "trusted_proxies"});
  const Config c =
      parse_config(replaced(text, "proxy_protocol = true\n",
                            "proxy_protocol = true\ntrusted_proxies = [\"10.0.0.1\"]\n"),
                   kFile);
  EXPECT_TRUE(c.server.proxy_protocol);
}

}  // namespace
}  // namespace hookvault
