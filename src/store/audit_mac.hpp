// The audit log's hash chain, whatever database holds it (contract and MAC
// layout in include/hookvault/audit.hpp): the record MACs, the head's tag,
// the check of an append against the head, and the verification walk that
// names the first break. A backend stores the records and the head (SQLite:
// src/store/sqlite/audit_chain.hpp) and hands them in; nothing here reads a
// database.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "hookvault/audit.hpp"
#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/hmac.hpp"
#include "hookvault/secret.hpp"

namespace hookvault::store {

// The audit key: 32 random bytes, stored only wrapped by the KEK
// (envelope.hpp: wrap_dek) with the bare label below as associated data (not
// associated_data({...})).
inline constexpr std::size_t kAuditKeyBytes = 32;
inline constexpr std::string_view kAuditKeyAssociatedData = "hookvault-audit-key";
inline ByteView audit_key_ad() noexcept { return as_bytes(kAuditKeyAssociatedData); }

// The chain head: the newest record's seq (0 while the log is empty), its
// MAC (32 zero bytes while empty) and the tag over both.
struct AuditHead {
  std::int64_t seq = 0;
  Mac mac{};
  Mac tag{};
};

// One stored record, as read back (its MAC as stored: any length).
struct AuditRow {
  std::int64_t seq = 0;
  std::int64_t time_ms = 0;
  AuditEntry entry;
  Bytes mac;
};

// Errc::missing_field for an empty actor, action or outcome,
// Errc::invalid_field for a field over kMaxAuditFieldBytes.
Result<void> check_audit_entry(const AuditEntry& entry);

// 32 bytes as a Mac; nullopt for any other length.
std::optional<Mac> mac_from(ByteView bytes);

// The head of an empty chain under `key` (seq 0, zero MAC), for a new log.
Result<AuditHead> empty_audit_head(const SecretBytes& key);

// The record that extends `head` by `entry` at `time_ms`, and the head that
// follows it. Errc::store_corrupt when `head` does not match its tag under
// `key` (the chain is not extended then); Errc::internal when seq would
// overflow.
struct AuditAppend {
  AuditRow row;
  AuditHead head;
};
Result<AuditAppend> extend_audit_chain(const SecretBytes& key, const AuditHead& head,
                                       const AuditEntry& entry, std::int64_t time_ms);

// Visits the stored records in seq order, calling `visit` on each until it
// returns false or an error; may be called more than once (the walk runs
// again to describe an edited record). A backend reads them from one
// snapshot, the one `head` and `records` came from.
using AuditRowVisitor = std::function<Result<bool>(AuditRow)>;
using AuditRowWalk = std::function<Result<void>(const AuditRowVisitor&)>;

// Verifies the chain under `key`: a missing head (nullopt), a head that
// does not match its tag, a record missing, renumbered, beyond the head,
// edited or moved, and newest records deleted are each a result with
// ok = false naming the first bad seq; `records` is how many rows there are.
Result<AuditVerifyResult> verify_audit_rows(const SecretBytes& key,
                                            const std::optional<AuditHead>& head,
                                            std::int64_t records, const AuditRowWalk& walk);

}  // namespace hookvault::store
