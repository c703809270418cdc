#include "gate_kek.hpp"

#include <chrono>

namespace hookvault::testing {

Result<SecretBytes> GateKek::unwrap(ByteView wrapped, std::uint32_t version,
                                    ByteView associated_data) const {
  {
    std::unique_lock lock(mu_);
    if (holding_) {
      ++entered_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return !holding_ || allowed_ > 0; });
      if (holding_) --allowed_;
    }
  }
  return inner_->unwrap(wrapped, version, associated_data);
}

void GateKek::hold() {
  std::lock_guard lock(mu_);
  holding_ = true;
  allowed_ = 0;
  entered_ = 0;
}

void GateKek::allow(int n) {
  {
    std::lock_guard lock(mu_);
    allowed_ += n;
  }
  cv_.notify_all();
}

void GateKek::release() {
  {
    std::lock_guard lock(mu_);
    holding_ = false;
  }
  cv_.notify_all();
}

std::future<Result<std::int64_t>> submit_audit(Store& store, const std::string& subject) {
  auto promise = std::make_shared<std::promise<Result<std::int64_t>>>();
  auto answer = promise->get_future();
  store.audit(AuditEntry{"test:gate", "gate", subject, "ok"},
              [promise](Result<std::int64_t> r) { promise->set_value(std::move(r)); });
  return answer;
}

bool GateKek::wait_entered(int n) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return entered_ >= n; });
}

}  // namespace hookvault::testing
