// Reading a stored row's columns back, the same for every backend: the
// inverses of origin_name() and materials_state_name() (store.hpp), and a
// KEK version read from an integer column. A value a backend never writes is
// a corrupt row: nullopt, or Errc::store_corrupt.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "hookvault/error.hpp"
#include "hookvault/store.hpp"

namespace hookvault::store {

std::optional<Origin> parse_origin(std::string_view s) noexcept;
std::optional<MaterialsState> parse_state(std::string_view s) noexcept;
Result<std::uint32_t> kek_version_from(std::int64_t v) noexcept;

}  // namespace hookvault::store
