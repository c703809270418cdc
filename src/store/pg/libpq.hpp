// A thin adapter over libpq for the PostgreSQL store: one connection, used by
// one thread at a time, in non-blocking pipeline mode, with every wait bounded
// by a deadline and interruptible by a stop signal.
//
// Written here rather than taken from a library: Debian 12 packages no
// asynchronous C++ PostgreSQL client (libpqxx 6.4 is blocking only), and what
// the store needs of libpq is small: send a pipeline of parameterized
// statements, read their results in order, and see the notices the server sent
// meanwhile (a WARNING during COMMIT is how PostgreSQL says that a wait for
// synchronous replication was cancelled: the commit is then local only, not
// yet on the standby, and the store must not acknowledge it).
//
// - Statements are prepared once per connection, inside the pipeline that
//   first uses them (Connection::send), under a name derived from their cache
//   slot; `sql` must point at static storage (a constant).
// - Parameters travel as text, except bytea (binary); results come back in
//   binary format, and Rows reads int2/int4/int8, bool, text and bytea.
// - Errors map to Errc: a lost connection, a server shutting down, a
//   read-only server (a standby, or a primary just demoted), too many
//   connections and a full disk are Errc::store_unavailable; a row that does
//   not decode is Errc::store_corrupt; a value the server refuses (SQLSTATE
//   class 22: text that is not UTF-8, say) Errc::invalid_field; anything else
//   Errc::internal.
//   Connection::last_error() keeps the SQLSTATE and whether the connection is
//   still usable; the server's message text is kept only for logs and never
//   holds parameter values (the store binds every value).
//
// Thread-safety: none; a Connection belongs to one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/secret.hpp"

namespace hookvault::store::pg {

using Clock = std::chrono::steady_clock;

struct ConnFinisher {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct ResultClearer {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnFinisher>;
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// The parameters of one statement ($1, $2, ... in order of the calls).
class Params {
 public:
  Params& text(std::string_view v);
  Params& optional_text(const std::optional<std::string>& v);
  Params& int64(std::int64_t v);
  Params& boolean(bool v);
  Params& bytes(ByteView v);
  Params& null();
  // One-dimensional arrays in PostgreSQL's binary form, for $n::text[],
  // $n::bigint[] and $n::bytea[] (the cast names the type the server reads):
  // each element's bytes as they are, nothing to quote or parse.
  Params& text_array(const std::vector<std::string_view>& v);
  Params& int64_array(const std::vector<std::int64_t>& v);
  Params& bytes_array(const std::vector<ByteView>& v);

  int count() const noexcept { return static_cast<int>(values_.size()); }
  // Pointers for PQsendQueryPrepared; valid until the next change.
  const char* const* values() const;
  const int* lengths() const noexcept { return lengths_.data(); }
  const int* formats() const noexcept { return formats_.data(); }

 private:
  Params& binary(std::string v);  // a value in its binary form

  std::vector<std::optional<std::string>> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  mutable std::vector<const char*> pointers_;
};

// The rows of one statement's result (binary format).
class Rows {
 public:
  explicit Rows(ResultPtr r) noexcept : r_(std::move(r)) {}
  int size() const noexcept { return PQntuples(r_.get()); }
  bool empty() const noexcept { return size() == 0; }
  // Rows changed by an INSERT, UPDATE or DELETE.
  std::uint64_t affected() const noexcept;

  bool is_null(int row, int col) const noexcept { return PQgetisnull(r_.get(), row, col) != 0; }
  // Errc::store_corrupt when the column is not of that type (or NULL).
  Result<std::int64_t> int64(int row, int col) const noexcept;
  Result<bool> boolean(int row, int col) const noexcept;
  std::string text(int row, int col) const;  // "" for NULL
  std::optional<std::string> optional_text(int row, int col) const;
  Bytes bytes(int row, int col) const;  // empty for NULL

 private:
  ResultPtr r_;
};

struct ConnectOptions {
  std::string conninfo;                   // a libpq connection string or URI, without a password
  const SecretBytes* password = nullptr;  // when set: libpq's "password" keyword
  std::string application_name = "hookvault";
  std::chrono::milliseconds connect_timeout{5000};
  // A descriptor whose readability stops every wait (the store's stop
  // signal); -1 for none.
  int stop_fd = -1;
};

// What the last failure was, for the caller's decisions and logs.
struct PgError {
  Errc code = Errc::internal;
  std::string sqlstate;          // e.g. "40P01"; empty when libpq itself failed
  std::string message;           // the server's or libpq's primary message, for logs
  bool connection_lost = false;  // the connection cannot be used again
  // The server refused for a reason a retry of the same transaction may
  // cure: a deadlock or serialization failure (40P01, 40001).
  bool retryable = false;
};

class Connection {
 public:
  // Connects (polling, bounded by options.connect_timeout and stop_fd),
  // enters pipeline mode and runs `session_sql`, one statement each (the
  // session's settings: e.g. SET synchronous_commit = on). Errc::store_unavailable with the reason
  // in `error` when the server cannot be reached, refuses, or is read-only while the conninfo asked
  // for read-write.
  static Result<Connection> open(const ConnectOptions& options,
                                 const std::vector<const char*>& session_sql,
                                 PgError* error = nullptr);

  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Queues one statement (preparing it first on this connection if it is
  // new). Nothing is sent until flush() or sync(); results come in order.
  void send(const char* sql, const Params& params = {});
  // Queues one statement without preparing it (run once: schema changes).
  void send_once(const char* sql, const Params& params = {});
  // Ends the pipeline segment: results up to here, then a sync point.
  // Sends everything queued.
  Result<void> sync(std::optional<Clock::time_point> deadline = std::nullopt);
  // The result of the next statement sent, in order. Errors of the statement
  // itself come back as an error, with last_error() set; once a statement
  // failed, the rest of the segment comes back as Errc::internal with
  // last_error().code == the first error's, until the sync point.
  Result<Rows> next(std::optional<Clock::time_point> deadline = std::nullopt);
  // Reads up to the next sync point, discarding results (after a failure).
  Result<void> finish_segment(std::optional<Clock::time_point> deadline = std::nullopt);
  // Statements were sent whose segment finish_segment() has not ended yet.
  bool segment_open() const noexcept { return !pending_.empty(); }

  // One statement as a pipeline segment of its own: send, sync, next,
  // finish_segment.
  Result<Rows> exec(const char* sql, const Params& params = {},
                    std::optional<Clock::time_point> deadline = std::nullopt);

  // Whether finish_segment() ends an explicit transaction that a failed
  // statement left refusing every statement (the default), with ROLLBACK. A
  // caller that recovers with ROLLBACK TO SAVEPOINT turns it off and ends
  // such a transaction itself.
  void set_rollback_on_error(bool on) noexcept { rollback_on_error_ = on; }

  // Notices of severity WARNING (or worse) received since the last call.
  std::vector<std::string> take_warnings();

  const PgError& last_error() const noexcept { return error_; }
  // False once the connection is lost (or was never made).
  bool usable() const noexcept;
  // Inside a transaction block (BEGIN without its COMMIT or ROLLBACK yet).
  bool in_transaction() const noexcept {
    return conn_ && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE;
  }
  // Inside a transaction block that a failed statement aborted (only
  // ROLLBACK, or ROLLBACK TO SAVEPOINT, is accepted; a COMMIT would roll
  // it back and report success).
  bool transaction_failed() const noexcept {
    return conn_ && PQtransactionStatus(conn_.get()) == PQTRANS_INERROR;
  }
  int backend_pid() const noexcept { return conn_ ? PQbackendPID(conn_.get()) : 0; }
  // The server's host and port this connection reached (for logs).
  std::string server() const;

 private:
  explicit Connection(ConnPtr conn, int stop_fd);
  static void on_notice(void* self, const PGresult* notice);
  Result<void> fail(Errc code, std::string message, bool lost);
  Result<void> fail_from(const PGresult* r);
  // Waits until the socket is readable (or writable too, with `write`);
  // Errc::store_unavailable on deadline, stop or a poll error.
  Result<void> wait(bool write, std::optional<Clock::time_point> deadline);
  Result<void> flush(std::optional<Clock::time_point> deadline);
  // The next PGresult, reading from the socket as needed; nullptr marks the
  // end of one statement's results.
  Result<ResultPtr> read_result(std::optional<Clock::time_point> deadline);

  ConnPtr conn_;
  int stop_fd_ = -1;
  PgError error_;
  std::vector<std::string> warnings_;
  // Statement text (by address) -> prepared statement name.
  std::unordered_map<const char*, std::string> prepared_;
  // What each queued result is: a PREPARE (of that statement text: its
  // result is read and discarded by next()) or a statement (prepare ==
  // nullptr).
  struct Pending {
    const char* prepare = nullptr;
  };
  std::vector<Pending> pending_;
  std::size_t pending_head_ = 0;
  bool segment_failed_ = false;
  bool rollback_on_error_ = true;
  bool send_failed_ = false;
};

}  // namespace hookvault::store::pg
