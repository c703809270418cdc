// Audit records of the operator commands (include/hookvault/audit.hpp): the
// commands that reveal secret material (`materials get`, `events show`) append
// a record with actor "cli:<user>" before they print anything secret, and
// print nothing secret when the record cannot be written; the `keys` commands
// record what they did. (`reprocess` passes cli_actor() to
// reprocess_failures, whose records the store appends.)
//
// Thread-safety: called from main()'s thread only.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "hookvault/store.hpp"

namespace hookvault {

// "cli:<user name of the effective uid>", or "cli:uid:<n>" when it has none.
std::string cli_actor();

// Appends {cli_actor(), action, subject, clip_audit_field(outcome)} and
// returns its seq. On failure prints one error line to `err` and returns
// nullopt.
std::optional<std::int64_t> audit_cli_access(Store& store, std::string action, std::string subject,
                                             std::string outcome, std::ostream& err);

}  // namespace hookvault
