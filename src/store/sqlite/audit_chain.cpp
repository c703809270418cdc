// The audit chain's storage in the SQLite file (audit_chain.hpp).
#include "store/sqlite/audit_chain.hpp"

#include <array>
#include <limits>
#include <string_view>
#include <utility>

namespace hookvault::store::sqlite {
namespace {

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

// nullopt when absent or malformed.
Result<std::optional<AuditHead>> read_head(Connection& db) {
  auto v = meta_values(db, kReadHead);
  if (!v) return v.error();
  if (!(*v)[0] || !(*v)[1] || !(*v)[2]) return std::optional<AuditHead>();
  const auto seq = parse_int(*(*v)[0]);
  const auto mac = from_hex(*(*v)[1]);
  const auto tag = from_hex(*(*v)[2]);
  if (!seq || *seq < 0 || !mac || !tag) return std::optional<AuditHead>();
  const auto mac_bytes = mac_from(*mac);
  const auto tag_bytes = mac_from(*tag);
  if (!mac_bytes || !tag_bytes) return std::optional<AuditHead>();
  return std::optional<AuditHead>(AuditHead{*seq, *mac_bytes, *tag_bytes});
}

Result<void> put_head(Connection& db, const AuditHead& head) {
  auto stmt = db.prepare(kPutHead);
  if (!stmt) return stmt.error();
  return stmt->bind_text(1, std::to_string(head.seq))
      .bind_text(2, to_hex(head.mac))
      .bind_text(3, to_hex(head.tag))
      .run();
}

AuditRow row_from(const Statement& s) {
  return AuditRow{
      s.column_int64(0), s.column_int64(1),
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

AuditVerifyResult broken(std::int64_t records, std::string problem) {
  return AuditVerifyResult{false, records, std::nullopt, std::move(problem)};
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
  auto empty = empty_audit_head(key);
  if (!empty) return empty.error();
  return put_head(db, *empty);
}

Result<std::int64_t> append_audit(Connection& db, const SecretBytes& key, const AuditEntry& entry,
                                  std::int64_t time_ms) {
  auto head = read_head(db);
  if (!head) return head.error();
  if (!*head) return err(Errc::store_corrupt);
  auto next = extend_audit_chain(key, **head, entry, time_ms);
  if (!next) return next.error();
  const AuditRow& row = next->row;
  {
    auto stmt = db.prepare(kInsertRecord);
    if (!stmt) return stmt.error();
    auto r = stmt->bind_int64(1, row.seq)
                 .bind_int64(2, row.time_ms)
                 .bind_text(3, row.entry.actor)
                 .bind_text(4, row.entry.action)
                 .bind_text(5, row.entry.subject)
                 .bind_text(6, row.entry.outcome)
                 .bind_blob(7, row.mac)
                 .run();
    if (!r) return r.error();
  }
  if (auto r = put_head(db, next->head); !r) return r.error();
  return row.seq;
}

Result<std::vector<AuditRecord>> read_audit(Connection& db, std::int64_t after, std::size_t limit) {
  std::vector<AuditRecord> out;
  if (limit == 0) return out;
  auto stmt = db.prepare(kReadAfter);
  if (!stmt) return stmt.error();
  stmt->bind_int64(1, after).bind_int64(2, sql_limit(limit));
  auto read = for_each_row(*stmt, [&](const Statement& row) {
    AuditRow r = row_from(row);
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
  if (!*wrapped) return broken(records, "the audit key is missing from the database or malformed");
  auto key = unwrap_dek(kek, **wrapped, audit_key_ad());
  if (!key) return key.error();
  auto head = read_head(db);
  if (!head) return head.error();
  return verify_audit_rows(*key, *head, records, [&db](const AuditRowVisitor& visit) {
    auto stmt = db.prepare(kWalk);
    if (!stmt) return Result<void>(stmt.error());
    for (;;) {
      auto step = stmt->step();
      if (!step) return Result<void>(step.error());
      if (*step == Step::done) return Result<void>();
      auto more = visit(row_from(*stmt));
      if (!more) return Result<void>(more.error());
      if (!*more) return Result<void>();
    }
  });
}

}  // namespace hookvault::store::sqlite
