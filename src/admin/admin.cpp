#include "hookvault/admin.hpp"

#include <atomic>
#include <charconv>
#include <optional>

#include "hookvault/audit.hpp"
#include "hookvault/bytes.hpp"  // hex_digit, parse_int
#include "hookvault/log.hpp"
#include "hookvault/render.hpp"
#include "hookvault/reprocess.hpp"

namespace hookvault {
namespace {

constexpr std::string_view kMaterialsRead = "materials:read";
constexpr std::string_view kEventsRead = "events:read";
constexpr std::string_view kMetricsRead = "metrics:read";
constexpr std::string_view kAdmin = "admin";
constexpr std::string_view kPrometheusType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::size_t kDefaultEventsPage = 100;

// Roles as bits, one each. A route requires its role's bit; granting
// "admin" grants every bit (granted_bits), so admin holds every role.
unsigned role_bit(std::string_view role) {
  if (role == kMaterialsRead) return 1U << 0;
  if (role == kEventsRead) return 1U << 1;
  if (role == kMetricsRead) return 1U << 2;
  if (role == kAdmin) return 1U << 3;
  return 0;
}
unsigned granted_bits(std::string_view role) { return role == kAdmin ? ~0U : role_bit(role); }

std::unordered_map<std::string, unsigned> roles_of(const AdminConfig& config) {
  std::unordered_map<std::string, unsigned> roles;
  for (const AdminClient& c : config.clients) {
    unsigned granted = 0;
    for (const auto& role : c.roles) granted |= granted_bits(role);
    roles[c.subject_cn] = granted;
  }
  return roles;
}

// Percent-decoding of one path segment or query value ('+' is a space in
// queries). nullopt for a malformed escape or a decoded NUL or '/'.
std::optional<std::string> url_decode(std::string_view s, bool query) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      const int hi = i + 1 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (query && c == '+') {
      c = ' ';
    }
    if (c == '\0' || (!query && c == '/')) return std::nullopt;
    out += c;
  }
  return out;
}

// The value of `name` in the query string; nullopt when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view name,
                                       bool& malformed) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    auto value = url_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!value) malformed = true;
    return value;
  }
  return std::nullopt;
}

}  // namespace

// One admin request in flight: what the routes need after handle() returns.
struct AdminApi::Call {
  std::string cn;
  std::string query;
  std::string request_id;
  std::function<void(Reply)> done;

  // Only the first answer is sent: a pool job that threw after it answered
  // is also answered by its failure handler (offload).
  std::atomic<bool> answered{false};

  std::string actor() const { return "admin:" + cn; }
  void reply(Reply r) {
    if (!answered.exchange(true)) done(std::move(r));
  }
};

AdminApi::AdminApi(const AdminConfig& config, const Pipeline& pipeline, Store& store,
                   WorkPool& pool, Metrics& metrics)
    : pipeline_(pipeline),
      store_(store),
      pool_(pool),
      metrics_(metrics),
      denied_(metrics.counter("hookvault_admin_denied_total",
                              "Admin requests refused: no certificate, unknown client, missing "
                              "role or rate limit",
                              {"reason"})) {
  reload(config);
}

void AdminApi::reload(const AdminConfig& config) {
  roles_.store(std::make_shared<const Roles>(roles_of(config)));
  const auto limits = limits_.load();
  // Unchanged limits keep their buckets: a reload is no way around them.
  if (limits && limits->rate == config.rate_limit && limits->burst == config.rate_burst) return;
  limits_.store(std::make_shared<const Limits>(
      Limits{config.rate_limit, config.rate_burst,
             std::make_shared<RateLimiter>(config.rate_limit, config.rate_burst)}));
}

void AdminApi::handle(Delivery d, std::function<void(Reply)> done) {
  const std::string_view target = d.target;
  const auto qmark = target.find('?');
  const std::string_view path = target.substr(0, qmark);
  // Counts and logs a refusal; the caller answers.
  auto refused = [&](std::string_view reason) {
    denied_.with({reason}).inc();
    log(LogLevel::warn, "admin request refused",
        {{"request_id", d.request_id},
         {"peer", d.peer},
         {"client", d.client_cn},
         {"path", path},
         {"reason", reason}});
  };
  if (d.client_cn.empty()) {
    refused("no_certificate");
    return done(error_reply(Errc::client_certificate_required));
  }
  // The clients as configured now (a reload may have changed them).
  const auto roles = roles_.load();
  const auto grant = roles->find(d.client_cn);
  if (grant == roles->end()) {
    refused("unknown_client");
    return done(error_reply(Errc::forbidden));
  }
  if (auto decision = limits_.load()->limiter->try_acquire(d.client_cn); !decision.allowed) {
    refused("rate_limited");
    Reply r = error_reply(Errc::rate_limited);
    r.retry_after_s = decision.retry_after_s;
    return done(std::move(r));
  }

  // Route, then role.
  std::string_view role;
  std::string_view method = "GET";
  std::string argument;
  enum class Route { materials, events, event, metrics, reprocess } route;
  constexpr std::string_view kMaterialsPrefix = "/v1/materials/";
  constexpr std::string_view kEventsPrefix = "/v1/events/";
  if (path.starts_with(kMaterialsPrefix) && path.size() > kMaterialsPrefix.size()) {
    auto wallet = url_decode(path.substr(kMaterialsPrefix.size()), false);
    if (!wallet) {
      done(error_reply(Errc::invalid_field, "walletId"));
      return;
    }
    route = Route::materials;
    role = kMaterialsRead;
    argument = std::move(*wallet);
  } else if (path == "/v1/events") {
    route = Route::events;
    role = kEventsRead;
  } else if (path.starts_with(kEventsPrefix) && path.size() > kEventsPrefix.size()) {
    route = Route::event;
    role = kEventsRead;
    argument = std::string(path.substr(kEventsPrefix.size()));
  } else if (path == "/metrics") {
    route = Route::metrics;
    role = kMetricsRead;
  } else if (path == "/v1/reprocess") {
    route = Route::reprocess;
    role = kAdmin;
    method = "POST";
  } else {
    done(error_reply(Errc::not_found));
    return;
  }
  if (d.method != method) {
    done(error_reply(Errc::method_not_allowed));
    return;
  }
  const bool allowed = (grant->second & role_bit(role)) != 0;

  auto call = std::make_shared<Call>();
  call->cn = d.client_cn;
  call->query = qmark == std::string_view::npos ? "" : std::string(target.substr(qmark + 1));
  call->request_id = d.request_id;
  call->done = std::move(done);

  if (!allowed) {
    refused("missing_role");
    if (route != Route::materials && route != Route::event) {
      call->reply(error_reply(Errc::forbidden));
      return;
    }
    // A denied attempt at secret material is audited too.
    // Subjects as a granted read names them: "<source>/<walletId>", "<event id>".
    std::string action = "event.read";
    std::string subject = argument;
    if (route == Route::materials) {
      action = "materials.read";
      const auto names = materials_sources(call->query);
      subject = (names.empty() ? std::string("?") : names.front()) + "/" + argument;
    }
    store_.audit(AuditEntry{call->actor(), std::move(action), std::move(subject), "denied"},
                 [call](Result<std::int64_t>) { call->reply(error_reply(Errc::forbidden)); });
    return;
  }
  switch (route) {
    case Route::materials:
      return materials(call, std::move(argument));
    case Route::events:
      return list_events(call);
    case Route::event:
      return show_event(call, argument);
    case Route::metrics:
      return metrics(call);
    case Route::reprocess:
      return reprocess(call);
  }
}

void AdminApi::offload(const std::shared_ptr<Call>& call, std::function<void()> job) {
  const bool posted = pool_.try_post(std::move(job), [call] {
    // The job threw (the pool counted and logged it).
    call->reply(error_reply(Errc::internal));
  });
  if (!posted) call->reply(error_reply(Errc::overloaded));
}

// The sources a materials read looks in: ?source=NAME, else every dynamic
// source. Empty when the query is malformed or names no configured source.
std::vector<std::string> AdminApi::materials_sources(std::string_view query) const {
  bool malformed = false;
  auto source = query_param(query, "source", malformed);
  std::vector<std::string> names;
  if (malformed) return names;
  for (const auto& s : *pipeline_.sources()) {
    if (source ? s->config.name == *source : s->config.provider == Provider::dynamic) {
      names.push_back(s->config.name);
    }
  }
  return names;
}

void AdminApi::materials(const std::shared_ptr<Call>& call, std::string wallet_id) {
  std::vector<std::string> names = materials_sources(call->query);
  if (names.empty()) return call->reply(error_reply(Errc::invalid_field, "source"));
  offload(call, [this, call, wallet_id = std::move(wallet_id), names = std::move(names)] {
    std::optional<StoredMaterials> found;
    for (const auto& name : names) {
      auto m = store_.materials(name, wallet_id);
      if (!m) {
        log(LogLevel::error, "admin materials read failed",
            {{"request_id", call->request_id}, {"error", m.error().message()}});
        return call->reply(error_reply(
            to_errc(m.error()) == Errc::store_corrupt ? Errc::internal : Errc::store_unavailable));
      }
      if (!m->has_value()) continue;
      if (found) return call->reply(error_reply(Errc::invalid_field, "source"));  // ambiguous
      found = std::move(**m);
    }
    SecretText text;
    if (found) text = render_materials(*found);
    const std::string subject = (found ? found->source : names.front()) + "/" + wallet_id;
    found.reset();  // wipe the decrypted copy now
    release_after_audit(call, "materials.read", subject, std::move(text));
  });
}

void AdminApi::list_events(const std::shared_ptr<Call>& call) {
  bool malformed = false;
  EventQuery q;
  q.limit = kDefaultEventsPage;
  if (auto v = query_param(call->query, "source", malformed)) q.source = *v;
  if (auto v = query_param(call->query, "after", malformed)) {
    // The previous page's `next` token (store.hpp: EventQuery); the store
    // refuses one it cannot read.
    if (v->empty()) return call->reply(error_reply(Errc::invalid_field, "after"));
    q.after = *v;
  }
  if (auto v = query_param(call->query, "limit", malformed)) {
    auto n = parse_int(*v);
    if (!n || *n < 1 || *n > static_cast<std::int64_t>(kMaxEventsPage)) {
      return call->reply(error_reply(Errc::invalid_field, "limit"));
    }
    q.limit = static_cast<std::size_t>(*n);
  }
  if (malformed) return call->reply(error_reply(Errc::invalid_field, "query"));
  offload(call, [this, call, q] {
    auto page = store_.list_events(q);
    if (!page) {
      if (page.error() == Errc::invalid_field) {
        return call->reply(error_reply(Errc::invalid_field, "after"));
      }
      return call->reply(error_reply(Errc::store_unavailable));
    }
    std::string body = "{\"events\":[";
    for (std::size_t i = 0; i < page->events.size(); ++i) {
      if (i > 0) body += ',';
      body += render_event_meta(page->events[i]);
    }
    body += "],\"next\":" + json_quoted(page->next) + "}";
    call->reply(json_reply(200, body));
  });
}

void AdminApi::show_event(const std::shared_ptr<Call>& call, const std::string& id) {
  const auto n = parse_int(id);
  if (!n || *n <= 0) return call->reply(error_reply(Errc::not_found));
  offload(call, [this, call, id = *n] {
    auto meta = store_.event_meta(id);
    if (!meta) return call->reply(error_reply(Errc::store_unavailable));
    SecretText text;
    if (meta->has_value()) {
      auto payload = store_.event_payload(id);
      if (!payload) return call->reply(error_reply(Errc::store_unavailable));
      text = render_event(**meta, *payload);
    }
    release_after_audit(call, "event.read", std::to_string(id), std::move(text));
  });
}

void AdminApi::release_after_audit(const std::shared_ptr<Call>& call, std::string action,
                                   std::string subject, SecretText text) {
  const bool found = !text.empty();
  AuditEntry entry{call->actor(), action, subject, found ? "ok" : "not_found"};
  auto secret = std::make_shared<SecretText>(std::move(text));
  store_.audit(std::move(entry), [call, secret, action = std::move(action),
                                  subject = std::move(subject), found](Result<std::int64_t> seq) {
    if (!seq) {
      log(LogLevel::error, "audit append failed; secret withheld",
          {{"request_id", call->request_id}, {"action", action}, {"error", seq.error().message()}});
      return call->reply(error_reply(Errc::store_unavailable));
    }
    log(LogLevel::info, "secret read",
        {{"request_id", call->request_id},
         {"actor", call->actor()},
         {"action", action},
         {"subject", subject},
         {"found", found},
         {"audit_seq", *seq}});
    if (!found) return call->reply(error_reply(Errc::not_found));
    Reply r;
    r.status = 200;
    r.secret_body = std::move(*secret);
    call->reply(std::move(r));
  });
}

void AdminApi::metrics(const std::shared_ptr<Call>& call) {
  offload(call, [this, call] {
    Reply r;
    r.status = 200;
    r.content_type = kPrometheusType;
    r.body = metrics_.render();
    call->reply(std::move(r));
  });
}

void AdminApi::reprocess(const std::shared_ptr<Call>& call) {
  offload(call, [this, call] {
    // Each event's audit record is appended by reprocess_failures.
    auto results = reprocess_failures(store_, *pipeline_.sources(), call->actor());
    if (!results) return call->reply(error_reply(Errc::store_unavailable));
    std::string body = "{\"results\":[";
    bool first = true;
    for (const auto& r : *results) {
      if (r.audit_error) {
        log(LogLevel::error, "audit append failed during reprocess",
            {{"request_id", call->request_id}, {"id", r.id}, {"error", r.audit_error.message()}});
      }
      if (!first) body += ',';
      first = false;
      body += "{\"id\":\"" + std::to_string(r.id) + "\",\"eventId\":" + json_quoted(r.event_id) +
              ",\"result\":" + json_quoted(r.outcome) + "}";
    }
    body += "]}";
    log(LogLevel::info, "reprocess",
        {{"request_id", call->request_id}, {"actor", call->actor()}, {"events", results->size()}});
    call->reply(json_reply(200, body));
  });
}

}  // namespace hookvault
