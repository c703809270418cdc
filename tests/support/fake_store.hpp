// FakeStore: an in-memory Store (include/hookvault/store.hpp) for the unit
// tests of what sits above the store (the Pipeline's replies, the AdminApi, the
// Backfiller), without a socket, a file or SQLite.
//
// It is a fake of our own interface, not of a real part: the real backends are
// held to the interface's contract by the contract suite
// (tests/unit/store_contract*.{hpp,cpp}), and the fake runs that suite too
// (tests/unit/store_contract_fake_test.cpp), so it keeps the promises the
// code above it relies on:
//   - idempotency by (source, idempotency_key), row ids in commit order, never
//     reused; a signed delivery replaces a history copy of its key (a new row);
//   - delegations: materials per (source, wallet), newer wins (time, then
//     key), older ones stored superseded, revocations keep a tombstone; the
//     payloads of superseded and revoked delegations are redacted; decrypt
//     failures kept and settled by resolve_decrypt_failure with its audit
//     record;
//   - the events feed (token: the decimal row id, as SQLite's), the audit log
//     (seq 1, 2, ...), Nodit sequences and gaps (the rules of
//     src/store/sqlite/sequences.hpp), leadership leases by name;
//   - completions run on a thread of the store's, through run_completion, so
//     the blocking calls refuse from a completion as a real backend's do.
// What it does not model (each is Errc::internal, or a plain value, and the
// contract tests that need it are skipped for the fake): sealing (nothing is
// encrypted; memory only), the audit chain's MACs (hash_hex is empty,
// verify_audit() refuses), KEK usage, rewrap, KEK leases and retirement,
// leases lapsing with time (a lease is held until released or its store
// closes), crypto-shredding of files, durability faults other than the knobs.
//
// Knobs a test turns (each on the store a test hands to the code under test):
// fail the next N submits or audit appends with an Errc, hold completions until
// released (to see what is answered before the store answered), writable()
// false, refuse leases with an Errc, make find_event() or submit() throw (a
// pool job that throws), and counts of the calls made.
//
// Several FakeStores may share one FakeDatabase (a reopen, or a second
// hookvault process on the same database): each has its own completion
// thread and knobs, the data and leases are the database's.
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/clock.hpp"
#include "hookvault/error.hpp"
#include "hookvault/store.hpp"

namespace hookvault::testing {

class FakeStore;
struct FakeState;  // fake_store.cpp

// The data several FakeStores share.
class FakeDatabase {
 public:
  // `clock`: received_at and gap detection times; null: the system clock.
  explicit FakeDatabase(const Clock* clock = nullptr);
  // A store on this database (again: the same data).
  std::unique_ptr<FakeStore> open() const;

 private:
  std::shared_ptr<FakeState> state_;
};

class FakeStore final : public Store {
 public:
  // A store on a database of its own.
  explicit FakeStore(const Clock* clock = nullptr);
  explicit FakeStore(std::shared_ptr<FakeState> state);
  ~FakeStore() override;

  // --- knobs ------------------------------------------------------------------
  // The next `n` submits complete with `e` (on the store's thread) and store
  // nothing.
  void fail_next_submits(std::size_t n, Errc e);
  // The next `n` audit appends (audit(), and the record of
  // resolve_decrypt_failure) fail with `e` and append nothing.
  void fail_next_audits(std::size_t n, Errc e);
  // While held, completions of submit() and audit() wait (the write or append
  // is already applied, as a backend's is before its commit is durable).
  void hold_completions();
  // Runs what is held, in order, and stops holding.
  void release_completions();
  // Waits until at least `n` completions are held; false when `limit` passed.
  bool wait_held(std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(10)) const;
  void set_writable(bool writable);
  // try_lease() fails with `e` while set.
  void fail_leases(std::optional<Errc> e);
  // find_event() throws std::runtime_error while set.
  void throw_in_find_event(bool on);
  // submit() applies the request and queues its completion, then throws
  // std::runtime_error, while set.
  void throw_after_submit(bool on);

  struct Calls {
    std::uint64_t submits = 0;  // submit() calls, write() included
    std::uint64_t audits = 0;   // audit() calls, audit_sync() included
    std::uint64_t find_event = 0;
    std::uint64_t event_meta = 0;
    std::uint64_t event_payload = 0;
    std::uint64_t list_events = 0;
    std::uint64_t materials = 0;
    std::uint64_t sequences = 0;
    std::uint64_t try_lease = 0;
    std::uint64_t resolve = 0;
  };
  Calls calls() const;
  // The names try_lease() was asked for, in order.
  std::vector<std::string> lease_names() const;

  // --- Store ------------------------------------------------------------------
  void submit(WriteRequest request, Completion done) override;
  Result<MaterialsState> resolve_decrypt_failure(
      std::int64_t row_id, std::variant<DelegationMaterials, std::string> outcome,
      std::string actor) override;
  Result<std::optional<std::int64_t>> find_event(std::string_view source,
                                                 std::string_view idempotency_key) const override;
  Result<std::optional<EventMeta>> event_meta(std::int64_t row_id) const override;
  Result<EventPage> list_events(const EventQuery& query) const override;
  Result<std::optional<SecretBytes>> event_payload(std::int64_t row_id) const override;
  Result<std::vector<EventMeta>> decrypt_failures() const override;
  Result<std::optional<StoredMaterials>> materials(std::string_view source,
                                                   std::string_view wallet_id) const override;
  Result<std::vector<SubscriptionSequence>> sequences(
      std::optional<std::string_view> source) const override;
  using Store::sequences;
  Result<std::uint64_t> count_events_with_key_prefix(std::string_view source,
                                                     std::string_view prefix) const override;
  Result<std::optional<std::int64_t>> latest_event_time_ms(std::string_view source) const override;
  bool writable() const noexcept override;
  void audit(AuditEntry entry, AuditCompletion done) override;
  Result<std::vector<AuditRecord>> audit_records(std::int64_t after,
                                                 std::size_t limit) const override;
  Result<AuditVerifyResult> verify_audit() const override;
  Result<std::vector<KekUsage>> kek_usage() const override;
  Result<std::vector<KekRef>> kek_refs() const override;
  Result<RewrapProgress> rewrap_batch(std::size_t limit) override;
  Result<std::vector<KekLease>> kek_leases() const override;
  Result<KekRetirement> retire_kek_version(std::uint32_t version) override;
  Result<std::unique_ptr<Lease>> try_lease(std::string_view name) override;
  StoreStats stats() const noexcept override;
  void close() override;

 private:
  class FakeLease;
  // Queues `run` for the completion thread (or runs it now on the caller's
  // thread when the store is closed).
  void complete(std::function<void()> run);
  void completion_loop();
  Result<void> readable() const;

  std::shared_ptr<FakeState> db_;

  mutable std::mutex mu_;  // the fields below
  mutable std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool holding_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool loop_done_ = false;  // the completion thread has finished: complete() runs at once
  bool writable_ = true;
  std::size_t fail_submits_ = 0;
  Errc submit_error_ = Errc::store_unavailable;
  std::size_t fail_audits_ = 0;
  Errc audit_error_ = Errc::store_unavailable;
  std::optional<Errc> lease_error_;
  bool throw_find_ = false;
  bool throw_submit_ = false;
  std::vector<std::string> lease_names_;
  std::uint64_t committed_ = 0;

  mutable std::atomic<std::uint64_t> submits_{0}, audits_{0}, find_event_{0}, event_meta_{0},
      event_payload_{0}, list_events_{0}, materials_{0}, sequences_{0}, try_lease_{0}, resolve_{0};
  std::thread thread_;
};

}  // namespace hookvault::testing
