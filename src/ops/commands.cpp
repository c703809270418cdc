#include <charconv>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <vector>

#include "hookvault/log.hpp"
#include "hookvault/ops.hpp"
#include "hookvault/pipeline.hpp"

namespace hookvault {
namespace {

// Output buffer for secret-bearing text: wiped when released.
using SecretText = std::vector<char, WipingAllocator<char>>;

void append(SecretText& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }

void field(SecretText& out, std::string_view key, std::string_view value, bool first = false) {
  if (!first) out.push_back(',');
  out.push_back('"');
  append(out, key);
  append(out, "\":\"");
  json_escape_to(value, out);
  out.push_back('"');
}

std::string json_quoted(std::string_view s) {
  std::string out = "\"";
  json_escape(s, out);
  out += '"';
  return out;
}

std::string meta_json(const EventMeta& m) {
  std::string o = "{\"id\":\"" + std::to_string(m.id) + "\"";
  o += ",\"source\":" + json_quoted(m.source);
  o += ",\"eventId\":" + json_quoted(m.idempotency_key);
  o += ",\"eventName\":" + json_quoted(m.event_name);
  if (!m.message_id.empty()) o += ",\"messageId\":" + json_quoted(m.message_id);
  if (!m.event_time.empty()) o += ",\"eventTime\":" + json_quoted(m.event_time);
  if (!m.wallet_id.empty()) o += ",\"walletId\":" + json_quoted(m.wallet_id);
  o += ",\"receivedAtMs\":" + std::to_string(m.received_at_ms);
  o += ",\"origin\":" + json_quoted(origin_name(m.origin));
  o += ",\"materials\":" + json_quoted(materials_state_name(m.materials));
  if (!m.failure_reason.empty()) o += ",\"failureReason\":" + json_quoted(m.failure_reason);
  o += std::string(",\"payloadRedacted\":") + (m.payload_redacted ? "true" : "false");
  o += "}";
  return o;
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

std::shared_ptr<const Kek> open_kek(const Config& config) {
  if (config.kek.provider != "file") {
    throw std::runtime_error("kek.provider '" + config.kek.provider +
                             "' is not available in this build");
  }
  return open_file_kek(config.kek.file);
}

std::unique_ptr<Store> open_store(const Config& config) {
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
  StoreOptions options;
  options.path = config.storage.path;
  auto store = Store::open(options, open_kek(config));
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
  if (!found) {
    err << "not found: no materials for wallet " << wallet_id << " (never delegated or revoked)\n";
    return kExitNotFound;
  }
  SecretText text;
  text.reserve(256 + 2 * (found->share.size() + found->api_key.size()));
  out.flush();
  text.push_back('{');
  field(text, "walletId", found->wallet_id, true);
  field(text, "userId", found->user_id);
  field(text, "chain", found->chain);
  if (found->share_set_id) {
    field(text, "shareSetId", *found->share_set_id);
  } else {
    append(text, ",\"shareSetId\":null");
  }
  field(text, "eventId", found->event_id);
  field(text, "createdAt", found->created_at);
  field(text, "delegatedShare", found->share.reveal_string());
  field(text, "walletApiKey", found->api_key.reveal_string());
  append(text, "}\n");
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.flush();
  log(LogLevel::info, "materials read",
      {{"actor", "cli"}, {"source", found->source}, {"wallet_id", found->wallet_id}});
  return kExitOk;
}

int events_list(const Config& config, const std::optional<std::string>& source, std::int64_t after,
                std::size_t limit, std::ostream& out, std::ostream& err) {
  auto store = open_store(config);
  EventQuery q;
  q.source = source;
  q.after = after;
  q.limit = limit;
  auto events = store->list_events(q);
  if (!events) {
    err << "error: cannot list events: " << events.error().message() << "\n";
    return kExitError;
  }
  for (const auto& m : *events) out << meta_json(m) << "\n";
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
      err << "not found: no event " << id << "\n";
      return kExitNotFound;
    }
    n = *hit;
  }
  auto meta = store->event_meta(n);
  if (!meta || !meta->has_value()) {
    err << "not found: no event " << id << "\n";
    return kExitNotFound;
  }
  auto payload = store->event_payload(n);
  if (!payload) {
    err << "error: cannot open event " << id << ": " << payload.error().message() << "\n";
    return kExitError;
  }
  std::string m = meta_json(**meta);
  m.pop_back();  // reopen the object to add the payload
  SecretText text;
  append(text, m);
  append(text, ",\"payload\":");
  if (payload->has_value()) {
    append(text, (*payload)->reveal_string());  // verified strict JSON, verbatim
  } else {
    append(text, "null");
  }
  append(text, "}\n");
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.flush();
  log(LogLevel::info, "event read", {{"actor", "cli"}, {"id", n}});
  return kExitOk;
}

int reprocess(const Config& config, std::ostream& out, std::ostream& err) {
  auto store = open_store(config);
  auto sources = load_sources(config);
  auto pending = store->decrypt_failures();
  if (!pending) {
    err << "error: cannot list failed events: " << pending.error().message() << "\n";
    return kExitError;
  }
  int failures = 0;
  for (const auto& meta : *pending) {
    const Source* source = nullptr;
    for (const auto& s : sources) {
      if (s->config.name == meta.source) source = s.get();
    }
    auto payload = store->event_payload(meta.id);
    std::string outcome_text;
    if (source == nullptr || !payload || !payload->has_value()) {
      outcome_text = source == nullptr ? "source no longer configured" : "payload unavailable";
      ++failures;
    } else {
      auto body = parse_strict((*payload)->reveal_string());
      DecryptOutcome outcome;
      if (body) {
        outcome = decrypt_delegation(*source, *body);
      } else {
        outcome.failure = "stored payload does not parse";
      }
      std::variant<DelegationMaterials, std::string> result;
      if (outcome.materials) {
        result = std::move(*outcome.materials);
      } else {
        result = outcome.failure;
      }
      auto state = store->resolve_decrypt_failure(meta.id, std::move(result));
      if (!state) {
        outcome_text = state.error().message();
        ++failures;
      } else {
        outcome_text = std::string(materials_state_name(*state));
        if (*state == MaterialsState::decrypt_failed) {
          outcome_text += ": " + outcome.failure;
          ++failures;
        }
      }
    }
    out << "{\"id\":\"" << meta.id << "\",\"eventId\":" << json_quoted(meta.idempotency_key)
        << ",\"result\":" << json_quoted(outcome_text) << "}\n";
    log(LogLevel::info, "reprocess", {{"actor", "cli"}, {"id", meta.id}, {"result", outcome_text}});
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
