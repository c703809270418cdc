// Process hardening: no core dumps, secret buffers in the locked arena.
#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <thread>

#include "hookvault/process.hpp"
#include "hookvault/secret.hpp"

namespace hookvault {
namespace {

std::size_t locked_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmLck:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

TEST(Process, HardeningDisablesCoreDumpsAndMovesSecretsIntoTheArena) {
  const HardeningReport r = harden_process();
  EXPECT_TRUE(r.core_dumps_disabled) << r.note;
  rlimit core{};
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &core), 0);
  EXPECT_EQ(core.rlim_cur, 0U);
  EXPECT_EQ(core.rlim_max, 0U);
  EXPECT_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);

  // Whether mlock was allowed depends on RLIMIT_MEMLOCK; the report says which.
  EXPECT_EQ(r.secret_memory_locked, locked_kib() * 1024 >= kSecretArenaBytes) << r.note;

  SecretBytes key = SecretBytes::random(32);
  EXPECT_EQ(CRYPTO_secure_allocated(key.reveal().data()), 1);
  SecretText text;
  text.assign(100, 'x');
  EXPECT_EQ(CRYPTO_secure_allocated(text.data()), 1);

  // Larger than the arena: the ordinary heap, same behaviour.
  SecretBytes big(kSecretArenaBytes * 2);
  EXPECT_EQ(CRYPTO_secure_allocated(big.reveal().data()), 0);
  big.reveal_mutable()[big.size() - 1] = 7;
  SecretBytes moved = std::move(big);
  EXPECT_EQ(moved.reveal()[moved.size() - 1], 7);

  // Growth moves a buffer between the two and keeps its bytes.
  SecretBytes grow = SecretBytes::copy_of(std::string_view("abc"));
  grow.append(std::span<const std::uint8_t>(moved.reveal().data(), 16));
  EXPECT_EQ(grow.reveal_string().substr(0, 3), "abc");
  EXPECT_EQ(grow.size(), 19U);
  // A second call changes nothing and reports the same.
  const HardeningReport again = harden_process();
  EXPECT_TRUE(again.core_dumps_disabled);
  EXPECT_EQ(again.secret_memory_locked, r.secret_memory_locked);
}

// The soft open-file limit is raised to what is needed, never lowered, never
// past the hard limit. The test lowers its own soft limit first and puts it
// back (a soft limit may move freely below the hard one).
TEST(Process, RaiseFileLimitRaisesTheSoftLimitUpToTheHardOne) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 512) {
    GTEST_SKIP() << "the hard RLIMIT_NOFILE is below 512 here";
  }
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  EXPECT_EQ(file_limit().soft, 256U);

  FileLimit l = raise_file_limit(300);
  EXPECT_EQ(l.soft, 300U);
  EXPECT_EQ(file_limit().soft, 300U);
  l = raise_file_limit(100);  // never lowered
  EXPECT_EQ(l.soft, 300U);
  l = raise_file_limit(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(l.soft, l.hard);  // up to the hard limit only
  EXPECT_EQ(l.hard, saved.rlim_max == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max()
                                                    : std::uint64_t{saved.rlim_max});

  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

std::string this_thread_name() {
  char name[16] = {};
  EXPECT_EQ(::pthread_getname_np(::pthread_self(), name, sizeof name), 0);
  return name;
}

TEST(ThreadName, NamesOtherThreadsAndLeavesTheMainThreadsName) {
  // gtest runs the tests on the main thread, whose name is the process's.
  const std::string process_name = this_thread_name();
  name_this_thread("hv-not-main");
  EXPECT_EQ(this_thread_name(), process_name);

  std::string seen;
  std::thread([&seen] {
    name_this_thread("hv-a-name-longer-than-15");
    seen = this_thread_name();
  }).join();
  EXPECT_EQ(seen, "hv-a-name-longe");  // Linux keeps 15 bytes
}

}  // namespace
}  // namespace hookvault
