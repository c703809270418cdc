#include <charconv>
#include <chrono>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <vector>

#include "hookvault/log.hpp"
#include "hookvault/ops.hpp"
#include "hookvault/pg_store.hpp"
#include "hookvault/pipeline.hpp"
#include "hookvault/render.hpp"
#include "hookvault/reprocess.hpp"
#include "hookvault/sqlite_store.hpp"
#include "ops/cli_audit.hpp"

namespace hookvault {
namespace {

// How long a store's connections wait for another process's write lock
// (SQLite's busy handler) before a statement fails with store_unavailable.
// The daemon answers webhooks and keeps it short; a CLI command (a `keys
// rewrap` batch, an audit append) may wait behind a daemon that commits back
// to back.
constexpr std::chrono::milliseconds kDaemonBusyTimeout{5000};
constexpr std::chrono::milliseconds kCliBusyTimeout{30000};

void write_line(std::ostream& out, SecretText text) {
  text.push_back('\n');
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.flush();
}

std::vector<const SourceConfig*> dynamic_sources(const Config& config,
                                                 const std::optional<std::string>& name) {
  std::vector<const SourceConfig*> out;
  for (const auto& s : config.sources) {
    if (name ? s.name == *name : s.provider == Provider::dynamic) out.push_back(&s);
  }
  return out;
}

}  // namespace

std::shared_ptr<Kek> open_kek(const Config& config) { return open_configured_kek(config.kek); }

std::unique_ptr<Store> open_store(const Config& config, std::shared_ptr<const Kek> kek,
                                  StoreRole role, Metrics* metrics) {
  const bool daemon = role == StoreRole::daemon;
  if (config.storage.backend == StorageBackend::postgresql) {
    PgStoreOptions options;
    options.conninfo = config.storage.conninfo;
    if (config.storage.password) {
      options.password = std::make_shared<const SecretBytes>(load_secret(*config.storage.password));
    }
    options.require_synchronous_standby = config.storage.require_synchronous_standby;
    if (daemon) {
      options.retention = config.storage.retention;
      options.retention_interval = config.storage.retention_interval;
    }
    options.metrics = metrics;
    options.process_name = daemon ? "serve" : "cli";
    std::string why;
    auto store = open_pg_store(options, kek ? std::move(kek) : open_kek(config), &why);
    if (!store) {
      throw std::runtime_error("cannot open the PostgreSQL store: " +
                               (why.empty() ? store.error().message() : why));
    }
    return std::move(*store);
  }
  // The store's folder is created on first use, private to this user.
  const auto folder = config.storage.path.parent_path();
  if (!folder.empty() && !std::filesystem::exists(folder)) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) {
      throw std::runtime_error("cannot create storage folder " + folder.string() + ": " +
                               ec.message());
    }
    std::filesystem::permissions(folder, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  SqliteStoreOptions options;
  options.path = config.storage.path;
  options.busy_timeout = daemon ? kDaemonBusyTimeout : kCliBusyTimeout;
  if (daemon) {
    options.retention = config.storage.retention;
    options.retention_interval = config.storage.retention_interval;
  }
  options.metrics = metrics;
  options.process_name = daemon ? "serve" : "cli";  // in KEK lease messages (keys retire)
  auto store = open_sqlite_store(options, kek ? std::move(kek) : open_kek(config));
  if (!store) {
    throw std::runtime_error("cannot open store " + config.storage.path.string() + ": " +
                             store.error().message());
  }
  return std::move(*store);
}

int materials_get(const Config& config, const std::string& wallet_id,
                  const std::optional<std::string>& source, std::ostream& out, std::ostream& err) {
  const auto sources = dynamic_sources(config, source);
  if (sources.empty()) {
    err << "error: " << (source ? "no source named '" + *source + "'" : "no dynamic source")
        << " in " << config.file.string() << "\n";
    return kExitError;
  }
  auto store = open_store(config);
  std::optional<StoredMaterials> found;
  for (const auto* s : sources) {
    auto m = store->materials(s->name, wallet_id);
    if (!m) {
      err << "error: cannot read materials: " << m.error().message() << "\n";
      return kExitError;
    }
    if (m->has_value()) {
      if (found) {
        err << "error: wallet " << wallet_id << " has materials in several sources; use --source\n";
        return kExitError;
      }
      found = std::move(**m);
    }
  }
  const std::string subject = (found                 ? found->source
                               : sources.size() == 1 ? sources.front()->name
                                                     : std::string("*")) +
                              "/" + wallet_id;
  const auto seq =
      audit_cli_access(*store, "materials.read", subject, found ? "ok" : "not_found", err);
  if (!seq) return kExitError;
  if (!found) {
    err << "not found: no materials for wallet " << wallet_id << " (never delegated or revoked)\n";
    return kExitNotFound;
  }
  out.flush();
  write_line(out, render_materials(*found));
  log(LogLevel::info, "materials read",
      {{"actor", "cli"},
       {"source", found->source},
       {"wallet_id", found->wallet_id},
       {"audit_seq", *seq}});
  return kExitOk;
}

int events_list(const Config& config, const std::optional<std::string>& source,
                const std::string& after, std::size_t limit, std::ostream& out, std::ostream& err) {
  auto store = open_store(config);
  EventQuery q;
  q.source = source;
  q.after = after;
  q.limit = limit;
  auto page = store->list_events(q);
  if (!page) {
    err << "error: cannot list events: " << page.error().message() << "\n";
    return kExitError;
  }
  for (const auto& m : page->events) out << render_event_meta(m) << "\n";
  return kExitOk;
}

int events_show(const Config& config, const std::string& id, std::ostream& out, std::ostream& err) {
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(id.data(), id.data() + id.size(), n);
  auto store = open_store(config);
  if (ec != std::errc() || ptr != id.data() + id.size()) {
    // Not a numeric id: look the idempotency key up in every source.
    std::optional<std::int64_t> hit;
    for (const auto& s : config.sources) {
      auto f = store->find_event(s.name, id);
      if (f && f->has_value()) hit = **f;
    }
    if (!hit) {
      if (!audit_cli_access(*store, "event.read", id, "not_found", err)) return kExitError;
      err << "not found: no event " << id << "\n";
      return kExitNotFound;
    }
    n = *hit;
  }
  auto meta = store->event_meta(n);
  if (!meta || !meta->has_value()) {
    if (!audit_cli_access(*store, "event.read", id, "not_found", err)) return kExitError;
    err << "not found: no event " << id << "\n";
    return kExitNotFound;
  }
  auto payload = store->event_payload(n);
  if (!payload) {
    err << "error: cannot open event " << id << ": " << payload.error().message() << "\n";
    return kExitError;
  }
  const auto seq = audit_cli_access(*store, "event.read", std::to_string(n), "ok", err);
  if (!seq) return kExitError;
  write_line(out, render_event(**meta, *payload));
  log(LogLevel::info, "event read", {{"actor", "cli"}, {"id", n}, {"audit_seq", *seq}});
  return kExitOk;
}

int reprocess(const Config& config, std::ostream& out, std::ostream& err) {
  auto store = open_store(config);
  auto sources = load_sources(config);
  auto results = reprocess_failures(*store, sources, cli_actor());
  if (!results) {
    err << "error: cannot list failed events: " << results.error().message() << "\n";
    return kExitError;
  }
  int failures = 0;
  for (const auto& r : *results) {
    if (r.failed) ++failures;
    if (r.audit_error) {
      err << "error: cannot write the audit record of event " << r.id << ": "
          << r.audit_error.message() << "\n";
      ++failures;
    }
    out << "{\"id\":\"" << r.id << "\",\"eventId\":" << json_quoted(r.event_id)
        << ",\"result\":" << json_quoted(r.outcome) << "}\n";
    log(LogLevel::info, "reprocess", {{"actor", "cli"}, {"id", r.id}, {"result", r.outcome}});
  }
  store->close();
  return failures == 0 ? kExitOk : kExitError;
}

int nodit_gaps(const Config& config, const std::optional<std::string>& source, std::ostream& out,
               std::ostream& err) {
  std::vector<const SourceConfig*> sources;
  for (const auto& s : config.sources) {
    if (s.provider == Provider::nodit && (!source || s.name == *source)) sources.push_back(&s);
  }
  if (sources.empty()) {
    err << "error: " << (source ? "no nodit source named '" + *source + "'" : "no nodit source")
        << " in " << config.file.string() << "\n";
    return kExitError;
  }
  auto store = open_store(config);
  for (const auto* s : sources) {
    auto seqs = store->sequences(s->name);
    auto unsequenced = store->count_events_with_key_prefix(s->name, "content:");
    if (!seqs || !unsequenced) {
      err << "error: cannot read sequence state of " << s->name << "\n";
      return kExitError;
    }
    for (const auto& q : *seqs) {
      std::uint64_t count = 0;
      for (const auto& g : q.gaps) count += g.size();
      std::string line = "{\"source\":" + json_quoted(q.source);
      line += ",\"subscriptionId\":" + json_quoted(q.subscription_id);
      line += ",\"highestContiguous\":" + std::to_string(q.contiguous);
      line += ",\"highest\":" + std::to_string(q.highest);
      line += ",\"missingCount\":" + std::to_string(count);
      line += ",\"missing\":[";
      std::uint64_t listed = 0;
      for (const auto& g : q.gaps) {
        for (std::uint64_t n = g.first; n <= g.last && listed < kMaxListedMissing; ++n, ++listed) {
          if (listed > 0) line += ',';
          line += std::to_string(n);
        }
      }
      line += "],\"missingRanges\":[";
      for (std::size_t i = 0; i < q.gaps.size(); ++i) {
        if (i > 0) line += ',';
        line += "[" + std::to_string(q.gaps[i].first) + "," + std::to_string(q.gaps[i].last) + "]";
      }
      line += "],\"unsequencedMessages\":" + std::to_string(*unsequenced) + "}";
      out << line << "\n";
    }
  }
  return kExitOk;
}

}  // namespace hookvault
