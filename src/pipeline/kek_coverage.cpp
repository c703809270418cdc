// KekCoverage (contract in hookvault/kek_coverage.hpp).
#include "hookvault/kek_coverage.hpp"

#include <algorithm>
#include <string>

#include "hookvault/log.hpp"

namespace hookvault {
namespace {

std::string joined(const std::vector<KekRef>& refs) {
  std::string out;
  for (const auto& r : refs) {
    if (!out.empty()) out += ", ";
    out += r.kek_id + ":v" + std::to_string(r.version);
  }
  return out;
}

std::string joined(const std::vector<std::uint32_t>& versions) {
  std::string out;
  for (const auto v : versions) {
    if (!out.empty()) out += ", ";
    out += std::to_string(v);
  }
  return out;
}

}  // namespace

KekCoverage::KekCoverage(const Kek& kek, const Store& store, Metrics& metrics)
    : kek_(kek),
      store_(store),
      missing_gauge_(metrics
                         .gauge("hookvault_kek_versions_missing",
                                "KEK versions the database references that this process's KEK "
                                "does not have (not ready while above 0)",
                                {})
                         .with({})) {}

bool KekCoverage::check() {
  std::lock_guard lock(check_mu_);
  auto refs = store_.kek_refs();
  if (!refs) {
    log(LogLevel::warn,
        "cannot check the KEK versions the database references; readiness unchanged",
        {{"kek", kek_.id()}, {"error", refs.error().message()}});
    return covered();
  }
  const auto versions = kek_.versions();
  std::vector<KekRef> missing;
  for (auto& r : *refs) {
    const bool have =
        r.kek_id == kek_.id() && std::binary_search(versions.begin(), versions.end(), r.version);
    if (!have) missing.push_back(std::move(r));
  }
  missing_gauge_.set(static_cast<double>(missing.size()));
  covered_.store(missing.empty(), std::memory_order_release);
  if (!checked_ || missing != missing_) {
    if (!missing.empty()) {
      log(LogLevel::warn,
          "the database references KEK versions this keyring does not have; not ready until it "
          "has them (add them to the keyring, then SIGHUP or wait for [kek] refresh_interval)",
          {{"kek", kek_.id()}, {"missing", joined(missing)}, {"versions", joined(versions)}});
    } else if (checked_) {
      log(LogLevel::info, "every KEK version the database references is available again",
          {{"kek", kek_.id()}, {"versions", joined(versions)}});
    }
  }
  checked_ = true;
  missing_ = std::move(missing);
  return covered();
}

}  // namespace hookvault
