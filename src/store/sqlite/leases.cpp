// Leadership leases (contract and table in leases.hpp).
#include "store/sqlite/leases.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <limits>
#include <utility>

#include "hookvault/log.hpp"

namespace hookvault::store::sqlite {
namespace {

// ?1 name, ?2 holder, ?3 description, ?4 expires_ms, ?5 now: inserted, or
// replaced when the row is the taker's own or lapsed; no change otherwise.
// ?6 host, ?7 pid.
constexpr char kTake[] =
    "INSERT INTO leases (name, holder, description, expires_ms, host, pid) "
    "VALUES (?1, ?2, ?3, ?4, ?6, ?7) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
    "description = excluded.description, expires_ms = excluded.expires_ms, "
    "host = excluded.host, pid = excluded.pid "
    "WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?5";
constexpr char kHolderOf[] = "SELECT holder, host, pid FROM leases WHERE name = ?1";
// Takes over the row of a dead holder (?5), where it still names it.
constexpr char kTakeOver[] =
    "UPDATE leases SET holder = ?2, description = ?3, expires_ms = ?4, host = ?6, pid = ?7 "
    "WHERE name = ?1 AND holder = ?5";

std::string host_name() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) return std::string();
  return std::string(host.data());
}

// A process of this host (and PID namespace) that no longer exists.
bool gone(std::int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}
constexpr char kRenew[] = "UPDATE leases SET expires_ms = ?3 WHERE name = ?1 AND holder = ?2";
constexpr char kDrop[] = "DELETE FROM leases WHERE name = ?1 AND holder = ?2";

bool live(const std::shared_ptr<LeaseState>& s) { return !s->released() && !s->lost(); }

}  // namespace

LeaseKeeper::LeaseKeeper(std::string holder, std::string description,
                         std::chrono::milliseconds heartbeat, std::chrono::milliseconds lease_time,
                         const Clock& clock)
    : holder_(std::move(holder)),
      description_(std::move(description)),
      host_(host_name()),
      pid_(::getpid()),
      heartbeat_(heartbeat),
      lease_time_(lease_time),
      clock_(clock) {}

Result<std::shared_ptr<LeaseState>> LeaseKeeper::take(Connection& db, std::string_view name) {
  const auto same_name = [name](const std::shared_ptr<LeaseState>& s) {
    return s->name() == name && live(s);
  };
  if (std::any_of(held_.begin(), held_.end(), same_name)) return std::shared_ptr<LeaseState>();
  for (const auto& p : pending_) {
    if (p.expires_ms && same_name(p.state) &&
        std::find(held_.begin(), held_.end(), p.state) == held_.end()) {
      return std::shared_ptr<LeaseState>();  // taken earlier in this transaction
    }
  }
  const std::int64_t now = clock_.now_ms();
  const std::int64_t expires = now + lease_time_.count();
  auto stmt = db.prepare(kTake);
  if (!stmt) return stmt.error();
  auto r = stmt->bind_text(1, name)
               .bind_text(2, holder_)
               .bind_text(3, description_)
               .bind_int64(4, expires)
               .bind_int64(5, now)
               .bind_text(6, host_)
               .bind_int64(7, pid_)
               .run();
  if (!r) return r.error();
  if (sqlite3_changes(db.handle()) == 0) {
    // Held and not lapsed: taken over only from a dead process of this host.
    auto holder = db.prepare(kHolderOf);
    if (!holder) return holder.error();
    auto step = holder->bind_text(1, name).step();
    if (!step) return step.error();
    if (*step == Step::done || host_.empty() || holder->column_text(1) != host_ ||
        holder->column_int64(2) == pid_ || !gone(holder->column_int64(2))) {
      return std::shared_ptr<LeaseState>();
    }
    const std::string dead = holder->column_text(0);
    auto over = db.prepare(kTakeOver);
    if (!over) return over.error();
    auto taken = over->bind_text(1, name)
                     .bind_text(2, holder_)
                     .bind_text(3, description_)
                     .bind_int64(4, expires)
                     .bind_text(5, dead)
                     .bind_text(6, host_)
                     .bind_int64(7, pid_)
                     .run();
    if (!taken) return taken.error();
    if (sqlite3_changes(db.handle()) == 0) return std::shared_ptr<LeaseState>();
    log(LogLevel::info, "a leadership lease of a process that is gone was taken over",
        {{"lease", std::string(name)}});
  }
  // The row is the new state's now: an earlier, released state of the name
  // is forgotten without deleting it.
  for (const auto& old : held_) {
    if (old->name() == name) pending_.push_back(Pending{old, std::nullopt});
  }
  auto state = std::make_shared<LeaseState>(std::string(name), clock_);
  pending_.push_back(Pending{state, expires});
  return state;
}

bool LeaseKeeper::due() const noexcept {
  if (held_.empty()) return false;
  return clock_.now() >= renew_at_ ||
         std::any_of(held_.begin(), held_.end(), [](const auto& s) { return s->released(); });
}

Result<void> LeaseKeeper::renew(Connection& db) {
  const std::int64_t expires = clock_.now_ms() + lease_time_.count();
  renewing_ = true;
  Result<void> outcome;
  for (const auto& state : held_) {
    if (!state->released() && !state->lost() && !state->held()) {
      // Lapsed by this store's clock before a renewal committed: another
      // may hold it already, so it is never held again (its row goes).
      state->lose();
      log(LogLevel::warn, "a leadership lease lapsed before its renewal",
          {{"lease", state->name()}});
    }
    const bool drop = state->released() || state->lost();
    auto stmt = db.prepare(drop ? kDrop : kRenew);
    if (!stmt) {
      outcome = stmt.error();
      break;
    }
    stmt->bind_text(1, state->name()).bind_text(2, holder_);
    if (!drop) stmt->bind_int64(3, expires);
    if (auto r = stmt->run(); !r) {
      outcome = r.error();
      break;
    }
    if (!drop && sqlite3_changes(db.handle()) == 0) {
      // Another Store took it over (ours had lapsed): lost for good.
      state->lose();
      log(LogLevel::warn, "a leadership lease lapsed and was taken over by another process",
          {{"lease", state->name()}});
    }
    pending_.push_back(Pending{
        state, drop || state->lost() ? std::nullopt : std::optional<std::int64_t>(expires)});
  }
  if (!outcome) {
    renewing_ = false;  // the heartbeat stays due: the next wake-up retries
    if (std::uint64_t n = 0; renew_warning_.due(n)) {
      log(LogLevel::warn, "cannot renew this process's leadership leases; retrying",
          {{"error", outcome.error().message()}, {"failures", n}});
    }
  }
  return outcome;
}

void LeaseKeeper::committed() noexcept {
  const bool was_empty = held_.empty();
  for (const auto& p : pending_) {
    if (!p.expires_ms) {
      std::erase(held_, p.state);
      continue;
    }
    p.state->renewed(*p.expires_ms);
    if (std::find(held_.begin(), held_.end(), p.state) == held_.end()) held_.push_back(p.state);
  }
  // The heartbeat runs from the last committed renewal, or from the first
  // lease taken.
  if (renewing_ || (was_empty && !held_.empty())) renew_at_ = clock_.now() + heartbeat_;
  ended();
}

void LeaseKeeper::ended() noexcept {
  pending_.clear();
  renewing_ = false;
}

Result<void> LeaseKeeper::drop_all(Connection& db) {
  for (const auto& state : held_) {
    auto stmt = db.prepare(kDrop);
    if (!stmt) return stmt.error();
    if (auto r = stmt->bind_text(1, state->name()).bind_text(2, holder_).run(); !r) return r;
  }
  return {};
}

void LeaseKeeper::lose_all() noexcept {
  for (const auto& state : held_) state->lose();
  for (const auto& p : pending_) p.state->lose();
  held_.clear();
  pending_.clear();
}

}  // namespace hookvault::store::sqlite
