// The audit log's hash chain (contract in include/hookvault/audit.hpp, storage
// in schema.hpp: TABLE audit and the audit_* meta keys).
//
// The writer appends inside its write transaction (BEGIN IMMEDIATE, the
// request's SAVEPOINT): append_audit() reads the chain head from meta, checks
// its tag, inserts record head + 1 and moves the head, all in that
// transaction. SQLite's write lock therefore serialises appends of every
// process that has the file open (the daemon and a CLI command), and a rolled
// back savepoint takes its record and the head move with it.
//
// The audit key exists in memory only for the duration of one call: callers
// unwrap it (unwrap_audit_key), pass it in, and let the SecretBytes go. Its
// wrapped form is read from meta for each use (read_audit_key), inside the
// transaction that uses it, because `keys rewrap` in another process may move
// it to another KEK version at any time (replace_audit_key).
//
// Thread-safety: none; each function uses the connection it is given, which
// the caller owns for the duration of the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hookvault/audit.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "store/sqlite.hpp"

namespace hookvault::store {

// The audit key as kept in meta: Kek::wrap(key, "hookvault-audit-key").
struct WrappedAuditKey {
  std::string kek_id;
  std::uint32_t kek_version = 0;
  Bytes wrapped;
};

// Run inside the open's BEGIN IMMEDIATE, after the tables exist. Returns the
// wrapped key. When the file has none yet and `may_create` (a new file, or one
// of schema version 1 being upgraded) and no chain exists, it draws a key,
// wraps it with `kek` and stores it with the head of the empty chain
// (seq 0, 32 zero bytes). nullopt when the key is absent or malformed in a file
// that should have one: the audit operations then fail and verification
// reports it.
Result<std::optional<WrappedAuditKey>> prepare_audit_key(Connection& db, const Kek& kek,
                                                         bool may_create);

// The wrapped key as meta holds it now; nullopt when absent or malformed.
Result<std::optional<WrappedAuditKey>> read_audit_key(Connection& db);

// Writer side, inside a write transaction: replaces the wrapped key by `to`
// (same KEK id, another version: `keys rewrap`) when meta still holds exactly
// `from` and returns 1; 0, changing nothing, when it holds something else.
Result<std::uint64_t> replace_audit_key(Connection& db, const WrappedAuditKey& from,
                                        const WrappedAuditKey& to);

// Errc::store_corrupt when the key is missing or does not open under `kek`,
// Errc::kek_unavailable when it was wrapped by another KEK (id) or version.
Result<SecretBytes> unwrap_audit_key(const Kek& kek, const std::optional<WrappedAuditKey>& key);

// `keys rewrap`: the same audit key, wrapped again under the KEK's current
// version. Errors as unwrap_audit_key.
Result<WrappedAuditKey> rewrap_audit_key(const Kek& kek, const WrappedAuditKey& key);

// Errc::missing_field for an empty actor, action or outcome,
// Errc::invalid_field for a field over kMaxAuditFieldBytes.
Result<void> check_audit_entry(const AuditEntry& entry);

// Writer side, inside a write transaction: appends `entry` at `time_ms` and
// returns its seq. Errc::store_corrupt when the head in meta is missing,
// malformed or does not match its tag (the chain is not extended then).
Result<std::int64_t> append_audit(Connection& db, const SecretBytes& key, const AuditEntry& entry,
                                  std::int64_t time_ms);

// Reader side: records with seq > after, in seq order, at most `limit`.
Result<std::vector<AuditRecord>> read_audit(Connection& db, std::int64_t after, std::size_t limit);

// Reader side: verifies the chain and its head in one read transaction (one
// snapshot, so appends committing meanwhile are not mistaken for breaks), with
// the audit key of that snapshot. A missing audit key is a break (ok = false);
// a key that does not open under `kek` is an error (see unwrap_audit_key).
Result<AuditVerifyResult> verify_audit_chain(Connection& db, const Kek& kek);

}  // namespace hookvault::store
