// restart_required() (config.hpp): which settings a running daemon takes only
// at start. Each is compared as loaded (defaults filled in, paths resolved),
// so a key written out with its default value is no change.
//
// A new setting belongs either here or in what `serve`'s reload applies
// (src/daemon/reload.cpp): one that is in neither is silently ignored by a
// reload.
#include <map>
#include <string>
#include <vector>

#include "hookvault/config.hpp"

namespace hookvault {
namespace {

bool same_secret(const SecretSource& a, const SecretSource& b) {
  return a.kind == b.kind && a.name == b.name && a.path == b.path;
}

bool same_endpoint(const Endpoint& a, const Endpoint& b) {
  return a.host == b.host && a.port == b.port;
}

bool same_cidrs(const std::vector<Cidr>& a, const std::vector<Cidr>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].text() != b[i].text()) return false;
  }
  return true;
}

bool same_history(const HistoryConfig& a, const HistoryConfig& b) {
  return a.api_base_url == b.api_base_url && same_secret(a.api_key, b.api_key) &&
         a.chain == b.chain && a.network == b.network && a.ca_file == b.ca_file &&
         a.subscriptions == b.subscriptions && a.gap_delay == b.gap_delay &&
         a.poll_interval == b.poll_interval && a.backoff_initial == b.backoff_initial &&
         a.backoff_max == b.backoff_max && a.request_timeout == b.request_timeout &&
         a.page_size == b.page_size;
}

// The [sources.history] tables by source name: the backfillers are built once.
std::map<std::string, const HistoryConfig*> histories(const Config& c) {
  std::map<std::string, const HistoryConfig*> out;
  for (const auto& s : c.sources) {
    if (s.history) out[s.name] = &*s.history;
  }
  return out;
}

}  // namespace

std::vector<std::string> restart_required(const Config& running, const Config& fresh) {
  std::vector<std::string> keys;
  const auto check = [&keys](const char* key, bool same) {
    if (!same) keys.emplace_back(key);
  };
  const ServerConfig& a = running.server;
  const ServerConfig& b = fresh.server;
  check("server.listen", same_endpoint(a.listen, b.listen));
  check("server.threads", a.threads == b.threads);
  check("server.max_body_bytes", a.max_body_bytes == b.max_body_bytes);
  check("server.max_header_bytes", a.max_header_bytes == b.max_header_bytes);
  check("server.max_header_count", a.max_header_count == b.max_header_count);
  check("server.header_timeout", a.header_timeout == b.header_timeout);
  check("server.body_timeout", a.body_timeout == b.body_timeout);
  check("server.idle_timeout", a.idle_timeout == b.idle_timeout);
  check("server.drain_delay", a.drain_delay == b.drain_delay);
  check("server.shutdown_grace", a.shutdown_grace == b.shutdown_grace);
  check("server.proxy_protocol", a.proxy_protocol == b.proxy_protocol);
  check("server.trusted_proxies", same_cidrs(a.trusted_proxies, b.trusted_proxies));
  check("server.worker_queue", a.worker_queue == b.worker_queue);
  check("server.max_connections", a.max_connections == b.max_connections);

  check("storage.path", running.storage.path == fresh.storage.path);
  check("storage.retention", running.storage.retention == fresh.storage.retention);
  check("storage.retention_interval",
        running.storage.retention_interval == fresh.storage.retention_interval);

  // The KEK itself: its versions follow the keyring without a restart.
  const KekConfig& k = running.kek;
  const KekConfig& l = fresh.kek;
  check("kek.provider", k.provider == l.provider);
  check("kek.file", k.file == l.file);
  check("kek.module", k.module == l.module);
  check("kek.token_label", k.token_label == l.token_label);
  check("kek.key_label", k.key_label == l.key_label);
  check("kek.pin", same_secret(k.pin, l.pin));

  check("admin.enabled", running.admin.enabled == fresh.admin.enabled);
  if (running.admin.enabled && fresh.admin.enabled) {
    check("admin.listen", same_endpoint(running.admin.listen, fresh.admin.listen));
    check("admin.max_connections", running.admin.max_connections == fresh.admin.max_connections);
  }

  check("log.format", running.log.format == fresh.log.format);

  const auto before = histories(running);
  const auto after = histories(fresh);
  std::map<std::string, bool> names;
  for (const auto& [name, h] : before) names[name] = true;
  for (const auto& [name, h] : after) names[name] = true;
  for (const auto& [name, unused] : names) {
    const auto x = before.find(name);
    const auto y = after.find(name);
    if (x == before.end() || y == after.end() || !same_history(*x->second, *y->second)) {
      keys.push_back("sources[\"" + name + "\"].history");
    }
  }
  return keys;
}

}  // namespace hookvault
