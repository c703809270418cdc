// Reading hookvault.toml, private to the config stage: the TableReader every
// table is read through, the value parsers they share, and the parsers of
// the tables (config.cpp's parse_config() calls them in order):
//   toml_reader.cpp     Context, the shared value parsers (endpoints, CIDRs,
//                       names, one secret of three kinds)
//   config_tables.cpp   [server], [storage], [kek], [admin], [log]
//   config_sources.cpp  [[sources]] (secrets, RSA keys, [sources.history])
//
// Every table is read through a TableReader that knows the table's allowed keys:
// an unknown key is rejected before anything else in that table is looked at,
// so a typo is reported as the typo and not as the missing key it hides.
// Messages are "FILE: dotted.key: problem"; array elements are numbered from 0
// ("sources[1].path" is the second [[sources]]). No message contains a value
// that could be a secret: type errors and unknown keys never echo values.
#pragma once

#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hookvault/cidr.hpp"
#include "hookvault/config.hpp"

namespace hookvault::config_internal {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

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

std::size_t edit_distance(std::string_view a, std::string_view b);
// True for a key name such as "api_key" or "signing_secret": a secret written inline.
bool looks_like_inline_secret(std::string_view key);
// "key[index]".
std::string index_key(std::string_view key, std::size_t index);
// "a table", "a string", ... for messages.
std::string_view type_name(const toml::node& node);

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
Endpoint parse_endpoint(const TableReader& r, std::string_view name, const std::string& text);
bool is_wildcard(const std::string& host);
bool endpoints_collide(const Endpoint& a, const Endpoint& b);
bool valid_env_name(std::string_view name);
bool valid_credential_name(std::string_view name);
bool valid_source_name(std::string_view name);

template <std::size_t N>
bool one_of(std::string_view value, const std::string_view (&set)[N]) {
  return std::find(std::begin(set), std::end(set), value) != std::end(set);
}

// An array of CIDR ranges ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").
std::vector<Cidr> parse_cidrs(const TableReader& r, std::string_view name);
// Exactly one secret named by `<base>_file`, `<base>_env` or `<base>_credential`
// (e.g. kek.pin_file); nullopt when none is given, a failure when several are.
std::optional<SecretSource> one_secret(const Context& ctx, const TableReader& r,
                                       std::string_view base);

// config_tables.cpp: each table, absent (nullptr) or not. Throw ConfigError.
ServerConfig parse_server(const Context& ctx, const toml::table* table);
StorageConfig parse_storage(const Context& ctx, const toml::table* table);
KekConfig parse_kek(const Context& ctx, const toml::table* table);
AdminConfig parse_admin(const Context& ctx, const toml::table* table);
LogConfig parse_log(const Context& ctx, const toml::table* table);

// config_sources.cpp: every [[sources]], with names and paths unique. Throws ConfigError.
std::vector<SourceConfig> parse_sources(const Context& ctx, const TableReader& root);

}  // namespace hookvault::config_internal
