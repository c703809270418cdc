// Loading hookvault.toml (config.hpp): the file read, parsed as TOML, and
// each table read (config/toml_reader.hpp: how, and which file reads which
// table); plus the small derived values (the admin listener's settings, the
// descriptors needed).
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "config/toml_reader.hpp"
#include "hookvault/config.hpp"

namespace hookvault {

using namespace config_internal;

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
