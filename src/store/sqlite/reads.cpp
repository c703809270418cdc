// The SQLite store's reads (sqlite_store_impl.hpp): one read-only
// connection under a mutex; rows are copied out under it and opened (unwrap
// + aead_open) after it is released. Reads never wait for the writer (WAL).
#include <limits>
#include <string>
#include <utility>

#include "store/envelope.hpp"
#include "store/sqlite/audit_chain.hpp"
#include "store/sqlite/sequences.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"
#include "store/sqlite/statements.hpp"

namespace hookvault::store::sqlite {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

Result<EventMeta> meta_from_row(const Statement& row) {
  EventMeta meta;
  meta.row_id = row.column_int64(0);
  meta.source = row.column_text(1);
  meta.idempotency_key = row.column_text(2);
  meta.event_name = row.column_text(3);
  meta.message_id = row.column_text(4);
  meta.event_time = row.column_text(5);
  meta.wallet_id = row.column_text(6);
  meta.received_at_ms = row.column_int64(7);
  const auto origin = parse_origin(row.column_text(8));
  const auto state = parse_state(row.column_text(9));
  if (!origin || !state) return err(Errc::store_corrupt);
  meta.origin = *origin;
  meta.materials = *state;
  meta.failure_reason = row.column_optional_text(10).value_or(std::string());
  meta.payload_redacted = row.column_int64(11) != 0;
  return meta;
}

Result<std::vector<EventMeta>> metas_from(Statement& stmt) {
  std::vector<EventMeta> out;
  auto read = for_each_row(stmt, [&](const Statement& row) -> Result<void> {
    auto meta = meta_from_row(row);
    if (!meta) return meta.error();
    out.push_back(std::move(*meta));
    return {};
  });
  if (!read) return read.error();
  return out;
}

}  // namespace

// The wrapped key of a row: `kek_id`, the version in column `version_col` and
// the wrapped bytes in column `blob_col`.
Result<WrappedKey> wrapped_key_at(const Statement& row, std::string kek_id, int version_col,
                                  int blob_col) {
  auto version = kek_version_from(row.column_int64(version_col));
  if (!version) return version.error();
  return WrappedKey{std::move(kek_id), *version, row.column_blob(blob_col)};
}

// ---------------------------------------------------------------------------

Result<std::optional<std::int64_t>> SqliteStore::find_event(
    std::string_view source, std::string_view idempotency_key) const {
  return with_reader([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto stmt = db.prepare(sql::kReadFindEvent);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).bind_text(2, idempotency_key).step();
    if (!step) return step.error();
    if (*step == Step::done) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt->column_int64(0));
  });
}

Result<std::optional<EventMeta>> SqliteStore::event_meta(std::int64_t row_id) const {
  return with_reader([&](Connection& db) -> Result<std::optional<EventMeta>> {
    auto stmt = db.prepare(sql::kReadEventMeta);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, row_id).step();
    if (!step) return step.error();
    if (*step == Step::done) return std::optional<EventMeta>();
    auto meta = meta_from_row(*stmt);
    if (!meta) return meta.error();
    return std::optional<EventMeta>(std::move(*meta));
  });
}

// The token is the decimal row id of the page's last event ("" reads from
// the start), so a row id seen elsewhere works as `after` too.
Result<EventPage> SqliteStore::list_events(const EventQuery& query) const {
  std::int64_t after = 0;
  if (!query.after.empty()) {
    const auto parsed = parse_int(query.after);
    if (!parsed || *parsed < 0) return err(Errc::invalid_field);
    after = *parsed;
  }
  if (query.limit == 0) return EventPage{{}, query.after};
  const std::int64_t limit = sql_limit(query.limit);
  auto events = with_reader([&](Connection& db) -> Result<std::vector<EventMeta>> {
    auto stmt = db.prepare(query.source ? sql::kReadListSource : sql::kReadListAll);
    if (!stmt) return stmt.error();
    if (query.source) {
      stmt->bind_text(1, *query.source).bind_int64(2, after).bind_int64(3, limit);
    } else {
      stmt->bind_int64(1, after).bind_int64(2, limit);
    }
    return metas_from(*stmt);
  });
  if (!events) return events.error();
  EventPage page;
  page.next = events->empty() ? query.after : std::to_string(events->back().row_id);
  page.events = std::move(*events);
  return page;
}

Result<std::vector<EventMeta>> SqliteStore::decrypt_failures() const {
  return with_reader([&](Connection& db) -> Result<std::vector<EventMeta>> {
    auto stmt = db.prepare(sql::kReadDecryptFailures);
    if (!stmt) return stmt.error();
    return metas_from(*stmt);
  });
}

Result<std::optional<SecretBytes>> SqliteStore::event_payload(std::int64_t row_id) const {
  struct Row {
    std::string source;
    std::string idempotency_key;
    WrappedKey key;
    Bytes payload;
  };
  auto row = with_reader([&](Connection& db) -> Result<std::optional<Row>> {
    auto stmt = db.prepare(sql::kReadPayload);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_int64(1, row_id).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_is_null(5)) return std::optional<Row>();
    auto key = wrapped_key_at(*stmt, stmt->column_text(2), 3, 4);
    if (!key) return key.error();
    return std::optional<Row>(
        Row{stmt->column_text(0), stmt->column_text(1), std::move(*key), stmt->column_blob(5)});
  });
  if (!row) return row.error();
  if (!*row) return std::optional<SecretBytes>();
  const Row& r = **row;
  auto plain = open_payload(*kek_, r.source, r.idempotency_key, r.key, r.payload);
  if (!plain) return plain.error();
  return std::optional<SecretBytes>(std::move(*plain));
}

Result<std::optional<StoredMaterials>> SqliteStore::materials(std::string_view source,
                                                              std::string_view wallet_id) const {
  using Row = StoredMaterialsRow;
  auto row = with_reader([&](Connection& db) -> Result<std::optional<Row>> {
    auto stmt = db.prepare(sql::kReadMaterials);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).bind_text(2, wallet_id).step();
    if (!step) return step.error();
    if (*step == Step::done) return std::optional<Row>();
    auto key = wrapped_key_at(*stmt, stmt->column_text(5), 6, 7);
    if (!key) return key.error();
    Row out;
    out.meta.source = std::string(source);
    out.meta.wallet_id = std::string(wallet_id);
    out.meta.user_id = stmt->column_text(0);
    out.meta.chain = stmt->column_text(1);
    out.meta.share_set_id = stmt->column_optional_text(2);
    out.meta.event_id = stmt->column_text(3);
    out.meta.created_at = stmt->column_text(4);
    out.key = std::move(*key);
    out.share = stmt->column_blob(8);
    out.api_key = stmt->column_blob(9);
    return std::optional<Row>(std::move(out));
  });
  if (!row) return row.error();
  if (!*row) return std::optional<StoredMaterials>();
  auto opened = open_materials_row(*kek_, std::move(**row));
  if (!opened) return opened.error();
  return std::optional<StoredMaterials>(std::move(*opened));
}

Result<std::vector<SubscriptionSequence>> SqliteStore::sequences(
    std::optional<std::string_view> source) const {
  return with_reader([&](Connection& db) { return read_sequences(db, source); });
}

Result<std::uint64_t> SqliteStore::count_events_with_key_prefix(std::string_view source,
                                                                std::string_view prefix) const {
  return with_reader([&](Connection& db) -> Result<std::uint64_t> {
    auto stmt = db.prepare(sql::kReadCountPrefix);
    if (!stmt) return stmt.error();
    // substr() rather than LIKE: keys may hold '%' and '_'.
    auto step = stmt->bind_text(1, source)
                    .bind_text(2, prefix)
                    .bind_int64(3, static_cast<std::int64_t>(prefix.size()))
                    .step();
    if (!step) return step.error();
    return static_cast<std::uint64_t>(stmt->column_int64(0));
  });
}

Result<std::optional<std::int64_t>> SqliteStore::latest_event_time_ms(
    std::string_view source) const {
  return with_reader([&](Connection& db) -> Result<std::optional<std::int64_t>> {
    auto stmt = db.prepare(sql::kReadLatestEventTime);
    if (!stmt) return stmt.error();
    auto step = stmt->bind_text(1, source).step();
    if (!step) return step.error();
    if (*step == Step::done || stmt->column_is_null(0)) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(stmt->column_int64(0));
  });
}

Result<std::vector<AuditRecord>> SqliteStore::audit_records(std::int64_t after,
                                                            std::size_t limit) const {
  return with_reader([&](Connection& db) { return read_audit(db, after, limit); });
}

Result<AuditVerifyResult> SqliteStore::verify_audit() const {
  return with_reader([&](Connection& db) { return verify_audit_chain(db, *kek_); });
}

}  // namespace hookvault::store::sqlite
