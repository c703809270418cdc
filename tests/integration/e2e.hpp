// Shared fixture for the end-to-end tests: one `hookvault init` setup per test
// process (RSA-4096 generation is slow), a config and a fresh store per test,
// the real daemon as a child process, real TLS on loopback.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hookvault/json.hpp"
#include "hookvault/store.hpp"
#include "https_client.hpp"
#include "test_support.hpp"

namespace hookvault::testing {

struct Setup {
  TempDir dir;
  std::filesystem::path root;     // the `hookvault init` folder
  std::filesystem::path offline;  // beside it: admin-ca.key, signer-cert.pem, signer-key.pem
  std::string dynamic_secret;
  std::string nodit_key;
  std::string rsa_public_pem;
};

// The process-wide init setup (created on first use).
const Setup& setup();

struct ConfigOptions {
  std::vector<std::string> rsa_keys_toml;  // entries of rsa_private_keys, as TOML
  std::string server_extra;                // extra [server] lines
  std::string header_timeout = "1s";       // [server] timeouts
  std::string body_timeout = "1s";
  std::string idle_timeout;  // empty: E2E::kIdleTimeout
  std::size_t max_body_bytes = 65536;
  std::string extra_toml;  // appended (further [[sources]])
};
inline ConfigOptions with_rsa_keys(std::vector<std::string> keys) {
  ConfigOptions o;
  o.rsa_keys_toml = std::move(keys);
  return o;
}

class E2E : public ::testing::Test {
 public:
  void SetUp() override;

  // Writes <test dir>/hookvault.toml and returns its path.
  std::filesystem::path write_config(const ConfigOptions& options);
  std::filesystem::path write_config() { return write_config(ConfigOptions{}); }
  // `env`: added to the daemon's environment (Daemon).
  void start(const std::filesystem::path& config,
             const std::map<std::string, std::string>& env = {});
  void start() { start(write_config()); }

  // The test's keep-alive connection to the daemon. A connection left idle
  // for longer than kClientReuse is replaced by a new one first: the daemon
  // closes it after the fixture's idle_timeout (kIdleTimeout), and a request
  // on it would race that close.
  HttpsClient& client();
  // How many connections client() has opened since start().
  std::size_t connections_opened() const { return connections_opened_; }
  static constexpr std::chrono::seconds kIdleTimeout{5};
  static constexpr std::chrono::seconds kClientReuse{3};
  HttpResponse post(const std::string& body, const std::map<std::string, std::string>& headers);
  HttpResponse post_signed(const std::string& body);
  std::string sign(const std::string& body) const;

  ProcessResult cli(std::vector<std::string> args);
  // `hookvault ARGS --config <config>`, expected to exit 0, its JSON lines parsed.
  std::vector<Json> cli_json_lines(std::vector<std::string> args);
  std::vector<Json> events();  // `hookvault events list`, parsed
  std::vector<Json> audit();   // `hookvault audit list`, parsed

  // Writes <test dir>/nodit_key (0600) holding `signing_key` and appends a
  // [[sources]] table "nodit" (path /webhooks/nodit) reading it to `o.extra_toml`.
  void add_nodit_source(ConfigOptions& o, const std::string& signing_key);

  TempDir dir_;
  std::filesystem::path config_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<HttpsClient> client_;
  std::chrono::steady_clock::time_point client_used_{};
  std::size_t connections_opened_ = 0;
};

// Building delegation events like Dynamic does.
struct Delegation {
  std::string event_id;
  std::string wallet_id;
  std::string user_id = "7eb7843b-2a4d-4f69-b95e-d219f0662fda";
  std::string timestamp = "2025-10-01T15:13:26.348Z";
  std::string share;
  std::string api_key;
  std::optional<std::string> share_set_id;
};

std::string uuid();
// A delegation with fresh ids, a share JSON holding "s3cr3t-share-<uuid>" and
// an API key "wallet-api-key-<uuid>".
Delegation random_delegation();
// A Dynamic "ping" event (signed with post_signed, it is stored like any event).
std::string ping_event(const std::string& event_id);

// A Nodit webhook body as Nodit sends it, with an integer beyond 2^53 in it.
std::string nodit_message(const std::string& sub, std::uint64_t seq,
                          const std::string& created_at = "2025-10-01T15:13:26.348123456Z");
// POSTs `body` to /webhooks/nodit, signed with `signing_key` (x-signature).
HttpResponse post_nodit(HttpsClient& client, const std::string& signing_key,
                        const std::string& body);

Json created_event(const Delegation& d, const std::string& rsa_public_pem,
                   std::optional<std::string> share_kid = std::nullopt,
                   std::optional<std::string> api_key_kid = "dynamic_rsa_lSuvWlCy");
Json revoked_event(const std::string& event_id, const std::string& wallet_id,
                   const std::string& timestamp);
std::string compact(const Json& j);

// Runs a shell command, its output discarded; a non-zero exit fails the test.
void run_quiet(const std::string& command);

// A client certificate for `cn` signed by the CA in ca_cert/ca_key (a new
// P-256 key; the openssl CLI).
ClientCertificate make_client_cert(const std::filesystem::path& dir, const std::string& cn,
                                   const std::filesystem::path& ca_cert,
                                   const std::filesystem::path& ca_key);

// An [admin] table for the admin listener `hookvault init` set up (port 0,
// its certificate, its client CA), followed by `rest`: more [admin] keys and
// the [[admin.clients]] entries.
std::string admin_toml(const std::string& rest);

// The value of the sample `series` (name{labels} exactly as rendered) in
// Prometheus text; -1 when absent.
double sample_value(const std::string& text, const std::string& series);

// The `openssl s_client` command line for 127.0.0.1:port with `flags`, with
// OPENSSL_CONF=/dev/null: without Debian's system policy (MinProtocol,
// cipher level), so the server decides.
std::string s_client_command(std::uint16_t port, const std::string& flags);

// Every event of `store`, its payload opened: idempotency key -> (id, payload
// bytes). Stops at the first problem and names it in `error` (which the
// caller asserts empty): a list or open error, or an idempotency key stored
// twice (the map alone would hide a second row).
struct OpenedEvent {
  std::int64_t id = 0;
  std::string payload;
};
std::map<std::string, OpenedEvent> open_all_events(Store& store, std::string& error);

}  // namespace hookvault::testing
