#include "store/sqlite/connection.hpp"

#include "store/sqlite/schema.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace hookvault::store::sqlite {

Errc errc_from_sqlite(int rc) noexcept {
  switch (rc & 0xFF) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Errc::store_corrupt;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS:
    case SQLITE_AUTH:
      return Errc::store_unavailable;
    default:
      return Errc::internal;
  }
}

void SqliteCloser::operator()(sqlite3* db) const noexcept {
  // sqlite3_close_v2 defers the close until the last statement is finalized;
  // the store finalizes its statements first, so this returns SQLITE_OK. There
  // is nothing a deleter could do with another code.
  static_cast<void>(sqlite3_close_v2(db));
}

void StmtFinalizer::operator()(sqlite3_stmt* stmt) const noexcept {
  // sqlite3_finalize repeats the last step's error, which was reported then.
  static_cast<void>(sqlite3_finalize(stmt));
}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  // sqlite3_reset repeats the error of the last step (already reported);
  // sqlite3_clear_bindings always returns SQLITE_OK.
  static_cast<void>(sqlite3_reset(stmt_));
  static_cast<void>(sqlite3_clear_bindings(stmt_));
}

Statement& Statement::bind_text(int index, std::string_view text) noexcept {
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ =
        sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }
  return *this;
}

Statement& Statement::bind_optional_text(int index,
                                         const std::optional<std::string>& text) noexcept {
  return text ? bind_text(index, *text) : bind_null(index);
}

Statement& Statement::bind_int64(int index, std::int64_t value) noexcept {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::bind_blob(int index, ByteView blob) noexcept {
  if (bind_rc_ == SQLITE_OK) {
    // A zero-length blob must still be a blob, not NULL: SQLite binds NULL for
    // a null pointer, so give it a valid one.
    static constexpr std::uint8_t kEmpty = 0;
    const void* data = blob.empty() ? &kEmpty : blob.data();
    bind_rc_ = sqlite3_bind_blob64(stmt_, index, data, blob.size(), SQLITE_TRANSIENT);
  }
  return *this;
}

Statement& Statement::bind_null(int index) noexcept {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<Step> Statement::step() noexcept {
  if (bind_rc_ != SQLITE_OK) return sqlite_error(bind_rc_);
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return Step::row;
  if (rc == SQLITE_DONE) return Step::done;
  return sqlite_error(rc);
}

Result<void> Statement::run() noexcept {
  auto r = step();
  if (!r) return r.error();
  if (*r != Step::done) return make_error_code(Errc::internal);  // a query, not a command
  return {};
}

bool Statement::column_is_null(int column) const noexcept {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t Statement::column_int64(int column) const noexcept {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  const int n = sqlite3_column_bytes(stmt_, column);  // after the text call, as documented
  if (text == nullptr || n <= 0) return {};
  return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(n)};
}

std::optional<std::string> Statement::column_optional_text(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_text(column);
}

Bytes Statement::column_blob(int column) const {
  const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  const int n = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || n <= 0) return {};
  return {data, data + n};
}

Result<Connection> Connection::open(const std::filesystem::path& path, int flags,
                                    std::chrono::milliseconds busy_timeout,
                                    const std::string& vfs) {
  // Debian's SQLite counts every allocation in global statistics under one
  // process-wide mutex (SQLITE_DEFAULT_MEMSTATUS=1); nothing here reads them.
  // It must be said before SQLite initializes (the first open); if something
  // else opened a database first, SQLite refuses and keeps counting.
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  static_cast<void>(memstatus_off);
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs.empty() ? nullptr : vfs.c_str());
  DbPtr db(raw);  // sqlite3_open_v2 may hand back a handle even on failure
  if (rc != SQLITE_OK) return make_error_code(Errc::store_unavailable);
  if (sqlite3_extended_result_codes(db.get(), 1) != SQLITE_OK) {
    return make_error_code(Errc::store_unavailable);
  }
  Connection connection(std::move(db));
  if (auto r = connection.set_busy_timeout(busy_timeout); !r) return r.error();
  return connection;
}

Result<void> Connection::set_busy_timeout(std::chrono::milliseconds timeout) noexcept {
  if (!db_) return make_error_code(Errc::store_unavailable);
  const auto ms = std::clamp<std::chrono::milliseconds::rep>(timeout.count(), 0,
                                                             std::numeric_limits<int>::max());
  if (sqlite3_busy_timeout(db_.get(), static_cast<int>(ms)) != SQLITE_OK) {
    return make_error_code(Errc::store_unavailable);
  }
  return {};
}

Result<void> Connection::exec(const char* sql) noexcept {
  if (!db_) return make_error_code(Errc::store_unavailable);
  const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(rc);
  return {};
}

Result<Statement> Connection::prepare(std::string_view sql) {
  if (!db_) return make_error_code(Errc::store_unavailable);
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return sqlite_error(rc);
    if (!stmt) return make_error_code(Errc::internal);  // empty SQL
    it = cache_.emplace(sql, std::move(stmt)).first;
  }
  return Statement(it->second.get());
}

Result<std::string> Connection::query_text(const char* sql) {
  if (!db_) return make_error_code(Errc::store_unavailable);
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v2(db_.get(), sql, -1, &raw, nullptr);
  StmtPtr owned(raw);
  if (rc != SQLITE_OK) return sqlite_error(rc);
  if (!owned) return make_error_code(Errc::internal);
  Statement stmt(owned.get());
  auto step = stmt.step();
  if (!step) return step.error();
  if (*step != Step::row) return std::string();
  return stmt.column_text(0);
}

void Connection::close() noexcept {
  cache_.clear();
  db_.reset();
}

Result<Connection> open_wal_peer(const std::filesystem::path& path, const std::string& vfs) {
  auto db = Connection::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             std::chrono::milliseconds(0), vfs);
  if (!db || !db->exec(schema::kReaderPragmas)) return make_error_code(Errc::store_unavailable);
  auto mode = db->query_text("PRAGMA journal_mode");
  if (!mode || *mode != "wal") return make_error_code(Errc::store_unavailable);
  return db;
}

}  // namespace hookvault::store::sqlite
