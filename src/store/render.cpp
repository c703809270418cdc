#include "hookvault/render.hpp"

#include "hookvault/log.hpp"

namespace hookvault {
namespace {

void append(SecretText& out, std::string_view s) { out.insert(out.end(), s.begin(), s.end()); }

void field(SecretText& out, std::string_view key, std::string_view value, bool first = false) {
  if (!first) out.push_back(',');
  out.push_back('"');
  append(out, key);
  append(out, "\":\"");
  json_escape_to(value, out);
  out.push_back('"');
}

}  // namespace

SecretText render_materials(const StoredMaterials& m) {
  SecretText text;
  text.reserve(256 + 2 * (m.share.size() + m.api_key.size()));
  text.push_back('{');
  field(text, "walletId", m.wallet_id, true);
  field(text, "userId", m.user_id);
  field(text, "chain", m.chain);
  if (m.share_set_id) {
    field(text, "shareSetId", *m.share_set_id);
  } else {
    append(text, ",\"shareSetId\":null");
  }
  field(text, "eventId", m.event_id);
  field(text, "createdAt", m.created_at);
  field(text, "delegatedShare", m.share.reveal_string());
  field(text, "walletApiKey", m.api_key.reveal_string());
  text.push_back('}');
  return text;
}

std::string render_event_meta(const EventMeta& m) {
  std::string o = "{\"id\":\"" + std::to_string(m.row_id) + "\"";
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

SecretText render_event(const EventMeta& m, const std::optional<SecretBytes>& payload) {
  std::string meta = render_event_meta(m);
  meta.pop_back();  // reopen the object to add the payload
  SecretText text;
  text.reserve(meta.size() + 16 + (payload ? payload->size() : 0));
  append(text, meta);
  append(text, ",\"payload\":");
  if (payload) {
    append(text, payload->reveal_string());  // verified strict JSON, verbatim
  } else {
    append(text, "null");
  }
  text.push_back('}');
  return text;
}

}  // namespace hookvault
