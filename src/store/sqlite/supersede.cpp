// Redaction of superseded delegations (supersede.hpp).
#include "store/sqlite/supersede.hpp"

namespace hookvault::store::sqlite {
namespace {

// The wallet's delegations that a delegation stored at (?3 = event time,
// ?4 = idem_key) supersedes.
#define HOOKVAULT_SUPERSEDED_BY                                                        \
  "WHERE source = ?1 AND wallet_id = ?2 AND event_name = 'wallet.delegation.created' " \
  "AND (event_time_ms < ?3 OR (event_time_ms = ?3 AND idem_key < ?4)) "

// Every delegation older than its wallet's current materials (the same
// comparison, against the materials row).
#define HOOKVAULT_OLDER_THAN_CURRENT                                                      \
  "WHERE event_name = 'wallet.delegation.created' AND EXISTS (SELECT 1 FROM materials m " \
  "WHERE m.source = events.source AND m.wallet_id = events.wallet_id "                    \
  "AND (m.created_at_ms > events.event_time_ms "                                          \
  "OR (m.created_at_ms = events.event_time_ms AND m.event_id > events.idem_key))) "

#define HOOKVAULT_ZERO                                      \
  "UPDATE events SET payload = zeroblob(length(payload)), " \
  "wrapped_dek = zeroblob(length(wrapped_dek)) "
#define HOOKVAULT_REDACT \
  "UPDATE events SET payload = NULL, wrapped_dek = NULL, kek_id = NULL, kek_version = NULL "
#define HOOKVAULT_SETTLE "UPDATE events SET materials_state = 'superseded', failure_reason = NULL "

constexpr char kZeroSuperseded[] = HOOKVAULT_ZERO HOOKVAULT_SUPERSEDED_BY "AND payload IS NOT NULL";
constexpr char kRedactSuperseded[] =
    HOOKVAULT_REDACT HOOKVAULT_SUPERSEDED_BY "AND payload IS NOT NULL";
constexpr char kSettleSuperseded[] =
    HOOKVAULT_SETTLE HOOKVAULT_SUPERSEDED_BY "AND materials_state = 'decrypt_failed'";

constexpr char kZeroAllSuperseded[] =
    HOOKVAULT_ZERO HOOKVAULT_OLDER_THAN_CURRENT "AND payload IS NOT NULL";
constexpr char kRedactAllSuperseded[] =
    HOOKVAULT_REDACT HOOKVAULT_OLDER_THAN_CURRENT "AND payload IS NOT NULL";
constexpr char kSettleAllSuperseded[] =
    HOOKVAULT_SETTLE HOOKVAULT_OLDER_THAN_CURRENT "AND materials_state = 'decrypt_failed'";

#undef HOOKVAULT_SUPERSEDED_BY
#undef HOOKVAULT_OLDER_THAN_CURRENT
#undef HOOKVAULT_ZERO
#undef HOOKVAULT_REDACT
#undef HOOKVAULT_SETTLE

// Result<bool> does not convert from an error_code on its own (bool would).
Result<bool> failed(const boost::system::error_code& ec) {
  return {boost::system::in_place_error, ec};
}

constexpr char kRedactedOnce[] = "SELECT value FROM meta WHERE key = 'superseded_redacted'";
constexpr char kMarkRedactedOnce[] =
    "INSERT INTO meta (key, value) VALUES ('superseded_redacted', '1') "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

}  // namespace

Result<bool> redact_superseded(Connection& db, std::string_view source, std::string_view wallet_id,
                               std::int64_t event_time_ms, std::string_view event_id) {
  bool overwrote = false;
  for (const char* sql : {kZeroSuperseded, kRedactSuperseded, kSettleSuperseded}) {
    auto stmt = db.prepare(sql);
    if (!stmt) return failed(stmt.error());
    auto r = stmt->bind_text(1, source)
                 .bind_text(2, wallet_id)
                 .bind_int64(3, event_time_ms)
                 .bind_text(4, event_id)
                 .run();
    if (!r) return failed(r.error());
    if (sql == kZeroSuperseded) overwrote = sqlite3_changes(db.handle()) > 0;
  }
  return overwrote;
}

Result<bool> redact_superseded_once(Connection& db) {
  auto done = db.query_text(kRedactedOnce);
  if (!done) return failed(done.error());
  if (*done == "1") return false;
  bool overwrote = false;
  for (const char* sql :
       {kZeroAllSuperseded, kRedactAllSuperseded, kSettleAllSuperseded, kMarkRedactedOnce}) {
    auto stmt = db.prepare(sql);
    if (!stmt) return failed(stmt.error());
    if (auto r = stmt->run(); !r) return failed(r.error());
    if (sql == kZeroAllSuperseded) overwrote = sqlite3_changes(db.handle()) > 0;
  }
  return overwrote;
}

}  // namespace hookvault::store::sqlite
