#include "store/pg/lease.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <utility>

#include "hookvault/process.hpp"
#include "store/pg/schema.hpp"

namespace hookvault::store::pg {
namespace {

constexpr char kTryLock[] = "SELECT pg_try_advisory_lock($1::int4, $2::int4)";
constexpr char kUnlock[] = "SELECT pg_advisory_unlock($1::int4, $2::int4)";
constexpr char kPing[] = "SELECT 1";

}  // namespace

std::int32_t AdvisoryLease::key_of(std::string_view name) noexcept {
  std::uint32_t h = 2166136261U;
  for (const char ch : name) {
    h ^= static_cast<unsigned char>(ch);
    h *= 16777619U;
  }
  return static_cast<std::int32_t>(h);
}

Result<std::unique_ptr<AdvisoryLease>> AdvisoryLease::try_take(
    const ConnectOptions& options, std::string_view name, std::chrono::milliseconds ping_interval,
    PgError* error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error_code(Errc::internal);
  const auto close_pipe = [&] {
    ::close(fds[0]);
    ::close(fds[1]);
  };
  ConnectOptions o = options;
  o.stop_fd = fds[0];
  auto conn = Connection::open(o, {}, error);
  if (!conn) {
    close_pipe();
    return conn.error();
  }
  auto taken = conn->exec(kTryLock, Params().int64(schema::kLeaseLockClass).int64(key_of(name)),
                          Clock::now() + options.connect_timeout);
  if (!taken || taken->empty()) {
    if (error != nullptr) *error = conn->last_error();
    close_pipe();
    return make_error_code(Errc::store_unavailable);
  }
  auto got = taken->boolean(0, 0);
  if (!got) {
    close_pipe();
    return got.error();
  }
  if (!*got) {
    close_pipe();
    return std::unique_ptr<AdvisoryLease>();
  }
  return std::unique_ptr<AdvisoryLease>(
      new AdvisoryLease(std::move(*conn), key_of(name), fds[0], fds[1], ping_interval));
}

AdvisoryLease::AdvisoryLease(Connection conn, std::int32_t key, int stop_read, int stop_write,
                             std::chrono::milliseconds ping_interval)
    : conn_(std::move(conn)),
      key_(key),
      stop_read_(stop_read),
      stop_write_(stop_write),
      ping_interval_(ping_interval) {
  pinger_ = std::thread([this] { ping_loop(); });
}

AdvisoryLease::~AdvisoryLease() {
  held_.store(false, std::memory_order_release);
  static_cast<void>(::write(stop_write_, "x", 1));
  pinger_.join();
  char drained = 0;  // the stop signal, so that the unlock below can wait
  static_cast<void>(::read(stop_read_, &drained, 1));
  // Released now rather than when the server notices the closed connection,
  // so the next taker need not wait (best effort: closing releases it too).
  if (conn_.usable()) {
    static_cast<void>(conn_.exec(kUnlock, Params().int64(schema::kLeaseLockClass).int64(key_),
                                 Clock::now() + std::chrono::seconds(2)));
  }
  ::close(stop_read_);
  ::close(stop_write_);
}

void AdvisoryLease::ping_loop() {
  name_this_thread("hv-pg-lease");
  for (;;) {
    pollfd p{stop_read_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(ping_interval_.count()));
    if (n > 0) return;  // destroyed
    if (n < 0) continue;
    const auto wait = std::max<std::chrono::milliseconds>(ping_interval_, std::chrono::seconds(5));
    if (!conn_.exec(kPing, {}, Clock::now() + wait)) {
      held_.store(false, std::memory_order_release);
      return;
    }
  }
}

}  // namespace hookvault::store::pg
