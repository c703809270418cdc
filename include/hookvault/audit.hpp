// The tamper-evident audit log: who read or destroyed secret material, when.
//
// Contract
// - Every access to secret material (a signer fetching materials, an operator
//   printing materials or an event payload, a reprocess, a revocation) appends
//   one AuditRecord to the store (Store::audit, store.hpp). A read appends its
//   record before the secret is handed out, and a read whose record cannot be
//   committed must not hand it out. A revocation and a reprocess resolution
//   append theirs in their own transaction (they commit together or not at
//   all).
// - Records are numbered 1, 2, 3, ... without gaps (seq = previous + 1) and are
//   never updated or deleted by hookvault.
// - Each record carries a MAC chained over its predecessor:
//
//     mac(seq) = HMAC-SHA256(audit_key, mac(seq - 1) || u64be(seq) || u64be(time_ms)
//                            || u32be(len) actor || u32be(len) action
//                            || u32be(len) subject || u32be(len) outcome)
//     mac(0)   = 32 zero bytes
//
//   `audit_key` is 32 random bytes made on the store's first open, kept in the
//   database only wrapped by the KEK (Kek::wrap, associated data
//   "hookvault-audit-key"), and held unwrapped only for the write transaction
//   (or the verification) that uses it, then wiped. Whoever can
//   edit the database file but has no KEK cannot compute a MAC, so cannot edit,
//   insert, reorder or renumber records unnoticed.
// - The chain head (the last seq, its mac, and a tag
//   HMAC-SHA256(audit_key, "hookvault-audit-head-v1" || u64be(seq) || mac)) is
//   kept beside the records and updated in the same transaction as each
//   append, so deleting the newest records is noticed too. What no file-local
//   scheme can notice is a roll-back of the whole file (or of the records and
//   the head together) to a copy taken earlier; when that matters, anchor the
//   head elsewhere (keep the seq and hash of the newest `hookvault audit list`
//   record outside the host).
// - Store::verify_audit walks the chain in seq order and names the first record
//   that was edited, moved (contents swapped between positions), or is missing,
//   or the head's seq when the newest records were deleted.
// - Audit records hold identities and outcomes only: never a share, an API key,
//   a payload, or any other secret.
//
// Storage layout: the `audit` table and the `audit_*` meta keys of
// src/store/sqlite/schema.hpp.
//
// Thread-safety: plain data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace hookvault {

// What one record says. Each field is at most kMaxAuditFieldBytes; actor,
// action and outcome must not be empty.
struct AuditEntry {
  std::string actor;    // "admin:<client CN>", "cli:<user name>", "source:<source name>"
  std::string action;   // "materials.read", "event.read", "reprocess", "revoke"
  std::string subject;  // "<source>/<wallet id>", an event id, a wallet id
  std::string outcome;  // "ok", "not_found", "denied", "error", or a reprocess result
};

inline constexpr std::size_t kMaxAuditFieldBytes = 4096;

// `field` cut to at most kMaxAuditFieldBytes, for a field built from text of
// any length (an error message, a reprocess result). The cut never splits a
// UTF-8 sequence: it backs up over up to three continuation bytes.
inline std::string clip_audit_field(std::string field) {
  if (field.size() <= kMaxAuditFieldBytes) return field;
  std::size_t n = kMaxAuditFieldBytes;
  for (int i = 0; i < 3 && n > 0 && (static_cast<unsigned char>(field[n]) & 0xC0) == 0x80; ++i) {
    --n;
  }
  field.resize(n);
  return field;
}

struct AuditRecord {
  std::int64_t seq = 0;      // 1, 2, 3, ...
  std::int64_t time_ms = 0;  // Unix ms when the record was committed (writer's clock)
  AuditEntry entry;
  std::string hash_hex;  // the record's chained MAC, lowercase hex (64 digits)
};

struct AuditVerifyResult {
  bool ok = false;
  std::int64_t records = 0;                   // rows in the audit table
  std::optional<std::int64_t> first_bad_seq;  // the first broken record, when one is named
  std::string problem;                        // what is wrong, in words; empty when ok
};

}  // namespace hookvault
