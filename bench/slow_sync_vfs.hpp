// A slower disk for hookvault_store_bench: when SYNC_DELAY_US is set, every
// xSync of every SQLite file sleeps that long first (after the real sync
// would be the same: the caller waits for both). Made the default VFS, so the
// store's connections use it. It stands for a disk whose flush takes longer
// than this VM's (cloud block storage: about 1-2 ms), to see how the writer
// copes when syncs are slow.
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace hookvault::bench {

inline sqlite3_vfs* real_vfs = nullptr;
inline sqlite3_vfs slow_vfs{};
inline useconds_t sync_delay_us = 0;

// The unix VFS gives its files more than one methods table (the WAL's is not
// the main database's): one slow copy of each, the real one's xSync kept.
constexpr int kTables = 8;
inline const sqlite3_io_methods* real_methods[kTables] = {};
inline sqlite3_io_methods slow_methods[kTables] = {};
inline int (*real_sync[kTables])(sqlite3_file*, int) = {};

template <int I>
int slow_sync(sqlite3_file* f, int sync_flags) {
  usleep(sync_delay_us);
  return real_sync[I](f, sync_flags);
}

template <int... I>
constexpr auto slow_syncs(std::integer_sequence<int, I...>) {
  return std::array<int (*)(sqlite3_file*, int), sizeof...(I)>{&slow_sync<I>...};
}
inline const auto kSlowSyncs = slow_syncs(std::make_integer_sequence<int, kTables>());

inline int slow_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags,
                     int* out_flags) {
  const int rc = real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
  if (file->pMethods == nullptr) return rc;
  for (int i = 0; i < kTables; ++i) {
    if (real_methods[i] == nullptr) {
      real_methods[i] = file->pMethods;
      slow_methods[i] = *file->pMethods;
      real_sync[i] = file->pMethods->xSync;
      slow_methods[i].xSync = kSlowSyncs[static_cast<std::size_t>(i)];
    }
    if (real_methods[i] == file->pMethods) {
      file->pMethods = &slow_methods[i];
      return rc;
    }
  }
  return rc;  // more tables than kTables: left as they are
}

inline constexpr char kSlowSyncVfs[] = "hookvault-bench-slow-sync";

// Registers the slow VFS (under kSlowSyncVfs, not as the default: the store
// uses it when its options name it) when SYNC_DELAY_US is set; returns the
// delay (0: not installed).
inline unsigned install_slow_sync_vfs() {
  const char* env = std::getenv("SYNC_DELAY_US");
  if (env == nullptr || std::atoi(env) <= 0) return 0;
  sync_delay_us = static_cast<useconds_t>(std::atoi(env));
  // What the store says before SQLite initializes (src/store/sqlite/connection.cpp);
  // finding the VFS initializes it.
  static_cast<void>(sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0));
  real_vfs = sqlite3_vfs_find(nullptr);
  slow_vfs = *real_vfs;
  slow_vfs.zName = kSlowSyncVfs;
  slow_vfs.xOpen = &slow_open;
  if (sqlite3_vfs_register(&slow_vfs, 0) != SQLITE_OK) {
    std::fprintf(stderr, "store_bench: cannot register the slow-sync VFS\n");
    std::exit(2);
  }
  return sync_delay_us;
}

}  // namespace hookvault::bench
