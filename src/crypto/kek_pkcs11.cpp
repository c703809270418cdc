// The pkcs11 KEK provider (contract, key versions and wrap layout in kek.hpp):
// Pkcs11Kek, an anchor session that holds the login and serves key scans
// (serialized by scan_mu_), a pool of sessions for wrap/unwrap
// (pool_mu_/pool_cv_; a session is used by one thread at a time), and the key
// set in use, an immutable snapshot replaced whole after a self-test. The
// PKCS#11 pieces it stands on (module, token, GCM) are crypto/pkcs11.hpp's;
// creating and destroying versions is kek_pkcs11_versions.cpp.
//
// The wrapped-key format is kek_wrap.hpp's, shared with the file provider.
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/pkcs11.hpp"
#include "hookvault/kek.hpp"

namespace hookvault {
namespace {

using namespace pkcs11;

constexpr std::size_t kMaxSessions = 8;
constexpr std::string_view kSelfTestData = "hookvault-pkcs11-self-test";

// The current version of a key set: its highest (0 when empty).
std::uint32_t current_of(const KeySet& keys) { return keys.empty() ? 0 : keys.rbegin()->first; }

// The token forgot the session (or its login): a new anchor session may help.
bool session_lost(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
         rv == CKR_USER_NOT_LOGGED_IN;
}

// The key set in use is one immutable KeySet behind a shared_ptr (keys_),
// replaced whole by install(); the current version is always its highest, so
// a wrap, an unwrap or version() sees one consistent set. install() self-tests
// a candidate's highest version before it replaces the set in use, and every
// change (open, refresh(), the rescans of unwrap and of stale handles) goes
// through it, one at a time (reload_mu_).
class Pkcs11Kek final : public Kek {
 public:
  // Logs in, scans the keys and self-tests the current version; throws Pkcs11Error.
  Pkcs11Kek(ModuleRef module, CK_SLOT_ID slot, Pkcs11KekOptions options, const Names& names)
      : module_(std::move(module)),
        slot_(slot),
        pin_(std::move(options.pin)),
        key_label_(std::move(options.key_label)),
        id_("pkcs11:" + options.token_label + "/" + key_label_),
        token_name_(names.token) {
    try {
      if (const CK_RV rv = open_session(module_, slot_, false, &anchor_); rv != CKR_OK) {
        throw Pkcs11Error(Stage::token, token_name_ + ": C_OpenSession failed: " + rv_name(rv));
      }
      if (const CK_RV rv = login(module_, anchor_, pin_); rv != CKR_OK) {
        throw Pkcs11Error(Stage::login, token_name_ + ": login failed: " + rv_name(rv));
      }
      std::lock_guard reload_lock(reload_mu_);
      install(usable_keys_or_throw(scan_on_anchor(), token_name_, key_label_));
    } catch (...) {
      close_all();
      throw;
    }
  }

  ~Pkcs11Kek() override { close_all(); }
  Pkcs11Kek(const Pkcs11Kek&) = delete;
  Pkcs11Kek& operator=(const Pkcs11Kek&) = delete;

  const std::string& id() const noexcept override { return id_; }
  std::uint32_t version() const noexcept override { return current_of(*snapshot()); }

  std::vector<std::uint32_t> versions() const override {
    std::vector<std::uint32_t> out;
    for (const auto& entry : *snapshot()) out.push_back(entry.first);
    return out;
  }

  Result<WrappedDek> wrap(const SecretBytes& dek, ByteView associated_data) const override {
    if (dek.size() != kDekBytes) return Errc::internal;     // caller bug, not data
    const std::uint32_t version = current_of(*snapshot());  // one version for the whole wrap
    Bytes out(kWrappedBytes);
    const CK_RV rv = run_installed(version, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
      return seal(module_, s, key, version, dek, associated_data,
                  std::span<std::uint8_t, kWrappedBytes>(out.data(), kWrappedBytes));
    });
    if (rv != CKR_OK) return Errc::kek_unavailable;
    return WrappedDek{version, std::move(out)};
  }

  // Scans the token, self-tests the highest version and makes it current.
  void refresh() override {
    std::lock_guard reload_lock(reload_mu_);
    install(usable_keys_or_throw(scan_on_anchor(), token_name_, key_label_));
  }

  Result<SecretBytes> unwrap(ByteView wrapped, std::uint32_t version,
                             ByteView associated_data) const override {
    if (wrapped.size() != kWrappedBytes) return Errc::store_corrupt;
    if (const auto keys = snapshot(); !keys->contains(version)) {
      // Only a version above the current one can have been created since; one
      // at or below it was retired (new versions are always the highest + 1).
      if (version <= current_of(*keys) || !reload_quietly() || !handle_of(version)) {
        return Errc::kek_unavailable;
      }
    }
    SecretBytes dek;
    const CK_RV rv = run_installed(version, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key) {
      return open_sealed(module_, s, key, version, wrapped, associated_data, dek);
    });
    if (rv == CKR_OK) return dek;
    if (is_auth_failure(rv)) return Errc::store_corrupt;
    // Some modules report a failed tag as a generic failure (SoftHSM 2.6:
    // CKR_GENERAL_ERROR). If the same key wraps and unwraps a fresh DEK right
    // now, the token is fine and it is this wrapped key that does not open.
    if (is_generic_failure(rv)) {
      const auto key = handle_of(version);
      if (key && self_test(version, *key) == CKR_OK) return Errc::store_corrupt;
    }
    return Errc::kek_unavailable;
  }

 private:
  // A pool session, returned on destruction (or closed when discarded).
  class Lease {
   public:
    Lease(const Pkcs11Kek& kek, CK_SESSION_HANDLE session) : kek_(&kek), session_(session) {}
    Lease(Lease&& other) noexcept
        : kek_(other.kek_), session_(std::exchange(other.session_, CK_INVALID_HANDLE)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (session_ != CK_INVALID_HANDLE) kek_->release(session_, discard_);
    }
    CK_SESSION_HANDLE get() const noexcept { return session_; }
    void discard() noexcept { discard_ = true; }

   private:
    const Pkcs11Kek* kek_;
    CK_SESSION_HANDLE session_;
    bool discard_ = false;
  };

  // Runs `op(session, key)` on a pool session with the handle `key_of()`
  // gives for each attempt. On a failure that is not an authentication
  // failure, tries once more on a fresh session, after logging in again when
  // the token asks for it, or (with `reload_on_stale`) scanning the keys again
  // when it says the handle is stale. The lease is returned before either,
  // since a reload self-tests on a pool session of its own.
  template <class KeyOf, class Op>
  CK_RV run(KeyOf&& key_of, bool reload_on_stale, Op&& op) const {
    CK_RV rv = CKR_GENERAL_ERROR;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const std::optional<CK_OBJECT_HANDLE> key = key_of();
      if (!key) return CKR_KEY_HANDLE_INVALID;
      {
        std::optional<Lease> lease = acquire(rv);
        if (!lease) continue;
        rv = op(lease->get(), *key);
        if (rv == CKR_OK || is_auth_failure(rv)) return rv;
        lease->discard();  // also ends any operation the failure left active
      }
      if (rv == CKR_USER_NOT_LOGGED_IN) {
        relogin();
      } else if (reload_on_stale &&
                 (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID)) {
        reload_quietly();
      }
    }
    return rv;
  }

  // run() with the installed key of `version`.
  template <class Op>
  CK_RV run_installed(std::uint32_t version, Op&& op) const {
    return run([&] { return handle_of(version); }, true, std::forward<Op>(op));
  }

  std::optional<Lease> acquire(CK_RV& rv) const {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxSessions; });
    if (!idle_.empty()) {
      const CK_SESSION_HANDLE s = idle_.back();
      idle_.pop_back();
      return Lease(*this, s);
    }
    ++open_;
    lock.unlock();
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    rv = open_session(module_, slot_, false, &s);
    if (rv == CKR_OK) return Lease(*this, s);
    lock.lock();
    --open_;
    lock.unlock();
    pool_cv_.notify_one();
    return std::nullopt;
  }

  void release(CK_SESSION_HANDLE session, bool discard) const noexcept {
    {
      std::lock_guard lock(pool_mu_);
      if (!discard) {
        idle_.push_back(session);
      } else {
        --open_;
      }
    }
    if (discard) module_->C_CloseSession(session);
    pool_cv_.notify_one();
  }

  std::shared_ptr<const KeySet> snapshot() const {
    std::lock_guard lock(keys_mu_);
    return keys_;
  }

  std::optional<CK_OBJECT_HANDLE> handle_of(std::uint32_t version) const {
    return find_handle(*snapshot(), version);
  }

  // Self-tests the highest version of `candidate` and, when it passes, makes
  // `candidate` the key set in use. Throws Pkcs11Error, leaving the set in use
  // as it was. Caller holds reload_mu_.
  void install(KeySet candidate) const {
    const auto& [version, key] = *candidate.rbegin();  // usable_keys_or_throw: never empty
    if (const CK_RV rv = self_test(version, key); rv != CKR_OK) {
      throw Pkcs11Error(Stage::key, token_name_ + ": key " +
                                        in_quotes(version_label(key_label_, version)) +
                                        " failed a wrap/unwrap self-test: " + rv_name(rv));
    }
    auto keys = std::make_shared<const KeySet>(std::move(candidate));
    std::lock_guard lock(keys_mu_);
    keys_ = std::move(keys);
  }

  // refresh() for the request path: false, and the keys in use unchanged, when
  // the scan or the self-test failed.
  bool reload_quietly() const {
    try {
      std::lock_guard reload_lock(reload_mu_);
      install(usable_keys_or_throw(scan_on_anchor(), token_name_, key_label_));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  // Lists the keys on the anchor session, first opening a new one (logged in)
  // when the token forgot it.
  KeyScan scan_on_anchor() const {
    std::lock_guard scan_lock(scan_mu_);
    KeyScan scan = scan_keys(module_, anchor_, key_label_);
    if (session_lost(scan.rv)) {
      if (const CK_RV rv = reopen_anchor_locked(); rv != CKR_OK) {
        KeyScan failed;
        failed.rv = rv;
        failed.login_failed = true;
        return failed;
      }
      scan = scan_keys(module_, anchor_, key_label_);
    }
    return scan;
  }

  void relogin() const {
    std::lock_guard scan_lock(scan_mu_);
    if (login(module_, anchor_, pin_) != CKR_OK) reopen_anchor_locked();
  }

  // A new anchor session, logged in. Caller holds scan_mu_.
  CK_RV reopen_anchor_locked() const {
    if (anchor_ != CK_INVALID_HANDLE) module_->C_CloseSession(anchor_);
    anchor_ = CK_INVALID_HANDLE;
    CK_RV rv = open_session(module_, slot_, false, &anchor_);
    if (rv != CKR_OK) {
      anchor_ = CK_INVALID_HANDLE;
      return rv;
    }
    return login(module_, anchor_, pin_);
  }

  // Wraps and unwraps a random DEK under `key` as `version`. Never rescans
  // (a reload runs it on a candidate that is not installed yet).
  CK_RV self_test(std::uint32_t version, CK_OBJECT_HANDLE key) const {
    const auto key_of = [key] { return std::optional<CK_OBJECT_HANDLE>(key); };
    const SecretBytes dek = SecretBytes::random(kDekBytes);
    const ByteView ad = as_bytes(kSelfTestData);
    Bytes wrapped(kWrappedBytes);
    CK_RV rv = run(key_of, false, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k) {
      return seal(module_, s, k, version, dek, ad,
                  std::span<std::uint8_t, kWrappedBytes>(wrapped.data(), kWrappedBytes));
    });
    if (rv != CKR_OK) return rv;
    SecretBytes back;
    rv = run(key_of, false, [&](CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k) {
      return open_sealed(module_, s, k, version, wrapped, ad, back);
    });
    if (rv == CKR_OK && !dek.equals(back.reveal())) rv = CKR_FUNCTION_FAILED;
    return rv;
  }

  void close_all() noexcept {
    std::lock_guard lock(pool_mu_);
    for (CK_SESSION_HANDLE s : idle_) module_->C_CloseSession(s);
    idle_.clear();
    open_ = 0;
    if (anchor_ != CK_INVALID_HANDLE) module_->C_CloseSession(anchor_);
    anchor_ = CK_INVALID_HANDLE;
  }

  ModuleRef module_;  // first: outlives every session
  CK_SLOT_ID slot_;
  SecretBytes pin_;  // for logging in again after the token forgot us
  std::string key_label_;
  std::string id_;
  std::string token_name_;  // "PKCS#11 token \"x\" (module ...)", for messages

  mutable std::mutex reload_mu_;  // one install at a time (scan, self-test, swap)
  mutable std::mutex scan_mu_;    // the anchor session: key scans and re-logins
  mutable CK_SESSION_HANDLE anchor_ = CK_INVALID_HANDLE;

  mutable std::mutex keys_mu_;  // guards keys_ (the pointer, not the set)
  mutable std::shared_ptr<const KeySet> keys_ = std::make_shared<const KeySet>();

  mutable std::mutex pool_mu_;
  mutable std::condition_variable pool_cv_;
  mutable std::vector<CK_SESSION_HANDLE> idle_;
  mutable std::size_t open_ = 0;  // leased + idle
};

}  // namespace

std::unique_ptr<Kek> open_pkcs11_kek(Pkcs11KekOptions options) {
  Token token = find_token(options);
  return std::make_unique<Pkcs11Kek>(std::move(token.module), token.slot, std::move(options),
                                     token.names);
}

}  // namespace hookvault
