// The PostgreSQL store (include/hookvault/pg_store.hpp): opening, the entry
// points of the Store interface that queue work for the writer, submission,
// leadership leases and close. The class and where each job lives:
// pg_store_impl.hpp.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "hookvault/log.hpp"
#include "hookvault/process.hpp"
#include "hookvault/random.hpp"
#include "store/audit_mac.hpp"
#include "store/pg/pg_store_impl.hpp"
#include "store/pg/schema.hpp"
#include "store/pg/statements.hpp"

namespace hookvault {
namespace store::pg {
namespace {

boost::system::error_code err(Errc e) noexcept { return make_error_code(e); }

// A new database's audit key and empty chain head, inside the schema's
// transaction (schema.hpp: WithinSchema).
Result<void> create_audit_key(Connection& c, const Kek& kek) {
  const SecretBytes key = SecretBytes::random(kAuditKeyBytes);
  auto wrapped = wrap_dek(kek, key, audit_key_ad());
  if (!wrapped) return wrapped.error();
  auto head = empty_audit_head(key);
  if (!head) return head.error();
  const auto deadline = Clock::now() + kStatementTimeout;
  if (auto r = c.exec(sql::kPutAuditKey,
                      Params()
                          .text(to_hex(wrapped->wrapped_dek))
                          .text(wrapped->kek_id)
                          .text(std::to_string(wrapped->kek_version)),
                      deadline);
      !r) {
    return r.error();
  }
  if (auto r = c.exec(sql::kPutAuditHead,
                      Params().int64(head->seq).bytes(head->mac).bytes(head->tag), deadline);
      !r) {
    return r.error();
  }
  return {};
}

// A leadership lease (Store::Lease) over its slot.
class PgLease final : public Store::Lease {
 public:
  explicit PgLease(std::shared_ptr<LeaseSlot> slot) : slot_(std::move(slot)) {}
  ~PgLease() override {
    std::unique_ptr<AdvisoryLease> lease;
    {
      std::lock_guard lock(slot_->mu);
      lease = std::move(slot_->lease);
    }
  }
  PgLease(const PgLease&) = delete;
  PgLease& operator=(const PgLease&) = delete;
  bool held() const noexcept override {
    std::lock_guard lock(slot_->mu);
    return slot_->lease && slot_->lease->held();
  }

 private:
  std::shared_ptr<LeaseSlot> slot_;
};

}  // namespace

}  // namespace store::pg

Result<std::unique_ptr<Store>> open_pg_store(const PgStoreOptions& options,
                                             std::shared_ptr<const Kek> kek, std::string* why) {
  using store::pg::PgStore;
  if (!kek) return make_error_code(Errc::kek_unavailable);
  if (options.conninfo.empty()) {
    if (why != nullptr) *why = "no conninfo";
    return make_error_code(Errc::store_unavailable);
  }
  std::array<std::uint8_t, 16> holder{};
  if (!random_bytes(holder)) return make_error_code(Errc::internal);
  auto store = std::make_unique<PgStore>(options, std::move(kek), to_hex(holder));
  if (auto r = store->start(why); !r) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::string> check_pg_schema(const PgStoreOptions& options, std::string* why) {
  using namespace store::pg;  // NOLINT(google-build-using-namespace): this backend's own
  ConnectOptions co;
  co.conninfo = options.conninfo;
  co.password = options.password.get();
  co.connect_timeout = options.connect_timeout;
  PgError error;
  std::vector<const char*> session(std::begin(schema::kSession), std::end(schema::kSession));
  auto c = Connection::open(co, session, &error);
  if (!c) {
    if (why != nullptr) *why = error.message;
    return c.error();
  }
  const auto deadline = store::pg::Clock::now() + kStatementTimeout;
  auto exists = c->exec("SELECT to_regclass('meta') IS NOT NULL", {}, deadline);
  if (!exists || exists->empty()) {
    if (why != nullptr) *why = c->last_error().message;
    return make_error_code(Errc::store_unavailable);
  }
  auto has_meta = exists->boolean(0, 0);
  if (!has_meta) return has_meta.error();
  if (!*has_meta) return std::string();
  auto found = c->exec(schema::kSelectVersion, {}, deadline);
  if (!found || found->empty()) {
    if (why != nullptr) *why = c->last_error().message;
    return make_error_code(Errc::store_unavailable);
  }
  const std::string version = found->text(0, 0);
  if (version.empty() || version == schema::kVersionText) return std::string();
  return "the database holds hookvault's PostgreSQL schema version " + version +
         "; this hookvault knows version " + schema::kVersionText + " only";
}

namespace store::pg {

// ---------------------------------------------------------------------------
// Lifetime.

PgStore::PgStore(const PgStoreOptions& options, std::shared_ptr<const Kek> kek, std::string holder)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : system_clock()),
      max_batch_(std::max<std::size_t>(options.max_batch, 1)),
      kek_(std::move(kek)),
      holder_(std::move(holder)) {
  if (options.metrics != nullptr) {  // the same series as the SQLite backend's
    commit_seconds_ =
        &options.metrics
             ->histogram("hookvault_store_commit_seconds", "Group commits: BEGIN to durable COMMIT")
             .with({});
    batch_size_ =
        &options.metrics
             ->histogram("hookvault_store_batch_size", "Requests per committed group commit", {},
                         {1, 2, 4, 8, 16, 32, 64, 128, 256, 512})
             .with({});
  }
}

PgStore::~PgStore() { close(); }

ConnectOptions PgStore::connect_options() const {
  ConnectOptions co;
  co.conninfo = options_.conninfo;
  co.password = options_.password.get();
  co.connect_timeout = options_.connect_timeout;
  return co;
}

std::vector<const char*> PgStore::session_sql() {
  return {std::begin(schema::kSession), std::end(schema::kSession)};
}

std::vector<const char*> PgStore::writer_session_sql() {
  auto sql = session_sql();
  sql.insert(sql.end(), std::begin(schema::kWriterSession), std::end(schema::kWriterSession));
  return sql;
}

Result<void> PgStore::start(std::string* why) {
  PgError error;
  auto c = Connection::open(connect_options(), writer_session_sql(), &error);
  if (!c) {
    if (why != nullptr) *why = "cannot connect: " + error.message;
    return err(Errc::store_unavailable);
  }
  std::string reason;
  auto created = schema::ensure_schema(
      *c,
      [this](Connection& conn, bool fresh) -> Result<void> {
        if (!fresh) return {};
        return create_audit_key(conn, *kek_);
      },
      &reason, Clock::now() + kStatementTimeout);
  if (!created) {
    if (why != nullptr) *why = reason;
    return created.error();
  }
  writer_db_.emplace(std::move(*c));
  writer_db_->set_rollback_on_error(false);  // as connect_writer()
  if (auto r = probe(); !r) {
    if (why != nullptr) *why = "the first commit failed";
    return err(Errc::store_unavailable);
  }
  writer_ = std::thread([this] {
    name_this_thread("hv-pg-writer");
    writer_loop();
  });
  writer_id_.store(writer_.get_id());
  return {};
}

void PgStore::close() {
  std::lock_guard close_lock(close_mu_);
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) {
    // From a completion (on the writer thread): only stop accepting; the
    // writer drains and exits, and the destructor joins.
    if (writer_.get_id() == std::this_thread::get_id()) return;
    writer_.join();
  }
  closed_.store(true);
  writable_.store(false);
  {
    std::lock_guard lock(lease_mu_);
    for (auto& weak : leases_) {
      if (auto slot = weak.lock()) {
        std::unique_ptr<AdvisoryLease> lease;
        std::lock_guard slot_lock(slot->mu);
        lease = std::move(slot->lease);
      }
    }
    leases_.clear();
  }
  {
    std::lock_guard lock(read_mu_);
    reader_.reset();
  }
  if (writer_db_) {
    if (writer_db_->usable()) {  // best effort: an unrenewed lease expires anyway
      const auto deadline = Clock::now() + std::chrono::seconds(2);
      static_cast<void>(writer_db_->exec(sql::kDropKekLease, Params().text(holder_), deadline));
      static_cast<void>(writer_db_->exec(sql::kDropWriter, Params().text(holder_), deadline));
    }
    writer_db_.reset();
  }
}

// ---------------------------------------------------------------------------
// The entry points (caller's thread).

bool PgStore::enqueue(Work& work, Errc* why) {
  {
    std::lock_guard lock(mu_);
    if (!accepting_) {
      *why = Errc::store_unavailable;
      return false;
    }
    if (queue_.size() >= std::max<std::size_t>(options_.max_queue, 1)) {
      *why = Errc::overloaded;
      return false;
    }
    queue_.push_back(std::move(work));
  }
  cv_.notify_one();
  return true;
}

void PgStore::complete(Work& work) noexcept { complete_work(work); }

void PgStore::complete_with(Work& work, Errc e) noexcept { fail_work(work, e); }

void PgStore::submit(WriteRequest request, Completion done) {
  {
    std::lock_guard lock(mu_);
    if (!accepting_) {
      run_completion(done, err(Errc::store_unavailable));
      return;
    }
  }
  auto prepared = prepare_write(*kek_, clock_, request);
  if (!prepared) {
    run_completion(done, prepared.error());
    return;
  }
  prepared->done = std::move(done);
  enqueue_or_refuse(std::move(*prepared));
}

Result<MaterialsState> PgStore::resolve_decrypt_failure(
    std::int64_t row_id, std::variant<DelegationMaterials, std::string> outcome,
    std::string actor) {
  return run_sync<MaterialsState>([&](std::function<void(Result<MaterialsState>)> done) {
    auto work = prepare_resolve(row_id, outcome, std::move(actor));
    if (!work) return done(work.error());
    work->done = std::move(done);
    enqueue_or_refuse(std::move(*work));
  });
}

void PgStore::audit(AuditEntry entry, AuditCompletion done) {
  {
    std::lock_guard lock(mu_);
    if (!accepting_) {
      run_completion(done, err(Errc::store_unavailable));
      return;
    }
  }
  if (auto r = check_audit_entry(entry); !r) {
    run_completion(done, r.error());
    return;
  }
  AuditWork work;
  work.entry = std::move(entry);
  work.done = std::move(done);
  enqueue_or_refuse(std::move(work));
}

Result<std::unique_ptr<Store::Lease>> PgStore::try_lease(std::string_view name) {
  if (name.empty() || name.size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  if (closed_.load()) return err(Errc::store_unavailable);
  {
    std::lock_guard lock(mu_);
    if (!accepting_) return err(Errc::store_unavailable);
  }
  auto taken = AdvisoryLease::try_take(connect_options(), name, options_.lease_ping);
  if (!taken) return taken.error();
  if (!*taken) return std::unique_ptr<Lease>();
  auto slot = std::make_shared<LeaseSlot>();
  slot->lease = std::move(*taken);
  {
    std::lock_guard lock(lease_mu_);
    std::erase_if(leases_, [](const std::weak_ptr<LeaseSlot>& w) { return w.expired(); });
    leases_.push_back(slot);
  }
  return std::unique_ptr<Lease>(std::make_unique<PgLease>(std::move(slot)));
}

bool PgStore::writable() const noexcept {
  if (!writable_.load()) return false;
  const auto since = commit_since_.load();
  if (since == 0) return true;
  const auto waited =
      std::chrono::steady_clock::now() -
      std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(since));
  return waited < kSlowCommit;
}

StoreStats PgStore::stats() const noexcept {
  StoreStats s;
  s.commits = commits_.load(std::memory_order_relaxed);
  s.committed_requests = committed_requests_.load(std::memory_order_relaxed);
  s.failed_batches = failed_batches_.load(std::memory_order_relaxed);
  s.largest_batch = largest_batch_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------------------
// Submission (caller's thread): the checks and sealing of every backend
// (submission.hpp).

Result<ResolveWork> PgStore::prepare_resolve(
    std::int64_t row_id, std::variant<DelegationMaterials, std::string>& outcome,
    std::string actor) {
  {
    std::lock_guard lock(mu_);
    if (!accepting_) return err(Errc::store_unavailable);
  }
  if (auto checked = check_actor(actor); !checked) return checked.error();
  ResolveWork work;
  work.row_id = row_id;
  work.actor = std::move(actor);
  auto found = with_reader([&](Connection& c) -> Result<void> {
    auto rows =
        c.exec(sql::kPendingEvent, Params().int64(row_id), Clock::now() + kStatementTimeout);
    if (!rows) return rows.error();
    if (rows->empty() || rows->text(0, 5) != "decrypt_failed") return err(Errc::not_found);
    work.source = rows->text(0, 0);
    work.idempotency_key = rows->text(0, 1);
    work.wallet_id = rows->text(0, 2);
    return {};
  });
  if (!found) return found.error();
  if (auto sealed = seal_resolution(*kek_, work, outcome); !sealed) return sealed.error();
  return work;
}

}  // namespace store::pg
}  // namespace hookvault
