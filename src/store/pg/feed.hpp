// The events feed on PostgreSQL (schema.hpp, THE EVENTS FEED): pages of
// events in (txid, id) order up to the oldest running transaction, so a
// consumer that passes each page's `next` back never skips an event that
// commits late, whatever the instances writing.
//
// The token is "<txid>.<id>" of the last event returned ("" = from the
// start); it is opaque to consumers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hookvault/error.hpp"

namespace hookvault::store::pg::feed {

struct Cursor {
  std::uint64_t txid = 0;
  std::int64_t row_id = 0;
};

// "" is the start; "<txid>.<id>" with both decimal, without signs or
// leading zeros. Errc::invalid_field otherwise.
Result<Cursor> parse_token(std::string_view token);
std::string token(const Cursor& c);

// One page. $1 txid (text, cast to xid8), $2 id, $3 source (NULL: every
// source), $4 limit. Columns: id, txid (text), then kColumns of the event.
inline constexpr char kPage[] =
    "SELECT id, txid::text AS txid_text, source, idempotency_key, event_name, message_id, "
    "event_time,"
    " wallet_id, received_at_ms, origin, materials_state, coalesce(failure_reason, ''),"
    " payload IS NULL"
    " FROM events"
    " WHERE (txid, id) > ($1::text::xid8, $2::bigint)"
    "   AND txid < pg_snapshot_xmin(pg_current_snapshot())"
    "   AND ($3::text IS NULL OR source = $3::text)"
    " ORDER BY events.txid, events.id LIMIT $4::bigint";  // not the text column

}  // namespace hookvault::store::pg::feed
