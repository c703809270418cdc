// `hookvault audit verify | list`, and the audit records of the operator
// commands (cli_audit.hpp).
#include <pwd.h>
#include <unistd.h>

#include <ostream>
#include <string_view>
#include <vector>

#include "hookvault/log.hpp"
#include "hookvault/ops.hpp"
#include "ops/cli_audit.hpp"

namespace hookvault {
namespace {

// Why an audit operation failed, for an operator.
std::string audit_error(const boost::system::error_code& ec) {
  switch (to_errc(ec)) {
    case Errc::kek_unavailable:
      return "the audit key was wrapped by another key-encryption key (" + ec.message() + ")";
    case Errc::store_corrupt:
      return "the audit key does not open under this key-encryption key, or the chain head was "
             "altered (" +
             ec.message() + ")";
    default:
      return ec.message();
  }
}

}  // namespace

std::string cli_actor() {
  const uid_t uid = ::geteuid();
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr && found->pw_name[0] != '\0') {
    return "cli:" + std::string(found->pw_name);
  }
  return "cli:uid:" + std::to_string(uid);
}

std::optional<std::int64_t> audit_cli_access(Store& store, std::string action, std::string subject,
                                             std::string outcome, std::ostream& err) {
  AuditEntry entry{cli_actor(), std::move(action), std::move(subject),
                   clip_audit_field(std::move(outcome))};
  auto seq = store.audit_sync(entry);
  if (!seq) {
    err << "error: cannot write the audit record (" << entry.action << " " << entry.subject
        << "): " << audit_error(seq.error()) << "\n";
    return std::nullopt;
  }
  return *seq;
}

int audit_verify(const Config& config, std::ostream& out, std::ostream& err) {
  auto store = open_store(config);
  auto result = store->verify_audit();
  if (!result) {
    err << "error: cannot verify the audit log: " << audit_error(result.error()) << "\n";
    return kExitError;
  }
  std::string line = std::string("{\"ok\":") + (result->ok ? "true" : "false");
  line += ",\"records\":" + std::to_string(result->records);
  if (!result->ok) {
    if (result->first_bad_seq) line += ",\"firstBadSeq\":" + std::to_string(*result->first_bad_seq);
    line += ",\"problem\":" + json_quoted(result->problem);
  }
  out << line << "}\n";
  if (!result->ok) {
    err << "error: the audit log's chain is broken: " << result->problem << "\n";
    return kExitError;
  }
  return kExitOk;
}

int audit_list(const Config& config, std::int64_t after, std::size_t limit, std::ostream& out,
               std::ostream& err) {
  auto store = open_store(config);
  auto records = store->audit_records(after, limit);
  if (!records) {
    err << "error: cannot list the audit log: " << records.error().message() << "\n";
    return kExitError;
  }
  for (const auto& r : *records) {
    out << "{\"seq\":" << r.seq << ",\"timeMs\":" << r.time_ms
        << ",\"actor\":" << json_quoted(r.entry.actor)
        << ",\"action\":" << json_quoted(r.entry.action)
        << ",\"subject\":" << json_quoted(r.entry.subject)
        << ",\"outcome\":" << json_quoted(r.entry.outcome)
        << ",\"hash\":" << json_quoted(r.hash_hex) << "}\n";
  }
  return kExitOk;
}

}  // namespace hookvault
