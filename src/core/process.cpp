#include "hookvault/process.hpp"

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
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

namespace {

std::uint64_t from_rlim(rlim_t v) {
  return v == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max()
                            : static_cast<std::uint64_t>(v);
}

}  // namespace

FileLimit file_limit() {
  rlimit now{};
  if (::getrlimit(RLIMIT_NOFILE, &now) != 0) return {};
  return {from_rlim(now.rlim_cur), from_rlim(now.rlim_max)};
}

FileLimit raise_file_limit(std::uint64_t needed) {
  rlimit now{};
  if (::getrlimit(RLIMIT_NOFILE, &now) != 0) return {};
  const FileLimit before{from_rlim(now.rlim_cur), from_rlim(now.rlim_max)};
  if (before.soft >= needed) return before;
  rlimit raised = now;
  raised.rlim_cur = static_cast<rlim_t>(std::min(needed, before.hard));
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) return before;
  return file_limit();
}

void lower_this_thread_priority(int increment) noexcept {
  const auto self = static_cast<id_t>(::gettid());
  errno = 0;
  const int current = ::getpriority(PRIO_PROCESS, self);  // -1 is a valid answer
  if (errno != 0) return;
  static_cast<void>(
      ::setpriority(PRIO_PROCESS, self, std::min(current + std::max(increment, 0), 19)));
}

void name_this_thread(const std::string& name) noexcept {
  if (::gettid() == ::getpid()) return;
  static_cast<void>(::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str()));
}

}  // namespace hookvault
