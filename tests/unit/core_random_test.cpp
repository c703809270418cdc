// random_bytes (include/hookvault/random.hpp): bytes served from a per-thread
// block are never handed out twice, across block boundaries, threads and a
// fork.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/random.hpp"

namespace hookvault {
namespace {

std::string draw_hex(std::size_t n) {
  Bytes b(n);
  EXPECT_TRUE(random_bytes(b));
  return to_hex(b);
}

bool all_zero(const Bytes& b) {
  return std::all_of(b.begin(), b.end(), [](std::uint8_t x) { return x == 0; });
}

TEST(Random, DrawsOfEverySizeAreFreshAcrossBlockBoundaries) {
  // 24 does not divide the block size, so draws straddle refills.
  static_assert(kRandomBlockBytes % 24 != 0);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    Bytes b(24);
    ASSERT_TRUE(random_bytes(b));
    EXPECT_FALSE(all_zero(b)) << "draw " << i;
    EXPECT_TRUE(seen.insert(to_hex(b)).second) << "draw " << i << " repeated an earlier one";
  }
  // Larger than a block: straight from OpenSSL, still fresh.
  Bytes big(3 * kRandomBlockBytes);
  ASSERT_TRUE(random_bytes(big));
  const Bytes first(big.begin(), big.begin() + kRandomBlockBytes);
  const Bytes second(big.begin() + kRandomBlockBytes, big.begin() + 2 * kRandomBlockBytes);
  EXPECT_FALSE(all_zero(first));
  EXPECT_FALSE(first == second);
  EXPECT_TRUE(random_bytes(std::span<std::uint8_t>()));  // nothing asked, nothing drawn
}

TEST(Random, ThreadsNeverShareBytes) {
  constexpr int kThreads = 4;
  constexpr int kDraws = 200;
  std::vector<std::vector<std::string>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&drawn, t] {
      for (int i = 0; i < kDraws; ++i) drawn[t].push_back(draw_hex(32));
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& d : drawn) all.insert(d.begin(), d.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kDraws));
}

// A forked child starts with a copy of its parent's block. Without the
// pthread_atfork handler, the child's next draw would equal the parent's.
TEST(Random, AForkedChildNeverRepeatsItsParentsNextBytes) {
  (void)draw_hex(16);  // this thread's block is filled and partly used
  std::array<int, 2> pipe_fds{};
  ASSERT_EQ(pipe(pipe_fds.data()), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::array<std::uint8_t, 32> mine{};
    const bool ok = random_bytes(mine);
    const auto written = write(pipe_fds[1], mine.data(), mine.size());
    _exit(ok && written == static_cast<ssize_t>(mine.size()) ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::array<std::uint8_t, 32> parents{};
  ASSERT_TRUE(random_bytes(parents));
  std::array<std::uint8_t, 32> childs{};
  std::size_t got = 0;
  while (got < childs.size()) {
    const auto n = read(pipe_fds[0], childs.data() + got, childs.size() - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, childs.size());
  EXPECT_FALSE(parents == childs) << "the child drew the bytes its parent drew next";
}

}  // namespace
}  // namespace hookvault
