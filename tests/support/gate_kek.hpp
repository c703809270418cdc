// A KEK whose unwrap() can be held at a gate, to hold the store's writer
// inside a batch: the writer unwraps the audit key, on its own thread, for the
// first audit append of every write transaction (src/store/sqlite/audit_chain.hpp).
// So an audit append submitted while the gate holds keeps the writer in that
// batch until the test lets it through, and what is submitted meanwhile is
// queued for the next batch. Everything else is the inner KEK's.
//
//   gate.hold();                    unwraps wait from now on
//   store.audit(entry, done);       the writer enters the gate
//   gate.wait_entered(1);           ... and waits there
//   (submit what must form the next batch)
//   gate.allow(1) / gate.release(); one more through / stop holding
#pragma once

#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hookvault/kek.hpp"
#include "hookvault/store.hpp"

namespace hookvault::testing {

class GateKek final : public Kek {
 public:
  explicit GateKek(std::shared_ptr<const Kek> inner) : inner_(std::move(inner)) {}

  const std::string& id() const noexcept override { return inner_->id(); }
  std::uint32_t version() const noexcept override { return inner_->version(); }
  std::vector<std::uint32_t> versions() const override { return inner_->versions(); }
  Result<WrappedDek> wrap(const SecretBytes& dek, ByteView associated_data) const override {
    return inner_->wrap(dek, associated_data);
  }
  Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                             ByteView associated_data) const override;
  void refresh() override {}

  void hold();
  // Lets `n` more unwraps through while holding.
  void allow(int n);
  void release();
  // Waits (up to 10 s) until `n` unwraps have reached the gate since hold();
  // true when they have.
  bool wait_entered(int n) const;

 private:
  std::shared_ptr<const Kek> inner_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool holding_ = false;     // guarded by mu_
  mutable int allowed_ = 0;  // guarded by mu_
  mutable int entered_ = 0;  // guarded by mu_
};

// An audit append (actor "test:gate", action "gate", `subject`), answered
// through the returned future: what reaches the gate above.
std::future<Result<std::int64_t>> submit_audit(Store& store, const std::string& subject);

}  // namespace hookvault::testing
