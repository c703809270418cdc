// The webhook pipeline (contract in hookvault/pipeline.hpp). One delivery
// reads top to bottom in handle_webhook(): admission (pipeline/admission.hpp:
// the plan or one refusal, answered at once), then for a delegation the
// envelopes opened on the pool (open_envelopes), then the store (store), then
// the reply (reply). What a delivery needs across threads is its Flight.
#include "hookvault/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>

#include "hookvault/bytes.hpp"
#include "hookvault/log.hpp"
#include "pipeline/admission.hpp"

namespace hookvault {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A delegation's reply says what became of its materials; other events' do not.
enum class MaterialsField { omit, include };

Reply stored_reply(const WriteResult& w, std::string_view idempotency_key,
                   MaterialsField materials) {
  Reply r;
  r.status = 200;
  r.body = w.duplicate ? R"({"status":"duplicate","id":")" : R"({"status":"accepted","id":")";
  r.body += std::to_string(w.row_id);
  r.body += R"(","eventId":")";
  json_escape(idempotency_key, r.body);
  r.body += '"';
  if (materials == MaterialsField::include) {
    r.body += R"(,"materials":")";
    r.body += materials_state_name(w.materials);
    r.body += '"';
  }
  r.body += '}';
  return r;
}

}  // namespace

// One admitted delivery on its way to the store and back. Answered once: a
// pool job that threw after it handed its request to the store is answered by
// its failure handler or by the store's completion, whichever comes first.
struct Pipeline::Flight {
  std::shared_ptr<const Source> source;  // kept alive across a reload
  std::function<void(Reply)> done;
  std::string request_id;
  detail::Plan plan;
  Json body;               // a delegation's envelopes, until they are opened
  std::string event_name;  // for the reply, after the request went to the store
  std::string idempotency_key;
  Clock::time_point queued{};
  std::atomic<bool> answered{false};
};

Pipeline::Pipeline(std::vector<std::shared_ptr<const Source>> sources, Store& store, WorkPool& pool,
                   Metrics& metrics)
    : sources_(std::make_shared<const Sources>(std::move(sources))),
      store_(store),
      pool_(pool),
      signature_failures_(metrics.counter("hookvault_signature_failures_total",
                                          "Deliveries refused for a missing or wrong signature",
                                          {"source"})),
      signed_form_mismatches_(metrics.counter(
          "hookvault_signed_form_mismatches_total",
          "Deliveries refused because only their compact form is signed and they mean otherwise",
          {"source"})),
      decrypt_failures_(metrics.counter("hookvault_decrypt_failures_total",
                                        "Delegations stored whose materials did not decrypt",
                                        {"source"})),
      duplicates_(metrics.counter("hookvault_duplicates_total",
                                  "Deliveries whose idempotency key was already stored",
                                  {"source"})),
      history_replaced_(metrics.counter(
          "hookvault_history_copies_replaced_total",
          "Signed deliveries that replaced the history API's copy of their message", {"source"})),
      stored_(metrics.counter("hookvault_events_stored_total",
                              "Events newly stored, by source and event name",
                              {"source", "event"})),
      overloaded_(metrics.counter(
          "hookvault_overloaded_total",
          "Deliveries refused with 503 because the decryption queue was full", {"source"})),
      forbidden_(metrics.counter("hookvault_forbidden_total",
                                 "Deliveries refused with 403: client address outside allow_from",
                                 {"source"})),
      stage_seconds_(metrics.histogram("hookvault_stage_seconds",
                                       "Time spent in each stage of a webhook delivery",
                                       {"source", "stage"})) {}

bool Pipeline::ready() const noexcept {
  if (draining_.load() || !store_.writable()) return false;
  if (kek_coverage_ != nullptr && !kek_coverage_->covered()) return false;
  const auto sources = sources_.load();
  return std::all_of(sources->begin(), sources->end(), [](const auto& s) {
    return s->verifier.secret_count() > 0 &&
           (!detail::provider_spec(s->config.provider).needs_rsa_keys ||
            (s->decryptor && s->decryptor->key_count() > 0));
  });
}

void Pipeline::reload(Sources sources) {
  sources_.store(std::make_shared<const Sources>(std::move(sources)));
}

void Pipeline::handle(Delivery delivery, std::function<void(Reply)> done) {
  const std::string_view target = delivery.target;
  const std::string_view path = target.substr(0, target.find('?'));
  const bool get = delivery.method == "GET" || delivery.method == "HEAD";
  if (path == "/healthz") {
    done(get ? json_reply(200, R"({"status":"ok"})") : error_reply(Errc::method_not_allowed));
    return;
  }
  if (path == "/readyz") {
    if (!get) {
      done(error_reply(Errc::method_not_allowed));
    } else {
      done(ready() ? json_reply(200, R"({"status":"ready"})")
                   : json_reply(503, R"({"status":"not_ready"})"));
    }
    return;
  }
  const auto sources = sources_.load();
  const auto source = std::find_if(sources->begin(), sources->end(),
                                   [path](const auto& s) { return s->config.path == path; });
  if (source == sources->end()) {
    done(error_reply(Errc::not_found));
    return;
  }
  if (delivery.method != "POST") {
    done(error_reply(Errc::method_not_allowed));
    return;
  }
  handle_webhook(*source, std::move(delivery), std::move(done));
}

void Pipeline::handle_webhook(const std::shared_ptr<const Source>& source, Delivery delivery,
                              std::function<void(Reply)> done) {
  const std::string& name = source->config.name;

  // 1. Admission: the plan, or one refusal answered now.
  const auto verify_started = Clock::now();
  auto admitted = detail::admit(*source, delivery, now_ms());
  if (!admitted) {
    count_refusal(*source, delivery, admitted.error().code);
    Reply r = error_reply(admitted.error());
    r.source = name;
    done(std::move(r));
    return;
  }
  stage_seconds_.with({name, "verify"}).observe(seconds_since(verify_started));
  auto flight = std::make_shared<Flight>();
  flight->source = source;
  flight->done = std::move(done);
  flight->request_id = std::move(delivery.request_id);
  flight->plan = std::move(admitted->plan);
  flight->body = std::move(admitted->body);
  flight->event_name = flight->plan.request.event.event_name;
  flight->idempotency_key = flight->plan.request.event.idempotency_key;
  if (detail::provider_spec(source->config.provider).sequenced &&
      !flight->plan.request.event.sequence) {
    log(LogLevel::warn, "nodit message without sequence number; keyed by content",
        {{"request_id", flight->request_id},
         {"source", name},
         {"event_id", flight->idempotency_key}});
  }

  // 2. A delegation's envelopes are opened on the pool: RSA work never runs here.
  if (!flight->plan.decrypt) {
    store(flight);
    return;
  }
  flight->queued = Clock::now();
  const bool posted = pool_.try_post(
      [this, flight] {
        open_envelopes(*flight);
        store(flight);
      },
      // The job threw (the pool counted and logged it): nothing was acknowledged.
      [this, flight] { answer(*flight, error_reply(Errc::internal)); });
  if (!posted) {
    overloaded_.with({name}).inc();
    answer(*flight, error_reply(Errc::overloaded));
  }
}

// The metrics and log lines of a refusal (admission itself counts nothing).
void Pipeline::count_refusal(const Source& source, const Delivery& delivery, Errc code) {
  const std::string& name = source.config.name;
  switch (code) {
    case Errc::forbidden:
      forbidden_.with({name}).inc();
      if (std::uint64_t refused = 0; forbidden_warning_.due(refused)) {
        // This request's ids, and how many were refused since the last line.
        log(LogLevel::warn, "client address not in allow_from",
            {{"request_id", delivery.request_id},
             {"source", name},
             {"client", delivery.client},
             {"refused", refused}});
      }
      break;
    case Errc::invalid_signature:
      signature_failures_.with({name}).inc();
      break;
    case Errc::signed_form_mismatch:
      signed_form_mismatches_.with({name}).inc();
      log(LogLevel::warn, "body means something other than the compact form its signature covers",
          {{"request_id", delivery.request_id}, {"source", name}});
      break;
    default:
      break;
  }
}

// On a pool thread: opens a new delegation's envelopes into its request (or
// records why they did not open). A delegation already stored is not opened
// again: the store answers it as a duplicate.
void Pipeline::open_envelopes(Flight& flight) {
  const std::string& name = flight.source->config.name;
  stage_seconds_.with({name, "queue"}).observe(seconds_since(flight.queued));
  WriteRequest& request = flight.plan.request;
  auto existing = store_.find_event(request.event.source, request.event.idempotency_key);
  if (existing && existing->has_value()) return;  // (a failed check: the write decides)
  const auto decrypt_started = Clock::now();
  auto opened = decrypt_delegation(*flight.source, flight.body);
  stage_seconds_.with({name, "decrypt"}).observe(seconds_since(decrypt_started));
  flight.body = Json();
  if (opened) {
    request.materials = std::move(*opened);
    return;
  }
  request.decrypt_failure = opened.error().describe();
  log(LogLevel::warn, "delegation decrypt failed",
      {{"request_id", flight.request_id},
       {"source", name},
       {"event_id", flight.idempotency_key},
       {"reason", *request.decrypt_failure}});
}

// 3. The store: the reply follows its durable commit (or its failure).
void Pipeline::store(const std::shared_ptr<Flight>& flight) {
  MetricSeries& store_seconds = stage_seconds_.with({flight->source->config.name, "store"});
  store_.submit(std::move(flight->plan.request),
                [this, flight, &store_seconds, started = Clock::now()](Result<WriteResult> r) {
                  store_seconds.observe(seconds_since(started));
                  reply(*flight, r);
                });
}

// 4. The reply to a delivery the store answered.
void Pipeline::reply(Flight& flight, const Result<WriteResult>& written) {
  const std::string& name = flight.source->config.name;
  if (!written) {
    log(LogLevel::error, "store write failed",
        {{"request_id", flight.request_id},
         {"source", name},
         {"error", written.error().message()}});
    answer(flight, error_reply(Errc::store_unavailable));
    return;
  }
  if (written->duplicate) {
    duplicates_.with({name}).inc();
  } else {
    if (written->replaced_history) {
      history_replaced_.with({name}).inc();
      log(LogLevel::warn, "signed delivery replaced the history API's copy of its message",
          {{"request_id", flight.request_id},
           {"source", name},
           {"event_id", flight.idempotency_key},
           {"id", written->row_id}});
    }
    stored_.with({name, flight.event_name}).inc();
    if (written->materials == MaterialsState::decrypt_failed) {
      decrypt_failures_.with({name}).inc();
    }
  }
  answer(flight,
         stored_reply(*written, flight.idempotency_key,
                      flight.plan.decrypt ? MaterialsField::include : MaterialsField::omit));
}

void Pipeline::answer(Flight& flight, Reply reply) {
  if (flight.answered.exchange(true)) return;
  reply.source = flight.source->config.name;
  reply.event_name = flight.event_name;
  reply.event_id = flight.idempotency_key;  // the request log's event_id
  flight.done(std::move(reply));
}

}  // namespace hookvault
