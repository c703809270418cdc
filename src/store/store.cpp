// What every Store backend shares (store.hpp): the names of the enums, the
// blocking calls over the asynchronous ones, and the completion guard.
#include "hookvault/store.hpp"

#include <algorithm>
#include <future>
#include <tuple>
#include <utility>

namespace hookvault {
namespace {

// Set while this thread runs a completion (Store::run_completion).
thread_local bool t_in_completion = false;

// Waits for the completion start(done) calls. Errc::internal in a
// completion: its thread is one of the store's, which would wait for itself.
template <class T, class Start>
Result<T> run_sync(bool in_completion, Start&& start) {
  if (in_completion) return make_error_code(Errc::internal);
  std::promise<Result<T>> promise;
  auto future = promise.get_future();
  std::forward<Start>(start)(
      std::function<void(Result<T>)>([&promise](Result<T> r) { promise.set_value(std::move(r)); }));
  return future.get();
}

}  // namespace

void sort_unique(std::vector<KekRef>& refs) {
  const auto key = [](const KekRef& r) { return std::tie(r.kek_id, r.version); };
  std::sort(refs.begin(), refs.end(),
            [&](const auto& a, const auto& b) { return key(a) < key(b); });
  refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
}

std::string_view origin_name(Origin o) noexcept {
  switch (o) {
    case Origin::signature:
      return "signature";
    case Origin::history:
      return "history";
  }
  return "signature";
}

std::string_view materials_state_name(MaterialsState s) noexcept {
  switch (s) {
    case MaterialsState::none:
      return "none";
    case MaterialsState::stored:
      return "stored";
    case MaterialsState::superseded:
      return "superseded";
    case MaterialsState::revoked:
      return "revoked";
    case MaterialsState::decrypt_failed:
      return "decrypt_failed";
  }
  return "none";
}

std::string resolution_outcome(MaterialsState state, std::string_view failure_reason) {
  std::string out(materials_state_name(state));
  if (state == MaterialsState::decrypt_failed) {
    out += ": ";
    out += failure_reason;
  }
  return out;
}

Store::~Store() = default;
Store::Lease::~Lease() = default;

Store::CompletionScope::CompletionScope() noexcept : outer_(t_in_completion) {
  t_in_completion = true;
}
Store::CompletionScope::~CompletionScope() { t_in_completion = outer_; }

bool Store::in_completion() noexcept { return t_in_completion; }

Result<WriteResult> Store::write(WriteRequest request) {
  return run_sync<WriteResult>(
      in_completion(), [&](Completion done) { submit(std::move(request), std::move(done)); });
}

Result<std::int64_t> Store::audit_sync(AuditEntry entry) {
  return run_sync<std::int64_t>(
      in_completion(), [&](AuditCompletion done) { audit(std::move(entry), std::move(done)); });
}

}  // namespace hookvault
