#include "store/sqlite/audit_chain.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <limits>
#include <string_view>
#include <utility>

#include "hookvault/aead.hpp"
#include "hookvault/hmac.hpp"

namespace hookvault::store {
namespace {

constexpr std::size_t kMacBytes = 32;
constexpr std::size_t kAuditKeyBytes = 32;
static_assert(kAuditKeyBytes == kDekBytes, "wrapped with wrap_dek, checked by unwrap_dek");
constexpr std::string_view kHeadLabel = "hookvault-audit-head-v1";

static_assert(sizeof(Mac) == kMacBytes);

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

// Column meanings: schema.hpp (TABLE audit, TABLE meta).
constexpr char kReadKey[] =
    "SELECT (SELECT value FROM meta WHERE key = 'audit_key'), "
    "(SELECT value FROM meta WHERE key = 'audit_key_kek_id'), "
    "(SELECT value FROM meta WHERE key = 'audit_key_kek_version')";
constexpr char kPutKey[] =
    "INSERT INTO meta (key, value) VALUES "
    "('audit_key', ?1), ('audit_key_kek_id', ?2), ('audit_key_kek_version', ?3)";
constexpr char kUpdateKey[] =
    "UPDATE meta SET value = CASE key WHEN 'audit_key' THEN ?1 ELSE ?2 END "
    "WHERE key IN ('audit_key', 'audit_key_kek_version')";
constexpr char kReadHead[] =
    "SELECT (SELECT value FROM meta WHERE key = 'audit_head_seq'), "
    "(SELECT value FROM meta WHERE key = 'audit_head_mac'), "
    "(SELECT value FROM meta WHERE key = 'audit_head_tag')";
constexpr char kPutHead[] =
    "INSERT INTO meta (key, value) VALUES "
    "('audit_head_seq', ?1), ('audit_head_mac', ?2), ('audit_head_tag', ?3) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
constexpr char kAnyRecord[] = "SELECT EXISTS (SELECT 1 FROM audit)";
constexpr char kCountRecords[] = "SELECT count(*) FROM audit";
constexpr char kInsertRecord[] =
    "INSERT INTO audit (seq, time_ms, actor, action, subject, outcome, mac) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr char kReadAfter[] =
    "SELECT seq, time_ms, actor, action, subject, outcome, mac FROM audit "
    "WHERE seq > ?1 ORDER BY seq LIMIT ?2";
constexpr char kWalk[] =
    "SELECT seq, time_ms, actor, action, subject, outcome, mac FROM audit ORDER BY seq";

// --- encoding ----------------------------------------------------------------

void put_u64(Bytes& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::optional<Mac> mac_from(ByteView bytes) {
  if (bytes.size() != kMacBytes) return std::nullopt;
  Mac m{};
  std::copy(bytes.begin(), bytes.end(), m.begin());
  return m;
}

bool same(const Mac& a, ByteView b) noexcept {
  return b.size() == kMacBytes && CRYPTO_memcmp(a.data(), b.data(), kMacBytes) == 0;
}

// --- MACs ----------------------------------------------------------------------

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

// --- meta ----------------------------------------------------------------------

using MetaValues = std::array<std::optional<std::string>, 3>;

Result<MetaValues> meta_values(Connection& db, const char* sql) {
  auto stmt = db.prepare(sql);
  if (!stmt) return stmt.error();
  auto step = stmt->step();
  if (!step) return step.error();
  if (*step != Step::row) return err(Errc::internal);
  return MetaValues{stmt->column_optional_text(0), stmt->column_optional_text(1),
                    stmt->column_optional_text(2)};
}

bool none_of(const MetaValues& v) { return !v[0] && !v[1] && !v[2]; }

struct Head {
  std::int64_t seq = 0;
  Mac mac{};
  Mac tag{};
};

// nullopt when absent or malformed.
Result<std::optional<Head>> read_head(Connection& db) {
  auto v = meta_values(db, kReadHead);
  if (!v) return v.error();
  if (!(*v)[0] || !(*v)[1] || !(*v)[2]) return std::optional<Head>();
  const auto seq = parse_int(*(*v)[0]);
  const auto mac = from_hex(*(*v)[1]);
  const auto tag = from_hex(*(*v)[2]);
  if (!seq || *seq < 0 || !mac || !tag) return std::optional<Head>();
  const auto mac_bytes = mac_from(*mac);
  const auto tag_bytes = mac_from(*tag);
  if (!mac_bytes || !tag_bytes) return std::optional<Head>();
  return std::optional<Head>(Head{*seq, *mac_bytes, *tag_bytes});
}

Result<void> put_head(Connection& db, const SecretBytes& key, std::int64_t seq, const Mac& mac) {
  auto tag = head_tag(key, seq, mac);
  if (!tag) return tag.error();
  auto stmt = db.prepare(kPutHead);
  if (!stmt) return stmt.error();
  return stmt->bind_text(1, std::to_string(seq))
      .bind_text(2, to_hex(mac))
      .bind_text(3, to_hex(*tag))
      .run();
}

// --- records -------------------------------------------------------------------

struct Row {
  std::int64_t seq = 0;
  std::int64_t time_ms = 0;
  AuditEntry entry;
  Bytes mac;
};

Row row_from(const Statement& s) {
  return Row{s.column_int64(0), s.column_int64(1),
             AuditEntry{s.column_text(2), s.column_text(3), s.column_text(4), s.column_text(5)},
             s.column_blob(6)};
}

// Ends the read transaction of verify_audit_chain on every path.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(Connection& db) : db_(db) {}
  ~ReadSnapshot() {
    // A read transaction has nothing to lose; if COMMIT fails, ROLLBACK ends it.
    if (db_.in_transaction() && !db_.exec("COMMIT")) static_cast<void>(db_.exec("ROLLBACK"));
  }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

 private:
  Connection& db_;
};

AuditVerifyResult broken(std::int64_t records, std::optional<std::int64_t> seq,
                         std::string problem) {
  return AuditVerifyResult{false, records, seq, std::move(problem)};
}

// Record `bad` does not match its MAC. When its contents carry a valid MAC for
// another position, they were moved there (two records swapped, say): the
// original predecessor of a record now at position r is the mac stored before r
// (a distant swap) or the mac stored at r (neighbours swapped).
Result<std::string> describe_mismatch(Connection& db, const SecretBytes& key, const Row& bad) {
  auto stmt = db.prepare(kWalk);
  if (!stmt) return stmt.error();
  Bytes prev(kMacBytes, 0);
  for (;;) {
    auto step = stmt->step();
    if (!step) return step.error();
    if (*step == Step::done) break;
    Row r = row_from(*stmt);
    if (r.seq != bad.seq) {
      for (const Bytes* candidate : {&prev, &r.mac}) {
        if (candidate->size() != kMacBytes) continue;
        auto mac = record_mac(key, *candidate, r.seq, bad.time_ms, bad.entry);
        if (!mac) return mac.error();
        if (same(*mac, bad.mac)) {
          return "record " + std::to_string(bad.seq) + " holds the contents of record " +
                 std::to_string(r.seq) + ": records were moved or swapped";
        }
      }
    }
    prev = std::move(r.mac);
  }
  return "record " + std::to_string(bad.seq) + " does not match its MAC: it was edited";
}

Result<AuditVerifyResult> walk(Connection& db, const SecretBytes& key, const Head& head,
                               std::int64_t records) {
  Bytes prev(kMacBytes, 0);
  std::int64_t expected = 1;
  std::optional<Row> mismatch;
  {
    auto stmt = db.prepare(kWalk);
    if (!stmt) return stmt.error();
    for (;;) {
      auto step = stmt->step();
      if (!step) return step.error();
      if (*step == Step::done) break;
      Row r = row_from(*stmt);
      if (r.seq > head.seq && expected > head.seq) {
        return broken(records, r.seq,
                      "record " + std::to_string(r.seq) + " is beyond the chain head (" +
                          std::to_string(head.seq) + ")");
      }
      if (r.seq != expected) {
        if (r.seq < expected) {
          return broken(records, r.seq,
                        "record " + std::to_string(r.seq) + " has an invalid sequence number");
        }
        const std::int64_t last_missing = std::min(r.seq, head.seq + 1) - 1;
        return broken(records, expected,
                      last_missing == expected
                          ? "record " + std::to_string(expected) + " is missing"
                          : "records " + std::to_string(expected) + " to " +
                                std::to_string(last_missing) + " are missing");
      }
      auto mac = record_mac(key, prev, r.seq, r.time_ms, r.entry);
      if (!mac) return mac.error();
      if (!same(*mac, r.mac)) {
        mismatch = std::move(r);
        break;
      }
      prev = std::move(r.mac);
      ++expected;
    }
  }
  if (mismatch) {
    auto problem = describe_mismatch(db, key, *mismatch);
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

}  // namespace

Result<std::optional<WrappedKey>> read_audit_key(Connection& db) {
  auto v = meta_values(db, kReadKey);
  if (!v) return v.error();
  if (!(*v)[0] || !(*v)[1] || !(*v)[2]) return std::optional<WrappedKey>();
  auto wrapped = from_hex(*(*v)[0]);
  const auto version = parse_int(*(*v)[2]);
  if (!wrapped || !version || *version < 0 ||
      *version > std::numeric_limits<std::uint32_t>::max()) {
    return std::optional<WrappedKey>();
  }
  return std::optional<WrappedKey>(
      WrappedKey{*(*v)[1], static_cast<std::uint32_t>(*version), std::move(*wrapped)});
}

Result<std::uint64_t> replace_audit_key(Connection& db, const WrappedKey& from,
                                        const WrappedKey& to) {
  if (from.kek_id != to.kek_id) return err(Errc::internal);  // rewrap keeps the KEK
  auto now = read_audit_key(db);
  if (!now) return now.error();
  if (!*now || (*now)->kek_id != from.kek_id || (*now)->kek_version != from.kek_version ||
      (*now)->wrapped_dek != from.wrapped_dek) {
    return std::uint64_t{0};
  }
  auto stmt = db.prepare(kUpdateKey);
  if (!stmt) return stmt.error();
  auto r =
      stmt->bind_text(1, to_hex(to.wrapped_dek)).bind_text(2, std::to_string(to.kek_version)).run();
  if (!r) return r.error();
  return std::uint64_t{1};
}

Result<void> prepare_audit_key(Connection& db, const Kek& kek, bool may_create) {
  auto v = meta_values(db, kReadKey);
  if (!v) return v.error();
  if (!none_of(*v) || !may_create) return {};
  // A chain without its key is not started afresh.
  auto head = meta_values(db, kReadHead);
  if (!head) return head.error();
  if (!none_of(*head)) return {};
  {
    auto stmt = db.prepare(kAnyRecord);
    if (!stmt) return stmt.error();
    auto step = stmt->step();
    if (!step) return step.error();
    if (*step != Step::row || stmt->column_int64(0) != 0) return {};
  }

  const SecretBytes key = SecretBytes::random(kAuditKeyBytes);
  auto wrapped = wrap_dek(kek, key, audit_key_ad());
  if (!wrapped) return wrapped.error();
  {
    auto stmt = db.prepare(kPutKey);
    if (!stmt) return stmt.error();
    auto r = stmt->bind_text(1, to_hex(wrapped->wrapped_dek))
                 .bind_text(2, wrapped->kek_id)
                 .bind_text(3, std::to_string(wrapped->kek_version))
                 .run();
    if (!r) return r.error();
  }
  return put_head(db, key, 0, Mac{});
}

Result<void> check_audit_entry(const AuditEntry& e) {
  if (e.actor.empty() || e.action.empty() || e.outcome.empty()) return err(Errc::missing_field);
  for (const std::string* s : {&e.actor, &e.action, &e.subject, &e.outcome}) {
    if (s->size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  }
  return {};
}

Result<std::int64_t> append_audit(Connection& db, const SecretBytes& key, const AuditEntry& entry,
                                  std::int64_t time_ms) {
  auto head = read_head(db);
  if (!head) return head.error();
  if (!*head) return err(Errc::store_corrupt);
  auto tag = head_tag(key, (*head)->seq, (*head)->mac);
  if (!tag) return tag.error();
  if (!same(*tag, (*head)->tag)) return err(Errc::store_corrupt);
  if ((*head)->seq == std::numeric_limits<std::int64_t>::max()) return err(Errc::internal);

  const std::int64_t seq = (*head)->seq + 1;
  auto mac = record_mac(key, (*head)->mac, seq, time_ms, entry);
  if (!mac) return mac.error();
  {
    auto stmt = db.prepare(kInsertRecord);
    if (!stmt) return stmt.error();
    auto r = stmt->bind_int64(1, seq)
                 .bind_int64(2, time_ms)
                 .bind_text(3, entry.actor)
                 .bind_text(4, entry.action)
                 .bind_text(5, entry.subject)
                 .bind_text(6, entry.outcome)
                 .bind_blob(7, *mac)
                 .run();
    if (!r) return r.error();
  }
  if (auto r = put_head(db, key, seq, *mac); !r) return r.error();
  return seq;
}

Result<std::vector<AuditRecord>> read_audit(Connection& db, std::int64_t after, std::size_t limit) {
  std::vector<AuditRecord> out;
  if (limit == 0) return out;
  auto stmt = db.prepare(kReadAfter);
  if (!stmt) return stmt.error();
  stmt->bind_int64(1, after).bind_int64(2, sql_limit(limit));
  auto read = for_each_row(*stmt, [&](const Statement& row) {
    Row r = row_from(row);
    out.push_back(AuditRecord{r.seq, r.time_ms, std::move(r.entry), to_hex(r.mac)});
  });
  if (!read) return read.error();
  return out;
}

Result<AuditVerifyResult> verify_audit_chain(Connection& db, const Kek& kek) {
  if (auto r = db.exec("BEGIN"); !r) return r.error();
  const ReadSnapshot snapshot(db);
  auto wrapped = read_audit_key(db);
  if (!wrapped) return wrapped.error();
  std::int64_t records = 0;
  {
    auto stmt = db.prepare(kCountRecords);
    if (!stmt) return stmt.error();
    auto step = stmt->step();
    if (!step) return step.error();
    if (*step == Step::row) records = stmt->column_int64(0);
  }
  if (!*wrapped) {
    return broken(records, std::nullopt, "the audit key is missing from the database or malformed");
  }
  auto key = unwrap_dek(kek, **wrapped, audit_key_ad());
  if (!key) return key.error();
  auto head = read_head(db);
  if (!head) return head.error();
  if (!*head) {
    return broken(records, std::nullopt,
                  "the chain head is missing from the database or malformed");
  }
  auto tag = head_tag(*key, (*head)->seq, (*head)->mac);
  if (!tag) return tag.error();
  if (!same(*tag, (*head)->tag)) {
    return broken(records, (*head)->seq,
                  "the chain head (" + std::to_string((*head)->seq) +
                      ") does not match its tag: it was altered");
  }
  return walk(db, *key, **head, records);
}

}  // namespace hookvault::store
