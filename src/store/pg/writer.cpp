// The PostgreSQL store's writer thread (pg_store_impl.hpp): group commit of
// queued requests, one transaction per batch, the durability check of the
// COMMIT, reconnection and probes.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <numeric>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include "hookvault/log.hpp"
#include "store/pg/pg_store_impl.hpp"
#include "store/pg/schema.hpp"
#include "store/pg/statements.hpp"

namespace hookvault::store::pg {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

// How often the idle writer wakes: probes while not writable, and the KEK
// registration's heartbeat.
constexpr std::chrono::seconds kIdleWake{1};
// The idle writer's look at its server (ping) gives up after this.
constexpr std::chrono::seconds kPingTimeout{5};
// Deadlock or serialization failures of one request retried in its batch.
constexpr int kRetries = 3;

std::string host_name() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return host.data();
}

std::string describe(const PgError& e) {
  return e.message + (e.sqlstate.empty() ? "" : " (SQLSTATE " + e.sqlstate + ")");
}

}  // namespace

Result<Rows> PgStore::q(const char* sql, const Params& params) {
  if (!writer_db_) return err(Errc::store_unavailable);
  return writer_db_->exec(sql, params, Clock::now() + kStatementTimeout);
}

Result<void> PgStore::connect_writer() {
  if (writer_db_ && writer_db_->usable()) return {};
  writer_db_.reset();
  PgError error;
  auto c = Connection::open(connect_options(), writer_session_sql(), &error);
  if (!c) {
    mark_unwritable("cannot connect: " + describe(error));
    return err(Errc::store_unavailable);
  }
  writer_db_.emplace(std::move(*c));
  // A failed request is undone with ROLLBACK TO SAVEPOINT, not a rollback of
  // the batch (apply_in_savepoint).
  writer_db_->set_rollback_on_error(false);
  log(LogLevel::info, "store connected", {{"server", writer_db_->server()}});
  return {};
}

void PgStore::drop_writer(std::string_view why) noexcept {
  mark_unwritable(why);
  writer_db_.reset();
}

void PgStore::mark_unwritable(std::string_view why) {
  if (writable_.exchange(false)) {
    log(LogLevel::error, "store not writable", {{"reason", why}});
  }
}

void PgStore::mark_writable() {
  if (!writable_.exchange(true)) log(LogLevel::info, "store writable");
}

// A transaction that writes this writer's row (and renews its KEK
// registration): proves that a commit is made durable.
Result<void> PgStore::probe() {
  if (auto r = connect_writer(); !r) return r;
  std::vector<Work> none;
  auto r = write_batch(none);
  if (!r) {
    drop_writer("probe failed");
    return r;
  }
  mark_writable();
  return {};
}

// The idle writer's look at its server, every wake-up: a server that went
// away, or that is no longer a primary (demoted after a failover), turns
// writable() false at once, and the next probe reconnects (to the new
// primary, with target_session_attrs=read-write).
void PgStore::ping() {
  if (!writer_db_) return;
  auto primary = writer_db_->exec(sql::kIsPrimary, {}, Clock::now() + kPingTimeout);
  if (!primary || primary->empty()) {
    drop_writer("the server does not answer");
    return;
  }
  auto yes = primary->boolean(0, 0);
  if (!yes || !*yes) drop_writer("the server is not a primary any more");
}

void PgStore::purge_when_due() {
  if (options_.retention.count() <= 0 || !writable_.load()) return;
  while (clock_.now() >= next_purge_) {
    auto purged = purge_expired();
    const bool more = purged && *purged == static_cast<std::uint64_t>(sql::kPurgeBatch);
    next_purge_ =
        clock_.now() + (more ? std::chrono::milliseconds(0) : options_.retention_interval);
    if (!purged) {
      log(LogLevel::warn, "retention purge failed", {{"error", purged.error().message()}});
      return;
    }
    if (*purged > 0) log(LogLevel::info, "retention purge", {{"payloads", *purged}});
    std::lock_guard lock(mu_);
    if (!queue_.empty() || stopping_) return;  // requests first; the next idle wake goes on
  }
}

Result<std::uint64_t> PgStore::purge_expired() {
  if (!writer_db_) return err(Errc::store_unavailable);
  const auto failed = [&]() -> Result<std::uint64_t> {
    drop_writer("retention purge: " + describe(writer_db_->last_error()));
    return err(Errc::store_unavailable);
  };
  if (!q(sql::kBegin)) return failed();
  auto zeroed =
      q(sql::kZeroExpiredPayloads,
        Params().int64(clock_.now_ms() - options_.retention.count()).int64(sql::kPurgeBatch));
  if (!zeroed) return failed();
  std::string ids = "{";
  for (int i = 0; i < zeroed->size(); ++i) {
    auto id = zeroed->int64(i, 0);
    if (!id) return failed();
    if (i > 0) ids += ',';
    ids += std::to_string(*id);
  }
  ids += '}';
  if (!q(sql::kRedactPayloads, Params().text(ids))) return failed();
  if (!q(sql::kCommit) || writer_db_->transaction_failed()) return failed();
  static_cast<void>(writer_db_->take_warnings());  // nobody was promised this one
  return static_cast<std::uint64_t>(zeroed->size());
}

void PgStore::writer_loop() {
  for (;;) {
    std::vector<Work> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, kIdleWake, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      const std::size_t n = std::min(queue_.size(), max_batch_);
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (batch.empty()) {
      if (!writable_.load() || std::chrono::steady_clock::now() >= next_renewal_ ||
          kek_->version() != registered_version_) {
        static_cast<void>(probe());
      } else {
        ping();
      }
      purge_when_due();
      continue;
    }
    run_batch(batch);
  }
}

void PgStore::run_batch(std::vector<Work>& batch) {
  const auto started = std::chrono::steady_clock::now();
  Result<void> r = connect_writer();
  if (r) {
    retry_safe_ = false;
    r = write_batch(batch);
    if (!r && retry_safe_) {
      r = connect_writer();
      if (r) r = write_batch(batch);
    }
  }
  if (!r) {
    failed_batches_.fetch_add(1, std::memory_order_relaxed);
    for (auto& w : batch) complete_with(w, Errc::store_unavailable);
    return;
  }
  mark_writable();
  if (commit_seconds_ != nullptr) {
    commit_seconds_->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    batch_size_->observe(static_cast<double>(batch.size()));
  }
  commits_.fetch_add(1, std::memory_order_relaxed);
  committed_requests_.fetch_add(batch.size(), std::memory_order_relaxed);
  std::size_t largest = largest_batch_.load(std::memory_order_relaxed);
  while (batch.size() > largest &&
         !largest_batch_.compare_exchange_weak(largest, batch.size(), std::memory_order_relaxed)) {
  }
  for (auto& w : batch) complete(w);
}

// BEGIN, each request in its SAVEPOINT, this writer's row (and the KEK
// registration when due), COMMIT. An error means nothing of the batch is
// known durable: the connection is dropped unless the server rolled the
// transaction back for certain.
Result<void> PgStore::write_batch(std::vector<Work>& batch) {
  batch_audit_key_.reset();
  batch_retired_.reset();
  batch_tail_.clear();
  batch_wrote_ = false;
  const auto fail = [&](std::string_view doing) -> Result<void> {
    const PgError e = writer_db_ ? writer_db_->last_error() : PgError{};
    batch_audit_key_.reset();
    batch_tail_.clear();
    drop_writer(std::string(doing) + ": " + describe(e));
    return err(Errc::store_unavailable);
  };
  if (!writer_db_) return err(Errc::store_unavailable);
  static_cast<void>(writer_db_->take_warnings());
  // Until COMMIT is sent, a lost connection means the server rolls the
  // transaction back: the batch is run once more on a new connection (a
  // connection the server closed while idle, a restart, a failover) before
  // it is given up.
  retry_safe_ = true;
  auto fast = fast_batch(batch);
  if (!fast) return fail("lost during the batch");
  if (!*fast) {
    if (auto b = q(sql::kBegin); !b) return fail("BEGIN");
    for (auto& w : batch) {
      apply_in_savepoint(w);
      if (!writer_db_->usable()) return fail("lost during the batch");
    }
  }
  batch_audit_key_.reset();
  if (options_.require_synchronous_standby) {
    auto named = q(sql::kSyncStandbyNamed);
    if (!named || named->empty()) return fail("synchronous_standby_names");
    auto yes = named->boolean(0, 0);
    if (!yes || !*yes) {
      static_cast<void>(q(sql::kRollback));
      mark_unwritable("the primary names no synchronous standby");
      return err(Errc::store_unavailable);
    }
  }
  // The fast path's sequence writes, this writer's row (unless the batch
  // stored an event: its COMMIT writes and waits for the standby anyway,
  // after every commit a duplicate of it confirms), the KEK registration
  // when due, and COMMIT, as one pipeline segment. Never
  // COMMIT an aborted transaction: the server would roll it back and answer
  // as if it had committed. (A statement of the segment that fails skips
  // the rest of it, COMMIT included, until the sync point.)
  Connection& c = *writer_db_;
  if (!c.in_transaction() || c.transaction_failed()) return fail("the batch's transaction failed");
  const std::int64_t now = clock_.now_ms();
  const std::size_t tail = batch_tail_.size();
  for (const auto& s : batch_tail_) c.send(s.sql, s.params);
  batch_tail_.clear();
  const bool touch = !batch_wrote_;
  if (touch) c.send(sql::kTouchWriter, Params().text(holder_).int64(now));
  const bool renew =
      std::chrono::steady_clock::now() >= next_renewal_ || kek_->version() != registered_version_;
  const std::uint32_t version = kek_->version();
  if (renew) {
    const auto lease_ms = static_cast<std::int64_t>(options_.lease_time.count());
    const std::string description =
        options_.process_name + " (pid " + std::to_string(::getpid()) + " on " + host_name() + ")";
    c.send(sql::kPutKekLease, Params()
                                  .text(holder_)
                                  .text(description)
                                  .text(kek_->id())
                                  .int64(version)
                                  .int64(now)
                                  .int64(now + lease_ms));
  }
  c.send(sql::kCommit);
  // No deadline: a COMMIT is never abandoned (pg_store_impl.hpp); one that
  // waits long (for a synchronous standby that is gone) makes writable()
  // false meanwhile. From here on the outcome may be a commit.
  retry_safe_ = false;
  commit_since_.store(std::chrono::steady_clock::now().time_since_epoch().count());
  Result<void> sent = c.sync();
  bool committed = static_cast<bool>(sent);
  const std::size_t results = tail + (touch ? 1 : 0) + (renew ? 1 : 0) + 1;
  for (std::size_t i = 0; committed && i < results; ++i) {
    committed = static_cast<bool>(c.next());
  }
  if (sent && !static_cast<bool>(c.finish_segment())) committed = false;
  commit_since_.store(0);
  if (!committed) return fail("COMMIT");
  auto warnings = c.take_warnings();
  if (!warnings.empty()) {
    // A cancelled wait for the synchronous standby: committed locally only.
    return fail("COMMIT warned: " + warnings.front());
  }
  if (renew) {
    registered_version_ = version;
    next_renewal_ = std::chrono::steady_clock::now() + options_.lease_heartbeat;
  }
  return {};
}

namespace {

// Result<bool> does not convert from an error_code on its own (bool would).
Result<bool> lost() { return {boost::system::in_place_error, err(Errc::store_unavailable)}; }

// Plain events (no delegation): the batch's fast path can store them.
bool plain(const Work& work) {
  const auto* w = std::get_if<WriteWork>(&work);
  return w != nullptr && !w->materials && !w->decrypt_failure && !w->revoke;
}

}  // namespace

// A batch of plain events in one round trip, and the COMMIT's segment
// (write_batch):
// - BEGIN, the retired-version check, the batch's events in one INSERT
//   (ON CONFLICT DO NOTHING) in key order, the same in every instance (two
//   batches holding the same new keys wait for each other instead of
//   deadlocking), then the sequence rows of the batch's subscriptions made
//   when missing and locked, in one order, read, and their missing ranges
//   from the batch's smallest number up (sequences.hpp). The rows are locked after the events are
//   inserted: another instance's batch of the same subscriptions inserts
//   meanwhile, and waits for the rows only from there to its COMMIT.
// - The numbers stored of each subscription are folded into its state at
//   once (src/store/sequence_fold.hpp), in ascending order; what changed is
//   sent first in the COMMIT's segment (batch_tail_).
// Duplicates take one more round trip (their rows). What is left (a
// subscription with more ranges than one read gives, a signed delivery
// replacing a history copy) is finished with the ordinary
// rules in the same transaction, after the tail is written. Any statement
// that fails rolls the whole transaction back and the batch takes the
// ordinary path (a savepoint per request): false. An error when the
// connection was lost.
Result<bool> PgStore::fast_batch(std::vector<Work>& batch) {
  if (batch.empty() || !std::all_of(batch.begin(), batch.end(), plain)) return false;
  // A batch run again (its connection was lost before COMMIT) starts over.
  for (auto& w : batch) std::get<WriteWork>(w).result.reset();
  Connection& c = *writer_db_;
  const auto event = [&](std::size_t i) -> const EventRow& {
    return std::get<WriteWork>(batch[i]).event;
  };
  std::vector<std::size_t> by_key(batch.size());
  std::iota(by_key.begin(), by_key.end(), std::size_t{0});
  std::sort(by_key.begin(), by_key.end(), [&](std::size_t a, std::size_t b) {
    const EventRow& x = event(a);
    const EventRow& y = event(b);
    return std::tie(x.source, x.idempotency_key) < std::tie(y.source, y.idempotency_key);
  });
  // The batch's subscriptions, each read from its smallest number up; each
  // sequenced event's subscription in the batch.
  SequenceBatch sequences;
  std::vector<std::size_t> sequence_of(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const EventRow& e = event(i);
    if (e.sequence) {
      sequence_of[i] = sequences.add(e.source, e.sequence->subscription_id, e.sequence->number,
                                     e.received_at_ms);
    }
  }
  c.send(sql::kBegin);
  c.send(sql::kLockKekShared, Params().int64(schema::kKekLockClass));
  c.send(sql::kRetiredVersions, Params().text(kek_->id()));
  {
    std::vector<const EventRow*> rows;
    rows.reserve(batch.size());
    for (std::size_t i : by_key) rows.push_back(&event(i));
    c.send(sql::kInsertPlainEvents, bind_events(rows));
  }
  if (!sequences.empty()) {
    for (const Statement& s : sequences.read()) c.send(s.sql, s.params);
  }
  const auto deadline = Clock::now() + kStatementTimeout;
  const auto give_up = [&]() -> Result<bool> {
    if (!c.usable()) return lost();
    // A segment still open is read to its end; one that ended (a statement
    // run on its own below failed) has nothing more to read.
    if (c.segment_open()) static_cast<void>(c.finish_segment(deadline));
    if (c.usable() && c.in_transaction()) static_cast<void>(q(sql::kRollback));
    if (!c.usable()) return lost();
    batch_retired_.reset();
    batch_tail_.clear();
    batch_wrote_ = false;
    return false;
  };
  if (auto s = c.sync(deadline); !s) return lost();
  if (!c.next(deadline) || !c.next(deadline)) return give_up();
  auto retired = c.next(deadline);
  if (!retired) return give_up();
  std::set<std::uint32_t> retired_versions;
  for (int i = 0; i < retired->size(); ++i) {
    auto v = retired->int64(i, 0);
    if (!v) return give_up();
    auto version = kek_version_from(*v);
    if (!version) return give_up();
    retired_versions.insert(*version);
  }
  // Per event: its new row id, none when the key was stored already (or
  // by an event before it in the batch).
  std::vector<std::optional<std::int64_t>> inserted(batch.size());
  {
    auto rows = c.next(deadline);
    if (!rows) return give_up();
    std::map<std::pair<std::string, std::string>, std::int64_t> ids;
    for (int r = 0; r < rows->size(); ++r) {
      auto id = rows->int64(r, 2);
      if (!id) return give_up();
      ids.emplace(std::pair(rows->text(r, 0), rows->text(r, 1)), *id);
    }
    for (std::size_t i : by_key) {
      auto it = ids.find(std::pair(event(i).source, event(i).idempotency_key));
      if (it == ids.end()) continue;
      inserted[i] = it->second;
      ids.erase(it);
    }
    if (!ids.empty()) return give_up();  // a row the batch did not ask for
  }
  if (!sequences.empty()) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const EventRow& e = event(i);
      if (!inserted[i] || !e.sequence) continue;
      sequences.store(sequence_of[i], e.sequence->number);
    }
    if (!c.next(deadline)) return give_up();  // made or locked
    auto rows = c.next(deadline);
    if (!rows) return give_up();
    auto ranges = c.next(deadline);
    if (!ranges || !sequences.fold(*rows, *ranges)) return give_up();
    batch_tail_ = sequences.writes();
  }
  if (auto end = c.finish_segment(deadline); !end) return give_up();
  batch_wrote_ =
      std::any_of(inserted.begin(), inserted.end(), [](auto& id) { return id.has_value(); });
  batch_retired_ = std::move(retired_versions);
  for (auto& work : batch) {
    const auto& key = std::get<WriteWork>(work).event.sealed.key;
    if (key.kek_id == kek_->id() && batch_retired_->count(key.kek_version) != 0) return give_up();
  }

  // The duplicates' rows.
  std::vector<std::size_t> duplicates;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!inserted[i]) {
      c.send(sql::kFindExisting, Params().text(event(i).source).text(event(i).idempotency_key));
      duplicates.push_back(i);
    }
  }
  if (!duplicates.empty()) {
    if (auto s = c.sync(deadline); !s) return lost();
    for (std::size_t i : duplicates) {
      auto rows = c.next(deadline);
      if (!rows) return give_up();
      auto& w = std::get<WriteWork>(batch[i]);
      if (rows->empty()) continue;  // deleted meanwhile: the ordinary rules below
      auto id = rows->int64(0, 0);
      const auto state = parse_state(rows->text(0, 1));
      const auto origin = parse_origin(rows->text(0, 2));
      if (!id || !state || !origin) return give_up();
      if (*origin == Origin::history && w.event.origin == Origin::signature) continue;
      w.result.emplace(WriteResult{*id, true, *state});
    }
    if (auto end = c.finish_segment(deadline); !end) return give_up();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (inserted[i]) {
      std::get<WriteWork>(batch[i]).result.emplace(
          WriteResult{*inserted[i], false, MaterialsState::none});
    }
  }
  // Subscriptions left to the ordinary rules, one number at a time.
  const auto ordinary = sequences.left();
  const bool rest = !ordinary.empty() || std::any_of(batch.begin(), batch.end(), [](auto& w) {
    return !std::get<WriteWork>(w).result;
  });
  if (!rest) return true;
  // The ordinary rules read the sequence rows: the tail goes first.
  if (!batch_tail_.empty()) {
    for (const auto& s : batch_tail_) c.send(s.sql, s.params);
    if (auto s = c.sync(deadline); !s) return lost();
    for (std::size_t i = 0; i < batch_tail_.size(); ++i) {
      if (!c.next(deadline)) return give_up();
    }
    if (auto end = c.finish_segment(deadline); !end) return give_up();
    batch_tail_.clear();
  }
  for (const auto& sub : ordinary) {
    for (const std::uint64_t number : *sub.numbers) {
      if (!advance_sequence(sub.source, sub.subscription_id, number, sub.now_ms)) return give_up();
    }
  }
  for (auto& work : batch) {
    auto& w = std::get<WriteWork>(work);
    if (w.result) continue;
    auto r = apply(w);  // a history copy to replace
    if (!r) return give_up();
    w.result.emplace(*r);
  }
  return true;
}

void PgStore::apply_in_savepoint(Work& work) {
  for (int attempt = 0;; ++attempt) {
    if (auto s = q(sql::kSavepoint); !s) {
      std::visit([&](auto& w) { w.result.emplace(s.error()); }, work);
      return;
    }
    bool ok = true;
    std::visit(
        [&](auto& w) {
          auto r = apply(w);
          ok = bool(r);
          w.result.emplace(std::move(r));
        },
        work);
    if (ok) {
      if (auto r = q(sql::kRelease); !r) {
        std::visit([&](auto& w) { w.result.emplace(r.error()); }, work);
      }
      return;
    }
    // The request's writes go; the audit key it may have read goes too (a
    // later request reads it again).
    batch_audit_key_.reset();
    batch_retired_.reset();
    const PgError e = writer_db_->last_error();
    if (!writer_db_->usable()) return;
    if (auto r = q(sql::kRollbackTo); !r) return;
    if (!e.retryable || attempt + 1 >= kRetries) {
      if (!e.sqlstate.empty()) {
        log(LogLevel::warn, "store request failed", {{"reason", describe(e)}});
      }
      // Contention between instances that outlasted the retries: the
      // provider's retry may succeed (503), nothing of it was stored.
      if (e.retryable) {
        std::visit([](auto& w) { w.result.emplace(err(Errc::store_unavailable)); }, work);
      }
      return;
    }
  }
}

}  // namespace hookvault::store::pg
