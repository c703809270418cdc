#include "store/pg/libpq.hpp"

#include <poll.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace hookvault::store::pg {
namespace {

// Type OIDs of the columns Rows decodes and of array elements
// (pg_type.dat).
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kTextOid = 25;

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

std::uint64_t read_be(const char* p, int n) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// SQLSTATE classes and codes that mean "the server cannot take this write now":
// connection exceptions (08), operator intervention (57: shutdown, crash
// recovery, cannot connect now), insufficient resources (53: disk full, too
// many connections), a read-only transaction on a standby or demoted primary
// (25006).
bool unavailable_state(std::string_view s) noexcept {
  return s.starts_with("08") || s.starts_with("57") || s.starts_with("53") || s == "25006";
}

std::string first_line(const char* message) {
  std::string m = message != nullptr ? message : "";
  if (const auto nl = m.find('\n'); nl != std::string::npos) m.resize(nl);
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------
// Params

Params& Params::text(std::string_view v) {
  values_.emplace_back(std::string(v));
  lengths_.push_back(0);
  formats_.push_back(0);
  return *this;
}

Params& Params::optional_text(const std::optional<std::string>& v) { return v ? text(*v) : null(); }

Params& Params::int64(std::int64_t v) { return text(std::to_string(v)); }

Params& Params::boolean(bool v) { return text(v ? "t" : "f"); }

namespace {

// PostgreSQL's binary form of a one-dimensional array without NULLs
// (array_recv): dimensions, flags, element type, length and lower bound,
// then each element as its length and its binary form.
void put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

template <class T, class Bytes>
std::string binary_array(Oid element_oid, const std::vector<T>& v, Bytes bytes_of) {
  std::size_t size = 20;
  for (const auto& e : v) size += 4 + bytes_of(e).size();
  std::string out;
  out.reserve(size);
  put32(out, 1);  // dimensions
  put32(out, 0);  // no NULLs
  put32(out, element_oid);
  put32(out, static_cast<std::uint32_t>(v.size()));
  put32(out, 1);  // lower bound
  for (const auto& e : v) {
    const std::string_view b = bytes_of(e);
    put32(out, static_cast<std::uint32_t>(b.size()));
    out.append(b);
  }
  return out;
}

}  // namespace

Params& Params::binary(std::string v) {
  lengths_.push_back(static_cast<int>(v.size()));
  values_.emplace_back(std::move(v));
  formats_.push_back(1);
  return *this;
}

Params& Params::text_array(const std::vector<std::string_view>& v) {
  return binary(binary_array(kTextOid, v, [](std::string_view e) { return e; }));
}

Params& Params::bytes_array(const std::vector<ByteView>& v) {
  return binary(binary_array(kByteaOid, v, [](ByteView e) { return as_string(e); }));
}

Params& Params::int64_array(const std::vector<std::int64_t>& v) {
  std::vector<std::string> big_endian;
  big_endian.reserve(v.size());
  for (const std::int64_t e : v) {
    std::string b;
    const auto u = static_cast<std::uint64_t>(e);
    for (int shift = 56; shift >= 0; shift -= 8) b += static_cast<char>((u >> shift) & 0xff);
    big_endian.push_back(std::move(b));
  }
  return binary(binary_array(kInt8Oid, big_endian,
                             [](const std::string& e) -> std::string_view { return e; }));
}

Params& Params::bytes(ByteView v) {
  values_.emplace_back(std::string(as_string(v)));
  lengths_.push_back(static_cast<int>(v.size()));
  formats_.push_back(1);
  return *this;
}

Params& Params::null() {
  values_.emplace_back(std::nullopt);
  lengths_.push_back(0);
  formats_.push_back(0);
  return *this;
}

const char* const* Params::values() const {
  pointers_.clear();
  for (const auto& v : values_) pointers_.push_back(v ? v->c_str() : nullptr);
  return pointers_.data();
}

// ---------------------------------------------------------------------------
// Rows

std::uint64_t Rows::affected() const noexcept {
  const char* n = PQcmdTuples(r_.get());
  std::uint64_t v = 0;
  for (; n != nullptr && *n >= '0' && *n <= '9'; ++n) v = v * 10 + static_cast<unsigned>(*n - '0');
  return v;
}

Result<std::int64_t> Rows::int64(int row, int col) const noexcept {
  if (is_null(row, col)) return err(Errc::store_corrupt);
  const Oid type = PQftype(r_.get(), col);
  const int len = PQgetlength(r_.get(), row, col);
  const char* p = PQgetvalue(r_.get(), row, col);
  const int want = type == kInt8Oid ? 8 : type == kInt4Oid ? 4 : type == kInt2Oid ? 2 : -1;
  if (want < 0 || len != want) return err(Errc::store_corrupt);
  const std::uint64_t raw = read_be(p, len);
  // Sign-extend the narrower types.
  const int shift = 64 - 8 * len;
  return static_cast<std::int64_t>(raw << shift) >> shift;
}

Result<bool> Rows::boolean(int row, int col) const noexcept {
  if (is_null(row, col) || PQftype(r_.get(), col) != kBoolOid ||
      PQgetlength(r_.get(), row, col) != 1) {
    return Result<bool>(boost::system::in_place_error, err(Errc::store_corrupt));
  }
  return PQgetvalue(r_.get(), row, col)[0] != 0;
}

std::string Rows::text(int row, int col) const {
  if (is_null(row, col)) return {};
  return {PQgetvalue(r_.get(), row, col),
          static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
}

std::optional<std::string> Rows::optional_text(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return text(row, col);
}

Bytes Rows::bytes(int row, int col) const {
  if (is_null(row, col) || PQftype(r_.get(), col) != kByteaOid) return {};
  const auto* p = reinterpret_cast<const std::uint8_t*>(PQgetvalue(r_.get(), row, col));
  return {p, p + PQgetlength(r_.get(), row, col)};
}

// ---------------------------------------------------------------------------
// Connection

Connection::Connection(ConnPtr conn, int stop_fd) : conn_(std::move(conn)), stop_fd_(stop_fd) {
  PQsetNoticeReceiver(conn_.get(), &Connection::on_notice, this);
}

// The notice receiver's argument is the object itself, so a move points it
// at the new object.
Connection::Connection(Connection&& other) noexcept { *this = std::move(other); }

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    conn_ = std::move(other.conn_);
    stop_fd_ = other.stop_fd_;
    error_ = std::move(other.error_);
    warnings_ = std::move(other.warnings_);
    prepared_ = std::move(other.prepared_);
    pending_ = std::move(other.pending_);
    pending_head_ = other.pending_head_;
    segment_failed_ = other.segment_failed_;
    send_failed_ = other.send_failed_;
    rollback_on_error_ = other.rollback_on_error_;
  }
  // The notice receiver's argument is the object: point it here.
  if (conn_) PQsetNoticeReceiver(conn_.get(), &Connection::on_notice, this);
  return *this;
}

Connection::~Connection() = default;

void Connection::on_notice(void* self, const PGresult* notice) {
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
  const std::string_view s = severity != nullptr ? severity : "";
  if (s == "WARNING" || s == "ERROR" || s == "FATAL" || s == "PANIC") {
    static_cast<Connection*>(self)->warnings_.push_back(
        first_line(PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY)));
  }
}

std::vector<std::string> Connection::take_warnings() { return std::exchange(warnings_, {}); }

bool Connection::usable() const noexcept {
  return conn_ && PQstatus(conn_.get()) == CONNECTION_OK && !error_.connection_lost;
}

std::string Connection::server() const {
  if (!conn_) return {};
  const char* host = PQhost(conn_.get());
  const char* port = PQport(conn_.get());
  return std::string(host != nullptr ? host : "") + ":" + (port != nullptr ? port : "");
}

Result<void> Connection::fail(Errc code, std::string message, bool lost) {
  error_ = PgError{code, {}, std::move(message), lost, false};
  return err(code);
}

Result<void> Connection::fail_from(const PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  PgError e;
  e.sqlstate = state != nullptr ? state : "";
  e.message = first_line(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
  e.retryable = e.sqlstate == "40P01" || e.sqlstate == "40001";
  e.connection_lost = PQstatus(conn_.get()) != CONNECTION_OK || e.sqlstate.starts_with("08") ||
                      e.sqlstate.starts_with("57P");
  if (unavailable_state(e.sqlstate) || e.connection_lost) {
    e.code = Errc::store_unavailable;
  } else if (e.sqlstate == "XX001" || e.sqlstate == "XX002") {
    e.code = Errc::store_corrupt;
  } else if (e.sqlstate.starts_with("22")) {
    // A value the server refuses (text that is not UTF-8, a NUL byte): the
    // request's, not the store's fault.
    e.code = Errc::invalid_field;
  } else {
    e.code = Errc::internal;
  }
  const Errc code = e.code;
  error_ = std::move(e);
  return err(code);
}

Result<void> Connection::wait(bool write, std::optional<Clock::time_point> deadline) {
  for (;;) {
    std::array<pollfd, 2> fds{};
    fds[0].fd = PQsocket(conn_.get());
    fds[0].events = static_cast<short>(POLLIN | (write ? POLLOUT : 0));
    fds[1].fd = stop_fd_;
    fds[1].events = POLLIN;
    int timeout_ms = -1;
    if (deadline) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) return fail(Errc::store_unavailable, "timed out waiting for the server", true);
      timeout_ms = static_cast<int>(std::min<long long>(left, 60000));
    }
    const int n = ::poll(fds.data(), stop_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::store_unavailable, std::string("poll: ") + std::strerror(errno), true);
    }
    if (stop_fd_ >= 0 && (fds[1].revents & POLLIN) != 0) {
      return fail(Errc::store_unavailable, "stopped", true);
    }
    if (n > 0) return {};
  }
}

Result<void> Connection::flush(std::optional<Clock::time_point> deadline) {
  for (;;) {
    const int r = PQflush(conn_.get());
    if (r == 0) return {};
    if (r < 0) return fail(Errc::store_unavailable, first_line(PQerrorMessage(conn_.get())), true);
    if (auto w = wait(true, deadline); !w) return w;
    if (PQconsumeInput(conn_.get()) == 0) {
      return fail(Errc::store_unavailable, first_line(PQerrorMessage(conn_.get())), true);
    }
  }
}

Result<Connection> Connection::open(const ConnectOptions& options,
                                    const std::vector<const char*>& session_sql, PgError* error) {
  const auto report = [error](PgError e) {
    if (error != nullptr) *error = std::move(e);
    return err(Errc::store_unavailable);
  };
  // The password travels as its own keyword, from locked memory, never inside
  // the conninfo string (which may be logged); libpq copies it.
  std::string password;
  if (options.password != nullptr) {
    password.assign(options.password->reveal_string());
  }
  const std::string timeout =
      std::to_string(std::max<long long>(1, (options.connect_timeout.count() + 999) / 1000));
  std::vector<const char*> keys = {"dbname", "application_name", "connect_timeout"};
  std::vector<const char*> values = {options.conninfo.c_str(), options.application_name.c_str(),
                                     timeout.c_str()};
  if (options.password != nullptr) {
    keys.push_back("password");
    values.push_back(password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  ConnPtr conn(PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/1));
  secure_wipe(password.data(), password.size());
  if (!conn) return report({Errc::store_unavailable, {}, "out of memory", true, false});
  if (PQstatus(conn.get()) == CONNECTION_BAD) {
    return report(
        {Errc::store_unavailable, {}, first_line(PQerrorMessage(conn.get())), true, false});
  }
  const auto deadline = Clock::now() + options.connect_timeout;
  Connection c(std::move(conn), options.stop_fd);
  for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;;) {
    if (st == PGRES_POLLING_OK) break;
    if (st == PGRES_POLLING_FAILED) {
      return report(
          {Errc::store_unavailable, {}, first_line(PQerrorMessage(c.conn_.get())), true, false});
    }
    if (auto w = c.wait(st == PGRES_POLLING_WRITING, deadline); !w) return report(c.error_);
    st = PQconnectPoll(c.conn_.get());
  }
  if (PQsetnonblocking(c.conn_.get(), 1) != 0 || PQenterPipelineMode(c.conn_.get()) != 1) {
    return report(
        {Errc::store_unavailable, {}, first_line(PQerrorMessage(c.conn_.get())), true, false});
  }
  // Session settings are static text: sent unprepared, once each.
  for (const char* sql : session_sql) {
    if (PQsendQueryParams(c.conn_.get(), sql, 0, nullptr, nullptr, nullptr, nullptr, 1) != 1) {
      return report(
          {Errc::store_unavailable, {}, first_line(PQerrorMessage(c.conn_.get())), true, false});
    }
    c.pending_.push_back(Pending{});
  }
  if (!session_sql.empty()) {
    if (auto r = c.sync(deadline); !r) return report(c.error_);
    for (std::size_t i = 0; i < session_sql.size(); ++i) {
      if (auto rows = c.next(deadline); !rows) {
        PgError e = c.error_;
        static_cast<void>(c.finish_segment(deadline));
        return report(std::move(e));
      }
    }
    if (auto end = c.finish_segment(deadline); !end) return report(c.error_);
  }
  return c;
}

void Connection::send(const char* sql, const Params& params) {
  if (!conn_ || send_failed_) {
    send_failed_ = true;
    return;
  }
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "s" + std::to_string(prepared_.size());
    if (PQsendPrepare(conn_.get(), name.c_str(), sql, 0, nullptr) != 1) {
      send_failed_ = true;
      return;
    }
    pending_.push_back(Pending{sql});
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  if (PQsendQueryPrepared(conn_.get(), it->second.c_str(), params.count(), params.values(),
                          params.lengths(), params.formats(), /*resultFormat=*/1) != 1) {
    send_failed_ = true;
    return;
  }
  pending_.push_back(Pending{});
}

void Connection::send_once(const char* sql, const Params& params) {
  if (!conn_ || send_failed_ ||
      PQsendQueryParams(conn_.get(), sql, params.count(), nullptr, params.values(),
                        params.lengths(), params.formats(), /*resultFormat=*/1) != 1) {
    send_failed_ = true;
    return;
  }
  pending_.push_back(Pending{});
}

Result<void> Connection::sync(std::optional<Clock::time_point> deadline) {
  if (!conn_) return fail(Errc::store_unavailable, "not connected", true);
  if (send_failed_ || PQpipelineSync(conn_.get()) != 1) {
    send_failed_ = false;
    return fail(Errc::store_unavailable, first_line(PQerrorMessage(conn_.get())), true);
  }
  return flush(deadline);
}

Result<ResultPtr> Connection::read_result(std::optional<Clock::time_point> deadline) {
  for (;;) {
    if (PQconsumeInput(conn_.get()) == 0) {
      return fail(Errc::store_unavailable, first_line(PQerrorMessage(conn_.get())), true).error();
    }
    if (PQisBusy(conn_.get()) == 0) return ResultPtr(PQgetResult(conn_.get()));
    if (auto w = wait(false, deadline); !w) return w.error();
  }
}

Result<Rows> Connection::next(std::optional<Clock::time_point> deadline) {
  std::optional<boost::system::error_code> prepare_failed;
  for (;;) {
    if (pending_head_ >= pending_.size()) return err(Errc::internal);  // nothing was sent
    const Pending pending = pending_[pending_head_++];
    auto r = read_result(deadline);
    if (!r) return r.error();
    if (!*r) return fail(Errc::store_unavailable, "the server ended a result early", true).error();
    // Each statement's results end with a null result.
    auto end = read_result(deadline);
    if (!end) return end.error();
    const ExecStatusType st = PQresultStatus(r->get());
    const bool failed =
        st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE;
    if (pending.prepare != nullptr) {
      if (st == PGRES_PIPELINE_ABORTED || failed) {
        // It never took effect: prepare it again next time. Its statement's
        // own result (aborted) follows; report the preparation's error.
        prepared_.erase(pending.prepare);
        segment_failed_ = true;
        if (failed) prepare_failed = fail_from(r->get()).error();
      }
      continue;
    }
    if (prepare_failed) return *prepare_failed;
    if (st == PGRES_PIPELINE_ABORTED) {
      segment_failed_ = true;
      return err(Errc::internal);
    }
    if (failed) {
      segment_failed_ = true;
      return fail_from(r->get()).error();
    }
    return Rows(std::move(*r));
  }
}

Result<void> Connection::finish_segment(std::optional<Clock::time_point> deadline) {
  // Whatever the caller did not read of this segment.
  while (pending_head_ < pending_.size()) {
    auto r = next(deadline);
    if (!r && error_.connection_lost) return r.error();
  }
  pending_.clear();
  pending_head_ = 0;
  auto r = read_result(deadline);
  if (!r) return r.error();
  if (!*r || PQresultStatus(r->get()) != PGRES_PIPELINE_SYNC) {
    return fail(Errc::store_unavailable, "pipeline out of step", true);
  }
  segment_failed_ = false;
  // A sync point ends an implicit transaction, but an explicit one (BEGIN)
  // that failed stays open, refusing every statement: end it here.
  if (rollback_on_error_ && PQtransactionStatus(conn_.get()) == PQTRANS_INERROR) {
    const PgError first = error_;
    if (PQsendQueryParams(conn_.get(), "ROLLBACK", 0, nullptr, nullptr, nullptr, nullptr, 1) != 1) {
      return fail(Errc::store_unavailable, first_line(PQerrorMessage(conn_.get())), true);
    }
    pending_.push_back(Pending{});
    if (auto s = sync(deadline); !s) return s;
    if (auto rb = next(deadline); !rb) return rb.error();
    if (auto end = finish_segment(deadline); !end) return end;
    error_ = first;  // the caller's failure, not the rollback
  }
  return {};
}

Result<Rows> Connection::exec(const char* sql, const Params& params,
                              std::optional<Clock::time_point> deadline) {
  send(sql, params);
  if (auto s = sync(deadline); !s) return s.error();
  auto rows = next(deadline);
  if (auto end = finish_segment(deadline); !end) return end.error();
  return rows;
}

}  // namespace hookvault::store::pg
