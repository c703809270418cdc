#include "hookvault/pipeline.hpp"
#include "hookvault/bytes.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>

#include "hookvault/log.hpp"
#include "pipeline/plan.hpp"

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

// "application/json", "application/json; charset=utf-8", "application/cloudevents+json".
bool is_json_media_type(std::string_view ct) {
  ct = trim_ows(ct.substr(0, ct.find(';')));
  if (iequals_ascii(ct, "application/json")) return true;
  return ct.size() > 5 && iequals_ascii(ct.substr(0, 12), "application/") &&
         iequals_ascii(ct.substr(ct.size() - 5), "+json");
}

Reply stored_reply(const WriteResult& w, std::string_view event_id, bool delegation) {
  Reply r;
  r.status = 200;
  r.body = w.duplicate ? R"({"status":"duplicate","id":")" : R"({"status":"accepted","id":")";
  r.body += std::to_string(w.row_id);
  r.body += R"(","eventId":")";
  json_escape(event_id, r.body);
  r.body += '"';
  if (delegation) {
    r.body += R"(,"materials":")";
    r.body += materials_state_name(w.materials);
    r.body += '"';
  }
  r.body += '}';
  return r;
}

// `done` that answers only its first call: a pool job that threw after it
// handed its request to the store is answered by its failure handler or by
// the store's completion, whichever comes first, never by both.
std::function<void(Reply)> answer_once(std::function<void(Reply)> done) {
  struct Once {
    std::atomic<bool> answered{false};
    std::function<void(Reply)> done;
  };
  auto once = std::make_shared<Once>();
  once->done = std::move(done);
  return [once](Reply r) {
    if (!once->answered.exchange(true)) once->done(std::move(r));
  };
}

}  // namespace

// Submits to the store and observes the "store" stage (submit to durable
// commit) in `series` before `done` runs.
template <class Done>
void Pipeline::submit_timed(MetricSeries& series, WriteRequest request, Done done) {
  store_.submit(std::move(request), [&series, started = Clock::now(),
                                     done = std::move(done)](Result<WriteResult> r) mutable {
    series.observe(seconds_since(started));
    done(r);
  });
}

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
  const auto sources = sources_.load();
  return std::all_of(sources->begin(), sources->end(), [](const auto& s) {
    return s->verifier.secret_count() > 0 && (s->config.provider != Provider::dynamic ||
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

void Pipeline::handle_webhook(const std::shared_ptr<const Source>& source_ptr, Delivery delivery,
                              std::function<void(Reply)> done) {
  // The pool job keeps `source_ptr` alive across a reload.
  const Source& source = *source_ptr;
  auto finish = [&source, &done](Reply r) {
    r.source = source.config.name;
    done(std::move(r));
  };
  if (!source.config.allow_from.empty() &&
      !any_contains(source.config.allow_from, delivery.client_ip)) {
    forbidden_.with({source.config.name}).inc();
    if (std::uint64_t refused = 0; forbidden_warning_.due(refused)) {
      // This request's ids, and how many were refused since the last line.
      log(LogLevel::warn, "client address not in allow_from",
          {{"request_id", delivery.request_id},
           {"source", source.config.name},
           {"client", delivery.client},
           {"refused", refused}});
    }
    finish(error_reply(Errc::forbidden));
    return;
  }
  if (!is_json_media_type(delivery.content_type)) {
    finish(error_reply(Errc::unsupported_media_type));
    return;
  }
  const std::string_view header_name = source.config.provider == Provider::dynamic
                                           ? std::string_view("x-dynamic-signature-256")
                                           : std::string_view("x-signature");
  const std::string_view prefix =
      source.config.provider == Provider::dynamic ? std::string_view("sha256=") : "";
  const auto verify_started = Clock::now();
  auto mac = parse_signature_header(delivery.header(header_name), prefix);
  if (!mac) {
    signature_failures_.with({source.config.name}).inc();
    finish(error_reply(Errc::invalid_signature));
    return;
  }
  // From here on only the signed bytes exist: they are what is stored.
  auto verified = source.verifier.verify_delivery(std::move(delivery.body), *mac);
  if (!verified && to_errc(verified.error()) == Errc::invalid_signature) {
    signature_failures_.with({source.config.name}).inc();
  }
  if (!verified && to_errc(verified.error()) == Errc::signed_form_mismatch) {
    signed_form_mismatches_.with({source.config.name}).inc();
    log(LogLevel::warn, "body means something other than the compact form its signature covers",
        {{"request_id", delivery.request_id}, {"source", source.config.name}});
  }
  if (!verified) {
    finish(error_reply(to_errc(verified.error())));
    return;
  }
  auto planned =
      source.config.provider == Provider::dynamic
          ? detail::plan_dynamic(source, verified->body, std::move(verified->signed_body), now_ms())
          : detail::plan_nodit(source, verified->body, std::move(verified->signed_body),
                               Origin::signature, now_ms());
  if (auto* rej = std::get_if<detail::Rejection>(&planned)) {
    Reply r = error_reply(rej->code, rej->field);
    if (verified->body.is_object()) {
      for (const char* name_key : {"eventName", "eventType"}) {
        auto it = verified->body.find(name_key);
        if (it != verified->body.end() && it->is_string()) r.event_name = it->get<std::string>();
      }
    }
    finish(std::move(r));
    return;
  }
  auto plan = std::get<detail::Plan>(std::move(planned));
  stage_seconds_.with({source.config.name, "verify"}).observe(seconds_since(verify_started));
  if (!plan.request.event.sequence && source.config.provider == Provider::nodit) {
    log(LogLevel::warn, "nodit message without sequence number; keyed by content",
        {{"request_id", delivery.request_id},
         {"source", source.config.name},
         {"event_id", plan.request.event.idempotency_key}});
  }

  // A delegation's pool job may throw; its failure handler and the store's
  // completion may then both answer, and only the first answer is sent.
  if (plan.decrypt) done = answer_once(std::move(done));
  // The completion outlives this call: capture by value.
  auto store_done = [this, done, source_name = source.config.name, delegation = plan.decrypt,
                     event_name = plan.request.event.event_name,
                     event_id = plan.request.event.idempotency_key,
                     request_id = delivery.request_id](Result<WriteResult> r) {
    Reply reply;
    if (r) {
      if (r->duplicate) {
        duplicates_.with({source_name}).inc();
      } else {
        if (r->replaced_history) {
          history_replaced_.with({source_name}).inc();
          log(LogLevel::warn, "signed delivery replaced the history API's copy of its message",
              {{"request_id", request_id},
               {"source", source_name},
               {"event_id", event_id},
               {"id", r->row_id}});
        }
        stored_.with({source_name, event_name}).inc();
        if (r->materials == MaterialsState::decrypt_failed) {
          decrypt_failures_.with({source_name}).inc();
        }
      }
      reply = stored_reply(*r, event_id, delegation);
    } else {
      log(LogLevel::error, "store write failed",
          {{"request_id", request_id}, {"source", source_name}, {"error", r.error().message()}});
      reply = error_reply(Errc::store_unavailable);
    }
    reply.source = source_name;
    reply.event_name = event_name;
    reply.event_id = event_id;
    done(std::move(reply));
  };

  if (!plan.decrypt) {
    submit_timed(stage_seconds_.with({source.config.name, "store"}), std::move(plan.request),
                 std::move(store_done));
    return;
  }

  // wallet.delegation.created: RSA work belongs on the pool, never here.
  auto shared_plan = std::make_shared<detail::Plan>(std::move(plan));
  auto body = std::make_shared<Json>(std::move(verified->body));
  const auto queued = Clock::now();
  // The job threw (the pool counted and logged it): nothing was acknowledged.
  auto on_failure = [done, source_name = source.config.name,
                     event_name = shared_plan->request.event.event_name,
                     event_id = shared_plan->request.event.idempotency_key] {
    Reply r = error_reply(Errc::internal);
    r.source = source_name;
    r.event_name = event_name;
    r.event_id = event_id;
    done(std::move(r));
  };
  auto job = [this, source_ptr, shared_plan, body, store_done, queued,
              request_id = delivery.request_id]() mutable {
    const Source& src = *source_ptr;
    stage_seconds_.with({src.config.name, "queue"}).observe(seconds_since(queued));
    WriteRequest& req = shared_plan->request;
    auto existing = store_.find_event(req.event.source, req.event.idempotency_key);
    if (!existing || !existing->has_value()) {
      // New (or the check failed: the write decides). Decrypt first.
      const auto decrypt_started = Clock::now();
      DecryptOutcome outcome = decrypt_delegation(src, *body);
      stage_seconds_.with({src.config.name, "decrypt"}).observe(seconds_since(decrypt_started));
      if (outcome.materials) {
        req.materials = std::move(outcome.materials);
      } else {
        log(LogLevel::warn, "delegation decrypt failed",
            {{"request_id", request_id},
             {"source", src.config.name},
             {"event_id", req.event.idempotency_key},
             {"reason", outcome.failure}});
        req.decrypt_failure = std::move(outcome.failure);
      }
    }
    submit_timed(stage_seconds_.with({src.config.name, "store"}), std::move(req),
                 std::move(store_done));
  };
  const bool posted = pool_.try_post(std::move(job), std::move(on_failure));
  if (!posted) {
    overloaded_.with({source.config.name}).inc();
    Reply r = error_reply(Errc::overloaded);
    r.event_name = shared_plan->request.event.event_name;
    r.event_id = shared_plan->request.event.idempotency_key;
    finish(std::move(r));
  }
}

}  // namespace hookvault
