// CSPRNG bytes drawn in blocks (contract in random.hpp).
#include "hookvault/random.hpp"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "hookvault/secret.hpp"

namespace hookvault {
namespace {

// Bumped in a forked child: every block drawn before it is stale there.
std::atomic<std::uint64_t> fork_generation{0};

void after_fork_in_child() noexcept { fork_generation.fetch_add(1, std::memory_order_relaxed); }

// False when the handler could not be registered: then nothing is buffered.
bool fork_handler_registered() noexcept {
  static const bool registered = pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
  return registered;
}

bool draw_direct(std::span<std::uint8_t> out) noexcept {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) == 1) return true;
  ERR_clear_error();
  secure_wipe(out.data(), out.size());
  return false;
}

class Block {
 public:
  Block() = default;
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;
  ~Block() { secret_free(bytes_, kRandomBlockBytes); }  // wipes

  bool take(std::span<std::uint8_t> out) noexcept {
    while (!out.empty()) {
      if (generation_ != fork_generation.load(std::memory_order_relaxed)) discard();
      if (used_ == kRandomBlockBytes && !refill()) return false;
      const std::size_t n = std::min(out.size(), kRandomBlockBytes - used_);
      std::memcpy(out.data(), bytes_ + used_, n);
      secure_wipe(bytes_ + used_, n);  // never handed out twice
      used_ += n;
      out = out.subspan(n);
    }
    return true;
  }

 private:
  void discard() noexcept {
    if (bytes_ != nullptr) secure_wipe(bytes_ + used_, kRandomBlockBytes - used_);
    used_ = kRandomBlockBytes;
    generation_ = fork_generation.load(std::memory_order_relaxed);
  }

  bool refill() noexcept {
    if (bytes_ == nullptr) {
      try {
        bytes_ = static_cast<std::uint8_t*>(secret_alloc(kRandomBlockBytes));
      } catch (const std::bad_alloc&) {
        return false;
      }
    }
    if (!draw_direct({bytes_, kRandomBlockBytes})) return false;
    used_ = 0;
    return true;
  }

  std::uint8_t* bytes_ = nullptr;
  std::size_t used_ = kRandomBlockBytes;  // bytes_[used_..] not handed out yet
  std::uint64_t generation_ = 0;
};

}  // namespace

bool random_bytes(std::span<std::uint8_t> out) noexcept {
  if (out.empty()) return true;
  if (out.size() >= kRandomBlockBytes || !fork_handler_registered()) return draw_direct(out);
  thread_local Block block;
  if (block.take(out)) return true;
  secure_wipe(out.data(), out.size());
  return false;
}

}  // namespace hookvault
