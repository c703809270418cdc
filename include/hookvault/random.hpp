// random_bytes(): bytes from OpenSSL's CSPRNG (RAND_bytes), drawn in blocks.
//
// Why: every RAND_bytes call costs about 1 us here whatever its size: OpenSSL
// 3.0's DRBG calls getpid() on every generate (its fork check), takes its
// lock and runs its per-call work. A stored event draws three times (its data
// key and two nonces), so those calls were three syscalls per event on the
// I/O threads (docs/performance.md, "the CSPRNG in blocks").
//
// How: each thread keeps one block of kRandomBlockBytes from RAND_bytes. A
// request is served from it in order, and the bytes handed out are wiped
// from the block at once, so the block never holds a byte it has already
// given. A request larger than the block goes to RAND_bytes directly. The
// block lives in secret memory (secret_alloc: the locked arena, left out of
// core dumps, once lock_secret_memory has run) and is wiped when its thread
// ends.
//
// Fork: a child process must never hand out the bytes its parent will hand
// out too. A pthread_atfork child handler marks every block of the parent as
// stale; the child's next request wipes the stale block and draws a new one
// (the DRBG reseeds itself after a fork).
//
// The bytes are OpenSSL's own; what is buffered is only the order in which
// they are handed out. Thread-safe: each thread draws from its own block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hookvault {

inline constexpr std::size_t kRandomBlockBytes = 1024;

// Fills `out` with CSPRNG bytes. False (and `out` wiped) when the CSPRNG
// failed; OpenSSL's error queue is cleared.
[[nodiscard]] bool random_bytes(std::span<std::uint8_t> out) noexcept;

}  // namespace hookvault
