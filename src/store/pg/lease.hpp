// Leadership leases on PostgreSQL (Store::try_lease: the backfiller of a
// source, `keys rewrap`): a session advisory lock, held on a connection of
// the lease's own, so at most one holder in all the instances and commands
// on the database holds a name at a time.
//
// - Taking: pg_try_advisory_lock(kLeaseLockClass, key of the name) on a new
//   connection; not taken (nullptr) when another session holds it.
// - Holding: the lock lives as long as the session. A thread of the lease's
//   pings the server every `ping_interval`; held() turns false for good when
//   a ping fails (the connection was lost or terminated: the server released
//   the lock, and another holder may take it at once). So for up to one ping
//   interval two holders may both act: what they write must stay idempotent.
// - Releasing: destroying the lease unlocks and closes its connection.
//
// Thread-safety: held() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>

#include "hookvault/error.hpp"
#include "store/pg/libpq.hpp"

namespace hookvault::store::pg {

class AdvisoryLease {
 public:
  // The advisory lock key of a lease name (FNV-1a of its bytes, as int4):
  // the same in every instance. Two names that collide share one lock,
  // which costs concurrency, never safety.
  static std::int32_t key_of(std::string_view name) noexcept;

  // Connects with `options` and tries the lock. nullptr when another session
  // holds it; Errc::store_unavailable when the server cannot be reached.
  static Result<std::unique_ptr<AdvisoryLease>> try_take(
      const ConnectOptions& options, std::string_view name,
      std::chrono::milliseconds ping_interval = std::chrono::seconds(1), PgError* error = nullptr);

  ~AdvisoryLease();
  AdvisoryLease(const AdvisoryLease&) = delete;
  AdvisoryLease& operator=(const AdvisoryLease&) = delete;

  bool held() const noexcept { return held_.load(std::memory_order_acquire); }

 private:
  AdvisoryLease(Connection conn, std::int32_t key, int stop_read, int stop_write,
                std::chrono::milliseconds ping_interval);
  void ping_loop();

  Connection conn_;  // the pinging thread's only, after construction
  std::int32_t key_;
  int stop_read_;
  int stop_write_;
  std::chrono::milliseconds ping_interval_;
  std::atomic<bool> held_{true};
  std::thread pinger_;
};

}  // namespace hookvault::store::pg
