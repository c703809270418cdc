#include "hookvault/handler.hpp"

#include "hookvault/log.hpp"

namespace hookvault {
namespace {
constexpr unsigned kRetryAfterOverloadedS = 1;
constexpr unsigned kRetryAfterStoreS = 5;
}  // namespace

Reply error_reply(Errc e, std::string_view field) {
  Reply r;
  r.status = http_status(e);
  r.body = "{\"error\":\"";
  r.body += error_name(e);
  r.body += '"';
  if (!field.empty()) {
    r.body += ",\"field\":\"";
    json_escape(field, r.body);
    r.body += '"';
  }
  r.body += '}';
  if (e == Errc::overloaded) r.retry_after_s = kRetryAfterOverloadedS;
  if (e == Errc::store_unavailable || e == Errc::kek_unavailable) {
    r.retry_after_s = kRetryAfterStoreS;
  }
  return r;
}

Reply error_reply(const Refusal& refusal) {
  Reply r = error_reply(refusal.code, refusal.field);
  r.event_name = refusal.event_name;
  return r;
}

Reply json_reply(unsigned status, std::string_view body) {
  Reply r;
  r.status = status;
  r.body = body;
  return r;
}

}  // namespace hookvault
