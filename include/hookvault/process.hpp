// Process hardening for the daemon, applied once at start-up before any secret
// is loaded:
//   - no core dumps: RLIMIT_CORE = 0 and PR_SET_DUMPABLE = 0 (which also stops
//     ptrace by other processes of the same user);
//   - secret buffers in a locked arena (lock_secret_memory, secret.hpp) of
//     kSecretArenaBytes, where RLIMIT_MEMLOCK allows.
// What could not be done is reported, not fatal (a container may forbid mlock).
//
// And the open-file limit (RLIMIT_NOFILE): every connection holds a file
// descriptor, so the daemon raises its soft limit to what its connection caps
// need (raise_file_limit). The hard limit is the operator's (LimitNOFILE= in
// the unit, `ulimit -Hn`, `docker run --ulimit nofile=`): it is never raised,
// and check-config refuses caps that do not fit in it.
//
// Thread-safety: call once, from main(), before other threads start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hookvault {

inline constexpr std::size_t kSecretArenaBytes = std::size_t{4} << 20;  // 4 MiB

struct HardeningReport {
  bool core_dumps_disabled = false;
  bool secret_memory_locked = false;
  std::string note;  // why something was not done; empty when all was
};

HardeningReport harden_process();

// RLIMIT_NOFILE of this process; RLIM_INFINITY reads as UINT64_MAX.
struct FileLimit {
  std::uint64_t soft = 0;
  std::uint64_t hard = 0;
};
FileLimit file_limit();

// Raises the soft limit to `needed` when it is lower (to the hard limit at
// most); never lowers it. Returns the limit afterwards (unchanged when
// setrlimit fails).
FileLimit raise_file_limit(std::uint64_t needed);

// Names the calling thread for top, perf and /proc/<pid>/task/*/comm (Linux
// keeps the first 15 bytes). Does nothing on the process's main thread, whose
// name is the process's (ps, pidof). Best effort: a failure changes nothing else.
void name_this_thread(const std::string& name) noexcept;

// Lowers the calling thread's CPU priority: its nice value goes up by
// `increment` (to 19 at most). On Linux the nice value is per thread, and an
// unprivileged process may always raise it. Best effort: on failure the
// thread keeps the priority it had.
void lower_this_thread_priority(int increment) noexcept;

}  // namespace hookvault
