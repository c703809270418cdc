// Leadership leases in the SQLite file (store.hpp: Store::try_lease): at most
// one open Store, in any process, holds a named lease at a time.
//
// TABLE leases                         one row per lease name taken so far
//   name          TEXT PRIMARY KEY     "backfill:<source>", "rewrap"
//   holder        TEXT     the holding Store's random id (the holder of its
//                          KEK lease, kek_registry.hpp)
//   description   TEXT     "serve (pid 1234 on host-a)": for messages only
//   expires_ms    INTEGER  Unix ms (the holder's clock); from then on anyone
//                          may take the lease
//   host          TEXT     the holder's host name (gethostname)
//   pid           INTEGER  the holder's process id on that host
//
// RULES
//   - Taking: one upsert in a write transaction that inserts the row, or
//     replaces it when its holder is the taker or its expires_ms has passed
//     by the taker's clock; taken when a row changed. The write lock
//     serialises takers, so two never both see the row free. A row whose
//     holder ran on the taker's host under a process id that no longer
//     exists (kill(pid, 0): ESRCH) is taken at once, in the same
//     transaction, where it still names that holder: a `keys rewrap` killed
//     halfway is rerun without waiting out its lease. (Hosts are told apart
//     by name only: two containers of one name in separate PID namespaces
//     sharing the file could take each other's live leases, which costs
//     duplicated work, never data; see store.hpp.)
//   - Renewing: the holder's writer moves expires_ms to now + lease time
//     every heartbeat, in the transactions that renew its KEK lease, only
//     where the row still names it as holder; a renewal that changes no row
//     means another Store took the lease: it is lost, for good.
//   - Releasing: when the Lease is destroyed, the writer deletes the row
//     (where it still names this holder) in its next transaction (within a
//     second: the writer looks at least that often); at close, every held
//     lease's row is deleted. A holder that dies leaves its row to expire.
//   - held() is true from the commit that took the lease until its
//     expires_ms passes by the holder's own clock without a renewal having
//     committed, a renewal finds it taken over, the Lease is destroyed or the
//     store closes; then false for good.
//
// No schema version change: a hookvault without the table never takes a
// lease (and never needs one).
//
// Thread-safety: LeaseState::held() from any thread; LeaseKeeper on the
// writer thread only (and open/close around it).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hookvault/clock.hpp"
#include "hookvault/error.hpp"
#include "hookvault/log_throttle.hpp"
#include "hookvault/store.hpp"
#include "store/sqlite/connection.hpp"

namespace hookvault::store::sqlite {

// Applied on every open (idempotent), in the schema's transaction.
inline constexpr char kCreateLeases[] = R"sql(
CREATE TABLE IF NOT EXISTS leases (
  name        TEXT    PRIMARY KEY NOT NULL,
  holder      TEXT    NOT NULL,
  description TEXT    NOT NULL,
  expires_ms  INTEGER NOT NULL,
  host        TEXT    NOT NULL,
  pid         INTEGER NOT NULL
) STRICT;
)sql";

// What one taken lease shares between its Lease handle and the writer.
class LeaseState {
 public:
  LeaseState(std::string name, const Clock& clock) : name_(std::move(name)), clock_(clock) {}

  const std::string& name() const noexcept { return name_; }
  bool held() const noexcept {
    // `lost_` first: once the store closed, the clock is not read again.
    return !lost_.load() && !released_.load() && clock_.now_ms() < expires_ms_.load();
  }
  bool released() const noexcept { return released_.load(); }
  bool lost() const noexcept { return lost_.load(); }

  void release() noexcept { released_.store(true); }
  void lose() noexcept { lost_.store(true); }
  void renewed(std::int64_t expires_ms) noexcept { expires_ms_.store(expires_ms); }

 private:
  const std::string name_;
  const Clock& clock_;
  std::atomic<std::int64_t> expires_ms_{0};  // of the last committed renewal (or the take)
  std::atomic<bool> lost_{false};            // taken over, or the store closed
  std::atomic<bool> released_{false};        // the Lease was destroyed
};

// The Store::Lease handed out by try_lease(); marks its state released when
// destroyed.
class SqliteLease final : public Store::Lease {
 public:
  explicit SqliteLease(std::shared_ptr<LeaseState> state) : state_(std::move(state)) {}
  ~SqliteLease() override { state_->release(); }
  SqliteLease(const SqliteLease&) = delete;
  SqliteLease& operator=(const SqliteLease&) = delete;
  bool held() const noexcept override { return state_->held(); }

 private:
  std::shared_ptr<LeaseState> state_;
};

// The writer's side of this Store's leases. Like KekRegistration, it works
// inside the writer's transactions: take() and renew() write, committed() or
// ended() follow each transaction (what a rolled-back one did is forgotten).
class LeaseKeeper {
 public:
  LeaseKeeper(std::string holder, std::string description, std::chrono::milliseconds heartbeat,
              std::chrono::milliseconds lease_time, const Clock& clock);

  // Takes `name` in the caller's transaction: its state (held once the
  // transaction commits), or nullptr when another holder has it, this
  // Store's own live Lease of the name included.
  Result<std::shared_ptr<LeaseState>> take(Connection& db, std::string_view name);

  // A lease is held and its heartbeat fell due, or a released one waits to
  // be deleted.
  bool due() const noexcept;
  // Renews every held lease and deletes the rows of released ones, in the
  // caller's transaction; a lease found taken over is lost at once. A
  // failure is logged (throttled) and returned.
  Result<void> renew(Connection& db);
  void committed() noexcept;
  void ended() noexcept;

  // close(): deletes the rows of every held lease in the caller's
  // transaction (best effort: else they expire) and loses them all.
  Result<void> drop_all(Connection& db);
  void lose_all() noexcept;

 private:
  struct Pending {
    std::shared_ptr<LeaseState> state;
    std::optional<std::int64_t> expires_ms;  // renewed or taken to this; nullopt: drop it
  };

  const std::string holder_;
  const std::string description_;
  const std::string host_;
  const std::int64_t pid_;
  const std::chrono::milliseconds heartbeat_;
  const std::chrono::milliseconds lease_time_;
  const Clock& clock_;
  std::vector<std::shared_ptr<LeaseState>> held_;  // committed takes not yet dropped
  std::vector<Pending> pending_;                   // this transaction's takes, renewals, drops
  bool renewing_ = false;                          // renew() ran in this transaction
  std::chrono::steady_clock::time_point renew_at_{};
  LogThrottle renew_warning_;
};

}  // namespace hookvault::store::sqlite
