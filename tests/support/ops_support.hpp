// For the operator-command tests (tests/unit/ops_*_test.cpp): a Config built
// in code over a TempDir, and a command's exit code and output captured.
// Header-only: it needs hookvault/config.hpp, which only the ops and config
// stages link, and tests/support is linked into every stage.
#pragma once

#include <ostream>
#include <sstream>
#include <string>

#include "hookvault/config.hpp"
#include "hookvault/secret.hpp"
#include "test_support.hpp"

namespace hookvault::testing {

// A file KEK with a fresh random key at keys/kek.key, the store at
// data/hookvault.db and one Dynamic source at /webhooks/dynamic, all in `dir`.
inline Config file_kek_config(const TempDir& dir) {
  write_file(dir / "keys/kek.key", SecretBytes::random(32).reveal_string());
  Config config;
  config.file = dir / "hookvault.toml";
  config.storage.path = dir / "data/hookvault.db";
  config.kek.file = dir / "keys/kek.key";
  SourceConfig source;
  source.name = "dynamic";
  source.provider = Provider::dynamic;
  source.path = "/webhooks/dynamic";
  config.sources.push_back(source);
  return config;
}

struct CommandOutput {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs `command(out, err)` (an ops.hpp command bound to its arguments) and
// returns its exit code with what it wrote to each stream.
template <class F>
CommandOutput run_command(F&& command) {
  std::ostringstream out;
  std::ostringstream err;
  CommandOutput o;
  o.code = command(static_cast<std::ostream&>(out), static_cast<std::ostream&>(err));
  o.out = out.str();
  o.err = err.str();
  return o;
}

}  // namespace hookvault::testing
