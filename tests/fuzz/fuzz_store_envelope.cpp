// Fuzzes the store's envelope format (src/store/envelope.hpp): payloads and
// delegation materials sealed under a per-record DEK wrapped by the KEK, with
// associated data naming the row and the field. Memory KEK, made at start.
// The first byte picks the mode; the rest is its data:
//   0  round trip: the data sealed as a payload and as materials opens to
//      the same bytes;
//   1  forged record: the data split into a wrapped DEK and a payload never
//      opens, and fails only with store_corrupt or kek_unavailable;
//   2  tampered record: the data XORed over a genuine sealed record (its
//      wrapped DEK, then its payload), and its length cut, opens only when
//      nothing changed;
//   3  moved record: a genuine record opened under another row's identity
//      (the data as the idempotency key) opens only under its own.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "hookvault/kek.hpp"
#include "store/envelope.hpp"

using namespace hookvault;
using namespace hookvault::store;
using fuzz::check;

namespace {

constexpr std::string_view kSource = "nodit";
constexpr std::string_view kIdem = "evt-0001";
constexpr std::string_view kPayload = R"({"eventType":"EVENT","sequenceNumber":"1"})";

struct World {
  std::unique_ptr<Kek> kek = make_memory_kek(SecretBytes::random(32), "fuzz");
  SealedPayload genuine;
};

World& world() {
  static World* w = [] {
    auto* out = new World;
    auto sealed = seal_payload(*out->kek, kSource, kIdem, as_bytes(kPayload));
    check(sealed.has_value(), "seal the genuine record");
    out->genuine = std::move(*sealed);
    return out;
  }();
  return *w;
}

bool is_refusal(const boost::system::error_code& e) {
  return e == Errc::store_corrupt || e == Errc::kek_unavailable;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  World& w = world();
  const ByteView in(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto sealed = seal_payload(*w.kek, kSource, kIdem, in);
      check(sealed.has_value(), "seal_payload");
      auto opened = open_payload(*w.kek, kSource, kIdem, sealed->key, sealed->payload);
      check(opened &&
                std::equal(opened->reveal().begin(), opened->reveal().end(), in.begin(), in.end()),
            "a sealed payload opens to its bytes");
      DelegationMaterials m;
      m.wallet_id = "w-1";
      m.user_id = "u-1";
      m.chain = "EVM";
      m.share = SecretBytes::copy_of(in);
      m.api_key = SecretBytes::copy_of(in.subspan(in.size() / 2));
      auto sm = seal_materials(*w.kek, "dynamic", "w-1", "e-1", m);
      check(sm.has_value(), "seal_materials");
      auto om = open_materials(*w.kek, "dynamic", "w-1", "e-1", sm->key, sm->share, sm->api_key);
      check(om && om->share.reveal().size() == in.size() &&
                std::equal(in.begin(), in.end(), om->share.reveal().begin()) &&
                om->api_key.reveal().size() == in.size() - in.size() / 2,
            "sealed materials open to their bytes");
      auto swapped =
          open_materials(*w.kek, "dynamic", "w-1", "e-1", sm->key, sm->api_key, sm->share);
      check(!swapped && is_refusal(swapped.error()),
            "share and API key do not open in each other's column");
      break;
    }
    case 1: {
      const std::size_t cut = in.empty() ? 0 : in[0] % (in.size() + 1);
      WrappedKey key{"fuzz", 1, Bytes(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(cut))};
      const auto opened = open_payload(*w.kek, kSource, kIdem, key, in.subspan(cut));
      check(!opened && is_refusal(opened.error()), "a forged record never opens");
      break;
    }
    case 2: {
      WrappedKey key = w.genuine.key;
      Bytes payload = w.genuine.payload;
      for (std::size_t i = 0; i < in.size(); ++i) {
        std::uint8_t& b = i < key.wrapped_dek.size()
                              ? key.wrapped_dek[i]
                              : payload[(i - key.wrapped_dek.size()) % payload.size()];
        b ^= in[i];
      }
      // An XOR twice on one payload byte may cancel: compare, do not guess.
      bool changed = key.wrapped_dek != w.genuine.key.wrapped_dek || payload != w.genuine.payload;
      if (!in.empty() && in[0] & 1) {
        payload.resize(payload.size() - 1);
        changed = true;
      }
      const auto opened = open_payload(*w.kek, kSource, kIdem, key, payload);
      if (changed) {
        check(!opened && is_refusal(opened.error()), "a tampered record never opens");
      } else {
        check(opened.has_value(), "an untouched record opens");
      }
      break;
    }
    case 3: {
      const std::string idem(fuzz::as_text(data + 1, size - 1));
      const auto opened = open_payload(*w.kek, kSource, idem, w.genuine.key, w.genuine.payload);
      check(opened.has_value() == (idem == kIdem), "a record opens only under its own identity");
      if (!opened) check(is_refusal(opened.error()), "a moved record fails as store_corrupt");
      break;
    }
  }
  return 0;
}
