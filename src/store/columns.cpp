#include "store/columns.hpp"

#include <limits>

namespace hookvault::store {

std::optional<Origin> parse_origin(std::string_view s) noexcept {
  for (auto origin : {Origin::signature, Origin::history}) {
    if (s == origin_name(origin)) return origin;
  }
  return std::nullopt;
}

std::optional<MaterialsState> parse_state(std::string_view s) noexcept {
  for (auto state : {MaterialsState::none, MaterialsState::stored, MaterialsState::superseded,
                     MaterialsState::revoked, MaterialsState::decrypt_failed}) {
    if (s == materials_state_name(state)) return state;
  }
  return std::nullopt;
}

Result<std::uint32_t> kek_version_from(std::int64_t v) noexcept {
  if (v < 0 || v > std::numeric_limits<std::uint32_t>::max()) {
    return make_error_code(Errc::store_corrupt);
  }
  return static_cast<std::uint32_t>(v);
}

}  // namespace hookvault::store
