// hookvault configuration: the TOML file whose every key config/hookvault.example.toml
// documents, loaded into plain structs.
//
// load_config() parses and validates the file's shape (types, ranges, required
// keys, unknown keys, unique source names and paths). It throws ConfigError
// whose message names the file and the key ("FILE: server.listen: ...").
// Relative paths are resolved against the config file's folder.
//
// Secrets are never written inline: a source names them by file
// (`secret_files`), environment variable (`secret_envs`) or systemd credential
// (`secret_credentials`, read from $CREDENTIALS_DIRECTORY). load_secrets()
// reads them; it too throws ConfigError naming the key, never the value.
//
// check_config() goes further, as `hookvault check-config` does: it opens every
// referenced file (certificates, keys, secrets, KEK) and reports each problem
// as one line. An empty list means `serve` would start.
//
// Thread-safety: plain data; the functions are stateless.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "hookvault/cidr.hpp"
#include "hookvault/hybrid.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {

class Kek;

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Endpoint {
  std::string host;  // "0.0.0.0", "127.0.0.1", "::" (from "[::]:8443")
  std::uint16_t port = 0;
};

struct ServerConfig {
  Endpoint listen{"0.0.0.0", 8443};
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  std::string tls_min_version = "1.2";  // "1.2" or "1.3"
  unsigned threads = 0;                 // 0 = number of cores
  std::size_t max_body_bytes = 1048576;
  std::size_t max_header_bytes = 16384;
  std::size_t max_header_count = 64;
  std::chrono::milliseconds header_timeout{10000};  // whole request head
  std::chrono::milliseconds body_timeout{30000};    // whole body
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive between requests
  // SIGTERM: for drain_delay the listener keeps accepting and answering while
  // /readyz answers 503 (a load balancer's health check takes the instance out
  // of rotation) and every answer carries "Connection: close"; then the
  // listener closes and in-flight requests have shutdown_grace to finish.
  std::chrono::milliseconds drain_delay{0};
  std::chrono::milliseconds shutdown_grace{10000};  // in-flight requests on SIGTERM
  // PROXY protocol v2 required on every connection (behind a TCP load
  // balancer), and believed only from trusted_proxies (which must then not be
  // empty; other peers are closed at once).
  bool proxy_protocol = false;
  // The load balancers: peers whose PROXY header (proxy_protocol) or
  // X-Forwarded-For is believed, to find the client.
  std::vector<Cidr> trusted_proxies;
  std::size_t worker_queue = 1024;  // decryption jobs waiting; more -> 503
  // Open connections at most. Beyond it an open connection that loses
  // nothing acknowledged makes room (server.hpp), else the new one is closed
  // at once, before TLS (hookvault_connections_evicted_total,
  // hookvault_connections_refused_total). Each connection holds a file
  // descriptor: see files_needed().
  std::size_t max_connections = 4096;
};

struct SecretSource;

// [storage] backend = "sqlite" (default: the file at `path`) or
// "postgresql" (several instances on one database: pg_store.hpp).
enum class StorageBackend { sqlite, postgresql };

struct StorageConfig {
  StorageBackend backend = StorageBackend::sqlite;
  std::filesystem::path path;  // sqlite
  // postgresql: a libpq connection string or URI, never with a password
  // (refused when it holds one); the password comes from `password`
  // (password_file, password_env or password_credential), when the server
  // asks for one.
  std::string conninfo;
  std::shared_ptr<SecretSource> password;
  bool require_synchronous_standby = false;
  // Event payloads older than this are purged (zero-overwritten, then NULL);
  // the idempotency keys and metadata stay forever. 0 = keep payloads.
  std::chrono::milliseconds retention{0};
  std::chrono::milliseconds retention_interval{3600000};  // how often the purge runs
};

struct AdminClient {
  std::string subject_cn;
  std::vector<std::string> roles;
};

struct AdminConfig {
  bool enabled = false;  // true when an [admin] table is present
  Endpoint listen{"127.0.0.1", 9443};
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;
  std::filesystem::path client_ca;
  // Optional: certificate revocation lists (PEM) for client certificates of
  // client_ca. Fails closed: once the CRL's nextUpdate has passed, every
  // client certificate is refused (an expired list cannot say what was
  // revoked since) until a fresh one is installed and the daemon reloaded;
  // check-config, serve and a reload refuse an expired or not-yet-valid CRL.
  std::filesystem::path client_crl;
  std::vector<AdminClient> clients;
  unsigned rate_limit = 50;   // requests per second per client (CN); 0 = unlimited
  unsigned rate_burst = 100;  // requests a client may make at once
  // The admin listener's own cap, so a flood on the public listener never
  // locks signers and operators out (and the reverse).
  std::size_t max_connections = 256;
};

struct LogConfig {
  std::string format = "json";  // "json" or "text"
  std::string level = "info";   // spdlog level names
};

enum class Provider { dynamic, nodit };

struct SecretSource {
  enum class Kind { file, env, credential };
  Kind kind = Kind::file;
  std::string name;            // env var or credential name; for files the path as written
  std::filesystem::path path;  // resolved file path (file and credential)
  std::string key;             // config key that named it, for messages
};

// [kek]: provider "file" reads `file`; provider "pkcs11" keeps the KEK in an
// HSM token (kek.hpp) and names the module, token, key label and where the PIN
// comes from (exactly one of pin_file, pin_env, pin_credential).
struct KekConfig {
  std::string provider = "file";  // "file" or "pkcs11"
  std::filesystem::path file;
  std::filesystem::path module;  // pkcs11: the vendor's PKCS#11 library
  std::string token_label;       // pkcs11: at most 32 bytes
  std::string key_label;         // pkcs11: version 1's CKA_LABEL
  SecretSource pin;              // pkcs11: pin_file, pin_env or pin_credential
  // `serve` reads the keyring again this often (kek.hpp refresh()), so a
  // version `keys rotate` added elsewhere is used for new records without a
  // SIGHUP (kek_refresher.hpp).
  std::chrono::milliseconds refresh_interval{30000};
};

struct HistoryConfig {
  std::string api_base_url;
  SecretSource api_key;
  std::string chain;
  std::string network;
  std::filesystem::path ca_file;              // trust anchors for the API; empty: the system store
  std::vector<std::string> subscriptions;     // also checked for FAIL deliveries at start-up
  std::chrono::milliseconds gap_delay{5000};  // a gap this old is chased
  std::chrono::milliseconds poll_interval{1000};    // how often gaps are looked at
  std::chrono::milliseconds backoff_initial{1000};  // after a failed or fruitless fetch
  std::chrono::milliseconds backoff_max{300000};
  std::chrono::milliseconds request_timeout{10000};
  std::uint32_t page_size = 100;  // rpp, 1..100
};

struct SourceConfig {
  std::string name;
  Provider provider = Provider::dynamic;
  std::string path;  // URL path, e.g. "/webhooks/dynamic"
  std::vector<SecretSource> secrets;
  std::vector<RsaKeySpec> rsa_private_keys;  // entries: "path" or { file = "path", kid = "..." }
  std::vector<std::string> accepted_algs{std::string(kHybridAlg)};
  std::chrono::seconds max_event_age{0};  // 0 = no limit
  std::vector<Cidr> allow_from;           // empty = any client address; else 403 outside
  std::optional<HistoryConfig> history;
};

struct Config {
  std::filesystem::path file;  // the config file itself
  ServerConfig server;
  StorageConfig storage;
  KekConfig kek;
  AdminConfig admin;
  LogConfig log;
  std::vector<SourceConfig> sources;
};

// The listener settings of [admin]: its address and certificate, the public
// listener's TLS version and timeouts, one I/O thread, small bodies.
ServerConfig admin_listener_config(const Config& config);

// File descriptors `serve` keeps for itself besides its connections: the
// store (database, WAL, shared memory), the log, the listeners, epoll and
// timers, Nodit history connections, a connection being refused at the cap.
// About 20 are open at rest; the rest is headroom.
inline constexpr std::uint64_t kReservedFiles = 128;

// The open files `serve` needs: server.max_connections, plus
// admin.max_connections when the admin listener is enabled, plus
// kReservedFiles. `serve` raises its soft RLIMIT_NOFILE to it; check-config
// reports a config that needs more than the hard limit.
std::uint64_t files_needed(const Config& config);

// Default config path: $HOOKVAULT_CONFIG, else /etc/hookvault/hookvault.toml.
std::filesystem::path default_config_path();

Config load_config(const std::filesystem::path& file);
Config parse_config(std::string_view toml_text, const std::filesystem::path& file);

// Reads every secret of the list (trailing CR/LF stripped). Throws ConfigError.
std::vector<SecretBytes> load_secrets(const std::vector<SecretSource>& sources);
SecretBytes load_secret(const SecretSource& source);

// Problems that would stop `serve`, one line each.
std::vector<std::string> check_config(const Config& config);

// What a reload (SIGHUP) cannot apply to a daemon running `running`: the
// dotted keys whose values differ in `fresh` and take a restart, one line
// each ("server.listen"; "sources[\"nodit\"].history": a source is named by
// its name). Empty when a reload applies all of `fresh`. What a reload
// applies: [[sources]] (secrets, RSA keys, paths, allow_from, ... except their
// [sources.history]), server.tls_cert, tls_key, tls_min_version, [admin]
// tls_cert, tls_key, client_ca, client_crl, clients, rate_limit, rate_burst,
// kek.refresh_interval and log.level (src/config/reload.cpp).
std::vector<std::string> restart_required(const Config& running, const Config& fresh);

// The KEK named by [kek]: open_file_kek() or, for "pkcs11", the PIN loaded with
// load_secret() and open_pkcs11_kek() (kek.hpp). Throws ConfigError (the PIN)
// or std::runtime_error naming the file, module, token or key label.
std::shared_ptr<Kek> open_configured_kek(const KekConfig& kek);
// A new KEK version (rotate_file_kek / create_pkcs11_kek_version), and the
// removal of an old one (retire_file_kek_version / destroy_pkcs11_kek_version).
// Same exceptions as open_configured_kek.
std::uint32_t rotate_configured_kek(const KekConfig& kek);
void retire_configured_kek_version(const KekConfig& kek, std::uint32_t version);

// "10s", "500ms", "2m", "1h", "7d", "0s". Throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);

}  // namespace hookvault
