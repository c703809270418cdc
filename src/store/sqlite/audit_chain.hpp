// The audit log's hash chain in the SQLite file (contract in
// include/hookvault/audit.hpp, the MACs and the verification walk in
// src/store/audit_mac.hpp, storage in schema.hpp: TABLE audit and the audit_*
// meta keys).
//
// The writer appends inside its write transaction (BEGIN IMMEDIATE, the
// request's SAVEPOINT): append_audit() reads the chain head from meta, checks
// its tag, inserts record head + 1 and moves the head, all in that
// transaction. SQLite's write lock therefore serialises appends of every
// process that has the file open (the daemon and a CLI command), and a rolled
// back savepoint takes its record and the head move with it.
//
// The audit key is wrapped by the KEK (envelope.hpp: wrap_dek, unwrap_dek,
// rewrap_key, with audit_mac.hpp's kAuditKeyAssociatedData). Callers unwrap it and pass it in;
// the writer keeps it for one write transaction at most, so the wrapped form
// is read from meta (read_audit_key) inside each transaction that uses it:
// `keys rewrap` in another process may move it to another KEK version between
// transactions (replace_audit_key), never during one (the write lock).
//
// Thread-safety: none; each function uses the connection it is given, which
// the caller owns for the duration of the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/audit.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "store/audit_mac.hpp"
#include "store/envelope.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

// Run inside the open's BEGIN IMMEDIATE, after the tables exist. When the file
// has no audit key yet and `may_create` (a new file, or one of schema version
// 1 being upgraded) and no chain exists, draws a key, wraps it with `kek` and
// stores it with the head of the empty chain (seq 0, 32 zero bytes). Otherwise
// changes nothing: a key that is absent or malformed in a file that should
// have one makes the audit operations fail and verification report it.
Result<void> prepare_audit_key(Connection& db, const Kek& kek, bool may_create);

// The wrapped key as meta holds it now; nullopt when absent or malformed.
Result<std::optional<WrappedKey>> read_audit_key(Connection& db);

// Writer side, inside a write transaction: replaces the wrapped key by `to`
// (same KEK id, another version: `keys rewrap`) when meta still holds exactly
// `from` and returns 1; 0, changing nothing, when it holds something else.
Result<std::uint64_t> replace_audit_key(Connection& db, const WrappedKey& from,
                                        const WrappedKey& to);

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
// a key that does not open under `kek` is an error (Errc::kek_unavailable or
// Errc::store_corrupt, as unwrap_dek).
Result<AuditVerifyResult> verify_audit_chain(Connection& db, const Kek& kek);

}  // namespace hookvault::store::sqlite
