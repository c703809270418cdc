// JSON views of what the store holds, shared by the CLI (`materials get`,
// `events list|show`) and the admin API, so both print the same objects:
//
//   materials: {"walletId","userId","chain","shareSetId","eventId","createdAt",
//               "delegatedShare","walletApiKey"}          (README.md)
//   event:     {"id","source","eventId","eventName"[,"messageId"][,"eventTime"]
//               [,"walletId"],"receivedAtMs","origin","materials"
//               [,"failureReason"],"payloadRedacted"[,"payload"]}
//
// Secret-bearing views are SecretText (wiped on release); none ends with a
// newline.
//
// (json_quoted, for the plain fields, is in log.hpp.)
//
// Thread-safety: stateless functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "hookvault/secret.hpp"
#include "hookvault/store.hpp"

namespace hookvault {

SecretText render_materials(const StoredMaterials& m);
std::string render_event_meta(const EventMeta& m);
// The metadata plus "payload": the verified JSON body verbatim, or null when it
// was redacted.
SecretText render_event(const EventMeta& m, const std::optional<SecretBytes>& payload);

}  // namespace hookvault
