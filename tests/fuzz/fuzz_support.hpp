// What the fuzz targets share: a property check that stops the run (a
// libFuzzer crash, with the message; the replay driver's failing test).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace hookvault::fuzz {

// Aborts with `what` when a property of the target does not hold.
inline void check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

inline std::string_view as_text(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace hookvault::fuzz
