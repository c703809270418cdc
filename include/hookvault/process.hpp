// Process hardening for the daemon, applied once at start-up before any secret
// is loaded:
//   - no core dumps: RLIMIT_CORE = 0 and PR_SET_DUMPABLE = 0 (which also stops
//     ptrace by other processes of the same user);
//   - secret buffers in a locked arena (lock_secret_memory, secret.hpp) of
//     kSecretArenaBytes, where RLIMIT_MEMLOCK allows.
// What could not be done is reported, not fatal (a container may forbid mlock).
//
// Thread-safety: call once, from main(), before other threads start.
#pragma once

#include <cstddef>
#include <string>

namespace hookvault {

inline constexpr std::size_t kSecretArenaBytes = std::size_t{4} << 20;  // 4 MiB

struct HardeningReport {
  bool core_dumps_disabled = false;
  bool secret_memory_locked = false;
  std::string note;  // why something was not done; empty when all was
};

HardeningReport harden_process();

}  // namespace hookvault
