// Loading and validating hookvault.toml (see config.hpp and config/hookvault.example.toml).
//
// Every table is read through a TableReader that knows the table's allowed keys:
// an unknown key is rejected before anything else in that table is looked at,
// so a typo is reported as the typo and not as the missing key it hides.
// Messages are "FILE: dotted.key: problem"; array elements are numbered from 0
// ("sources[1].path" is the second [[sources]]). No message contains a value
// that could be a secret: type errors and unknown keys never echo values.

#include <arpa/inet.h>

#include <toml++/toml.h>
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "hookvault/config.hpp"

#include "config/storage.hpp"

namespace hookvault {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr std::string_view kSourceSecretHint =
    "secrets are never written inline; they come from secret_files, secret_envs or "
    "secret_credentials";
constexpr std::string_view kKekSecretHint =
    "secrets are never written inline; the PIN comes from pin_file, pin_env or pin_credential";
constexpr std::string_view kHistorySecretHint =
    "secrets are never written inline; the API key comes from api_key_file, api_key_env or "
    "api_key_credential";

constexpr std::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                           "error", "critical", "off"};
constexpr std::string_view kAdminRoles[] = {"materials:read", "events:read", "metrics:read",
                                            "admin"};
constexpr std::string_view kReservedPaths[] = {"/healthz", "/readyz"};
// Linux's default ceiling for any open-file limit (fs.nr_open) is 1048576.
constexpr std::int64_t kMaxConnections = 1000000;

// Where messages and relative paths come from.
class Context {
 public:
  Context(std::string file_name, fs::path base_dir)
      : file_name_(std::move(file_name)), base_dir_(std::move(base_dir)) {}

  [[noreturn]] void fail(std::string_view key, std::string_view problem) const {
    std::string message = file_name_;
    message += ": ";
    message += key;
    message += ": ";
    message += problem;
    throw ConfigError(message);
  }

  fs::path resolve(const std::string& written) const {
    fs::path p(written);
    if (p.is_absolute()) return p.lexically_normal();
    return (base_dir_ / p).lexically_normal();
  }

 private:
  std::string file_name_;
  fs::path base_dir_;
};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

bool looks_like_inline_secret(std::string_view key) {
  std::string lower(key);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view word :
       {"secret", "password", "token", "api_key", "apikey", "signing_key", "pin"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

std::string index_key(std::string_view key, std::size_t index) {
  return std::string(key) + "[" + std::to_string(index) + "]";
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "something else";
}

// Typed access to one TOML table. `table` may be null (the table is absent):
// then every optional getter returns nullopt and every required one fails.
class TableReader {
 public:
  TableReader(const Context& ctx, const toml::table* table, std::string prefix,
              std::vector<std::string_view> allowed, std::string_view secret_hint = {})
      : ctx_(ctx), table_(table), prefix_(std::move(prefix)), allowed_(std::move(allowed)) {
    if (table_ == nullptr) return;
    for (auto&& [k, v] : *table_) {
      const std::string_view name = k.str();
      if (std::find(allowed_.begin(), allowed_.end(), name) != allowed_.end()) continue;
      std::string problem = "unknown key";
      std::string_view closest;
      std::size_t best = 3;  // suggest only close matches
      for (std::string_view candidate : allowed_) {
        const std::size_t d = edit_distance(name, candidate);
        if (d < best) {
          best = d;
          closest = candidate;
        }
      }
      if (!closest.empty()) {
        problem += " (did you mean ";
        problem += closest;
        problem += "?)";
      } else if (!secret_hint.empty() && looks_like_inline_secret(name)) {
        problem += ": ";
        problem += secret_hint;
      }
      ctx_.fail(key(name), problem);
    }
  }

  std::string key(std::string_view name) const {
    if (prefix_.empty()) return std::string(name);
    return prefix_ + "." + std::string(name);
  }
  const std::string& prefix() const { return prefix_; }

  [[noreturn]] void fail(std::string_view name, std::string_view problem) const {
    ctx_.fail(key(name), problem);
  }

  const toml::node* node(std::string_view name) const {
    if (table_ == nullptr) return nullptr;
    return table_->get(name);
  }
  bool has(std::string_view name) const { return node(name) != nullptr; }

  // A non-empty string.
  std::optional<std::string> string(std::string_view name) const {
    const toml::node* n = node(name);
    if (n == nullptr) return std::nullopt;
    const auto* s = n->as_string();
    if (s == nullptr) wrong_type(name, *n, "a string");
    if (s->get().empty()) fail(name, "must not be empty");
    return s->get();
  }

  std::string required_string(std::string_view name) const {
    auto s = string(name);
    if (!s) fail(name, "is required");
    return *s;
  }

  std::optional<std::int64_t> integer(std::string_view name, std::int64_t min,
                                      std::int64_t max) const {
    const toml::node* n = node(name);
    if (n == nullptr) return std::nullopt;
    const auto* i = n->as_integer();
    if (i == nullptr) wrong_type(name, *n, "an integer");
    if (i->get() < min || i->get() > max) {
      fail(name, "must be from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return i->get();
  }

  std::optional<bool> boolean(std::string_view name) const {
    const toml::node* n = node(name);
    if (n == nullptr) return std::nullopt;
    const auto* b = n->as_boolean();
    if (b == nullptr) wrong_type(name, *n, "a boolean (true or false)");
    return b->get();
  }

  // An array whose elements are all non-empty strings (the array may be empty).
  std::optional<std::vector<std::string>> strings(std::string_view name) const {
    const toml::node* n = node(name);
    if (n == nullptr) return std::nullopt;
    const auto* a = n->as_array();
    if (a == nullptr) wrong_type(name, *n, "an array of strings");
    std::vector<std::string> out;
    out.reserve(a->size());
    for (std::size_t i = 0; i < a->size(); ++i) {
      const auto* s = (*a)[i].as_string();
      const std::string element = index_key(key(name), i);
      if (s == nullptr) {
        ctx_.fail(element, std::string("must be a string, not ") + std::string(type_name((*a)[i])));
      }
      if (s->get().empty()) ctx_.fail(element, "must not be empty");
      out.push_back(s->get());
    }
    return out;
  }

  std::optional<fs::path> path(std::string_view name) const {
    auto s = string(name);
    if (!s) return std::nullopt;
    return ctx_.resolve(*s);
  }

  fs::path required_path(std::string_view name) const {
    auto p = path(name);
    if (!p) fail(name, "is required");
    return *p;
  }

  std::optional<milliseconds> duration(std::string_view name) const {
    const toml::node* n = node(name);
    if (n == nullptr) return std::nullopt;
    const auto* s = n->as_string();
    if (s == nullptr) wrong_type(name, *n, "a duration string such as \"10s\"");
    try {
      return parse_duration(s->get());
    } catch (const std::invalid_argument&) {
      fail(name, "must be a duration such as \"500ms\", \"10s\", \"2m\", \"1h\" or \"7d\"");
    }
  }

  std::optional<milliseconds> positive_duration(std::string_view name) const {
    auto d = duration(name);
    if (d && d->count() <= 0) fail(name, "must be greater than 0");
    return d;
  }

  const toml::table* table(std::string_view name) const {
    const toml::node* n = node(name);
    if (n == nullptr) return nullptr;
    const auto* t = n->as_table();
    if (t == nullptr) wrong_type(name, *n, "a table");
    return t;
  }

  // An array of tables ([[name]]); each element is checked to be a table.
  const toml::array* table_array(std::string_view name) const {
    const toml::node* n = node(name);
    if (n == nullptr) return nullptr;
    const auto* a = n->as_array();
    const std::string hint = "an array of tables ([[" + key(name) + "]])";
    if (a == nullptr) wrong_type(name, *n, hint);
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (!(*a)[i].is_table()) {
        ctx_.fail(index_key(key(name), i), "must be a table ([[" + key(name) + "]])");
      }
    }
    return a;
  }

 private:
  [[noreturn]] void wrong_type(std::string_view name, const toml::node& n,
                               std::string_view expected) const {
    fail(name, "must be " + std::string(expected) + ", not " + std::string(type_name(n)));
  }

  const Context& ctx_;
  const toml::table* table_;
  std::string prefix_;
  std::vector<std::string_view> allowed_;
};

// "host:port" with an IPv4 literal, or "[v6]:port". Port 0 lets the OS choose.
Endpoint parse_endpoint(const TableReader& r, std::string_view name, const std::string& text) {
  Endpoint ep;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos) r.fail(name, "missing ']' after the IPv6 address");
    ep.host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      r.fail(name, "expected \"[address]:port\", e.g. \"[::]:8443\"");
    }
    port_text = std::string_view(text).substr(close + 2);
    in6_addr addr{};
    if (ep.host.empty() || ::inet_pton(AF_INET6, ep.host.c_str(), &addr) != 1) {
      r.fail(name, "\"" + ep.host + "\" is not an IPv6 address");
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) r.fail(name, "expected \"host:port\", e.g. \"0.0.0.0:8443\"");
    ep.host = text.substr(0, colon);
    if (ep.host.find(':') != std::string::npos) {
      r.fail(name, "IPv6 addresses are written in brackets, e.g. \"[::]:8443\"");
    }
    port_text = std::string_view(text).substr(colon + 1);
    in_addr addr{};
    if (ep.host.empty() || ::inet_pton(AF_INET, ep.host.c_str(), &addr) != 1) {
      r.fail(name, "host must be an IP address such as 0.0.0.0, 127.0.0.1 or [::]");
    }
  }
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    r.fail(name, "port must be a number from 0 to 65535");
  }
  const unsigned long port = std::stoul(std::string(port_text));
  if (port > 65535) r.fail(name, "port must be a number from 0 to 65535");
  ep.port = static_cast<std::uint16_t>(port);
  return ep;
}

bool is_wildcard(const std::string& host) { return host == "0.0.0.0" || host == "::"; }

bool endpoints_collide(const Endpoint& a, const Endpoint& b) {
  if (a.port == 0 || a.port != b.port) return false;
  return a.host == b.host || is_wildcard(a.host) || is_wildcard(b.host);
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool valid_credential_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool valid_source_name(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

template <std::size_t N>
bool one_of(std::string_view value, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), value) != std::end(set);
}

// An array of CIDR ranges ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").
std::vector<Cidr> parse_cidrs(const TableReader& r, std::string_view name) {
  std::vector<Cidr> out;
  auto texts = r.strings(name);
  if (!texts) return out;
  for (std::size_t i = 0; i < texts->size(); ++i) {
    auto c = Cidr::parse((*texts)[i]);
    if (!c) {
      r.fail(name, "entry " + std::to_string(i) + " (\"" + (*texts)[i] +
                       "\") is not an IP address or CIDR range such as \"10.0.0.0/8\"");
    }
    out.push_back(std::move(*c));
  }
  return out;
}

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

std::optional<SecretSource> one_secret(const Context& ctx, const TableReader& r,
                                       std::string_view base);

StorageConfig parse_storage(const Context& ctx, const toml::table* table) {
  TableReader r(ctx, table, "storage",
                {"path", "retention", "retention_interval", "backend", "conninfo", "password_file",
                 "password_env", "password_credential", "require_synchronous_standby"});
  StorageConfig c;
  const auto backend = r.string("backend").value_or("sqlite");
  if (backend == "postgresql") {
    c.backend = StorageBackend::postgresql;
    c.conninfo = r.required_string("conninfo");
    if (auto problem = config_internal::conninfo_problem(c.conninfo)) r.fail("conninfo", *problem);
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

// Exactly one secret named by `<base>_file`, `<base>_env` or `<base>_credential`
// (e.g. kek.pin_file); nullopt when none is given, a failure when several are.
std::optional<SecretSource> one_secret(const Context& ctx, const TableReader& r,
                                       std::string_view base) {
  const std::string file_key = std::string(base) + "_file";
  const std::string env_key = std::string(base) + "_env";
  const std::string credential_key = std::string(base) + "_credential";
  std::vector<SecretSource> found;
  if (auto file = r.string(file_key)) {
    found.push_back({SecretSource::Kind::file, *file, ctx.resolve(*file), r.key(file_key)});
  }
  if (r.has(env_key)) {
    SecretSource s{SecretSource::Kind::env, r.required_string(env_key), {}, r.key(env_key)};
    if (!valid_env_name(s.name)) {
      r.fail(env_key, "is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    found.push_back(std::move(s));
  }
  if (r.has(credential_key)) {
    SecretSource s{SecretSource::Kind::credential,
                   r.required_string(credential_key),
                   {},
                   r.key(credential_key)};
    if (!valid_credential_name(s.name)) {
      r.fail(credential_key,
             "is not a valid credential name (a file name under $CREDENTIALS_DIRECTORY)");
    }
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir != nullptr && *dir != '\0') {
      s.path = fs::path(dir) / s.name;  // informational; load_secret() resolves it again
    }
    found.push_back(std::move(s));
  }
  if (found.size() > 1) {
    r.fail(file_key, "give only one of " + file_key + ", " + env_key + ", " + credential_key);
  }
  if (found.empty()) return std::nullopt;
  return std::move(found.front());
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

void add_file_secrets(const Context& ctx, const TableReader& r, std::string_view name,
                      std::vector<SecretSource>& out) {
  auto files = r.strings(name);
  if (!files) return;
  for (std::size_t i = 0; i < files->size(); ++i) {
    SecretSource s;
    s.kind = SecretSource::Kind::file;
    s.name = (*files)[i];
    s.path = ctx.resolve(s.name);
    s.key = index_key(r.key(name), i);
    out.push_back(std::move(s));
  }
}

void add_env_secrets(const Context& ctx, const TableReader& r, std::string_view name,
                     std::vector<SecretSource>& out) {
  auto names = r.strings(name);
  if (!names) return;
  for (std::size_t i = 0; i < names->size(); ++i) {
    SecretSource s;
    s.kind = SecretSource::Kind::env;
    s.key = index_key(r.key(name), i);
    // The "name" could be a pasted secret: do not echo it.
    if (!valid_env_name((*names)[i])) {
      ctx.fail(s.key, "is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }
    s.name = (*names)[i];
    out.push_back(std::move(s));
  }
}

void add_credential_secrets(const Context& ctx, const TableReader& r, std::string_view name,
                            std::vector<SecretSource>& out) {
  auto names = r.strings(name);
  if (!names) return;
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  for (std::size_t i = 0; i < names->size(); ++i) {
    SecretSource s;
    s.kind = SecretSource::Kind::credential;
    s.key = index_key(r.key(name), i);
    if (!valid_credential_name((*names)[i])) {
      ctx.fail(s.key, "is not a valid credential name (a file name under $CREDENTIALS_DIRECTORY)");
    }
    s.name = (*names)[i];
    // Informational; load_secret() resolves against the variable at load time.
    if (dir != nullptr && *dir != '\0') s.path = fs::path(dir) / s.name;
    out.push_back(std::move(s));
  }
}

std::vector<RsaKeySpec> parse_rsa_keys(const Context& ctx, const TableReader& r) {
  std::vector<RsaKeySpec> keys;
  const toml::node* n = r.node("rsa_private_keys");
  if (n == nullptr) return keys;
  const auto* a = n->as_array();
  const std::string key = r.key("rsa_private_keys");
  if (a == nullptr) {
    r.fail("rsa_private_keys", "must be an array of paths or { file = \"...\", kid = \"...\" }");
  }
  std::map<std::string, std::size_t> kids;
  for (std::size_t i = 0; i < a->size(); ++i) {
    const toml::node& element = (*a)[i];
    const std::string element_key = index_key(key, i);
    RsaKeySpec spec;
    if (const auto* s = element.as_string()) {
      if (s->get().empty()) ctx.fail(element_key, "must not be empty");
      spec.file = ctx.resolve(s->get());
    } else if (const auto* t = element.as_table()) {
      TableReader kr(ctx, t, element_key, {"file", "kid"});
      spec.file = kr.required_path("file");
      spec.kid = kr.string("kid").value_or("");
      if (!spec.kid.empty()) {
        if (auto [it, fresh] = kids.emplace(spec.kid, i); !fresh) {
          kr.fail("kid", "duplicate kid \"" + spec.kid + "\" (also in " +
                             index_key(key, it->second) + ")");
        }
      }
    } else {
      ctx.fail(element_key, "must be a path or a table { file = \"...\", kid = \"...\" }, not " +
                                std::string(type_name(element)));
    }
    keys.push_back(std::move(spec));
  }
  return keys;
}

HistoryConfig parse_history(const Context& ctx, const TableReader& source) {
  TableReader r(ctx, source.table("history"), source.key("history"),
                {"api_base_url", "api_key_file", "api_key_env", "api_key_credential", "chain",
                 "network", "ca_file", "subscriptions", "gap_delay", "poll_interval",
                 "backoff_initial", "backoff_max", "request_timeout", "page_size"},
                kHistorySecretHint);
  HistoryConfig h;
  h.api_base_url = r.required_string("api_base_url");
  const bool https = h.api_base_url.rfind("https://", 0) == 0;
  const bool local_http = h.api_base_url.rfind("http://127.0.0.1", 0) == 0 ||
                          h.api_base_url.rfind("http://localhost", 0) == 0 ||
                          h.api_base_url.rfind("http://[::1]", 0) == 0;
  if (!https && !local_http) {
    r.fail("api_base_url", "must start with https:// (http:// only for 127.0.0.1/localhost)");
  }
  auto api_key = one_secret(ctx, r, "api_key");
  if (!api_key) {
    r.fail("api_key_file",
           "exactly one of api_key_file, api_key_env, api_key_credential is required");
  }
  h.api_key = std::move(*api_key);
  h.chain = r.required_string("chain");
  h.network = r.required_string("network");
  if (auto ca = r.path("ca_file")) h.ca_file = *ca;
  if (auto subs = r.strings("subscriptions")) h.subscriptions = *subs;
  if (auto v = r.duration("gap_delay")) h.gap_delay = *v;
  if (auto v = r.positive_duration("poll_interval")) h.poll_interval = *v;
  if (auto v = r.positive_duration("backoff_initial")) h.backoff_initial = *v;
  if (auto v = r.positive_duration("backoff_max")) h.backoff_max = *v;
  if (auto v = r.positive_duration("request_timeout")) h.request_timeout = *v;
  if (auto v = r.integer("page_size", 1, 100)) h.page_size = static_cast<std::uint32_t>(*v);
  if (h.backoff_max < h.backoff_initial) {
    r.fail("backoff_max", "must not be shorter than backoff_initial");
  }
  return h;
}

SourceConfig parse_source(const Context& ctx, const toml::table* table, std::size_t index) {
  TableReader r(ctx, table, index_key("sources", index),
                {"name", "provider", "path", "secret_files", "secret_envs", "secret_credentials",
                 "rsa_private_keys", "accepted_algs", "max_event_age", "history", "allow_from"},
                kSourceSecretHint);
  SourceConfig s;
  s.name = r.required_string("name");
  if (!valid_source_name(s.name)) {
    r.fail("name", "must be 1 to 64 characters from A-Z a-z 0-9 _ - .");
  }
  const std::string provider = r.required_string("provider");
  if (provider == "dynamic") {
    s.provider = Provider::dynamic;
  } else if (provider == "nodit") {
    s.provider = Provider::nodit;
  } else {
    r.fail("provider", "must be \"dynamic\" or \"nodit\"");
  }
  s.path = r.required_string("path");
  if (s.path.front() != '/') r.fail("path", "must start with '/'");
  if (std::any_of(s.path.begin(), s.path.end(), [](char c) {
        return c == '?' || c == '#' || c == '%' || static_cast<unsigned char>(c) <= ' ' ||
               c == 0x7f;
      })) {
    r.fail("path", "must be a plain URL path (no spaces, '?', '#' or '%')");
  }
  if (one_of(s.path, kReservedPaths)) r.fail("path", "is reserved for health checks");

  s.allow_from = parse_cidrs(r, "allow_from");
  add_file_secrets(ctx, r, "secret_files", s.secrets);
  add_env_secrets(ctx, r, "secret_envs", s.secrets);
  add_credential_secrets(ctx, r, "secret_credentials", s.secrets);
  if (s.secrets.empty()) {
    ctx.fail(r.prefix(),
             "at least one webhook secret is required (secret_files, secret_envs or "
             "secret_credentials)");
  }

  if (s.provider == Provider::dynamic) {
    s.rsa_private_keys = parse_rsa_keys(ctx, r);
    if (s.rsa_private_keys.empty()) {
      r.fail("rsa_private_keys", "at least one RSA private key is required for a dynamic source");
    }
    if (auto algs = r.strings("accepted_algs")) {
      if (algs->empty()) r.fail("accepted_algs", "must name at least one algorithm");
      s.accepted_algs = std::move(*algs);
    }
  } else {
    if (r.has("rsa_private_keys")) r.fail("rsa_private_keys", "only dynamic sources decrypt");
    if (r.has("accepted_algs")) r.fail("accepted_algs", "only dynamic sources decrypt");
  }

  if (auto age = r.duration("max_event_age")) {
    if (age->count() % 1000 != 0) r.fail("max_event_age", "must be whole seconds");
    s.max_event_age = std::chrono::duration_cast<std::chrono::seconds>(*age);
  }

  if (r.has("history")) {
    if (s.provider != Provider::nodit) r.fail("history", "only nodit sources have a history API");
    s.history = parse_history(ctx, r);
  }
  return s;
}

std::vector<SourceConfig> parse_sources(const Context& ctx, const TableReader& root) {
  const toml::array* array = root.table_array("sources");
  if (array == nullptr || array->empty()) {
    root.fail("sources", "at least one [[sources]] is required");
  }
  std::vector<SourceConfig> sources;
  std::map<std::string, std::size_t> names;
  std::map<std::string, std::size_t> paths;
  for (std::size_t i = 0; i < array->size(); ++i) {
    SourceConfig s = parse_source(ctx, (*array)[i].as_table(), i);
    const std::string prefix = index_key("sources", i);
    if (auto [it, fresh] = names.emplace(s.name, i); !fresh) {
      ctx.fail(prefix + ".name", "duplicate source name \"" + s.name + "\" (also in " +
                                     index_key("sources", it->second) + ")");
    }
    if (auto [it, fresh] = paths.emplace(s.path, i); !fresh) {
      ctx.fail(prefix + ".path", "duplicate path \"" + s.path + "\" (also in " +
                                     index_key("sources", it->second) + ")");
    }
    sources.push_back(std::move(s));
  }
  return sources;
}

}  // namespace

ServerConfig admin_listener_config(const Config& config) {
  constexpr std::size_t kAdminMaxBody = 65536;
  ServerConfig s = config.server;
  s.listen = config.admin.listen;
  s.tls_cert = config.admin.tls_cert;
  s.tls_key = config.admin.tls_key;
  s.threads = 1;
  s.max_body_bytes = kAdminMaxBody;
  s.max_connections = config.admin.max_connections;
  // Internal and direct: no load balancer in front, nothing to drain for.
  s.drain_delay = std::chrono::milliseconds(0);
  s.proxy_protocol = false;
  s.trusted_proxies.clear();
  return s;
}

std::uint64_t files_needed(const Config& config) {
  std::uint64_t n = config.server.max_connections + kReservedFiles;
  if (config.admin.enabled) n += config.admin.max_connections;
  return n;
}

std::filesystem::path default_config_path() {
  const char* env = std::getenv("HOOKVAULT_CONFIG");
  if (env != nullptr && *env != '\0') return env;
  return "/etc/hookvault/hookvault.toml";
}

std::chrono::milliseconds parse_duration(std::string_view text) {
  std::size_t i = 0;
  std::int64_t value = 0;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const int digit = text[i] - '0';
    if (value > (kMax - digit) / 10) throw std::invalid_argument("duration out of range");
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) throw std::invalid_argument("duration must start with a number");
  const std::string_view unit = text.substr(i);
  std::int64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = std::int64_t{60} * 1000;
  } else if (unit == "h") {
    scale = std::int64_t{60} * 60 * 1000;
  } else if (unit == "d") {
    scale = std::int64_t{24} * 60 * 60 * 1000;
  } else {
    throw std::invalid_argument("duration unit must be ms, s, m, h or d");
  }
  if (value > kMax / scale) throw std::invalid_argument("duration out of range");
  return std::chrono::milliseconds(value * scale);
}

Config parse_config(std::string_view toml_text, const std::filesystem::path& file) {
  const std::string file_name = file.string();
  toml::table root_table;
  try {
    root_table = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    throw ConfigError(file_name + ":" + std::to_string(begin.line) + ":" +
                      std::to_string(begin.column) + ": " + std::string(e.description()));
  }

  std::error_code ec;
  fs::path absolute = fs::absolute(file, ec);
  if (ec) absolute = file;
  const Context ctx(file_name, absolute.parent_path());

  TableReader root(ctx, &root_table, "", {"server", "storage", "kek", "admin", "log", "sources"});
  Config config;
  config.file = file;
  config.server = parse_server(ctx, root.table("server"));
  config.storage = parse_storage(ctx, root.table("storage"));
  config.kek = parse_kek(ctx, root.table("kek"));
  config.admin = parse_admin(ctx, root.table("admin"));
  config.log = parse_log(ctx, root.table("log"));
  config.sources = parse_sources(ctx, root);
  if (config.admin.enabled && endpoints_collide(config.admin.listen, config.server.listen)) {
    ctx.fail("admin.listen", "overlaps server.listen (same port)");
  }
  return config;
}

Config load_config(const std::filesystem::path& file) {
  std::error_code dir_ec;
  if (fs::is_directory(file, dir_ec))
    throw ConfigError(file.string() + ": is a folder, not a file");
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::error_code ec(errno, std::generic_category());
    throw ConfigError(file.string() + ": cannot read: " + ec.message());
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(file.string() + ": cannot read");
  return parse_config(text.str(), file);
}

}  // namespace hookvault
