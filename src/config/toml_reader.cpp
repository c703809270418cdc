// The TableReader's helpers and the value parsers the tables share
// (config/toml_reader.hpp).
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/toml_reader.hpp"

namespace hookvault::config_internal {

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

}  // namespace hookvault::config_internal
