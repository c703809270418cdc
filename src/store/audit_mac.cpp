// The audit chain's MACs and verification walk (audit_mac.hpp).
#include "store/audit_mac.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "hookvault/aead.hpp"

namespace hookvault::store {
namespace {

constexpr std::size_t kMacBytes = 32;
constexpr std::string_view kHeadLabel = "hookvault-audit-head-v1";

static_assert(sizeof(Mac) == kMacBytes);
static_assert(kAuditKeyBytes == kDekBytes, "wrapped with wrap_dek, checked by unwrap_dek");

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

void put_u64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

bool same(const Mac& a, ByteView b) noexcept {
  return b.size() == kMacBytes && CRYPTO_memcmp(a.data(), b.data(), kMacBytes) == 0;
}

Result<Mac> hmac(const SecretBytes& key, const Bytes& message) {
  Mac out{};
  if (!hmac_sha256(key.reveal(), {message}, out)) return err(Errc::internal);
  return out;
}

// mac(seq) of audit.hpp. Its "u32be(len) field" parts are exactly what
// associated_data() (aead.hpp) builds from the four fields.
Result<Mac> record_mac(const SecretBytes& key, ByteView prev, std::int64_t seq,
                       std::int64_t time_ms, const AuditEntry& e) {
  const Bytes fields = associated_data({e.actor, e.action, e.subject, e.outcome});
  Bytes m;
  m.reserve(prev.size() + 16 + fields.size());
  m.insert(m.end(), prev.begin(), prev.end());
  put_u64(m, static_cast<std::uint64_t>(seq));
  put_u64(m, static_cast<std::uint64_t>(time_ms));
  m.insert(m.end(), fields.begin(), fields.end());
  return hmac(key, m);
}

// The head's tag. Its message (label 23 + 8 + 32 = 63 bytes) is shorter than any
// record's (at least 32 + 8 + 8 + 4 * 4 = 64), so neither MAC stands in for the other.
Result<Mac> head_tag(const SecretBytes& key, std::int64_t seq, const Mac& mac) {
  Bytes m(kHeadLabel.begin(), kHeadLabel.end());
  put_u64(m, static_cast<std::uint64_t>(seq));
  m.insert(m.end(), mac.begin(), mac.end());
  return hmac(key, m);
}

AuditVerifyResult broken(std::int64_t records, std::optional<std::int64_t> seq,
                         std::string problem) {
  return AuditVerifyResult{false, records, seq, std::move(problem)};
}

// Record `bad` does not match its MAC. When its contents carry a valid MAC for
// another position, they were moved there (two records swapped, say): the
// original predecessor of a record now at position r is the mac stored before r
// (a distant swap) or the mac stored at r (neighbours swapped).
Result<std::string> describe_mismatch(const SecretBytes& key, const AuditRow& bad,
                                      const AuditRowWalk& walk) {
  Bytes prev(kMacBytes, 0);
  std::optional<std::string> moved;
  auto walked = walk([&](AuditRow r) -> Result<bool> {
    if (r.seq != bad.seq) {
      for (const Bytes* candidate : {&prev, &r.mac}) {
        if (candidate->size() != kMacBytes) continue;
        auto mac = record_mac(key, *candidate, r.seq, bad.time_ms, bad.entry);
        if (!mac) return Result<bool>(boost::system::in_place_error, mac.error());
        if (same(*mac, bad.mac)) {
          moved = "record " + std::to_string(bad.seq) + " holds the contents of record " +
                  std::to_string(r.seq) + ": records were moved or swapped";
          return false;
        }
      }
    }
    prev = std::move(r.mac);
    return true;
  });
  if (!walked) return walked.error();
  if (moved) return std::move(*moved);
  return "record " + std::to_string(bad.seq) + " does not match its MAC: it was edited";
}

}  // namespace

Result<void> check_audit_entry(const AuditEntry& e) {
  if (e.actor.empty() || e.action.empty() || e.outcome.empty()) return err(Errc::missing_field);
  for (const std::string* s : {&e.actor, &e.action, &e.subject, &e.outcome}) {
    if (s->size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  }
  return {};
}

std::optional<Mac> mac_from(ByteView bytes) {
  if (bytes.size() != kMacBytes) return std::nullopt;
  Mac m{};
  std::copy(bytes.begin(), bytes.end(), m.begin());
  return m;
}

Result<AuditHead> empty_audit_head(const SecretBytes& key) {
  AuditHead head;
  auto tag = head_tag(key, head.seq, head.mac);
  if (!tag) return tag.error();
  head.tag = *tag;
  return head;
}

Result<AuditAppend> extend_audit_chain(const SecretBytes& key, const AuditHead& head,
                                       const AuditEntry& entry, std::int64_t time_ms) {
  auto tag = head_tag(key, head.seq, head.mac);
  if (!tag) return tag.error();
  if (!same(*tag, head.tag)) return err(Errc::store_corrupt);
  if (head.seq == std::numeric_limits<std::int64_t>::max()) return err(Errc::internal);

  AuditAppend out;
  out.row.seq = head.seq + 1;
  out.row.time_ms = time_ms;
  out.row.entry = entry;
  auto mac = record_mac(key, head.mac, out.row.seq, time_ms, entry);
  if (!mac) return mac.error();
  out.row.mac.assign(mac->begin(), mac->end());
  auto next_tag = head_tag(key, out.row.seq, *mac);
  if (!next_tag) return next_tag.error();
  out.head = AuditHead{out.row.seq, *mac, *next_tag};
  return out;
}

Result<AuditVerifyResult> verify_audit_rows(const SecretBytes& key,
                                            const std::optional<AuditHead>& maybe_head,
                                            std::int64_t records, const AuditRowWalk& walk) {
  if (!maybe_head) {
    return broken(records, std::nullopt,
                  "the chain head is missing from the database or malformed");
  }
  const AuditHead& head = *maybe_head;
  auto tag = head_tag(key, head.seq, head.mac);
  if (!tag) return tag.error();
  if (!same(*tag, ByteView(head.tag.data(), head.tag.size()))) {
    return broken(
        records, head.seq,
        "the chain head (" + std::to_string(head.seq) + ") does not match its tag: it was altered");
  }

  Bytes prev(kMacBytes, 0);
  std::int64_t expected = 1;
  std::optional<AuditRow> mismatch;
  std::optional<AuditVerifyResult> found;
  auto walked = walk([&](AuditRow r) -> Result<bool> {
    if (r.seq > head.seq && expected > head.seq) {
      found = broken(records, r.seq,
                     "record " + std::to_string(r.seq) + " is beyond the chain head (" +
                         std::to_string(head.seq) + ")");
      return false;
    }
    if (r.seq != expected) {
      if (r.seq < expected) {
        found = broken(records, r.seq,
                       "record " + std::to_string(r.seq) + " has an invalid sequence number");
        return false;
      }
      const std::int64_t last_missing = std::min(r.seq, head.seq + 1) - 1;
      found = broken(records, expected,
                     last_missing == expected ? "record " + std::to_string(expected) + " is missing"
                                              : "records " + std::to_string(expected) + " to " +
                                                    std::to_string(last_missing) + " are missing");
      return false;
    }
    auto mac = record_mac(key, prev, r.seq, r.time_ms, r.entry);
    if (!mac) return Result<bool>(boost::system::in_place_error, mac.error());
    if (!same(*mac, r.mac)) {
      mismatch = std::move(r);
      return false;
    }
    prev = std::move(r.mac);
    ++expected;
    return true;
  });
  if (!walked) return walked.error();
  if (found) return std::move(*found);
  if (mismatch) {
    auto problem = describe_mismatch(key, *mismatch, walk);
    if (!problem) return problem.error();
    return broken(records, mismatch->seq, std::move(*problem));
  }
  const std::int64_t last = expected - 1;
  if (last < head.seq) {
    return broken(records, head.seq,
                  last + 1 == head.seq
                      ? "record " + std::to_string(head.seq) +
                            " is missing: the newest record was deleted (the chain head is " +
                            std::to_string(head.seq) + ")"
                      : "records " + std::to_string(last + 1) + " to " + std::to_string(head.seq) +
                            " are missing: the newest records were deleted (the chain head is " +
                            std::to_string(head.seq) + ")");
  }
  if (!same(head.mac, prev)) {
    return broken(records, head.seq,
                  "record " + std::to_string(head.seq) + " does not match the chain head");
  }
  return AuditVerifyResult{true, records, std::nullopt, std::string()};
}

}  // namespace hookvault::store
