// Redaction of superseded delegations (schema.hpp, ORDERING RULES, rule 3):
// once a delegation is a wallet's current materials, the payload of every
// older `wallet.delegation.created` event of that wallet is redacted as a
// revocation redacts it (payload and wrapped_dek zero-overwritten, then NULL
// with kek_id and kek_version), and those still 'decrypt_failed' become
// 'superseded': each payload holds an older share, RSA-encrypted to a key on
// this host, and none of them can become current again.
//
// Both functions run on the store's write connection, inside the caller's
// transaction, and say whether they zero-overwrote anything: the caller then
// checkpoints the WAL (TRUNCATE) after the commit, as after a revocation.
#pragma once

#include <cstdint>
#include <string_view>

#include "hookvault/error.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

// The wallet's delegations older than the one stored at (event_time_ms,
// event_id): earlier, or at the same time with a smaller event id (byte
// order). Run by the writer when it stores materials.
Result<bool> redact_superseded(Connection& db, std::string_view source, std::string_view wallet_id,
                               std::int64_t event_time_ms, std::string_view event_id);

// The same rule over the whole file, for every wallet with materials, once:
// the meta key 'superseded_redacted' records that it ran (a file written
// without the rule gets it on its next open). Run by open_sqlite_store.
Result<bool> redact_superseded_once(Connection& db);

}  // namespace hookvault::store::sqlite
