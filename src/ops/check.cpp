// `hookvault check-config` (ops.hpp).
#include <ostream>

#include "hookvault/ops.hpp"

namespace hookvault {

int check_config_command(const Config& config, std::ostream& out, std::ostream& err) {
  const auto problems = check_config(config);
  for (const auto& p : problems) err << p << "\n";
  if (problems.empty()) out << "ok: " << config.file.string() << "\n";
  return problems.empty() ? kExitOk : kExitError;
}

}  // namespace hookvault
