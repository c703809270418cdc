// [server], [storage], [kek], [admin] and [log] of hookvault.toml
// (config/toml_reader.hpp; the keys and their defaults are config.hpp's).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/storage.hpp"
#include "config/toml_reader.hpp"

namespace hookvault::config_internal {
namespace {

constexpr std::string_view kKekSecretHint =
    "secrets are never written inline; the PIN comes from pin_file, pin_env or pin_credential";

constexpr std::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                           "error", "critical", "off"};
constexpr std::string_view kAdminRoles[] = {"materials:read", "events:read", "metrics:read",
                                            "admin"};
// Linux's default ceiling for any open-file limit (fs.nr_open) is 1048576.
constexpr std::int64_t kMaxConnections = 1000000;

}  // namespace

ServerConfig parse_server(const Context& ctx, const toml::table* table) {
  TableReader r(ctx, table, "server",
                {"listen", "tls_cert", "tls_key", "tls_min_version", "threads", "max_body_bytes",
                 "max_header_bytes", "max_header_count", "header_timeout", "body_timeout",
                 "idle_timeout", "drain_delay", "shutdown_grace", "worker_queue", "proxy_protocol",
                 "trusted_proxies", "max_connections"});
  ServerConfig s;
  if (auto v = r.string("listen")) s.listen = parse_endpoint(r, "listen", *v);
  s.tls_cert = r.required_path("tls_cert");
  s.tls_key = r.required_path("tls_key");
  if (auto v = r.string("tls_min_version")) {
    if (*v != "1.2" && *v != "1.3") r.fail("tls_min_version", "must be \"1.2\" or \"1.3\"");
    s.tls_min_version = *v;
  }
  if (auto v = r.integer("threads", 0, 1024)) s.threads = static_cast<unsigned>(*v);
  if (auto v = r.integer("max_body_bytes", 1, std::int64_t{1} << 30)) {
    s.max_body_bytes = static_cast<std::size_t>(*v);
  }
  if (auto v = r.integer("max_header_bytes", 1024, 1 << 20)) {
    s.max_header_bytes = static_cast<std::size_t>(*v);
  }
  if (auto v = r.integer("max_header_count", 1, 10000)) {
    s.max_header_count = static_cast<std::size_t>(*v);
  }
  if (auto v = r.positive_duration("header_timeout")) s.header_timeout = *v;
  if (auto v = r.positive_duration("body_timeout")) s.body_timeout = *v;
  if (auto v = r.positive_duration("idle_timeout")) s.idle_timeout = *v;
  if (auto v = r.duration("drain_delay")) s.drain_delay = *v;
  if (auto v = r.duration("shutdown_grace")) s.shutdown_grace = *v;
  if (auto v = r.boolean("proxy_protocol")) s.proxy_protocol = *v;
  s.trusted_proxies = parse_cidrs(r, "trusted_proxies");
  if (s.proxy_protocol && s.trusted_proxies.empty()) {
    // Otherwise any peer could name any client address (allow_from, logs).
    r.fail("proxy_protocol",
           "requires server.trusted_proxies: the load balancers' addresses, the only peers "
           "whose PROXY header is believed");
  }
  if (auto v = r.integer("worker_queue", 1, 1000000)) s.worker_queue = static_cast<std::size_t>(*v);
  if (auto v = r.integer("max_connections", 1, kMaxConnections)) {
    s.max_connections = static_cast<std::size_t>(*v);
  }
  return s;
}

StorageConfig parse_storage(const Context& ctx, const toml::table* table) {
  TableReader r(ctx, table, "storage",
                {"path", "retention", "retention_interval", "backend", "conninfo", "password_file",
                 "password_env", "password_credential", "require_synchronous_standby"});
  StorageConfig c;
  const auto backend = r.string("backend").value_or("sqlite");
  if (backend == "postgresql") {
    c.backend = StorageBackend::postgresql;
    c.conninfo = r.required_string("conninfo");
    if (auto problem = conninfo_problem(c.conninfo)) r.fail("conninfo", *problem);
    if (auto password = one_secret(ctx, r, "password")) {
      c.password = std::make_shared<SecretSource>(std::move(*password));
    }
    if (auto v = r.boolean("require_synchronous_standby")) c.require_synchronous_standby = *v;
    if (r.has("path")) r.fail("path", "is the SQLite file: not used with backend = \"postgresql\"");
  } else if (backend == "sqlite") {
    c.path = r.required_path("path");
    for (const char* k : {"conninfo", "password_file", "password_env", "password_credential",
                          "require_synchronous_standby"}) {
      if (r.has(k)) r.fail(k, "is for backend = \"postgresql\" only");
    }
  } else {
    r.fail("backend", "must be \"sqlite\" or \"postgresql\"");
  }
  if (auto v = r.duration("retention")) c.retention = *v;
  if (auto v = r.positive_duration("retention_interval")) c.retention_interval = *v;
  return c;
}

KekConfig parse_kek(const Context& ctx, const toml::table* table) {
  static constexpr std::array<std::string_view, 6> kPkcs11Keys = {
      "module", "token_label", "key_label", "pin_file", "pin_env", "pin_credential"};
  std::vector<std::string_view> allowed = {"provider", "file", "refresh_interval"};
  allowed.insert(allowed.end(), kPkcs11Keys.begin(), kPkcs11Keys.end());
  TableReader r(ctx, table, "kek", allowed, kKekSecretHint);
  KekConfig k;
  if (auto v = r.positive_duration("refresh_interval")) k.refresh_interval = *v;
  if (auto v = r.string("provider")) {
    if (*v != "file" && *v != "pkcs11") r.fail("provider", "must be \"file\" or \"pkcs11\"");
    k.provider = *v;
  }
  if (k.provider == "file") {
    k.file = r.required_path("file");
    for (std::string_view name : kPkcs11Keys) {
      if (r.has(name)) r.fail(name, "is only used with provider = \"pkcs11\"");
    }
    return k;
  }
  if (r.has("file")) r.fail("file", "is only used with provider = \"file\"");
  k.module = r.required_path("module");
  k.token_label = r.required_string("token_label");
  if (k.token_label.size() > 32) {
    r.fail("token_label", "must be at most 32 bytes (the PKCS#11 token label field)");
  }
  k.key_label = r.required_string("key_label");
  auto pin = one_secret(ctx, r, "pin");
  if (!pin) {
    r.fail("pin_file",
           "the token's PIN is required: exactly one of pin_file, pin_env, pin_credential");
  }
  k.pin = std::move(*pin);
  return k;
}

AdminConfig parse_admin(const Context& ctx, const toml::table* table) {
  AdminConfig a;
  if (table == nullptr) return a;  // no [admin]: no admin listener
  TableReader r(ctx, table, "admin",
                {"enabled", "listen", "tls_cert", "tls_key", "client_ca", "client_crl", "clients",
                 "rate_limit", "rate_burst", "max_connections"});
  a.enabled = r.boolean("enabled").value_or(true);
  if (auto v = r.string("listen")) a.listen = parse_endpoint(r, "listen", *v);
  if (auto v = r.integer("rate_limit", 0, 1000000)) a.rate_limit = static_cast<unsigned>(*v);
  if (auto v = r.integer("rate_burst", 1, 1000000)) a.rate_burst = static_cast<unsigned>(*v);
  if (auto v = r.integer("max_connections", 1, kMaxConnections)) {
    a.max_connections = static_cast<std::size_t>(*v);
  }
  if (a.enabled) {
    a.tls_cert = r.required_path("tls_cert");
    a.tls_key = r.required_path("tls_key");
    a.client_ca = r.required_path("client_ca");
  } else {
    a.tls_cert = r.path("tls_cert").value_or(fs::path());
    a.tls_key = r.path("tls_key").value_or(fs::path());
    a.client_ca = r.path("client_ca").value_or(fs::path());
  }
  a.client_crl = r.path("client_crl").value_or(fs::path());
  std::map<std::string, std::size_t> seen;
  if (const toml::array* clients = r.table_array("clients")) {
    for (std::size_t i = 0; i < clients->size(); ++i) {
      TableReader c(ctx, (*clients)[i].as_table(), index_key(r.key("clients"), i),
                    {"subject_cn", "roles"});
      AdminClient client;
      client.subject_cn = c.required_string("subject_cn");
      if (auto [it, fresh] = seen.emplace(client.subject_cn, i); !fresh) {
        c.fail("subject_cn", "duplicate subject_cn \"" + client.subject_cn + "\" (also in " +
                                 index_key(r.key("clients"), it->second) + ")");
      }
      auto roles = c.strings("roles");
      if (!roles || roles->empty()) {
        c.fail("roles",
               "at least one role is required: materials:read, events:read, "
               "metrics:read or admin");
      }
      for (std::size_t j = 0; j < roles->size(); ++j) {
        if (!one_of((*roles)[j], kAdminRoles)) {
          ctx.fail(index_key(c.key("roles"), j),
                   "unknown role \"" + (*roles)[j] +
                       "\"; roles are materials:read, events:read, metrics:read, admin");
        }
      }
      client.roles = std::move(*roles);
      a.clients.push_back(std::move(client));
    }
  }
  if (a.enabled && a.clients.empty()) {
    r.fail("clients", "at least one [[admin.clients]] is required when [admin] is enabled");
  }
  return a;
}

LogConfig parse_log(const Context& ctx, const toml::table* table) {
  TableReader r(ctx, table, "log", {"format", "level"});
  LogConfig l;
  if (auto v = r.string("format")) {
    if (*v != "json" && *v != "text") r.fail("format", "must be \"json\" or \"text\"");
    l.format = *v;
  }
  if (auto v = r.string("level")) {
    if (!one_of(*v, kLogLevels)) {
      r.fail("level", "must be one of trace, debug, info, warn, error, critical, off");
    }
    l.level = *v;
  }
  return l;
}

}  // namespace hookvault::config_internal
