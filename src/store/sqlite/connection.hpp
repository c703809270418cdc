// A thin RAII layer over the SQLite C API for the store: connections and
// statements in std::unique_ptr with their deleters, prepared statements cached
// per connection, every return code turned into a hookvault Errc.
//
// - Connection owns one sqlite3 handle and its statement cache. A connection is
//   used by one thread at a time (the store opens its handles with
//   SQLITE_OPEN_NOMUTEX and guards them itself).
// - Statement borrows a cached sqlite3_stmt; its destructor resets it and clears
//   the bindings, so a statement never keeps a read snapshot open or holds a
//   bound value longer than the call that used it.
// - Bind errors are remembered and reported by the next step(), so a chain of
//   binds needs one check.
//
// Nothing here logs; error codes carry no SQL text or values.
//
// Thread-safety: none; see above.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"

namespace hookvault::store::sqlite {

// The Errc for an SQLite result code: corruption -> store_corrupt; I/O, full,
// busy, locked, read-only, cannot open, out of memory -> store_unavailable;
// anything else (constraint, misuse, ...) -> internal.
Errc errc_from_sqlite(int rc) noexcept;
inline boost::system::error_code sqlite_error(int rc) noexcept {
  return make_error_code(errc_from_sqlite(rc));
}

struct SqliteCloser {
  void operator()(sqlite3* db) const noexcept;
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept;
};
using DbPtr = std::unique_ptr<sqlite3, SqliteCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

enum class Step { row, done };

// A std::size_t count as an SQL LIMIT (bound as int64): clamped to INT64_MAX.
inline std::int64_t sql_limit(std::size_t n) noexcept {
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
  return static_cast<std::int64_t>(n < kMax ? n : kMax);
}

class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();  // sqlite3_reset + sqlite3_clear_bindings

  // Parameters are 1-based, as in SQLite. Text and blobs are copied
  // (SQLITE_TRANSIENT), so the arguments need not outlive the statement.
  Statement& bind_text(int index, std::string_view text) noexcept;
  Statement& bind_optional_text(int index, const std::optional<std::string>& text) noexcept;
  Statement& bind_int64(int index, std::int64_t value) noexcept;
  Statement& bind_blob(int index, ByteView blob) noexcept;
  Statement& bind_null(int index) noexcept;

  // One step. Errors of earlier binds are reported here.
  Result<Step> step() noexcept;
  // Steps a statement that returns no row (INSERT, UPDATE, DELETE, ...).
  Result<void> run() noexcept;

  // Columns are 0-based, as in SQLite.
  bool column_is_null(int column) const noexcept;
  std::int64_t column_int64(int column) const noexcept;
  std::string column_text(int column) const;
  std::optional<std::string> column_optional_text(int column) const;
  Bytes column_blob(int column) const;

 private:
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// Steps `stmt` through all its rows, calling f(const Statement&) on each. f
// returns void, or Result<void> to stop at its first error; step errors stop
// it too.
template <class F>
Result<void> for_each_row(Statement& stmt, F&& f) {
  for (;;) {
    auto step = stmt.step();
    if (!step) return step.error();
    if (*step == Step::done) return {};
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const Statement&>>) {
      f(std::as_const(stmt));
    } else {
      if (auto r = f(std::as_const(stmt)); !r) return r.error();
    }
  }
}

class Connection {
 public:
  // sqlite3_open_v2(path, flags, vfs) with extended result codes and
  // busy_timeout. `vfs`: the name of a registered SQLite VFS, empty for the
  // default one (SqliteStoreOptions::vfs).
  static Result<Connection> open(const std::filesystem::path& path, int flags,
                                 std::chrono::milliseconds busy_timeout,
                                 const std::string& vfs = std::string());

  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() = default;  // statements are finalized before the handle closes

  sqlite3* handle() const noexcept { return db_.get(); }

  // How long SQLite's busy handler retries a lock another connection holds
  // (0: not at all), clamped to [0, INT_MAX] ms.
  Result<void> set_busy_timeout(std::chrono::milliseconds timeout) noexcept;

  // Runs one or more statements that return no rows we need.
  Result<void> exec(const char* sql) noexcept;
  // A statement prepared once per connection (SQLITE_PREPARE_PERSISTENT) and
  // kept in the cache. `sql` must point at static storage (a constant).
  Result<Statement> prepare(std::string_view sql);
  // The text of the first column of the first row (pragmas that answer).
  Result<std::string> query_text(const char* sql);

  // True inside BEGIN ... COMMIT (SQLite may end a transaction on its own
  // after SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY or SQLITE_NOMEM).
  bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_.get()) == 0; }

  // Finalizes the cached statements and closes the handle. Idempotent.
  void close() noexcept;

 private:
  explicit Connection(DbPtr db) noexcept : db_(std::move(db)) {}

  // Declared after db_ so that it is destroyed first.
  DbPtr db_;
  std::unordered_map<std::string_view, StmtPtr> cache_;
};

// One more read-write connection to a database already in WAL mode, for a
// helper thread of the store (the checkpointer, the syncer): no busy handler
// (neither waits for a lock), trusted_schema off, and the WAL opened on it by
// reading the journal mode; it stays open until the connection closes.
// Errc::store_unavailable when it does not open or the file is not in WAL mode.
// `vfs` as in Connection::open: every connection of a store uses the same one.
Result<Connection> open_wal_peer(const std::filesystem::path& path, const std::string& vfs);

}  // namespace hookvault::store::sqlite
