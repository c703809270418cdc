// Private to the config stage: the [storage] checks of backend = "postgresql"
// (pg_store.hpp): the connection string's own check at parse time, and
// check-config's look at the database.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hookvault/config.hpp"

namespace hookvault::config_internal {

// Why `conninfo` cannot be used (not a libpq connection string or URI, or it
// holds a password: passwords never sit inline in the config), in words that
// never repeat the string; nullopt when it can.
std::optional<std::string> conninfo_problem(const std::string& conninfo);

// check-config for backend = "postgresql": reads the password (when one is
// named), connects, and says whether the database's schema is one this
// hookvault uses (absent is fine: serve creates it). Each problem as (key,
// problem); empty when there is none.
std::vector<std::pair<std::string, std::string>> check_postgresql(const StorageConfig& storage);

}  // namespace hookvault::config_internal
