// The PostgreSQL store's reads (pg_store_impl.hpp): one connection of their
// own under a mutex, reconnected when lost; rows are copied out under it and
// opened (unwrap + aead_open) after it is released. No read waits for the
// writer.
#include <limits>
#include <string>
#include <utility>

#include "store/audit_mac.hpp"
#include "store/pg/feed.hpp"
#include "store/pg/pg_store_impl.hpp"
#include "store/pg/statements.hpp"

namespace hookvault::store::pg {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

std::optional<Clock::time_point> deadline() { return Clock::now() + kStatementTimeout; }

std::int64_t sql_limit(std::size_t limit) {
  return static_cast<std::int64_t>(
      std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
}

// Columns from `first`: id, source, key, name, message id, time, wallet,
// received, origin, state, reason, payload IS NULL.
Result<EventMeta> meta_at(const Rows& rows, int i, int first = 0) {
  EventMeta m;
  auto id = rows.int64(i, first);
  auto received = rows.int64(i, first + 7);
  auto redacted = rows.boolean(i, first + 11);
  const auto origin = parse_origin(rows.text(i, first + 8));
  const auto state = parse_state(rows.text(i, first + 9));
  if (!id || !received || !redacted || !origin || !state) return err(Errc::store_corrupt);
  m.row_id = *id;
  m.source = rows.text(i, first + 1);
  m.idempotency_key = rows.text(i, first + 2);
  m.event_name = rows.text(i, first + 3);
  m.message_id = rows.text(i, first + 4);
  m.event_time = rows.text(i, first + 5);
  m.wallet_id = rows.text(i, first + 6);
  m.received_at_ms = *received;
  m.origin = *origin;
  m.materials = *state;
  m.failure_reason = rows.text(i, first + 10);
  m.payload_redacted = *redacted;
  return m;
}

Result<std::vector<EventMeta>> metas(const Rows& rows) {
  std::vector<EventMeta> out;
  out.reserve(static_cast<std::size_t>(rows.size()));
  for (int i = 0; i < rows.size(); ++i) {
    auto m = meta_at(rows, i);
    if (!m) return m.error();
    out.push_back(std::move(*m));
  }
  return out;
}

}  // namespace

Result<std::optional<std::int64_t>> PgStore::find_event(std::string_view source,
                                                        std::string_view idempotency_key) const {
  return with_reader([&](Connection& c) -> Result<std::optional<std::int64_t>> {
    auto rows =
        c.exec(sql::kReadFindEvent, Params().text(source).text(idempotency_key), deadline());
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<std::int64_t>();
    auto id = rows->int64(0, 0);
    if (!id) return id.error();
    return std::optional<std::int64_t>(*id);
  });
}

Result<std::optional<EventMeta>> PgStore::event_meta(std::int64_t row_id) const {
  return with_reader([&](Connection& c) -> Result<std::optional<EventMeta>> {
    auto rows = c.exec(sql::kReadEventMeta, Params().int64(row_id), deadline());
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<EventMeta>();
    auto m = meta_at(*rows, 0);
    if (!m) return m.error();
    return std::optional<EventMeta>(std::move(*m));
  });
}

// The feed of feed.hpp: (txid, id) order below the oldest running
// transaction; the token "<txid>.<id>".
//
// `after` may also be a bare row id (what `events list` prints, and the
// SQLite backend's token): the cursor is then that row's own (txid, id), so a
// consumer that read up to that row through the feed goes on where it was.
// Row id 0, before the first row (a SQLite consumer's start), is the start.
Result<EventPage> PgStore::list_events(const EventQuery& query) const {
  const bool row_id = !query.after.empty() && query.after.find('.') == std::string::npos;
  auto cursor = feed::parse_token(row_id ? "0." + query.after : query.after);
  if (!cursor) return cursor.error();
  if (query.limit == 0) return EventPage{{}, query.after};
  return with_reader([&](Connection& c) -> Result<EventPage> {
    if (row_id && cursor->row_id != 0) {
      auto txid = c.exec(sql::kReadEventTxid, Params().int64(cursor->row_id), deadline());
      if (!txid) return txid.error();
      if (txid->empty()) return err(Errc::invalid_field);  // no such row
      auto parsed = feed::parse_token(txid->text(0, 0) + "." + std::to_string(cursor->row_id));
      if (!parsed) return err(Errc::store_corrupt);
      cursor = *parsed;
    }
    Params p;
    p.text(std::to_string(cursor->txid)).int64(cursor->row_id);
    if (query.source) {
      p.text(*query.source);
    } else {
      p.null();
    }
    p.int64(sql_limit(query.limit));
    auto rows = c.exec(feed::kPage, p, deadline());
    if (!rows) return rows.error();
    EventPage page;
    page.next = query.after;
    for (int i = 0; i < rows->size(); ++i) {
      // Columns: id, txid text, then the event's from source on.
      EventMeta m;
      auto id = rows->int64(i, 0);
      auto received = rows->int64(i, 8);
      auto redacted = rows->boolean(i, 12);
      const auto origin = parse_origin(rows->text(i, 9));
      const auto state = parse_state(rows->text(i, 10));
      if (!id || !received || !redacted || !origin || !state) return err(Errc::store_corrupt);
      m.row_id = *id;
      m.source = rows->text(i, 2);
      m.idempotency_key = rows->text(i, 3);
      m.event_name = rows->text(i, 4);
      m.message_id = rows->text(i, 5);
      m.event_time = rows->text(i, 6);
      m.wallet_id = rows->text(i, 7);
      m.received_at_ms = *received;
      m.origin = *origin;
      m.materials = *state;
      m.failure_reason = rows->text(i, 11);
      m.payload_redacted = *redacted;
      auto last = feed::parse_token(rows->text(i, 1) + "." + std::to_string(*id));
      if (!last) return err(Errc::store_corrupt);
      page.next = feed::token(*last);
      page.events.push_back(std::move(m));
    }
    return page;
  });
}

Result<std::vector<EventMeta>> PgStore::decrypt_failures() const {
  return with_reader([&](Connection& c) -> Result<std::vector<EventMeta>> {
    auto rows = c.exec(sql::kReadDecryptFailures, {}, deadline());
    if (!rows) return rows.error();
    return metas(*rows);
  });
}

Result<std::optional<SecretBytes>> PgStore::event_payload(std::int64_t row_id) const {
  struct Row {
    std::string source;
    std::string idempotency_key;
    WrappedKey key;
    Bytes payload;
  };
  auto row = with_reader([&](Connection& c) -> Result<std::optional<Row>> {
    auto rows = c.exec(sql::kReadPayload, Params().int64(row_id), deadline());
    if (!rows) return rows.error();
    if (rows->empty() || rows->is_null(0, 5)) return std::optional<Row>();
    auto v = rows->int64(0, 3);
    if (!v) return v.error();
    auto version = kek_version_from(*v);
    if (!version) return version.error();
    return std::optional<Row>(Row{rows->text(0, 0), rows->text(0, 1),
                                  WrappedKey{rows->text(0, 2), *version, rows->bytes(0, 4)},
                                  rows->bytes(0, 5)});
  });
  if (!row) return row.error();
  if (!*row) return std::optional<SecretBytes>();
  auto opened =
      open_payload(*kek_, (*row)->source, (*row)->idempotency_key, (*row)->key, (*row)->payload);
  if (!opened) return opened.error();
  return std::optional<SecretBytes>(std::move(*opened));
}

Result<std::optional<StoredMaterials>> PgStore::materials(std::string_view source,
                                                          std::string_view wallet_id) const {
  using Row = StoredMaterialsRow;
  auto row = with_reader([&](Connection& c) -> Result<std::optional<Row>> {
    auto rows = c.exec(sql::kReadMaterials, Params().text(source).text(wallet_id), deadline());
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<Row>();
    auto v = rows->int64(0, 6);
    if (!v) return v.error();
    auto version = kek_version_from(*v);
    if (!version) return version.error();
    Row r;
    r.meta.source = std::string(source);
    r.meta.wallet_id = std::string(wallet_id);
    r.meta.user_id = rows->text(0, 0);
    r.meta.chain = rows->text(0, 1);
    r.meta.share_set_id = rows->optional_text(0, 2);
    r.meta.event_id = rows->text(0, 3);
    r.meta.created_at = rows->text(0, 4);
    r.key = WrappedKey{rows->text(0, 5), *version, rows->bytes(0, 7)};
    r.share = rows->bytes(0, 8);
    r.api_key = rows->bytes(0, 9);
    return std::optional<Row>(std::move(r));
  });
  if (!row) return row.error();
  if (!*row) return std::optional<StoredMaterials>();
  auto opened = open_materials_row(*kek_, std::move(**row));
  if (!opened) return opened.error();
  return std::optional<StoredMaterials>(std::move(*opened));
}

Result<std::vector<SubscriptionSequence>> PgStore::sequences(
    std::optional<std::string_view> source) const {
  return with_reader([&](Connection& c) -> Result<std::vector<SubscriptionSequence>> {
    Params p;
    if (source) p.text(*source);
    auto rows = c.exec(source ? sql::kReadSequencesOf : sql::kReadSequencesAll, p, deadline());
    if (!rows) return rows.error();
    std::vector<SubscriptionSequence> out;
    for (int i = 0; i < rows->size(); ++i) {
      SubscriptionSequence s;
      s.source = rows->text(i, 0);
      s.subscription_id = rows->text(i, 1);
      auto contiguous = rows->int64(i, 2);
      auto highest = rows->int64(i, 3);
      if (!contiguous || !highest) return err(Errc::store_corrupt);
      s.contiguous = static_cast<std::uint64_t>(*contiguous);
      s.highest = static_cast<std::uint64_t>(*highest);
      out.push_back(std::move(s));
    }
    for (auto& s : out) {
      auto gaps =
          c.exec(sql::kReadGaps, Params().text(s.source).text(s.subscription_id), deadline());
      if (!gaps) return gaps.error();
      for (int i = 0; i < gaps->size(); ++i) {
        auto first = gaps->int64(i, 0);
        auto last = gaps->int64(i, 1);
        auto detected = gaps->int64(i, 2);
        if (!first || !last || !detected) return err(Errc::store_corrupt);
        s.gaps.push_back(SequenceGap{static_cast<std::uint64_t>(*first),
                                     static_cast<std::uint64_t>(*last), *detected});
      }
    }
    return out;
  });
}

Result<std::uint64_t> PgStore::count_events_with_key_prefix(std::string_view source,
                                                            std::string_view prefix) const {
  return with_reader([&](Connection& c) -> Result<std::uint64_t> {
    auto rows = c.exec(sql::kReadCountPrefix, Params().text(source).text(prefix), deadline());
    if (!rows) return rows.error();
    if (rows->empty()) return err(Errc::internal);
    auto n = rows->int64(0, 0);
    if (!n) return n.error();
    return static_cast<std::uint64_t>(*n);
  });
}

Result<std::optional<std::int64_t>> PgStore::latest_event_time_ms(std::string_view source) const {
  return with_reader([&](Connection& c) -> Result<std::optional<std::int64_t>> {
    auto rows = c.exec(sql::kReadLatestEventTime, Params().text(source), deadline());
    if (!rows) return rows.error();
    if (rows->empty() || rows->is_null(0, 0)) return std::optional<std::int64_t>();
    auto t = rows->int64(0, 0);
    if (!t) return t.error();
    return std::optional<std::int64_t>(*t);
  });
}

// --- the audit log -------------------------------------------------------------

Result<std::optional<SecretBytes>> PgStore::read_audit_key(Connection& c) const {
  auto rows = c.exec(sql::kReadAuditKey, {}, deadline());
  if (!rows) return rows.error();
  if (rows->empty() || rows->is_null(0, 0) || rows->is_null(0, 1) || rows->is_null(0, 2)) {
    return std::optional<SecretBytes>();
  }
  auto wrapped = from_hex(rows->text(0, 0));
  const auto version = parse_int(rows->text(0, 2));
  if (!wrapped || !version) return err(Errc::store_corrupt);
  auto v = kek_version_from(*version);
  if (!v) return v.error();
  auto key =
      unwrap_dek(*kek_, WrappedKey{rows->text(0, 1), *v, std::move(*wrapped)}, audit_key_ad());
  if (!key) return key.error();
  return std::optional<SecretBytes>(std::move(*key));
}

Result<std::vector<AuditRecord>> PgStore::audit_records(std::int64_t after,
                                                        std::size_t limit) const {
  std::vector<AuditRecord> out;
  if (limit == 0) return out;
  return with_reader([&](Connection& c) -> Result<std::vector<AuditRecord>> {
    auto rows =
        c.exec(sql::kReadAuditAfter, Params().int64(after).int64(sql_limit(limit)), deadline());
    if (!rows) return rows.error();
    for (int i = 0; i < rows->size(); ++i) {
      auto seq = rows->int64(i, 0);
      auto time = rows->int64(i, 1);
      if (!seq || !time) return err(Errc::store_corrupt);
      out.push_back(AuditRecord{
          *seq, *time,
          AuditEntry{rows->text(i, 2), rows->text(i, 3), rows->text(i, 4), rows->text(i, 5)},
          to_hex(rows->bytes(i, 6))});
    }
    return out;
  });
}

// One snapshot (REPEATABLE READ, read only) for the head, the count and the
// walk.
Result<AuditVerifyResult> PgStore::verify_audit() const {
  return with_reader([&](Connection& c) -> Result<AuditVerifyResult> {
    if (auto b = c.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {}, deadline()); !b) {
      return b.error();
    }
    auto result = [&]() -> Result<AuditVerifyResult> {
      auto key = read_audit_key(c);
      if (!key) return key.error();
      if (!*key) return err(Errc::store_corrupt);
      auto count = c.exec(sql::kCountAudit, {}, deadline());
      if (!count || count->empty()) return err(Errc::store_unavailable);
      auto records = count->int64(0, 0);
      if (!records) return records.error();
      std::optional<AuditHead> head;
      auto h = c.exec(sql::kReadAuditHead, {}, deadline());
      if (!h) return h.error();
      if (!h->empty()) {
        auto seq = h->int64(0, 0);
        const auto mac = mac_from(h->bytes(0, 1));
        const auto tag = mac_from(h->bytes(0, 2));
        if (seq && mac && tag) head = AuditHead{*seq, *mac, *tag};
      }
      const AuditRowWalk walk = [&c](const AuditRowVisitor& visit) -> Result<void> {
        std::int64_t after = std::numeric_limits<std::int64_t>::min();
        for (;;) {
          auto rows = c.exec(sql::kReadAuditAfter, Params().int64(after).int64(1000), deadline());
          if (!rows) return rows.error();
          if (rows->empty()) return {};
          for (int i = 0; i < rows->size(); ++i) {
            auto seq = rows->int64(i, 0);
            auto time = rows->int64(i, 1);
            if (!seq || !time) return err(Errc::store_corrupt);
            after = *seq;
            auto go = visit(AuditRow{
                *seq, *time,
                AuditEntry{rows->text(i, 2), rows->text(i, 3), rows->text(i, 4), rows->text(i, 5)},
                rows->bytes(i, 6)});
            if (!go) return go.error();
            if (!*go) return {};
          }
        }
      };
      return verify_audit_rows(**key, head, *records, walk);
    }();
    static_cast<void>(c.exec("COMMIT", {}, deadline()));
    return result;
  });
}

}  // namespace hookvault::store::pg
