// FakeStore (fake_store.hpp): the store's contract kept in memory, under one
// mutex per database.
#include "fake_store.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "fake_store_state.hpp"
#include "store/audit_mac.hpp"  // check_audit_entry: the same refusals as a backend's

namespace hookvault::testing {
namespace {
boost::system::error_code err(Errc e) { return make_error_code(e); }
using fake::copy_of;
using fake::kMaxSequenceNumber;
}  // namespace

// --- FakeDatabase -------------------------------------------------------------

FakeDatabase::FakeDatabase(const Clock* clock) : state_(std::make_shared<FakeState>(clock)) {}

std::unique_ptr<FakeStore> FakeDatabase::open() const {
  return std::make_unique<FakeStore>(state_);
}

// --- leases -------------------------------------------------------------------

class FakeStore::FakeLease final : public Store::Lease {
 public:
  FakeLease(std::shared_ptr<FakeState> db, std::string name,
            std::shared_ptr<std::atomic<bool>> held)
      : db_(std::move(db)), name_(std::move(name)), held_(std::move(held)) {}
  ~FakeLease() override {
    std::lock_guard lock(db_->mu);
    held_->store(false);
    if (auto it = db_->leases.find(name_); it != db_->leases.end() && it->second == held_) {
      db_->leases.erase(it);
      db_->lease_owner.erase(name_);
    }
  }
  bool held() const noexcept override { return held_->load(); }

 private:
  std::shared_ptr<FakeState> db_;
  std::string name_;
  std::shared_ptr<std::atomic<bool>> held_;
};

// --- FakeStore ----------------------------------------------------------------

FakeStore::FakeStore(const Clock* clock) : FakeStore(std::make_shared<FakeState>(clock)) {}

FakeStore::FakeStore(std::shared_ptr<FakeState> state) : db_(std::move(state)) {
  thread_ = std::thread([this] { completion_loop(); });
}

FakeStore::~FakeStore() { close(); }

void FakeStore::fail_next_submits(std::size_t n, Errc e) {
  std::lock_guard lock(mu_);
  fail_submits_ = n;
  submit_error_ = e;
}

void FakeStore::fail_next_audits(std::size_t n, Errc e) {
  std::lock_guard lock(mu_);
  fail_audits_ = n;
  audit_error_ = e;
}

void FakeStore::hold_completions() {
  std::lock_guard lock(mu_);
  holding_ = true;
}

void FakeStore::release_completions() {
  {
    std::lock_guard lock(mu_);
    holding_ = false;
  }
  cv_.notify_all();
}

bool FakeStore::wait_held(std::size_t n, std::chrono::milliseconds limit) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, limit, [&] { return holding_ && queue_.size() >= n; });
}

void FakeStore::set_writable(bool writable) {
  std::lock_guard lock(mu_);
  writable_ = writable;
}

void FakeStore::fail_leases(std::optional<Errc> e) {
  std::lock_guard lock(mu_);
  lease_error_ = e;
}

void FakeStore::throw_in_find_event(bool on) {
  std::lock_guard lock(mu_);
  throw_find_ = on;
}

void FakeStore::throw_after_submit(bool on) {
  std::lock_guard lock(mu_);
  throw_submit_ = on;
}

FakeStore::Calls FakeStore::calls() const {
  Calls c;
  c.submits = submits_.load();
  c.audits = audits_.load();
  c.find_event = find_event_.load();
  c.event_meta = event_meta_.load();
  c.event_payload = event_payload_.load();
  c.list_events = list_events_.load();
  c.materials = materials_.load();
  c.sequences = sequences_.load();
  c.try_lease = try_lease_.load();
  c.resolve = resolve_.load();
  return c;
}

std::vector<std::string> FakeStore::lease_names() const {
  std::lock_guard lock(mu_);
  return lease_names_;
}

void FakeStore::complete(std::function<void()> run) {
  {
    std::lock_guard lock(mu_);
    if (!loop_done_) {
      queue_.push_back(std::move(run));
      cv_.notify_all();
      return;
    }
  }
  run();
}

void FakeStore::completion_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return (!holding_ && !queue_.empty()) || (closing_ && queue_.empty()); });
    if (queue_.empty()) {  // closing, and everything ran
      loop_done_ = true;
      return;
    }
    auto run = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    run();
    lock.lock();
  }
}

void FakeStore::submit(WriteRequest request, Completion done) {
  submits_.fetch_add(1);
  const auto refuse_now = [&](Errc e) {
    Result<WriteResult> r = err(e);
    run_completion(done, std::move(r));
  };
  {
    std::lock_guard lock(mu_);
    if (closing_ || closed_) return refuse_now(Errc::store_unavailable);
  }
  const NewEvent& ev = request.event;
  if (ev.source.empty() || ev.idempotency_key.empty()) return refuse_now(Errc::missing_field);
  const int kinds =
      (request.materials ? 1 : 0) + (request.decrypt_failure ? 1 : 0) + (request.revoke ? 1 : 0);
  if (kinds > 1) return refuse_now(Errc::internal);
  if ((request.materials || request.revoke) && ev.wallet_id.empty()) {
    return refuse_now(Errc::missing_field);
  }
  if (request.materials && !request.materials->wallet_id.empty() &&
      request.materials->wallet_id != ev.wallet_id) {
    return refuse_now(Errc::invalid_field);
  }
  if (ev.sequence && (ev.sequence->subscription_id.empty() || ev.sequence->number == 0 ||
                      ev.sequence->number > kMaxSequenceNumber)) {
    return refuse_now(Errc::invalid_field);
  }

  Result<WriteResult> result = err(Errc::internal);
  bool throw_now = false;
  bool fail = false;
  {
    std::lock_guard lock(mu_);
    throw_now = throw_submit_;
    if (fail_submits_ > 0) {
      --fail_submits_;
      fail = true;
      result = err(submit_error_);
    }
  }
  if (!fail) {
    std::lock_guard lock(db_->mu);
    result = db_->apply(request);
  }
  if (result) {
    std::lock_guard lock(mu_);
    ++committed_;
  }
  complete([done = std::move(done), r = std::move(result)]() mutable {
    run_completion(done, std::move(r));
  });
  if (throw_now) throw std::runtime_error("FakeStore: submit throws (a test's knob)");
}

Result<MaterialsState> FakeStore::resolve_decrypt_failure(
    std::int64_t row_id, std::variant<DelegationMaterials, std::string> outcome,
    std::string actor) {
  resolve_.fetch_add(1);
  if (in_completion()) return err(Errc::internal);
  if (auto r = readable(); !r) return r.error();
  if (actor.empty()) return err(Errc::missing_field);
  if (actor.size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  std::optional<Errc> audit_failure;
  {
    std::lock_guard lock(mu_);
    if (fail_audits_ > 0) {
      --fail_audits_;
      audit_failure = audit_error_;
    }
  }
  std::lock_guard lock(db_->mu);
  auto it = db_->rows.find(row_id);
  if (it == db_->rows.end() || it->second.meta.materials != MaterialsState::decrypt_failed) {
    return err(Errc::not_found);
  }
  Row& row = it->second;
  auto* materials = std::get_if<DelegationMaterials>(&outcome);
  if (materials != nullptr && materials->wallet_id != row.meta.wallet_id) {
    return err(Errc::invalid_field);
  }
  if (audit_failure) return err(*audit_failure);  // neither commits
  MaterialsState state = MaterialsState::decrypt_failed;
  std::string reason;
  if (materials == nullptr) {
    reason = std::get<std::string>(outcome);
    row.meta.failure_reason = reason;
  } else if (auto older = db_->older_than_stored(row.meta.source, row.meta.wallet_id,
                                                 row.event_time_ms, row.meta.idempotency_key)) {
    state = *older;
    row.meta.materials = state;
    row.meta.failure_reason.clear();
    row.meta.payload_redacted = true;
    row.payload.clear();
  } else {
    state = MaterialsState::stored;
    row.meta.materials = state;
    row.meta.failure_reason.clear();
    db_->apply_materials(row, std::move(*materials));
  }
  db_->append_audit(AuditEntry{std::move(actor), "reprocess", std::to_string(row_id),
                               clip_audit_field(resolution_outcome(state, reason))});
  return state;
}

Result<void> FakeStore::readable() const {
  std::lock_guard lock(mu_);
  if (closing_ || closed_) return err(Errc::store_unavailable);
  return {};
}

Result<std::optional<std::int64_t>> FakeStore::find_event(std::string_view source,
                                                          std::string_view idempotency_key) const {
  find_event_.fetch_add(1);
  {
    std::lock_guard lock(mu_);
    if (throw_find_) throw std::runtime_error("FakeStore: find_event throws (a test's knob)");
  }
  if (auto r = readable(); !r) return r.error();
  std::lock_guard lock(db_->mu);
  auto it = db_->index.find(Key{std::string(source), std::string(idempotency_key)});
  if (it == db_->index.end()) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(it->second);
}

Result<std::optional<EventMeta>> FakeStore::event_meta(std::int64_t row_id) const {
  event_meta_.fetch_add(1);
  if (auto r = readable(); !r) return r.error();
  std::lock_guard lock(db_->mu);
  auto it = db_->rows.find(row_id);
  if (it == db_->rows.end()) return std::optional<EventMeta>();
  return std::optional<EventMeta>(it->second.meta);
}

Result<EventPage> FakeStore::list_events(const EventQuery& query) const {
  list_events_.fetch_add(1);
  if (auto r = readable(); !r) return r.error();
  std::int64_t after = 0;
  if (!query.after.empty()) {
    const char* first = query.after.data();
    const char* last = first + query.after.size();
    auto [end, ec] = std::from_chars(first, last, after);
    if (ec != std::errc() || end != last || after < 0) return err(Errc::invalid_field);
  }
  EventPage page;
  page.next = query.after;
  std::lock_guard lock(db_->mu);
  for (auto it = db_->rows.upper_bound(after);
       it != db_->rows.end() && page.events.size() < query.limit; ++it) {
    if (query.source && it->second.meta.source != *query.source) continue;
    page.events.push_back(it->second.meta);
  }
  if (!page.events.empty()) page.next = std::to_string(page.events.back().row_id);
  return page;
}

Result<std::optional<SecretBytes>> FakeStore::event_payload(std::int64_t row_id) const {
  event_payload_.fetch_add(1);
  if (auto r = readable(); !r) return r.error();
  std::lock_guard lock(db_->mu);
  auto it = db_->rows.find(row_id);
  if (it == db_->rows.end() || it->second.meta.payload_redacted) {
    return std::optional<SecretBytes>();
  }
  return std::optional<SecretBytes>(SecretBytes::copy_of(it->second.payload));
}

Result<std::vector<EventMeta>> FakeStore::decrypt_failures() const {
  if (auto r = readable(); !r) return r.error();
  std::vector<EventMeta> out;
  std::lock_guard lock(db_->mu);
  for (const auto& [id, row] : db_->rows) {
    if (row.meta.materials == MaterialsState::decrypt_failed) out.push_back(row.meta);
  }
  return out;
}

Result<std::optional<StoredMaterials>> FakeStore::materials(std::string_view source,
                                                            std::string_view wallet_id) const {
  materials_.fetch_add(1);
  if (auto r = readable(); !r) return r.error();
  std::lock_guard lock(db_->mu);
  auto it = db_->materials.find(Key{std::string(source), std::string(wallet_id)});
  if (it == db_->materials.end()) return std::optional<StoredMaterials>();
  return std::optional<StoredMaterials>(copy_of(it->second.m));
}

Result<std::vector<SubscriptionSequence>> FakeStore::sequences(
    std::optional<std::string_view> source) const {
  sequences_.fetch_add(1);
  if (auto r = readable(); !r) return r.error();
  std::vector<SubscriptionSequence> out;
  std::lock_guard lock(db_->mu);
  for (const auto& [key, s] : db_->sequences) {
    if (source && key.first != *source) continue;
    SubscriptionSequence o;
    o.source = key.first;
    o.subscription_id = key.second;
    o.contiguous = s.contiguous;
    o.highest = s.highest;
    for (const auto& [first, gap] : s.gaps) o.gaps.push_back(gap);
    out.push_back(std::move(o));
  }
  return out;
}

Result<std::uint64_t> FakeStore::count_events_with_key_prefix(std::string_view source,
                                                              std::string_view prefix) const {
  if (auto r = readable(); !r) return r.error();
  std::uint64_t n = 0;
  std::lock_guard lock(db_->mu);
  for (const auto& [id, row] : db_->rows) {
    if (row.meta.source == source && row.meta.idempotency_key.starts_with(prefix)) ++n;
  }
  return n;
}

Result<std::optional<std::int64_t>> FakeStore::latest_event_time_ms(std::string_view source) const {
  if (auto r = readable(); !r) return r.error();
  std::optional<std::int64_t> latest;
  std::lock_guard lock(db_->mu);
  for (const auto& [id, row] : db_->rows) {
    if (row.meta.source != source || row.meta.origin != Origin::signature) continue;
    latest = std::max(latest.value_or(row.event_time_ms), row.event_time_ms);
  }
  return latest;
}

bool FakeStore::writable() const noexcept {
  std::lock_guard lock(mu_);
  return writable_ && !closing_ && !closed_;
}

void FakeStore::audit(AuditEntry entry, AuditCompletion done) {
  audits_.fetch_add(1);
  if (auto r = store::check_audit_entry(entry); !r) {
    Result<std::int64_t> refused = r.error();
    return run_completion(done, std::move(refused));
  }
  std::optional<Errc> failure;
  {
    std::lock_guard lock(mu_);
    if (closing_ || closed_) {
      failure = Errc::store_unavailable;
    } else if (fail_audits_ > 0) {
      --fail_audits_;
      failure = audit_error_;
    }
  }
  Result<std::int64_t> result = err(failure.value_or(Errc::internal));
  if (!failure) {
    std::lock_guard lock(db_->mu);
    result = db_->append_audit(std::move(entry));
  }
  complete([done = std::move(done), r = std::move(result)]() mutable {
    run_completion(done, std::move(r));
  });
}

Result<std::vector<AuditRecord>> FakeStore::audit_records(std::int64_t after,
                                                          std::size_t limit) const {
  if (auto r = readable(); !r) return r.error();
  std::vector<AuditRecord> out;
  std::lock_guard lock(db_->mu);
  for (const auto& r : db_->audit) {
    if (out.size() >= limit) break;
    if (r.seq > after) out.push_back(r);
  }
  return out;
}

// Not modelled (see the header): the real backends' suites cover these.
Result<AuditVerifyResult> FakeStore::verify_audit() const { return err(Errc::internal); }
Result<std::vector<KekUsage>> FakeStore::kek_usage() const { return err(Errc::internal); }
Result<std::vector<KekRef>> FakeStore::kek_refs() const { return err(Errc::internal); }
Result<RewrapProgress> FakeStore::rewrap_batch(std::size_t) { return err(Errc::internal); }
Result<std::vector<KekLease>> FakeStore::kek_leases() const { return err(Errc::internal); }
Result<KekRetirement> FakeStore::retire_kek_version(std::uint32_t) { return err(Errc::internal); }

Result<std::unique_ptr<Store::Lease>> FakeStore::try_lease(std::string_view name) {
  try_lease_.fetch_add(1);
  if (in_completion()) return err(Errc::internal);
  {
    std::lock_guard lock(mu_);
    lease_names_.emplace_back(name);
    if (closing_ || closed_) return err(Errc::store_unavailable);
    if (lease_error_) return err(*lease_error_);
  }
  if (name.empty() || name.size() > kMaxAuditFieldBytes) return err(Errc::invalid_field);
  std::lock_guard lock(db_->mu);
  const std::string key(name);
  if (auto it = db_->leases.find(key); it != db_->leases.end() && it->second->load()) {
    return std::unique_ptr<Lease>();
  }
  auto held = std::make_shared<std::atomic<bool>>(true);
  db_->leases[key] = held;
  db_->lease_owner[key] = this;
  return std::unique_ptr<Lease>(std::make_unique<FakeLease>(db_, key, std::move(held)));
}

StoreStats FakeStore::stats() const noexcept {
  std::lock_guard lock(mu_);
  StoreStats s;
  s.commits = committed_;
  s.committed_requests = committed_;
  s.largest_batch = committed_ > 0 ? 1 : 0;
  return s;
}

void FakeStore::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closing_ = true;
    holding_ = false;  // what is held completes now
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  // Its leases are free again.
  std::lock_guard lock(db_->mu);
  for (auto it = db_->lease_owner.begin(); it != db_->lease_owner.end();) {
    if (it->second == this) {
      if (auto l = db_->leases.find(it->first); l != db_->leases.end()) {
        l->second->store(false);
        db_->leases.erase(l);
      }
      it = db_->lease_owner.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace hookvault::testing
