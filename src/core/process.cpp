#include "hookvault/process.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "hookvault/secret.hpp"

namespace hookvault {

HardeningReport harden_process() {
  HardeningReport r;
  const rlimit no_core{0, 0};
  const bool rlimit_ok = ::setrlimit(RLIMIT_CORE, &no_core) == 0;
  const bool dumpable_off = ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
  r.core_dumps_disabled = rlimit_ok && dumpable_off;
  if (!r.core_dumps_disabled) r.note = std::string("core dumps: ") + std::strerror(errno);
  try {
    r.secret_memory_locked = lock_secret_memory(kSecretArenaBytes);
    if (!r.secret_memory_locked) {
      if (!r.note.empty()) r.note += "; ";
      r.note += "secret memory not locked (RLIMIT_MEMLOCK too low for the arena)";
    }
  } catch (const std::exception& e) {
    if (!r.note.empty()) r.note += "; ";
    r.note += e.what();
  }
  return r;
}

}  // namespace hookvault
