// Tests of the pkcs11 KEK provider against a real SoftHSM2 token (no mocks).
//
// Each test gets a fresh token with KEK version 1 (tests/support/softhsm.hpp).
// As in crypto_test.cpp, every bit flip and truncation of a wrapped key must
// fail, and failures print error names only, never a key.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hookvault/bytes.hpp"
#include "hookvault/error.hpp"
#include "hookvault/kek.hpp"
#include "hookvault/secret.hpp"
#include "softhsm.hpp"

namespace hookvault {
namespace {

using testing::inspect_key;
using testing::SoftHsmToken;

// PKCS#11 values the tests compare with (pkcs11.h is private to the provider).
constexpr unsigned long kCkrAttributeSensitive = 0x11;
constexpr unsigned long kCkUnavailableInformation = ~0UL;

template <class T>
std::string outcome(const Result<T>& r) {
  return r ? std::string("ok") : std::string(error_name(to_errc(r.error())));
}

ByteView ad(std::string_view s) { return as_bytes(s); }

// What a failed open says (defined below).
void expect_open_fails(Pkcs11KekOptions options, Pkcs11Error::Stage stage,
                       const std::vector<std::string>& mentions,
                       const std::vector<std::string>& never);
// refresh() throws a Pkcs11Error of the key stage whose message has `mention`.
void expect_refresh_refused(Kek& kek, const std::string& mention);

class Pkcs11KekTest : public ::testing::Test {
 protected:
  void SetUp() override { token_ = std::make_unique<SoftHsmToken>(); }

  std::unique_ptr<Kek> open() const { return open_pkcs11_kek(token_->options()); }

  std::unique_ptr<SoftHsmToken> token_;
};

TEST_F(Pkcs11KekTest, WrapsAndUnwrapsAtVersionOne) {
  const auto kek = open();
  EXPECT_EQ(kek->id(), "pkcs11:" + token_->label() + "/hookvault-kek");
  EXPECT_EQ(kek->version(), 1U);
  const SecretBytes dek = SecretBytes::random(32);
  auto wrapped = kek->wrap(dek, ad("events/42/payload"));
  ASSERT_TRUE(wrapped) << outcome(wrapped);
  EXPECT_EQ(wrapped->bytes.size(), 60U);  // nonce[12] || ct[32] || tag[16]
  auto back = kek->unwrap(wrapped->bytes, 1, ad("events/42/payload"));
  ASSERT_TRUE(back) << outcome(back);
  EXPECT_TRUE(back->equals(dek.reveal()));
  // A fresh nonce every time.
  auto again = kek->wrap(dek, ad("events/42/payload"));
  ASSERT_TRUE(again);
  EXPECT_NE(again->bytes, wrapped->bytes);
}

TEST_F(Pkcs11KekTest, WrongDekSizeIsACallerBug) {
  const auto kek = open();
  EXPECT_EQ(outcome(kek->wrap(SecretBytes::random(16), ad("x"))), "internal");
}

TEST_F(Pkcs11KekTest, WrongAssociatedDataFails) {
  const auto kek = open();
  auto wrapped = kek->wrap(SecretBytes::random(32), ad("row-a"));
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 1, ad("row-b"))), "store_corrupt");
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 1, ad(""))), "store_corrupt");
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 1, ad("row-a"))), "ok");
}

TEST_F(Pkcs11KekTest, EveryFlippedBitAndEveryTruncationFails) {
  const auto kek = open();
  auto wrapped = kek->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(wrapped);
  for (std::size_t i = 0; i < wrapped->bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes bad = wrapped->bytes;
      bad[i] ^= static_cast<std::uint8_t>(1U << bit);
      EXPECT_EQ(outcome(kek->unwrap(bad, 1, ad("row"))), "store_corrupt")
          << "byte " << i << " bit " << bit;
    }
  }
  for (std::size_t n = 0; n < wrapped->bytes.size(); ++n) {
    const Bytes cut(wrapped->bytes.begin(), wrapped->bytes.begin() + static_cast<long>(n));
    EXPECT_EQ(outcome(kek->unwrap(cut, 1, ad("row"))), "store_corrupt") << "length " << n;
  }
  Bytes longer = wrapped->bytes;
  longer.push_back(0);
  EXPECT_EQ(outcome(kek->unwrap(longer, 1, ad("row"))), "store_corrupt");
  // The token still works after all those failures.
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 1, ad("row"))), "ok");
}

TEST_F(Pkcs11KekTest, UnknownVersionIsUnavailable) {
  const auto kek = open();
  auto wrapped = kek->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 2, ad("row"))), "kek_unavailable");
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 0, ad("row"))), "kek_unavailable");
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 0xFFFFFFFF, ad("row"))), "kek_unavailable");
}

TEST_F(Pkcs11KekTest, RotationWrapsUnderTheNewVersionAndOldWrapsStillOpen) {
  const auto v1 = open();
  auto old_wrap = v1->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(old_wrap);

  EXPECT_EQ(create_pkcs11_kek_version(token_->options()), 2U);
  const auto v2 = open();
  EXPECT_EQ(v2->version(), 2U);
  EXPECT_EQ(v2->id(), v1->id());  // the id does not change with the version
  const SecretBytes dek = SecretBytes::random(32);
  auto new_wrap = v2->wrap(dek, ad("row"));
  ASSERT_TRUE(new_wrap);
  EXPECT_EQ(outcome(v2->unwrap(old_wrap->bytes, 1, ad("row"))), "ok");
  auto back = v2->unwrap(new_wrap->bytes, 2, ad("row"));
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->equals(dek.reveal()));
  // The version is bound: a v2 wrap does not open as v1, nor the reverse.
  EXPECT_EQ(outcome(v2->unwrap(new_wrap->bytes, 1, ad("row"))), "store_corrupt");
  EXPECT_EQ(outcome(v2->unwrap(old_wrap->bytes, 2, ad("row"))), "store_corrupt");

  EXPECT_TRUE(inspect_key(*token_, "hookvault-kek.v2").found);
  EXPECT_EQ(create_pkcs11_kek_version(token_->options()), 3U);
  EXPECT_EQ(open()->version(), 3U);
}

TEST_F(Pkcs11KekTest, AnOpenKekReadsAVersionCreatedAfterItOpened) {
  const auto early = open();  // another process's view: opened before the rotation
  ASSERT_EQ(create_pkcs11_kek_version(token_->options()), 2U);
  const auto late = open();
  const SecretBytes dek = SecretBytes::random(32);
  auto wrapped = late->wrap(dek, ad("row"));
  ASSERT_TRUE(wrapped);
  auto back = early->unwrap(wrapped->bytes, 2, ad("row"));
  ASSERT_TRUE(back) << outcome(back);
  EXPECT_TRUE(back->equals(dek.reveal()));
  // Looking at the token for the unknown version made the newest one current.
  EXPECT_EQ(early->version(), 2U);
  auto early_wrap = early->wrap(dek, ad("row"));
  ASSERT_TRUE(early_wrap);
  EXPECT_EQ(early_wrap->version, 2U);
  EXPECT_EQ(outcome(late->unwrap(early_wrap->bytes, 2, ad("row"))), "ok");
}

TEST_F(Pkcs11KekTest, RefreshSwitchesWrapsToTheNewVersionAndRetireDestroysTheOldKey) {
  const auto kek = open();
  auto v1_wrap = kek->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(v1_wrap);
  EXPECT_EQ(v1_wrap->version, 1U);
  ASSERT_EQ(create_pkcs11_kek_version(token_->options()), 2U);
  EXPECT_EQ(kek->version(), 1U);  // until refreshed
  kek->refresh();
  EXPECT_EQ(kek->version(), 2U);
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{1, 2}));
  auto v2_wrap = kek->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(v2_wrap);
  EXPECT_EQ(v2_wrap->version, 2U);
  EXPECT_EQ(outcome(kek->unwrap(v1_wrap->bytes, 1, ad("row"))), "ok");

  // The current version cannot be destroyed, nor one that does not exist.
  EXPECT_THROW(destroy_pkcs11_kek_version(token_->options(), 2), Pkcs11Error);
  EXPECT_THROW(destroy_pkcs11_kek_version(token_->options(), 7), Pkcs11Error);
  destroy_pkcs11_kek_version(token_->options(), 1);
  EXPECT_FALSE(inspect_key(*token_, "hookvault-kek").found);
  kek->refresh();
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{2}));
  EXPECT_EQ(outcome(kek->unwrap(v1_wrap->bytes, 1, ad("row"))), "kek_unavailable");
  EXPECT_EQ(outcome(kek->unwrap(v2_wrap->bytes, 2, ad("row"))), "ok");
  EXPECT_EQ(open()->version(), 2U);  // a token without version 1 still opens
}

// A version is never installed before its self-test passed: not on open, not
// on refresh(), not on the rescan an unwrap of a newer version makes. The Kek
// keeps wrapping under the version it had, and that version stays in its list.
TEST_F(Pkcs11KekTest, AVersionThatFailsItsSelfTestIsNeverInstalled) {
  const auto kek = open();
  const SecretBytes dek = SecretBytes::random(32);
  auto v1_wrap = kek->wrap(dek, ad("row"));
  ASSERT_TRUE(v1_wrap);
  testing::import_aes_key(*token_, "hookvault-kek.v2", SecretBytes::random(32),
                          /*may_encrypt=*/false);

  Bytes v2_wrapped(60, 0x5a);  // any 60 bytes: the version is what matters here
  EXPECT_EQ(outcome(kek->unwrap(v2_wrapped, 2, ad("row"))), "kek_unavailable");
  EXPECT_EQ(kek->version(), 1U);
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{1}));
  expect_refresh_refused(*kek, "\"hookvault-kek.v2\" failed a wrap/unwrap self-test");
  EXPECT_EQ(kek->version(), 1U);
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{1}));
  auto still_v1 = kek->wrap(dek, ad("row"));
  ASSERT_TRUE(still_v1) << outcome(still_v1);
  EXPECT_EQ(still_v1->version, 1U);
  EXPECT_EQ(outcome(kek->unwrap(v1_wrap->bytes, 1, ad("row"))), "ok");
  expect_open_fails(token_->options(), Pkcs11Error::Stage::key,
                    {"\"hookvault-kek.v2\"", "self-test"}, {token_->pin()});
}

// kek.hpp: a key labelled as a version that is not AES-256 makes open and
// refresh() refuse the token; the Kek keeps what it had.
TEST_F(Pkcs11KekTest, AKeyThatIsNotAes256IsRefusedAndTheKekKeepsItsKeys) {
  const auto kek = open();
  testing::import_aes_key(*token_, "hookvault-kek.v2", SecretBytes::random(16));
  expect_refresh_refused(*kek, "\"hookvault-kek.v2\" is AES-128, not AES-256");
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{1}));
  EXPECT_EQ(outcome(kek->wrap(SecretBytes::random(32), ad("row"))), "ok");
  expect_open_fails(token_->options(), Pkcs11Error::Stage::key, {"AES-128"}, {token_->pin()});
}

// Only a version above the current one can appear after open (rotation makes
// highest + 1); an unknown lower one was retired, and unwrap does not look at
// the token for it. refresh() still does.
TEST_F(Pkcs11KekTest, UnwrapLooksAtTheTokenOnlyForAVersionAboveTheCurrentOne) {
  ASSERT_EQ(create_pkcs11_kek_version(token_->options()), 2U);
  destroy_pkcs11_kek_version(token_->options(), 1);
  const auto kek = open();
  ASSERT_EQ(kek->versions(), (std::vector<std::uint32_t>{2}));
  // Version 1 back on the token under its label (a restore from backup).
  const SecretBytes key1 = SecretBytes::random(32);
  testing::import_aes_key(*token_, "hookvault-kek", key1);
  auto v1_wrap =
      make_memory_kek(key1.clone(), "memory:v1")->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(v1_wrap);
  EXPECT_EQ(outcome(kek->unwrap(v1_wrap->bytes, 1, ad("row"))), "kek_unavailable");
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{2}));
  kek->refresh();
  EXPECT_EQ(kek->versions(), (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(outcome(kek->unwrap(v1_wrap->bytes, 1, ad("row"))), "ok");

  // A wrapped key of the wrong size is corrupt whatever its version, and
  // checked before any look at the token.
  ASSERT_EQ(create_pkcs11_kek_version(token_->options()), 3U);
  EXPECT_EQ(outcome(kek->unwrap(Bytes(59, 0), 3, ad("row"))), "store_corrupt");
  EXPECT_EQ(outcome(kek->unwrap(Bytes(61, 0), 3, ad("row"))), "store_corrupt");
  EXPECT_EQ(kek->version(), 2U);  // not looked at
  EXPECT_EQ(outcome(kek->unwrap(Bytes(60, 0), 3, ad("row"))), "store_corrupt");
  EXPECT_EQ(kek->version(), 3U);  // looked at, and found version 3
}

TEST_F(Pkcs11KekTest, AKeyLostUnderAnOpenKekIsUnavailableNotAnException) {
  const auto kek = open();
  auto wrapped = kek->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(wrapped);
  testing::destroy_key(*token_, "hookvault-kek");
  EXPECT_EQ(outcome(kek->wrap(SecretBytes::random(32), ad("row"))), "kek_unavailable");
  EXPECT_EQ(outcome(kek->unwrap(wrapped->bytes, 1, ad("row"))), "kek_unavailable");
}

TEST_F(Pkcs11KekTest, TheKeyValueCannotBeRead) {
  ASSERT_EQ(create_pkcs11_kek_version(token_->options()), 2U);
  for (const char* label : {"hookvault-kek", "hookvault-kek.v2"}) {
    const auto k = inspect_key(*token_, label);
    ASSERT_TRUE(k.found) << label;
    EXPECT_EQ(k.value_rv, kCkrAttributeSensitive) << label;
    EXPECT_EQ(k.value_len, kCkUnavailableInformation) << label;
    EXPECT_TRUE(k.sensitive) << label;
    EXPECT_FALSE(k.extractable) << label;
    EXPECT_TRUE(k.token) << label;
    EXPECT_TRUE(k.is_private) << label;
    EXPECT_TRUE(k.encrypt) << label;
    EXPECT_TRUE(k.decrypt) << label;
    EXPECT_EQ(k.key_bytes, 32U) << label;
  }
}

TEST(Pkcs11KekLayout, SameWrapLayoutAsTheFileProvider) {
  SoftHsmToken token(/*create_key=*/false);
  const SecretBytes key = SecretBytes::random(32);
  testing::import_aes_key(token, "hookvault-kek", key);
  const auto hsm = open_pkcs11_kek(token.options());
  const auto file = make_memory_kek(key.clone(), "memory:same");
  const SecretBytes dek = SecretBytes::random(32);

  auto from_hsm = hsm->wrap(dek, ad("sources/dynamic/evt-1/share"));
  ASSERT_TRUE(from_hsm);
  auto opened = file->unwrap(from_hsm->bytes, 1, ad("sources/dynamic/evt-1/share"));
  ASSERT_TRUE(opened) << outcome(opened);
  EXPECT_TRUE(opened->equals(dek.reveal()));

  auto from_file = file->wrap(dek, ad("sources/dynamic/evt-1/share"));
  ASSERT_TRUE(from_file);
  auto opened2 = hsm->unwrap(from_file->bytes, 1, ad("sources/dynamic/evt-1/share"));
  ASSERT_TRUE(opened2) << outcome(opened2);
  EXPECT_TRUE(opened2->equals(dek.reveal()));
}

TEST(Pkcs11KekLabels, LabelsThatAreNotVersionsAreIgnoredAndDuplicatesRefused) {
  SoftHsmToken token;
  for (const char* label : {"hookvault-kek.v03", "hookvault-kek.v", "hookvault-kek.vx",
                            "hookvault-kek.v0", "hookvault-kek2", "other.v9"}) {
    testing::import_aes_key(token, label, SecretBytes::random(32));
  }
  EXPECT_EQ(open_pkcs11_kek(token.options())->version(), 1U);

  testing::import_aes_key(token, "hookvault-kek.v1", SecretBytes::random(32));
  try {
    (void)open_pkcs11_kek(token.options());
    ADD_FAILURE() << "two keys for version 1 were accepted";
  } catch (const Pkcs11Error& e) {
    EXPECT_EQ(e.stage(), Pkcs11Error::Stage::key);
    EXPECT_NE(std::string(e.what()).find("2 keys for version 1"), std::string::npos) << e.what();
  }
}

TEST(Pkcs11KekLabels, NoKeyIsReportedWithItsLabel) {
  SoftHsmToken token(/*create_key=*/false);
  try {
    (void)open_pkcs11_kek(token.options());
    ADD_FAILURE() << "opened without a key";
  } catch (const Pkcs11Error& e) {
    EXPECT_EQ(e.stage(), Pkcs11Error::Stage::key);
    EXPECT_NE(std::string(e.what()).find("\"hookvault-kek\""), std::string::npos) << e.what();
  }
  // create_pkcs11_kek_version() makes version 1 under the plain label.
  EXPECT_EQ(create_pkcs11_kek_version(token.options()), 1U);
  EXPECT_TRUE(inspect_key(token, "hookvault-kek").found);
  EXPECT_EQ(open_pkcs11_kek(token.options())->version(), 1U);
}

// What a failed open says: the stage, the names it must mention, and never a PIN.
void expect_open_fails(Pkcs11KekOptions options, Pkcs11Error::Stage stage,
                       const std::vector<std::string>& mentions,
                       const std::vector<std::string>& never) {
  try {
    (void)open_pkcs11_kek(std::move(options));
    ADD_FAILURE() << "open succeeded";
  } catch (const Pkcs11Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.stage(), stage) << message;
    for (const auto& m : mentions) EXPECT_NE(message.find(m), std::string::npos) << message;
    for (const auto& n : never)
      EXPECT_EQ(message.find(n), std::string::npos) << "secret in message";
  }
}

void expect_refresh_refused(Kek& kek, const std::string& mention) {
  try {
    kek.refresh();
    ADD_FAILURE() << "refresh() succeeded; expected it to refuse: " << mention;
  } catch (const Pkcs11Error& e) {
    EXPECT_EQ(e.stage(), Pkcs11Error::Stage::key) << e.what();
    EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
  }
}

TEST_F(Pkcs11KekTest, OpenFailuresNameWhatIsWrongAndNeverThePin) {
  const std::string wrong_pin = "wrong-pin-5e1d77";
  const std::vector<std::string> pins = {token_->pin(), wrong_pin};

  expect_open_fails(token_->options_with_pin(wrong_pin), Pkcs11Error::Stage::login,
                    {token_->label(), "CKR_PIN_INCORRECT"}, pins);

  auto no_token = token_->options();
  no_token.token_label = "no-such-token";
  expect_open_fails(std::move(no_token), Pkcs11Error::Stage::token,
                    {"no-such-token", "no such token"}, pins);

  auto no_module = token_->options();
  no_module.module = "/nonexistent/libpkcs11-module.so";
  expect_open_fails(std::move(no_module), Pkcs11Error::Stage::module,
                    {"/nonexistent/libpkcs11-module.so"}, pins);

  auto not_a_module = token_->options();
  not_a_module.module = "libc.so.6";  // loads, but has no C_GetFunctionList
  expect_open_fails(std::move(not_a_module), Pkcs11Error::Stage::module,
                    {"libc.so.6", "C_GetFunctionList"}, pins);

  auto no_key = token_->options();
  no_key.key_label = "no-such-key";
  expect_open_fails(std::move(no_key), Pkcs11Error::Stage::key, {"no-such-key"}, pins);

  auto long_label = token_->options();
  long_label.token_label = std::string(33, 't');
  expect_open_fails(std::move(long_label), Pkcs11Error::Stage::token, {"32 bytes"}, pins);

  // create_pkcs11_kek_version() too.
  try {
    (void)create_pkcs11_kek_version(token_->options_with_pin(wrong_pin));
    ADD_FAILURE() << "created a key with a wrong PIN";
  } catch (const Pkcs11Error& e) {
    EXPECT_EQ(e.stage(), Pkcs11Error::Stage::login);
    EXPECT_EQ(std::string(e.what()).find(wrong_pin), std::string::npos);
  }
  // And the right PIN still works (the failures locked nothing).
  EXPECT_EQ(open()->version(), 1U);
}

TEST_F(Pkcs11KekTest, ClosingOneKekLeavesAnotherLoggedIn) {
  auto first = open();
  auto second = open();
  auto wrapped = second->wrap(SecretBytes::random(32), ad("row"));
  ASSERT_TRUE(wrapped);
  first.reset();
  EXPECT_EQ(outcome(second->unwrap(wrapped->bytes, 1, ad("row"))), "ok");
  EXPECT_EQ(outcome(second->wrap(SecretBytes::random(32), ad("row"))), "ok");
  second.reset();
  // The module was finalized with its last user; it comes back.
  EXPECT_EQ(outcome(open()->unwrap(wrapped->bytes, 1, ad("row"))), "ok");
}

TEST_F(Pkcs11KekTest, ManyThreadsWrapAndUnwrapAtOnce) {
  // A v1 wrap made before the rotation, read concurrently with the v2 wraps.
  const SecretBytes old_dek = SecretBytes::random(32);
  auto old_wrap = open()->wrap(old_dek, ad("old-row"));
  ASSERT_TRUE(old_wrap);
  ASSERT_EQ(create_pkcs11_kek_version(token_->options()), 2U);
  const auto kek = open();
  constexpr int kThreads = 4;
  constexpr int kRounds = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string row = "row-" + std::to_string(t) + "-" + std::to_string(i);
        const SecretBytes dek = SecretBytes::random(32);
        auto wrapped = kek->wrap(dek, ad(row));
        if (!wrapped) {
          ++failures;
          continue;
        }
        auto back = kek->unwrap(wrapped->bytes, 2, ad(row));
        if (!back || !back->equals(dek.reveal())) ++failures;
        if (kek->unwrap(wrapped->bytes, 2, ad(row + "x"))) ++failures;  // must not open
        auto old = kek->unwrap(old_wrap->bytes, 1, ad("old-row"));
        if (!old || !old->equals(old_dek.reveal())) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace hookvault
