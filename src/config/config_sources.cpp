// [[sources]] of hookvault.toml: each source's secrets, RSA keys and
// [sources.history] (config/toml_reader.hpp; the keys are config.hpp's).
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/toml_reader.hpp"
#include "hookvault/subscription_id.hpp"

namespace hookvault::config_internal {
namespace {

constexpr std::string_view kSourceSecretHint =
    "secrets are never written inline; they come from secret_files, secret_envs or "
    "secret_credentials";
constexpr std::string_view kHistorySecretHint =
    "secrets are never written inline; the API key comes from api_key_file, api_key_env or "
    "api_key_credential";
constexpr std::string_view kReservedPaths[] = {"/healthz", "/readyz"};

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
  if (auto subs = r.strings("subscriptions")) {
    h.subscriptions = *subs;
    for (const auto& sub : h.subscriptions) {
      if (!is_subscription_id(sub)) {
        r.fail("subscriptions",
               "each must be a Nodit subscription id: 1 to 64 digits, no leading zero");
      }
    }
  }
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

}  // namespace

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

}  // namespace hookvault::config_internal
