#include "e2e.hpp"

#include <openssl/rand.h>

#include <cstdlib>
#include <sstream>
#include <string_view>

#include "hookvault/bytes.hpp"
#include "softhsm.hpp"

namespace hookvault::testing {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// HOOKVAULT_TEST_KEK=pkcs11: the KEK lives in a SoftHSM2 token instead of
// keys/kek.key (one token per test process, created by setup()).
bool pkcs11_kek() {
  const char* v = std::getenv("HOOKVAULT_TEST_KEK");
  return v != nullptr && std::string_view(v) == "pkcs11";
}
const SoftHsmToken* hsm_token = nullptr;

// The [kek] table of write_config().
std::string kek_toml(const Setup& s) {
  if (hsm_token == nullptr) {
    return "[kek]\nprovider = \"file\"\nfile = \"" + (s.root / "keys/kek.key").string() + "\"\n";
  }
  return "[kek]\nprovider = \"pkcs11\"\nmodule = \"" + hsm_token->module().string() +
         "\"\ntoken_label = \"" + hsm_token->label() + "\"\nkey_label = \"" +
         hsm_token->key_label() + "\"\npin_file = \"" + (s.root / "secrets/hsm_pin").string() +
         "\"\n";
}

}  // namespace

const Setup& setup() {
  static Setup* s = [] {
    auto* out = new Setup;
    out->root = out->dir.path() / "setup";
    out->offline = out->dir.path() / "setup-offline";
    auto r = run_hookvault({"init", "--dir", out->root.string()});
    if (r.exit_code != 0) {
      throw std::runtime_error("hookvault init failed: " + r.err);
    }
    out->dynamic_secret = trim(read_file(out->root / "secrets/dynamic_webhook_secret"));
    out->nodit_key = trim(read_file(out->root / "secrets/nodit_signing_key"));
    out->rsa_public_pem = read_file(out->root / "keys/dynamic_rsa.pub.pem");
    if (pkcs11_kek()) {
      hsm_token = new SoftHsmToken;  // lives as long as the process, like the setup
      write_file(out->root / "secrets/hsm_pin", hsm_token->pin() + "\n", 0600);
    }
    return out;
  }();
  return *s;
}

void E2E::SetUp() { (void)setup(); }

std::filesystem::path E2E::write_config(const ConfigOptions& o) {
  const auto& s = setup();
  std::ostringstream t;
  t << "[server]\n"
    << "listen = \"127.0.0.1:0\"\n"
    << "tls_cert = \"" << (s.root / "tls/cert.pem").string() << "\"\n"
    << "tls_key = \"" << (s.root / "tls/key.pem").string() << "\"\n"
    << "threads = 2\n"
    << "max_body_bytes = " << o.max_body_bytes << "\n"
    << "header_timeout = \"" << o.header_timeout << "\"\n"
    << "body_timeout = \"" << o.body_timeout << "\"\n"
    << "idle_timeout = \""
    << (o.idle_timeout.empty() ? std::to_string(kIdleTimeout.count()) + "s" : o.idle_timeout)
    << "\"\n"
    << o.server_extra << "\n"
    << "[storage]\npath = \"" << (dir_.path() / "data/hookvault.db").string() << "\"\n"
    << kek_toml(s) << "[log]\nformat = \"json\"\nlevel = \"info\"\n"
    << "[[sources]]\nname = \"dynamic\"\nprovider = \"dynamic\"\npath = \"/webhooks/dynamic\"\n"
    << "secret_files = [\"" << (s.root / "secrets/dynamic_webhook_secret").string() << "\"]\n"
    << "rsa_private_keys = [";
  std::vector<std::string> keys = o.rsa_keys_toml;
  if (keys.empty()) {
    keys.push_back("{ file = \"" + (s.root / "keys/dynamic_rsa.pem").string() +
                   "\", kid = \"dynamic_rsa_lSuvWlCy\" }");
  }
  for (std::size_t i = 0; i < keys.size(); ++i) t << (i ? ", " : "") << keys[i];
  t << "]\n" << o.extra_toml << "\n";
  config_ = dir_.path() / "hookvault.toml";
  write_file(config_, t.str(), 0600);
  return config_;
}

void E2E::start(const std::filesystem::path& config,
                const std::map<std::string, std::string>& env) {
  client_.reset();
  connections_opened_ = 0;
  daemon_.reset();
  daemon_ = std::make_unique<Daemon>(config, env);
}

HttpsClient& E2E::client() {
  const auto now = std::chrono::steady_clock::now();
  if (client_ && now - client_used_ >= kClientReuse) client_.reset();
  if (!client_) {
    client_ = std::make_unique<HttpsClient>(daemon_->port(), setup().root / "tls/cert.pem");
    ++connections_opened_;
  }
  client_used_ = now;
  return *client_;
}

HttpResponse E2E::post(const std::string& body, const std::map<std::string, std::string>& headers) {
  return client().request("POST", "/webhooks/dynamic", headers, body);
}

std::string E2E::sign(const std::string& body) const {
  return "sha256=" + hmac_hex(setup().dynamic_secret, body);
}

HttpResponse E2E::post_signed(const std::string& body) {
  return post(body,
              {{"Content-Type", "application/json"}, {"x-dynamic-signature-256", sign(body)}});
}

ProcessResult E2E::cli(std::vector<std::string> args) {
  args.push_back("--config");
  args.push_back(config_.string());
  return run_hookvault(args);
}

std::vector<Json> E2E::cli_json_lines(std::vector<std::string> args) {
  std::string command;
  for (const auto& a : args) command += " " + a;
  auto r = cli(std::move(args));
  EXPECT_EQ(r.exit_code, 0) << "hookvault" << command << ": " << r.err;
  return json_lines(r.out);
}

std::vector<Json> E2E::events() { return cli_json_lines({"events", "list", "--limit", "100000"}); }

std::vector<Json> E2E::audit() { return cli_json_lines({"audit", "list", "--limit", "100000"}); }

void E2E::add_nodit_source(ConfigOptions& o, const std::string& signing_key) {
  const auto key_file = dir_.path() / "nodit_key";
  write_file(key_file, signing_key, 0600);
  o.extra_toml +=
      "[[sources]]\nname = \"nodit\"\nprovider = \"nodit\"\npath = \"/webhooks/nodit\"\n"
      "secret_files = [\"" +
      key_file.string() + "\"]\n";
}

std::string uuid() {
  unsigned char b[16];
  RAND_bytes(b, sizeof b);
  b[6] = (b[6] & 0x0F) | 0x40;
  b[8] = (b[8] & 0x3F) | 0x80;
  std::string h = to_hex(ByteView(b, sizeof b));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

Delegation random_delegation() {
  Delegation d;
  d.event_id = uuid();
  d.wallet_id = uuid();
  d.share = R"({"secretShare":"s3cr3t-share-)" + uuid() + R"("})";
  d.api_key = "wallet-api-key-" + uuid();
  return d;
}

std::string ping_event(const std::string& event_id) {
  return R"({"messageId":")" + uuid() + R"(","eventId":")" + event_id +
         R"(","eventName":"ping","timestamp":"2025-10-01T15:13:26.348Z","data":{}})";
}

std::string nodit_message(const std::string& sub, std::uint64_t seq,
                          const std::string& created_at) {
  return R"({"subscriptionId":")" + sub + R"(","sequenceNumber":")" + std::to_string(seq) +
         R"(","description":"hookvault test","protocol":"ETHEREUM","network":"MAINNET",)"
         R"("subscriptionType":"WEBHOOK","notification":{"webhookUrl":"https://127.0.0.1/webhooks/nodit"},)"
         R"("eventType":"ADDRESS_ACTIVITY","event":{"targetAddress":"0x4f1a","messages":[)"
         R"({"hash":"0xabc)" +
         std::to_string(seq) +
         R"(","value":123456789012345678901234567890,"block_number":20000000}]},"createdAt":")" +
         created_at + R"("})";
}

HttpResponse post_nodit(HttpsClient& client, const std::string& signing_key,
                        const std::string& body) {
  return client.request(
      "POST", "/webhooks/nodit",
      {{"Content-Type", "application/json"}, {"x-signature", hmac_hex(signing_key, body)}}, body);
}

Json created_event(const Delegation& d, const std::string& pub,
                   std::optional<std::string> share_kid, std::optional<std::string> api_key_kid) {
  Json data = Json::object();
  data["chain"] = "EVM";
  data["encryptedDelegatedShare"] = hybrid_encrypt(pub, d.share, share_kid);
  data["encryptedWalletApiKey"] = hybrid_encrypt(pub, d.api_key, api_key_kid);
  data["publicKey"] = "0x4f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c";
  if (d.share_set_id) data["shareSetId"] = *d.share_set_id;
  data["userId"] = d.user_id;
  data["walletId"] = d.wallet_id;
  Json e = Json::object();
  e["messageId"] = uuid();
  e["eventId"] = d.event_id;
  e["eventName"] = "wallet.delegation.created";
  e["timestamp"] = d.timestamp;
  e["webhookId"] = "9a31fefc-64e4-4551-81da-1502eacc852d";
  e["userId"] = d.user_id;
  e["environmentId"] = "53728749-1f19-4cab-becf-b88f952c3a3c";
  e["environmentName"] = "sandbox";
  e["data"] = data;
  return e;
}

Json revoked_event(const std::string& event_id, const std::string& wallet_id,
                   const std::string& timestamp) {
  Json e = Json::object();
  e["messageId"] = uuid();
  e["eventId"] = event_id;
  e["eventName"] = "wallet.delegation.revoked";
  e["timestamp"] = timestamp;
  e["webhookId"] = "9a31fefc-64e4-4551-81da-1502eacc852d";
  e["userId"] = "7eb7843b-2a4d-4f69-b95e-d219f0662fda";
  e["environmentId"] = "53728749-1f19-4cab-becf-b88f952c3a3c";
  e["data"] = Json{{"chain", "EVM"}, {"walletId", wallet_id}};
  return e;
}

std::string compact(const Json& j) { return j.dump(); }

void run_quiet(const std::string& command) {
  const auto [status, output] = run_shell(command);
  ASSERT_EQ(status, 0) << command << ":\n" << output;
}

ClientCertificate make_client_cert(const std::filesystem::path& dir, const std::string& cn,
                                   const std::filesystem::path& ca_cert,
                                   const std::filesystem::path& ca_key) {
  ClientCertificate c{dir / (cn + "-cert.pem"), dir / (cn + "-key.pem")};
  const auto csr = dir / (cn + ".csr");
  run_quiet("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + cn +
            " -keyout " + c.key.string() + " -out " + csr.string());
  run_quiet("openssl x509 -req -in " + csr.string() + " -CA " + ca_cert.string() + " -CAkey " +
            ca_key.string() + " -CAcreateserial -days 1 -out " + c.cert.string());
  return c;
}

std::string admin_toml(const std::string& rest) {
  const auto& root = setup().root;
  return "[admin]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"" +
         (root / "tls/admin-cert.pem").string() + "\"\ntls_key = \"" +
         (root / "tls/admin-key.pem").string() + "\"\nclient_ca = \"" +
         (root / "tls/admin-ca.pem").string() + "\"\n" + rest;
}

double sample_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

std::string s_client_command(std::uint16_t port, const std::string& flags) {
  return "OPENSSL_CONF=/dev/null openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
         " " + flags;
}

std::map<std::string, OpenedEvent> open_all_events(Store& store, std::string& error) {
  std::map<std::string, OpenedEvent> out;
  for (std::string after;;) {
    EventQuery q;
    q.after = after;
    q.limit = 1000;
    auto page = store.list_events(q);
    if (!page) {
      error = "list_events: " + page.error().message();
      return out;
    }
    if (page->events.empty()) return out;
    after = page->next;
    for (const auto& meta : page->events) {
      auto payload = store.event_payload(meta.row_id);
      if (!payload || !payload->has_value()) {
        error = "event " + std::to_string(meta.row_id) + " does not open";
        return out;
      }
      const bool first =
          out.emplace(meta.idempotency_key,
                      OpenedEvent{meta.row_id, std::string((**payload).reveal_string())})
              .second;
      if (!first) {
        error = "stored twice: " + meta.idempotency_key;
        return out;
      }
    }
  }
}

}  // namespace hookvault::testing
