// Fuzzes the config loader: TOML text into parse_config() (shape, types,
// ranges, durations, sizes, addresses, CIDRs, sources; no file is read).
// Properties: it returns a Config or throws ConfigError (with a message),
// nothing else escapes; a text it accepted is accepted again the same.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "hookvault/config.hpp"

using namespace hookvault;
using fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  try {
    const Config config = parse_config(text, "/nonexistent/hookvault-fuzz.toml");
    const Config again = parse_config(text, "/nonexistent/hookvault-fuzz.toml");
    check(config.sources.size() == again.sources.size() &&
              config.server.listen.port == again.server.listen.port,
          "an accepted text is accepted again the same");
  } catch (const ConfigError& e) {
    const std::string_view message = e.what();
    check(!message.empty(), "a ConfigError says something");
  }
  return 0;
}
